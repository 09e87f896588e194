//! The seam between the sync engine and where the mirror lives. [`Destination`] is what the writer
//! does with a batch (apply a page, tombstone, run bookkeeping, the first-sync bulk phase);
//! its `sqlite` and `postgres` implementations hand each call to the executor of that name, which
//! carries out the core's (`mirror`) decisions. The [`Writer`] thread owns one destination and runs
//! the engine's jobs on it, so the engine, daemon and commands never know which
//! database they write to. [`Reader`] answers `status`, `/healthz` and `/metrics` from either.
//!
//! Every method runs on the writer thread (both database clients are blocking), never on an async
//! runtime thread. The transaction rule holds in each implementation: a page's rows, change log, run
//! counters and cursor commit together or not at all.

mod postgres;
mod reader;
mod sqlite;
mod writer;

use crate::postgres::PgError;
use crate::sqlite::StoreError;
use crate::write::{Applied, Mode, Outcome, PageWrite, State};

pub use reader::Reader;
pub use writer::Writer;

/// What went wrong writing or reading the mirror, whichever database holds it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQLite file.
    #[error(transparent)]
    Sqlite(#[from] StoreError),
    /// The PostgreSQL server (boxed: its messages make it the largest error of a sync).
    #[error(transparent)]
    Postgres(Box<PgError>),
    /// A page not written because an earlier page of the same pass failed (that page's error is
    /// the one reported).
    #[error("not written: an earlier page of the same pass failed")]
    Halted,
    /// A page of a batch that failed as a whole for a reason about the database, not the page: the
    /// message is the batch's error.
    #[error("{0}")]
    Failed(String),
    /// The writer thread stopped (it panicked or was shut down) before answering.
    #[error("the database writer thread stopped unexpectedly; restart kustomer-mirror")]
    WriterGone,
    /// The operating system would not start the writer thread.
    #[error("cannot start the database writer thread: {0}")]
    Thread(std::io::Error),
}

impl Error {
    /// True when the error is about the database as a whole (unreachable, full, read-only, locked,
    /// damaged, the writer gone) rather than about what a page holds: trying the pages of a failed
    /// batch again one by one would only fail again, slowly.
    pub fn about_the_database(&self) -> bool {
        use rusqlite::ErrorCode;
        match self {
            Error::Sqlite(StoreError::Sqlite { source, .. }) => matches!(
                source.sqlite_error_code(),
                Some(
                    ErrorCode::DiskFull
                        | ErrorCode::SystemIoFailure
                        | ErrorCode::ReadOnly
                        | ErrorCode::PermissionDenied
                        | ErrorCode::CannotOpen
                        | ErrorCode::DatabaseBusy
                        | ErrorCode::DatabaseLocked
                        | ErrorCode::DatabaseCorrupt
                        | ErrorCode::NotADatabase
                        | ErrorCode::OutOfMemory
                )
            ),
            Error::Sqlite(_) => true,
            // A statement the server answered with an error may be about one page; anything else
            // (no connection after the reconnect attempts, the lock lost) is about the server.
            Error::Postgres(e) => !matches!(**e, PgError::Query { .. }),
            Error::Halted => false,
            Error::Failed(_) | Error::WriterGone | Error::Thread(_) => true,
        }
    }
}

impl From<PgError> for Error {
    fn from(e: PgError) -> Error {
        Error::Postgres(Box::new(e))
    }
}

/// What the sync engine asks of the database it writes to. See the module doc.
pub trait Destination: Send {
    /// The destination in one line for logs (a path, or a URL without its password, and schema).
    fn describe(&self) -> String;

    /// Applies `pages` in order in one transaction, each page's rows (an unchanged record writes
    /// nothing), change log, quarantined items, run counters and cursor, as `mirror::plan` and
    /// `mirror::cursor` decide. The first page is always applied; after it,
    /// pages are added only until `deadline` passes. Answers what each applied page changed, in
    /// order (fewer than `pages` when the deadline cut the batch); on error nothing committed.
    fn apply_pages(
        &mut self,
        pages: &[PageWrite],
        deadline: Option<std::time::Instant>,
    ) -> Result<Vec<Applied>, Error>;

    /// Tombstones the given ids (hard deletes confirmed by a 404).
    fn tombstone_ids(
        &mut self,
        table: &'static str,
        run_id: i64,
        ids: &[String],
    ) -> Result<u64, Error>;

    /// Starts a pass writing `table`; `true` when it is the table's first sync and the destination
    /// switched to bulk loading, in which case [`Destination::bulk_end`] must follow.
    fn bulk_begin(&mut self, table: &'static str) -> Result<bool, Error>;

    /// Ends a bulk pass; `rebuild` builds the deferred indexes now (false when stopping quickly).
    fn bulk_end(&mut self, table: &'static str, rebuild: bool) -> Result<(), Error>;

    /// Starts a `sync_runs` row of `key`; returns its id. Rows of `key` still marked running whose
    /// id is not in `live` (the runs this process has going) were left by a process that is gone:
    /// they are marked interrupted. A live pass of the same key (a sync beside a reconcile) is not.
    fn begin_run(&mut self, key: &str, mode: Mode, live: &[i64]) -> Result<i64, Error>;

    /// Ends run `run_id`, updating `sync_state`'s success and failure fields.
    fn finish_run(
        &mut self,
        key: &str,
        run_id: i64,
        mode: Mode,
        outcome: Outcome<'_>,
        requests: Option<u64>,
    ) -> Result<(), Error>;

    /// Records requests spent outside any pass as a finished `preflight` row.
    fn record_preflight(
        &mut self,
        entity: &str,
        requests: u64,
        outcome: Outcome<'_>,
    ) -> Result<(), Error>;

    /// The saved strategy and cursor of `key`.
    fn read_state(&mut self, key: &str) -> Result<State, Error>;

    /// Records the strategy `key` is synced with.
    fn set_strategy(&mut self, key: &str, strategy: crate::entity::Strategy) -> Result<(), Error>;

    /// Live ids of `table` (of `klass`) with `attributes.createdAt` as served, oldest first.
    fn live_ids_by_created(
        &mut self,
        table: &'static str,
        klass: Option<&str>,
    ) -> Result<Vec<(String, Option<String>)>, Error>;

    /// When a sync ends: rescans the custom attribute views a name may have left (every view of
    /// `tables` when `all`). Returns the views rewritten.
    fn rescan_custom_views(&mut self, tables: &[&str], all: bool) -> Result<Vec<String>, Error>;

    /// The status of every entity, as `status` shows it (the writer's own view, for `demo`).
    fn status(&mut self) -> Result<Vec<crate::status::EntityStatus>, Error>;

    /// Adds a batch of pushed events to each entity's `webhook_events` row (the last event, the
    /// counts), after the batch's pages committed.
    fn record_events(&mut self, batches: &[crate::write::EventsApplied]) -> Result<(), Error>;
}

/// Opens the destination `settings` name, creating or upgrading its schema. For PostgreSQL this
/// also takes the schema's advisory lock (waiting for the holder when `wait`).
pub fn open(
    settings: &crate::config::DatabaseSettings,
    wait: bool,
) -> Result<Box<dyn Destination>, Error> {
    match &settings.postgres {
        Some(pg) => Ok(Box::new(crate::postgres::Pg::open(pg, wait)?)),
        None => Ok(Box::new(crate::sqlite::Store::open(&settings.path)?)),
    }
}
