//! What the mirror knows about itself, per entity: live and deleted rows, quarantined records, cursor,
//! last run and its counters, last error and lag. Read by `status`, `demo`, `/metrics` and (without
//! the row counts, which cost a scan of every table) `/healthz`. Never reads or prints anything
//! secret: the database holds no key.
//!
//! One model for every destination: [`read`] assembles it from the small reads of a [`Source`],
//! which each destination answers in its SQL; the run state is typed ([`RunState`]), and times are
//! ISO-8601 UTC text whatever the database keeps.

use serde::Serialize;

use crate::entity::{ENTITIES, StateKey};
pub use crate::write::RunState;

/// The last run of one entity.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// `sync_runs.id`.
    pub id: i64,
    /// incremental, full or reconcile.
    pub mode: String,
    /// running, ok, failed or interrupted.
    pub status: RunState,
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
        if self.status != RunState::Running {
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
        if run.status == RunState::Running {
            run.status = RunState::Interrupted;
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
    /// The last outbound-webhook event applied to this entity, and the counts since the mirror
    /// began receiving them (`None` before the first, and for entities Kustomer sends none for).
    pub webhook: Option<WebhookStatus>,
    /// Why the org or key does not offer the entity (404, 403 with the role to grant, 400), when
    /// its last probe found so; `None` while it is mirrored (or never tried).
    pub unsupported: Option<String>,
}

/// A `webhook_events` row: the last pushed event of an entity and the counts of all of them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WebhookStatus {
    /// The event name, e.g. `kustomer.conversation.update`.
    pub event: String,
    /// The event's own id, when it had one.
    pub event_id: Option<String>,
    /// The record it carried.
    pub record_id: Option<String>,
    /// When the receiver got it (RFC 3339 UTC).
    pub received_at: String,
    /// When it was committed to the mirror.
    pub applied_at: String,
    /// Events applied in all.
    pub events: i64,
    /// Of which changed a row.
    pub changed: i64,
    /// Of which were not newer than the stored row (duplicates, late deliveries).
    pub stale: i64,
    /// Of which were set aside in `rejected_records`.
    pub rejected: i64,
}

/// How much [`read`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything, row counts included (`status`, `/metrics`).
    Full,
    /// `sync_state` and the runs only: what a health probe every few seconds can afford.
    Health,
}

/// What a destination answers for [`read`], each in its own SQL and (for a consistent picture) in
/// one read transaction.
pub trait Source {
    /// The destination's error.
    type Error;

    /// The `sync_state` keys of `entity`'s klasses (`kobjects:<klass>`), in order.
    fn klass_keys(&mut self, entity: &str) -> Result<Vec<String>, Self::Error>;

    /// Live and deleted rows of `table` (of `klass`).
    fn rows(&mut self, table: &str, klass: Option<&str>) -> Result<(i64, i64), Self::Error>;

    /// Items of `key` waiting in `rejected_records`.
    fn rejected(&mut self, key: &str) -> Result<i64, Self::Error>;

    /// `view: error` of each custom view of `key` that could not be built, by view.
    fn view_problems(&mut self, key: &str) -> Result<Vec<String>, Self::Error>;

    /// The `sync_state` row of `key`.
    fn state(&mut self, key: &str) -> Result<Option<StateRow>, Self::Error>;

    /// The `sync_runs` row `id`.
    fn run(&mut self, id: i64) -> Result<Option<RunSummary>, Self::Error>;

    /// The `webhook_events` row of `table`.
    fn webhook(&mut self, table: &str) -> Result<Option<WebhookStatus>, Self::Error>;
}

/// The `sync_state` columns [`read`] shows.
#[derive(Debug, Clone, Default)]
pub struct StateRow {
    /// search or full.
    pub strategy: Option<String>,
    /// The saved cursor.
    pub cursor: Option<String>,
    /// Last successful pass (ISO-8601 UTC text).
    pub last_success_at: Option<String>,
    /// Last error.
    pub last_error: Option<String>,
    /// Failed passes since the last success.
    pub consecutive_failures: i64,
    /// The most recent run.
    pub last_run_id: Option<i64>,
    /// Why the org or key does not offer the entity, if so.
    pub unsupported: Option<String>,
}

/// The status of every entity (kobjects: one entry per klass seen, or one for the table until a
/// klass is synced), reading only what `scope` needs.
pub fn read<S: Source>(source: &mut S, scope: Scope) -> Result<Vec<EntityStatus>, S::Error> {
    let mut keys: Vec<StateKey> = Vec::new();
    for e in &ENTITIES {
        if e.per_klass() {
            let klass_keys: Vec<StateKey> = source
                .klass_keys(e.name)?
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
    let now = chrono::Utc::now();
    keys.iter()
        .map(|key| read_one(source, key, scope, now))
        .collect()
}

fn read_one<S: Source>(
    source: &mut S,
    state: &StateKey,
    scope: Scope,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<EntityStatus, S::Error> {
    // The table name comes from ENTITIES, never from the database or the user.
    let key = state.to_string();
    let (live, deleted) = match scope {
        Scope::Health => (0, 0),
        Scope::Full => source.rows(state.table(), state.klass.as_deref())?,
    };
    let rejected = source.rejected(&key)?;
    let view_problems = source.view_problems(&key)?;
    let row = source.state(&key)?.unwrap_or_default();
    let last_run = match row.last_run_id {
        Some(id) => source.run(id)?,
        None => None,
    };
    let webhook = match state.klass {
        None if state.entity.webhook_events => source.webhook(state.table())?,
        _ => None,
    };
    let lag_seconds = row.last_success_at.as_deref().and_then(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| (now - t.with_timezone(&chrono::Utc)).num_seconds())
    });
    Ok(EntityStatus {
        entity: key,
        live,
        deleted,
        rejected,
        strategy: row.strategy,
        cursor: row.cursor,
        last_success_at: row.last_success_at,
        last_error: row.last_error,
        consecutive_failures: row.consecutive_failures,
        lag_seconds,
        last_run,
        view_problems,
        webhook,
        unsupported: row.unsupported,
    })
}

/// Per entity and run status: how many runs, and their requests, records fetched and rows changed
/// (for `/metrics`).
#[derive(Debug, Clone)]
pub struct RunTotals {
    /// `sync_runs.entity`.
    pub entity: String,
    /// `sync_runs.status`.
    pub status: RunState,
    /// Runs.
    pub runs: i64,
    /// Requests.
    pub requests: i64,
    /// Records fetched.
    pub fetched: i64,
    /// Rows inserted, updated or deleted.
    pub changed: i64,
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
            // An entity the org does not offer ran "ok": say what that run found instead.
            match (run, &s.unsupported) {
                (_, Some(_)) => "unsupported".to_string(),
                (None, None) => "never".to_string(),
                (Some(r), None) => r.status.to_string(),
            },
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
    let pushed: Vec<(&str, &WebhookStatus)> = statuses
        .iter()
        .filter_map(|s| s.webhook.as_ref().map(|w| (s.entity.as_str(), w)))
        .collect();
    if !pushed.is_empty() {
        out.push_str("\nWebhooks (last event per entity; totals since the first):\n");
        for (entity, w) in pushed {
            out.push_str(&format!(
                "  {entity:<28} {} {} at {} ({} events: {} changed, {} stale, {} rejected)\n",
                w.event,
                w.record_id.as_deref().unwrap_or("-"),
                w.applied_at,
                w.events,
                w.changed,
                w.stale,
                w.rejected
            ));
        }
    }
    let unsupported: Vec<(&str, &String)> = statuses
        .iter()
        .filter_map(|s| s.unsupported.as_ref().map(|why| (s.entity.as_str(), why)))
        .collect();
    if !unsupported.is_empty() {
        out.push_str("\nNot offered by this org or API key (the rest of the mirror syncs):\n");
        for (entity, why) in unsupported {
            out.push_str(&format!("  {entity:<28} unsupported: {why}\n"));
        }
    }
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
