//! Checkpoints off the writer's thread. In WAL mode every committed page of the database is written
//! twice: appended to the `-wal` file at commit, and copied into the database file by a checkpoint.
//! SQLite runs that copy (and its fsyncs) inside the commit that crosses `wal_autocheckpoint`, on
//! the writer's thread, where a first sync spent about a quarter of its time. A second connection
//! on a thread of its own runs passive checkpoints while the writer goes on writing, so the copy
//! uses the other core. The writer's own autocheckpoint stays: it finds most frames already copied,
//! copies the rest and lets the next transaction start the `-wal` file over (a passive checkpoint
//! alone never catches up with a writer that keeps committing).
//!
//! Passive checkpoints take no lock a writer or reader waits for, and a crash in the middle of
//! one is harmless (SQLite copies from the WAL again on the next checkpoint).

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// At least this long between two background checkpoints: each one syncs both files, so a
/// checkpoint after every commit would trade the copy for fsyncs.
const PAUSE: Duration = Duration::from_millis(200);

/// A thread that checkpoints the database while the writer commits. Dropping it stops the thread
/// and closes its connection.
#[derive(Debug)]
pub struct Checkpointer {
    wake: Option<mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the WAL database at `path`; `None` (the writer's own checkpoints do
    /// all the work, as before) when a second connection or the thread cannot be had.
    pub fn start(path: &Path) -> Option<Checkpointer> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = match Connection::open_with_flags(path, flags) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "no background checkpoints: cannot open a second connection");
                return None;
            }
        };
        // The last connection to close would otherwise delete the -wal and -shm files that group
        // readers need (see `persist_wal`).
        super::persist_wal(&conn);
        // Should this connection close last, it cuts the kept -wal file back as the writer would.
        if let Err(e) = conn.execute_batch(&format!(
            "PRAGMA journal_size_limit = {}",
            super::JOURNAL_SIZE_LIMIT
        )) {
            tracing::debug!(error = %e, "no background checkpoints: cannot set the journal size limit");
            return None;
        }
        let (wake, woken) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("kustomer-mirror-checkpoint".to_string())
            .spawn(move || run(&conn, &woken))
            .map_err(|e| tracing::debug!(error = %e, "no background checkpoints: no thread"))
            .ok()?;
        Some(Checkpointer {
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Says the writer committed: a checkpoint runs soon unless one ran in the last [`PAUSE`].
    pub fn poke(&self) {
        if let Some(wake) = &self.wake {
            // Full means a checkpoint is already due: nothing to add.
            let _ = wake.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Closing the channel ends the thread's wait at once; a checkpoint under way finishes.
        self.wake = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, woken: &mpsc::Receiver<()>) {
    while woken.recv().is_ok() {
        loop {
            let started = Instant::now();
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                // The writer's own checkpoints still run; nothing is lost but the head start.
                tracing::debug!(error = %e, "a background checkpoint failed");
            }
            // The pause, cut short when the writer closes; a commit during it makes the next
            // checkpoint due as soon as it ends.
            let resume = started + PAUSE;
            let mut due = false;
            loop {
                let left = resume.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match woken.recv_timeout(left) {
                    Ok(()) => due = true,
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            if !due {
                break;
            }
        }
    }
}
