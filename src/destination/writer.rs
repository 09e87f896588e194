//! The one writer: a dedicated thread that owns the [`Destination`] and runs closures sent to it, so
//! that async sync code never holds a blocking database connection across `.await`.

use std::sync::mpsc;

use super::{Destination, Error};

type Job = Box<dyn FnOnce(&mut dyn Destination) + Send>;

/// Handle to the writer thread. Cloning shares the same thread; it stops when the last handle drops.
#[derive(Debug, Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Moves `destination` onto a new thread that executes jobs in the order they arrive.
    pub fn spawn(destination: impl Destination + 'static) -> Result<Writer, Error> {
        Writer::spawn_boxed(Box::new(destination))
    }

    /// [`Writer::spawn`] for a destination chosen at run time ([`super::open`]).
    pub fn spawn_boxed(destination: Box<dyn Destination>) -> Result<Writer, Error> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("kustomer-mirror-writer".to_string())
            .spawn(move || {
                let mut destination = destination;
                while let Ok(job) = queue.recv() {
                    job(destination.as_mut());
                }
            })
            .map_err(Error::Thread)?;
        Ok(Writer { jobs })
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
        let job: Job = Box::new(move |destination| {
            // The receiver is gone only when the caller's future was dropped (cancelled): the work
            // is done either way, and its transaction committed or rolled back on its own.
            let _ = reply.send(f(destination));
        });
        let queued = self.jobs.send(job).map_err(|_| Error::WriterGone);
        async move {
            queued?;
            answer.await.map_err(|_| Error::WriterGone)
        }
    }
}
