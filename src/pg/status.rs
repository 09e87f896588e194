//! What the PostgreSQL mirror knows about itself, for `status`, `demo`, `/healthz` and `/metrics`:
//! the same [`EntityStatus`] and [`RunTotals`] as SQLite's `crate::status`, times rendered as the
//! same ISO-8601 UTC text. [`StatusReader`] keeps its own session (never the writer's), opened on
//! first use and again after an error; it takes no lock and changes nothing.

use postgres::Client;

use super::{PgError, iso};
use crate::config::PgSettings;
use crate::entity::{ENTITIES, StateKey};
use crate::status::{EntityStatus, RunSummary, RunTotals, Scope};

/// A reader of the mirror's status on its own session.
#[derive(Debug)]
pub struct StatusReader {
    settings: PgSettings,
    client: Option<ClientBox>,
}

/// The session, boxed for `Debug`.
struct ClientBox(Client);

impl std::fmt::Debug for ClientBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("postgres::Client")
    }
}

impl StatusReader {
    /// A reader of the schema `settings` names; connects on first use.
    pub fn new(settings: PgSettings) -> StatusReader {
        StatusReader {
            settings,
            client: None,
        }
    }

    /// Every entity's status and, with [`Scope::Full`], the run totals.
    pub fn read(&mut self, scope: Scope) -> Result<(Vec<EntityStatus>, Vec<RunTotals>), PgError> {
        let client = match &mut self.client {
            Some(c) if !c.0.is_closed() => c,
            _ => self
                .client
                .insert(ClientBox(super::connect::connect(&self.settings)?)),
        };
        let result = read_all(&mut client.0, scope);
        match result {
            Ok(r) => Ok(r),
            Err(e) => {
                self.client = None;
                if e.code().map(|c| c.code()) == Some("42P01") {
                    return Err(PgError::Query {
                        context: "reading the sync status".into(),
                        schema: self.settings.schema.clone(),
                        server: self.settings.shown.clone(),
                        message: "the schema holds no mirror yet; run `kustomer-mirror sync` first (or check database.schema)".into(),
                    });
                }
                Err(PgError::query("reading the sync status", &self.settings, e))
            }
        }
    }
}

impl StatusReader {
    /// Whether a mirror holds the schema's advisory lock now (from `pg_locks`; takes no lock).
    /// `None` when it cannot be told.
    pub fn writer_active(&mut self) -> Option<bool> {
        let (hi, lo) = super::lock_halves(&self.settings.schema);
        let client = match &mut self.client {
            Some(c) if !c.0.is_closed() => c,
            _ => self
                .client
                .insert(ClientBox(super::connect::connect(&self.settings).ok()?)),
        };
        client
            .0
            .query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE {})",
                    super::LOCK_ROW
                ),
                &[&hi, &lo],
            )
            .ok()
            .map(|row| row.get(0))
    }
}

fn read_all(
    c: &mut Client,
    scope: Scope,
) -> Result<(Vec<EntityStatus>, Vec<RunTotals>), postgres::Error> {
    let mut tx = c.build_transaction().read_only(true).start()?;
    let statuses = read_in(&mut tx, scope)?;
    let totals = match scope {
        Scope::Full => tx
            .query(
                "SELECT entity, status, COUNT(*), COALESCE(SUM(requests), 0)::bigint, COALESCE(SUM(fetched), 0)::bigint, \
                 COALESCE(SUM(inserted + updated + deleted), 0)::bigint \
                 FROM sync_runs GROUP BY entity, status ORDER BY entity, status",
                &[],
            )?
            .iter()
            .map(|r| RunTotals {
                entity: r.get(0),
                status: r.get(1),
                runs: r.get(2),
                requests: r.get(3),
                fetched: r.get(4),
                changed: r.get(5),
            })
            .collect(),
        Scope::Health => Vec::new(),
    };
    tx.commit()?;
    Ok((statuses, totals))
}

/// Every entity's status (kobjects: one per klass seen), as `crate::status::read_scope`.
pub fn read_in(
    c: &mut impl postgres::GenericClient,
    scope: Scope,
) -> Result<Vec<EntityStatus>, postgres::Error> {
    let mut keys: Vec<StateKey> = Vec::new();
    for e in &ENTITIES {
        if e.per_klass() {
            let rows = c.query(
                "SELECT entity FROM sync_state WHERE entity LIKE $1 || ':%' ORDER BY entity",
                &[&e.name],
            )?;
            let klass_keys: Vec<StateKey> = rows
                .iter()
                .filter_map(|r| StateKey::parse(r.get(0)))
                .collect();
            if klass_keys.is_empty() {
                keys.push(StateKey::entity(e));
            }
            keys.extend(klass_keys);
        } else {
            keys.push(StateKey::entity(e));
        }
    }
    let mut out = Vec::new();
    for key in keys {
        out.push(read_one(c, &key, scope)?);
    }
    Ok(out)
}

fn read_one(
    c: &mut impl postgres::GenericClient,
    state: &StateKey,
    scope: Scope,
) -> Result<EntityStatus, postgres::Error> {
    let table = state.table();
    let klass = state.klass.as_deref();
    let key = state.to_string();
    let (live, deleted): (i64, i64) = match scope {
        Scope::Health => (0, 0),
        Scope::Full => {
            let row = c.query_one(
                &format!(
                    "SELECT COUNT(*) FILTER (WHERE deleted_at IS NULL), COUNT(*) FILTER (WHERE deleted_at IS NOT NULL) \
                     FROM {table} WHERE {}",
                    if klass.is_some() {
                        "klass = $1"
                    } else {
                        "$1::text IS NULL"
                    }
                ),
                &[&klass],
            )?;
            (row.get(0), row.get(1))
        }
    };
    let rejected: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM rejected_records WHERE entity = $1",
            &[&key],
        )?
        .get(0);
    let view_problems: Vec<String> = c
        .query(
            "SELECT view || ': ' || error FROM view_problems WHERE entity = $1 ORDER BY view",
            &[&key],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let state_row = c.query_opt(
        &format!(
            "SELECT strategy, cursor, {}, last_error, consecutive_failures, last_run_id, \
             EXTRACT(EPOCH FROM now() - last_success_at)::bigint FROM sync_state WHERE entity = $1",
            iso("last_success_at")
        ),
        &[&key],
    )?;
    let (strategy, cursor, last_success_at, last_error, consecutive_failures, last_run_id, lag) =
        match state_row {
            Some(r) => (
                r.get::<_, Option<String>>(0),
                r.get::<_, Option<String>>(1),
                r.get::<_, Option<String>>(2),
                r.get::<_, Option<String>>(3),
                r.get::<_, i64>(4),
                r.get::<_, Option<i64>>(5),
                r.get::<_, Option<i64>>(6),
            ),
            None => (None, None, None, None, 0, None, None),
        };
    let last_run = match last_run_id {
        None => None,
        Some(id) => c
            .query_opt(
                &format!(
                    "SELECT id, mode, status, {}, {}, requests, fetched, inserted, updated, unchanged, deleted, error, rejected, expected \
                     FROM sync_runs WHERE id = $1",
                    iso("started_at"),
                    iso("finished_at")
                ),
                &[&id],
            )?
            .map(|r| RunSummary {
                id: r.get(0),
                mode: r.get(1),
                status: r.get(2),
                started_at: r.get(3),
                finished_at: r.get(4),
                requests: r.get(5),
                fetched: r.get(6),
                inserted: r.get(7),
                updated: r.get(8),
                unchanged: r.get(9),
                deleted: r.get(10),
                error: r.get(11),
                rejected: r.get(12),
                expected: r.get(13),
            }),
    };
    Ok(EntityStatus {
        entity: key,
        live,
        deleted,
        rejected,
        strategy,
        cursor,
        last_success_at,
        last_error,
        consecutive_failures,
        lag_seconds: lag,
        last_run,
        view_problems,
    })
}
