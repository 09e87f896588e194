//! A stop is prompt and quiet: SIGTERM to `run` while its passes wait for a rate-limit window, or
//! back off between retries against a server that died, exits 0 within 2 s and logs no ERROR line.
//! (The daemon's graceful stop between pages, with a resume that ends equal to the fake, is in
//! tests/daemon.rs on both destinations; what these tests stop is waiting, not writing, so SQLite
//! alone serves.)

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use kustomer_mirror::fake::Scale;

/// The daemon as systemd runs it, logging JSON lines (as under the journal) at INFO.
fn daemon(base_url: &str, db: &Db, extra: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kustomer-mirror"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUSTOMER_MIRROR__KUSTOMER__BASE_URL", base_url)
        .env("KUSTOMER_API_KEY", KEY)
        .envs(db.env())
        .env("KUSTOMER_MIRROR__LOG__FORMAT", "json")
        .env("KUSTOMER_MIRROR__LOG__LEVEL", "info")
        .envs(
            extra
                .iter()
                .map(|(k, v)| (format!("KUSTOMER_MIRROR__{k}"), v.to_string())),
        )
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends SIGTERM and returns the exit code, the time to exit and everything the daemon logged.
async fn terminate(child: Child) -> (Option<i32>, Duration, String) {
    sigterm(&child);
    let sent = Instant::now();
    tokio::task::spawn_blocking(move || {
        let out = child.wait_with_output().unwrap();
        let took = sent.elapsed();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), took, log)
    })
    .await
    .unwrap()
}

/// The log lines at ERROR level (JSON lines carry `"level":"ERROR"`; anything else that says ERROR
/// counts too).
/// A count from the mirror, or -1 while the file or its tables do not exist yet.
fn count(db: &Db, sql: &str) -> i64 {
    db.try_query(sql)
        .and_then(|rows| rows.first()?.first()?.clone())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

fn errors(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("ERROR")).collect()
}

fn assert_prompt_and_quiet(code: Option<i32>, took: Duration, log: &str) {
    assert_eq!(code, Some(0), "{log}");
    assert!(
        took < Duration::from_secs(2),
        "the daemon took {took:?} to stop:\n{log}"
    );
    assert!(
        errors(log).is_empty(),
        "a normal stop logged errors:\n{}",
        errors(log).join("\n")
    );
    assert!(
        log.contains("shutdown requested"),
        "the stop was not logged:\n{log}"
    );
    assert!(!log.contains("abandoning"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_rate_limit_wait_exits_0_within_2s_without_errors() {
    let server = fake(Scale::Medium).await;
    let fake = server.handle();
    let db = Db::sqlite();
    // Three searches a minute: the passes spend them at once and then wait tens of seconds for
    // the next window.
    let child = daemon(
        &server.base_url(),
        &db,
        &[
            ("SYNC__PAGE_SIZE", "100"),
            ("SYNC__SEARCH_REQUESTS_PER_MINUTE", "3"),
            ("SYNC__REQUESTS_PER_MINUTE", "20"),
            ("SYNC__CONCURRENCY", "4"),
        ],
    );
    let started = Instant::now();
    while fake.stats().search_requests < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the daemon never spent its search budget"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let every pass reach its wait: no request for a whole second (list passes may still spend
    // the org budget for a moment on a slow machine).
    let waiting = Instant::now();
    loop {
        let before = fake.stats().requests;
        tokio::time::sleep(Duration::from_secs(1)).await;
        if fake.stats().requests == before {
            break;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "the passes never settled into a wait"
        );
    }
    let (code, took, log) = terminate(child).await;
    assert_prompt_and_quiet(code, took, &log);
    assert!(
        log.contains("interrupted"),
        "no pass said it was interrupted:\n{log}"
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM sync_runs WHERE status = 'running'"
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_retry_backoff_against_a_dead_server_exits_0_within_2s_without_errors() {
    let mut server = FakeProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_kustomer-mirror")),
        KEY,
        "small",
        &[],
    );
    let url = server.url.clone();
    let db = Db::sqlite();
    // A pass every two seconds; a failed request waits 30 s before its next try.
    let child = daemon(
        &url,
        &db,
        &[
            ("SYNC__SCHEDULE", "*/2 * * * * *"),
            ("KUSTOMER__RETRY_BACKOFF", "30s"),
            ("KUSTOMER__MAX_RETRIES", "5"),
        ],
    );
    let started = Instant::now();
    while count(
        &db,
        "SELECT COUNT(*) FROM sync_runs WHERE status = 'ok' AND entity = 'messages'",
    ) < 1
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the first pass never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // The next tick's passes find the server gone and back off.
    let died = Instant::now();
    while count(
        &db,
        "SELECT COUNT(*) FROM sync_runs WHERE status = 'running'",
    ) < 1
    {
        assert!(
            died.elapsed() < Duration::from_secs(10),
            "no pass started after the server died"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, took, log) = terminate(child).await;
    assert_prompt_and_quiet(code, took, &log);
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM sync_runs WHERE status = 'running'"
        ),
        0,
        "{log}"
    );
    assert!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM sync_runs WHERE status = 'interrupted'"
        ) >= 1,
        "{log}"
    );
}
