//! The built-in fake Kustomer API over real HTTP: auth, paging and links, search, the page cap, rate
//! limits, every fault kind, mutations, and the `fake-api` command.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::{KEY, fake, fake_with};
use kustomer_mirror::fake::{FakeOptions, Faults, RateLimit, ResetStyle, Scale};
use serde_json::{Value, json};

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn get(base: &str, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = http()
        .get(format!("{base}{path}"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

async fn search(base: &str, body: Value, page: u32, size: u32) -> (u16, Value) {
    let r = http()
        .post(format!(
            "{base}/v1/customers/search?page={page}&pageSize={size}"
        ))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn requests_without_the_right_key_get_kustomers_401_body() {
    let server = fake(Scale::Small).await;
    let base = server.base_url();
    let missing = http()
        .get(format!("{base}/v1/customers"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["errors"][0]["status"], "401");
    let wrong = http()
        .get(format!("{base}/v1/customers"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let (status, _, _) = get(&base, "/v1/auth/tokens/current").await;
    assert_eq!(status, 200);
    assert_eq!(server.handle().stats().unauthorized, 2);
}

#[tokio::test]
async fn lists_page_to_the_end_with_relative_links() {
    let server = fake(Scale::Small).await;
    let base = server.base_url();
    let mut link = "/v1/conversations?page=1&pageSize=100".to_string();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (status, _, page) = get(&base, &link).await;
        assert_eq!(status, 200);
        pages += 1;
        if pages == 1 {
            assert!(page["links"]["prev"].is_null());
            assert_eq!(
                page["links"]["first"],
                "/v1/conversations?page=1&pageSize=100"
            );
        } else {
            assert!(
                page["links"]["prev"]
                    .as_str()
                    .unwrap()
                    .starts_with("/v1/conversations?page=")
            );
        }
        seen.extend(ids(&page));
        match page["links"]["next"].as_str() {
            Some(next) => link = next.to_string(),
            None => break,
        }
    }
    let distinct: HashSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "no record twice");
    assert_eq!(seen.len(), server.handle().count("conversations"));
    assert_eq!(pages, seen.len().div_ceil(100));
    // Page sizes are clamped per endpoint; customers report totals.
    let (_, _, customers) = get(&base, "/v1/customers?page=1&pageSize=500").await;
    assert_eq!(customers["data"].as_array().unwrap().len(), 100);
    assert_eq!(
        customers["meta"]["total"],
        server.handle().count("customers")
    );
    let (_, _, users) = get(&base, "/v1/users?page=1&pageSize=500").await;
    assert_eq!(
        users["data"].as_array().unwrap().len(),
        server.handle().count("users")
    );
    assert!(users["links"]["next"].is_null());
    let (_, _, queues) = get(&base, "/v1/routing/queues").await;
    assert!(
        queues["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["attributes"]["system"] == true)
    );
}

#[tokio::test]
async fn per_parent_lists_and_by_id_reads_answer_like_kustomer() {
    let server = fake(Scale::Small).await;
    let base = server.base_url();
    let fake = server.handle();
    let conversation = fake.records("conversations").remove(0);
    let id = conversation["id"].as_str().unwrap();
    let (status, _, one) = get(&base, &format!("/v1/conversations/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["data"], conversation);
    let (_, _, messages) = get(&base, &format!("/v1/conversations/{id}/messages")).await;
    for m in messages["data"].as_array().unwrap() {
        assert_eq!(m["relationships"]["conversation"]["data"]["id"], id);
    }
    let customer = conversation["relationships"]["customer"]["data"]["id"]
        .as_str()
        .unwrap();
    let (_, _, theirs) = get(&base, &format!("/v1/customers/{customer}/conversations")).await;
    assert!(ids(&theirs).contains(&id.to_string()));
    let (status, _, missing) = get(&base, "/v1/customers/000000000000000000000000").await;
    assert_eq!(status, 404);
    assert!(missing["errors"].is_array());
    let klass = &fake.klass_names()[0];
    let (_, _, kobjects) = get(&base, &format!("/v1/klasses/{klass}")).await;
    let kobject = kobjects["data"][0]["id"].as_str().unwrap();
    let (status, _, _) = get(&base, &format!("/v1/klasses/{klass}/{kobject}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn search_filters_sorts_and_hides_deleted_records_unless_asked() {
    let server = fake(Scale::Small).await;
    let base = server.base_url();
    let fake = server.handle();
    let all = fake.records("customers");
    let mut times: Vec<&str> = all
        .iter()
        .map(|c| c["attributes"]["updatedAt"].as_str().unwrap())
        .collect();
    times.sort();
    let middle = times[times.len() / 2];
    let (status, page) = search(&base, json!({"queryContext": "customer", "and": [{"customer_updated_at": {"gte": middle}}], "sort": [{"customer_updated_at": "asc"}], "includeDeleted": true}), 1, 500).await;
    assert_eq!(status, 200);
    let got: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["attributes"]["updatedAt"].as_str().unwrap())
        .collect();
    assert!(got.windows(2).all(|w| w[0] <= w[1]), "ascending");
    assert!(got.iter().all(|t| *t >= middle));
    assert_eq!(got.len(), times.iter().filter(|t| **t >= middle).count());
    assert_eq!(page["meta"]["timed_out"], false);
    let (_, desc) = search(&base, json!({"queryContext": "customer", "and": [{"customer_updated_at": {"lt": middle}}], "sort": [{"customer_updated_at": "desc"}], "includeDeleted": true}), 1, 500).await;
    let got: Vec<&str> = desc["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["attributes"]["updatedAt"].as_str().unwrap())
        .collect();
    assert!(got.windows(2).all(|w| w[0] >= w[1]), "descending");
    assert!(got.iter().all(|t| *t < middle));
    // gt excludes the bound; lte includes it.
    let (_, gt) = search(&base, json!({"queryContext": "customer", "and": [{"customer_updated_at": {"gt": middle}}], "includeDeleted": true}), 1, 500).await;
    let (_, lte) = search(&base, json!({"queryContext": "customer", "and": [{"customer_updated_at": {"lte": middle}}], "includeDeleted": true}), 1, 500).await;
    assert_eq!(
        gt["meta"]["total"].as_u64().unwrap() + lte["meta"]["total"].as_u64().unwrap(),
        all.len() as u64
    );
    // Soft-deleted records only with includeDeleted.
    let victim = all
        .iter()
        .find(|c| c["attributes"]["deleted"] != true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    fake.soft_delete("customers", &victim);
    let by_id = json!({"queryContext": "customer", "and": [{"customer_id": {"equals": victim}}]});
    let (_, hidden) = search(&base, by_id.clone(), 1, 10).await;
    assert_eq!(hidden["meta"]["total"], 0);
    let mut with_deleted = by_id;
    with_deleted["includeDeleted"] = json!(true);
    let (_, shown) = search(&base, with_deleted, 1, 10).await;
    assert_eq!(shown["data"][0]["attributes"]["deleted"], true);
    // idsOnly answers ids, other contexts work, a rejected context is a 400.
    let r = http()
        .post(format!(
            "{base}/v1/customers/search?page=1&pageSize=5&idsOnly=true"
        ))
        .bearer_auth(KEY)
        .json(&json!({"queryContext": "conversation"}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(v["data"][0].get("attributes").is_none());
    assert_eq!(v["data"][0]["type"], "conversation");
    let klass = &fake.klass_names()[0];
    let (status, k) = search(
        &base,
        json!({"queryContext": format!("kobject_{klass}")}),
        1,
        5,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(k["data"][0]["type"], "kobject");
    let (status, _) = search(
        &base,
        json!({"queryContext": "customer", "and": [{"customer_colour": {"gte": "x"}}]}),
        1,
        5,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn search_stops_at_the_hundred_page_cap() {
    let server = fake(Scale::Small).await;
    let base = server.base_url();
    let body = json!({"queryContext": "message", "includeDeleted": true});
    let (status, page) = search(&base, body.clone(), 100, 5).await;
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().unwrap().len(), 5);
    let (status, beyond) = search(&base, body.clone(), 101, 5).await;
    assert_eq!(status, 400);
    assert!(
        beyond["errors"][0]["title"]
            .as_str()
            .unwrap()
            .contains("100 pages")
    );
    let mut opts = FakeOptions::new(1, Scale::Small, KEY);
    opts.max_result_window = 1_000;
    let small_window = fake_with(opts).await;
    let (status, _) = search(&small_window.base_url(), body, 3, 500).await;
    assert_eq!(status, 400, "page × pageSize past the result window");
}

#[tokio::test]
async fn search_totals_are_exact_up_to_the_result_window_and_read_one_more_beyond_it() {
    let mut opts = FakeOptions::new(1, Scale::Small, KEY);
    opts.max_result_window = 1_000;
    let server = fake_with(opts).await;
    let base = server.base_url();
    let messages = server.handle().records("messages").len();
    assert!(messages > 1_001, "small has more messages than the window");
    let all = json!({"queryContext": "message", "includeDeleted": true});
    let (_, first) = search(&base, all.clone(), 1, 10).await;
    assert_eq!(first["meta"]["total"], 1_001);
    assert_eq!(first["data"].as_array().unwrap().len(), 10);
    let (_, last) = search(&base, all, 2, 500).await;
    assert_eq!(last["meta"]["total"], 1_001);
    assert_eq!(last["data"].as_array().unwrap().len(), 500);
    // Under the window the count is exact.
    let notes = server.handle().records("notes").len();
    let (_, exact) = search(
        &base,
        json!({"queryContext": "note", "includeDeleted": true}),
        1,
        5,
    )
    .await;
    assert_eq!(exact["meta"]["total"].as_u64().unwrap() as usize, notes);
}

#[tokio::test]
async fn a_spent_budget_answers_429_with_rate_limit_headers() {
    for style in [ResetStyle::SecondsFromNow, ResetStyle::EpochSeconds] {
        let mut opts = FakeOptions::new(1, Scale::Small, KEY);
        opts.rate_limit = Some(RateLimit {
            requests: 3,
            window: Duration::from_secs(30),
        });
        opts.search_rate_limit = Some(RateLimit {
            requests: 1,
            window: Duration::from_secs(30),
        });
        opts.reset_style = style;
        opts.retry_after = true;
        let server = fake_with(opts).await;
        let base = server.base_url();
        let (status, headers, _) = get(&base, "/v1/tags").await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-ratelimit-limit"], "3");
        assert_eq!(headers["x-ratelimit-remaining"], "2");
        let (status, _) = search(&base, json!({"queryContext": "customer"}), 1, 5).await;
        assert_eq!(status, 200);
        let (status, _) = search(&base, json!({"queryContext": "customer"}), 1, 5).await;
        assert_eq!(status, 429, "the search budget is separate and smaller");
        let (status, headers, body) = get(&base, "/v1/tags").await;
        assert_eq!(status, 429);
        assert_eq!(headers["x-ratelimit-remaining"], "0");
        assert!(body["errors"].is_array());
        assert!(headers.contains_key("retry-after"));
        let reset: u64 = headers["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        match style {
            ResetStyle::SecondsFromNow => assert!((1..=30).contains(&reset)),
            ResetStyle::EpochSeconds => assert!(reset > 1_700_000_000),
        }
        assert_eq!(server.handle().stats().served_429, 2);
    }
    // Another integration spending the budget.
    let mut opts = FakeOptions::new(1, Scale::Small, KEY);
    opts.rate_limit = Some(RateLimit {
        requests: 10,
        window: Duration::from_secs(30),
    });
    let server = fake_with(opts).await;
    server.handle().spend_budget(10);
    assert_eq!(get(&server.base_url(), "/v1/tags").await.0, 429);
}

#[tokio::test]
async fn every_fault_kind_can_be_injected() {
    let server = fake(Scale::Small).await;
    let base = server.base_url();
    let fake = server.handle();
    let one = |f: Faults| fake.set_faults(f);
    one(Faults {
        server_error: 1.0,
        ..Faults::default()
    });
    let (status, _, body) = get(&base, "/v1/tags").await;
    assert!([500, 502, 503].contains(&status));
    assert!(body["errors"].is_array());
    one(Faults {
        empty_body_error: 1.0,
        ..Faults::default()
    });
    let r = http()
        .get(format!("{base}/v1/tags"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_server_error());
    assert!(r.bytes().await.unwrap().is_empty());
    one(Faults {
        truncated_json: 1.0,
        ..Faults::default()
    });
    let r = http()
        .get(format!("{base}/v1/tags"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());
    one(Faults {
        dropped_connection: 1.0,
        ..Faults::default()
    });
    let dropped = match http()
        .get(format!("{base}/v1/tags"))
        .bearer_auth(KEY)
        .send()
        .await
    {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(dropped, "a dropped connection is an error to the client");
    one(Faults {
        expired_token: 1.0,
        ..Faults::default()
    });
    let (status, _, body) = get(&base, "/v1/tags").await;
    assert_eq!(status, 401);
    assert!(body.to_string().contains("Expired token"));
    one(Faults {
        slow: 1.0,
        slow_delay: Duration::from_millis(300),
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let (status, _, _) = get(&base, "/v1/tags").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    one(Faults {
        server_error: 0.3,
        ..Faults::default()
    });
    let mut failures = 0;
    for _ in 0..100 {
        if get(&base, "/v1/tags").await.0 >= 500 {
            failures += 1;
        }
    }
    assert!(
        (10..=55).contains(&failures),
        "{failures} of 100 at a 30% rate"
    );
}

#[tokio::test]
async fn mutations_show_in_lists_by_id_and_search() {
    let server = fake(Scale::Small).await;
    let base = server.base_url();
    let fake = server.handle();
    let before = fake.count("notes");
    let id = fake.insert("notes", None);
    assert_eq!(fake.count("notes"), before + 1);
    let (status, _, one) = get(&base, &format!("/v1/notes/{id}")).await;
    assert_eq!(status, 200);
    let at = one["data"]["attributes"]["updatedAt"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, found) = search(
        &base,
        json!({"queryContext": "note", "and": [{"note_updated_at": {"gte": at}}]}),
        1,
        50,
    )
    .await;
    assert!(ids(&found).contains(&id));
    let updated = fake
        .update("notes", &id, json!({"body": "edited ✍️"}))
        .unwrap();
    assert!(updated["attributes"]["updatedAt"].as_str().unwrap() >= at.as_str());
    let (_, _, one) = get(&base, &format!("/v1/notes/{id}")).await;
    assert_eq!(one["data"]["attributes"]["body"], "edited ✍️");
    assert!(fake.hard_delete("notes", &id));
    assert_eq!(get(&base, &format!("/v1/notes/{id}")).await.0, 404);
    let (ids_same, ts) = fake.touch_many_same_timestamp("messages", 50);
    assert_eq!(ids_same.len(), 50);
    let (_, tied) = search(&base, json!({"queryContext": "message", "and": [{"message_updated_at": {"gte": ts}}], "sort": [{"message_updated_at": "asc"}]}), 1, 100).await;
    assert_eq!(tied["meta"]["total"], 50);
    // The DELETE endpoint answers 204.
    let conv = fake.records("conversations")[3]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http()
        .delete(format!("{base}/v1/conversations/{conv}"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(fake.record("conversations", &conv).is_none());
}

#[tokio::test]
async fn a_lagging_index_hides_fresh_changes_from_search_only() {
    let mut opts = FakeOptions::new(1, Scale::Small, KEY);
    opts.index_lag = Duration::from_millis(400);
    let server = fake_with(opts).await;
    let base = server.base_url();
    let fake = server.handle();
    let id = fake.update_many("customers", 1).remove(0);
    let changed = std::time::Instant::now();
    let at = fake.record("customers", &id).unwrap()["attributes"]["updatedAt"]
        .as_str()
        .unwrap()
        .to_string();
    let query = json!({"queryContext": "customer", "and": [{"customer_updated_at": {"gte": at}}]});
    let (_, early) = search(&base, query.clone(), 1, 10).await;
    assert!(!ids(&early).contains(&id));
    assert_eq!(
        get(&base, &format!("/v1/customers/{id}")).await.2["data"]["attributes"]["updatedAt"],
        at
    );
    // Poll until search sees it (no fixed wait racing the lag): it must, and not before the lag.
    loop {
        let (_, late) = search(&base, query.clone(), 1, 10).await;
        if ids(&late).contains(&id) {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(10),
            "the change never reached search"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(changed.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn the_same_seed_gives_the_same_organisation() {
    let a = fake_with(FakeOptions::new(9, Scale::Small, KEY))
        .await
        .handle();
    let b = fake_with(FakeOptions::new(9, Scale::Small, KEY))
        .await
        .handle();
    let c = fake_with(FakeOptions::new(10, Scale::Small, KEY))
        .await
        .handle();
    assert_eq!(a.records("messages"), b.records("messages"));
    assert_ne!(a.records("messages"), c.records("messages"));
    // Data is realistic: unicode, custom attributes of every suffix, real relationship ids.
    let customers = serde_json::to_string(&a.records("customers")).unwrap();
    for needle in [
        "loyaltyTierStr",
        "lifetimeValueNum",
        "vipBool",
        "lastOrderAt",
        "notesTxt",
        "profileUrl",
    ] {
        assert!(customers.contains(needle), "{needle}");
    }
    assert!(
        customers
            .chars()
            .any(|ch| ('\u{0590}'..='\u{06FF}').contains(&ch)),
        "RTL text"
    );
    let users: HashSet<String> = a
        .records("users")
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    for m in a.records("messages") {
        assert!(
            users.contains(
                m["relationships"]["createdBy"]["data"]["id"]
                    .as_str()
                    .unwrap()
            )
        );
    }
}

#[tokio::test]
async fn the_control_api_changes_data_over_http() {
    let server = fake(Scale::Small).await;
    let base = server.base_url();
    let c = http();
    let r: Value = c
        .post(format!("{base}/_fake/customers/update-many?n=3"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ids"].as_array().unwrap().len(), 3);
    let r: Value = c
        .post(format!("{base}/_fake/tags/insert"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["id"].as_str().unwrap();
    assert!(server.handle().record("tags", id).is_some());
    c.post(format!("{base}/_fake/faults"))
        .body(r#"{"server_error": 1.0}"#)
        .send()
        .await
        .unwrap();
    assert!(get(&base, "/v1/tags").await.0 >= 500);
    c.post(format!("{base}/_fake/faults"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let stats: Value = c
        .get(format!("{base}/_fake/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["served_5xx"], 1);
}

#[tokio::test]
async fn on_request_hooks_run_once_at_their_request() {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = ran.clone();
    fake.on_request(
        2,
        Box::new(move |_| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }),
    );
    get(&server.base_url(), "/v1/tags").await;
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);
    get(&server.base_url(), "/v1/tags").await;
    get(&server.base_url(), "/v1/tags").await;
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn the_fake_api_command_prints_its_url_and_key() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kustomer-mirror"))
        .args(["fake-api", "--listen", "127.0.0.1:0", "--api-key", "k-1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url_line = lines.next().unwrap().unwrap();
    let key_line = lines.next().unwrap().unwrap();
    let url = url_line
        .strip_prefix("Fake Kustomer API listening on ")
        .unwrap()
        .to_string();
    assert!(!url.ends_with(":0"), "{url}");
    assert_eq!(key_line, "Accepting API key: k-1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
            .get(format!("{url}/v1/tags"))
            .bearer_auth("k-1")
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    let _ = child.kill();
    let _ = child.wait();
    // A taken address is one clear line and exit 2.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kustomer-mirror"))
        .args(["fake-api", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&addr));
}
