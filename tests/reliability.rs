//! Rate limits, faults, kills and storage trouble: the mirror stays equal to the source, nothing is
//! logged twice, secrets never leak, and every failure ends in one actionable message.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use kustomer_mirror::destination::Writer;
use kustomer_mirror::fake::{FakeOptions, Faults, RateLimit, Scale};
use kustomer_mirror::kustomer::{Budget, Client, ClientOptions, Limiter};
use kustomer_mirror::sqlite::Store;
use kustomer_mirror::sync::{Engine, SyncOptions};

fn limited_engine(
    base: &str,
    mirror: &(impl Mirror + ?Sized),
    org: Budget,
    search: Budget,
    page_size: u32,
) -> Engine {
    let client = Client::new(
        base,
        KEY,
        ClientOptions {
            backoff: Duration::from_millis(20),
            ..ClientOptions::default()
        },
    )
    .unwrap()
    .with_limiter(Arc::new(Limiter::new(org, search)));
    let writer = Writer::spawn_boxed(mirror.destination()).unwrap();
    Engine::new(
        Arc::new(client),
        writer,
        SyncOptions {
            page_size,
            ..SyncOptions::default()
        },
    )
}

on_every_destination! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limiter_within_the_fakes_budget_gets_no_429_and_survives_another_client(db) {
    let window = Duration::from_secs(1);
    let mut opts = FakeOptions::new(11, Scale::Small, KEY);
    opts.rate_limit = Some(RateLimit {
        requests: 60,
        window,
    });
    opts.search_rate_limit = Some(RateLimit {
        requests: 40,
        window,
    });
    let server = fake_with(opts).await;
    let fake = server.handle();
    let org = Budget {
        requests: 60,
        window,
    };
    let search = Budget {
        requests: 40,
        window,
    };
    let engine = limited_engine(&server.base_url(), &db, org, search, 25);
    sync_ok(&engine).await;
    let stats = fake.stats();
    assert!(
        stats.search_requests > 40,
        "the sync must need more than one window ({} searches)",
        stats.search_requests
    );
    assert_eq!(stats.served_429, 0);
    assert_mirror_equals_fake(&db, &fake);

    // Another integration spends the org budget now and then: 429s, waits, and still a full mirror.
    fake.update_many("messages", 400);
    for at in [3, 9, 15] {
        fake.on_request(at, Box::new(|f| f.spend_budget(1_000)));
    }
    let db2 = db.another();
    let engine = limited_engine(&server.base_url(), &db2, org, search, 25);
    sync_ok(&engine).await;
    assert!(fake.stats().served_429 > 0);
    assert_mirror_equals_fake(&db2, &fake);
    assert_no_duplicate_log_rows(&db2);
}
}

on_every_destination! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_fault_kind_at_a_few_percent_reruns_end_in_an_equal_mirror(db) {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    fake.set_faults(Faults {
        server_error: 0.03,
        empty_body_error: 0.03,
        truncated_json: 0.03,
        slow: 0.03,
        slow_delay: Duration::from_millis(30),
        dropped_connection: 0.03,
        expired_token: 0.01,
    });
    let engine = limited_engine(
        &server.base_url(),
        &db,
        Budget::per_minute(100_000),
        Budget::per_minute(100_000),
        50,
    );
    let mut runs = 0;
    loop {
        runs += 1;
        let report = engine.run(&all()).await;
        if report.ok() {
            break;
        }
        for error in report.passes.iter().filter_map(|p| p.error.as_deref()) {
            assert!(
                error.contains("Expired token")
                    || error.contains("server error")
                    || error.contains("cannot reach")
                    || error.contains("malformed"),
                "unclear error: {error}"
            );
        }
        assert!(runs < 10, "ten runs did not get through");
        fake.update_many("conversations", 5);
    }
    assert!(fake.stats().faults_injected > 0);
    fake.set_faults(Faults::default());
    sync_ok(&engine).await;
    assert_mirror_equals_fake(&db, &fake);
    assert_no_duplicate_log_rows(&db);
}
}

/// The highest `sync_runs.id` in the mirror (0 before the first run).
fn stored_runs(db: &Db) -> i64 {
    db.try_query("SELECT COALESCE(MAX(id), 0) FROM sync_runs")
        .and_then(|rows| rows.first()?.first()?.clone())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Records fetched (and committed) by runs after `run_id`, read as a reader would.
fn fetched_since(db: &Db, run_id: i64) -> i64 {
    db.try_query(&format!(
        "SELECT COALESCE(SUM(fetched), 0) FROM sync_runs WHERE id > {run_id}"
    ))
    .and_then(|rows| rows.first()?.first()?.clone())
    .and_then(|v| v.parse().ok())
    .unwrap_or(0)
}

on_every_destination! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_again_and_again_ends_equal_with_an_intact_database(db) {
    let server = fake(Scale::Medium).await;
    let fake = server.handle();
    // Random moments, reproducible from the printed seed.
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
        });
    eprintln!("kill moments from KILL_SEED={seed}");
    let mut state = seed | 1;
    // Each round is killed once the records it has stored pass a random threshold (the whole
    // organisation is about 61,000 records), read from the live database as a reader would. Progress
    // rather than wall time: the moment falls inside the sync however fast the machine is.
    let thresholds: Vec<i64> = (0..5)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            200 + (state % 50_000) as i64
        })
        .collect();
    for (round, threshold) in thresholds.into_iter().enumerate() {
        let before = stored_runs(&db);
        let mut cmd = mirror_cmd_db(&server.base_url(), KEY, &db);
        cmd.arg("sync");
        cmd.env("KUSTOMER_MIRROR__SYNC__PAGE_SIZE", "100")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            if fetched_since(&db, before) >= threshold {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // SIGKILL: no chance to clean up.
        let _ = child.kill();
        let _ = child.wait();
        if round == 2 {
            fake.update_many("conversations", 50);
        }
    }
    let mut last = mirror_cmd_db(&server.base_url(), KEY, &db);
    last.arg("sync");
    let out = output(last).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_mirror_equals_fake(&db, &fake);
    assert_no_duplicate_log_rows(&db);
    if !db.is_postgres() {
        assert_eq!(db.query("PRAGMA integrity_check")[0][0].as_deref(), Some("ok"));
    }
    let runs: Vec<String> = db
        .query("SELECT entity || ' ' || mode || ' ' || status FROM sync_runs")
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    assert!(
        scalar(&db,
            "SELECT COUNT(*) FROM sync_runs WHERE status = 'interrupted'"
        ) >= 1,
        "{runs:#?}"
    );
    let inserts = scalar(&db, "SELECT COUNT(*) FROM change_log WHERE op = 'insert'");
    let rows = scalar(&db, "SELECT COUNT(*) FROM customers")
        + scalar(&db, "SELECT COUNT(*) FROM messages");
    assert!(inserts >= rows);
    assert_eq!(
        scalar(&db,
            "SELECT COUNT(*) FROM (SELECT record_id FROM change_log WHERE op = 'insert' GROUP BY entity, record_id HAVING COUNT(*) > 1) AS twice"
        ),
        0,
        "a record inserted twice"
    );
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_appears_in_no_log_line_error_status_or_row() {
    let secret_key = "sk-live-0123456789abcdef";
    let mut opts = FakeOptions::new(4, Scale::Small, secret_key);
    opts.rate_limit = Some(RateLimit {
        requests: 100_000,
        window: Duration::from_secs(60),
    });
    let server = fake_with(opts).await;
    server.handle().set_faults(Faults {
        server_error: 0.05,
        ..Faults::default()
    });
    let db = db();
    let mut cmd = sync_cmd(&server.base_url(), secret_key, &db.path);
    cmd.env("RUST_LOG", "trace");
    let out = output(cmd).await;
    let printed = text(&out);
    assert!(
        printed.lines().count() > 100,
        "trace logging should be verbose"
    );
    assert!(
        !printed.contains(secret_key),
        "the key leaked into the output"
    );
    assert!(!printed.contains("0123456789abcdef"));
    // A wrong key's error does not echo it either.
    let mut wrong = sync_cmd(&server.base_url(), "sk-wrong-fedcba9876543210", &db.path);
    wrong.env("RUST_LOG", "trace");
    let out = output(wrong).await;
    assert!(!text(&out).contains("fedcba9876543210"));
    let mut status = bin();
    status.args(["status", "--json", "--db"]).arg(&db.path);
    let out = output(status).await;
    assert!(!text(&out).contains(secret_key));
    // No row of any table.
    let conn = open(&db.path);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for table in tables {
        let cols: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_xinfo('{table}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for col in cols {
            let hits = count(
                &conn,
                &format!(
                    "SELECT COUNT(*) FROM \"{table}\" WHERE instr(CAST(\"{col}\" AS TEXT), 'sk-live') > 0"
                ),
            );
            assert_eq!(hits, 0, "{table}.{col}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_url_or_host_ends_in_one_message_exit_1_and_no_database() {
    let server = fake(Scale::Small).await;
    let cases = [
        (server.base_url(), "wrong-key", "API key rejected (401)"),
        (
            format!("{}/not-kustomer", server.base_url()),
            KEY,
            "does not look like Kustomer's API",
        ),
        (
            "http://127.0.0.1:1".to_string(),
            KEY,
            "cannot reach Kustomer at http://127.0.0.1:1",
        ),
    ];
    for (base, key, expected) in cases {
        let db = db();
        let mut cmd = sync_cmd(&base, key, &db.path);
        cmd.env("RUST_LOG", "error");
        let out = output(cmd).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{base}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains(expected), "{stderr}");
        assert!(
            errors[0].contains("kustomer.") || errors[0].contains("check"),
            "not actionable: {stderr}"
        );
        assert!(!db.path.exists(), "the database was created");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_database_path_is_a_clear_error() {
    let server = fake(Scale::Small).await;
    let db = db();
    let path = db.dir.path().join("missing-dir").join("mirror.db");
    let out = output(sync_cmd(&server.base_url(), KEY, &path)).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("missing-dir") && stderr.contains("database.path"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_cleanly_and_the_next_run_recovers() {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let db = db();
    {
        let store = Store::open(&db.path).unwrap();
        let pages: i64 = store
            .conn()
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        store
            .conn()
            .execute_batch(&format!("PRAGMA max_page_count = {}", pages + 40))
            .unwrap();
        let client = Client::new(&server.base_url(), KEY, quick_client()).unwrap();
        let engine = Engine::new(
            Arc::new(client),
            Writer::spawn(store).unwrap(),
            SyncOptions::default(),
        );
        let report = engine.run(&all()).await;
        assert!(!report.ok());
        let error = report.passes.iter().find_map(|p| p.error.clone()).unwrap();
        assert!(error.contains("full"), "{error}");
        assert!(error.contains("free space"), "{error}");
    }
    let conn = open(&db.path);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    let engine = engine(&server, &db.path, SyncOptions::default());
    sync_ok(&engine).await;
    assert_mirror_equals_fake(&db.path, &fake);
    assert_no_duplicate_log_rows(&db.path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bi_tool_holding_a_long_read_transaction_does_not_block_syncs() {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let db = db();
    let engine = engine(&server, &db.path, SyncOptions::default());
    sync_ok(&engine).await;
    let reader = open(&db.path);
    reader.execute_batch("BEGIN").unwrap();
    let before = count(&reader, "SELECT COUNT(*) FROM customers");
    fake.update_many("customers", 20);
    for _ in 0..3 {
        fake.insert("customers", None);
    }
    sync_ok(&engine).await;
    // The reader keeps its snapshot until it ends its transaction, then sees the new rows.
    assert_eq!(count(&reader, "SELECT COUNT(*) FROM customers"), before);
    reader.execute_batch("COMMIT").unwrap();
    assert_eq!(count(&reader, "SELECT COUNT(*) FROM customers"), before + 3);
    assert_mirror_equals_fake(&db.path, &fake);
}
