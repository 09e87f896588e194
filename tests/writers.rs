//! Processes sharing a mirror, as users run them: one writer at a time (a second one exits 1 naming
//! the first, or waits with `--wait`; a SIGKILLed holder leaves no stale lock), and the requests a
//! sync records add up to the requests the server counted. The real binary against the fake.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use kustomer_mirror::fake::{Faults, Scale};

/// Waits until `check` holds (polling), or fails naming `what`.
async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_is_refused_or_waits_and_a_killed_holder_leaves_no_lock() {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    // Every answer takes 300 ms, so the first writer is still at work while the others start.
    fake.set_faults(Faults {
        slow: 1.0,
        slow_delay: Duration::from_millis(300),
        ..Faults::default()
    });
    let db = db();
    let lock_file = kustomer_mirror::sqlite::lock::lock_path(&db.path);
    let mut first = sync_cmd(&server.base_url(), KEY, &db.path);
    first.stdout(Stdio::null()).stderr(Stdio::null());
    let mut holder = first.spawn().unwrap();
    let pid = holder.id().to_string();
    wait_until("the first sync holds the lock", || {
        std::fs::read_to_string(&lock_file).is_ok_and(|t| t.trim() == pid)
    })
    .await;

    // A second writer is refused at once with one line naming the first.
    let started = Instant::now();
    let out = output(sync_cmd(&server.base_url(), KEY, &db.path)).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "another kustomer-mirror (pid {pid}) is writing {}",
            db.path.display()
        )) && said.contains("stop it or wait"),
        "{said}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        holder.try_wait().unwrap().is_none(),
        "the first sync ended too soon for the test"
    );

    // Readers are never blocked: status answers while the writer writes.
    wait_until("the first sync has stored a page", || {
        rusqlite::Connection::open_with_flags(&db.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| {
                c.query_row("SELECT COALESCE(SUM(fetched), 0) FROM sync_runs", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .is_ok_and(|n| n > 0)
    })
    .await;
    let mut status = bin();
    status.args(["status", "--db"]).arg(&db.path);
    let out = output(status).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // With --wait, a second writer waits; killing the holder (no clean-up at all) lets it in.
    let mut second = sync_cmd(&server.base_url(), KEY, &db.path);
    second
        .arg("--wait")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut waiting = second.spawn().unwrap();
    let stderr = waiting.stderr.take().unwrap();
    let first_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stderr).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(
        first_line.contains(&format!("waiting for kustomer-mirror (pid {pid})")),
        "{first_line}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    fake.set_faults(Faults::default());
    let status = tokio::task::spawn_blocking(move || waiting.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_mirror_equals_fake(&db.path, &fake);
    assert_no_duplicate_log_rows(&db.path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_sync_runs_equal_the_requests_the_server_counted() {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    // Some answers fail and are retried: retries are requests too.
    fake.set_faults(Faults {
        server_error: 0.05,
        ..Faults::default()
    });
    let db = db();
    let recorded = |db: &std::path::Path| -> i64 {
        count(
            &open(db),
            "SELECT COALESCE(SUM(requests), 0) FROM sync_runs",
        )
    };
    fake.reset_stats();
    let out = output(sync_cmd(&server.base_url(), KEY, &db.path)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let served = fake.stats();
    assert!(
        served.served_5xx > 0,
        "no fault was injected; raise the rate"
    );
    assert_eq!(recorded(&db.path), served.requests as i64, "after a sync");
    let conn = open(&db.path);
    let preflights: Vec<String> = conn
        .prepare("SELECT entity FROM sync_runs WHERE mode = 'preflight' ORDER BY entity")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // The access check, the companies and work sessions probes of a first sync, and klass
    // discovery.
    assert_eq!(
        preflights,
        ["access", "companies", "kobjects", "work_sessions"]
    );

    let before = recorded(&db.path);
    fake.reset_stats();
    let mut full = sync_cmd(&server.base_url(), KEY, &db.path);
    full.arg("--full");
    let out = output(full).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        recorded(&db.path) - before,
        fake.stats().requests as i64,
        "after sync --full"
    );
}
