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
use super::table::Table;

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
    let context = body["queryContext"].as_str().unwrap_or_default();
    let (max_pages, window, company_ok, refused, chosen) = {
        let c = fake.control();
        (
            c.options.max_pages as usize,
            c.options.max_result_window as usize,
            c.options.company_search,
            c.refused_contexts.contains(context),
            (context == "work_session")
                .then(|| c.resource_answers.get("work_sessions").copied())
                .flatten(),
        )
    };
    if refused {
        return bad(&format!(
            "Invalid queryContext: {context} is not supported for this org"
        ));
    }
    if let Some(status) = chosen {
        return super::http::chosen_error(status);
    }
    let (key, prefix) = match table_of(&body, company_ok) {
        Ok(found) => found,
        Err(msg) => return bad(&msg),
    };
    let (page, size) = page_params(query, 500);
    if page > max_pages || page * size > window {
        return bad(&format!(
            "Search is limited to {max_pages} pages and {window} results"
        ));
    }
    let ids_only = query.get("idsOnly").is_some_and(|v| v == "true");
    let attrs = Attrs::of(prefix);
    let filters = match Filters::parse(&body, &attrs) {
        Ok(filters) => filters,
        Err(msg) => return bad(&msg),
    };
    let (sort_created, desc) = match sort_of(&body, &attrs) {
        Ok(sort) => sort,
        Err(msg) => return bad(&msg),
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
    let mut hits = Hits {
        start,
        size,
        cap,
        total: 0,
        items: Vec::with_capacity(size),
        ids_only,
        type_name: prefix,
    };
    if sort_created {
        walk_by_created(table, &filters, desc, &mut hits);
    } else {
        walk_by_updated(table, &filters, desc, &mut hits);
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

/// The table key and attribute prefix of the body's `queryContext`, or why it is refused.
fn table_of(body: &Value, company_ok: bool) -> Result<(String, &'static str), String> {
    let context = body["queryContext"].as_str().unwrap_or_default();
    Ok(match context {
        "customer" => ("customers".to_string(), "customer"),
        "conversation" => ("conversations".to_string(), "conversation"),
        "message" => ("messages".to_string(), "message"),
        "note" => ("notes".to_string(), "note"),
        "work_session" => ("work_sessions".to_string(), "work_session"),
        "company" if company_ok => ("companies".to_string(), "company"),
        "company" => {
            return Err(
                "Invalid queryContext: company search is not enabled for this org".to_string(),
            );
        }
        c if c.starts_with("kobject_") => {
            (format!("kobjects:{}", &c["kobject_".len()..]), "kobject")
        }
        _ => return Err("Invalid queryContext".to_string()),
    })
}

/// The searchable attribute names of one context: `<prefix>_updated_at`, `_created_at` and `_id`.
struct Attrs {
    updated: String,
    created: String,
    id: String,
}

impl Attrs {
    /// The attribute names for `prefix` (e.g. `customer`).
    fn of(prefix: &str) -> Attrs {
        Attrs {
            updated: format!("{prefix}_updated_at"),
            created: format!("{prefix}_created_at"),
            id: format!("{prefix}_id"),
        }
    }
}

/// What a search body filters on: deleted records, `updatedAt` and `createdAt` ranges, ids.
#[derive(Default)]
struct Filters {
    include_deleted: bool,
    updated: Range,
    created: Range,
    ids: Option<Vec<String>>,
}

impl Filters {
    /// Parses `includeDeleted` and the `and` criteria (refusing `or`), or says what is wrong.
    fn parse(body: &Value, attrs: &Attrs) -> Result<Filters, String> {
        let mut filters = Filters {
            include_deleted: body["includeDeleted"].as_bool() == Some(true),
            ..Filters::default()
        };
        let criteria: Vec<Value> = match &body["and"] {
            Value::Array(a) => a.clone(),
            Value::Object(_) => vec![body["and"].clone()],
            _ => Vec::new(),
        };
        if body["or"].as_array().is_some_and(|o| !o.is_empty()) {
            return Err("The fake supports only \"and\" criteria".to_string());
        }
        for criterion in criteria {
            let Some(obj) = criterion.as_object() else {
                return Err("Invalid criterion".to_string());
            };
            for (attr, ops) in obj {
                let Some(ops) = ops.as_object() else {
                    return Err("Invalid criterion".to_string());
                };
                for (op, value) in ops {
                    filters.apply(attrs, attr, op, value)?;
                }
            }
        }
        Ok(filters)
    }

    /// Adds one `attr: {op: value}` condition: equals/in on the id, a bound on either date.
    fn apply(&mut self, attrs: &Attrs, attr: &str, op: &str, value: &Value) -> Result<(), String> {
        if attr == attrs.id {
            self.ids = match op {
                "equals" => value.as_str().map(|v| vec![v.to_string()]),
                "in" => value.as_array().map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                }),
                _ => return Err(format!("Unsupported operator {op} on {attr}")),
            };
            return Ok(());
        }
        let range = if attr == attrs.updated {
            &mut self.updated
        } else if attr == attrs.created {
            &mut self.created
        } else {
            return Err(format!("Unknown or unsupported attribute {attr}"));
        };
        let Some(v) = normalise(value) else {
            return Err(format!("Invalid date {value} for {attr}"));
        };
        match op {
            "gt" => range.gt = Some(v),
            "gte" => range.gte = Some(v),
            "lt" => range.lt = Some(v),
            "lte" => range.lte = Some(v),
            _ => return Err(format!("Unsupported operator {op} on {attr}")),
        }
        Ok(())
    }

    /// Filters on what the updatedAt index holds; `created` needs the record itself.
    fn admits_indexed(&self, id: &str, updated_at: &str, deleted: bool) -> bool {
        (self.include_deleted || !deleted)
            && self.updated.admits(updated_at)
            && self
                .ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|i| i == id))
    }
}

/// The body's sort as (by `createdAt` rather than `updatedAt`, descending); default created, asc.
fn sort_of(body: &Value, attrs: &Attrs) -> Result<(bool, bool), String> {
    Ok(
        match body["sort"]
            .as_array()
            .and_then(|s| s.first())
            .and_then(Value::as_object)
            .and_then(|o| o.iter().next())
        {
            None => (true, false),
            Some((attr, dir)) => {
                let desc = dir.as_str() == Some("desc");
                if *attr == attrs.updated {
                    (false, desc)
                } else if *attr == attrs.created {
                    (true, desc)
                } else {
                    return Err(format!("Sorting on {attr} is unavailable"));
                }
            }
        },
    )
}

/// Walks the table in creation order (newest first when `desc`), counting matches into `hits`.
fn walk_by_created(table: &Table, filters: &Filters, desc: bool, hits: &mut Hits<'_>) {
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
        if filters.admits_indexed(id, &ix.updated, ix.deleted)
            && filters.created.admits(&rec.created)
            && !hits.take(id, Some(&ix.text))
        {
            break;
        }
    }
}

/// Walks the updatedAt index from the filter's lower bound (stopping at its upper bound when
/// ascending), counting matches into `hits`.
fn walk_by_updated(table: &Table, filters: &Filters, desc: bool, hits: &mut Hits<'_>) {
    use std::ops::Bound;
    let updated = &filters.updated;
    let created_filter = filters.created != Range::default();
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
        if !filters.admits_indexed(id, updated_at, *deleted) {
            continue;
        }
        // Every `by_updated` entry has an indexed record (Table keeps them in step), so a
        // match only being counted needs no lookup unless `created` filters it.
        let text = if hits.on_page() || created_filter {
            let Some(rec) = table.records.get(id) else {
                continue;
            };
            let Some(ix) = &rec.indexed else { continue };
            if !filters.created.admits(&rec.created) {
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
