//! Search-incremental passes (docs/design.md §2): start at `cursor − overlap`, keyset-page on
//! `<context>_updated_at` ascending with `includeDeleted`, re-anchor after every page at the last
//! `updatedAt` and skip ids already stored at exactly that timestamp; advance `page` only while a
//! whole page shares the anchor timestamp. No query ever depends on more than Kustomer's 100 pages /
//! 10,000 rows, and every page commits rows, change log and cursor together.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::pages::{Batch, PageSink};
use super::{Engine, Start, SyncError, Tally, Target};
use crate::kustomer::Page;
use crate::record::time;
use crate::write::Cursor;

/// Kustomer's hard cap on pages per search query.
pub const MAX_PAGES: u32 = 100;
/// The result window a search query may reach (100 pages of 100; assumed also for larger pages,
/// since the backend looks like an index with a 10,000-row window — uncertain: Kustomer does not document it, hence the tolerant bound).
pub const MAX_WINDOW: u32 = 10_000;

/// The search body for `target`, optionally from `gte` an anchor.
pub fn query_body(target: &Target, gte: Option<&str>) -> Value {
    let attr = updated_attr(target);
    let mut body = json!({
        "queryContext": target.context,
        "sort": [{ attr.clone(): "asc" }],
        "includeDeleted": true,
    });
    if let Some(anchor) = gte {
        body["and"] = json!([{ attr: { "gte": anchor } }]);
    }
    body
}

fn updated_attr(target: &Target) -> String {
    // kobject_<klass> contexts filter on kobject_updated_at.
    target.entity.updated_attr()
}

/// How far past the server's clock a cursor may be saved: clocks of Kustomer's own servers and the
/// instant a record was stamped may differ a little; a record dated further ahead is a bad clock.
pub const CLOCK_MARGIN: Duration = Duration::from_secs(300);

/// `last_at`, or the server's time (its `Date` header, else ours) plus [`CLOCK_MARGIN`] when
/// `last_at` is later than that; each record beyond it is named in a warning. Timestamps that do not
/// parse are left alone (they came from Kustomer verbatim and compare as text).
fn clock_limited(target: &Target, page: &Page, last_at: &str) -> String {
    let parse = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let now = page.server_time.unwrap_or_else(chrono::Utc::now);
    let limit = now + chrono::Duration::from_std(CLOCK_MARGIN).unwrap_or_default();
    match parse(last_at) {
        Some(t) if t > limit => {
            for record in &page.records {
                if let Some(at) = record.updated_at.as_deref()
                    && parse(at).is_some_and(|t| t > limit)
                {
                    tracing::warn!(
                        entity = %target.key, id = %record.id, updated_at = at,
                        server_time = %now.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                        "a record is dated in the future (a bad clock upstream); it is stored, but the cursor stops at the server's time so later changes are not skipped"
                    );
                }
            }
            limit.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        }
        _ => last_at.to_string(),
    }
}

/// Names each record of `page` whose `updatedAt` is missing or not a timestamp: it is stored, but
/// cannot move the cursor.
fn warn_untimed(target: &Target, page: &Page) {
    for r in page.records.iter().filter(|r| r.cursor_at.is_none()) {
        tracing::warn!(
            entity = %target.key, id = %r.id,
            updated_at = r.updated_at.as_deref().unwrap_or("(missing or not a string)"),
            "a record's attributes.updatedAt is not an RFC 3339 timestamp; it is stored, but the cursor is computed from the other records"
        );
    }
}

/// How many items recent pages cover when the pace is extrapolated (about 20 pages of 500).
const RECENT_ITEMS: u64 = 10_000;

/// Items the pass will serve in all, for progress and ETAs. Exact when the current query's `total`
/// is within the result window: what earlier queries served plus that total. Beyond the window
/// Kustomer's total is (uncertain, as Elasticsearch's `track_total_hits`) only a lower bound, so
/// the rest is extrapolated through time: results come sorted by `updatedAt`, and the recent pace
/// (`served` minus the items served at `since`, over the time from `since`'s `updatedAt` to
/// `last_at`) carries on to `now`. Recent rather than overall: an org's activity usually grows, so
/// the early years would understate the rest. Never below what is known for certain.
pub(super) fn expected_total(
    served_before: u64,
    served_in_query: u64,
    total: Option<u64>,
    since: Option<(u64, &str)>,
    last_at: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<u64> {
    let total = total?;
    let known = served_before + total.max(served_in_query);
    if total <= u64::from(MAX_WINDOW) {
        return Some(known);
    }
    let parse = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let served = served_before + served_in_query;
    let (Some((served_then, then)), Some(last)) = (
        since.and_then(|(n, at)| Some((n, parse(at)?))),
        parse(last_at),
    ) else {
        return Some(known);
    };
    let span = (last - then).num_milliseconds() as f64;
    let left = (now - last).num_milliseconds().max(0) as f64;
    if span <= 0.0 || served <= served_then {
        return Some(known);
    }
    let pace = (served - served_then) as f64 / span;
    Some((served + (pace * left).round() as u64).max(known))
}

/// `at − overlap` as ISO-8601 UTC; `at` itself when it does not parse (then the overlap is lost but
/// nothing is skipped: the cursor came from Kustomer verbatim).
pub fn minus(at: &str, overlap: Duration) -> String {
    match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(t) => {
            // Saturating: a window reaching before the epoch (or out of chrono's range) starts at
            // the epoch, which reads everything.
            let back = chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::MAX);
            let t = t
                .with_timezone(&chrono::Utc)
                .checked_sub_signed(back)
                .filter(|t| t.timestamp() >= 0)
                .unwrap_or(chrono::DateTime::UNIX_EPOCH);
            t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        }
        Err(_) => at.to_string(),
    }
}

/// Runs one incremental pass of `target`: pages are written while the next ones are fetched, and
/// the pages in flight are waited for however the read ends.
pub(super) async fn run(
    engine: &Engine,
    target: &Target,
    run_id: i64,
    tally: &mut Tally,
) -> Result<(), SyncError> {
    let mut sink = PageSink::new(engine, target, run_id);
    let read = read(engine, target, &mut sink, tally).await;
    let written = sink.finish(tally).await;
    // A failed write happened before the read gave up and is the one to report (`finish` answers
    // `Ok` for pages only halted behind an error already reported).
    written.and(read)
}

/// Where a pass starts: the anchor every query starts from, and the ids already stored at exactly
/// that timestamp (skipped when the pass starts at the saved cursor itself). A saved cursor that is
/// not a timestamp (an older version let a bad `updatedAt` in) would be refused by every search: it
/// is dropped, and the pass reads from the start (unchanged records write nothing).
fn start(
    engine: &Engine,
    target: &Target,
    cursor: Option<&Cursor>,
) -> (Option<String>, HashSet<String>) {
    let saved = cursor.and_then(|c| match time::normal(&c.at) {
        Some(at) => Some((at, &c.ids)),
        None => {
            tracing::warn!(
                entity = %target.key, cursor = %c.at,
                "the saved cursor is not a timestamp; reading this entity from the start to replace it"
            );
            None
        }
    });
    let back = match engine.options.start {
        Start::Overlap => Some(engine.options.overlap),
        Start::Back(d) => Some(d),
        Start::At(_) | Start::All => None,
    };
    match (engine.options.start, saved) {
        (Start::All, _) => (None, HashSet::new()),
        (Start::At(t), _) => (
            Some(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
            HashSet::new(),
        ),
        (_, None) => (None, HashSet::new()),
        (_, Some((at, ids))) if back.is_some_and(|d| d.is_zero()) => {
            (Some(at), ids.iter().cloned().collect())
        }
        (_, Some((at, _))) => (Some(minus(&at, back.unwrap_or_default())), HashSet::new()),
    }
}

/// The ids of the page's records whose `updatedAt` is `at` (normal form).
fn ids_at(page: &Page, at: &str) -> Vec<String> {
    page.records
        .iter()
        .filter(|r| r.cursor_at.as_deref() == Some(at))
        .map(|r| r.id.clone())
        .collect()
}

/// The cursor a page ending at `last_at` saves. It never runs ahead of the server's clock: a record
/// dated in the future (a bad clock upstream) is stored, but the saved cursor stops at the clock,
/// so the ordinary updates made meanwhile are still found by the next run.
fn page_cursor(target: &Target, page: &Page, last_at: &str) -> Cursor {
    let at = clock_limited(target, page, last_at);
    Cursor {
        ids: ids_at(page, &at),
        at,
    }
}

/// Reads the pages of one incremental pass into `sink`: the keyset algorithm of docs/design.md §2.
async fn read(
    engine: &Engine,
    target: &Target,
    sink: &mut PageSink<'_>,
    tally: &mut Tally,
) -> Result<(), SyncError> {
    let key = target.key.clone();
    let state = engine
        .store(&target.key, move |s| s.read_state(&key))
        .await?;
    let page_size = engine.options.page_size.clamp(1, 500);
    let (mut anchor, mut skip) = start(engine, target, state.cursor.as_ref());
    // Items set aside at exactly the anchor, by text: the re-anchored query serves them again, and
    // they are quarantined (and counted) once per pass.
    let mut skip_rejected: HashSet<String> = HashSet::new();
    let mut page_no = 1u32;
    // Items served by the queries before the current anchor's, and by the current one so far.
    let (mut served_before_query, mut served_in_query) = (0u64, 0u64);
    // (items served, `updatedAt` reached) after recent pages, the first entry the pass's start:
    // the pace of estimates beyond the result window.
    let mut recent: std::collections::VecDeque<(u64, String)> = std::collections::VecDeque::new();
    loop {
        if page_no > MAX_PAGES || page_no.saturating_mul(page_size) > MAX_WINDOW {
            return Err(SyncError::data(
                &target.key,
                format!(
                    "more than {} records share updatedAt {}; Kustomer's search cannot page past {MAX_WINDOW} rows of one query. Lower sync.page_size does not help; please report this",
                    (page_no - 1) * page_size,
                    anchor.as_deref().unwrap_or("?")
                ),
            ));
        }
        let body = query_body(target, anchor.as_deref());
        // The previous page is written while this one is fetched.
        let fetch = engine.unless_stopped(
            &target.key,
            engine.client.search(&body, page_no, page_size, false),
        );
        let page = sink
            .overlap(fetch, tally)
            .await??
            .map_err(|e| SyncError::api(&target.key, Some(page_no), e))?;
        let fetched = page.served();
        let source = format!(
            "search page {page_no} from updatedAt {}",
            anchor.as_deref().unwrap_or("(the start)")
        );
        let requests = u64::from(page.attempts);
        if fetched == 0 {
            // Nothing (more) matches: record the request and stop.
            let batch = Batch {
                source,
                requests,
                ..Batch::default()
            };
            sink.send(batch, tally).await?;
            return Ok(());
        }
        warn_untimed(target, &page);
        // Quarantined items' `updatedAt`, in normal form where it is a timestamp.
        let rejected_at: Vec<Option<String>> = page
            .rejected
            .iter()
            .map(|r| r.updated_at.as_deref().and_then(time::normal))
            .collect();
        // Where the page ends: the latest valid updatedAt served on it (results come sorted by it).
        let last_at = page
            .records
            .iter()
            .filter_map(|r| r.cursor_at.as_deref())
            .chain(rejected_at.iter().filter_map(Option::as_deref))
            .max()
            .map(str::to_string);
        let Some(last_at) = last_at else {
            // Not one valid timestamp on the page: store it, move no cursor, and read the next page
            // of the same query (the records are found again by the next pass's query if need be).
            served_in_query += fetched;
            let batch = Batch {
                records: page.records,
                rejected: page.rejected,
                source,
                requests,
                fetched,
                cursor: None,
                expected: None,
            };
            sink.send(batch, tally).await?;
            if page.next.is_none() {
                return Ok(());
            }
            page_no += 1;
            continue;
        };
        if recent.is_empty()
            && let Some(first) = page
                .records
                .iter()
                .filter_map(|r| r.cursor_at.clone())
                .min()
        {
            recent.push_back((0, first));
        }
        let whole_page_at_anchor = anchor.as_deref() == Some(last_at.as_str());
        let ids_at_last = ids_at(&page, &last_at);
        let cursor = page_cursor(target, &page, &last_at);
        let fresh: Vec<_> = page
            .records
            .into_iter()
            .filter(|r| !(r.cursor_at.as_deref() == anchor.as_deref() && skip.contains(&r.id)))
            .collect();
        let rejected_at_last: Vec<String> = page
            .rejected
            .iter()
            .zip(&rejected_at)
            .filter(|(_, at)| at.as_deref() == Some(last_at.as_str()))
            .map(|(r, _)| r.raw.clone())
            .collect();
        let rejected: Vec<_> = page
            .rejected
            .into_iter()
            .zip(rejected_at)
            .filter(|(r, at)| {
                !(at.as_deref() == anchor.as_deref() && skip_rejected.contains(&r.raw))
            })
            .map(|(r, _)| r)
            .collect();
        let next = page.next.clone();
        // Every query counts from its anchor, boundary records included, so the pass serves what
        // earlier queries served plus this query's total (estimated beyond the result window).
        served_in_query += fetched;
        let expected = expected_total(
            served_before_query,
            served_in_query,
            page.total,
            recent.front().map(|(n, at)| (*n, at.as_str())),
            &last_at,
            page.server_time.unwrap_or_else(chrono::Utc::now),
        );
        let served = served_before_query + served_in_query;
        recent.push_back((served, last_at.clone()));
        while recent.len() > 2
            && recent
                .get(1)
                .is_some_and(|(n, _)| served - n >= RECENT_ITEMS)
        {
            recent.pop_front();
        }
        let batch = Batch {
            records: fresh,
            rejected,
            source,
            requests,
            fetched,
            cursor: Some(cursor),
            expected,
        };
        sink.send(batch, tally).await?;
        if next.is_none() {
            return Ok(());
        }
        if whole_page_at_anchor {
            // A tie group longer than a page: same anchor, next page.
            skip.extend(ids_at_last);
            skip_rejected.extend(rejected_at_last);
            page_no += 1;
        } else {
            anchor = Some(last_at);
            served_before_query += std::mem::take(&mut served_in_query);
            skip = ids_at_last.into_iter().collect();
            skip_rejected = rejected_at_last.into_iter().collect();
            page_no = 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{expected_total, minus};
    use std::time::Duration;

    #[test]
    fn the_expected_total_is_exact_within_the_window_and_extrapolated_beyond_it() {
        let now = chrono::DateTime::parse_from_rfc3339("2024-01-11T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let since = Some((10_000, "2024-01-02T00:00:00.000Z"));
        // Within the window: earlier queries' items plus this query's total.
        assert_eq!(
            expected_total(1_500, 500, Some(4_210), since, "2024-01-03T00:00:00Z", now),
            Some(5_710)
        );
        // Never below what was served (a total that lags behind the reads).
        assert_eq!(
            expected_total(0, 900, Some(800), since, "2024-01-03T00:00:00Z", now),
            Some(900)
        );
        // Beyond the window (10,001 = "more"): 10,000 items in the last day served, 8 days to go
        // at that pace → 20,000 + 80,000.
        assert_eq!(
            expected_total(
                19_500,
                500,
                Some(10_001),
                since,
                "2024-01-03T00:00:00Z",
                now
            ),
            Some(100_000)
        );
        // No usable pace: the lower bound.
        assert_eq!(
            expected_total(19_500, 500, Some(10_001), None, "2024-01-03T00:00:00Z", now),
            Some(29_501)
        );
        assert_eq!(
            expected_total(
                19_500,
                500,
                Some(10_001),
                Some((20_000, "2024-01-03T00:00:00Z")),
                "2024-01-03T00:00:00Z",
                now
            ),
            Some(29_501)
        );
        assert_eq!(
            expected_total(0, 500, None, since, "2024-01-03T00:00:00Z", now),
            None
        );
    }

    #[test]
    fn the_overlap_is_subtracted_in_utc_with_milliseconds() {
        assert_eq!(
            minus("2024-10-21T14:05:40.118Z", Duration::from_secs(300)),
            "2024-10-21T14:00:40.118Z"
        );
        assert_eq!(minus("garbage", Duration::from_secs(300)), "garbage");
    }
}
