//! The fake's HTTP control API under `/_fake/` (no auth): a thin layer over [`FakeHandle`] for people
//! and out-of-process tools (benchmarks, the real binary's tests) to change data and inject faults,
//! to steer and watch the webhook sender (`/_fake/webhooks…`), and to make resources answer an error
//! (`/_fake/resources`) or search refuse contexts (`/_fake/search-contexts`).

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

use super::body::json_response;
use super::sender::SwitchesPatch;
use super::{FakeHandle, Faults, RateLimit};

pub fn router(handle: FakeHandle) -> Router {
    Router::new()
        .route("/_fake/stats", get(stats))
        .route("/_fake/stats/reset", post(reset))
        .route("/_fake/faults", post(faults))
        .route("/_fake/rate-limit", post(rate_limit))
        .route("/_fake/webhooks", post(webhook_switches))
        .route("/_fake/resources", get(resources).post(set_resources))
        .route(
            "/_fake/search-contexts",
            get(search_contexts).post(set_search_contexts),
        )
        .route("/_fake/webhooks/stats", get(webhook_stats))
        .route("/_fake/webhooks/events", get(webhook_events))
        .route("/_fake/{entity}/update-many", post(update_many))
        .route("/_fake/{entity}/touch-same", post(touch_same))
        .route("/_fake/{entity}/insert", post(insert))
        .route("/_fake/{entity}/{id}/update", post(update))
        .route("/_fake/{entity}/{id}/soft-delete", post(soft_delete))
        .route("/_fake/{entity}/{id}", delete(hard_delete))
        .with_state(handle)
}

fn ok(v: Value) -> Response {
    json_response(StatusCode::OK, v.to_string())
}

fn n(q: &HashMap<String, String>) -> usize {
    q.get("n").and_then(|n| n.parse().ok()).unwrap_or(1)
}

async fn stats(State(f): State<FakeHandle>) -> Response {
    ok(serde_json::to_value(f.stats()).unwrap_or(Value::Null))
}

async fn reset(State(f): State<FakeHandle>) -> Response {
    f.reset_stats();
    ok(json!({"ok": true}))
}

async fn faults(State(f): State<FakeHandle>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            f.set_faults(faults);
            ok(json!({"ok": true}))
        }
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": e.to_string()}).to_string(),
        ),
    }
}

async fn rate_limit(State(f): State<FakeHandle>, body: axum::body::Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let budget = |key: &str| {
        v[key]["requests"].as_u64().map(|r| RateLimit {
            requests: r as u32,
            window: Duration::from_millis(v[key]["window_ms"].as_u64().unwrap_or(60_000)),
        })
    };
    f.set_rate_limit(budget("org"), budget("search"));
    ok(json!({"ok": true}))
}

async fn update_many(
    State(f): State<FakeHandle>,
    Path(entity): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    ok(json!({"ids": f.update_many(&entity, n(&q))}))
}

async fn touch_same(
    State(f): State<FakeHandle>,
    Path(entity): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (ids, at) = f.touch_many_same_timestamp(&entity, n(&q));
    ok(json!({"ids": ids, "updatedAt": at}))
}

async fn insert(
    State(f): State<FakeHandle>,
    Path(entity): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    ok(json!({"id": f.insert(&entity, q.get("klass").map(String::as_str))}))
}

async fn update(
    State(f): State<FakeHandle>,
    Path((entity, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let patch: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
    match f.update(&entity, &id, patch) {
        Some(v) => ok(v),
        None => json_response(
            StatusCode::NOT_FOUND,
            json!({"error": "no such record"}).to_string(),
        ),
    }
}

async fn soft_delete(
    State(f): State<FakeHandle>,
    Path((entity, id)): Path<(String, String)>,
) -> Response {
    ok(json!({"deleted": f.soft_delete(&entity, &id)}))
}

async fn hard_delete(
    State(f): State<FakeHandle>,
    Path((entity, id)): Path<(String, String)>,
) -> Response {
    ok(json!({"deleted": f.hard_delete(&entity, &id)}))
}

fn bad_request(why: String) -> Response {
    json_response(StatusCode::BAD_REQUEST, json!({"error": why}).to_string())
}

/// `{"duplicate", "reorder", "delay_ms", "drop", "retry_scale"}`, all optional: keys left out keep
/// their value. Answers the switches now in force.
async fn webhook_switches(State(f): State<FakeHandle>, body: axum::body::Bytes) -> Response {
    let patch = if body.is_empty() {
        Ok(SwitchesPatch::default())
    } else {
        serde_json::from_slice::<SwitchesPatch>(&body).map_err(|e| e.to_string())
    };
    match patch.and_then(|p| p.apply(&f.webhook_switches())) {
        Ok(switches) => {
            f.set_webhook_switches(switches.clone());
            ok(serde_json::to_value(switches).unwrap_or(Value::Null))
        }
        Err(why) => bad_request(why),
    }
}

async fn webhook_stats(State(f): State<FakeHandle>) -> Response {
    ok(serde_json::to_value(f.webhook_stats()).unwrap_or(Value::Null))
}

async fn webhook_events(State(f): State<FakeHandle>) -> Response {
    ok(json!({"events": f.webhook_events()}))
}

/// `{"work_sessions": 403, "slas": 404, "brands": null}`: every GET of each named entity answers
/// that status (null serves it again). Answers the statuses now in force.
async fn set_resources(State(f): State<FakeHandle>, body: axum::body::Bytes) -> Response {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("expected an object of entity → status or null".to_string());
    };
    let mut changes = Vec::new();
    for (entity, status) in map {
        let status = match status {
            Value::Null => None,
            v => match v.as_u64().filter(|s| (100..600).contains(s)) {
                Some(s) => Some(s as u16),
                None => return bad_request(format!("{entity}: {v} is not an HTTP status")),
            },
        };
        changes.push((entity, status));
    }
    for (entity, status) in changes {
        f.set_resource_answer(&entity, status);
    }
    resources(State(f)).await
}

async fn resources(State(f): State<FakeHandle>) -> Response {
    ok(serde_json::to_value(f.resource_answers()).unwrap_or(Value::Null))
}

/// `{"refuse": ["work_session"]}`: search answers 400 for these contexts (an empty list clears).
/// Answers the contexts refused now.
async fn set_search_contexts(State(f): State<FakeHandle>, body: axum::body::Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(list) = v["refuse"].as_array() else {
        return bad_request("expected {\"refuse\": [context, …]}".to_string());
    };
    let contexts: Option<Vec<String>> = list
        .iter()
        .map(|c| c.as_str().map(str::to_string))
        .collect();
    let Some(contexts) = contexts else {
        return bad_request("contexts must be strings".to_string());
    };
    f.refuse_search_contexts(contexts);
    search_contexts(State(f)).await
}

async fn search_contexts(State(f): State<FakeHandle>) -> Response {
    ok(json!({"refuse": f.refused_search_contexts()}))
}
