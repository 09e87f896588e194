//! Full-refresh passes: page a GET list to the end by following `links.next`, upsert every record, and
//! only after the whole list was read look again at the rows that were not seen: each is read by id,
//! and only a 404 tombstones it. A list read by page number shifts when a record is deleted during
//! the read, so a live record can go unseen; its read by id stores it instead of inventing a delete.
//! A failed or partial read tombstones nothing. Also discovers klass names for the per-klass
//! kobjects passes.

use std::collections::HashSet;

use super::pages::{Batch, PageSink};
use super::{Engine, SyncError, Tally, Target};
use crate::kustomer::Client;

/// Upper bound on pages of one list, against a server whose `next` links never end.
const MAX_LIST_PAGES: u32 = 100_000;

/// Runs one full refresh of `target`: pages are written while the next one is fetched; unseen rows
/// are tombstoned only after every page of a complete read committed.
pub(super) async fn run(
    engine: &Engine,
    target: &Target,
    run_id: i64,
    tally: &mut Tally,
) -> Result<(), SyncError> {
    let mut sink = PageSink::new(engine, target, run_id);
    let read = read(engine, target, &mut sink, tally).await;
    let written = sink.finish(tally).await;
    written?;
    let seen: HashSet<String> = read?.into_iter().collect();
    let table = target.entity.name;
    let klass = target.klass.clone();
    let local = engine
        .store(&target.key, move |s| {
            s.live_ids_by_created(table, klass.as_deref())
        })
        .await?;
    let unseen: Vec<String> = local
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| !seen.contains(id))
        .collect();
    if !unseen.is_empty() {
        tracing::info!(
            entity = %target.key, rows = unseen.len(),
            "rows not in the full list; reading each by id before tombstoning it"
        );
    }
    super::reconcile::confirm_and_tombstone(engine, target, run_id, unseen, tally).await
}

/// Reads the whole list, sending each page to `sink`; returns the ids seen.
async fn read(
    engine: &Engine,
    target: &Target,
    sink: &mut PageSink<'_>,
    tally: &mut Tally,
) -> Result<Vec<String>, SyncError> {
    let page_size = engine
        .options
        .page_size
        .clamp(1, target.entity.list_max_page_size);
    let mut link = format!("{}?page=1&pageSize={page_size}", target.entity.list_path);
    let mut seen: Vec<String> = Vec::new();
    for page_no in 1..=MAX_LIST_PAGES {
        let fetch = engine.unless_stopped(&target.key, engine.client.get_page(&link));
        let page = sink
            .overlap(fetch, tally)
            .await??
            .map_err(|e| SyncError::api(&target.key, Some(page_no), e))?;
        let fetched = page.served();
        seen.extend(page.records.iter().map(|r| r.id.clone()));
        // An item that could not be decoded is still upstream: its row must not be tombstoned.
        seen.extend(page.rejected.iter().filter_map(|r| r.id.clone()));
        let empty = fetched == 0;
        let batch = Batch {
            records: page.records,
            rejected: page.rejected,
            source: format!("GET {link}"),
            requests: u64::from(page.attempts),
            fetched,
            cursor: None,
            // The customers list reports the whole list's total; the other lists do not.
            expected: page.total,
        };
        sink.send(batch, tally).await?;
        match page.next {
            Some(next) if !empty && next != link => link = next,
            _ => return Ok(seen),
        }
    }
    Err(SyncError::data(
        &target.key,
        format!(
            "the list {} did not end after {MAX_LIST_PAGES} pages; nothing was tombstoned",
            target.entity.list_path
        ),
    ))
}

/// Names of the org's klasses (`attributes.name`, the form used in API paths), from `GET /v1/klasses`.
pub(super) async fn klass_names(client: &Client) -> Result<Vec<String>, SyncError> {
    let mut link = "/v1/klasses?page=1&pageSize=100".to_string();
    let mut names = Vec::new();
    for page_no in 1..=MAX_LIST_PAGES {
        let page = client
            .get_page(&link)
            .await
            .map_err(|e| SyncError::api("kobjects", Some(page_no), e))?;
        let empty = page.records.is_empty();
        for record in &page.records {
            if record.deleted {
                continue;
            }
            let value = record.value();
            match value
                .as_ref()
                .and_then(|v| v.pointer("/attributes/name"))
                .and_then(|n| n.as_str())
            {
                // A klass name becomes part of a URL path and a search context: accept only the
                // characters Kustomer's names use, so a strange one cannot change the request.
                Some(name)
                    if !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
                {
                    names.push(name.to_string())
                }
                other => {
                    tracing::warn!(klass = %record.id, name = ?other, "skipping a klass whose name cannot be used in a path")
                }
            }
        }
        match page.next {
            Some(next) if !empty && next != link => link = next,
            _ => return Ok(names),
        }
    }
    Ok(names)
}
