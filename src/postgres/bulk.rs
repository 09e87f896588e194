//! First loads into PostgreSQL: while a table receives its first sync, the secondary indexes on
//! scattered values (random ids, emails) and the change log's per-record index are dropped, and
//! built once, each in one sorted pass, when the last such pass ends — as `store::bulk` does for
//! SQLite, from the same kind of definitions (`crate::ddl`) in `pg/schema.sql`. Rows arrive by binary
//! COPY (`apply`). Primary keys and unique indexes always stay, so every constraint holds throughout.
//!
//! Readers: dropping an index needs a moment's exclusive lock on the table, so it waits at most a
//! few seconds for readers and otherwise loads with the indexes in place. After a crash (or an
//! interrupted pass) the next pass of the table rebuilds whatever is missing.

use std::collections::HashMap;

use postgres::Client;

use super::{SCHEMA_SQL, VIEWS_MARKER};
use crate::ddl::{IndexDef, schema_indexes};

/// The change log's table name: its deferred indexes wait while any table bulk-loads.
const CHANGE_LOG: &str = "change_log";

/// Passes currently bulk-loading, per table.
#[derive(Debug, Default)]
pub struct Bulk {
    tables: HashMap<String, usize>,
}

impl Bulk {
    fn loading(&self) -> usize {
        self.tables.values().sum()
    }
}

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
        if bulk.tables.get(table).copied().unwrap_or(0) == 0 {
            rebuild(c, table)?;
        }
        if bulk.loading() == 0 {
            rebuild(c, CHANGE_LOG)?;
        }
        return Ok(false);
    }
    let drops: Vec<String> = indexes()
        .into_iter()
        .filter(|d| d.deferred && (d.table == table || d.table == CHANGE_LOG))
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
    *bulk.tables.entry(table.to_string()).or_default() += 1;
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
    if let Some(n) = bulk.tables.get_mut(table) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            bulk.tables.remove(table);
        }
    }
    if !rebuild_now {
        return Ok(());
    }
    if !bulk.tables.contains_key(table) {
        rebuild(c, table)?;
    }
    if bulk.loading() == 0 {
        rebuild(c, CHANGE_LOG)?;
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
