//! Shared test support: a fake Kustomer on 127.0.0.1:0, an engine writing to a temp SQLite file, and
//! comparisons of the mirror with the fake's data.
#![allow(dead_code)]

pub mod pg;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use kustomer_mirror::entity::{ENTITIES, Entity};
use kustomer_mirror::fake::{FakeHandle, FakeOptions, FakeServer, Scale};
use kustomer_mirror::kustomer::{Client, ClientOptions};
use kustomer_mirror::store::{Store, Writer};
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

/// A temp dir holding `mirror.db`.
pub struct Db {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.db");
    Db { dir, path }
}

/// Client options for tests: no long backoffs.
pub fn quick_client() -> ClientOptions {
    ClientOptions {
        max_attempts: 1,
        ..ClientOptions::default()
    }
}

/// An engine syncing `server` into `path`.
pub fn engine(server: &FakeServer, path: &Path, options: SyncOptions) -> Engine {
    engine_with(server, path, options, quick_client())
}

pub fn engine_with(
    server: &FakeServer,
    path: &Path,
    options: SyncOptions,
    client: ClientOptions,
) -> Engine {
    let client = Client::new(&server.base_url(), KEY, client).unwrap();
    let writer = Writer::spawn(Store::open(path).unwrap()).unwrap();
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

/// id → (data, deleted_at) of a table.
pub fn rows(conn: &Connection, table: &str) -> HashMap<String, (Value, Option<String>)> {
    let mut stmt = conn
        .prepare(&format!("SELECT id, data, deleted_at FROM {table}"))
        .unwrap();
    stmt.query_map([], |r| {
        let data: String = r.get(1)?;
        Ok((
            r.get::<_, String>(0)?,
            (serde_json::from_str(&data).unwrap(), r.get(2)?),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn is_deleted(v: &Value) -> bool {
    v.pointer("/attributes/deleted").and_then(Value::as_bool) == Some(true)
}

/// The mirror equals the fake: every upstream record present with semantically equal `data`,
/// `deleted_at` set exactly for records deleted upstream, and every other row a tombstone.
pub fn assert_mirror_equals_fake(path: &Path, fake: &FakeHandle) {
    let conn = open(path);
    for entity in ENTITIES {
        let table = entity.name;
        let local = rows(&conn, table);
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
pub fn assert_no_duplicate_log_rows(path: &Path) {
    let conn = open(path);
    let dups: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM (SELECT 1 FROM change_log GROUP BY entity, record_id, op, source_updated_at, changes HAVING COUNT(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
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
    cmd.env("KUSTOMER_MIRROR__KUSTOMER__BASE_URL", base_url)
        .env("KUSTOMER_API_KEY", key)
        .env("KUSTOMER_MIRROR__DATABASE__PATH", db)
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
