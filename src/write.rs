//! What the sync engine hands a destination to write, and what it answers: one page of records
//! ([`PageWrite`]) with its cursor, the counts of what applying it changed ([`Applied`]), and the run
//! bookkeeping types ([`Mode`], [`Outcome`], [`RunState`], [`State`]). Shared by every destination (`sqlite` for
//! SQLite, `postgres` for PostgreSQL) and the engine; knows no SQL.

use crate::record::{Record, Rejected};

/// Where an incremental read has got to: the newest `updatedAt` stored and the ids stored at exactly
/// that timestamp (so a resume with no overlap skips them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cursor {
    /// ISO-8601 UTC `updatedAt`.
    pub at: String,
    /// Ids already stored whose `updatedAt` equals `at`.
    pub ids: Vec<String>,
}

/// One page to apply.
#[derive(Debug, Clone)]
pub struct PageWrite {
    /// Entity table, e.g. `customers`.
    pub table: &'static str,
    /// `sync_state` key: the table name, or `kobjects:<klass>`.
    pub state_key: String,
    /// The klass name, for kobjects.
    pub klass: Option<String>,
    /// The run these changes belong to.
    pub run_id: i64,
    /// Records to upsert (already filtered of ones seen earlier in this run).
    pub records: Vec<Record>,
    /// Items of the page that could not be decoded, for `rejected_records`.
    pub rejected: Vec<Rejected>,
    /// Which request served the page (`search page 3 from <anchor>`, a list link), for
    /// `rejected_records.page`.
    pub source: String,
    /// HTTP requests spent on this page, for the run's counters.
    pub requests: u64,
    /// Records fetched on this page, including skipped ones.
    pub fetched: u64,
    /// The cursor after this page, when the read is incremental; never moves backwards.
    pub cursor: Option<Cursor>,
    /// Items the whole run is expected to fetch, as far as the server's totals tell; recorded in
    /// `sync_runs.expected` for progress and ETAs (`None` leaves the recorded value).
    pub expected: Option<u64>,
    /// True for records a webhook pushed: each is applied only when it is newer than the stored
    /// row (`mirror::fresh`), so a duplicate or a late, older delivery changes nothing. Polled pages
    /// are the source of truth and are applied as served.
    pub only_newer: bool,
}

/// What applying writes changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// New rows.
    pub inserted: u64,
    /// Rows whose content changed (deletes not included).
    pub updated: u64,
    /// Rows seen with identical content: nothing written.
    pub unchanged: u64,
    /// Rows that became tombstones.
    pub deleted: u64,
    /// Items set aside in `rejected_records` (undecodable, or refused by the database).
    pub rejected: u64,
    /// Pushed records older than (or as old as) the stored row, left alone (`only_newer` pages);
    /// counted in `unchanged` too.
    pub stale: u64,
}

impl Applied {
    /// Adds another page's outcome.
    pub fn add(&mut self, other: Applied) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.deleted += other.deleted;
        self.rejected += other.rejected;
        self.stale += other.stale;
    }

    /// Rows written (inserted, updated or deleted).
    pub fn changed(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }
}

/// Where a run is, as recorded in `sync_runs.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Going on now (or left by a process that died: see [`RunState::parse`]'s callers).
    Running,
    /// Completed.
    Ok,
    /// Ended with an error.
    Failed,
    /// Stopped by a shutdown, or found cut off.
    Interrupted,
}

impl RunState {
    /// The text stored in `sync_runs.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Ok => "ok",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        }
    }

    /// Reads `sync_runs.status`; a text no version wrote (hand-edited) reads as failed.
    pub fn parse(text: &str) -> RunState {
        match text {
            "running" => RunState::Running,
            "ok" => RunState::Ok,
            "interrupted" => RunState::Interrupted,
            _ => RunState::Failed,
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kind of pass, as recorded in `sync_runs.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Search from the cursor.
    Incremental,
    /// Read everything (full refresh, or a first/forced read).
    Full,
    /// Hard-delete reconcile.
    Reconcile,
    /// Requests spent outside any pass (access check, klass discovery, strategy probe).
    Preflight,
    /// Records pushed by Kustomer's outbound webhooks while the daemon runs: one run per daemon
    /// start under the key `webhooks`, whose change-log rows are the pushed changes.
    Webhook,
}

impl Mode {
    /// The text stored in `sync_runs.mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Incremental => "incremental",
            Mode::Full => "full",
            Mode::Reconcile => "reconcile",
            Mode::Preflight => "preflight",
            Mode::Webhook => "webhook",
        }
    }
}

/// The saved state of one entity (or one klass of kobjects).
#[derive(Debug, Clone, Default)]
pub struct State {
    /// `Search` or `FullRefresh`, once an entity that may use either is known to use one.
    pub strategy: Option<crate::entity::Strategy>,
    /// Where the next incremental pass starts (before the overlap is applied).
    pub cursor: Option<Cursor>,
    /// Why the org or key does not offer the entity, when its last probe said so.
    pub unsupported: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Completed.
    Ok,
    /// Failed with this message.
    Failed(&'a str),
    /// Stopped by a shutdown between pages: neither a success nor a failure of the entity.
    Interrupted,
    /// The org or key does not offer the entity (404, 403 or 400 on its first request), for this
    /// reason: the run is ok, and the entity is marked unsupported rather than failed.
    Unsupported(&'a str),
}

impl<'a> Outcome<'a> {
    /// The `sync_runs.status` and `error` this outcome is recorded with.
    pub fn status_and_error(self) -> (RunState, Option<&'a str>) {
        match self {
            Outcome::Ok => (RunState::Ok, None),
            Outcome::Failed(e) => (RunState::Failed, Some(e)),
            Outcome::Interrupted => (RunState::Interrupted, Some("stopped by shutdown")),
            Outcome::Unsupported(why) => (RunState::Ok, Some(why)),
        }
    }
}

/// What a batch of pushed events did to one entity, for its `webhook_events` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsApplied {
    /// The entity's table.
    pub table: &'static str,
    /// The batch's last event name.
    pub event: String,
    /// Its id, when it had one.
    pub event_id: Option<String>,
    /// The record it carried, when it could be read.
    pub record_id: Option<String>,
    /// When the receiver got it (normal RFC 3339 text).
    pub received_at: String,
    /// Events in the batch.
    pub events: u64,
    /// Of which changed a row.
    pub changed: u64,
    /// Of which were not newer than their row.
    pub stale: u64,
    /// Of which were set aside.
    pub rejected: u64,
}
