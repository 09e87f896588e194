//! The one writer: a dedicated thread that owns the [`Destination`] and runs the jobs sent to it in
//! the order they arrive, so that async sync code never holds a blocking database connection across
//! `.await`. Pages get a job kind of their own so the thread can batch them: when several pages are
//! queued (a first sync or a catch-up, where fetching outpaces writing), it commits them in one
//! transaction, bounded by [`BATCH_TIME`] of work and by size. Each page's rows, change log,
//! counters and cursor stay together in whichever transaction holds them, and pages commit in the
//! order they were queued, so the cursor rule holds as with one page per transaction.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Destination, Error};
use crate::write::{Applied, PageWrite};

/// About how much work one transaction of queued pages may hold: more pages are added to it only
/// while it has run for less than this. A crash loses at most this much work, and readers see the
/// mirror move at least this often during a backlog.
pub const BATCH_TIME: Duration = Duration::from_secs(1);

/// At most this many pages are taken from the queue for one transaction.
pub const BATCH_PAGES: usize = 16;

/// At most this many bytes of record text are taken from the queue for one transaction (the first
/// page always goes, whatever its size).
pub const BATCH_BYTES: usize = 32 << 20;

type Run = Box<dyn FnOnce(&mut dyn Destination) + Send>;

enum Job {
    Run(Run),
    /// Wakes the thread for the urgent lane (the jobs themselves are in [`Urgent`]).
    Wake,
    /// Boxed: a page job is much larger than a closure's pointer.
    Page(Box<PageJob>),
}

/// A page to write and where its answer goes.
struct PageJob {
    page: PageWrite,
    /// Set when a page of the same pass failed: the pass stops there, so later pages are answered
    /// with [`Error::Halted`] instead of being written after the failure.
    halt: Arc<AtomicBool>,
    reply: tokio::sync::oneshot::Sender<Result<Applied, Error>>,
    /// The caller's share of its queue budget, given back once the page is answered.
    budget: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl PageJob {
    fn bytes(&self) -> usize {
        self.page.records.iter().map(|r| r.data.len()).sum()
    }

    fn answer(self, result: Result<Applied, Error>) {
        if result.is_err() {
            self.halt.store(true, Ordering::SeqCst);
        }
        // The receiver is gone only when the caller's future was dropped (cancelled): the work
        // is done either way, and its transaction committed or rolled back on its own.
        let _ = self.reply.send(result);
    }
}

/// Handle to the writer thread. Cloning shares the same thread; it stops when the last handle drops.
#[derive(Debug, Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    urgent: Arc<Urgent>,
}

/// The urgent lane: jobs run before anything queued in the channel, between two transactions
/// (pushed webhook events, which must not wait behind a first sync's backlog of pages).
#[derive(Default)]
struct Urgent(std::sync::Mutex<VecDeque<Run>>);

impl std::fmt::Debug for Urgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Urgent")
    }
}

impl Urgent {
    fn pop(&self) -> Option<Run> {
        // A poisoned lock means a job panicked while queueing, which cannot happen (push and pop
        // hold it for one VecDeque call); the queue itself is still sound, so use it.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
    }

    fn push(&self, job: Run) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(job);
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Run(_) => f.write_str("Job::Run"),
            Job::Wake => f.write_str("Job::Wake"),
            Job::Page(p) => write!(f, "Job::Page({})", p.page.state_key),
        }
    }
}

impl Writer {
    /// Moves `destination` onto a new thread that executes jobs in the order they arrive.
    pub fn spawn(destination: impl Destination + 'static) -> Result<Writer, Error> {
        Writer::spawn_boxed(Box::new(destination))
    }

    /// [`Writer::spawn`] for a destination chosen at run time ([`super::open`]).
    pub fn spawn_boxed(destination: Box<dyn Destination>) -> Result<Writer, Error> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let urgent = Arc::new(Urgent::default());
        let lane = Arc::clone(&urgent);
        std::thread::Builder::new()
            .name("kustomer-mirror-writer".to_string())
            .spawn(move || work(destination, &queue, &lane))
            .map_err(Error::Thread)?;
        Ok(Writer { jobs, urgent })
    }

    /// Runs `f` on the writer thread before the jobs queued so far (after the transaction under way,
    /// if any) and returns its result.
    pub async fn call_urgent<R, F>(&self, f: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Destination) -> R + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.urgent.push(Box::new(move |destination| {
            let _ = reply.send(f(destination));
        }));
        self.jobs.send(Job::Wake).map_err(|_| Error::WriterGone)?;
        answer.await.map_err(|_| Error::WriterGone)
    }

    /// Runs `f` on the writer thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Destination) -> R + Send + 'static,
    {
        self.submit(f).await
    }

    /// Queues `f` now (behind the jobs already queued) and returns a future of its result, so the
    /// caller can do other work, such as fetching the next page, while the writer runs it. Dropping
    /// the future does not cancel the job.
    pub fn submit<R, F>(
        &self,
        f: F,
    ) -> impl std::future::Future<Output = Result<R, Error>> + Send + 'static
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Destination) -> R + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job::Run(Box::new(move |destination| {
            // As in `PageJob::answer`: a dropped receiver means the caller stopped waiting.
            let _ = reply.send(f(destination));
        }));
        let queued = self.jobs.send(job).map_err(|_| Error::WriterGone);
        async move {
            queued?;
            answer.await.map_err(|_| Error::WriterGone)
        }
    }

    /// Queues one page of a pass and returns a future of what writing it changed. The page may
    /// share a transaction with pages queued before or after it. `halt` is the pass's own flag:
    /// once a page of the pass fails, its later pages are not written (they answer
    /// [`Error::Halted`]). Dropping the future does not cancel the write.
    /// `budget` is released once the page is answered, here on the writer's thread, whether or not
    /// the caller is awaiting the answer yet.
    pub fn submit_page(
        &self,
        page: PageWrite,
        halt: Arc<AtomicBool>,
        budget: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> impl std::future::Future<Output = Result<Applied, Error>> + Send + 'static {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queued = self
            .jobs
            .send(Job::Page(Box::new(PageJob {
                page,
                halt,
                reply,
                budget,
            })))
            .map_err(|_| Error::WriterGone);
        async move {
            queued?;
            answer.await.map_err(|_| Error::WriterGone)?
        }
    }
}

/// The writer thread's loop: urgent jobs first, then jobs in order, queued pages batched.
fn work(mut destination: Box<dyn Destination>, queue: &mpsc::Receiver<Job>, urgent: &Urgent) {
    // Jobs taken from the queue but not run yet (a non-page job met while gathering a batch, pages
    // a batch's deadline left): they go before anything still in the queue.
    let mut pending: VecDeque<Job> = VecDeque::new();
    loop {
        while let Some(f) = urgent.pop() {
            f(destination.as_mut());
        }
        let job = match pending.pop_front() {
            Some(job) => job,
            None => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            Job::Run(f) => f(destination.as_mut()),
            Job::Wake => {}
            Job::Page(first) => {
                let mut bytes = first.bytes();
                let mut batch = vec![*first];
                while batch.len() < BATCH_PAGES && bytes < BATCH_BYTES {
                    let next = match pending.pop_front() {
                        Some(job) => job,
                        None => match queue.try_recv() {
                            Ok(job) => job,
                            Err(_) => break,
                        },
                    };
                    match next {
                        Job::Page(page) => {
                            bytes += page.bytes();
                            batch.push(*page);
                        }
                        other => {
                            pending.push_front(other);
                            break;
                        }
                    }
                }
                let left = write_batch(destination.as_mut(), batch);
                for page in left.into_iter().rev() {
                    pending.push_front(Job::Page(Box::new(page)));
                }
            }
        }
    }
}

/// Writes `batch` in one transaction (as much of it as [`BATCH_TIME`] allows) and answers each
/// page written; returns the pages left for the next transaction. When a transaction holding
/// several passes' pages fails for a reason a page may have caused, it cannot tell which page, so
/// each page is written again on its own and only the failing page's pass gets the error.
fn write_batch(destination: &mut dyn Destination, batch: Vec<PageJob>) -> Vec<PageJob> {
    let mut live = Vec::with_capacity(batch.len());
    for job in batch {
        if job.halt.load(Ordering::SeqCst) {
            job.answer(Err(Error::Halted));
        } else {
            live.push(job);
        }
    }
    if live.is_empty() {
        return Vec::new();
    }
    let (pages, tails): (Vec<PageWrite>, Vec<_>) = live
        .into_iter()
        .map(|j| (j.page, (j.halt, j.reply, j.budget)))
        .unzip();
    let one_pass = tails
        .iter()
        .all(|(halt, _, _)| Arc::ptr_eq(halt, &tails[0].0));
    let deadline = Instant::now() + BATCH_TIME;
    let result = destination.apply_pages(&pages, Some(deadline));
    // The pages go back into their jobs once, whatever the outcome, to be answered or kept.
    let jobs = pages
        .into_iter()
        .zip(tails)
        .map(|(page, (halt, reply, budget))| PageJob {
            page,
            halt,
            reply,
            budget,
        });
    match result {
        Ok(applied) => {
            tracing::debug!(
                pages = applied.len(),
                queued = jobs.len(),
                elapsed_ms = (BATCH_TIME
                    .saturating_sub(deadline.saturating_duration_since(Instant::now())))
                .as_millis() as u64,
                "pages committed in one transaction"
            );
            let mut left = Vec::new();
            for (i, job) in jobs.enumerate() {
                // `applied` answers the first pages in order; the deadline left the others.
                match applied.get(i) {
                    Some(a) => job.answer(Ok(*a)),
                    None => left.push(job),
                }
            }
            left
        }
        // One pass's pages, or an error about the database rather than a page: the first page
        // answers the error, and the rest (halted with it, or failing alike) the same way, without
        // trying each again.
        Err(e) if one_pass || e.about_the_database() => {
            let message = e.to_string();
            let mut first = Some(e);
            for job in jobs {
                let error = match first.take() {
                    Some(e) => e,
                    None if job.halt.load(Ordering::SeqCst) => Error::Halted,
                    None => Error::Failed(message.clone()),
                };
                job.answer(Err(error));
            }
            Vec::new()
        }
        Err(_) => {
            for job in jobs {
                if job.halt.load(Ordering::SeqCst) {
                    job.answer(Err(Error::Halted));
                    continue;
                }
                let result = destination
                    .apply_pages(std::slice::from_ref(&job.page), None)
                    .map(|a| a.into_iter().next().unwrap_or_default());
                job.answer(result);
            }
            Vec::new()
        }
    }
}
