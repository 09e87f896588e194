//! Shared test support: a fake Kustomer on 127.0.0.1:0, an engine writing to a temp SQLite file, and
//! comparisons of the mirror with the fake's data; `pg` for private PostgreSQL servers and `process`
//! for the binary's processes (a fake-api to kill, SIGTERM, tools CI must have).
#![allow(dead_code)]

pub mod bend;
pub mod pg;
pub mod process;

#[allow(unused_imports)]
pub use process::{FakeProcess, sigterm, tool_available};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use kustomer_mirror::config::database::PgSettings;
use kustomer_mirror::config::{DatabaseSettings, Secret, SslMode};
use kustomer_mirror::destination::{Destination, Writer};
use kustomer_mirror::entity::{ENTITIES, Entity};
use kustomer_mirror::fake::{FakeHandle, FakeOptions, FakeServer, Scale};
use kustomer_mirror::kustomer::{Client, ClientOptions};
use kustomer_mirror::sqlite::Store;
use kustomer_mirror::sync::{Engine, SyncOptions, SyncReport};
use rusqlite::Connection;
use serde_json::Value;

pub const KEY: &str = "test-api-key";

/// A fake Kustomer with default options at `scale`.
pub async fn fake(scale: Scale) -> FakeServer {
    fake_with(FakeOptions::new(7, scale, KEY)).await
}

pub async fn fake_with(options: FakeOptions) -> FakeServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    FakeServer::start(listener, options).await.unwrap()
}

/// A mirror a test syncs into: a temp dir holding `mirror.db` (SQLite), or, with `pg` set, a fresh
/// database on the test binary's private PostgreSQL server (the dir then only holds side files).
pub struct Db {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub pg: Option<PgDb>,
}

/// A fresh PostgreSQL database of the shared test cluster, and the schema the mirror uses in it.
pub struct PgDb {
    pub cluster: &'static pg::Cluster,
    pub name: String,
    pub schema: String,
}

pub fn db() -> Db {
    Db::sqlite()
}

impl Db {
    /// A new SQLite file.
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror.db");
        Db {
            dir,
            path,
            pg: None,
        }
    }

    /// A new database on the shared test server; None (the test is skipped, with the reason
    /// printed) only when no PostgreSQL binaries exist and CI is unset.
    pub fn postgres() -> Option<Db> {
        let cluster = pg::shared()?;
        let name = cluster.create_database("mirror");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unused.db");
        Some(Db {
            dir,
            path,
            pg: Some(PgDb {
                cluster,
                name,
                schema: "kustomer".to_string(),
            }),
        })
    }

    /// Another new mirror of the same kind.
    pub fn another(&self) -> Db {
        if self.pg.is_some() {
            Db::postgres().unwrap()
        } else {
            Db::sqlite()
        }
    }

    /// [`Mirror::query`], or None when the mirror cannot be read yet (no file, no schema).
    pub fn try_query(&self, sql: &str) -> Option<Vec<Vec<Option<String>>>> {
        match &self.pg {
            None => {
                let conn = rusqlite::Connection::open_with_flags(
                    &self.path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .ok()?;
                let mut stmt = conn.prepare(sql).ok()?;
                let n = stmt.column_count();
                let rows = stmt
                    .query_map([], |r| {
                        Ok((0..n)
                            .map(|i| {
                                r.get::<_, Option<i64>>(i)
                                    .ok()
                                    .flatten()
                                    .map(|v| v.to_string())
                            })
                            .collect::<Vec<_>>())
                    })
                    .ok()?
                    .collect::<Result<Vec<_>, _>>()
                    .ok()?;
                Some(rows)
            }
            Some(p) => p.cluster.try_query(
                &p.name,
                &format!("SET search_path TO \"{}\"; {sql}", p.schema),
            ),
        }
    }

    /// `sqlite` or `postgres`, for messages.
    pub fn kind(&self) -> &'static str {
        if self.pg.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// The connection URL (with the test password) of a PostgreSQL mirror.
    pub fn url(&self) -> Option<String> {
        self.pg.as_ref().map(|p| p.cluster.url(&p.name))
    }

    /// The `[database]` settings naming this mirror.
    pub fn settings(&self) -> DatabaseSettings {
        match &self.pg {
            None => DatabaseSettings {
                path: self.path.clone(),
                postgres: None,
            },
            Some(p) => {
                let url = p.cluster.url(&p.name);
                DatabaseSettings {
                    path: self.path.clone(),
                    postgres: Some(PgSettings {
                        shown: kustomer_mirror::config::database::redact_url(&url),
                        url: Secret::new(url),
                        schema: p.schema.clone(),
                        sslmode: SslMode::Disable,
                        sslrootcert: None,
                        source: "tests",
                    }),
                }
            }
        }
    }

    /// The environment that points the binary at this mirror.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match &self.pg {
            None => vec![(
                "KUSTOMER_MIRROR__DATABASE__PATH",
                self.path.display().to_string(),
            )],
            Some(p) => vec![
                ("KUSTOMER_MIRROR__DATABASE__URL", p.cluster.url(&p.name)),
                ("KUSTOMER_MIRROR__DATABASE__SCHEMA", p.schema.clone()),
                ("KUSTOMER_MIRROR__DATABASE__SSLMODE", "disable".to_string()),
            ],
        }
    }
}

/// Something a test can sync into and query: a SQLite path, or a [`Db`] of either kind.
pub trait Mirror {
    /// Opens the destination (creating its schema), off any async runtime thread.
    fn destination(&self) -> Box<dyn Destination>;
    /// Runs one query; every column as text (SQLite: integers and reals printed, PostgreSQL: as
    /// it prints them), NULL as None.
    fn query(&self, sql: &str) -> Vec<Vec<Option<String>>>;
    /// Whether this is PostgreSQL.
    fn is_postgres(&self) -> bool;
    /// Runs statements that return nothing.
    fn execute(&self, sql: &str) {
        self.query(sql);
    }
}

fn sqlite_query(path: &Path, sql: &str) -> Vec<Vec<Option<String>>> {
    use rusqlite::types::ValueRef;
    let conn = open(path);
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                ValueRef::Null => None,
                ValueRef::Integer(v) => Some(v.to_string()),
                ValueRef::Real(v) => Some(v.to_string()),
                ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Some(format!("{b:?}")),
            })
            .collect())
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

impl Mirror for Path {
    fn destination(&self) -> Box<dyn Destination> {
        Box::new(Store::open(self).unwrap())
    }
    fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        sqlite_query(self, sql)
    }
    fn is_postgres(&self) -> bool {
        false
    }
}

impl Mirror for PathBuf {
    fn destination(&self) -> Box<dyn Destination> {
        self.as_path().destination()
    }
    fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        sqlite_query(self, sql)
    }
    fn is_postgres(&self) -> bool {
        false
    }
}

impl Mirror for Db {
    fn destination(&self) -> Box<dyn Destination> {
        let settings = self.settings();
        // The blocking PostgreSQL client must not run on a runtime thread: open it on its own.
        std::thread::scope(|s| {
            s.spawn(|| kustomer_mirror::destination::open(&settings, false))
                .join()
                .unwrap()
        })
        .unwrap_or_else(|e| panic!("opening the {} mirror: {e}", self.kind()))
    }
    fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match &self.pg {
            None => sqlite_query(&self.path, sql),
            Some(p) => p.cluster.query(
                &p.name,
                &format!("SET search_path TO \"{}\"; {sql}", p.schema),
            ),
        }
    }
    fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }
}

/// The first column of the first row as a number (COUNT, SUM, MAX…; NULL as 0).
pub fn scalar(m: &(impl Mirror + ?Sized), sql: &str) -> i64 {
    let rows = m.query(sql);
    let text = rows
        .first()
        .and_then(|r| r.first().cloned())
        .flatten()
        .unwrap_or_else(|| "0".into());
    text.parse()
        .unwrap_or_else(|_| panic!("{sql} gave {text:?}, not a whole number"))
}

/// Makes one test of each destination from one body: `mod <name> { fn sqlite(); fn postgres(); }`.
/// The body gets `db: Db`. PostgreSQL cases skip (printing why) only when the server binaries are
/// missing outside CI.
#[macro_export]
macro_rules! on_every_destination {
    ($(#[$attr:meta])* async fn $name:ident($db:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(#[$attr])*
            async fn sqlite() {
                let $db = $crate::common::Db::sqlite();
                $body
            }
            $(#[$attr])*
            async fn postgres() {
                let Some($db) = $crate::common::Db::postgres() else {
                    return;
                };
                $body
            }
        }
    };
}

/// Client options for tests: no long backoffs.
pub fn quick_client() -> ClientOptions {
    ClientOptions {
        max_attempts: 1,
        ..ClientOptions::default()
    }
}

/// An engine syncing `server` into `mirror`.
pub fn engine(
    server: &FakeServer,
    mirror: &(impl Mirror + ?Sized),
    options: SyncOptions,
) -> Engine {
    engine_with(server, mirror, options, quick_client())
}

pub fn engine_with(
    server: &FakeServer,
    mirror: &(impl Mirror + ?Sized),
    options: SyncOptions,
    client: ClientOptions,
) -> Engine {
    let client = Client::new(&server.base_url(), KEY, client).unwrap();
    let writer = Writer::spawn_boxed(mirror.destination()).unwrap();
    Engine::new(Arc::new(client), writer, options)
}

pub fn all() -> Vec<&'static Entity> {
    ENTITIES.iter().collect()
}

/// Syncs everything once and asserts it succeeded.
pub async fn sync_ok(engine: &Engine) -> SyncReport {
    let report = engine.run(&all()).await;
    let errors: Vec<_> = report
        .passes
        .iter()
        .filter_map(|p| p.error.clone())
        .collect();
    assert!(errors.is_empty(), "sync failed: {errors:?}");
    report
}

pub fn open(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

/// The SQL giving a row's exact JSON text: `data` in SQLite; in PostgreSQL the canonical text kept
/// when jsonb cannot hold the record value for value, else jsonb's own text.
pub fn data_sql(m: &(impl Mirror + ?Sized)) -> &'static str {
    if m.is_postgres() {
        "COALESCE(data_exact, data::text)"
    } else {
        "data"
    }
}

/// id → (data, deleted_at as text) of a table.
pub fn rows(m: &(impl Mirror + ?Sized), table: &str) -> HashMap<String, (Value, Option<String>)> {
    m.query(&format!(
        "SELECT id, {}, deleted_at FROM {table}",
        data_sql(m)
    ))
    .into_iter()
    .map(|mut r| {
        let deleted_at = r.pop().unwrap();
        let data = r.pop().unwrap().unwrap();
        let id = r.pop().unwrap().unwrap();
        (id, (serde_json::from_str(&data).unwrap(), deleted_at))
    })
    .collect()
}

fn is_deleted(v: &Value) -> bool {
    v.pointer("/attributes/deleted").and_then(Value::as_bool) == Some(true)
}

/// The mirror equals the fake: every upstream record present with semantically equal `data`,
/// `deleted_at` set exactly for records deleted upstream, and every other row a tombstone.
pub fn assert_mirror_equals_fake(m: &(impl Mirror + ?Sized), fake: &FakeHandle) {
    for entity in ENTITIES {
        assert_table_equals_fake(m, fake, entity.name);
    }
}

/// One table of the mirror equals the fake's records of that entity (see
/// [`assert_mirror_equals_fake`]).
pub fn assert_table_equals_fake(m: &(impl Mirror + ?Sized), fake: &FakeHandle, table: &str) {
    {
        let local = rows(m, table);
        let upstream = fake.records(table);
        let mut seen = 0;
        for record in &upstream {
            let id = record["id"].as_str().unwrap();
            let Some((data, deleted_at)) = local.get(id) else {
                panic!("{table} {id} is missing from the mirror");
            };
            assert_eq!(data, record, "{table} {id} differs");
            assert_eq!(
                deleted_at.is_some(),
                is_deleted(record),
                "{table} {id}: deleted_at {deleted_at:?}"
            );
            seen += 1;
        }
        let ids: std::collections::HashSet<&str> =
            upstream.iter().map(|r| r["id"].as_str().unwrap()).collect();
        for (id, (_, deleted_at)) in &local {
            if !ids.contains(id.as_str()) {
                assert!(
                    deleted_at.is_some(),
                    "{table} {id} is gone upstream but live in the mirror"
                );
            }
        }
        assert_eq!(seen, upstream.len());
    }
}

/// No change is logged twice (same record, op and source version).
pub fn assert_no_duplicate_log_rows(m: &(impl Mirror + ?Sized)) {
    let dups = scalar(
        m,
        "SELECT COUNT(*) FROM (SELECT 1 FROM change_log GROUP BY entity, record_id, op, source_updated_at, changes HAVING COUNT(*) > 1) AS d",
    );
    assert_eq!(dups, 0, "duplicate change_log rows");
}

/// The records not marked deleted.
pub fn live(records: Vec<Value>) -> Vec<Value> {
    records
        .into_iter()
        .filter(|r| r["attributes"]["deleted"] != true)
        .collect()
}

/// The column names of a table or view.
pub fn columns(conn: &Connection, table: &str) -> Vec<String> {
    conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

pub fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Runs a sync of everything and drops it mid-way, as a killed process would: once `pages` pages
/// have been reported stored, the run's future is dropped and so is the engine.
pub async fn kill_after_pages(engine: Engine, pages: u64) {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    let counter = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stop = Mutex::new(Some(stop));
    let stoppable = engine.with_progress(Arc::new(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == pages
            && let Some(stop) = stop.lock().unwrap().take()
        {
            let _ = stop.send(());
        }
    }));
    let entities = all();
    tokio::select! {
        _ = stoppable.run(&entities) => panic!("the sync should have been stopped"),
        _ = stopped => {}
    }
}

/// The built binary, with a clean environment (PATH only) and warnings-only logs.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kustomer-mirror"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn");
    cmd
}

/// The binary pointed at `base_url` with `key` and database `db`, with request budgets far above
/// what the fake needs (the defaults would only slow tests down). Add the subcommand.
pub fn mirror_cmd(base_url: &str, key: &str, db: &Path) -> Command {
    let mut cmd = bin();
    cmd.env("KUSTOMER_MIRROR__DATABASE__PATH", db);
    mirror_cmd_on(cmd, base_url, key)
}

/// `mirror_cmd` for a [`Db`] of either kind.
pub fn mirror_cmd_db(base_url: &str, key: &str, db: &Db) -> Command {
    let mut cmd = bin();
    cmd.envs(db.env());
    mirror_cmd_on(cmd, base_url, key)
}

fn mirror_cmd_on(mut cmd: Command, base_url: &str, key: &str) -> Command {
    cmd.env("KUSTOMER_MIRROR__KUSTOMER__BASE_URL", base_url)
        .env("KUSTOMER_API_KEY", key)
        .env("KUSTOMER_MIRROR__SYNC__REQUESTS_PER_MINUTE", "100000")
        .env("KUSTOMER_MIRROR__SYNC__SEARCH_REQUESTS_PER_MINUTE", "10000");
    cmd
}

/// `mirror_cmd(…) sync`.
pub fn sync_cmd(base_url: &str, key: &str, db: &Path) -> Command {
    let mut cmd = mirror_cmd(base_url, key, db);
    cmd.arg("sync");
    cmd
}

/// Runs `cmd` to the end off the async runtime's threads.
pub async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// stdout and stderr of a finished command.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
