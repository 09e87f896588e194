//! The `sync`, `status` and `demo` commands as users run them: the real binary, real HTTP to the
//! built-in fake, real SQLite files, and Debian's `sqlite3` for the demo's printed queries.

use std::process::Command;

use crate::common::*;
use kustomer_mirror::fake::Scale;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mirrors_the_fake_and_status_reports_every_entity() {
    let server = fake(Scale::Small).await;
    let db = db();
    let mut cmd = mirror_cmd(&server.base_url(), KEY, &db.path);
    cmd.arg("sync");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_mirror_equals_fake(&db.path, &server.handle());

    let mut status = bin();
    status.args(["status", "--json", "--db"]).arg(&db.path);
    let out = output(status).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let statuses: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses = statuses.as_array().unwrap();
    let customers = statuses
        .iter()
        .find(|s| s["entity"] == "customers")
        .unwrap();
    let conn = open(&db.path);
    assert_eq!(
        customers["live"].as_i64().unwrap(),
        count(
            &conn,
            "SELECT COUNT(*) FROM customers WHERE deleted_at IS NULL"
        )
    );
    assert_eq!(customers["last_run"]["status"], "ok");
    assert!(customers["cursor"].is_string());
    assert!(
        statuses
            .iter()
            .any(|s| s["entity"].as_str().unwrap().starts_with("kobjects:"))
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(KEY));

    let mut table = bin();
    table.args(["status", "--db"]).arg(&db.path);
    let out = output(table).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("conversations"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_of_chosen_entities_touches_only_those() {
    let server = fake(Scale::Small).await;
    let db = db();
    let mut cmd = mirror_cmd(&server.base_url(), KEY, &db.path);
    cmd.args(["sync", "--entity", "tags", "--entity", "users"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let conn = open(&db.path);
    assert!(count(&conn, "SELECT COUNT(*) FROM tags") > 0);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM customers"), 0);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(DISTINCT entity) FROM sync_runs WHERE mode != 'preflight'"
        ),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_fails_the_sync_with_exit_1_and_an_actionable_message() {
    let server = fake(Scale::Small).await;
    let db = db();
    let mut cmd = mirror_cmd(&server.base_url(), "not-the-key", &db.path);
    cmd.args(["sync", "--entity", "customers"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("API key rejected (401)"), "{stderr}");
    assert!(stderr.contains("kustomer.api_key"), "{stderr}");
    assert!(!text(&out).contains("not-the-key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_entity_is_a_usage_error() {
    let db = db();
    let mut cmd = mirror_cmd("http://127.0.0.1:9", KEY, &db.path);
    cmd.args(["sync", "--entity", "customer"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown entity \"customer\""));
    assert!(
        !db.path.exists(),
        "a usage error must not create the database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_leaves_a_database_the_printed_queries_run_against() {
    let db = db();
    let mut cmd = bin();
    cmd.current_dir(db.dir.path())
        .args(["demo", "--scale", "small", "--db", "demo.db"]);
    let out = output(cmd).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout.contains("Second sync"), "{stdout}");
    // Real time: the pushed change arrives through the webhook, with no request and no sync.
    let real_time = stdout
        .lines()
        .find(|l| l.starts_with("Real time: conversation "))
        .unwrap_or_else(|| panic!("no real-time line: {stdout}"));
    assert!(
        real_time
            .contains("ms later through a signed webhook (0 API requests, no sync in between)"),
        "{real_time}"
    );
    let pushed = rusqlite::Connection::open(db.dir.path().join("demo.db"))
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM change_log c JOIN sync_runs r ON r.id = c.run_id \
             WHERE r.mode = 'webhook' AND c.entity = 'conversations' AND c.op = 'update'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap();
    assert_eq!(pushed, 1);
    let queries: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("sqlite3 "))
        .collect();
    assert_eq!(queries.len(), 3, "{stdout}");
    if Command::new("sqlite3").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI must install sqlite3");
        eprintln!("sqlite3 is not installed; skipping the query check");
        return;
    }
    for line in queries {
        let out = Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(db.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}: {}", text(&out));
        assert!(!out.stdout.is_empty(), "{line} printed nothing");
    }
}
