//! What the mirror knows about itself, per entity: live and deleted rows, quarantined records, cursor,
//! last run and its counters, last error and lag. Read by `status`, `demo`, `/metrics` and (without
//! the row counts, which cost a scan of every table) `/healthz`. Never reads or prints anything
//! secret: the database holds no key.

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::entity::{ENTITIES, StateKey};
use crate::store::StoreError;

/// The last run of one entity.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// `sync_runs.id`.
    pub id: i64,
    /// incremental, full or reconcile.
    pub mode: String,
    /// running, ok, failed or interrupted.
    pub status: String,
    /// Start time.
    pub started_at: String,
    /// End time.
    pub finished_at: Option<String>,
    /// HTTP requests.
    pub requests: i64,
    /// Records fetched.
    pub fetched: i64,
    /// Rows inserted.
    pub inserted: i64,
    /// Rows updated.
    pub updated: i64,
    /// Rows unchanged.
    pub unchanged: i64,
    /// Rows tombstoned.
    pub deleted: i64,
    /// Items set aside in `rejected_records`.
    pub rejected: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// Records the run expects to fetch in all, from the server's totals (NULL when unknown).
    pub expected: Option<i64>,
}

impl RunSummary {
    /// Progress of a running run: records per second since it started and, when the total is
    /// known, the seconds left at that pace. `None` unless the run is `running`.
    pub fn progress(&self, now: chrono::DateTime<chrono::Utc>) -> Option<Progress> {
        if self.status != "running" {
            return None;
        }
        let started = chrono::DateTime::parse_from_rfc3339(&self.started_at).ok()?;
        let elapsed =
            (now - started.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0;
        let rate = if elapsed > 0.0 {
            self.fetched as f64 / elapsed
        } else {
            0.0
        };
        let eta_seconds = match self.expected {
            Some(expected) if rate > 0.0 => {
                Some(((expected - self.fetched).max(0) as f64 / rate).round() as i64)
            }
            _ => None,
        };
        Some(Progress {
            fetched: self.fetched,
            expected: self.expected,
            per_second: rate,
            eta_seconds,
        })
    }
}

/// Marks the runs left `running` as `interrupted` when no process writes the mirror (a killed or
/// crashed `sync` or daemon): they are not in progress, and the next run of each entity marks them
/// so in the database too.
pub fn mark_cut_off(statuses: &mut [EntityStatus]) {
    for run in statuses.iter_mut().filter_map(|s| s.last_run.as_mut()) {
        if run.status == "running" {
            run.status = "interrupted".to_string();
            run.error = Some(
                "cut off: no process is writing the mirror; the next run continues from the saved cursor"
                    .to_string(),
            );
        }
    }
}

/// How far a running run has got (see [`RunSummary::progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Progress {
    /// Records fetched and committed so far.
    pub fetched: i64,
    /// Records expected in all, when the server reports totals.
    pub expected: Option<i64>,
    /// Records per second since the run started.
    pub per_second: f64,
    /// Seconds left at that pace, when the total is known.
    pub eta_seconds: Option<i64>,
}

/// Status of one `sync_state` key (an entity, or one klass of kobjects).
#[derive(Debug, Clone, Serialize)]
pub struct EntityStatus {
    /// `customers`, `kobjects:ecomm-order`, …
    pub entity: String,
    /// Rows not deleted (0 when read with [`Scope::Health`]).
    pub live: i64,
    /// Tombstones (0 when read with [`Scope::Health`]).
    pub deleted: i64,
    /// Records waiting in `rejected_records`.
    pub rejected: i64,
    /// search or full, once known.
    pub strategy: Option<String>,
    /// Newest `updatedAt` stored by incremental passes.
    pub cursor: Option<String>,
    /// Last successful pass.
    pub last_success_at: Option<String>,
    /// Last error, cleared by a success.
    pub last_error: Option<String>,
    /// Failed passes since the last success.
    pub consecutive_failures: i64,
    /// Seconds since the last successful pass.
    pub lag_seconds: Option<i64>,
    /// The most recent run.
    pub last_run: Option<RunSummary>,
    /// Custom attribute views of this entity that could not be built (`view: error`), from
    /// `view_problems`; the rows are stored all the same.
    pub view_problems: Vec<String>,
}

/// How much [`read_scope`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything, row counts included (`status`, `/metrics`).
    Full,
    /// `sync_state` and the runs only: what a health probe every few seconds can afford.
    Health,
}

/// Reads the status of every entity (kobjects: one entry per klass seen, or one for the table).
pub fn read(conn: &Connection) -> Result<Vec<EntityStatus>, StoreError> {
    read_scope(conn, Scope::Full)
}

/// [`read`], reading only what `scope` needs.
pub fn read_scope(conn: &Connection, scope: Scope) -> Result<Vec<EntityStatus>, StoreError> {
    let err = |e| StoreError::sqlite("reading the sync status", e);
    let mut out = Vec::new();
    let mut keys: Vec<StateKey> = Vec::new();
    for e in &ENTITIES {
        if e.per_klass() {
            // One key per klass seen; the whole entity until the first klass is synced.
            let mut stmt = conn
                .prepare(
                    "SELECT entity FROM sync_state WHERE entity LIKE ?1 || ':%' ORDER BY entity",
                )
                .map_err(err)?;
            let klass_keys = stmt
                .query_map([e.name], |r| r.get::<_, String>(0))
                .map_err(err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(err)?;
            let klass_keys: Vec<StateKey> = klass_keys
                .iter()
                .filter_map(|k| StateKey::parse(k))
                .collect();
            if klass_keys.is_empty() {
                keys.push(StateKey::entity(e));
            }
            keys.extend(klass_keys);
        } else {
            keys.push(StateKey::entity(e));
        }
    }
    for key in keys {
        out.push(read_one(conn, &key, scope).map_err(err)?);
    }
    Ok(out)
}

fn read_one(conn: &Connection, state: &StateKey, scope: Scope) -> rusqlite::Result<EntityStatus> {
    // The table name comes from ENTITIES, never from the database or the user.
    let table = state.table();
    let klass = state.klass.as_deref();
    let key = state.to_string();
    let key = key.as_str();
    let (live, deleted): (i64, i64) = match scope {
        Scope::Health => (0, 0),
        Scope::Full => conn.query_row(
            &format!(
                "SELECT COALESCE(SUM(deleted_at IS NULL), 0), COALESCE(SUM(deleted_at IS NOT NULL), 0) FROM {table} WHERE {}",
                if klass.is_some() { "klass = ?1" } else { "?1 IS NULL" }
            ),
            [klass],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?,
    };
    let rejected: i64 = conn.query_row(
        "SELECT COUNT(*) FROM rejected_records WHERE entity = ?1",
        [key],
        |r| r.get(0),
    )?;
    let view_problems = conn
        .prepare("SELECT view || ': ' || error FROM view_problems WHERE entity = ?1 ORDER BY view")?
        .query_map([key], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    type StateRow = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
        Option<i64>,
    );
    let state: Option<StateRow> = conn
        .query_row(
            "SELECT strategy, cursor, last_success_at, last_error, consecutive_failures, last_run_id FROM sync_state WHERE entity = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?;
    let (strategy, cursor, last_success_at, last_error, consecutive_failures, last_run_id) =
        state.unwrap_or((None, None, None, None, 0, None));
    let last_run = match last_run_id {
        None => None,
        Some(id) => conn
            .query_row(
                "SELECT id, mode, status, started_at, finished_at, requests, fetched, inserted, updated, unchanged, deleted, error, rejected, expected FROM sync_runs WHERE id = ?1",
                [id],
                |r| {
                    Ok(RunSummary {
                        id: r.get(0)?,
                        mode: r.get(1)?,
                        status: r.get(2)?,
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
            .optional()?,
    };
    let lag_seconds = last_success_at.as_deref().and_then(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
    });
    Ok(EntityStatus {
        entity: key.to_string(),
        live,
        deleted,
        rejected,
        strategy,
        cursor,
        last_success_at,
        last_error,
        consecutive_failures,
        lag_seconds,
        last_run,
        view_problems,
    })
}

/// Per entity and run status: how many runs, and their requests, records fetched and rows changed
/// (for `/metrics`).
#[derive(Debug, Clone)]
pub struct RunTotals {
    /// `sync_runs.entity`.
    pub entity: String,
    /// `sync_runs.status`.
    pub status: String,
    /// Runs.
    pub runs: i64,
    /// Requests.
    pub requests: i64,
    /// Records fetched.
    pub fetched: i64,
    /// Rows inserted, updated or deleted.
    pub changed: i64,
}

/// [`RunTotals`] of every entity and status, from the SQLite file.
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
                status: r.get(1)?,
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

/// A fixed-width table of `statuses` for terminals.
pub fn render_table(statuses: &[EntityStatus]) -> String {
    let mut out = format!(
        "{:<28} {:>9} {:>8} {:>8} {:<25} {:<11} {:>9} {:>8} {:>8}  {}\n",
        "ENTITY",
        "LIVE",
        "DELETED",
        "REJECTED",
        "CURSOR",
        "LAST RUN",
        "REQUESTS",
        "CHANGED",
        "LAG",
        "LAST ERROR"
    );
    for s in statuses {
        let run = s.last_run.as_ref();
        out.push_str(&format!(
            "{:<28} {:>9} {:>8} {:>8} {:<25} {:<11} {:>9} {:>8} {:>8}  {}\n",
            s.entity,
            s.live,
            s.deleted,
            s.rejected,
            s.cursor.as_deref().unwrap_or("-"),
            run.map_or("never".to_string(), |r| r.status.clone()),
            run.map_or(0, |r| r.requests),
            run.map_or(0, |r| r.inserted + r.updated + r.deleted),
            s.lag_seconds.map_or("-".to_string(), human_secs),
            s.last_error.as_deref().unwrap_or(""),
        ));
    }
    out.push_str(&render_in_progress(statuses, chrono::Utc::now()));
    let problems: Vec<(&str, &String)> = statuses
        .iter()
        .flat_map(|s| s.view_problems.iter().map(|p| (s.entity.as_str(), p)))
        .collect();
    if !problems.is_empty() {
        out.push_str("\nCustom views that could not be built (the rows are stored; retried by later syncs):\n");
        for (entity, problem) in problems {
            out.push_str(&format!("  {entity:<28} {problem}\n"));
        }
    }
    out
}

/// The runs going on now (in this process or another: the counters move with every committed
/// page), one line each with records, pace and ETA; empty when nothing runs.
pub fn render_in_progress(statuses: &[EntityStatus], now: chrono::DateTime<chrono::Utc>) -> String {
    let mut out = String::new();
    for s in statuses {
        let Some(run) = &s.last_run else { continue };
        let Some(p) = run.progress(now) else { continue };
        if out.is_empty() {
            out.push_str("\nIn progress:\n");
        }
        let of = match p.expected {
            Some(e) if e > 0 => format!(
                "{} of {} records ({:.0}%)",
                p.fetched,
                e,
                100.0 * (p.fetched as f64 / e as f64).min(1.0)
            ),
            _ => format!("{} records", p.fetched),
        };
        let eta = p.eta_seconds.map_or("ETA unknown".to_string(), |s| {
            format!("ETA {}", human_secs(s))
        });
        out.push_str(&format!(
            "  {:<28} {} run {} since {}: {of}, {:.0}/s, {eta}, {} requests\n",
            s.entity, run.mode, run.id, run.started_at, p.per_second, run.requests
        ));
    }
    out
}

/// `95` → `1m35s`.
pub fn human_secs(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}
