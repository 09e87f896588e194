//! The PostgreSQL mirror: the same tables, views and guarantees as the SQLite file (`schema.sql` here
//! is its twin), in the schema `database.schema`, written by one session that holds the schema's
//! advisory lock. Owns connecting (TLS, the errors a user can fix), upgrading the schema, and
//! reconnecting with backoff when the server restarts mid-sync; `apply`, `runs`, `bulk`, `views` and
//! `status` hold the SQL.
//!
//! The client is the blocking `postgres` crate (tokio-postgres under its own small runtime): a
//! [`Pg`] lives on the writer thread, like the SQLite store, and is never used on an async runtime
//! thread (the blocking client would panic there).

pub mod apply;
mod bulk;
mod connect;
mod error;
pub mod jsonb;
mod migrate;
pub mod runs;
mod status;
mod views;

use std::time::{Duration, Instant};

use crate::config::PgSettings;

pub use connect::APPLICATION_NAME;
pub use error::PgError;
pub use migrate::{SCHEMA_SQL, SCHEMA_VERSION, VIEWS_MARKER};
pub use status::StatusReader;

/// How long the writer keeps trying to reconnect to a server that went away before the page fails.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// How long opening waits for a lock whose holder may be a mirror that is just exiting.
const LOCK_GRACE: Duration = Duration::from_secs(3);

/// The writer's session and what it knows between pages.
pub struct Pg {
    settings: PgSettings,
    client: postgres::Client,
    state: Session,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg")
            .field("url", &self.settings.shown)
            .field("schema", &self.settings.schema)
            .finish()
    }
}

/// What the writer remembers beside the connection.
#[derive(Debug, Default)]
pub struct Session {
    /// Tables in their first sync, whose deferred indexes are dropped.
    bulk: bulk::Bulk,
    /// The custom attribute views' names.
    views: crate::mirror::views::Known,
}

impl Session {
    /// See `bulk::begin`.
    pub(crate) fn bulk_begin(
        &mut self,
        c: &mut postgres::Client,
        table: &str,
    ) -> Result<bool, postgres::Error> {
        bulk::begin(c, &mut self.bulk, table)
    }

    /// See `bulk::end`.
    pub(crate) fn bulk_end(
        &mut self,
        c: &mut postgres::Client,
        table: &str,
        rebuild: bool,
    ) -> Result<(), postgres::Error> {
        bulk::end(c, &mut self.bulk, table, rebuild)
    }

    /// See `views::rescan`.
    pub(crate) fn rescan_views(
        &mut self,
        c: &mut postgres::Client,
        tables: &[&str],
        all: bool,
    ) -> Result<Vec<String>, postgres::Error> {
        views::rescan(c, &mut self.views, tables, all)
    }
}

/// Every entity's status, on the writer's session (for `demo`).
pub fn status_of(
    c: &mut postgres::Client,
    scope: crate::status::Scope,
) -> Result<Vec<crate::status::EntityStatus>, postgres::Error> {
    status::read_in(c, scope)
}

impl Pg {
    /// Connects, takes the schema's advisory lock (waiting for its holder when `wait`), and creates
    /// or upgrades the schema.
    pub fn open(settings: &PgSettings, wait: bool) -> Result<Pg, PgError> {
        let mut client = connect::connect(settings)?;
        lock(&mut client, settings, wait)?;
        migrate::migrate(&mut client, settings)?;
        Ok(Pg {
            settings: settings.clone(),
            client,
            state: Session::default(),
        })
    }

    /// The server and schema, without the password.
    pub fn describe(&self) -> String {
        format!("{} (schema {})", self.settings.shown, self.settings.schema)
    }

    /// Runs `f` on the session. When the connection is lost (the server restarted, the network
    /// dropped), reconnects with backoff for up to a minute, takes the lock again and runs `f` again
    /// from the start: `f` must be one transaction, which either committed or left nothing.
    ///
    /// A lost connection during COMMIT is the one case where the transaction may have committed
    /// and runs again. Batches of pages avoid that: `f` then first asks whether the unanswered
    /// COMMIT took effect (`apply::committed`). Other transactions simply run again: their rows end
    /// the same, but a rerun `runs::begin_run` leaves one extra run row (marked interrupted), and
    /// a rerun that reports counts (preflight requests, tombstones) may count twice or not at all.
    pub(crate) fn with<R>(
        &mut self,
        context: &str,
        mut f: impl FnMut(&mut postgres::Client, &mut Session) -> Result<R, postgres::Error>,
    ) -> Result<R, PgError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            let lost = match f(&mut self.client, &mut self.state) {
                Ok(r) => return Ok(r),
                Err(e) if error::connection_lost(&e) || self.client.is_closed() => e,
                Err(e) => return Err(PgError::query(context, &self.settings, e)),
            };
            tracing::warn!(
                destination = %self.describe(), error = %error::explain(&lost),
                "lost the connection to PostgreSQL while {context}; reconnecting"
            );
            loop {
                if started.elapsed() > RECONNECT_FOR {
                    return Err(PgError::query(context, &self.settings, lost));
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
                match connect::connect(&self.settings) {
                    Ok(mut client) => {
                        lock_again(&mut client, &self.settings)?;
                        self.client = client;
                        // What the views know may predate a transaction that never committed.
                        self.state.views.forget();
                        tracing::info!(destination = %self.describe(), "reconnected to PostgreSQL");
                        break;
                    }
                    Err(e) if e.retryable() => {
                        tracing::debug!(error = %e, "PostgreSQL not back yet");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// The SQL name of the schema (validated at config time to need no escaping, quoted anyway).
pub(crate) fn schema_ident(settings: &PgSettings) -> String {
    crate::escape::identifier(&settings.schema)
}

/// The schema's advisory lock key: one bigint, 64 bits of a hash of the exact schema name (the
/// two-int form with `hashtext` gave two schemas one lock when their 32-bit hashes met).
pub fn lock_key(schema: &str) -> i64 {
    let hash = xxhash_rust::xxh3::xxh3_64(format!("kustomer-mirror schema {schema}").as_bytes());
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// The two halves of [`lock_key`] as `pg_locks` shows a bigint advisory lock (`classid` the high 32
/// bits, `objid` the low, `objsubid` 1), for `$1` and `$2` of [`LOCK_ROW`].
pub(crate) fn lock_halves(schema: &str) -> (i64, i64) {
    let key = u64::from_ne_bytes(lock_key(schema).to_ne_bytes());
    ((key >> 32) as i64, (key & 0xffff_ffff) as i64)
}

/// The `pg_locks l` row of the schema's lock, held, with [`lock_halves`] as `$1`, `$2`.
pub(crate) const LOCK_ROW: &str = "l.locktype = 'advisory' AND l.objsubid = 1 \
     AND l.classid::int8 = $1 AND l.objid::int8 = $2 AND l.granted \
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// After a reconnect: takes the schema's lock again. The old session may still hold it (a network
/// that dropped without a FIN leaves the backend waiting on a dead socket): a backend of the same
/// role with this very process's `application_name` holding the lock is that old session, and is
/// ended (`pg_terminate_backend`); any other holder is waited for, up to [`RECONNECT_FOR`].
fn lock_again(client: &mut postgres::Client, settings: &PgSettings) -> Result<(), PgError> {
    let err = |e| PgError::query("taking the schema's advisory lock again", settings, e);
    let key = lock_key(&settings.schema);
    let (hi, lo) = lock_halves(&settings.schema);
    let own = connect::own_application_name();
    let until = Instant::now() + RECONNECT_FOR;
    loop {
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .map_err(err)?
            .get(0);
        if got {
            return Ok(());
        }
        let ended = client
            .query(
                &format!(
                    "SELECT a.pid, pg_terminate_backend(a.pid) FROM pg_locks l \
                     JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE {LOCK_ROW} AND a.usename = current_user \
                     AND a.application_name = $3 AND a.pid <> pg_backend_pid()"
                ),
                &[&hi, &lo, &own],
            )
            .map_err(err)?;
        for row in &ended {
            let pid: i32 = row.get(0);
            tracing::warn!(
                destination = %settings.shown, pid,
                "ended this mirror's previous PostgreSQL session, which still held the schema's lock after its connection dropped"
            );
        }
        if Instant::now() >= until {
            return lock(client, settings, false);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Takes the session-level advisory lock of the schema, so two mirrors never write one schema.
fn lock(client: &mut postgres::Client, settings: &PgSettings, wait: bool) -> Result<(), PgError> {
    let err = |e| PgError::query("taking the schema's advisory lock", settings, e);
    let key = lock_key(&settings.schema);
    let (hi, lo) = lock_halves(&settings.schema);
    // A mirror that just stopped may still be closing its session: give it a moment.
    let grace = Instant::now() + LOCK_GRACE;
    loop {
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .map_err(err)?
            .get(0);
        if got {
            return Ok(());
        }
        if Instant::now() >= grace {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let holder: Option<String> = client
        .query_opt(
            &format!(
                "SELECT format('pid %s, %s@%s', a.pid, a.application_name, COALESCE(host(a.client_addr), 'local')) \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE {LOCK_ROW}"
            ),
            &[&hi, &lo],
        )
        .ok()
        .flatten()
        .map(|row| row.get(0));
    let holder = holder.unwrap_or_else(|| "unknown".to_string());
    if !wait {
        return Err(PgError::LockHeld {
            schema: settings.schema.clone(),
            server: settings.shown.clone(),
            holder,
        });
    }
    eprintln!(
        "waiting for another kustomer-mirror ({holder}) to finish writing schema {}…",
        settings.schema
    );
    client
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .map_err(err)?;
    Ok(())
}

/// `to_char` of a timestamptz column as the ISO-8601 UTC text SQLite holds
/// (`2024-10-21T14:05:40.118Z`).
pub(crate) fn iso(column: &str) -> String {
    format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
}
