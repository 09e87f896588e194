//! Creating and upgrading the data model in the configured schema, in one transaction, under the
//! schema's advisory lock: a new schema gets all of `schema.sql`; an existing one is checked
//! (`schema_meta.version`) and, after any upgrade steps, has its views recreated from the part after
//! [`VIEWS_MARKER`], so a view change never needs its own step.

use postgres::Client;

use super::{PgError, schema_ident};
use crate::config::PgSettings;

/// The PostgreSQL data model.
pub const SCHEMA_SQL: &str = include_str!("schema.sql");

/// The line that starts the views part of [`SCHEMA_SQL`].
pub const VIEWS_MARKER: &str = "-- @views";

/// The version this binary writes. Upgrades from older versions go in `upgrade`.
pub const SCHEMA_VERSION: i32 = 5;

/// The tables part and the views part of [`SCHEMA_SQL`].
pub fn parts() -> (&'static str, &'static str) {
    match SCHEMA_SQL.find(VIEWS_MARKER) {
        Some(at) => (&SCHEMA_SQL[..at], &SCHEMA_SQL[at..]),
        // The marker is in the file (tests/pg_schema.rs checks it): everything is tables otherwise.
        None => (SCHEMA_SQL, ""),
    }
}

/// Brings the schema to [`SCHEMA_VERSION`]. The session's `search_path` is the schema already (see
/// `connect`).
pub fn migrate(client: &mut Client, settings: &PgSettings) -> Result<(), PgError> {
    let schema = schema_ident(settings);
    let err = |what: &str| {
        let what = what.to_string();
        move |e| PgError::query(&what, settings, e)
    };
    let mut tx = client
        .transaction()
        .map_err(err("starting the schema transaction"))?;
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&settings.schema],
        )
        .map_err(err("looking for the schema"))?
        .get(0);
    if !exists {
        // Set again after creating it, so the names below land in it for certain.
        tx.batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema}"
        ))
        .map_err(err("creating the schema"))?;
    }
    let has_meta: bool = tx
        .query_one(
            "SELECT to_regclass(format('%I.schema_meta', $1::text)) IS NOT NULL",
            &[&settings.schema],
        )
        .map_err(err("reading the data model version"))?
        .get(0);
    let (tables, views) = parts();
    if !has_meta {
        let foreign: Option<String> = tx
            .query_opt(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1 LIMIT 1",
                &[&settings.schema],
            )
            .map_err(err("looking at the schema's tables"))?
            .map(|r| r.get(0));
        if let Some(table) = foreign {
            return Err(PgError::Foreign {
                schema: settings.schema.clone(),
                server: settings.shown.clone(),
                table,
            });
        }
        tx.batch_execute(tables)
            .map_err(err("creating the tables"))?;
        tx.batch_execute(views).map_err(err("creating the views"))?;
        tx.execute(
            "INSERT INTO schema_meta (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .map_err(err("recording the data model version"))?;
        tracing::info!(schema = %settings.schema, version = SCHEMA_VERSION, "created the mirror's tables");
    } else {
        let found: i32 = tx
            .query_one("SELECT max(version) FROM schema_meta", &[])
            .map_err(err("reading the data model version"))?
            .get::<_, Option<i32>>(0)
            .unwrap_or(0);
        if found > SCHEMA_VERSION {
            return Err(PgError::TooNew {
                schema: settings.schema.clone(),
                server: settings.shown.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            upgrade(&mut tx, found).map_err(err("upgrading the data model"))?;
            tx.batch_execute(views)
                .map_err(err("recreating the views"))?;
            tx.execute("UPDATE schema_meta SET version = $1", &[&SCHEMA_VERSION])
                .map_err(err("recording the data model version"))?;
            tracing::info!(schema = %settings.schema, from = found, to = SCHEMA_VERSION, "upgraded the data model");
        }
    }
    tx.commit().map_err(err("committing the data model"))?;
    Ok(())
}

/// The steps from `from` to [`SCHEMA_VERSION`], each in the migration's transaction (the views are
/// recreated after them). Each version's step comes with a test that starts from the version before
/// (tests/pg_schema.rs).
fn upgrade(tx: &mut postgres::Transaction<'_>, from: i32) -> Result<(), postgres::Error> {
    if from < 2 {
        // 1 → 2: `sync_runs.expected`, the items a running run expects to fetch (progress, ETAs).
        tx.batch_execute("ALTER TABLE sync_runs ADD COLUMN IF NOT EXISTS expected bigint")?;
    }
    if from < 3 {
        // 2 → 3: `view_problems`, the custom views that could not be built.
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS view_problems (view text PRIMARY KEY, entity text NOT NULL, \
             error text NOT NULL, failed_at timestamptz NOT NULL)",
        )?;
    }
    if from < 4 {
        // 3 → 4: the `webhook` mode of `sync_runs` and `webhook_events`, the last pushed event per
        // entity (the table's text exactly as in schema.sql).
        tx.batch_execute(
            "ALTER TABLE sync_runs DROP CONSTRAINT IF EXISTS sync_runs_mode_check;
             ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_mode_check
               CHECK (mode IN ('incremental', 'full', 'reconcile', 'preflight', 'webhook'));",
        )?;
        tx.batch_execute(WEBHOOK_EVENTS)?;
    }
    if from < 5 {
        // 4 → 5: `sync_state.unsupported` (why an org or key does not offer an entity), and the
        // coverage entities' tables, created from schema.sql's own `@coverage` section.
        tx.batch_execute("ALTER TABLE sync_state ADD COLUMN IF NOT EXISTS unsupported text")?;
        tx.batch_execute(crate::ddl::section(SCHEMA_SQL, "coverage"))?;
    }
    Ok(())
}

/// `webhook_events` as `schema.sql` creates it (3 → 4).
const WEBHOOK_EVENTS: &str = "CREATE TABLE webhook_events (
    entity      text PRIMARY KEY,
    event       text NOT NULL,
    event_id    text,
    record_id   text,
    received_at timestamptz NOT NULL,
    applied_at  timestamptz NOT NULL,
    events      bigint NOT NULL DEFAULT 0,
    changed     bigint NOT NULL DEFAULT 0,
    stale       bigint NOT NULL DEFAULT 0,
    rejected    bigint NOT NULL DEFAULT 0
);";
