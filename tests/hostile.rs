//! A hostile upstream: the built-in fake behind a bending proxy (`common::bend`) that changes
//! headers, links, timestamps, names and lists the way Kustomer, a proxy in front of it or an org's
//! own data plausibly can, driven through the real binary over real HTTP. Each test is one row of
//! issue 27's table: the mirror neither stops, hangs, invents data nor hands its key away, every other
//! entity syncs on, and the affected one is exact once upstream serves good data again.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::bend::{BendProxy, Recorder, bend, pass};
use crate::common::*;
use kustomer_mirror::fake::Scale;

/// Runs `cmd` to its end, killing it (and failing the test) after `limit`: a hold without bound
/// must fail the test, not hang it.
async fn within(mut cmd: Command, limit: Duration) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!("still running after {limit:?}:\n{}", text(&out));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap()
}

fn sync_via(url: &str, db: &Db, entities: &[&str]) -> Command {
    let mut cmd = mirror_cmd_db(url, KEY, db);
    cmd.arg("sync");
    for e in entities {
        cmd.args(["--entity", e]);
    }
    cmd
}

fn rate_limited(answer: &mut crate::common::bend::Answer) {
    answer.status = 429;
    answer.body =
        br#"{"errors":[{"status":429,"code":"rate_limited","title":"Too many requests"}]}"#
            .to_vec();
    answer.set_header("x-ratelimit-remaining", "0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_in_epoch_milliseconds_holds_for_the_seconds_it_means() {
    let fake = fake(Scale::Small).await;
    let proxy = BendProxy::start(
        &fake.base_url(),
        bend(|seen, n, answer| {
            if seen.path() == "/v1/customers/search" && n == 1 {
                rate_limited(answer);
                let ms = chrono::Utc::now().timestamp_millis() + 2_000;
                answer.set_header("x-ratelimit-reset", &ms.to_string());
            }
        }),
    )
    .await;
    let db = Db::sqlite();
    let started = Instant::now();
    let out = within(
        sync_via(&proxy.url, &db, &["customers"]),
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    // About the 2 s the header meant; not the minute of a whole window, nor 54,000 years.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM customers"),
        fake.handle().count("customers") as i64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn absurd_or_unreadable_rate_limit_headers_hold_at_most_two_windows() {
    let fake = fake(Scale::Small).await;
    // One 429 per header form, on successive searches; each at most two 1 s windows.
    let forms: Vec<(&str, String)> = vec![
        ("retry-after", "99999999999999999999".into()),
        ("retry-after", "18446744073709551615".into()),
        ("retry-after", "-5".into()),
        ("retry-after", "".into()),
        ("retry-after", "soon".into()),
        ("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT".into()),
        ("x-ratelimit-reset", "99999999999999999999".into()),
        ("x-ratelimit-reset", "1000000000".into()),
        ("x-ratelimit-reset", "-1".into()),
        ("x-ratelimit-reset", "12abc".into()),
    ];
    let n_forms = forms.len() as u64;
    let proxy = BendProxy::start(
        &fake.base_url(),
        bend(move |seen, n, answer| {
            if seen.path() == "/v1/customers/search"
                && let Some((name, value)) = forms.get(n as usize - 1)
            {
                rate_limited(answer);
                answer.set_header(name, value);
            }
        }),
    )
    .await;
    let db = Db::sqlite();
    let mut cmd = sync_via(&proxy.url, &db, &["customers", "users"]);
    cmd.env("KUSTOMER_MIRROR__SYNC__RATE_WINDOW", "1s");
    let out = within(cmd, Duration::from_secs(90)).await;
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("retry-after: 99999999999999999999"),
        "the capped header is named in a warning:\n{log}"
    );
    assert!(
        log.contains("could not read the server's rate-limit header"),
        "{log}"
    );
    let searches = proxy
        .seen()
        .iter()
        .filter(|s| s.path() == "/v1/customers/search")
        .count() as u64;
    assert!(searches > n_forms, "{searches}");
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM customers"),
        fake.handle().count("customers") as i64
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM users"),
        fake.handle().count("users") as i64
    );
    assert_mirror_equals_fake_for(&db, &fake.handle(), "customers");
}

#[tokio::test(flavor = "multi_thread")]
async fn links_and_redirects_to_another_host_get_no_request_and_no_key() {
    let fake = fake(Scale::Small).await;
    let foreign = Recorder::start(200, r#"{"data":[],"links":{}}"#).await;
    let elsewhere = foreign.url.clone();
    let proxy = BendProxy::start(
        &fake.base_url(),
        bend(move |seen, _, answer| {
            if seen.path() == "/v1/users"
                && let Some(mut doc) = answer.json()
            {
                doc["links"]["next"] = json!(format!("{elsewhere}/v1/users?page=2&pageSize=500"));
                answer.set_json(&doc);
            }
            if seen.path() == "/v1/tags" {
                answer.status = 302;
                answer.body.clear();
                answer.set_header("location", &format!("{elsewhere}/v1/tags?page=1"));
            }
        }),
    )
    .await;
    let db = Db::sqlite();
    let out = within(
        sync_via(&proxy.url, &db, &["users", "tags", "teams"]),
        Duration::from_secs(60),
    )
    .await;
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(foreign.seen().is_empty(), "{:?}", foreign.seen());
    assert!(!log.contains(KEY), "{log}");
    let origin = foreign.url.trim_start_matches("http://");
    assert!(
        log.contains("refused to follow a link") && log.contains(origin),
        "{log}"
    );
    assert!(log.contains("302 redirect from /v1/tags"), "{log}");
    // The others sync on.
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM teams"),
        fake.handle().count("teams") as i64
    );
    // Nothing of the users' list was tombstoned on the refused read.
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM users WHERE deleted_at IS NOT NULL"
        ),
        0
    );
    // Once upstream links and answers as it should, both are exact.
    proxy.set_bend(pass());
    let out = within(
        sync_via(&proxy.url, &db, &["users", "tags"]),
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_mirror_equals_fake_for(&db, &fake.handle(), "users");
    assert_mirror_equals_fake_for(&db, &fake.handle(), "tags");
    assert!(foreign.seen().is_empty());
}

/// The newest `n` customers of the fake, newest first, with their `updatedAt`.
fn newest(fake: &kustomer_mirror::fake::FakeHandle, entity: &str, n: usize) -> Vec<String> {
    let mut records = fake.records(entity);
    records.sort_by(|a, b| {
        b["attributes"]["updatedAt"]
            .as_str()
            .cmp(&a["attributes"]["updatedAt"].as_str())
    });
    records
        .iter()
        .take(n)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

on_every_destination! {
    #[tokio::test(flavor = "multi_thread")]
    async fn an_updated_at_that_is_not_a_timestamp_never_enters_the_cursor(db) {
        let fake = fake(Scale::Small).await;
        let handle = fake.handle();
        // The newest records carry the bad values: a text cursor would have taken them.
        let bent = newest(&handle, "customers", 3);
        let values = [json!("not-a-date"), Value::Null, json!(12345)];
        let ids = bent.clone();
        let proxy = BendProxy::start(
            &fake.base_url(),
            bend(move |seen, _, answer| {
                if seen.path() != "/v1/customers/search" {
                    return;
                }
                let Some(mut doc) = answer.json() else { return };
                for item in doc["data"].as_array_mut().into_iter().flatten() {
                    if let Some(i) = ids.iter().position(|id| item["id"] == json!(id)) {
                        item["attributes"]["updatedAt"] = values[i].clone();
                    }
                }
                answer.set_json(&doc);
            }),
        )
        .await;
        let out = within(sync_via(&proxy.url, &db, &["customers"]), Duration::from_secs(60)).await;
        let log = text(&out);
        assert!(out.status.success(), "{log}");
        assert!(log.contains("not an RFC 3339 timestamp"), "{log}");
        let cursor = db.query("SELECT cursor FROM sync_state WHERE entity = 'customers'");
        let cursor = cursor[0][0].clone().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(&cursor).is_ok(),
            "cursor {cursor:?}"
        );
        // The bent records are stored all the same.
        for id in &bent {
            assert_eq!(
                scalar(&db, &format!("SELECT count(*) FROM customers WHERE id = '{id}'")),
                1
            );
        }
        // The next runs search from a good cursor; once the records change upstream (served with
        // good timestamps) the mirror is exact.
        let out = within(sync_via(&proxy.url, &db, &["customers"]), Duration::from_secs(60)).await;
        assert!(out.status.success(), "{}", text(&out));
        proxy.set_bend(pass());
        for id in &bent {
            handle.update("customers", id, json!({"custom": {"fixedBool": true}}));
        }
        let out = within(sync_via(&proxy.url, &db, &["customers"]), Duration::from_secs(60)).await;
        assert!(out.status.success(), "{}", text(&out));
        let local = rows(&db, "customers");
        for record in handle.records("customers") {
            let id = record["id"].as_str().unwrap();
            assert_eq!(&local[id].0, &record, "{id}");
        }
    }
}

on_every_destination! {
    #[tokio::test(flavor = "multi_thread")]
    async fn hostile_custom_attribute_names_never_block_the_data(db) {
        let fake = fake(Scale::Small).await;
        let handle = fake.handle();
        let bent = newest(&handle, "customers", 2);
        let long_a = format!("{}AlphaStr", "x".repeat(64));
        let long_b = format!("{}BravoStr", "x".repeat(64));
        let names = vec![
            "nul\u{0}insideStr".to_string(),
            long_a.clone(),
            long_b.clone(),
            "we\"ird.key[0]$Str".to_string(),
            "back\\slash'quoteStr".to_string(),
        ];
        let ids = bent.clone();
        let added = names.clone();
        let proxy = BendProxy::start(
            &fake.base_url(),
            bend(move |seen, _, answer| {
                if seen.path() != "/v1/customers/search" {
                    return;
                }
                let Some(mut doc) = answer.json() else { return };
                for item in doc["data"].as_array_mut().into_iter().flatten() {
                    if ids.iter().any(|id| item["id"] == json!(id)) {
                        for (i, n) in added.iter().enumerate() {
                            item["attributes"]["custom"][n] = json!(format!("value {i}"));
                        }
                    }
                }
                answer.set_json(&doc);
            }),
        )
        .await;
        let out = within(sync_via(&proxy.url, &db, &["customers", "users"]), Duration::from_secs(60)).await;
        let log = text(&out);
        assert!(out.status.success(), "{log}");
        // Two long names stay two columns, each within 63 bytes.
        let columns: Vec<String> = if db.is_postgres() {
            db.query("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'customers_custom'")
        } else {
            db.query("SELECT name FROM pragma_table_info('customers_custom')")
        }
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
        let long: Vec<&String> = columns.iter().filter(|c| c.starts_with("xxxx")).collect();
        assert_eq!(long.len(), 2, "{columns:?}");
        assert!(columns.iter().all(|c| c.len() <= 63), "{columns:?}");
        // The quoted key is addressed exactly: the view shows its value.
        let weird = columns.iter().find(|c| c.starts_with("we_ird")).unwrap();
        let shown = db.query(&format!(
            "SELECT \"{weird}\" FROM customers_custom WHERE id = '{}'",
            bent[0]
        ));
        assert_eq!(shown[0][0].as_deref(), Some("value 3"));
        let backslash = columns.iter().find(|c| c.starts_with("back_slash")).unwrap();
        let shown = db.query(&format!(
            "SELECT \"{backslash}\" FROM customers_custom WHERE id = '{}'",
            bent[0]
        ));
        assert_eq!(shown[0][0].as_deref(), Some("value 4"));
        assert_eq!(
            scalar(&db, "SELECT count(*) FROM users"),
            handle.count("users") as i64
        );
        // Once the records change upstream (served as they are), the mirror is exact.
        proxy.set_bend(pass());
        for id in &bent {
            handle.update("customers", id, json!({"custom": {"calmStr": "ok"}}));
        }
        let out = within(sync_via(&proxy.url, &db, &["customers"]), Duration::from_secs(60)).await;
        assert!(out.status.success(), "{}", text(&out));
        assert_mirror_equals_fake_for(&db, &handle, "customers");
    }
}

on_every_destination! {
    #[tokio::test(flavor = "multi_thread")]
    async fn a_record_deleted_during_a_full_refresh_invents_no_delete(db) {
        let fake = fake(Scale::Small).await;
        let handle = fake.handle();
        let proxy = BendProxy::start(&fake.base_url(), pass()).await;
        let sync = || {
            let mut cmd = sync_via(&proxy.url, &db, &["users"]);
            cmd.env("KUSTOMER_MIRROR__SYNC__PAGE_SIZE", "5");
            cmd
        };
        let out = within(sync(), Duration::from_secs(60)).await;
        assert!(out.status.success(), "{}", text(&out));
        // The second refresh: right after page 1 is served, its first user is hard-deleted, so
        // page 2 (by number) starts one user later and skips one.
        let users: Vec<String> = handle
            .records("users")
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        assert!(users.len() > 10, "{}", users.len());
        let deleter = handle.clone();
        // The proxy counts requests from its start: the second refresh's first page comes next.
        let before = proxy.seen().iter().filter(|s| s.path() == "/v1/users").count() as u64;
        let gone = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let gone_in = gone.clone();
        proxy.set_bend(bend(move |seen, n, answer| {
            if seen.path() == "/v1/users" && n == before + 1 {
                let doc = answer.json().unwrap();
                let first = doc["data"][0]["id"].as_str().unwrap().to_string();
                assert!(deleter.hard_delete("users", &first));
                *gone_in.lock().unwrap() = Some(first);
            }
        }));
        let out = within(sync(), Duration::from_secs(60)).await;
        assert!(out.status.success(), "{}", text(&out));
        let gone = gone.lock().unwrap().clone().unwrap();
        let deletes = || {
            db.query("SELECT record_id FROM change_log WHERE entity = 'users' AND op = 'delete' ORDER BY record_id")
        };
        // The user that page 2 skipped was confirmed by id, not tombstoned; the deleted one was
        // seen on page 1 before it went.
        assert_eq!(deletes(), Vec::<Vec<Option<String>>>::new());
        let live = scalar(&db, "SELECT count(*) FROM users WHERE deleted_at IS NULL");
        assert_eq!(live, users.len() as i64);
        // The next refresh does not see it, reads it by id (404) and tombstones it: exact again.
        proxy.set_bend(pass());
        let out = within(sync(), Duration::from_secs(60)).await;
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(deletes(), vec![vec![Some(gone.clone())]]);
        assert_mirror_equals_fake_for(&db, &handle, "users");
    }
}

/// The mirror's `table` equals the fake's records (data and deletion state).
fn assert_mirror_equals_fake_for(db: &Db, fake: &kustomer_mirror::fake::FakeHandle, table: &str) {
    let local = rows(db, table);
    let upstream = fake.records(table);
    for record in &upstream {
        let id = record["id"].as_str().unwrap();
        assert_eq!(&local[id].0, record, "{table} {id}");
    }
    let ids: std::collections::HashSet<&str> =
        upstream.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for (id, (_, deleted_at)) in &local {
        if !ids.contains(id.as_str()) {
            assert!(
                deleted_at.is_some(),
                "{table} {id} is gone upstream but live"
            );
        }
    }
}

on_every_destination! {
    #[tokio::test(flavor = "multi_thread")]
    async fn a_change_that_reached_search_late_is_found_by_the_sweep(db) {
        let fake = fake(Scale::Small).await;
        let handle = fake.handle();
        let url = fake.base_url();
        let out = within(sync_via(&url, &db, &["customers"]), Duration::from_secs(60)).await;
        assert!(out.status.success(), "{}", text(&out));
        let cursor = db.query("SELECT cursor FROM sync_state WHERE entity = 'customers'")[0][0]
            .clone()
            .unwrap();
        let cursor = chrono::DateTime::parse_from_rfc3339(&cursor).unwrap();
        // Ten changes that search shows dated 10 minutes behind the cursor: past the 5-minute
        // overlap, so an ordinary pass cannot see them.
        let late = (cursor - chrono::Duration::minutes(10))
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let mut records = handle.records("customers");
        records.truncate(10);
        for mut r in records {
            let id = r["id"].as_str().unwrap().to_string();
            r["attributes"]["updatedAt"] = json!(late);
            r["attributes"]["custom"]["lateStr"] = json!("arrived late");
            handle.put_raw("customers", &id, &r.to_string(), &late);
        }
        let stale = || scalar(&db, "SELECT count(*) FROM customers WHERE CAST(data AS TEXT) LIKE '%arrived late%'");
        let out = within(sync_via(&url, &db, &["customers"]), Duration::from_secs(60)).await;
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(stale(), 0, "an ordinary pass looks back only the overlap");
        let mut sweep = sync_via(&url, &db, &["customers"]);
        sweep.arg("--sweep");
        let out = within(sweep, Duration::from_secs(60)).await;
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(stale(), 10);
        assert_mirror_equals_fake_for(&db, &handle, "customers");
        // The cursor did not move back.
        let after = db.query("SELECT cursor FROM sync_state WHERE entity = 'customers'")[0][0]
            .clone()
            .unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(&after).unwrap() >= cursor);
        // The general form, from a time and from the start.
        let mut records = handle.records("customers");
        records.truncate(3);
        for mut r in records {
            let id = r["id"].as_str().unwrap().to_string();
            r["attributes"]["updatedAt"] = json!("2001-02-03T04:05:06.000Z");
            r["attributes"]["custom"]["lateStr"] = json!("very late");
            handle.put_raw("customers", &id, &r.to_string(), "2001-02-03T04:05:06.000Z");
        }
        let mut since = sync_via(&url, &db, &["customers"]);
        since.args(["--since", "2001-01-01T00:00:00Z"]);
        let out = within(since, Duration::from_secs(60)).await;
        assert!(out.status.success(), "{}", text(&out));
        assert_mirror_equals_fake_for(&db, &handle, "customers");
        let mut bad = sync_via(&url, &db, &["customers"]);
        bad.args(["--since", "yesterday"]);
        let out = within(bad, Duration::from_secs(30)).await;
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    }
}

/// `run` against `url` with every schedule each second, until `stop` says so; then SIGTERM.
async fn daemon_until(
    url: &str,
    db: &Db,
    env: &[(&str, &str)],
    limit: Duration,
    mut stop: impl FnMut() -> bool,
) -> Output {
    let mut cmd = mirror_cmd_db(url, KEY, db);
    cmd.arg("run")
        .env("KUSTOMER_MIRROR__SYNC__SCHEDULE", "* * * * * *")
        .env(
            "KUSTOMER_MIRROR__SYNC__FULL_REFRESH_SCHEDULE",
            "* * * * * *",
        )
        .env("KUSTOMER_MIRROR__SYNC__FAILURE_BACKOFF", "100ms")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let start = Instant::now();
    let mut reached = true;
    while !stop() {
        if start.elapsed() > limit {
            reached = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sigterm(&child);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        reached,
        "the daemon did not get there in {limit:?}:\n{}",
        text(&out)
    );
    assert!(out.status.success(), "{}", text(&out));
    out
}

on_every_destination! {
    #[tokio::test(flavor = "multi_thread")]
    async fn a_panicking_pass_fails_its_run_and_the_daemon_goes_on(db) {
        let fake = fake(Scale::Small).await;
        let url = fake.base_url();
        let failed = || {
            db.try_query("SELECT count(*) FROM sync_runs WHERE entity = 'users' AND status = 'failed' AND error LIKE '%internal error%'")
                .and_then(|r| r[0][0].clone())
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let ok_teams = || {
            db.try_query("SELECT count(*) FROM sync_runs WHERE entity = 'teams' AND status = 'ok'")
                .and_then(|r| r[0][0].clone())
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0)
        };
        // Three failed runs of users: the panic freed it each time.
        let out = daemon_until(
            &url,
            &db,
            &[
                ("KUSTOMER_MIRROR__SYNC__ENTITIES", "users,teams"),
                ("KUSTOMER_MIRROR_FAILPOINTS", "pass:users"),
            ],
            Duration::from_secs(60),
            || failed() >= 3 && ok_teams() >= 2,
        )
        .await;
        assert!(text(&out).contains("failpoint pass:users"), "{}", text(&out));
        assert_eq!(
            scalar(&db, "SELECT count(*) FROM sync_runs WHERE entity = 'users' AND status = 'running'"),
            0
        );
        assert_eq!(scalar(&db, "SELECT count(*) FROM teams"), fake.handle().count("teams") as i64);
    }
}

on_every_destination! {
    #[tokio::test(flavor = "multi_thread")]
    async fn a_reconcile_beside_a_sync_of_the_same_entity_interrupts_neither(db) {
        let fake = fake(Scale::Small).await;
        let url = fake.base_url();
        // Slow answers, so that the sync and the reconcile of customers overlap.
        fake.handle().set_faults(kustomer_mirror::fake::Faults {
            slow: 1.0,
            slow_delay: Duration::from_millis(150),
            ..Default::default()
        });
        let finished = |mode: &str| {
            db.try_query(&format!("SELECT count(*) FROM sync_runs WHERE entity = 'customers' AND mode = '{mode}' AND status <> 'running'"))
                .and_then(|r| r[0][0].clone())
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0)
        };
        // A live run marked interrupted is overwritten when that run finishes: watch for the mark
        // while the runs go on, not only at the end.
        let marked = || {
            db.try_query("SELECT count(*) FROM sync_runs WHERE error = 'the process stopped before the run finished'")
                .and_then(|r| r[0][0].clone())
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let mut ever_marked = 0;
        daemon_until(
            &url,
            &db,
            &[
                ("KUSTOMER_MIRROR__SYNC__ENTITIES", "customers"),
                ("KUSTOMER_MIRROR__SYNC__RECONCILE_SCHEDULE", "* * * * * *"),
                ("KUSTOMER_MIRROR__SYNC__PAGE_SIZE", "50"),
            ],
            Duration::from_secs(90),
            || {
                ever_marked = ever_marked.max(marked());
                finished("reconcile") >= 2 && finished("incremental") >= 2
            },
        )
        .await;
        assert_eq!(ever_marked, 0, "a live run was marked as left by a dead process");
        // Runs overlapped (a run started while another of the key was going)…
        let overlapped = scalar(
            &db,
            "SELECT count(*) FROM sync_runs a JOIN sync_runs b ON a.entity = b.entity AND a.id < b.id \
             AND b.started_at < a.finished_at WHERE a.entity = 'customers'",
        );
        assert!(overlapped > 0, "no overlap to test");
        // …and none was marked as left behind by a dead process.
        assert_eq!(
            scalar(&db, "SELECT count(*) FROM sync_runs WHERE error = 'the process stopped before the run finished'"),
            0
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mirror_files_are_0640_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let fake = fake(Scale::Small).await;
    let db = Db::sqlite();
    let mut cmd = sync_via(&fake.base_url(), &db, &["users"]);
    // SAFETY: umask is async-signal-safe and touches only the child's own state.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    let out = within(cmd, Duration::from_secs(60)).await;
    assert!(out.status.success(), "{}", text(&out));
    let dir = db.path.parent().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("mirror.db") {
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o640, "{name}: {mode:o}");
            checked += 1;
        }
    }
    assert!(checked >= 2, "the database and its lock file: {checked}");
}

#[tokio::test(flavor = "multi_thread")]
async fn companies_on_the_full_refresh_fallback_follow_the_full_refresh_schedule() {
    let mut options = kustomer_mirror::fake::FakeOptions::new(7, Scale::Small, KEY);
    options.company_search = false;
    let fake = fake_with(options).await;
    let db = Db::sqlite();
    let runs = |entity: &str, mode: &str| {
        db.try_query(&format!(
            "SELECT count(*) FROM sync_runs WHERE entity = '{entity}' AND mode = '{mode}' AND status = 'ok'"
        ))
        .and_then(|r| r[0][0].clone())
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(0)
    };
    daemon_until(
        &fake.base_url(),
        &db,
        &[
            ("KUSTOMER_MIRROR__SYNC__ENTITIES", "companies,customers"),
            // The full refresh at start, then not before next New Year.
            (
                "KUSTOMER_MIRROR__SYNC__FULL_REFRESH_SCHEDULE",
                "0 0 0 1 1 *",
            ),
        ],
        Duration::from_secs(60),
        || runs("customers", "incremental") >= 4,
    )
    .await;
    // Four incremental ticks went by; companies were refreshed once, at start.
    assert_eq!(runs("companies", "full"), 1);
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM companies"),
        fake.handle().count("companies") as i64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_sweeps_on_its_schedule_and_finds_a_late_change() {
    let fake = fake(Scale::Small).await;
    let handle = fake.handle();
    let db = Db::sqlite();
    let out = within(
        sync_via(&fake.base_url(), &db, &["customers"]),
        Duration::from_secs(60),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let cursor = db.query("SELECT cursor FROM sync_state WHERE entity = 'customers'")[0][0]
        .clone()
        .unwrap();
    let late = (chrono::DateTime::parse_from_rfc3339(&cursor).unwrap()
        - chrono::Duration::minutes(30))
    .with_timezone(&chrono::Utc)
    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
    .to_string();
    let mut record = handle.records("customers").remove(0);
    let id = record["id"].as_str().unwrap().to_string();
    record["attributes"]["updatedAt"] = json!(late);
    record["attributes"]["custom"]["lateStr"] = json!("swept");
    handle.put_raw("customers", &id, &record.to_string(), &late);
    let found = || {
        db.try_query("SELECT count(*) FROM customers WHERE data LIKE '%swept%'")
            .and_then(|r| r[0][0].clone())
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let out = daemon_until(
        &fake.base_url(),
        &db,
        &[
            ("KUSTOMER_MIRROR__SYNC__ENTITIES", "customers"),
            // Incremental passes every second cannot see it; the sweep, every 3 s, does.
            ("KUSTOMER_MIRROR__SYNC__SWEEP_SCHEDULE", "*/3 * * * * *"),
        ],
        Duration::from_secs(60),
        || found() == 1,
    )
    .await;
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
    assert_mirror_equals_fake_for(&db, &handle, "customers");
}

on_every_destination! {
    #[tokio::test(flavor = "multi_thread")]
    async fn a_view_that_cannot_be_built_is_reported_and_never_blocks_the_rows(db) {
        let fake = fake(Scale::Small).await;
        let handle = fake.handle();
        let url = fake.base_url();
        let out = within(sync_via(&url, &db, &["users"]), Duration::from_secs(60)).await;
        assert!(out.status.success(), "{}", text(&out));
        // Something else took the view's name: a table, which DROP VIEW refuses.
        db.execute("CREATE TABLE customers_custom (x integer)");
        let out = within(sync_via(&url, &db, &["customers"]), Duration::from_secs(60)).await;
        let log = text(&out);
        assert!(out.status.success(), "{log}");
        assert!(log.contains("could not build the custom attribute view"), "{log}");
        assert_eq!(
            scalar(&db, "SELECT count(*) FROM customers"),
            handle.count("customers") as i64
        );
        let status = |db: &Db| {
            let mut cmd = mirror_cmd_db(&url, KEY, db);
            cmd.args(["status", "--json"]);
            cmd
        };
        let out = within(status(&db), Duration::from_secs(30)).await;
        let all: Value = serde_json::from_slice(&out.stdout).unwrap();
        let customers = all
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["entity"] == "customers")
            .unwrap();
        let problems = customers["view_problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "{customers}");
        assert!(problems[0].as_str().unwrap().starts_with("customers_custom: "), "{problems:?}");
        let mut table = mirror_cmd_db(&url, KEY, &db);
        table.arg("status");
        let out = within(table, Duration::from_secs(30)).await;
        assert!(text(&out).contains("Custom views that could not be built"), "{}", text(&out));
        // The name is free again: the next page of customers builds the view, and the problem goes.
        db.execute("DROP TABLE customers_custom");
        let id = handle.records("customers")[0]["id"].as_str().unwrap().to_string();
        handle.update("customers", &id, json!({"custom": {"againStr": "x"}}));
        let out = within(sync_via(&url, &db, &["customers"]), Duration::from_secs(60)).await;
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(scalar(&db, "SELECT count(*) FROM view_problems"), 0);
        assert_eq!(
            scalar(&db, &format!("SELECT count(*) FROM customers_custom WHERE id = '{id}' AND again = 'x'")),
            1
        );
    }
}
