//! The one writer: a dedicated thread that owns the [`Store`] and runs closures sent to it, so that
//! async sync code never holds a blocking SQLite connection across `.await`.

use std::sync::mpsc;

use super::{Store, StoreError};

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// Handle to the writer thread. Cloning shares the same thread; it stops when the last handle drops.
#[derive(Debug, Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Moves `store` onto a new thread that executes jobs in the order they arrive.
    pub fn spawn(store: Store) -> Result<Writer, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("kustomer-mirror-writer".to_string())
            .spawn(move || {
                let mut store = store;
                while let Ok(job) = queue.recv() {
                    job(&mut store);
                }
            })
            .map_err(StoreError::Thread)?;
        Ok(Writer { jobs })
    }

    /// Runs `f` on the writer thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> R + Send + 'static,
    {
        self.submit(f).await
    }

    /// Queues `f` now (behind the jobs already queued) and returns a future of its result, so the
    /// caller can do other work, such as fetching the next page, while the writer runs it. Dropping
    /// the future does not cancel the job.
    pub fn submit<R, F>(
        &self,
        f: F,
    ) -> impl std::future::Future<Output = Result<R, StoreError>> + Send + 'static
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> R + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |store| {
            // The receiver is gone only when the caller's future was dropped (cancelled): the work
            // is done either way, and its transaction committed or rolled back on its own.
            let _ = reply.send(f(store));
        });
        let queued = self.jobs.send(job).map_err(|_| StoreError::WriterGone);
        async move {
            queued?;
            answer.await.map_err(|_| StoreError::WriterGone)
        }
    }
}
