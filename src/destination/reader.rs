//! [`Reader`]: answers `status`, `/healthz` and `/metrics` from either destination through a
//! connection of its own, never the writer's, so a reader never waits for a sync (SQLite's WAL; in
//! PostgreSQL, plain reads take no lock a writer waits on). Blocking: call it off the async runtime.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::Error;
use crate::config::DatabaseSettings;
use crate::postgres::StatusReader;
use crate::sqlite::StoreError;
use crate::status::{EntityStatus, RunTotals, Scope};

/// Reads the mirror's status. Cheap to keep: PostgreSQL's connection is opened on first use and
/// reopened after an error.
#[derive(Debug)]
pub enum Reader {
    /// The SQLite file, opened read-only per read.
    Sqlite(PathBuf),
    /// The PostgreSQL schema.
    Postgres(Box<Mutex<StatusReader>>),
}

impl Reader {
    /// A reader of the destination `settings` name.
    pub fn new(settings: &DatabaseSettings) -> Reader {
        match &settings.postgres {
            Some(pg) => Reader::Postgres(Box::new(Mutex::new(StatusReader::new(pg.clone())))),
            None => Reader::Sqlite(settings.path.clone()),
        }
    }

    /// Every entity's status (row counts only with [`Scope::Full`]), and with `Scope::Full` the run
    /// totals of `/metrics`.
    pub fn read(&self, scope: Scope) -> Result<(Vec<EntityStatus>, Vec<RunTotals>), Error> {
        match self {
            Reader::Sqlite(path) => {
                let conn = read_only(path)?;
                let totals = match scope {
                    Scope::Full => crate::sqlite::status::run_totals(&conn)?,
                    Scope::Health => Vec::new(),
                };
                Ok((crate::sqlite::status::read(&conn, scope)?, totals))
            }
            Reader::Postgres(reader) => {
                // A poisoned lock only means an earlier read panicked mid-way; the reader reconnects
                // after any error, so its state is safe to reuse.
                let mut reader = reader.lock().unwrap_or_else(|p| p.into_inner());
                Ok(reader.read(scope)?)
            }
        }
    }
}

impl Reader {
    /// Whether a writer (`sync`, `run`, `demo`) holds the mirror now; `None` when it cannot be told.
    /// A run left `running` with no writer was cut off (the next run marks it interrupted).
    pub fn writer_active(&self) -> Option<bool> {
        match self {
            Reader::Sqlite(path) => crate::sqlite::lock::held(path),
            Reader::Postgres(reader) => reader
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .writer_active(),
        }
    }
}

fn read_only(path: &PathBuf) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::sqlite("opening the database read-only", e))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| StoreError::sqlite("setting the busy timeout", e))?;
    Ok(conn)
}
