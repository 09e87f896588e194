//! Writing a pass's pages: each page goes to the writer as one transaction (rows, change log, run
//! counters and cursor together), and the next page is fetched while the previous one is written, so
//! HTTP and SQLite overlap. At most one page is in flight, and a page is queued only after the one
//! before it committed: pages commit in the order read, and a failed write stops the pass before
//! anything after it is stored.

use std::future::Future;
use std::pin::Pin;

use super::{Engine, SyncError, Tally, Target};
use crate::kustomer::Record;
use crate::store::StoreError;
use crate::store::apply::{self, Applied, Cursor, PageWrite};

/// What the writer answers for one page: the job's own result inside the writer's.
type Outcome = Result<Result<Applied, StoreError>, StoreError>;
type Written = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// A page handed to the writer and not yet accounted for.
struct InFlight {
    written: Written,
    requests: u64,
    fetched: u64,
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
                Some(p) => Some((p.written.await, p.requests, p.fetched)),
                None => None,
            }
        };
        let (out, written) = tokio::join!(fetch, written);
        self.settle(written, tally)?;
        Ok(out)
    }

    /// Queues a page behind the one in flight, after that one committed. `cursor` is where an
    /// incremental read has got to after this page (`None` for full reads).
    pub async fn send(
        &mut self,
        records: Vec<Record>,
        attempts: u32,
        fetched: u64,
        cursor: Option<Cursor>,
        tally: &mut Tally,
    ) -> Result<(), SyncError> {
        self.finish(tally).await?;
        let page = PageWrite {
            table: self.target.entity.name,
            state_key: self.target.key.clone(),
            klass: self.target.klass.clone(),
            run_id: self.run_id,
            records,
            requests: u64::from(attempts),
            fetched,
            cursor,
        };
        let written = self
            .engine
            .writer
            .submit(move |s| apply::apply_page(s, &page));
        self.in_flight = Some(InFlight {
            written: Box::pin(written),
            requests: u64::from(attempts),
            fetched,
        });
        Ok(())
    }

    /// Waits for the page in flight, if any, and accounts for it.
    pub async fn finish(&mut self, tally: &mut Tally) -> Result<(), SyncError> {
        let written = match self.in_flight.take() {
            Some(p) => Some((p.written.await, p.requests, p.fetched)),
            None => None,
        };
        self.settle(written, tally)
    }

    fn settle(
        &self,
        written: Option<(Outcome, u64, u64)>,
        tally: &mut Tally,
    ) -> Result<(), SyncError> {
        let Some((result, requests, fetched)) = written else {
            return Ok(());
        };
        let applied = result
            .and_then(|r| r)
            .map_err(|e| SyncError::store(&self.target.key, e))?;
        tally.applied.add(applied);
        tally.requests += requests;
        tally.fetched += fetched;
        self.engine.emit(&self.target.key, tally, false);
        Ok(())
    }
}
