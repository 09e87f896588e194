//! Bulk loads: while a table receives its first sync (no pass of it has succeeded yet), the indexes
//! that are expensive to keep up to date — on its random ids and other scattered values, and the
//! change log's per-record index — are dropped, and rebuilt once when the last such pass ends.
//!
//! Why: ids and foreign ids are random 24-hex strings, so keeping an index on them up to date inserts
//! each row into a random B-tree page, and every page a transaction touches is written to the WAL at
//! commit: with one transaction per 500-record page that is several megabytes per page, most of an
//! initial sync's time. Building an index afterwards is one sorted pass over the table. Indexes whose
//! leading column arrives in sync order (`updated_at`, the change log's `run_id`) or has a handful of
//! values (`status`, `channel`, `klass`) cost a few pages per transaction and stay, which saves their
//! table scans at the end. What deferral costs: during a table's first sync, reports filtering on its
//! other typed columns scan the table (the rows being loaded are incomplete anyway); primary keys and
//! unique indexes are never dropped, so lookups by id and every constraint hold throughout.
//!
//! Crash safety: an index exists in `schema.sql`'s definition or is rebuilt from it; after a crash
//! (or an interrupted pass, which skips the rebuild to stop quickly) the next pass of the table either
//! continues the bulk load or, if the table has finished its first sync, recreates what is missing.

use rusqlite::Connection;

use super::{SCHEMA_SQL, Store, StoreError, VIEWS_MARKER};
use crate::ddl::IndexDef;
pub use crate::mirror::bulk::Bulk;

/// Page cache (and so sorter memory) while an index is built, in KiB.
const BUILD_CACHE_KIB: u32 = 8_000;

/// The non-unique indexes of `schema.sql` (unique ones are constraints and always stay).
pub fn schema_indexes() -> Vec<IndexDef> {
    crate::ddl::schema_indexes(SCHEMA_SQL, VIEWS_MARKER)
}

/// Starts a pass that writes `table`. When no pass of the table has succeeded yet, drops its
/// deferred indexes and the change log's and returns `true`; the caller must call [`end`] however
/// the pass ends. Otherwise recreates any index a crash left missing and returns `false`.
pub fn begin(store: &mut Store, table: &str) -> Result<bool, StoreError> {
    let ctx = |what: &str| format!("{what} ({table})");
    let first_sync: bool = store
        .conn()
        .query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM sync_state WHERE (entity = ?1 OR entity LIKE ?1 || ':%') \
             AND last_success_at IS NOT NULL)",
            [table],
            |row| row.get(0),
        )
        .map_err(|e| StoreError::sqlite(ctx("checking for an earlier sync"), e))?;
    if !first_sync {
        for settled in store.bulk.settled(table) {
            rebuild(store.conn(), settled)
                .map_err(|e| StoreError::sqlite(ctx("recreating missing indexes"), e))?;
        }
        return Ok(false);
    }
    let defs = schema_indexes();
    for def in Bulk::deferred(&defs, table) {
        store
            .conn()
            .execute_batch(&format!("DROP INDEX IF EXISTS {}", def.name))
            .map_err(|e| StoreError::sqlite(ctx("deferring indexes for the first sync"), e))?;
    }
    store.bulk.enter(table);
    tracing::debug!(
        table,
        "first sync: secondary indexes deferred until it ends"
    );
    Ok(true)
}

/// Ends a pass that [`begin`] put in bulk mode. The last pass of `table` out rebuilds its indexes,
/// the last of all rebuilds the change log's; `rebuild_now: false` (an interrupted pass, stopping
/// quickly) leaves that to the next pass.
pub fn end(store: &mut Store, table: &str, rebuild_now: bool) -> Result<(), StoreError> {
    for done in store.bulk.leave(table, rebuild_now) {
        rebuild(store.conn(), &done).map_err(|e| {
            StoreError::sqlite(
                format!("building the indexes of {done} after the first sync of {table}"),
                e,
            )
        })?;
    }
    Ok(())
}

/// Creates the indexes of `table` that do not exist (deferred ones, and any a crash lost). Sorting uses a small buffer and
/// spills to temporary files rather than memory, so building an index over millions of rows does
/// not grow the process.
fn rebuild(conn: &Connection, table: &str) -> rusqlite::Result<()> {
    let mut missing = Vec::new();
    for def in schema_indexes().into_iter().filter(|d| d.table == table) {
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?1)",
            [&def.name],
            |row| row.get(0),
        )?;
        if !exists {
            missing.push(def);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    // The sorter takes as much memory as the page cache is allowed: shrink both for the build.
    conn.execute_batch(&format!(
        "PRAGMA temp_store = FILE; PRAGMA cache_size = -{BUILD_CACHE_KIB}"
    ))?;
    let built = missing
        .iter()
        .try_for_each(|def| conn.execute_batch(&def.sql));
    conn.execute_batch(&format!(
        "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{}",
        super::CACHE_KIB
    ))?;
    built?;
    tracing::info!(
        table,
        indexes = missing.len(),
        duration_ms = started.elapsed().as_millis() as u64,
        "indexes built"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_non_unique_index_of_the_schema_is_found_and_unique_ones_are_not() {
        let defs = schema_indexes();
        let total = SCHEMA_SQL.matches("CREATE INDEX ").count();
        assert_eq!(defs.len(), total);
        assert!(defs.iter().any(|d| {
            d.name == "messages_conversation_id"
                && d.table == "messages"
                && d.sql
                    .starts_with("CREATE INDEX messages_conversation_id ON messages")
        }));
        assert!(
            defs.iter()
                .any(|d| d.table == crate::mirror::bulk::CHANGE_LOG)
        );
        assert!(!defs.iter().any(|d| d.name == "klasses_name"));
    }

    #[test]
    fn indexes_on_scattered_values_are_deferred_and_ones_filled_in_sync_order_are_not() {
        let deferred = |name: &str| {
            schema_indexes()
                .into_iter()
                .find(|d| d.name == name)
                .map(|d| d.deferred)
        };
        for name in [
            "messages_conversation_id",
            "customers_email",
            "conversations_created_at",
            "change_log_record",
        ] {
            assert_eq!(deferred(name), Some(true), "{name}");
        }
        for name in [
            "messages_updated_at",
            "conversations_status",
            "kobjects_klass_updated_at",
            "change_log_run",
        ] {
            assert_eq!(deferred(name), Some(false), "{name}");
        }
    }
}
