//! The hard-delete reconcile (docs/design.md §2), run by `sync --full` for search entities: compare the ids
//! upstream (search `idsOnly`, `includeDeleted`, by created-at windows small enough for Kustomer's
//! 10,000-row window) with the live ids of the mirror, and confirm each missing one with
//! `GET /v1/<entity>/<id>` before tombstoning it: a 404 is a hard delete; a record that still answers
//! (e.g. older than search's two-year index) is stored instead.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::pages::{Batch, PageSink};
use super::search::{MAX_PAGES, MAX_WINDOW};
use super::{Engine, SyncError, Tally, Target};

/// Local rows per window: small enough that upstream rarely exceeds the search window.
const LOCAL_PER_WINDOW: usize = 4_000;
/// Lower bound used when a window that is open below must be split.
const EPOCH: &str = "1970-01-01T00:00:00.000Z";

/// Runs one reconcile pass of `target`.
pub(super) async fn run(
    engine: &Engine,
    target: &Target,
    run_id: i64,
    tally: &mut Tally,
) -> Result<(), SyncError> {
    let table = target.entity.name;
    let klass = target.klass.clone();
    let local = engine
        .store(&target.key, move |s| {
            s.live_ids_by_created(table, klass.as_deref())
        })
        .await?;
    let undated = local.iter().filter(|(_, c)| c.is_none()).count();
    if undated > 0 {
        tracing::warn!(entity = %target.key, rows = undated, "rows without createdAt cannot be reconciled");
    }
    let local: Vec<(String, String)> = local
        .into_iter()
        .filter_map(|(id, created)| created.map(|c| (id, c)))
        .collect();
    // Window starts: every LOCAL_PER_WINDOW-th creation time; the first window is open below and the
    // last open above, so records created outside the local range are covered too.
    let mut bounds: Vec<Option<String>> = vec![None];
    for chunk in local.chunks(LOCAL_PER_WINDOW).skip(1) {
        bounds.push(Some(chunk[0].1.clone()));
    }
    bounds.dedup();
    bounds.push(None);
    let mut stack: Vec<(Option<String>, Option<String>)> = bounds
        .windows(2)
        .map(|w| (w[0].clone(), w[1].clone()))
        .rev()
        .collect();
    let mut missing = Vec::new();
    while let Some((lo, hi)) = stack.pop() {
        match upstream_ids(engine, target, run_id, lo.as_deref(), hi.as_deref(), tally).await? {
            Some(upstream) => {
                let start = lo
                    .as_deref()
                    .map_or(0, |lo| local.partition_point(|(_, c)| c.as_str() < lo));
                let end = hi.as_deref().map_or(local.len(), |hi| {
                    local.partition_point(|(_, c)| c.as_str() < hi)
                });
                missing.extend(
                    local[start..end]
                        .iter()
                        .filter(|(id, _)| !upstream.contains(id))
                        .map(|(id, _)| id.clone()),
                );
            }
            None => {
                // Too many upstream rows in this window: split it in two and try again.
                let Some(mid) = midpoint(lo.as_deref().unwrap_or(EPOCH), hi.as_deref()) else {
                    return Err(SyncError::data(
                        &target.key,
                        format!(
                            "more than {MAX_WINDOW} records were created within one millisecond window starting {lo:?}; cannot reconcile hard deletes"
                        ),
                    ));
                };
                stack.push((Some(mid.clone()), hi));
                stack.push((lo, Some(mid)));
            }
        }
    }
    confirm_and_tombstone(engine, target, run_id, missing, tally).await
}

/// All ids upstream created in `[lo, hi)`, or `None` when there are more than a query may page.
async fn upstream_ids(
    engine: &Engine,
    target: &Target,
    run_id: i64,
    lo: Option<&str>,
    hi: Option<&str>,
    tally: &mut Tally,
) -> Result<Option<HashSet<String>>, SyncError> {
    let attr = target.entity.created_attr();
    let mut criteria = Vec::new();
    if let Some(lo) = lo {
        criteria.push(json!({ attr.clone(): { "gte": lo } }));
    }
    if let Some(hi) = hi {
        criteria.push(json!({ attr.clone(): { "lt": hi } }));
    }
    let mut body = json!({
        "queryContext": target.context,
        "sort": [{ attr: "asc" }],
        "includeDeleted": true,
    });
    if !criteria.is_empty() {
        body["and"] = Value::Array(criteria);
    }
    let page_size = 500u32.min(MAX_WINDOW);
    let mut ids = HashSet::new();
    for page_no in 1..=MAX_PAGES {
        let page = engine
            .unless_stopped(
                &target.key,
                engine.client.search(&body, page_no, page_size, true),
            )
            .await?
            .map_err(|e| SyncError::api(&target.key, Some(page_no), e))?;
        let fetched = page.served();
        write(
            engine,
            target,
            run_id,
            Batch {
                requests: u64::from(page.attempts),
                ..Batch::default()
            },
            tally,
        )
        .await?;
        tally.fetched += fetched;
        if page.total.is_some_and(|t| t > u64::from(MAX_WINDOW)) {
            return Ok(None);
        }
        let empty = page.records.is_empty();
        ids.extend(page.records.into_iter().map(|r| r.id));
        // An id served in a form that could not be decoded is still upstream: never a hard delete.
        ids.extend(page.rejected.into_iter().filter_map(|r| r.id));
        if page.next.is_none() || empty {
            return Ok(Some(ids));
        }
        if (page_no + 1) * page_size > MAX_WINDOW {
            return Ok(None);
        }
    }
    Ok(None)
}

/// The instant halfway between `lo` and `hi` (now + 1 day when open), or `None` when they are less
/// than two milliseconds apart.
fn midpoint(lo: &str, hi: Option<&str>) -> Option<String> {
    let parse = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let lo = parse(lo)?;
    let hi = match hi {
        Some(hi) => parse(hi)?,
        None => chrono::Utc::now() + chrono::Duration::days(1),
    };
    let span = (hi - lo).num_milliseconds();
    if span < 2 {
        return None;
    }
    let mid = lo + chrono::Duration::milliseconds(span / 2);
    Some(mid.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// GETs every missing id: 404 → tombstone; still there → store it.
pub(super) async fn confirm_and_tombstone(
    engine: &Engine,
    target: &Target,
    run_id: i64,
    missing: Vec<String>,
    tally: &mut Tally,
) -> Result<(), SyncError> {
    let mut gone = Vec::new();
    for id in missing {
        let path = target.entity.by_id_path(&id, target.klass.as_deref());
        let found = engine
            .unless_stopped(&target.key, engine.client.get_one(&path))
            .await?
            .map_err(|e| SyncError::api(&target.key, None, e))?;
        match found {
            Some(record) => {
                let batch = Batch {
                    records: vec![record],
                    source: format!("GET {path}"),
                    requests: 1,
                    fetched: 1,
                    ..Batch::default()
                };
                write(engine, target, run_id, batch, tally).await?;
            }
            None => {
                let batch = Batch {
                    requests: 1,
                    ..Batch::default()
                };
                write(engine, target, run_id, batch, tally).await?;
                gone.push(id);
            }
        }
    }
    if gone.is_empty() {
        return Ok(());
    }
    let table = target.entity.name;
    let deleted = engine
        .store(&target.key, move |s| s.tombstone_ids(table, run_id, &gone))
        .await?;
    tally.applied.deleted += deleted;
    Ok(())
}

/// Writes one page (records found, or just the requests spent) and waits for it: the reconcile's
/// pages are small and its reads depend on the store, so nothing is gained by overlapping.
async fn write(
    engine: &Engine,
    target: &Target,
    run_id: i64,
    batch: Batch,
    tally: &mut Tally,
) -> Result<(), SyncError> {
    let mut sink = PageSink::new(engine, target, run_id);
    sink.send(batch, tally).await?;
    sink.finish(tally).await
}

#[cfg(test)]
mod tests {
    use super::midpoint;

    #[test]
    fn windows_split_at_their_midpoint_until_a_millisecond() {
        assert_eq!(
            midpoint("2024-01-01T00:00:00.000Z", Some("2024-01-03T00:00:00.000Z")).as_deref(),
            Some("2024-01-02T00:00:00.000Z")
        );
        assert_eq!(
            midpoint("2024-01-01T00:00:00.000Z", Some("2024-01-01T00:00:00.001Z")),
            None
        );
    }
}
