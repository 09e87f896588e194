//! The fake's `POST /v1/customers/search`: queryContext dispatch, `and` criteria on `*_updated_at`,
//! `*_created_at` (gt/gte/lt/lte, ISO or `YYYY-MM-DD`) and `*_id` (equals/in), sort asc/desc,
//! `includeDeleted`, `idsOnly`, pageSize ≤ 500, and the page cap / result window (400 past them).
//! `meta.total` is exact up to the result window and reads window + 1 beyond it.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use tokio::time::Instant;

use super::FakeHandle;
use super::body::{Meta, error, page_body, page_params};

#[derive(Debug, Default, PartialEq, Eq)]
struct Range {
    gt: Option<String>,
    gte: Option<String>,
    lt: Option<String>,
    lte: Option<String>,
}

impl Range {
    fn admits(&self, v: &str) -> bool {
        self.gt.as_deref().is_none_or(|b| v > b)
            && self.gte.as_deref().is_none_or(|b| v >= b)
            && self.lt.as_deref().is_none_or(|b| v < b)
            && self.lte.as_deref().is_none_or(|b| v <= b)
    }
}

fn normalise(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    if s.len() == 10 {
        return chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(|d| format!("{d}T00:00:00.000Z"));
    }
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| {
        t.with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    })
}

fn bad(msg: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", msg)
}

/// The matches a search walks past: counted up to `cap`, kept when they fall on the page.
struct Hits<'a> {
    start: usize,
    size: usize,
    cap: usize,
    total: usize,
    items: Vec<String>,
    ids_only: bool,
    type_name: &'a str,
}

impl Hits<'_> {
    /// Whether the next match lands on the requested page (and so needs its text).
    fn on_page(&self) -> bool {
        self.total >= self.start && self.items.len() < self.size
    }

    /// Counts one match, keeping it when it is on the page; false once counting can stop.
    fn take(&mut self, id: &str, text: Option<&str>) -> bool {
        if self.on_page() {
            self.items.push(if self.ids_only {
                format!("{{\"type\":\"{}\",\"id\":\"{id}\"}}", self.type_name)
            } else {
                text.unwrap_or_default().to_string()
            });
        }
        self.total += 1;
        self.total < self.cap
    }
}

/// Answers one search request.
pub fn search(fake: &FakeHandle, query: &HashMap<String, String>, body: &Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return bad("Invalid request body or parameters.");
    };
    let (max_pages, window, company_ok) = {
        let c = fake.control();
        (
            c.options.max_pages as usize,
            c.options.max_result_window as usize,
            c.options.company_search,
        )
    };
    let context = body["queryContext"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (key, prefix) = match context.as_str() {
        "customer" => ("customers".to_string(), "customer"),
        "conversation" => ("conversations".to_string(), "conversation"),
        "message" => ("messages".to_string(), "message"),
        "note" => ("notes".to_string(), "note"),
        "company" if company_ok => ("companies".to_string(), "company"),
        "company" => {
            return bad("Invalid queryContext: company search is not enabled for this org");
        }
        c if c.starts_with("kobject_") => {
            (format!("kobjects:{}", &c["kobject_".len()..]), "kobject")
        }
        _ => return bad("Invalid queryContext"),
    };
    let (page, size) = page_params(query, 500);
    if page > max_pages || page * size > window {
        return bad(&format!(
            "Search is limited to {max_pages} pages and {window} results"
        ));
    }
    let ids_only = query.get("idsOnly").is_some_and(|v| v == "true");
    let include_deleted = body["includeDeleted"].as_bool() == Some(true);
    let (updated_attr, created_attr, id_attr) = (
        format!("{prefix}_updated_at"),
        format!("{prefix}_created_at"),
        format!("{prefix}_id"),
    );
    let mut updated = Range::default();
    let mut created = Range::default();
    let mut ids: Option<Vec<String>> = None;
    let criteria: Vec<Value> = match &body["and"] {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![body["and"].clone()],
        _ => Vec::new(),
    };
    if body["or"].as_array().is_some_and(|o| !o.is_empty()) {
        return bad("The fake supports only \"and\" criteria");
    }
    for criterion in criteria {
        let Some(obj) = criterion.as_object() else {
            return bad("Invalid criterion");
        };
        for (attr, ops) in obj {
            let Some(ops) = ops.as_object() else {
                return bad("Invalid criterion");
            };
            for (op, value) in ops {
                if *attr == id_attr {
                    match op.as_str() {
                        "equals" => ids = value.as_str().map(|v| vec![v.to_string()]),
                        "in" => {
                            ids = value.as_array().map(|a| {
                                a.iter()
                                    .filter_map(|v| v.as_str().map(str::to_string))
                                    .collect()
                            })
                        }
                        _ => return bad(&format!("Unsupported operator {op} on {attr}")),
                    }
                    continue;
                }
                let range = if *attr == updated_attr {
                    &mut updated
                } else if *attr == created_attr {
                    &mut created
                } else {
                    return bad(&format!("Unknown or unsupported attribute {attr}"));
                };
                let Some(v) = normalise(value) else {
                    return bad(&format!("Invalid date {value} for {attr}"));
                };
                match op.as_str() {
                    "gt" => range.gt = Some(v),
                    "gte" => range.gte = Some(v),
                    "lt" => range.lt = Some(v),
                    "lte" => range.lte = Some(v),
                    _ => return bad(&format!("Unsupported operator {op} on {attr}")),
                }
            }
        }
    }
    let (sort_created, desc) = match body["sort"]
        .as_array()
        .and_then(|s| s.first())
        .and_then(Value::as_object)
        .and_then(|o| o.iter().next())
    {
        None => (true, false),
        Some((attr, dir)) => {
            let desc = dir.as_str() == Some("desc");
            if *attr == updated_attr {
                (false, desc)
            } else if *attr == created_attr {
                (true, desc)
            } else {
                return bad(&format!("Sorting on {attr} is unavailable"));
            }
        }
    };
    let mut state = fake.state();
    let Some(table) = state.tables.get_mut(&key) else {
        return bad("Invalid queryContext: no such klass");
    };
    table.refresh(Instant::now());
    let start = (page - 1) * size;
    // Counting stops one past the result window (Elasticsearch's track_total_hits does the same at
    // 10,000): `meta.total` is exact up to the window and "window + 1" means "more than the window",
    // which is all a client can act on. Without the cap every keyset page of a large table would
    // walk to the end of the index to count.
    let cap = window.max(start + size) + 1;
    let type_name = if prefix == "kobject" {
        "kobject"
    } else {
        prefix
    };
    // Filters on what the updatedAt index holds; `created` needs the record itself.
    let by_index = |id: &str, updated_at: &str, deleted: bool| {
        (include_deleted || !deleted)
            && updated.admits(updated_at)
            && ids.as_ref().is_none_or(|ids| ids.iter().any(|i| i == id))
    };
    let created_filter = created != Range::default();
    let mut hits = Hits {
        start,
        size,
        cap,
        total: 0,
        items: Vec::with_capacity(size),
        ids_only,
        type_name,
    };
    if sort_created {
        let order: Box<dyn Iterator<Item = &String>> = if desc {
            Box::new(table.order.iter().rev())
        } else {
            Box::new(table.order.iter())
        };
        for id in order {
            let Some(rec) = table.records.get(id) else {
                continue;
            };
            let Some(ix) = &rec.indexed else { continue };
            if by_index(id, &ix.updated, ix.deleted)
                && created.admits(&rec.created)
                && !hits.take(id, Some(&ix.text))
            {
                break;
            }
        }
    } else {
        use std::ops::Bound;
        let lower = match (&updated.gte, &updated.gt) {
            (Some(b), _) => Bound::Included((b.clone(), String::new())),
            (None, Some(b)) => Bound::Excluded((b.clone(), "\u{10FFFF}".to_string())),
            _ => Bound::Unbounded,
        };
        let range = table.by_updated.range((lower, Bound::Unbounded));
        let entries: Box<dyn Iterator<Item = (&(String, String), &bool)>> = if desc {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        for ((updated_at, id), deleted) in entries {
            let past_lt = updated
                .lt
                .as_deref()
                .is_some_and(|b| updated_at.as_str() >= b);
            let past_lte = updated
                .lte
                .as_deref()
                .is_some_and(|b| updated_at.as_str() > b);
            if !desc && (past_lt || past_lte) {
                break;
            }
            if !by_index(id, updated_at, *deleted) {
                continue;
            }
            // Every `by_updated` entry has an indexed record (Table keeps them in step), so a
            // match only being counted needs no lookup unless `created` filters it.
            let text = if hits.on_page() || created_filter {
                let Some(rec) = table.records.get(id) else {
                    continue;
                };
                let Some(ix) = &rec.indexed else { continue };
                if !created.admits(&rec.created) {
                    continue;
                }
                Some(&*ix.text)
            } else {
                None
            };
            if !hits.take(id, text) {
                break;
            }
        }
    }
    drop(state);
    let refs: Vec<&str> = hits.items.iter().map(String::as_str).collect();
    let extra = if ids_only { "&idsOnly=true" } else { "" };
    page_body(
        "/v1/customers/search",
        extra,
        page,
        size,
        hits.total,
        &refs,
        Meta::Search,
    )
}
