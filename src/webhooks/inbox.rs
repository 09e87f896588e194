//! The durable inbox: a SQLite file of its own (`webhooks.inbox`, mode 0640, WAL, `synchronous =
//! FULL`) that holds each verified event from before the receiver answers 2xx until the drain has
//! committed it to the mirror. A thread owns the connection; events that arrive together are
//! committed together (one fsync), so the receiver answers fast whatever the mirror's writer is
//! doing, and a crash or a stop after the 2xx loses nothing: the next start drains what is left.
//! A separate file, not a table of the mirror, because SQLite's one writer is often busy with a
//! sync's transaction for up to a second.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

/// At most this many events are committed in one transaction.
const GROUP: usize = 512;

/// Why the inbox failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InboxError {
    /// The file could not be opened, written or read.
    #[error(
        "webhook inbox {path}: {what}: {reason}; check that the directory exists and is writable by the service (webhooks.inbox)"
    )]
    File {
        /// The inbox file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// SQLite's message.
        reason: String,
    },
    /// The inbox thread stopped.
    #[error("the webhook inbox thread stopped; restart kustomer-mirror")]
    Gone,
}

/// One event waiting to be applied.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its place in the inbox (arrival order).
    pub seq: i64,
    /// The event name, as the receiver read it.
    pub event: String,
    /// When the receiver accepted it (normal RFC 3339 text, milliseconds).
    pub received_at: String,
    /// The body exactly as received.
    pub body: Vec<u8>,
}

enum Job {
    Put {
        event: String,
        body: bytes::Bytes,
        received_at: String,
        reply: oneshot::Sender<Result<(), InboxError>>,
    },
    Take {
        limit: usize,
        reply: oneshot::Sender<Result<Vec<Entry>, InboxError>>,
    },
    Done {
        seqs: Vec<i64>,
        reply: oneshot::Sender<Result<(), InboxError>>,
    },
}

/// Handle to the inbox thread; cloning shares it.
#[derive(Debug, Clone)]
pub struct Inbox {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("inbox job")
    }
}

impl Inbox {
    /// Opens (creating) the inbox at `path` and starts its thread.
    pub fn open(path: &Path) -> Result<Inbox, InboxError> {
        let err = |what: &'static str| {
            let path = path.to_path_buf();
            move |e: rusqlite::Error| InboxError::File {
                path,
                what,
                reason: e.to_string(),
            }
        };
        crate::sqlite::mode::create(path).map_err(|e| InboxError::File {
            path: path.to_path_buf(),
            what: "creating the file",
            reason: e.to_string(),
        })?;
        let conn = Connection::open(path).map_err(err("opening"))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS inbox (
                 seq         INTEGER PRIMARY KEY AUTOINCREMENT,
                 event       TEXT NOT NULL,
                 received_at TEXT NOT NULL,
                 body        BLOB NOT NULL
             );",
        )
        .map_err(err("preparing"))?;
        let (jobs, queue) = mpsc::channel();
        let owned = path.to_path_buf();
        std::thread::Builder::new()
            .name("kustomer-mirror-inbox".to_string())
            .spawn(move || work(conn, &owned, &queue))
            .map_err(|e| InboxError::File {
                path: path.to_path_buf(),
                what: "starting its thread",
                reason: e.to_string(),
            })?;
        Ok(Inbox { jobs })
    }

    /// Stores one event durably (committed and synced) and answers once it is.
    pub async fn put(
        &self,
        event: String,
        body: bytes::Bytes,
        received_at: String,
    ) -> Result<(), InboxError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Put {
                event,
                body,
                received_at,
                reply,
            })
            .map_err(|_| InboxError::Gone)?;
        answer.await.map_err(|_| InboxError::Gone)?
    }

    /// The oldest `limit` events waiting.
    pub async fn take(&self, limit: usize) -> Result<Vec<Entry>, InboxError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Take { limit, reply })
            .map_err(|_| InboxError::Gone)?;
        answer.await.map_err(|_| InboxError::Gone)?
    }

    /// Forgets events the mirror has committed.
    pub async fn done(&self, seqs: Vec<i64>) -> Result<(), InboxError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Done { seqs, reply })
            .map_err(|_| InboxError::Gone)?;
        answer.await.map_err(|_| InboxError::Gone)?
    }
}

/// The inbox thread: puts that wait together commit together; takes and dones in order.
fn work(mut conn: Connection, path: &Path, queue: &mpsc::Receiver<Job>) {
    let fail = |what: &'static str, e: rusqlite::Error| InboxError::File {
        path: path.to_path_buf(),
        what,
        reason: e.to_string(),
    };
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            Job::Put {
                event,
                body,
                received_at,
                reply,
            } => {
                let mut group = vec![(event, body, received_at, reply)];
                while group.len() < GROUP {
                    match queue.try_recv() {
                        Ok(Job::Put {
                            event,
                            body,
                            received_at,
                            reply,
                        }) => group.push((event, body, received_at, reply)),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let result = put_all(&mut conn, &group).map_err(|e| fail("storing events", e));
                for (_, _, _, reply) in group {
                    let _ = reply.send(result.clone());
                }
            }
            Job::Take { limit, reply } => {
                let _ = reply.send(take(&conn, limit).map_err(|e| fail("reading events", e)));
            }
            Job::Done { seqs, reply } => {
                let _ = reply.send(done(&mut conn, &seqs).map_err(|e| fail("removing events", e)));
            }
        }
    }
}

type Put = (
    String,
    bytes::Bytes,
    String,
    oneshot::Sender<Result<(), InboxError>>,
);

fn put_all(conn: &mut Connection, group: &[Put]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert =
            tx.prepare_cached("INSERT INTO inbox (event, received_at, body) VALUES (?1, ?2, ?3)")?;
        for (event, body, received_at, _) in group {
            insert.execute(params![event, received_at, body.as_ref()])?;
        }
    }
    tx.commit()
}

fn take(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<Entry>> {
    let mut select = conn
        .prepare_cached("SELECT seq, event, received_at, body FROM inbox ORDER BY seq LIMIT ?1")?;
    let rows = select.query_map([limit as i64], |r| {
        Ok(Entry {
            seq: r.get(0)?,
            event: r.get(1)?,
            received_at: r.get(2)?,
            body: r.get(3)?,
        })
    })?;
    rows.collect()
}

fn done(conn: &mut Connection, seqs: &[i64]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut delete = tx.prepare_cached("DELETE FROM inbox WHERE seq = ?1")?;
        for seq in seqs {
            delete.execute([seq])?;
        }
    }
    tx.commit()
}
