//! The fake's outbound webhooks over real HTTP: the management endpoints (`/v1/outbound-webhooks`
//! and through the Membrane proxy) with Kustomer's validation.

use crate::common::{KEY, fake, fake_with};
use kustomer_mirror::fake::{FakeOptions, MembraneFake, Scale};
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
