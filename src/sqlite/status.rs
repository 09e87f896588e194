//! SQLite's answers to the status model (`crate::status`): the small reads of a
//! [`Source`](crate::status::Source), and the run totals of `/metrics`.

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;
use crate::status::{
    self, EntityStatus, RunState, RunSummary, RunTotals, Scope, StateRow, WebhookStatus,
};

/// The status reads on one connection.
struct Reads<'c>(&'c Connection);

impl status::Source for Reads<'_> {
    type Error = rusqlite::Error;

    fn klass_keys(&mut self, entity: &str) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self.0.prepare(
            "SELECT entity FROM sync_state WHERE entity LIKE ?1 || ':%' ORDER BY entity",
        )?;
        let keys = stmt.query_map([entity], |r| r.get::<_, String>(0))?;
        keys.collect()
    }

    fn rows(&mut self, table: &str, klass: Option<&str>) -> rusqlite::Result<(i64, i64)> {
        self.0.query_row(
            &format!(
                "SELECT COALESCE(SUM(deleted_at IS NULL), 0), COALESCE(SUM(deleted_at IS NOT NULL), 0) \
                 FROM {table} WHERE {}",
                if klass.is_some() { "klass = ?1" } else { "?1 IS NULL" }
            ),
            [klass],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    fn rejected(&mut self, key: &str) -> rusqlite::Result<i64> {
        self.0.query_row(
            "SELECT COUNT(*) FROM rejected_records WHERE entity = ?1",
            [key],
            |r| r.get(0),
        )
    }

    fn view_problems(&mut self, key: &str) -> rusqlite::Result<Vec<String>> {
        self.0
            .prepare(
                "SELECT view || ': ' || error FROM view_problems WHERE entity = ?1 ORDER BY view",
            )?
            .query_map([key], |r| r.get::<_, String>(0))?
            .collect()
    }

    fn state(&mut self, key: &str) -> rusqlite::Result<Option<StateRow>> {
        self.0
            .query_row(
                "SELECT strategy, cursor, last_success_at, last_error, consecutive_failures, last_run_id, unsupported \
                 FROM sync_state WHERE entity = ?1",
                [key],
                |r| {
                    Ok(StateRow {
                        strategy: r.get(0)?,
                        cursor: r.get(1)?,
                        last_success_at: r.get(2)?,
                        last_error: r.get(3)?,
                        consecutive_failures: r.get(4)?,
                        last_run_id: r.get(5)?,
                        unsupported: r.get(6)?,
                    })
                },
            )
            .optional()
    }

    fn webhook(&mut self, table: &str) -> rusqlite::Result<Option<WebhookStatus>> {
        self.0
            .query_row(
                "SELECT event, event_id, record_id, received_at, applied_at, events, changed, stale, \
                 rejected FROM webhook_events WHERE entity = ?1",
                [table],
                |r| {
                    Ok(WebhookStatus {
                        event: r.get(0)?,
                        event_id: r.get(1)?,
                        record_id: r.get(2)?,
                        received_at: r.get(3)?,
                        applied_at: r.get(4)?,
                        events: r.get(5)?,
                        changed: r.get(6)?,
                        stale: r.get(7)?,
                        rejected: r.get(8)?,
                    })
                },
            )
            .optional()
    }

    fn run(&mut self, id: i64) -> rusqlite::Result<Option<RunSummary>> {
        self.0
            .query_row(
                "SELECT id, mode, status, started_at, finished_at, requests, fetched, inserted, updated, \
                 unchanged, deleted, error, rejected, expected FROM sync_runs WHERE id = ?1",
                [id],
                |r| {
                    Ok(RunSummary {
                        id: r.get(0)?,
                        mode: r.get(1)?,
                        status: RunState::parse(&r.get::<_, String>(2)?),
                        started_at: r.get(3)?,
                        finished_at: r.get(4)?,
                        requests: r.get(5)?,
                        fetched: r.get(6)?,
                        inserted: r.get(7)?,
                        updated: r.get(8)?,
                        unchanged: r.get(9)?,
                        deleted: r.get(10)?,
                        error: r.get(11)?,
                        rejected: r.get(12)?,
                        expected: r.get(13)?,
                    })
                },
            )
            .optional()
    }
}

/// The status of every entity, as `status` shows it.
pub fn read(conn: &Connection, scope: Scope) -> Result<Vec<EntityStatus>, StoreError> {
    status::read(&mut Reads(conn), scope)
        .map_err(|e| StoreError::sqlite("reading the sync status", e))
}

/// [`RunTotals`] of every entity and status.
pub fn run_totals(conn: &Connection) -> Result<Vec<RunTotals>, StoreError> {
    let err = |e| StoreError::sqlite("summing sync_runs", e);
    let mut stmt = conn
        .prepare(
            "SELECT entity, status, COUNT(*), SUM(requests), SUM(fetched), SUM(inserted + updated + deleted) \
             FROM sync_runs GROUP BY entity, status ORDER BY entity, status",
        )
        .map_err(err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(RunTotals {
                entity: r.get(0)?,
                status: RunState::parse(&r.get::<_, String>(1)?),
                runs: r.get(2)?,
                requests: r.get(3)?,
                fetched: r.get(4)?,
                changed: r.get(5)?,
            })
        })
        .map_err(err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(err)?;
    Ok(rows)
}
