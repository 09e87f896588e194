//! The SQLite mirror: opening the database file (WAL, busy timeout, schema upgrades) and the one writer
//! connection every sync goes through (as a [`crate::destination::Destination`]).
//!
//! rusqlite is blocking: a [`Store`] is owned by one thread at a time and never held across `.await`.
//! BI tools read the same file concurrently; WAL mode keeps them from blocking the writer and vice versa.

pub mod apply;
pub mod bulk;
mod checkpoint;
pub mod lock;
mod migrate;
pub mod mode;
pub mod runs;
pub mod status;
pub mod views;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use lock::{LockError, WriterLock};
pub use migrate::{SCHEMA_SQL, SCHEMA_VERSION, VIEWS_MARKER, views_sql};

/// Now as the ISO-8601 UTC text every timestamp column holds (`2024-10-21T14:05:40.118Z`).
pub fn now_iso() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// How long a statement waits for a lock held by another connection (a BI tool's long read in a
/// non-WAL moment, a checkpoint) before failing with "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// What can go wrong with the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened or created.
    #[error(
        "cannot open the database {path}: {source}; check that the directory exists and that this user may write to it (database.path)"
    )]
    Open {
        /// The database path as configured.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file holds a schema newer than this binary knows.
    #[error(
        "the database {path} has schema version {found}, newer than this kustomer-mirror supports ({supported}); upgrade kustomer-mirror or point database.path at another file"
    )]
    TooNew {
        /// The database path.
        path: PathBuf,
        /// `PRAGMA user_version` found in the file.
        found: u32,
        /// The newest version this binary knows.
        supported: u32,
    },
    /// The file is an SQLite database, but not one written by kustomer-mirror.
    #[error(
        "the database {path} already holds tables that kustomer-mirror did not create ({table}, …); point database.path at a new or kustomer-mirror file"
    )]
    Foreign {
        /// The database path.
        path: PathBuf,
        /// One of the foreign tables.
        table: String,
    },
    /// Creating or upgrading the schema failed; the transaction was rolled back.
    #[error("upgrading the database {path} from schema version {from} to {to} failed: {source}")]
    Migrate {
        /// The database path.
        path: PathBuf,
        /// Version before.
        from: u32,
        /// Version aimed at.
        to: u32,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// Any other SQLite error, with what the store was doing.
    #[error("database error while {context}: {source}{}", hint(source))]
    Sqlite {
        /// What the store was doing.
        context: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
}

/// What to do about the SQLite errors a user can fix.
fn hint(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => {
            "; the disk holding database.path is full: free space and run again (the pages in flight were rolled back and will be fetched again)"
        }
        Some(ErrorCode::ReadOnly)
        | Some(ErrorCode::PermissionDenied)
        | Some(ErrorCode::CannotOpen) => {
            "; this user cannot write the database file or its directory (database.path): fix the permissions"
        }
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            "; another process holds a write lock on the database for too long: is a second kustomer-mirror writing to the same file?"
        }
        Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
            "; the file is damaged or not a database: restore it or point database.path at a new file (a full sync rebuilds the mirror)"
        }
        _ => "",
    }
}

impl StoreError {
    /// Wraps a SQLite error with what the store was doing at the time.
    pub fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> Self {
        StoreError::Sqlite {
            context: context.into(),
            source,
        }
    }
}

/// The size, in bytes, the kept `-wal` file is cut back to after a checkpoint resets it.
const JOURNAL_SIZE_LIMIT: u64 = 64 << 20;

/// The writer's page cache in KiB: big enough for the hot index pages of large tables, small enough
/// to keep the process well under 100 MB.
pub const CACHE_KIB: u32 = 32_000;

/// The mirror database: one writer connection, schema at [`SCHEMA_VERSION`].
#[derive(Debug)]
pub struct Store {
    /// Background checkpoints, started with the first page written (`None` before, or when the
    /// writer's own autocheckpoints do all of it). Declared before `conn` so it closes first: the
    /// writer's connection, closing last, checkpoints and cuts the `-wal` file back to the size
    /// limit.
    checkpoint: Option<checkpoint::Checkpointer>,
    /// Whether starting the checkpoint thread was tried (it is not retried after a failure).
    checkpoint_tried: bool,
    conn: Connection,
    path: PathBuf,
    /// Tables in their first sync, whose indexes are deferred.
    bulk: bulk::Bulk,
    /// The custom attribute views' names, kept up to date page by page.
    views: crate::mirror::views::Known,
}

/// Keeps the `-wal` and `-shm` files when the writer closes. A reader that may not create files in
/// the database's directory (a BI tool's user in the mirror's group, with the directory 0750) can
/// open a WAL database read-only only while both files exist; SQLite would otherwise delete them
/// at the last close, and the next reader between two syncs would fail to open the file.
fn persist_wal(conn: &Connection) {
    let mut on: std::ffi::c_int = 1;
    // SAFETY: the handle is this live connection's; "main" is a NUL-terminated database name;
    // SQLITE_FCNTL_PERSIST_WAL takes a pointer to an int that lives for the call.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&raw mut on).cast(),
        )
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        tracing::warn!(
            code = rc,
            "cannot keep the -wal and -shm files between syncs; readers without write access to the directory may fail to open the mirror while no sync runs"
        );
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, switches it to WAL mode with a busy timeout,
    /// and creates or upgrades the schema to [`SCHEMA_VERSION`] in one transaction.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        // Created 0640 whatever the umask: a mirror of customers' PII is never world-readable.
        mode::create(&path).map_err(|e| StoreError::Open {
            path: path.clone(),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot create the database file: {e}")),
            ),
        })?;
        let conn = Connection::open_with_flags(&path, flags).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        conn.execute_batch("PRAGMA page_size = 8192")
            .map_err(open_err)?;
        // WAL: BI readers never block the writer. The pragma answers with the mode in force; a read-only
        // or unwritable location surfaces here as an error rather than later mid-sync.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(journal_mode = %mode, "database did not switch to WAL mode; readers may block syncs");
        }
        persist_wal(&conn);
        // The kept -wal file is cut back to 64 MiB after checkpoints instead of staying at its
        // largest size for good.
        conn.execute_batch(&format!("PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}"))
            .map_err(open_err)?;
        // NORMAL is safe in WAL mode: a power loss may lose the last commits but never corrupts, and a
        // page's rows and cursor commit together, so a lost commit is simply fetched again.
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 8000;",
        )
        .map_err(open_err)?;
        conn.execute_batch(&format!("PRAGMA cache_size = -{CACHE_KIB}"))
            .map_err(open_err)?;
        let mut store = Store {
            conn,
            path,
            bulk: bulk::Bulk::default(),
            views: crate::mirror::views::Known::default(),
            checkpoint: None,
            // Only a WAL database has checkpoints to run.
            checkpoint_tried: !mode.eq_ignore_ascii_case("wal"),
        };
        migrate::migrate(&mut store.conn, &store.path)?;
        Ok(store)
    }

    /// Says a transaction committed pages: starts the checkpoint thread the first time (a store
    /// opened only to read, as `status` does, never starts it) and wakes it.
    fn committed(&mut self) {
        if !self.checkpoint_tried {
            self.checkpoint_tried = true;
            self.checkpoint = checkpoint::Checkpointer::start(&self.path);
        }
        if let Some(checkpoint) = &self.checkpoint {
            checkpoint.poke();
        }
    }

    /// The database path this store was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer connection, for the modules that own the SQL (sync, status).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// When a sync ends: rescans the custom views a name may have left, or every view of `tables`
    /// when `all` (see [`views`]). Returns the views rewritten.
    pub fn rescan_custom_views(
        &mut self,
        tables: &[&str],
        all: bool,
    ) -> Result<Vec<String>, StoreError> {
        views::rescan(&self.conn, &mut self.views, tables, all)
    }

    /// The writer connection, mutably (transactions need `&mut`).
    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The schema version recorded in the file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        migrate::user_version(&self.conn)
            .map_err(|e| StoreError::sqlite("reading the schema version", e))
    }
}
