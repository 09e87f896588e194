//! A long sync can be watched: on a terminal (a pty from `script`), live bars per entity with the
//! totals search reports, records/s and ETA, and the rate budgets' use; without one, a log line per
//! running entity every `log.progress_interval`; `--quiet` prints nothing on success. Another
//! process sees a sync in progress: `status` shows its counters moving page by page with an ETA, and
//! the daemon's `/metrics` has gauges for the records fetched by running passes and their totals.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use kustomer_mirror::fake::{Faults, Scale};

/// A fake whose every answer takes `delay`, so a medium sync lasts a few seconds.
async fn slow_fake(delay: u64) -> kustomer_mirror::fake::FakeServer {
    let server = fake(Scale::Medium).await;
    server.handle().set_faults(Faults {
        slow: 1.0,
        slow_delay: Duration::from_millis(delay),
        ..Faults::default()
    });
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_terminal_sync_logs_a_progress_line_per_entity_every_interval() {
    let server = slow_fake(40).await;
    let db = Db::sqlite();
    let mut cmd = mirror_cmd_db(&server.base_url(), KEY, &db);
    cmd.env("RUST_LOG", "info")
        .env("KUSTOMER_MIRROR__LOG__PROGRESS_INTERVAL", "300ms")
        .env("KUSTOMER_MIRROR__LOG__FORMAT", "json")
        .arg("sync");
    let out = output(cmd).await;
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["message"] == "progress")
        .collect();
    let for_messages: Vec<&serde_json::Value> =
        lines.iter().filter(|v| v["entity"] == "messages").collect();
    assert!(
        for_messages.len() >= 2,
        "expected periodic progress lines for messages:\n{log}"
    );
    for line in &for_messages {
        for field in [
            "fetched",
            "expected",
            "percent",
            "per_second",
            "eta",
            "budget",
        ] {
            assert!(!line[field].is_null(), "{field} missing from {line}\n{log}");
        }
        assert!(
            line["budget"].as_str().unwrap().contains("search"),
            "{line}"
        );
    }
    // Counters grow from line to line.
    let fetched: Vec<u64> = for_messages
        .iter()
        .map(|l| l["fetched"].as_u64().unwrap())
        .collect();
    assert!(fetched.windows(2).all(|w| w[0] <= w[1]), "{fetched:?}");
    assert!(fetched.last() > fetched.first(), "{fetched:?}");
    // Once a pass ends, what it expected is what it fetched: the last query's total is exact.
    // (`fetched` counts served items, boundary re-reads included, independently of the estimate.)
    let runs = db.query(
        "SELECT entity, fetched, expected FROM sync_runs \
         WHERE mode = 'incremental' ORDER BY entity",
    );
    assert!(!runs.is_empty());
    for run in &runs {
        assert_eq!(run[1], run[2], "{run:?}");
    }
    // And what it fetched is the fake's rows plus one re-read boundary record per further page.
    let messages = runs
        .iter()
        .find(|r| r[0].as_deref() == Some("messages"))
        .unwrap();
    let served: i64 = messages[1].as_deref().unwrap().parse().unwrap();
    assert!(
        (30_000..30_000 + 70).contains(&served),
        "messages: {served} served for 30,000 rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_prints_nothing_on_success_and_the_error_on_failure() {
    let server = fake(Scale::Small).await;
    let db = Db::sqlite();
    let mut cmd = mirror_cmd_db(&server.base_url(), KEY, &db);
    cmd.env("RUST_LOG", "info").args(["sync", "--quiet"]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out), "", "--quiet printed something");
    assert_mirror_equals_fake(&db, &server.handle());
    // A wrong key: exit 1 and the error, nothing else.
    let mut cmd = mirror_cmd_db(&server.base_url(), "wrong-key", &db);
    cmd.env("RUST_LOG", "info").args(["sync", "--quiet"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains(" INFO "), "{err}");
}

/// Quotes `s` for `sh -c`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_sync_draws_bars_with_totals_pace_eta_and_budgets() {
    if !tool_available("script", "the progress bar test gives sync a terminal") {
        return;
    }
    let server = slow_fake(40).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mirror.db");
    let recording = dir.path().join("typescript");
    let inner = format!("{} sync", sh_quote(env!("CARGO_BIN_EXE_kustomer-mirror")));
    let mut cmd = Command::new("script");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "150")
        .env("LINES", "50")
        .env("KUSTOMER_MIRROR__KUSTOMER__BASE_URL", server.base_url())
        .env("KUSTOMER_API_KEY", KEY)
        .env("KUSTOMER_MIRROR__DATABASE__PATH", &db)
        .env("KUSTOMER_MIRROR__SYNC__REQUESTS_PER_MINUTE", "100000")
        .env("KUSTOMER_MIRROR__SYNC__SEARCH_REQUESTS_PER_MINUTE", "10000")
        .args(["-qfec", &inner])
        .arg(&recording)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", text(&out));
    let raw = std::fs::read(&recording).unwrap();
    let screen = String::from_utf8_lossy(&raw);
    // Without the escape sequences that redraw the bars.
    let plain: String = {
        let mut out = String::new();
        let mut chars = screen.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for d in chars.by_ref() {
                        if d.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
                continue;
            }
            out.push(c);
        }
        out
    };
    let bar_for_messages = plain
        .split(['\n', '\r'])
        .find(|l| l.contains("messages") && l.contains('[') && l.contains("ETA"));
    assert!(
        bar_for_messages.is_some(),
        "no live bar with a total and an ETA for messages:\n{plain}"
    );
    let bar = bar_for_messages.unwrap();
    assert!(bar.contains("/s"), "{bar}");
    // `fetched/total` as numbers.
    assert!(
        bar.split_whitespace().any(|w| {
            let mut parts = w.split('/');
            matches!((parts.next(), parts.next()), (Some(a), Some(b)) if a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok())
        }),
        "{bar}"
    );
    assert!(
        plain.contains("rate budget in use: org"),
        "no budget line:\n{plain}"
    );
    // Several entities at once, each on its own line, and a final ✓ line per entity.
    assert!(plain.contains("✓ messages"), "{plain}");
    assert!(plain.contains("✓ customers"), "{plain}");
    // The summary follows on stdout (the terminal here).
    assert!(plain.contains("records"), "{plain}");
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// (fetched, line) of `messages` in `status`'s "In progress" section, if it is there.
fn in_progress(status: &str) -> Option<(u64, String)> {
    let section = status.split("In progress:").nth(1)?;
    let line = section
        .lines()
        .find(|l| l.trim_start().starts_with("messages "))?;
    let fetched = line
        .split(": ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((fetched, line.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics_show_a_sync_in_progress_in_another_process() {
    let server = slow_fake(150).await;
    let db = Db::sqlite();
    let port = free_port();
    let mut daemon = KillOnDrop(Some(
        mirror_cmd_db(&server.base_url(), KEY, &db)
            .env("KUSTOMER_MIRROR__SYNC__PAGE_SIZE", "100")
            .env("KUSTOMER_MIRROR__HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let status = || {
        let out = bin()
            .args(["status", "--db"])
            .arg(&db.path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let started = Instant::now();
    let (first, line) = loop {
        if let Some(found) = in_progress(&status()).filter(|(n, _)| *n > 0) {
            break found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "status never showed messages in progress:\n{}",
            status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(line.contains(" of "), "no total: {line}");
    assert!(line.contains("ETA "), "no ETA: {line}");
    assert!(line.contains("/s"), "no pace: {line}");
    // The counters move page by page.
    let moved = Instant::now();
    loop {
        let (now, _) = in_progress(&status()).expect("still in progress");
        if now > first {
            break;
        }
        assert!(
            moved.elapsed() < Duration::from_secs(10),
            "the counters did not move"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // /metrics: the running passes' records and their totals.
    let body = reqwest_get(port, "/metrics").await;
    let value = |name: &str| -> Option<f64> {
        body.lines()
            .find(|l| l.starts_with(name) && l.contains("entity=\"messages\""))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let fetched = value("kustomer_mirror_pass_records_fetched{");
    let expected = value("kustomer_mirror_pass_records_expected{");
    assert!(fetched.is_some_and(|f| f > 0.0), "{body}");
    assert!(
        expected.is_some_and(|e| e >= fetched.unwrap_or(0.0)),
        "{body}"
    );
    assert!(
        body.contains("kustomer_mirror_rate_budget_used_ratio{budget=\"search\"}"),
        "{body}"
    );
    let mut child = daemon.0.take().unwrap();
    sigterm(&child);
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap().code())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

/// A child process killed if the test fails before it stops it.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A plain HTTP/1.0 GET on 127.0.0.1:`port`, the body.
async fn reqwest_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

on_every_destination! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_run_cut_off_by_kill_9_as_interrupted_not_in_progress(db) {
    let server = slow_fake(150).await;
    let mut sync = KillOnDrop(Some(
        mirror_cmd_db(&server.base_url(), KEY, &db)
            .env("KUSTOMER_MIRROR__SYNC__PAGE_SIZE", "100")
            .arg("sync")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let status = |json: bool| {
        let mut cmd = mirror_cmd_db(&server.base_url(), KEY, &db);
        cmd.arg("status");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // While the sync runs, its run is in progress (the writer is seen alive).
    let started = Instant::now();
    while in_progress(&status(false)).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "status never showed the sync in progress:\n{}",
            status(false)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut child = sync.0.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // The database still says running; status knows nobody writes and says interrupted.
    assert!(
        scalar(&db, "SELECT COUNT(*) FROM sync_runs WHERE status = 'running'") >= 1
    );
    let started = Instant::now();
    loop {
        let text = status(false);
        if !text.contains("In progress:") {
            break;
        }
        // PostgreSQL may take a moment to end the killed process's session and its lock.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a killed sync still shows in progress:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let json: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    let messages = json
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entity"] == "messages")
        .unwrap();
    assert_eq!(messages["last_run"]["status"], "interrupted", "{messages}");
    assert!(
        messages["last_run"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("cut off")),
        "{messages}"
    );
}
}
