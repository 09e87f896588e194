//! Real time through outbound webhooks, end to end: the real `run` binary with its receiver on a
//! free port, the built-in fake registering a hook and sending signed events for its changes, and
//! requests forged in the test (signatures computed here with `hmac`, independently of the
//! receiver's code). Expected rows are the text the fake serves. On both destinations.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

use crate::common::*;
use kustomer_mirror::fake::{FakeHandle, Scale, WebhookSwitches};

const NEVER: &str = "0 0 0 1 1 *";

fn sign(token: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A daemon with its receiver, polls only at start; killed if a test fails before stopping it.
struct Daemon {
    child: Option<Child>,
    url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Setup {
    dir: tempfile::TempDir,
    port: u16,
    token: String,
}

impl Setup {
    /// Registers a hook for every event on the fake, pointing at a free port, and writes its token.
    async fn new(server: &kustomer_mirror::fake::FakeServer) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let r = http()
            .post(format!("{}/v1/outbound-webhooks", server.base_url()))
            .bearer_auth(KEY)
            .json(&json!({
                "name": "mirror",
                "url": format!("http://127.0.0.1:{port}/webhooks/kustomer"),
                "events": kustomer_mirror::entity::webhook_event_names(),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let created: Value = r.json().await.unwrap();
        let token = created["data"]["attributes"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        std::fs::write(dir.path().join("token"), format!("{token}\n")).unwrap();
        Setup { dir, port, token }
    }

    fn start(&self, server: &kustomer_mirror::fake::FakeServer, db: &Db) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_kustomer-mirror"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUSTOMER_MIRROR__KUSTOMER__BASE_URL", server.base_url())
            .env("KUSTOMER_API_KEY", KEY)
            .envs(db.env())
            .env("KUSTOMER_MIRROR__SYNC__REQUESTS_PER_MINUTE", "100000")
            .env("KUSTOMER_MIRROR__SYNC__SEARCH_REQUESTS_PER_MINUTE", "10000")
            .env("KUSTOMER_MIRROR__SYNC__SCHEDULE", NEVER)
            .env("KUSTOMER_MIRROR__SYNC__FULL_REFRESH_SCHEDULE", NEVER)
            .env("KUSTOMER_MIRROR__SYNC__SWEEP_SCHEDULE", NEVER)
            .env("KUSTOMER_MIRROR__SYNC__RECONCILE_SCHEDULE", NEVER)
            .env(
                "KUSTOMER_MIRROR__WEBHOOKS__LISTEN",
                format!("127.0.0.1:{}", self.port),
            )
            .env(
                "KUSTOMER_MIRROR__WEBHOOKS__TOKEN_FILE",
                self.dir.path().join("token"),
            )
            .env(
                "KUSTOMER_MIRROR__WEBHOOKS__INBOX",
                self.dir.path().join("inbox.db"),
            )
            .env("KUSTOMER_MIRROR__WEBHOOKS__MAX_BODY", "65536")
            .env("KUSTOMER_MIRROR__WEBHOOKS__READ_TIMEOUT", "1s")
            .arg("run")
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("WEBHOOK_TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::piped()
            })
            .spawn()
            .unwrap();
        Daemon {
            child: Some(child),
            url: format!("http://127.0.0.1:{}/webhooks/kustomer", self.port),
        }
    }
}

/// Waits until the first pass is over: the six entities webhooks cover synced, no pass running.
async fn first_pass(db: &Db) {
    until("the first pass", Duration::from_secs(60), async || {
        scalar_or(
            db,
            "SELECT COUNT(*) FROM sync_state WHERE last_success_at IS NOT NULL \
             AND entity IN ('customers','conversations','messages','users','teams','tags')",
        ) == 6
            && scalar_or(
                db,
                "SELECT COUNT(*) FROM sync_runs WHERE status = 'running' AND mode <> 'webhook'",
            ) == 0
    })
    .await;
}

async fn stop(mut d: Daemon) -> String {
    let child = d.child.take().unwrap();
    sigterm(&child);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{log}");
    log
}

/// The mirror's `data` of `id` in `table`, parsed; `None` when absent.
fn stored(db: &Db, table: &str, id: &str) -> Option<Value> {
    let sql = format!("SELECT {} FROM {table} WHERE id = '{id}'", data_sql(db));
    db.query(&sql)
        .first()?
        .first()?
        .as_deref()
        .map(|t| serde_json::from_str(t).unwrap())
}

/// What the fake serves for `id` (its GET by id), parsed.
async fn served(server: &kustomer_mirror::fake::FakeServer, table: &str, id: &str) -> Value {
    let r = http()
        .get(format!("{}/v1/{table}/{id}", server.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let doc: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    doc["data"].clone()
}

fn scalar_or(db: &Db, sql: &str) -> i64 {
    db.try_query(sql)
        .and_then(|r| r.first()?.first()?.clone())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

fn webhook_changes(db: &Db, id: &str) -> i64 {
    scalar_or(
        db,
        &format!(
            "SELECT COUNT(*) FROM change_log c JOIN sync_runs r ON r.id = c.run_id \
             WHERE r.mode = 'webhook' AND c.record_id = '{id}'"
        ),
    )
}

async fn post(url: &str, event: &str, body: &[u8], signature: Option<&str>) -> u16 {
    let mut req = http()
        .post(url)
        .header("content-type", "application/json")
        .header("x-kustomer-webhook-event", event)
        .body(body.to_vec());
    if let Some(s) = signature {
        req = req.header("x-kustomer-webhook-signature", s);
    }
    req.send().await.unwrap().status().as_u16()
}

fn envelope(event: &str, data: &Value) -> Vec<u8> {
    json!({"id": format!("ev-{}", fastrand::u64(..)), "name": event, "org": "o", "data": data})
        .to_string()
        .into_bytes()
}

fn first_id(fake: &FakeHandle, table: &str) -> String {
    fake.records(table)[0]["id"].as_str().unwrap().to_string()
}

on_every_destination! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_apply_at_once_and_forged_late_or_repeated_ones_change_nothing(db) {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let setup = Setup::new(&server).await;
    let daemon = setup.start(&server, &db);
    first_pass(&db).await;

    // A change upstream reaches the mirror through the fake's signed event, with no request (the
    // one counted is the test's own read of what the fake serves).
    let id = first_id(&fake, "conversations");
    fake.update("conversations", &id, json!({"status": "snoozed", "name": "pushed"}));
    let expected = served(&server, "conversations", &id).await;
    let requests = fake.stats().requests;
    until("the pushed change", Duration::from_secs(10), async || {
        stored(&db, "conversations", &id).as_ref() == Some(&expected)
    })
    .await;
    assert_eq!(webhook_changes(&db, &id), 1);
    assert_eq!(fake.stats().requests, requests, "no API request for a pushed change");

    // Forged, broken and oversized requests: refused, nothing stored.
    let mut forged = expected.clone();
    forged["attributes"]["name"] = json!("forged");
    forged["attributes"]["rev"] = json!(1_000_000);
    let body = envelope("kustomer.conversation.update", &forged);
    let good = sign(&setup.token, &body);
    let url = &daemon.url;
    assert_eq!(post(url, "kustomer.conversation.update", &body, None).await, 401);
    assert_eq!(post(url, "kustomer.conversation.update", &body, Some(&sign("other", &body))).await, 401);
    assert_eq!(post(url, "kustomer.conversation.update", &body, Some(&good[..63])).await, 401);
    assert_eq!(post(url, "kustomer.conversation.update", &body, Some(&good[..32])).await, 401);
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert_eq!(post(url, "kustomer.conversation.update", &tampered, Some(&good)).await, 401);
    let mut big = forged.clone();
    big["attributes"]["padding"] = json!("x".repeat(70_000));
    let big = envelope("kustomer.conversation.update", &big);
    assert_eq!(post(url, "kustomer.conversation.update", &big, Some(&sign(&setup.token, &big))).await, 413);
    // A slow client: headers, half the body, then nothing for longer than read_timeout.
    let slow = slow_client(setup.port, &body, &good).await;
    assert!(slow.starts_with("HTTP/1.1 408") || slow.is_empty(), "{slow}");
    // An event kind the mirror does not apply is answered 2xx and stored nowhere.
    let other = envelope("kustomer.kobject.update", &forged);
    assert_eq!(post(url, "kustomer.kobject.update", &other, Some(&sign(&setup.token, &other))).await, 200);

    // A late delivery of an older version and a repeated delivery of the current one change nothing.
    let mut older = expected.clone();
    older["attributes"]["status"] = json!("open");
    older["attributes"]["rev"] = json!(expected["attributes"]["rev"].as_u64().unwrap() - 1);
    let late = envelope("kustomer.conversation.update", &older);
    assert_eq!(post(url, "kustomer.conversation.update", &late, Some(&sign(&setup.token, &late))).await, 200);
    let again = envelope("kustomer.conversation.update", &expected);
    assert_eq!(post(url, "kustomer.conversation.update", &again, Some(&sign(&setup.token, &again))).await, 200);
    until("the two events counted", Duration::from_secs(10), async || {
        scalar_or(&db, "SELECT stale FROM webhook_events WHERE entity = 'conversations'") == 2
    })
    .await;
    assert_eq!(stored(&db, "conversations", &id), Some(expected.clone()));
    assert_eq!(webhook_changes(&db, &id), 1);
    assert_eq!(scalar_or(&db, "SELECT COUNT(*) FROM rejected_records"), 0);

    // /status shows the last event; the log never shows the token.
    let log = stop(daemon).await;
    assert!(!log.contains(&setup.token));
    let out = output({
        let mut c = mirror_cmd_db(&server.base_url(), KEY, &db);
        c.arg("status");
        c
    })
    .await;
    let status = text(&out);
    assert!(status.contains("kustomer.conversation.update"), "{status}");
    assert!(status.contains("2 stale"), "{status}");
}
}

/// Sends the headers and half of `body`, then waits; answers what the server sent back.
async fn slow_client(port: u16, body: &[u8], signature: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /webhooks/kustomer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         x-kustomer-webhook-event: kustomer.conversation.update\r\n\
         x-kustomer-webhook-signature: {signature}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..body.len() / 2]).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the server kept a slow client longer than 5 s"
    );
    String::from_utf8_lossy(&answer).to_string()
}

on_every_destination! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_events_in_flight_loses_none_that_got_a_2xx(db) {
    let server = fake(Scale::Small).await;
    let setup = Setup::new(&server).await;
    let daemon = setup.start(&server, &db);
    first_pass(&db).await;
    let url = daemon.url.clone();
    let token = setup.token.clone();
    // 300 new customers pushed by 8 concurrent senders; SIGTERM after the first 2xx answers.
    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut senders = tokio::task::JoinSet::new();
    for w in 0..8 {
        let (url, token, sent) = (url.clone(), token.clone(), sent.clone());
        senders.spawn(async move {
            for i in 0..40 {
                let id = format!("pushed{w:02}{i:03}");
                let data = json!({"type": "customer", "id": id, "attributes": {
                    "name": format!("Pushed {w} {i}"), "rev": 1,
                    "createdAt": "2026-12-07T12:00:00.000Z", "updatedAt": "2026-12-07T12:00:00.000Z"}});
                let body = envelope("kustomer.customer.create", &data);
                let req = http()
                    .post(&url)
                    .header("x-kustomer-webhook-event", "kustomer.customer.create")
                    .header("x-kustomer-webhook-signature", sign(&token, &body))
                    .body(body)
                    .send()
                    .await;
                match req {
                    Ok(r) if r.status().is_success() => sent.lock().unwrap().push(id),
                    _ => {}
                }
            }
        });
    }
    until("some events answered", Duration::from_secs(20), async || sent.lock().unwrap().len() >= 40).await;
    stop(daemon).await;
    while senders.join_next().await.is_some() {}
    let answered = sent.lock().unwrap().clone();
    assert!(answered.len() >= 40 && answered.len() < 320, "{}", answered.len());
    // The next start applies what the inbox still holds.
    let daemon = setup.start(&server, &db);
    until("every answered event applied", Duration::from_secs(30), async || {
        answered.iter().all(|id| stored(&db, "customers", id).is_some())
    })
    .await;
    let inbox = rusqlite::Connection::open(setup.dir.path().join("inbox.db")).unwrap();
    until("the inbox emptied", Duration::from_secs(10), async || {
        inbox.query_row("SELECT COUNT(*) FROM inbox", [], |r| r.get::<_, i64>(0)).unwrap() == 0
    })
    .await;
    stop(daemon).await;
    assert_no_duplicate_log_rows(&db);
}
}

on_every_destination! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_fake_drops_reorders_or_repeats_are_repaired_by_the_next_poll(db) {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let setup = Setup::new(&server).await;
    let daemon = setup.start(&server, &db);
    first_pass(&db).await;
    fake.set_webhook_switches(WebhookSwitches {
        drop: 0.1,
        duplicate: 0.2,
        reorder: 0.2,
        retry_scale: 0.001,
        ..WebhookSwitches::default()
    });
    let mut changed = Vec::new();
    for table in ["customers", "conversations", "messages"] {
        for id in fake.update_many(table, 40) {
            changed.push((table, id));
        }
    }
    assert!(fake.webhooks_settled(Duration::from_secs(30)).await);
    let events = fake.webhook_events();
    let dropped: std::collections::HashSet<String> = events
        .iter()
        .filter(|e| e.status == "dropped")
        .map(|e| e.data_id.clone())
        .collect();
    assert!(!dropped.is_empty() && dropped.len() < 30, "{}", dropped.len());
    // Every record whose events all arrived is current; the dropped ones are not (yet).
    let mut current = 0;
    for (table, id) in &changed {
        let want = served(&server, table, id).await;
        let wait = Instant::now();
        let mut have = stored(&db, table, id);
        while have.as_ref() != Some(&want) && wait.elapsed() < Duration::from_secs(5) && !dropped.contains(id) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            have = stored(&db, table, id);
        }
        if have.as_ref() == Some(&want) {
            current += 1;
        } else {
            assert!(dropped.contains(id), "{table} {id} missed without a dropped event");
        }
    }
    assert!(current >= changed.len() - dropped.len(), "{current} of {}", changed.len());
    stop(daemon).await;
    // The next poll repairs the rest: the mirror equals the fake.
    let out = output({
        let mut c = mirror_cmd_db(&server.base_url(), KEY, &db);
        c.arg("sync");
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_mirror_equals_fake(&db, &fake);
    assert_no_duplicate_log_rows(&db);
}
}
