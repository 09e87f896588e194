//! The fake's outbound webhooks over real HTTP: the management endpoints (`/v1/outbound-webhooks`
//! and through the Membrane proxy) with Kustomer's validation, and the sender: signed envelopes
//! carrying the served record, no `changes` on creates, retries on Kustomer's schedule (scaled), and
//! the drop, duplicate and reorder switches, seen by a receiver in the test.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};

use crate::common::{KEY, fake, fake_with};
use kustomer_mirror::fake::{FakeOptions, MembraneFake, Scale, WebhookSwitches, webhook_signature};
use serde_json::{Value, json};

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn call(method: &str, url: &str, bearer: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http().request(method, url).bearer_auth(bearer);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn hook_body(url: &str, events: &[&str]) -> Value {
    json!({"name": "mirror", "url": url, "events": events})
}

#[tokio::test]
async fn webhooks_are_created_listed_read_and_deleted() {
    let server = fake(Scale::Small).await;
    let base = server.base_url();
    let hooks = format!("{base}/v1/outbound-webhooks");

    let (status, _) = call("GET", &hooks, "wrong-key", None).await;
    assert_eq!(status, 401);

    let (status, events) = call("GET", &format!("{hooks}/events"), KEY, None).await;
    assert_eq!(status, 200);
    let mut names: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "kustomer.conversation.create",
            "kustomer.conversation.update",
            "kustomer.customer.create",
            "kustomer.customer.update",
            "kustomer.message.create",
            "kustomer.message.update",
            "kustomer.tag.create",
            "kustomer.tag.update",
            "kustomer.team.create",
            "kustomer.team.update",
            "kustomer.user.create",
            "kustomer.user.update",
        ]
    );

    let body = json!({
        "name": "mirror",
        "url": "https://hooks.example.com/kustomer",
        "events": ["kustomer.conversation.update", "kustomer.customer.create"],
        "headers": [{"name": "X-Source", "value": "kustomer"}],
    });
    let (status, created) = call("POST", &hooks, KEY, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let data = &created["data"];
    assert_eq!(data["type"], "outbound-webhook");
    let id = data["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 24);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    let attrs = &data["attributes"];
    assert_eq!(attrs["name"], "mirror");
    assert_eq!(attrs["url"], "https://hooks.example.com/kustomer");
    assert_eq!(
        attrs["events"],
        json!(["kustomer.conversation.update", "kustomer.customer.create"])
    );
    assert_eq!(
        attrs["headers"],
        json!([{"name": "X-Source", "value": "kustomer"}])
    );
    assert_eq!(attrs["enabled"], true);
    let token = attrs["token"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(attrs["createdAt"].as_str().unwrap().ends_with('Z'));

    let (status, one) = call("GET", &format!("{hooks}/{id}"), KEY, None).await;
    assert_eq!(status, 200);
    assert_eq!(one["data"]["id"], id.as_str());
    assert_eq!(one["data"]["attributes"]["token"], token);

    let (status, list) = call("GET", &hooks, KEY, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], id.as_str());

    let (status, _) = call("DELETE", &format!("{hooks}/{id}"), KEY, None).await;
    assert_eq!(status, 204);
    let (status, gone) = call("GET", &format!("{hooks}/{id}"), KEY, None).await;
    assert_eq!(status, 404);
    assert_eq!(gone["errors"][0]["status"], "404");
    let (status, _) = call("DELETE", &format!("{hooks}/{id}"), KEY, None).await;
    assert_eq!(status, 404);
    let (_, list) = call("GET", &hooks, KEY, None).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn invalid_webhooks_are_refused_with_400_naming_the_problem() {
    let server = fake(Scale::Small).await;
    let hooks = format!("{}/v1/outbound-webhooks", server.base_url());
    let one = ["kustomer.customer.update"];
    let refused = |body: Value| {
        let hooks = hooks.clone();
        async move {
            let (status, answer) = call("POST", &hooks, KEY, Some(body)).await;
            assert_eq!(status, 400, "{answer}");
            answer["errors"][0]["title"].as_str().unwrap().to_string()
        }
    };

    let why = refused(hook_body("http://hooks.example.com/k", &one)).await;
    assert!(why.contains("https"), "{why}");
    let thirteen = [
        "kustomer.customer.create",
        "kustomer.customer.update",
        "kustomer.conversation.create",
        "kustomer.conversation.update",
        "kustomer.message.create",
        "kustomer.message.update",
        "kustomer.user.create",
        "kustomer.user.update",
        "kustomer.team.create",
        "kustomer.team.update",
        "kustomer.tag.create",
        "kustomer.tag.update",
        "kustomer.customer.create",
    ];
    let why = refused(hook_body("https://h.example.com/k", &thirteen)).await;
    assert!(why.contains("at most 12"), "{why}");
    let why = refused(hook_body("https://h.example.com/k", &[])).await;
    assert!(why.contains("at least one"), "{why}");
    let why = refused(hook_body(
        "https://h.example.com/k",
        &["kustomer.note.create"],
    ))
    .await;
    assert!(why.contains("kustomer.note.create"), "{why}");
    let long = "n".repeat(256);
    let why = refused(json!({"name": long, "url": "https://h.example.com/k", "events": one})).await;
    assert!(why.contains("255"), "{why}");
    let why = refused(json!({"url": "https://h.example.com/k", "events": one})).await;
    assert!(why.contains("name"), "{why}");

    // Loopback http is the fake's one exception to https; five hooks fit, a sixth does not.
    for url in [
        "http://127.0.0.1:9/a",
        "http://[::1]:9/b",
        "http://localhost:9/c",
        "https://h.example.com/d",
        "https://h.example.com/e",
    ] {
        let (status, answer) = call("POST", &hooks, KEY, Some(hook_body(url, &one))).await;
        assert_eq!(status, 201, "{url}: {answer}");
    }
    let why = refused(hook_body("https://h.example.com/f", &one)).await;
    assert!(why.contains("at most 5"), "{why}");
    let (_, list) = call("GET", &hooks, KEY, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn webhooks_are_managed_through_the_membrane_proxy_too() {
    let mut opts = FakeOptions::new(21, Scale::Small, KEY);
    opts.membrane = Some(MembraneFake {
        workspace_key: "ws-test".into(),
        workspace_secret: "ws-secret".into(),
        connection_id: "conn-1".into(),
    });
    let server = fake_with(opts).await;
    let token = kustomer_mirror::kustomer::jwt::sign(
        &json!({"workspaceKey": "ws-test", "exp": 4_000_000_000u64}),
        b"ws-secret",
    );
    let hooks = format!(
        "{}/connections/conn-1/proxy/v1/outbound-webhooks",
        server.base_url()
    );
    let body = hook_body("https://h.example.com/k", &["kustomer.tag.update"]);
    let (status, created) = call("POST", &hooks, &token, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_str().unwrap();
    let (status, one) = call("GET", &format!("{hooks}/{id}"), &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        one["data"]["attributes"]["events"],
        json!(["kustomer.tag.update"])
    );
    // The same hook is visible under /v1 with the API key.
    let direct = format!("{}/v1/outbound-webhooks/{id}", server.base_url());
    let (status, _) = call("GET", &direct, KEY, None).await;
    assert_eq!(status, 200);
}

/// One POST the receiver got: its headers and raw body.
struct Got {
    headers: HeaderMap,
    body: Bytes,
}

/// A webhook receiver on 127.0.0.1:0 that records every POST and answers the statuses of `script`
/// in turn, then 200.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> Receiver {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let script = Arc::new(Mutex::new(
            script.iter().copied().collect::<VecDeque<u16>>(),
        ));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post({
                let got = got.clone();
                move |headers: HeaderMap, body: Bytes| {
                    let got = got.clone();
                    let script = script.clone();
                    async move {
                        got.lock().unwrap().push(Got { headers, body });
                        let status = script.lock().unwrap().pop_front().unwrap_or(200);
                        axum::http::StatusCode::from_u16(status).unwrap()
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, got }
    }

    fn bodies(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|g| serde_json::from_slice(&g.body).unwrap())
            .collect()
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

/// Registers a hook on `events` to `url`; its id and token as the fake answered them.
async fn register(base: &str, url: &str, events: &[&str]) -> (String, String) {
    let hooks = format!("{base}/v1/outbound-webhooks");
    let (status, created) = call("POST", &hooks, KEY, Some(hook_body(url, events))).await;
    assert_eq!(status, 201, "{created}");
    (
        created["data"]["id"].as_str().unwrap().to_string(),
        created["data"]["attributes"]["token"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

/// Polls `GET /_fake/webhooks/stats` until nothing is pending; the last stats.
async fn settled(base: &str) -> Value {
    for _ in 0..1000 {
        let (status, stats) = call("GET", &format!("{base}/_fake/webhooks/stats"), KEY, None).await;
        assert_eq!(status, 200);
        if stats["pending"] == 0 {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("webhook deliveries still pending after 10 s");
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_signature_function_is_hmac_sha256_rfc_4231_case_2() {
    assert_eq!(
        webhook_signature("Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[tokio::test]
async fn changes_arrive_signed_carrying_the_served_record() {
    let server = fake(Scale::Small).await;
    let base = server.base_url();
    let rx = Receiver::start(&[]).await;
    let (_, token) = register(
        &base,
        &rx.url,
        &["kustomer.conversation.update", "kustomer.customer.create"],
    )
    .await;

    // An update of a conversation, through the control API.
    let (_, page) = call(
        "GET",
        &format!("{base}/v1/conversations?pageSize=1"),
        KEY,
        None,
    )
    .await;
    let conv = page["data"][0]["id"].as_str().unwrap().to_string();
    let old_name = page["data"][0]["attributes"]["name"].clone();
    assert!(old_name.is_string());
    let url = format!("{base}/_fake/conversations/{conv}/update");
    let (status, _) = call("POST", &url, KEY, Some(json!({"name": "Webhook test ✉️"}))).await;
    assert_eq!(status, 200);
    let stats = settled(&base).await;
    assert_eq!(stats["sent"], 1);
    assert_eq!(stats["delivered"], 1);
    assert_eq!(stats["failed"], 0);
    assert_eq!(rx.count(), 1);
    {
        let got = rx.got.lock().unwrap();
        let g = &got[0];
        assert_eq!(g.headers["content-type"], "application/json");
        assert_eq!(
            g.headers["x-kustomer-webhook-event"],
            "kustomer.conversation.update"
        );
        let signature = g.headers["x-kustomer-webhook-signature"].to_str().unwrap();
        assert_eq!(signature, hmac_hex(&token, &g.body));
    }
    let event = &rx.bodies()[0];
    assert_eq!(event["name"], "kustomer.conversation.update");
    assert_eq!(event["dataId"], conv.as_str());
    assert_eq!(event["orgName"], "fake");
    assert_eq!(event["persist"], true);
    assert_eq!(event["org"], event["partition"]);
    assert_eq!(event["id"].as_str().unwrap().len(), 24);
    let (status, served) = call("GET", &format!("{base}/v1/conversations/{conv}"), KEY, None).await;
    assert_eq!(status, 200);
    assert_eq!(event["data"], served["data"]);
    assert_eq!(event["data"]["attributes"]["name"], "Webhook test ✉️");
    let name = &event["changes"]["attributes"]["name"];
    assert_eq!(name["op"], "replace");
    assert_eq!(name["before"], old_name);
    assert_eq!(name["after"], "Webhook test ✉️");
    assert_eq!(
        event["changes"]["attributes"]["updatedAt"]["after"],
        served["data"]["attributes"]["updatedAt"]
    );

    // A created customer: no `changes` key at all.
    let (_, created) = call("POST", &format!("{base}/_fake/customers/insert"), KEY, None).await;
    let customer = created["id"].as_str().unwrap().to_string();
    settled(&base).await;
    assert_eq!(rx.count(), 2);
    let event = &rx.bodies()[1];
    assert_eq!(event["name"], "kustomer.customer.create");
    assert_eq!(event["dataId"], customer.as_str());
    assert!(event.get("changes").is_none(), "{event}");
    let (_, served) = call("GET", &format!("{base}/v1/customers/{customer}"), KEY, None).await;
    assert_eq!(event["data"], served["data"]);
    {
        let got = rx.got.lock().unwrap();
        let signature = got[1].headers["x-kustomer-webhook-signature"]
            .to_str()
            .unwrap();
        assert_eq!(signature, hmac_hex(&token, &got[1].body));
    }

    // Not subscribed (customer update), not an event entity (notes), hard deletes: nothing sent.
    let url = format!("{base}/_fake/customers/{customer}/update");
    call("POST", &url, KEY, Some(json!({"name": "x"}))).await;
    call("POST", &format!("{base}/_fake/notes/insert"), KEY, None).await;
    call(
        "DELETE",
        &format!("{base}/_fake/conversations/{conv}"),
        KEY,
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = settled(&base).await;
    assert_eq!(stats["sent"], 2);
    assert_eq!(rx.count(), 2);
    let log = server.handle().webhook_events();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].name, "kustomer.conversation.update");
    assert_eq!(log[0].status, "delivered");
    assert_eq!(log[1].data_id, customer);
}

#[tokio::test]
async fn failed_deliveries_are_retried_on_kustomers_schedule_scaled() {
    let server = fake(Scale::Small).await;
    let base = server.base_url();
    let (status, switches) = call(
        "POST",
        &format!("{base}/_fake/webhooks"),
        KEY,
        Some(json!({"retry_scale": 0.001})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        switches,
        json!({"duplicate": 0.0, "reorder": 0.0, "delay_ms": 0, "drop": 0.0, "retry_scale": 0.001})
    );
    let (status, _) = call(
        "POST",
        &format!("{base}/_fake/webhooks"),
        KEY,
        Some(json!({"drop": 1.5})),
    )
    .await;
    assert_eq!(status, 400);

    let rx = Receiver::start(&[503, 503]).await;
    register(&base, &rx.url, &["kustomer.tag.create"]).await;
    call("POST", &format!("{base}/_fake/tags/insert"), KEY, None).await;
    let stats = settled(&base).await;
    assert_eq!(rx.count(), 3);
    let bodies: Vec<Bytes> = rx
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|g| g.body.clone())
        .collect();
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    assert_eq!(stats["attempts"], 3);
    assert_eq!(stats["retried"], 2);
    assert_eq!(stats["delivered"], 1);
    assert_eq!(stats["failed"], 0);

    // A receiver that is down: the first attempt and 7 retries (64 min × 0.001 ≈ 3.8 s), then given up.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    register(&base, &dead, &["kustomer.user.create"]).await;
    call("POST", &format!("{base}/_fake/users/insert"), KEY, None).await;
    let stats = settled(&base).await;
    assert_eq!(stats["attempts"], 3 + 8);
    assert_eq!(stats["retried"], 2 + 7);
    assert_eq!(stats["failed"], 1);
    let log = server.handle().webhook_events();
    assert_eq!(log[1].name, "kustomer.user.create");
    assert_eq!(log[1].status, "failed");
    assert_eq!(log[1].attempts, 8);
}

#[tokio::test]
async fn drop_duplicate_and_reorder_switches_misbehave_as_asked() {
    let server = fake(Scale::Small).await;
    let base = server.base_url();
    let fake = server.handle();
    let rx = Receiver::start(&[]).await;
    register(&base, &rx.url, &["kustomer.team.update"]).await;
    let team = fake.records("teams")[0]["id"].as_str().unwrap().to_string();

    fake.set_webhook_switches(WebhookSwitches {
        drop: 1.0,
        ..WebhookSwitches::default()
    });
    fake.update("teams", &team, json!({"name": "dropped"}));
    assert!(fake.webhooks_settled(Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.count(), 0);
    let stats = fake.webhook_stats();
    assert_eq!((stats.sent, stats.dropped), (0, 1));
    assert_eq!(fake.webhook_events()[0].status, "dropped");

    fake.set_webhook_switches(WebhookSwitches {
        duplicate: 1.0,
        ..WebhookSwitches::default()
    });
    fake.update("teams", &team, json!({"name": "twice"}));
    assert!(fake.webhooks_settled(Duration::from_secs(10)).await);
    assert_eq!(rx.count(), 2);
    let bodies = rx.bodies();
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[0]["data"]["attributes"]["name"], "twice");
    let stats = fake.webhook_stats();
    assert_eq!((stats.sent, stats.delivered, stats.duplicated), (2, 2, 1));

    // Reordered: the older version arrives after the newer one.
    fake.set_webhook_switches(WebhookSwitches {
        reorder: 1.0,
        ..WebhookSwitches::default()
    });
    fake.update("teams", &team, json!({"name": "older"}));
    fake.update("teams", &team, json!({"name": "newer"}));
    assert!(fake.webhooks_settled(Duration::from_secs(10)).await);
    let names: Vec<Value> = rx.bodies()[2..]
        .iter()
        .map(|b| b["data"]["attributes"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("newer"), json!("older")]);
}
