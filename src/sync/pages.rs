//! Writing a pass's pages: each page goes to the writer with its rows, change log, run counters and
//! cursor (committed together, alone or with other queued pages in one transaction), and fetching
//! goes on while pages are written, so HTTP and the database overlap. Up to [`IN_FLIGHT`] pages of a
//! pass are queued at once, which lets the writer batch them when fetching outpaces it. The writer
//! runs jobs in order, so pages commit in the order read; a failed write sets the pass's halt flag,
//! so nothing the pass queued after it is stored, and the pass stops with that error.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::FutureExt;

use super::{Engine, SyncError, Tally, Target};
use crate::destination::Error as StoreError;
use crate::record::{Record, Rejected};
use crate::write::{Applied, Cursor, PageWrite};

/// Pages of one pass queued for the writer and not yet accounted for, at most. Each holds a page of
/// decoded records in memory (about a megabyte at 500 records), so this bounds what a pass that
/// fetches faster than the database writes keeps waiting; four are enough for the writer to find
/// a backlog to batch.
pub(super) const IN_FLIGHT: usize = 4;

/// Record text queued for the writer by all passes together, at most, in KiB: what keeps peak
/// memory flat when several passes fetch faster than the database writes (a page past the budget
/// waits until the writer has answered enough of the pages before it).
pub(super) const QUEUED_KIB: u32 = 3 * 1024;

/// What the writer answers for one page.
type Outcome = Result<Applied, StoreError>;
type Written = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// One page for the writer: what to store, what to set aside and what it cost.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// Records to store.
    pub records: Vec<Record>,
    /// Items that could not be decoded.
    pub rejected: Vec<Rejected>,
    /// The request that served them, for `rejected_records.page`.
    pub source: String,
    /// HTTP requests spent on the page.
    pub requests: u64,
    /// Items served on the page, kept or not.
    pub fetched: u64,
    /// Where an incremental read has got to after this page (`None` for full reads).
    pub cursor: Option<Cursor>,
    /// Items the whole pass is expected to serve, from the server's `meta.total`, when it says.
    pub expected: Option<u64>,
}

/// A page handed to the writer and not yet accounted for.
struct InFlight {
    written: Written,
    requests: u64,
    fetched: u64,
    expected: Option<u64>,
}

/// Sends one pass's pages to the writer, up to [`IN_FLIGHT`] at a time.
pub(super) struct PageSink<'a> {
    engine: &'a Engine,
    target: &'a Target,
    run_id: i64,
    /// Oldest first.
    in_flight: VecDeque<InFlight>,
    /// Set by the writer when a page of this pass failed.
    halt: Arc<AtomicBool>,
}

impl<'a> PageSink<'a> {
    /// A sink for the pages of run `run_id` of `target`.
    pub fn new(engine: &'a Engine, target: &'a Target, run_id: i64) -> PageSink<'a> {
        PageSink {
            engine,
            target,
            run_id,
            in_flight: VecDeque::new(),
            halt: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Runs `fetch` while the pages in flight are written, and returns what `fetch` returned after
    /// accounting for the pages written meanwhile. A failed write wins over whatever the fetch
    /// brought (it happened first).
    pub async fn overlap<T>(
        &mut self,
        fetch: impl Future<Output = T>,
        tally: &mut Tally,
    ) -> Result<T, SyncError> {
        let out = fetch.await;
        while let Some(front) = self.in_flight.front_mut() {
            let Some(result) = (&mut front.written).now_or_never() else {
                break;
            };
            if let Some(done) = self.in_flight.pop_front() {
                self.settle(result, &done, tally)?;
            }
        }
        Ok(out)
    }

    /// Queues a page behind the ones in flight, first waiting for the oldest when [`IN_FLIGHT`]
    /// are queued. Quarantined items are logged here, naming the entity and the request that
    /// served them.
    pub async fn send(&mut self, batch: Batch, tally: &mut Tally) -> Result<(), SyncError> {
        if self.halt.load(Ordering::SeqCst) {
            // A page of this pass failed: nothing more is queued; its error is the answer.
            self.finish(tally).await?;
        }
        while self.in_flight.len() >= IN_FLIGHT {
            self.settle_oldest(tally).await?;
        }
        let kib: usize = batch.records.iter().map(|r| r.data.len()).sum::<usize>() / 1024;
        let kib = u32::try_from(kib).unwrap_or(u32::MAX).clamp(1, QUEUED_KIB);
        // Released by the writer thread as it answers each page, so waiting here always ends; the
        // semaphore is never closed, so `acquire` only fails if it were.
        let budget = self
            .engine
            .queued
            .clone()
            .acquire_many_owned(kib)
            .await
            .ok();
        for item in &batch.rejected {
            tracing::warn!(
                entity = %self.target.key, page = %batch.source,
                id = item.id.as_deref().unwrap_or("(unreadable)"), reason = %item.reason,
                "a served record cannot be stored; it is set aside in rejected_records and the sync goes on"
            );
        }
        let Batch {
            records,
            rejected,
            source,
            requests,
            fetched,
            cursor,
            expected,
        } = batch;
        let page = PageWrite {
            table: self.target.entity.name,
            state_key: self.target.key.clone(),
            klass: self.target.klass.clone(),
            run_id: self.run_id,
            records,
            rejected,
            source,
            requests,
            fetched,
            cursor,
            expected,
            only_newer: false,
        };
        let written = self
            .engine
            .writer
            .submit_page(page, self.halt.clone(), budget);
        self.in_flight.push_back(InFlight {
            written: Box::pin(written),
            requests,
            fetched,
            expected,
        });
        Ok(())
    }

    /// Waits for every page in flight and accounts for them; the first failure is the answer.
    /// Pages not written because an earlier one failed are not failures of their own: when the
    /// earlier one was already reported, this answers `Ok`.
    pub async fn finish(&mut self, tally: &mut Tally) -> Result<(), SyncError> {
        let mut first_error = None;
        while let Some(mut oldest) = self.in_flight.pop_front() {
            match (&mut oldest.written).await {
                Err(StoreError::Halted) => {}
                result => {
                    if let Err(e) = self.settle(result, &oldest, tally) {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn settle_oldest(&mut self, tally: &mut Tally) -> Result<(), SyncError> {
        let Some(mut oldest) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let result = (&mut oldest.written).await;
        self.settle(result, &oldest, tally)
    }

    fn settle(&self, result: Outcome, page: &InFlight, tally: &mut Tally) -> Result<(), SyncError> {
        let applied = result.map_err(|e| SyncError::store(&self.target.key, e))?;
        tally.applied.add(applied);
        tally.requests += page.requests;
        tally.fetched += page.fetched;
        if page.expected.is_some() {
            tally.expected = page.expected;
        }
        self.engine.emit(&self.target.key, tally, false);
        Ok(())
    }
}

impl Drop for PageSink<'_> {
    /// A pass dropped mid-way (the daemon aborting its tasks) queues nothing more, and the pages
    /// it queued that the writer has not reached are not written.
    fn drop(&mut self) {
        if !self.in_flight.is_empty() {
            self.halt.store(true, Ordering::SeqCst);
        }
    }
}
