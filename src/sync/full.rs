//! Full-refresh passes: page a GET list to the end by following `links.next`, upsert every record, and
//! only after the whole list was read look again at the rows that were not seen: each is read by id,
//! and only a 404 tombstones it. A list read by page number shifts when a record is deleted during
//! the read, so a live record can go unseen; its read by id stores it instead of inventing a delete.
//! A failed or partial read tombstones nothing. Also discovers klass names for the per-klass
//! kobjects passes.

use std::collections::HashSet;

use super::pages::{Batch, PageSink};
use super::{Engine, SyncError, Tally, Target};
use crate::kustomer::{Client, Page};
use crate::record::{Record, Rejected};

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
    let entity = target.entity;
    let mut link = match entity.list_query {
        "" => format!("{}?page=1&pageSize={page_size}", entity.list_path),
        query => format!("{}?{query}&page=1&pageSize={page_size}", entity.list_path),
    };
    let mut seen: Vec<String> = Vec::new();
    // Related records arrive once per page that refers to them: each is stored once per pass.
    let mut taken: HashSet<String> = HashSet::new();
    for page_no in 1..=MAX_LIST_PAGES {
        let fetch = engine.unless_stopped(&target.key, engine.client.get_page(&link));
        let mut page = sink
            .overlap(fetch, tally)
            .await??
            .map_err(|e| SyncError::api(&target.key, Some(page_no), e))?;
        // Paging follows the list's own items; the records are those items or their related ones.
        let empty = page.served() == 0;
        let (records, rejected) = match entity.included {
            None => (page.records, page.rejected),
            Some(kind) => included_of(&mut page, kind, &mut taken),
        };
        let fetched = (records.len() + rejected.len()) as u64;
        seen.extend(records.iter().map(|r| r.id.clone()));
        // An item that could not be decoded is still upstream: its row must not be tombstoned.
        seen.extend(rejected.iter().filter_map(|r| r.id.clone()));
        let batch = Batch {
            records,
            rejected,
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

/// The related records of JSON:API type `kind` on `page` (its `included`), each id once per pass
/// (`taken`), with the related items of that type that could not be decoded. Items of other types,
/// and rejected items whose type cannot be read, are not this entity's.
fn included_of(
    page: &mut Page,
    kind: &str,
    taken: &mut HashSet<String>,
) -> (Vec<Record>, Vec<Rejected>) {
    let type_of = |text: &str| -> Option<String> {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
    };
    let records = std::mem::take(&mut page.included)
        .into_iter()
        .filter(|r| type_of(&r.data).as_deref() == Some(kind))
        .filter(|r| taken.insert(r.id.clone()))
        .collect();
    let rejected = std::mem::take(&mut page.included_rejected)
        .into_iter()
        .filter(|r| type_of(&r.raw).as_deref() == Some(kind))
        .collect();
    (records, rejected)
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
