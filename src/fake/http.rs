//! The fake's `/v1` HTTP surface: auth, rate limits and faults first, then lists, by-id reads,
//! deletes, search and the outbound-webhook endpoints, answered in Kustomer's JSON:API shapes.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::body::{Meta, error, json_response, page_body, page_body_with, page_params};
use super::coverage;
use super::limits::{self, Fault};
use super::search;
use super::table::Table;
use super::webhooks;
use super::{Control, FakeHandle, ResetStyle};

pub fn router(handle: FakeHandle) -> Router {
    Router::new()
        .route("/v1/{*rest}", any(v1))
        .route("/connections/{connection}/proxy/{*rest}", any(proxy))
        .with_state(handle)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Search,
    List,
    ById,
    Other,
}

async fn v1(
    AxState(fake): AxState<FakeHandle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    serve_v1(fake, method, uri.path().to_string(), headers, query, body).await
}

/// Membrane's proxy: `/connections/{id}/proxy/v1/…` with a Membrane JWT instead of the API key.
/// The answer is the upstream answer unchanged; Membrane's own errors are `{type, message}`.
async fn proxy(
    AxState(fake): AxState<FakeHandle>,
    Path((connection, rest)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let membrane_error = |status: StatusCode, kind: &str, message: &str| {
        json_response(
            status,
            json!({"type": kind, "message": message}).to_string(),
        )
    };
    let (expected, api_key) = {
        let c = fake.control();
        (c.options.membrane.clone(), c.options.api_key.clone())
    };
    let Some(expected) = expected else {
        return membrane_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "Membrane is not enabled in this fake",
        );
    };
    if connection != expected.connection_id {
        return membrane_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("Connection {connection} not found"),
        );
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = crate::kustomer::jwt::verify(&token, expected.workspace_secret.as_bytes());
    let valid = claims.as_ref().is_some_and(|c| {
        c["workspaceKey"] == expected.workspace_key.as_str()
            && c["exp"].as_u64().is_some_and(|exp| exp > now)
    });
    {
        let mut c = fake.control();
        c.stats.membrane_requests += 1;
        if valid {
            c.membrane_tokens.insert(token.clone());
            c.stats.membrane_tokens_seen = c.membrane_tokens.len() as u64;
        }
    }
    if !valid {
        let why = match claims {
            None => "Invalid token signature",
            Some(_) => "Token expired or issued for another workspace",
        };
        return membrane_error(StatusCode::UNAUTHORIZED, "not_authenticated", why);
    }
    if fake.control().membrane_revoked {
        return membrane_error(
            StatusCode::BAD_REQUEST,
            "connection_is_defunct",
            "Connection is defunct: the Kustomer credentials were revoked",
        );
    }
    let mut forwarded = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {api_key}")) {
        forwarded.insert("authorization", v);
    }
    serve_v1(fake, method, format!("/{rest}"), forwarded, query, body).await
}

async fn serve_v1(
    fake: FakeHandle,
    method: Method,
    path: String,
    headers: HeaderMap,
    query: HashMap<String, String>,
    body: Bytes,
) -> Response {
    let segs = path_segments(&path);
    run_due_hooks(&fake);
    let class = classify(&fake, &method, &path, &segs);
    let gate = admit(&fake, class, &segs, &body);
    let mut response = if !bearer_matches(&headers, &gate.expected_key) {
        fake.control().stats.unauthorized += 1;
        error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized: missing or invalid API key",
        )
    } else if gate.limited {
        too_many_requests(gate.retry_after, gate.rate_headers.2)
    } else {
        answer_with_fault(&fake, gate.fault, &method, &segs, &query, &body).await
    };
    finish(&fake, &mut response, gate.rate_headers, gate.reset_style);
    response
}

/// The non-empty path segments after `/v1/`.
fn path_segments(path: &str) -> Vec<String> {
    path.trim_start_matches("/v1/")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Runs the hooks due at this request (counting it as seen), without locks held.
fn run_due_hooks(fake: &FakeHandle) {
    let due: Vec<_> = {
        let mut c = fake.control();
        c.seen += 1;
        let seen = c.seen;
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut c.hooks)
            .into_iter()
            .partition(|(at, _)| *at <= seen);
        c.hooks = keep;
        due
    };
    for (_, hook) in due {
        hook(fake);
    }
}

/// Which kind of request this is, for the counters and the rate budgets.
fn classify(fake: &FakeHandle, method: &Method, path: &str, segs: &[String]) -> Class {
    if method == Method::POST && path == "/v1/customers/search" {
        Class::Search
    } else if method == Method::GET && is_list(segs, fake) {
        Class::List
    } else if method == Method::GET {
        Class::ById
    } else {
        Class::Other
    }
}

/// What the fake decided about one request before answering it, under one lock.
struct Gate {
    /// The fault to inject, with the delay of slow answers.
    fault: Option<(Fault, Duration)>,
    /// `x-ratelimit-limit`, `x-ratelimit-remaining` and the time until the window resets.
    rate_headers: (u32, u32, Duration),
    /// Whether a rate budget is spent (a 429).
    limited: bool,
    /// The API key accepted.
    expected_key: String,
    /// Whether a 429 carries `Retry-After`.
    retry_after: bool,
    /// How `x-ratelimit-reset` is written.
    reset_style: ResetStyle,
}

/// Counts the request, spends the rate budgets it draws on and draws a fault unless it is limited.
fn admit(fake: &FakeHandle, class: Class, segs: &[String], body: &Bytes) -> Gate {
    let now = Instant::now();
    let mut c = fake.control();
    count_request(&mut c, class, segs, body);
    let org_ok = c.org.try_spend(now);
    let search_ok = class != Class::Search || !org_ok || c.search.try_spend(now);
    let window = if !search_ok { &c.search } else { &c.org };
    let rate_headers = window.headers(now);
    let limited = !(org_ok && search_ok);
    if limited {
        c.stats.served_429 += 1;
    }
    let faults = c.faults.clone();
    let fault = if limited {
        None
    } else {
        limits::draw(&mut c.rng, &faults)
    };
    if fault.is_some() {
        c.stats.faults_injected += 1;
    }
    Gate {
        fault: fault.map(|f| (f, faults.slow_delay)),
        rate_headers,
        limited,
        expected_key: c.options.api_key.clone(),
        retry_after: c.options.retry_after,
        reset_style: c.options.reset_style,
    }
}

/// Adds the request to the counters: in all, by class and by search context or list path.
fn count_request(c: &mut Control, class: Class, segs: &[String], body: &Bytes) {
    c.stats.requests += 1;
    match class {
        Class::Search => c.stats.search_requests += 1,
        Class::List => c.stats.list_requests += 1,
        Class::ById => c.stats.by_id_requests += 1,
        Class::Other => {}
    }
    let context = if class == Class::Search {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| b["queryContext"].as_str().map(str::to_string))
            .unwrap_or_default()
    } else {
        segs.first().cloned().unwrap_or_default()
    };
    *c.stats.requests_by_context.entry(context).or_default() += 1;
}

/// Whether the `authorization` header is `Bearer <expected_key>`.
fn bearer_matches(headers: &HeaderMap, expected_key: &str) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| k == expected_key)
}

/// The 429 answer, with `Retry-After` (whole seconds, at least 1) when the fake sends it.
fn too_many_requests(retry_after: bool, left: Duration) -> Response {
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
        "Too many requests: the rate limit was exceeded",
    );
    if retry_after {
        let secs = left.as_secs_f64().ceil() as u64;
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(secs.max(1)));
    }
    r
}

/// Answers an admitted request, spoiled by `fault` when one was drawn.
async fn answer_with_fault(
    fake: &FakeHandle,
    fault: Option<(Fault, Duration)>,
    method: &Method,
    segs: &[String],
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Response {
    match fault {
        Some((Fault::ExpiredToken, _)) => {
            fake.control().stats.unauthorized += 1;
            error(StatusCode::UNAUTHORIZED, "unauthorized", "Expired token")
        }
        Some((Fault::ServerError(code), _)) => error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "internal_error",
            "Internal server error",
        ),
        Some((Fault::EmptyBody(code), _)) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() =
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            r
        }
        Some((Fault::Dropped, _)) => {
            let stream = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other(
                    "connection dropped by the fake",
                ))
            });
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
        Some((Fault::Slow, delay)) => {
            tokio::time::sleep(delay).await;
            answer(fake, method, segs, query, body)
        }
        Some((Fault::Truncated, _)) => {
            let r = answer(fake, method, segs, query, body);
            let (parts, body) = r.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let cut = bytes.slice(..bytes.len() / 2);
            Response::from_parts(parts, Body::from(cut))
        }
        None => answer(fake, method, segs, query, body),
    }
}

/// Counts a 5xx answer and adds the `x-ratelimit-*` headers every answer carries.
fn finish(
    fake: &FakeHandle,
    response: &mut Response,
    rate_headers: (u32, u32, Duration),
    reset_style: ResetStyle,
) {
    if response.status().is_server_error() {
        fake.control().stats.served_5xx += 1;
    }
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(rate_headers.0));
    h.insert("x-ratelimit-remaining", HeaderValue::from(rate_headers.1));
    if let Ok(v) = HeaderValue::from_str(&limits::reset_value(reset_style, rate_headers.2)) {
        h.insert("x-ratelimit-reset", v);
    }
}

fn is_list(segs: &[String], fake: &FakeHandle) -> bool {
    match segs.len() {
        1 => true,
        2 => {
            segs[0] == "routing"
                || segs[0] == "ai"
                || (segs[0] == "klasses" && fake.state().klasses.iter().any(|(n, _)| *n == segs[1]))
        }
        3 => matches!(
            segs[2].as_str(),
            "conversations" | "messages" | "notes" | "attachments"
        ),
        4 => segs[2] == "klasses",
        _ => false,
    }
}

/// Serves the request once auth, limits and faults have passed.
fn answer(
    fake: &FakeHandle,
    method: &Method,
    segs: &[String],
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Response {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    if *method == Method::POST && s == ["customers", "search"] {
        return search::search(fake, query, body);
    }
    if let ["outbound-webhooks", rest @ ..] = s.as_slice() {
        return webhooks::serve(&mut fake.webhooks(), method, rest, body);
    }
    if *method == Method::GET
        && let Some(r) = extra_get(fake, &s, query)
    {
        return r;
    }
    let state = fake.state();
    let entity_of = |plural: &str| -> Option<&'static str> {
        super::state::ENTITIES[..super::state::ORIGINAL]
            .iter()
            .copied()
            .find(|e| *e == plural && *e != "kobjects")
    };
    match (method.clone(), s.as_slice()) {
        (Method::GET, ["auth", "tokens", "current"]) => json_response(StatusCode::OK, json!({"data": {"type": "token", "id": "current", "attributes": {"roles": ["org.user.customer.read"]}}}).to_string()),
        (Method::GET, ["users", "current"]) => {
            let first = state.tables.get("users").and_then(|t| t.order.first().and_then(|id| t.records.get(id)));
            match first {
                Some(rec) => json_response(StatusCode::OK, format!("{{\"data\":{}}}", rec.text)),
                None => error(StatusCode::NOT_FOUND, "not_found", "Not found"),
            }
        }
        (Method::GET, ["routing", "queues"]) => list(&state, "queues", "/v1/routing/queues", query, 100, |_| true),
        (Method::GET, [plural]) => match entity_of(plural) {
            Some(e) => {
                let max = if matches!(e, "users" | "teams") { 500 } else { 100 };
                list(&state, e, &format!("/v1/{plural}"), query, max, |_| true)
            }
            None => error(StatusCode::NOT_FOUND, "not_found", "Not found"),
        },
        (Method::GET, ["klasses", name]) if state.klasses.iter().any(|(n, _)| n == name) => {
            list(&state, &format!("kobjects:{name}"), &format!("/v1/klasses/{name}"), query, 100, |_| true)
        }
        (Method::GET, ["klasses", name, id]) => by_id(&state, &format!("kobjects:{name}"), id),
        (Method::GET, [parent @ ("customers" | "conversations"), pid, child @ ("conversations" | "messages" | "notes")]) => {
            let is_customer = *parent == "customers";
            list(&state, child, &format!("/v1/{parent}/{pid}/{child}"), query, 100, |r| {
                if is_customer { r.customer.as_deref() == Some(pid) } else { r.conversation.as_deref() == Some(pid) }
            })
        }
        (Method::GET, ["conversations", _, "attachments"]) => list(&state, "none", "/v1/attachments", query, 100, |_| false),
        (Method::GET, ["customers", cid, "klasses", name]) => list(&state, &format!("kobjects:{name}"), &format!("/v1/customers/{cid}/klasses/{name}"), query, 100, |r| r.customer.as_deref() == Some(cid)),
        (Method::GET, [plural, id]) => match entity_of(plural) {
            Some(e) => by_id(&state, e, id),
            None if *plural == "routing" => error(StatusCode::NOT_FOUND, "not_found", "Not found"),
            None => error(StatusCode::NOT_FOUND, "not_found", "Not found"),
        },
        (Method::DELETE, [plural @ ("customers" | "conversations" | "notes" | "teams"), id]) => {
            drop(state);
            delete(fake, plural, id)
        }
        (Method::DELETE, ["klasses", _, id]) => {
            drop(state);
            delete(fake, "kobjects", id)
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "No such endpoint"),
    }
}

fn delete(fake: &FakeHandle, entity: &str, id: &str) -> Response {
    if fake.hard_delete(entity, id) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        r
    } else {
        error(StatusCode::NOT_FOUND, "not_found", "Not found")
    }
}

fn by_id(state: &super::state::State, key: &str, id: &str) -> Response {
    match state.tables.get(key).and_then(|t| t.records.get(id)) {
        Some(rec) => json_response(StatusCode::OK, format!("{{\"data\":{}}}", rec.text)),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("{id} was not found"),
        ),
    }
}

/// A page of a GET list.
fn list(
    state: &super::state::State,
    key: &str,
    path: &str,
    query: &HashMap<String, String>,
    max: usize,
    keep: impl Fn(&super::table::Rec) -> bool,
) -> Response {
    let (page, size) = page_params(query, max);
    let empty = Table::default();
    let table = state.tables.get(key).unwrap_or(&empty);
    let (recs, total) = page_of(table, (page - 1) * size, size, keep);
    let items: Vec<&str> = recs.iter().map(|r| &*r.text).collect();
    let meta = if path == "/v1/customers" {
        Meta::Total
    } else {
        Meta::Plain
    };
    page_body(path, "", page, size, total, &items, meta)
}

/// The records kept by `keep` from the `start`-th on (at most `size`), and how many are kept in all.
fn page_of(
    table: &Table,
    start: usize,
    size: usize,
    keep: impl Fn(&super::table::Rec) -> bool,
) -> (Vec<&super::table::Rec>, usize) {
    let mut items = Vec::with_capacity(size);
    let mut total = 0usize;
    for id in &table.order {
        let Some(rec) = table.records.get(id) else {
            continue;
        };
        if !keep(rec) {
            continue;
        }
        if total >= start && items.len() < size {
            items.push(rec);
        }
        total += 1;
    }
    (items, total)
}

/// Kustomer's error answer for a status a test chose.
pub fn chosen_error(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (kind, title) = match status {
        400 => ("bad_request", "Bad request"),
        401 => ("unauthorized", "Unauthorized"),
        403 => ("forbidden", "Forbidden"),
        404 => ("not_found", "Not found"),
        429 => ("rate_limit_exceeded", "Too many requests"),
        s if s >= 500 => ("internal_error", "Internal server error"),
        _ => ("error", code.canonical_reason().unwrap_or("Error")),
    };
    error(code, kind, title)
}

/// GETs of the resources of [`coverage`] (and schedules' holidays by id): lists, by-id reads and
/// the status a test chose for the resource. `None` when the path is none of theirs.
fn extra_get(fake: &FakeHandle, s: &[&str], query: &HashMap<String, String>) -> Option<Response> {
    let (key, id) = if let Some(r) = coverage::by_segments(s) {
        (r.key, None)
    } else if let ["holidays", id] = s {
        (coverage::HOLIDAYS, Some(*id))
    } else {
        let (id, list) = s.split_last()?;
        (coverage::by_segments(list)?.key, Some(*id))
    };
    let owner = if key == coverage::HOLIDAYS {
        "schedules"
    } else {
        key
    };
    if let Some(status) = fake.control().resource_answers.get(owner).copied() {
        return Some(chosen_error(status));
    }
    let state = fake.state();
    Some(match id {
        Some(id) => by_id(&state, key, id),
        None => extra_list(&state, key, query),
    })
}

/// A page of one of the resources of [`coverage`]; schedules with `include=holidays` also carry
/// the holidays of the schedules on the page as `included`.
fn extra_list(state: &super::state::State, key: &str, query: &HashMap<String, String>) -> Response {
    let Some(resource) = coverage::by_key(key) else {
        return error(StatusCode::NOT_FOUND, "not_found", "Not found");
    };
    let include = key == "schedules"
        && query
            .get("include")
            .is_some_and(|v| v.split(',').any(|x| x.trim() == "holidays"));
    let (page, size) = page_params(query, 100);
    let empty = Table::default();
    let table = state.tables.get(key).unwrap_or(&empty);
    let (recs, total) = page_of(table, (page - 1) * size, size, |_| true);
    let items: Vec<&str> = recs.iter().map(|r| &*r.text).collect();
    let mut tail = String::new();
    if include {
        let holidays = state.tables.get(coverage::HOLIDAYS).unwrap_or(&empty);
        let mut seen = std::collections::BTreeSet::new();
        let mut texts: Vec<&str> = Vec::new();
        for rec in &recs {
            let v = rec.value();
            for h in v["relationships"]["holidays"]["data"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let Some(hid) = h["id"].as_str() else {
                    continue;
                };
                if seen.insert(hid.to_string())
                    && let Some(hrec) = holidays.records.get(hid)
                {
                    texts.push(&hrec.text);
                }
            }
        }
        tail = format!(",\"included\":[{}]", texts.join(","));
    }
    let extra = if include { "&include=holidays" } else { "" };
    page_body_with(
        resource.path,
        extra,
        page,
        size,
        total,
        &items,
        Meta::Plain,
        &tail,
    )
}
