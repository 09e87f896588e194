//! First loads into PostgreSQL: while a table receives its first sync, the secondary indexes on
//! scattered values (random ids, emails) and the change log's per-record index are dropped, and
//! built once, each in one sorted pass, when the last such pass ends — as `sqlite::bulk` does for
//! SQLite (the bookkeeping is `mirror::bulk`'s), from the same kind of definitions (`crate::ddl`) in
//! `postgres/schema.sql`. Rows arrive by binary
//! COPY (`apply`). Primary keys and unique indexes always stay, so every constraint holds throughout.
//!
//! Readers: dropping an index needs a moment's exclusive lock on the table, so it waits at most a
//! few seconds for readers and otherwise loads with the indexes in place. After a crash (or an
//! interrupted pass) the next pass of the table rebuilds whatever is missing.

use postgres::Client;

use super::{SCHEMA_SQL, VIEWS_MARKER};
use crate::ddl::{IndexDef, schema_indexes};
pub use crate::mirror::bulk::Bulk;

fn indexes() -> Vec<IndexDef> {
    schema_indexes(SCHEMA_SQL, VIEWS_MARKER)
}

/// Starts a pass writing `table`: on its first sync drops its deferred indexes (and the change
/// log's) and answers `true`; otherwise rebuilds any a crash left missing.
pub fn begin(c: &mut Client, bulk: &mut Bulk, table: &str) -> Result<bool, postgres::Error> {
    let first_sync: bool = c
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM sync_state WHERE (entity = $1 OR entity LIKE $1 || ':%') \
             AND last_success_at IS NOT NULL)",
            &[&table],
        )?
        .get(0);
    if !first_sync {
        for settled in bulk.settled(table) {
            rebuild(c, settled)?;
        }
        return Ok(false);
    }
    let defs = indexes();
    let drops: Vec<String> = Bulk::deferred(&defs, table)
        .into_iter()
        .map(|d| format!("DROP INDEX IF EXISTS {}", d.name))
        .collect();
    let mut tx = c.transaction()?;
    tx.batch_execute("SET LOCAL lock_timeout = '5s'")?;
    match tx.batch_execute(&drops.join("; ")) {
        Ok(()) => tx.commit()?,
        Err(e) if e.code().map(|c| c.code()) == Some("55P03") => {
            tx.rollback()?;
            tracing::warn!(
                table,
                "readers held the table; its first sync keeps its indexes up to date as it goes"
            );
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    bulk.enter(table);
    tracing::debug!(
        table,
        "first sync: secondary indexes deferred until it ends"
    );
    Ok(true)
}

/// Ends a pass [`begin`] put in bulk mode; the last one out builds the indexes (unless
/// `rebuild_now` is false: an interrupted pass leaves that to the next).
pub fn end(
    c: &mut Client,
    bulk: &mut Bulk,
    table: &str,
    rebuild_now: bool,
) -> Result<(), postgres::Error> {
    for done in bulk.leave(table, rebuild_now) {
        rebuild(c, &done)?;
    }
    Ok(())
}

/// Creates the indexes of `table` that do not exist.
fn rebuild(c: &mut Client, table: &str) -> Result<(), postgres::Error> {
    let mut missing = Vec::new();
    for def in indexes().into_iter().filter(|d| d.table == table) {
        let exists: bool = c
            .query_one(
                "SELECT to_regclass(format('%I.%I', current_schema(), $1::text)) IS NOT NULL",
                &[&def.name],
            )?
            .get(0);
        if !exists {
            missing.push(def);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    for def in &missing {
        c.batch_execute(&def.sql)?;
    }
    tracing::info!(
        table,
        indexes = missing.len(),
        duration_ms = started.elapsed().as_millis() as u64,
        "indexes built"
    );
    Ok(())
}
