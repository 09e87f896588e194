//! The drain: takes the oldest events from the inbox, turns them into one page per entity of
//! pushed records (`only_newer`: a record applies only when it is newer than its row, and the
//! newest copy of a record wins within a batch), hands the pages to the one writer on its urgent
//! lane (before a sync's queued pages), and removes the events from the inbox only once they are
//! committed. A batch that fails stays in the inbox and is tried again after a pause, so nothing
//! a 2xx answered is ever lost; an event that cannot be read is set aside in `rejected_records`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::envelope;
use super::inbox::{Entry, Inbox};
use super::metrics::{Metrics, Rejection};
use crate::destination::{Destination, Writer};
use crate::entity::{self, Entity};
use crate::mirror::fresh;
use crate::record::{Record, Rejected};
use crate::write::{Applied, EventsApplied, PageWrite};

/// Events taken from the inbox for one transaction.
pub const BATCH: usize = 1000;

/// Longest pause after failed batches.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// One entity's share of a batch.
#[derive(Default)]
struct Share {
    records: Vec<Record>,
    rejected: Vec<Rejected>,
    reasons: Vec<Rejection>,
    events: u64,
    last: Option<Last>,
}

struct Last {
    event: String,
    event_id: Option<String>,
    record_id: Option<String>,
    received_at: String,
}

/// Drains `inbox` into the mirror through `writer` under webhook run `run_id` until `stop` turns
/// true (the batch under way is finished first).
pub async fn run(
    inbox: Inbox,
    writer: Writer,
    run_id: i64,
    metrics: Arc<Metrics>,
    stored: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let outcome = match inbox.take(BATCH).await {
            Ok(entries) if entries.is_empty() => {
                metrics.waiting.store(0, Ordering::Relaxed);
                tokio::select! {
                    _ = stored.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = crate::daemon::stopped(&mut stop) => return,
                }
                continue;
            }
            Ok(entries) => {
                metrics
                    .waiting
                    .store(entries.len() as i64, Ordering::Relaxed);
                apply(&inbox, &writer, run_id, &metrics, entries).await
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                let pause = crate::daemon::backoff(Duration::from_secs(1), failures).min(MAX_PAUSE);
                tracing::error!(error = %e, retry_in = ?pause, "cannot apply the webhook events waiting in the inbox; they stay there and are tried again");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = crate::daemon::stopped(&mut stop) => return,
                }
            }
        }
    }
}

/// Applies one batch and removes it from the inbox.
async fn apply(
    inbox: &Inbox,
    writer: &Writer,
    run_id: i64,
    metrics: &Arc<Metrics>,
    entries: Vec<Entry>,
) -> Result<(), String> {
    let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
    let received: Vec<String> = entries.iter().map(|e| e.received_at.clone()).collect();
    let shares = sort(entries, metrics);
    let mut pages = Vec::with_capacity(shares.len());
    let mut tails = Vec::with_capacity(shares.len());
    for (_, (entity, share)) in shares {
        let (records, dropped) = fresh::newest(share.records);
        let source = match &share.last {
            Some(last) => format!(
                "webhook {} {}",
                last.event,
                last.event_id.as_deref().unwrap_or("")
            ),
            None => "webhook".to_string(),
        };
        pages.push(PageWrite {
            table: entity.name,
            state_key: entity.name.to_string(),
            klass: None,
            run_id,
            fetched: share.events,
            records,
            rejected: share.rejected,
            source: source.trim_end().to_string(),
            requests: 0,
            cursor: None,
            expected: None,
            only_newer: true,
        });
        tails.push((entity, share.events, dropped, share.last, share.reasons));
    }
    let written = pages.clone();
    let summaries: Vec<(u64, u64, Option<Last>)> = tails
        .iter_mut()
        .map(|(_, events, dropped, last, _)| (*events, *dropped, last.take()))
        .collect();
    let tables: Vec<&'static str> = tails.iter().map(|t| t.0.name).collect();
    let applied = writer
        .call_urgent(move |d: &mut dyn Destination| {
            let applied = d.apply_pages(&pages, None)?;
            let events: Vec<EventsApplied> = tables
                .iter()
                .zip(summaries)
                .zip(&applied)
                .filter_map(|((table, (events, dropped, last)), a)| {
                    let last = last?;
                    Some(EventsApplied {
                        table,
                        event: last.event,
                        event_id: last.event_id,
                        record_id: last.record_id,
                        received_at: last.received_at,
                        events,
                        changed: a.changed(),
                        stale: a.stale + dropped,
                        rejected: a.rejected,
                    })
                })
                .collect();
            // The pages are committed: a failure here only loses the statistics of the batch.
            if let Err(e) = d.record_events(&events) {
                tracing::warn!(error = %e, "cannot record the webhook events applied in webhook_events");
            }
            Ok::<Vec<Applied>, crate::destination::Error>(applied)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    inbox.done(seqs).await.map_err(|e| e.to_string())?;
    count(metrics, &written, &applied, &tails, &received);
    Ok(())
}

/// Splits a batch by entity, in arrival order, setting aside what cannot be read.
fn sort(
    entries: Vec<Entry>,
    metrics: &Metrics,
) -> BTreeMap<&'static str, (&'static Entity, Share)> {
    let mut shares: BTreeMap<&'static str, (&'static Entity, Share)> = BTreeMap::new();
    for entry in entries {
        let Some((entity, _)) = entity::by_webhook_event(&entry.event) else {
            // Stored by a version that applied more events: nothing to do with it here.
            metrics.ignored.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let share = &mut shares
            .entry(entity.name)
            .or_insert_with(|| (entity, Share::default()))
            .1;
        share.events += 1;
        let (event_id, item) = match envelope::read(&entry.body) {
            Ok(e) => (e.id, e.item),
            Err(reason) => {
                set_aside(
                    share,
                    &entry,
                    None,
                    Rejection::Body,
                    format!("the event body is not a JSON object: {reason}"),
                );
                continue;
            }
        };
        let mut last = Last {
            event: entry.event.clone(),
            event_id,
            record_id: None,
            received_at: entry.received_at.clone(),
        };
        match item {
            None => {
                share.last = Some(last);
                set_aside(
                    share,
                    &entry,
                    None,
                    Rejection::NoData,
                    "the event carries no data".to_string(),
                );
            }
            Some(Err(mut rejected)) => {
                last.record_id = rejected.id.clone();
                share.last = Some(last);
                rejected.reason = format!("{} (pushed by {})", rejected.reason, entry.event);
                share.rejected.push(rejected);
                share.reasons.push(Rejection::Record);
            }
            Some(Ok(record)) => {
                last.record_id = Some(record.id.clone());
                share.last = Some(last);
                match type_of(&record) {
                    Some(t) if t == entity.context => share.records.push(record),
                    other => {
                        let reason = format!(
                            "a {} event carries a record of type {}",
                            entry.event,
                            other.as_deref().unwrap_or("(none)")
                        );
                        share.rejected.push(Rejected {
                            id: Some(record.id.clone()),
                            updated_at: record.updated_at.clone(),
                            reason,
                            raw: record.data,
                        });
                        share.reasons.push(Rejection::Type);
                    }
                }
            }
        }
    }
    shares
}

fn set_aside(share: &mut Share, entry: &Entry, id: Option<String>, why: Rejection, reason: String) {
    share.rejected.push(Rejected {
        id,
        updated_at: None,
        reason,
        raw: String::from_utf8_lossy(&entry.body).into_owned(),
    });
    share.reasons.push(why);
}

/// `data.type` of a decoded record.
fn type_of(record: &Record) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(&record.data)
        .ok()?
        .get("type")?
        .as_str()
        .map(str::to_string)
}

type Tail = (&'static Entity, u64, u64, Option<Last>, Vec<Rejection>);

/// The batch's counters and latencies.
fn count(
    metrics: &Metrics,
    pages: &[PageWrite],
    applied: &[Applied],
    tails: &[Tail],
    received: &[String],
) {
    let now = chrono::Utc::now();
    let seconds_since = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| (now - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0)
    };
    for at in received {
        if let Some(s) = seconds_since(at) {
            metrics.commit_seconds.observe(s);
        }
    }
    for ((page, a), (_, _, dropped, _, reasons)) in pages.iter().zip(applied).zip(tails) {
        metrics.changed.fetch_add(a.changed(), Ordering::Relaxed);
        metrics
            .unchanged
            .fetch_add(a.unchanged.saturating_sub(a.stale), Ordering::Relaxed);
        metrics
            .stale
            .fetch_add(a.stale + dropped, Ordering::Relaxed);
        for why in reasons {
            metrics.rejected(*why);
        }
        // Freshness is about changes: a page that changed nothing held only old news.
        if a.changed() > 0 {
            for record in &page.records {
                if let Some(s) = record.cursor_at.as_deref().and_then(seconds_since) {
                    metrics.freshness_seconds.observe(s);
                }
            }
        }
    }
}
