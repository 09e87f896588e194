//! The daemon (`run`) against the built-in fake: ticks pick up changes, SIGTERM stops it cleanly
//! between pages, `/healthz` follows failures and recovery, `/metrics` is Prometheus text that
//! matches `sync_runs`.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use kustomer_mirror::config::Settings;
use kustomer_mirror::fake::{Faults, Scale};

fn settings(base: &str, db: &Db, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = [
        ("KUSTOMER_MIRROR__KUSTOMER__BASE_URL", base.to_string()),
        ("KUSTOMER_API_KEY", KEY.to_string()),
    ]
    .into_iter()
    .chain(db.env())
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in extra {
        env.insert(format!("KUSTOMER_MIRROR__{k}"), v.to_string());
    }
    Settings::load_from(None, &env).unwrap()
}

struct Daemon {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), kustomer_mirror::daemon::DaemonError>>,
    addr: Option<std::net::SocketAddr>,
}

async fn start(settings: Settings, http: bool) -> Daemon {
    let client = kustomer_mirror::commands::client(&settings).unwrap();
    // Opening a PostgreSQL destination blocks: not on a runtime thread.
    let engine = std::thread::scope(|s| {
        s.spawn(|| kustomer_mirror::commands::engine(&settings, client, false, false))
            .join()
            .unwrap()
    })
    .unwrap();
    let listener = if http {
        Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
    } else {
        None
    };
    let addr = listener.as_ref().map(|l| l.local_addr().unwrap());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(kustomer_mirror::daemon::run(
        settings, engine, listener, shutdown,
    ));
    Daemon { stop, task, addr }
}

impl Daemon {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the daemon did not stop");
        result.unwrap().unwrap();
    }
}

async fn until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every entity's latest run finished ok (and all eleven entities have run).
fn first_pass_done(db: &Db) -> bool {
    let q = |sql: &str| -> i64 {
        db.try_query(sql)
            .and_then(|rows| rows.first()?.first()?.clone())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1)
    };
    let keys = q("SELECT COUNT(*) FROM sync_state WHERE last_run_id IS NOT NULL");
    let not_ok = q(
        "SELECT COUNT(*) FROM sync_state s LEFT JOIN sync_runs r ON r.id = s.last_run_id WHERE s.last_run_id IS NOT NULL AND (r.status IS NULL OR r.status <> 'ok')",
    );
    keys >= 11 && not_ok == 0
}

on_every_destination! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_picks_up_upstream_changes_within_two_ticks(db) {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let every_second = "* * * * * *";
    let daemon = start(
        settings(
            &server.base_url(),
            &db,
            &[
                ("SYNC__SCHEDULE", every_second),
                ("SYNC__FULL_REFRESH_SCHEDULE", every_second),
            ],
        ),
        false,
    )
    .await;
    until("the first pass", Duration::from_secs(20), async || {
        first_pass_done(&db)
    })
    .await;
    let changed = fake.update_many("conversations", 5);
    let tag = fake.insert("tags", None);
    let changed_at = Instant::now();
    until("the changes", Duration::from_secs(10), async || {
        let n: i64 = changed
            .iter()
            .map(|id| {
                let data = db.query(&format!(
                    "SELECT {} FROM conversations WHERE id = '{id}'",
                    data_sql(&db)
                ))[0][0]
                    .clone()
                    .unwrap();
                let v: serde_json::Value = serde_json::from_str(&data).unwrap();
                i64::from(v == fake.record("conversations", id).unwrap())
            })
            .sum();
        let tag_there = scalar(&db,
            &format!("SELECT COUNT(*) FROM tags WHERE id = '{tag}'"),
        ) == 1;
        n == 5 && tag_there
    })
    .await;
    // Two ticks of a one-second schedule, with room for a shared machine.
    assert!(
        changed_at.elapsed() < Duration::from_secs(4),
        "took {:?}",
        changed_at.elapsed()
    );
    daemon.stop().await;
    assert_mirror_equals_fake(&db, &fake);
    assert_eq!(
        scalar(&db,
            "SELECT COUNT(*) FROM sync_runs WHERE status = 'running'"
        ),
        0
    );
}
}

on_every_destination! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_sync_exits_0_and_the_next_start_continues(db) {
    let server = fake(Scale::Medium).await;
    let fake = server.handle();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_kustomer-mirror"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUSTOMER_MIRROR__KUSTOMER__BASE_URL", server.base_url())
            .env("KUSTOMER_API_KEY", KEY)
            .envs(db.env())
            .env("KUSTOMER_MIRROR__SYNC__PAGE_SIZE", "100")
            .env("KUSTOMER_MIRROR__SYNC__REQUESTS_PER_MINUTE", "100000")
            .env("KUSTOMER_MIRROR__SYNC__SEARCH_REQUESTS_PER_MINUTE", "10000")
            .env("KUSTOMER_MIRROR__SYNC__SCHEDULE", "0 0 0 1 1 *")
            .env(
                "KUSTOMER_MIRROR__SYNC__FULL_REFRESH_SCHEDULE",
                "0 0 0 1 1 *",
            )
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let child = spawn();
    until("pages being written", Duration::from_secs(20), async || {
        db.try_query("SELECT COUNT(*) FROM messages")
            .and_then(|r| r.first()?.first()?.clone())
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|n| n > 500)
    })
    .await;
    sigterm(&child);
    let stopped = Instant::now();
    let code = tokio::task::spawn_blocking(move || {
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0), "{}", code.1);
    assert!(stopped.elapsed() < Duration::from_secs(25));
    if !db.is_postgres() {
        assert_eq!(db.query("PRAGMA integrity_check")[0][0].as_deref(), Some("ok"));
    }
    assert_eq!(
        scalar(&db,
            "SELECT COUNT(*) FROM sync_runs WHERE status = 'running'"
        ),
        0
    );
    assert!(
        scalar(&db,
            "SELECT COUNT(*) FROM sync_runs WHERE status = 'interrupted'"
        ) >= 1
    );
    let partial = scalar(&db, "SELECT COUNT(*) FROM messages");
    assert!(
        partial < fake.count("messages") as i64,
        "the stop came too late to test anything"
    );
    // The next start continues and completes.
    let mut child = spawn();
    until(
        "the second start's first pass",
        Duration::from_secs(60),
        async || first_pass_done(&db),
    )
    .await;
    sigterm(&child);
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap().code())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    assert_mirror_equals_fake(&db, &fake);
    assert_no_duplicate_log_rows(&db);
}
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

on_every_destination! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_turns_503_while_kustomer_fails_and_200_after_it_recovers(db) {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let every_second = "* * * * * *";
    let daemon = start(
        settings(
            &server.base_url(),
            &db,
            &[
                ("SYNC__SCHEDULE", every_second),
                ("SYNC__FULL_REFRESH_SCHEDULE", every_second),
                ("SYNC__FAILURE_BACKOFF", "200ms"),
                ("KUSTOMER__MAX_RETRIES", "0"),
                ("HTTP__MAX_CONSECUTIVE_FAILURES", "2"),
            ],
        ),
        true,
    )
    .await;
    let addr = daemon.addr.unwrap();
    until("the first pass", Duration::from_secs(20), async || {
        first_pass_done(&db)
    })
    .await;
    assert_eq!(get(addr, "/healthz").await.0, 200);
    fake.set_faults(Faults {
        server_error: 1.0,
        ..Faults::default()
    });
    let mut body = String::new();
    until("503", Duration::from_secs(20), async || {
        let (status, text) = get(addr, "/healthz").await;
        body = text;
        status == 503
    })
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "unhealthy");
    assert!(v["entities"][0]["entity"].is_string(), "{body}");
    assert!(
        v["entities"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("server error"),
        "{body}"
    );
    fake.set_faults(Faults::default());
    until("200 again", Duration::from_secs(30), async || {
        get(addr, "/healthz").await.0 == 200
    })
    .await;
    daemon.stop().await;
}
}

on_every_destination! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_and_match_sync_runs(db) {
    let server = fake(Scale::Small).await;
    let yearly = "0 0 0 1 1 *";
    let daemon = start(
        settings(
            &server.base_url(),
            &db,
            &[
                ("SYNC__SCHEDULE", yearly),
                ("SYNC__FULL_REFRESH_SCHEDULE", yearly),
            ],
        ),
        true,
    )
    .await;
    let addr = daemon.addr.unwrap();
    until("the first pass", Duration::from_secs(20), async || {
        first_pass_done(&db)
    })
    .await;
    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let mut typed = std::collections::HashSet::new();
    let mut values: HashMap<String, f64> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            assert!(
                ["counter", "gauge"].contains(&parts.next().unwrap()),
                "{line}"
            );
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(typed.contains(name), "no TYPE for {name}");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        values.insert(series.to_string(), value);
    }
    let sum = |prefix: &str| -> f64 {
        values
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(
        sum("kustomer_mirror_run_requests_total{") as i64,
        scalar(&db, "SELECT SUM(requests) FROM sync_runs")
    );
    assert_eq!(
        sum("kustomer_mirror_runs_total{") as i64,
        scalar(&db, "SELECT COUNT(*) FROM sync_runs")
    );
    assert_eq!(
        values["kustomer_mirror_rows{entity=\"customers\",state=\"live\"}"] as i64,
        scalar(&db,
            "SELECT COUNT(*) FROM customers WHERE deleted_at IS NULL"
        )
    );
    assert!(
        values["kustomer_mirror_http_requests_total{class=\"2xx\"}"]
            >= sum("kustomer_mirror_run_requests_total{")
    );
    assert!(values.contains_key("kustomer_mirror_cursor_lag_seconds{entity=\"conversations\"}"));
    assert!(
        values.contains_key("kustomer_mirror_last_success_timestamp_seconds{entity=\"users\"}")
    );
    assert!(values.contains_key("kustomer_mirror_last_run_duration_seconds{entity=\"messages\"}"));
    // Nothing held, capped or unreadable against a well-behaved server; no view problem.
    assert_eq!(values["kustomer_mirror_rate_limit_holds_capped_total"], 0.0);
    assert_eq!(values["kustomer_mirror_rate_limit_headers_unreadable_total"], 0.0);
    assert_eq!(values["kustomer_mirror_rate_limit_hold_seconds"], 0.0);
    assert_eq!(values["kustomer_mirror_custom_view_problems{entity=\"customers\"}"], 0.0);
    // The Grafana dashboard and the alert rules use only metrics this endpoint serves.
    for file in ["contrib/grafana-dashboard.json", "contrib/prometheus-alerts.yml"] {
        let used = metric_names_in(file);
        assert!(!used.is_empty(), "{file} uses no metric");
        for name in used {
            assert!(typed.contains(&name), "{file} uses {name}, which /metrics does not serve");
        }
    }
    daemon.stop().await;
}
}

/// The `kustomer_mirror_*` names `file` (under the crate) mentions.
fn metric_names_in(file: &str) -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("kustomer_mirror_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_grafana_dashboard_is_json_with_a_query_in_every_panel() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/grafana-dashboard.json"
    ))
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    for panel in panels {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for t in targets {
            assert!(
                t["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("kustomer_mirror_")),
                "{t}"
            );
        }
    }
    // What the issue asks the dashboard to show.
    for wanted in [
        "kustomer_mirror_last_success_timestamp_seconds",
        "kustomer_mirror_runs_total",
        "kustomer_mirror_rate_budget_used_ratio",
        "kustomer_mirror_rate_limited_total",
        "kustomer_mirror_retries_total",
        "kustomer_mirror_run_rows_changed_total",
    ] {
        assert!(
            text.contains(wanted),
            "the dashboard does not show {wanted}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_never_runs_twice_at_once_when_ticks_outpace_it() {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    // Every request takes 150 ms: a pass lasts several one-second ticks.
    fake.set_faults(Faults {
        slow: 1.0,
        slow_delay: Duration::from_millis(150),
        ..Faults::default()
    });
    let db = db();
    let every_second = "* * * * * *";
    let daemon = start(
        settings(
            &server.base_url(),
            &db,
            &[
                ("SYNC__SCHEDULE", every_second),
                ("SYNC__FULL_REFRESH_SCHEDULE", every_second),
                ("SYNC__PAGE_SIZE", "50"),
                ("SYNC__ENTITIES", "messages,tags"),
                ("SCHEDULES__TAGS", "*/2 * * * * *"),
            ],
        ),
        false,
    )
    .await;
    // Until tags ran twice while messages' slow pass spans several ticks (a condition, not a
    // fixed wait).
    let runs_of = |entity: &str| -> i64 {
        if !db.path.exists() {
            return 0;
        }
        count(
            &open(&db.path),
            &format!(
                "SELECT COUNT(*) FROM sync_runs WHERE entity = '{entity}' AND mode != 'preflight'"
            ),
        )
    };
    until(
        "tags ran twice and messages ran",
        Duration::from_secs(60),
        async || runs_of("tags") >= 2 && runs_of("messages") >= 1,
    )
    .await;
    daemon.stop().await;
    let conn = open(&db.path);
    let mut stmt = conn
        .prepare("SELECT entity, started_at, COALESCE(finished_at, '') , status FROM sync_runs WHERE mode != 'preflight' ORDER BY entity, id")
        .unwrap();
    let runs: Vec<(String, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(runs.iter().filter(|r| r.0 == "messages").count() >= 1);
    assert!(
        runs.iter().filter(|r| r.0 == "tags").count() >= 2,
        "{runs:?}"
    );
    for pair in runs.windows(2) {
        if pair[0].0 == pair[1].0 {
            assert!(pair[1].1 >= pair[0].2, "overlapping runs: {pair:?}");
        }
    }
    // Only the last run of an entity may have been cut short by the stop.
    for (i, run) in runs.iter().enumerate() {
        let last_of_entity = runs.get(i + 1).is_none_or(|next| next.0 != run.0);
        if !last_of_entity {
            assert_eq!(run.3, "ok", "{run:?}");
        }
    }
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM sync_runs WHERE entity = 'customers'"
        ),
        0
    );
}
