//! The fake's JSON answers: Kustomer's error shape, page parameters, and JSON:API list documents
//! with relative links, built from records' pre-serialised text (so a record is served byte for
//! byte as stored). Shared by the request router and search.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

/// A JSON answer.
pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// Kustomer's error shape.
pub fn error(status: StatusCode, code: &str, title: &str) -> Response {
    let body = json!({"errors": [{"status": status.as_str(), "code": code, "title": title}]});
    json_response(status, body.to_string())
}

pub fn page_params(query: &HashMap<String, String>, max: usize) -> (usize, usize) {
    let page = query
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let size = query
        .get("pageSize")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(100)
        .min(max);
    (page, size)
}

/// What a list's `meta` carries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Meta {
    /// `page`, `pageSize` only (most lists).
    Plain,
    /// Also `total`, `totalPages` and `links.last` (`/v1/customers`).
    Total,
    /// Search: totals plus `aggregations` and `timed_out`.
    Search,
}

/// A JSON:API list document with relative links.
pub fn page_body(
    path: &str,
    extra: &str,
    page: usize,
    size: usize,
    total: usize,
    items: &[&str],
    kind: Meta,
) -> Response {
    page_body_with(path, extra, page, size, total, items, kind, "")
}

/// A JSON:API list document with relative links and `tail` (members after `data`, each written
/// as `,"name":value`, e.g. `included`).
#[allow(clippy::too_many_arguments)]
pub fn page_body_with(
    path: &str,
    extra: &str,
    page: usize,
    size: usize,
    total: usize,
    items: &[&str],
    kind: Meta,
    tail: &str,
) -> Response {
    let with_total = kind != Meta::Plain;
    let link = |p: usize| format!("\"{path}?page={p}&pageSize={size}{extra}\"");
    let pages = total.div_ceil(size).max(1);
    let next = if page * size < total {
        link(page + 1)
    } else {
        "null".to_string()
    };
    let prev = if page > 1 {
        link(page - 1)
    } else {
        "null".to_string()
    };
    let meta = if with_total {
        let search = if kind == Meta::Search {
            ",\"aggregations\":{},\"timed_out\":false"
        } else {
            ""
        };
        format!(
            "{{\"page\":{page},\"pageSize\":{size},\"total\":{total},\"totalPages\":{pages}{search}}}"
        )
    } else {
        format!("{{\"page\":{page},\"pageSize\":{size}}}")
    };
    let last = if with_total {
        format!(",\"last\":{}", link(pages))
    } else {
        String::new()
    };
    let mut out = String::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 300);
    out.push_str(&format!("{{\"meta\":{meta},\"links\":{{\"self\":{},\"first\":{},\"prev\":{prev},\"next\":{next}{last}}},\"data\":[", link(page), link(1)));
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    out.push_str(tail);
    out.push('}');
    json_response(StatusCode::OK, out)
}
