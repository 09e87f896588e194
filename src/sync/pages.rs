//! Writing a pass's pages: each page goes to the writer as one transaction (rows, change log, run
//! counters and cursor together), and the next page is fetched while the previous one is written, so
//! HTTP and SQLite overlap. At most one page is in flight, and a page is queued only after the one
//! before it committed: pages commit in the order read, and a failed write stops the pass before
//! anything after it is stored.

use std::future::Future;
use std::pin::Pin;

use super::{Engine, SyncError, Tally, Target};
use crate::destination::Error as StoreError;
use crate::record::{Record, Rejected};
use crate::write::{Applied, Cursor, PageWrite};

/// What the writer answers for one page: the job's own result inside the writer's.
type Outcome = Result<Result<Applied, StoreError>, StoreError>;
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

/// Sends one pass's pages to the writer, one in flight at a time.
pub(super) struct PageSink<'a> {
    engine: &'a Engine,
    target: &'a Target,
    run_id: i64,
    in_flight: Option<InFlight>,
}

impl<'a> PageSink<'a> {
    /// A sink for the pages of run `run_id` of `target`.
    pub fn new(engine: &'a Engine, target: &'a Target, run_id: i64) -> PageSink<'a> {
        PageSink {
            engine,
            target,
            run_id,
            in_flight: None,
        }
    }

    /// Runs `fetch` while the page in flight is written, and returns what `fetch` returned once both
    /// are done. A failed write wins over whatever the fetch brought (it happened first).
    pub async fn overlap<T>(
        &mut self,
        fetch: impl Future<Output = T>,
        tally: &mut Tally,
    ) -> Result<T, SyncError> {
        let pending = self.in_flight.take();
        let written = async move {
            match pending {
                Some(p) => Some((p.written.await, p.requests, p.fetched, p.expected)),
                None => None,
            }
        };
        let (out, written) = tokio::join!(fetch, written);
        self.settle(written, tally)?;
        Ok(out)
    }

    /// Queues a page behind the one in flight, after that one committed. Quarantined items are
    /// logged here, naming the entity and the request that served them.
    pub async fn send(&mut self, batch: Batch, tally: &mut Tally) -> Result<(), SyncError> {
        self.finish(tally).await?;
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
        };
        let written = self.engine.writer.submit(move |s| s.apply_page(&page));
        self.in_flight = Some(InFlight {
            written: Box::pin(written),
            requests,
            fetched,
            expected,
        });
        Ok(())
    }

    /// Waits for the page in flight, if any, and accounts for it.
    pub async fn finish(&mut self, tally: &mut Tally) -> Result<(), SyncError> {
        let written = match self.in_flight.take() {
            Some(p) => Some((p.written.await, p.requests, p.fetched, p.expected)),
            None => None,
        };
        self.settle(written, tally)
    }

    fn settle(
        &self,
        written: Option<(Outcome, u64, u64, Option<u64>)>,
        tally: &mut Tally,
    ) -> Result<(), SyncError> {
        let Some((result, requests, fetched, expected)) = written else {
            return Ok(());
        };
        let applied = result
            .and_then(|r| r)
            .map_err(|e| SyncError::store(&self.target.key, e))?;
        tally.applied.add(applied);
        tally.requests += requests;
        tally.fetched += fetched;
        if expected.is_some() {
            tally.expected = expected;
        }
        self.engine.emit(&self.target.key, tally, false);
        Ok(())
    }
}
