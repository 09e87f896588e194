//! What the sync engine hands a destination to write, and what it answers: one page of records
//! ([`PageWrite`]) with its cursor, the counts of what applying it changed ([`Applied`]), and the run
//! bookkeeping types ([`Mode`], [`Outcome`], [`State`]). Shared by every destination (`store` for
//! SQLite, `pg` for PostgreSQL) and the engine; knows no SQL.

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
}

impl Applied {
    /// Adds another page's outcome.
    pub fn add(&mut self, other: Applied) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.deleted += other.deleted;
        self.rejected += other.rejected;
    }

    /// Rows written (inserted, updated or deleted).
    pub fn changed(&self) -> u64 {
        self.inserted + self.updated + self.deleted
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
}

impl Mode {
    /// The text stored in `sync_runs.mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Incremental => "incremental",
            Mode::Full => "full",
            Mode::Reconcile => "reconcile",
            Mode::Preflight => "preflight",
        }
    }
}

/// The saved state of one entity (or one klass of kobjects).
#[derive(Debug, Clone, Default)]
pub struct State {
    /// `search` or `full`, once known.
    pub strategy: Option<String>,
    /// Where the next incremental pass starts (before the overlap is applied).
    pub cursor: Option<Cursor>,
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
}

impl<'a> Outcome<'a> {
    /// The `sync_runs.status` and `error` this outcome is recorded with.
    pub fn status_and_error(self) -> (&'static str, Option<&'a str>) {
        match self {
            Outcome::Ok => ("ok", None),
            Outcome::Failed(e) => ("failed", Some(e)),
            Outcome::Interrupted => ("interrupted", Some("stopped by shutdown")),
        }
    }
}

impl Cursor {
    /// The cursor to save when `self` (a page's) meets the saved `(at, ids)` of its entity: the
    /// later instant wins (never back), the same instant keeps both id lists. Instants are compared
    /// parsed, so `…:00Z` and `…:00.500Z` order by time, and a saved text that is not a timestamp
    /// gives way. `key` names the entity in the warning about damaged ids.
    pub fn merged(&self, key: &str, saved: Option<(String, String)>) -> (String, String) {
        use crate::record::time;
        match saved {
            Some((old, old_ids)) if time::later(&old, &self.at) => (old, old_ids),
            Some((old, old_ids)) if time::same(&old, &self.at) => {
                let mut ids = cursor_ids(key, &old_ids);
                for id in &self.ids {
                    if !ids.contains(id) {
                        ids.push(id.clone());
                    }
                }
                (self.at.clone(), serde_json::Value::from(ids).to_string())
            }
            _ => (
                self.at.clone(),
                serde_json::Value::from(self.ids.clone()).to_string(),
            ),
        }
    }
}

/// Reads `sync_state.cursor_ids`. A damaged value (hand-edited, or written by something else) is
/// logged and read as no ids: the next pass then re-reads the records at the cursor's timestamp
/// instead of skipping them, which stores nothing twice (they are unchanged), so no data is lost.
pub fn cursor_ids(key: &str, text: &str) -> Vec<String> {
    match serde_json::from_str(text) {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(
                entity = key, cursor_ids = text, error = %e,
                "sync_state.cursor_ids is not a JSON array of ids; the records at the cursor will be read again"
            );
            Vec::new()
        }
    }
}
