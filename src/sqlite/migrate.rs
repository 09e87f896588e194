//! Schema versions: creates a new database from `schema.sql` and upgrades older ones step by step.
//!
//! `schema.sql` is always the whole current model (version [`SCHEMA_VERSION`]). When the model changes,
//! `schema.sql` is edited and a step is appended to [`UPGRADES`] that takes a database of the previous
//! version to the new one; a test checks that an upgraded database ends up with the same schema as a
//! new one. Every step runs in one transaction with the version bump, so a failed upgrade leaves the
//! file as it was.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// The whole current data model.
pub const SCHEMA_SQL: &str = include_str!("../../schema.sql");

/// The schema version `schema.sql` describes.
pub const SCHEMA_VERSION: u32 = 7;

/// Upgrade steps for tables: `UPGRADES[i]` takes a database at version `i + 1` to version `i + 2`.
/// Views are not upgraded step by step: after the steps, the views section of `schema.sql` (after
/// [`VIEWS_MARKER`]) drops and recreates them all.
const UPGRADES: &[&str] = &[
    // 1 → 2: views only (reporting views, link views, facts, status history).
    "",
    // 2 → 3: `sync_runs` gains `rejected` and the `preflight` mode (a CHECK change, so the table is
    // rebuilt: renamed aside with legacy renaming, which leaves views alone since they are recreated
    // after the steps, then copied into the new definition); `rejected_records` is new.
    "PRAGMA legacy_alter_table = ON;
     ALTER TABLE sync_runs RENAME TO sync_runs_v2;
     DROP INDEX sync_runs_entity;
     CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY,
    entity      TEXT NOT NULL,
    mode        TEXT NOT NULL CHECK (mode IN ('incremental', 'full', 'reconcile', 'preflight')),
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
    requests    INTEGER NOT NULL DEFAULT 0,
    fetched     INTEGER NOT NULL DEFAULT 0,
    inserted    INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL DEFAULT 0,
    unchanged   INTEGER NOT NULL DEFAULT 0,
    deleted     INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    rejected    INTEGER NOT NULL DEFAULT 0
);
     CREATE INDEX sync_runs_entity ON sync_runs (entity, id);
     INSERT INTO sync_runs (id, entity, mode, started_at, finished_at, status, requests, fetched,
                            inserted, updated, unchanged, deleted, error)
       SELECT id, entity, mode, started_at, finished_at, status, requests, fetched,
              inserted, updated, unchanged, deleted, error FROM sync_runs_v2;
     DROP TABLE sync_runs_v2;
     PRAGMA legacy_alter_table = OFF;
     CREATE TABLE rejected_records (
    entity        TEXT NOT NULL,
    record_key    TEXT NOT NULL,
    record_id     TEXT,
    updated_at    TEXT,
    reason        TEXT NOT NULL,
    raw           TEXT NOT NULL,
    page          TEXT NOT NULL,
    run_id        INTEGER NOT NULL,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    times_seen    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (entity, record_key)
);",
    // 3 → 4: `sync_runs.expected`, the items a running run expects to fetch (progress, ETAs).
    // Rebuilt as in 2 → 3 rather than `ADD COLUMN`, so the stored definition reads exactly as in
    // `schema.sql` (a test compares an upgraded file's schema with a new one's, text for text).
    "PRAGMA legacy_alter_table = ON;
     ALTER TABLE sync_runs RENAME TO sync_runs_v3;
     DROP INDEX sync_runs_entity;
     CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY,
    entity      TEXT NOT NULL,
    mode        TEXT NOT NULL CHECK (mode IN ('incremental', 'full', 'reconcile', 'preflight')),
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
    requests    INTEGER NOT NULL DEFAULT 0,
    fetched     INTEGER NOT NULL DEFAULT 0,
    inserted    INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL DEFAULT 0,
    unchanged   INTEGER NOT NULL DEFAULT 0,
    deleted     INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    rejected    INTEGER NOT NULL DEFAULT 0,
    expected    INTEGER
);
     CREATE INDEX sync_runs_entity ON sync_runs (entity, id);
     INSERT INTO sync_runs (id, entity, mode, started_at, finished_at, status, requests, fetched,
                            inserted, updated, unchanged, deleted, error, rejected)
       SELECT id, entity, mode, started_at, finished_at, status, requests, fetched,
              inserted, updated, unchanged, deleted, error, rejected FROM sync_runs_v3;
     DROP TABLE sync_runs_v3;
     PRAGMA legacy_alter_table = OFF;",
    // 4 → 5: `view_problems`, the custom views that could not be built (the text exactly as in
    // schema.sql, so an upgraded database has the same schema as a new one).
    "CREATE TABLE view_problems (\n    view      TEXT PRIMARY KEY,\n    entity    TEXT NOT NULL,\n    error     TEXT NOT NULL,\n    failed_at TEXT NOT NULL\n);",
    // 5 → 6: the `webhook` mode of `sync_runs` (a CHECK change: rebuilt as in 2 → 3) and
    // `webhook_events`, the last pushed event per entity.
    "PRAGMA legacy_alter_table = ON;
     ALTER TABLE sync_runs RENAME TO sync_runs_v5;
     DROP INDEX sync_runs_entity;
     CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY,
    entity      TEXT NOT NULL,
    mode        TEXT NOT NULL CHECK (mode IN ('incremental', 'full', 'reconcile', 'preflight', 'webhook')),
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
    requests    INTEGER NOT NULL DEFAULT 0,
    fetched     INTEGER NOT NULL DEFAULT 0,
    inserted    INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL DEFAULT 0,
    unchanged   INTEGER NOT NULL DEFAULT 0,
    deleted     INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    rejected    INTEGER NOT NULL DEFAULT 0,
    expected    INTEGER
);
     CREATE INDEX sync_runs_entity ON sync_runs (entity, id);
     INSERT INTO sync_runs SELECT * FROM sync_runs_v5;
     DROP TABLE sync_runs_v5;
     PRAGMA legacy_alter_table = OFF;
     CREATE TABLE webhook_events (\n    entity      TEXT PRIMARY KEY,\n    event       TEXT NOT NULL,\n    event_id    TEXT,\n    record_id   TEXT,\n    received_at TEXT NOT NULL,\n    applied_at  TEXT NOT NULL,\n    events      INTEGER NOT NULL DEFAULT 0,\n    changed     INTEGER NOT NULL DEFAULT 0,\n    stale       INTEGER NOT NULL DEFAULT 0,\n    rejected    INTEGER NOT NULL DEFAULT 0\n);",
    // 6 → 7: `sync_state.unsupported`, why an org or key does not offer an entity (rebuilt as in
    // 2 → 3, so the stored text reads as in schema.sql); the coverage tables are created from
    // schema.sql's own `@coverage` section (`SECTIONS`).
    "PRAGMA legacy_alter_table = ON;
     ALTER TABLE sync_state RENAME TO sync_state_v6;
     CREATE TABLE sync_state (
    entity               TEXT PRIMARY KEY,
    strategy             TEXT,
    cursor               TEXT,
    cursor_ids           TEXT NOT NULL DEFAULT '[]',
    last_run_id          INTEGER,
    last_success_at      TEXT,
    last_full_at         TEXT,
    last_error           TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    unsupported          TEXT
);
     INSERT INTO sync_state (entity, strategy, cursor, cursor_ids, last_run_id, last_success_at,
                             last_full_at, last_error, consecutive_failures)
       SELECT entity, strategy, cursor, cursor_ids, last_run_id, last_success_at, last_full_at,
              last_error, consecutive_failures FROM sync_state_v6;
     DROP TABLE sync_state_v6;
     PRAGMA legacy_alter_table = OFF;",
];

/// Sections of `schema.sql` an upgrade step creates as written there, after its own SQL: (the version
/// the step arrives at, the section's name). A section runs from the line `-- @<name>` to
/// `-- @end <name>`.
const SECTIONS: &[(u32, &str)] = &[(7, "coverage")];

/// The line in `schema.sql` after which only views follow.
pub const VIEWS_MARKER: &str = "-- @views";

/// The views section of `schema.sql` (empty if the marker is missing, which a test rules out).
pub fn views_sql() -> &'static str {
    SCHEMA_SQL
        .find(VIEWS_MARKER)
        .map_or("", |at| &SCHEMA_SQL[at..])
}

// Proof that the table above and the version agree: the last step must arrive at SCHEMA_VERSION.
const _: () = assert!(UPGRADES.len() as u32 + 1 == SCHEMA_VERSION);

/// Reads `PRAGMA user_version`.
pub(super) fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Brings the database to [`SCHEMA_VERSION`]; a no-op when it is there already.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found =
        user_version(conn).map_err(|e| StoreError::sqlite("reading the schema version", e))?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let migrate_err = |from: u32, to: u32| {
        move |source| StoreError::Migrate {
            path: path.to_path_buf(),
            from,
            to,
            source,
        }
    };
    // IMMEDIATE: take the write lock before looking, so two processes opening a new file at once
    // cannot both create the schema.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(migrate_err(found, SCHEMA_VERSION))?;
    let found = user_version(&tx).map_err(migrate_err(found, SCHEMA_VERSION))?;
    if found == 0 {
        let foreign: Option<String> = tx
            .query_row(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' LIMIT 1",
                [],
                |row| row.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                other => Err(other),
            })
            .map_err(migrate_err(0, SCHEMA_VERSION))?;
        if let Some(table) = foreign {
            return Err(StoreError::Foreign {
                path: path.to_path_buf(),
                table,
            });
        }
        tx.execute_batch(SCHEMA_SQL)
            .map_err(migrate_err(0, SCHEMA_VERSION))?;
    } else if found < SCHEMA_VERSION {
        for version in found..SCHEMA_VERSION {
            // `version` starts at 1 here, and UPGRADES has SCHEMA_VERSION - 1 entries (checked at
            // compile time above), so the index is always in range; `get` keeps that honest anyway.
            let step = UPGRADES
                .get((version - 1) as usize)
                .ok_or_else(|| migrate_err(version, version + 1)(rusqlite::Error::InvalidQuery))?;
            tx.execute_batch(step)
                .map_err(migrate_err(version, version + 1))?;
            for (_, name) in SECTIONS.iter().filter(|(to, _)| *to == version + 1) {
                tx.execute_batch(crate::ddl::section(SCHEMA_SQL, name))
                    .map_err(migrate_err(version, version + 1))?;
            }
        }
        tx.execute_batch(views_sql())
            .map_err(migrate_err(found, SCHEMA_VERSION))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(migrate_err(found, SCHEMA_VERSION))?;
    tx.commit().map_err(migrate_err(found, SCHEMA_VERSION))?;
    tracing::info!(path = %path.display(), from = found, to = SCHEMA_VERSION, "database schema ready");
    Ok(())
}
