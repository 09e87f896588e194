//! The daemon's optional HTTP listener: `/healthz` (200, or 503 naming the entities that failed too
//! many runs in a row or lag too far behind) and `/metrics` (Prometheus text: rows, requests by status
//! class, 429s, retries, runs, run duration, cursor lag, last success). Reads the database through
//! its own connection ([`Reader`]), so it never waits for the writer.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::destination::Reader;
use crate::kustomer::Client;
use crate::status::{self, EntityStatus, RunTotals, Scope};

/// What the handlers need.
#[derive(Clone)]
pub struct HttpState {
    /// Reads the mirror (its own connection, never the writer's).
    pub db: Arc<Reader>,
    /// The client whose counters `/metrics` reports.
    pub client: Arc<Client>,
    /// The webhook receiver's counters, when it runs.
    pub webhooks: Option<Arc<crate::webhooks::Metrics>>,
    /// Failures in a row that make an entity unhealthy.
    pub max_failures: u32,
    /// Time since the last success that makes an entity unhealthy.
    pub max_lag: Duration,
}

/// The routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn statuses(
    state: &HttpState,
    scope: Scope,
) -> Result<(Vec<EntityStatus>, Vec<RunTotals>), String> {
    let reader = state.db.clone();
    tokio::task::spawn_blocking(move || reader.read(scope))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Entities that make the daemon unhealthy, with why.
pub fn problems(
    statuses: &[EntityStatus],
    max_failures: u32,
    max_lag: Duration,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in statuses {
        // An entity the org or key does not offer is reported by `status`, not a health problem.
        if s.unsupported.is_some() {
            continue;
        }
        if s.consecutive_failures >= i64::from(max_failures) {
            out.push((
                s.entity.clone(),
                format!(
                    "{} failed runs in a row: {}",
                    s.consecutive_failures,
                    s.last_error.as_deref().unwrap_or("unknown error")
                ),
            ));
        } else if let Some(lag) = s.lag_seconds
            && lag > max_lag.as_secs() as i64
        {
            out.push((
                s.entity.clone(),
                format!("no successful run for {}", status::human_secs(lag)),
            ));
        }
    }
    out
}

async fn healthz(State(state): State<HttpState>) -> Response {
    // Probes come every few seconds: no row counts, only sync_state and the runs.
    match statuses(&state, Scope::Health).await {
        Ok((statuses, _)) => {
            let problems = problems(&statuses, state.max_failures, state.max_lag);
            if problems.is_empty() {
                (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
            } else {
                let list: Vec<_> = problems
                    .iter()
                    .map(|(e, why)| json!({"entity": e, "problem": why}))
                    .collect();
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({"status": "unhealthy", "entities": list})),
                )
                    .into_response()
            }
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unhealthy", "error": e})),
        )
            .into_response(),
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn seconds_since(ts: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(ts).ok().map(|t| {
        (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0
    })
}

/// Renders the Prometheus text exposition.
pub fn render(
    statuses: &[EntityStatus],
    totals: &[RunTotals],
    client: &crate::kustomer::ClientStats,
    usage: crate::kustomer::limiter::Usage,
) -> String {
    let mut o = String::new();
    render_row_counts(&mut o, statuses);
    render_requests(&mut o, client);
    render_rate_limit_holds(&mut o, client);
    render_run_totals(&mut o, totals);
    render_last_run_duration(&mut o, statuses);
    render_freshness(&mut o, statuses);
    render_running_passes(&mut o, statuses);
    render_budget_usage(&mut o, usage);
    o
}

/// Renders the per-entity row gauges: live and deleted rows, rejected records, view problems.
fn render_row_counts(o: &mut String, statuses: &[EntityStatus]) {
    family(
        o,
        "kustomer_mirror_rows",
        "gauge",
        "Rows in the mirror, by entity and state (live or deleted).",
    );
    for s in statuses {
        let _ = writeln!(
            o,
            "kustomer_mirror_rows{{entity=\"{}\",state=\"live\"}} {}",
            s.entity, s.live
        );
        let _ = writeln!(
            o,
            "kustomer_mirror_rows{{entity=\"{}\",state=\"deleted\"}} {}",
            s.entity, s.deleted
        );
    }
    family(
        o,
        "kustomer_mirror_rejected_records",
        "gauge",
        "Served records set aside in rejected_records (undecodable or refused), by entity.",
    );
    for s in statuses {
        let _ = writeln!(
            o,
            "kustomer_mirror_rejected_records{{entity=\"{}\"}} {}",
            s.entity, s.rejected
        );
    }
    family(
        o,
        "kustomer_mirror_custom_view_problems",
        "gauge",
        "Custom attribute views that could not be built (rows stored all the same), by entity.",
    );
    for s in statuses {
        let _ = writeln!(
            o,
            "kustomer_mirror_custom_view_problems{{entity=\"{}\"}} {}",
            s.entity,
            s.view_problems.len()
        );
    }
}

/// Renders this process's request counters: by status class, 429s and retries.
fn render_requests(o: &mut String, client: &crate::kustomer::ClientStats) {
    family(
        o,
        "kustomer_mirror_http_requests_total",
        "counter",
        "HTTP requests to Kustomer by this process, by status class.",
    );
    for (class, n) in [
        ("2xx", client.status_2xx),
        ("4xx", client.status_4xx),
        ("429", client.status_429),
        ("5xx", client.status_5xx),
        ("none", client.transport_errors),
    ] {
        let _ = writeln!(
            o,
            "kustomer_mirror_http_requests_total{{class=\"{class}\"}} {n}"
        );
    }
    family(
        o,
        "kustomer_mirror_rate_limited_total",
        "counter",
        "429 answers received by this process.",
    );
    let _ = writeln!(
        o,
        "kustomer_mirror_rate_limited_total {}",
        client.status_429
    );
    family(
        o,
        "kustomer_mirror_retries_total",
        "counter",
        "Requests retried after transient failures by this process.",
    );
    let _ = writeln!(o, "kustomer_mirror_retries_total {}", client.retries);
}

/// Renders the rate-limit hold families: capped holds, unreadable headers, the hold still running.
fn render_rate_limit_holds(o: &mut String, client: &crate::kustomer::ClientStats) {
    family(
        o,
        "kustomer_mirror_rate_limit_holds_capped_total",
        "counter",
        "Rate-limit waits the server asked for that were longer than two rate windows and were cut to two.",
    );
    let _ = writeln!(
        o,
        "kustomer_mirror_rate_limit_holds_capped_total {}",
        client.rate_holds_capped
    );
    family(
        o,
        "kustomer_mirror_rate_limit_headers_unreadable_total",
        "counter",
        "Retry-After or x-ratelimit-reset headers that could not be read (one window was waited instead).",
    );
    let _ = writeln!(
        o,
        "kustomer_mirror_rate_limit_headers_unreadable_total {}",
        client.rate_headers_unreadable
    );
    family(
        o,
        "kustomer_mirror_rate_limit_hold_seconds",
        "gauge",
        "How long requests are still held for a rate-limit window the server reported (0: not held).",
    );
    let _ = writeln!(
        o,
        "kustomer_mirror_rate_limit_hold_seconds {:.3}",
        client.rate_hold_remaining_ms as f64 / 1000.0
    );
}

/// Renders the sync_runs totals (runs, requests, records fetched, rows changed) by entity and status.
fn render_run_totals(o: &mut String, totals: &[RunTotals]) {
    type Field = fn(&RunTotals) -> i64;
    let run_families: [(&str, &str, Field); 4] = [
        (
            "kustomer_mirror_runs_total",
            "Sync runs recorded in sync_runs, by entity and status.",
            |t| t.runs,
        ),
        (
            "kustomer_mirror_run_requests_total",
            "Requests spent by sync runs (sync_runs.requests), by entity and status.",
            |t| t.requests,
        ),
        (
            "kustomer_mirror_run_records_fetched_total",
            "Records fetched by sync runs, by entity and status.",
            |t| t.fetched,
        ),
        (
            "kustomer_mirror_run_rows_changed_total",
            "Rows inserted, updated or deleted by sync runs, by entity and status.",
            |t| t.changed,
        ),
    ];
    for (name, help, field) in run_families {
        family(o, name, "counter", help);
        for t in totals {
            let _ = writeln!(
                o,
                "{name}{{entity=\"{}\",status=\"{}\"}} {}",
                t.entity,
                t.status,
                field(t)
            );
        }
    }
}

/// Renders how long each entity's most recent finished run took.
fn render_last_run_duration(o: &mut String, statuses: &[EntityStatus]) {
    family(
        o,
        "kustomer_mirror_last_run_duration_seconds",
        "gauge",
        "Duration of the entity's most recent finished run.",
    );
    for s in statuses {
        if let Some(run) = &s.last_run
            && let (Ok(a), Some(Ok(b))) = (
                chrono::DateTime::parse_from_rfc3339(&run.started_at),
                run.finished_at
                    .as_deref()
                    .map(chrono::DateTime::parse_from_rfc3339),
            )
        {
            let secs = (b - a).num_milliseconds() as f64 / 1000.0;
            let _ = writeln!(
                o,
                "kustomer_mirror_last_run_duration_seconds{{entity=\"{}\"}} {secs}",
                s.entity
            );
        }
    }
}

/// Renders how fresh each entity is: cursor lag, last success time, failed runs in a row.
fn render_freshness(o: &mut String, statuses: &[EntityStatus]) {
    family(
        o,
        "kustomer_mirror_cursor_lag_seconds",
        "gauge",
        "Seconds between now and the newest updatedAt mirrored (incremental entities).",
    );
    for s in statuses {
        if let Some(lag) = s.cursor.as_deref().and_then(seconds_since) {
            let _ = writeln!(
                o,
                "kustomer_mirror_cursor_lag_seconds{{entity=\"{}\"}} {lag}",
                s.entity
            );
        }
    }
    family(
        o,
        "kustomer_mirror_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the entity's last successful run.",
    );
    for s in statuses {
        if let Some(t) = s
            .last_success_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            let _ = writeln!(
                o,
                "kustomer_mirror_last_success_timestamp_seconds{{entity=\"{}\"}} {}",
                s.entity,
                t.timestamp_millis() as f64 / 1000.0
            );
        }
    }
    family(
        o,
        "kustomer_mirror_entity_unsupported",
        "gauge",
        "1 when the org or API key does not offer the entity (see `status` for why), else 0.",
    );
    for s in statuses {
        let _ = writeln!(
            o,
            "kustomer_mirror_entity_unsupported{{entity=\"{}\"}} {}",
            s.entity,
            u8::from(s.unsupported.is_some())
        );
    }
    family(
        o,
        "kustomer_mirror_consecutive_failures",
        "gauge",
        "Failed runs in a row per entity.",
    );
    for s in statuses {
        let _ = writeln!(
            o,
            "kustomer_mirror_consecutive_failures{{entity=\"{}\"}} {}",
            s.entity, s.consecutive_failures
        );
    }
}

/// Renders the progress of passes under way: records fetched so far and expected in all.
fn render_running_passes(o: &mut String, statuses: &[EntityStatus]) {
    // Passes under way: their committed counters move page by page, whichever process runs them.
    let running: Vec<_> = statuses
        .iter()
        .filter_map(|s| {
            Some((
                s,
                s.last_run
                    .as_ref()
                    .filter(|r| r.status == status::RunState::Running)?,
            ))
        })
        .collect();
    family(
        o,
        "kustomer_mirror_pass_records_fetched",
        "gauge",
        "Records fetched so far by the entity's running pass (committed pages).",
    );
    for (s, run) in &running {
        let _ = writeln!(
            o,
            "kustomer_mirror_pass_records_fetched{{entity=\"{}\",mode=\"{}\"}} {}",
            s.entity, run.mode, run.fetched
        );
    }
    family(
        o,
        "kustomer_mirror_pass_records_expected",
        "gauge",
        "Records the entity's running pass expects to fetch in all (when Kustomer reports totals).",
    );
    for (s, run) in &running {
        if let Some(expected) = run.expected {
            let _ = writeln!(
                o,
                "kustomer_mirror_pass_records_expected{{entity=\"{}\",mode=\"{}\"}} {}",
                s.entity, run.mode, expected
            );
        }
    }
}

/// Renders the share of each rate budget (org, search) used in the current window.
fn render_budget_usage(o: &mut String, usage: crate::kustomer::limiter::Usage) {
    family(
        o,
        "kustomer_mirror_rate_budget_used_ratio",
        "gauge",
        "Share of each rate budget (org: every request; search) this process used in the current window.",
    );
    for (budget, used) in [("org", usage.org), ("search", usage.search)] {
        let _ = writeln!(
            o,
            "kustomer_mirror_rate_budget_used_ratio{{budget=\"{budget}\"}} {:.4}",
            crate::kustomer::limiter::Usage::share(used)
        );
    }
}

async fn metrics(State(state): State<HttpState>) -> Response {
    match statuses(&state, Scope::Full).await {
        Ok((statuses, totals)) => {
            let mut body = render(
                &statuses,
                &totals,
                &state.client.stats(),
                state.client.budget_usage(),
            );
            if let Some(webhooks) = &state.webhooks {
                body.push_str(&webhooks.render());
            }
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("# cannot read the mirror: {e}\n"),
        )
            .into_response(),
    }
}
