//! PostgreSQL's answers to the status model (`crate::status`), for `status`, `demo`, `/healthz` and
//! `/metrics`: the small reads of a [`status::Source`] in one read-only transaction, times rendered
//! as ISO-8601 UTC text, and the run totals. [`StatusReader`] keeps its own session (never the writer's), opened on
//! first use and again after an error; it takes no lock and changes nothing.

use postgres::{Client, GenericClient};

use super::{PgError, iso};
use crate::config::PgSettings;
use crate::status::{
    self, EntityStatus, RunState, RunSummary, RunTotals, Scope, StateRow, WebhookStatus,
};

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
    let statuses = status::read(&mut Reads(&mut tx), scope)?;
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
                status: RunState::parse(r.get(1)),
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

/// Every entity's status, on the writer's session (for `demo`).
pub fn read_in(
    c: &mut impl GenericClient,
    scope: Scope,
) -> Result<Vec<EntityStatus>, postgres::Error> {
    status::read(&mut Reads(c), scope)
}

/// The status reads on one session, times as ISO-8601 UTC text.
struct Reads<'c, C: GenericClient>(&'c mut C);

impl<C: GenericClient> status::Source for Reads<'_, C> {
    type Error = postgres::Error;

    fn klass_keys(&mut self, entity: &str) -> Result<Vec<String>, postgres::Error> {
        let rows = self.0.query(
            "SELECT entity FROM sync_state WHERE entity LIKE $1 || ':%' ORDER BY entity",
            &[&entity],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn rows(&mut self, table: &str, klass: Option<&str>) -> Result<(i64, i64), postgres::Error> {
        let row = self.0.query_one(
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
        Ok((row.get(0), row.get(1)))
    }

    fn rejected(&mut self, key: &str) -> Result<i64, postgres::Error> {
        Ok(self
            .0
            .query_one(
                "SELECT COUNT(*) FROM rejected_records WHERE entity = $1",
                &[&key],
            )?
            .get(0))
    }

    fn view_problems(&mut self, key: &str) -> Result<Vec<String>, postgres::Error> {
        let rows = self.0.query(
            "SELECT view || ': ' || error FROM view_problems WHERE entity = $1 ORDER BY view",
            &[&key],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn state(&mut self, key: &str) -> Result<Option<StateRow>, postgres::Error> {
        let row = self.0.query_opt(
            &format!(
                "SELECT strategy, cursor, {}, last_error, consecutive_failures, last_run_id, unsupported \
                 FROM sync_state WHERE entity = $1",
                iso("last_success_at")
            ),
            &[&key],
        )?;
        Ok(row.map(|r| StateRow {
            strategy: r.get(0),
            cursor: r.get(1),
            last_success_at: r.get(2),
            last_error: r.get(3),
            consecutive_failures: r.get(4),
            last_run_id: r.get(5),
            unsupported: r.get(6),
        }))
    }

    fn webhook(&mut self, table: &str) -> Result<Option<WebhookStatus>, postgres::Error> {
        let row = self.0.query_opt(
            &format!(
                "SELECT event, event_id, record_id, {}, {}, events, changed, stale, rejected \
                 FROM webhook_events WHERE entity = $1",
                iso("received_at"),
                iso("applied_at")
            ),
            &[&table],
        )?;
        Ok(row.map(|r| WebhookStatus {
            event: r.get(0),
            event_id: r.get(1),
            record_id: r.get(2),
            received_at: r.get(3),
            applied_at: r.get(4),
            events: r.get(5),
            changed: r.get(6),
            stale: r.get(7),
            rejected: r.get(8),
        }))
    }

    fn run(&mut self, id: i64) -> Result<Option<RunSummary>, postgres::Error> {
        let row = self.0.query_opt(
            &format!(
                "SELECT id, mode, status, {}, {}, requests, fetched, inserted, updated, unchanged, deleted, \
                 error, rejected, expected FROM sync_runs WHERE id = $1",
                iso("started_at"),
                iso("finished_at")
            ),
            &[&id],
        )?;
        Ok(row.map(|r| RunSummary {
            id: r.get(0),
            mode: r.get(1),
            status: RunState::parse(r.get(2)),
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
        }))
    }
}
