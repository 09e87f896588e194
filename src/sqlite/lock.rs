//! One writer per mirror: `sync`, `run` and `demo` hold an exclusive OS lock (`flock`) on
//! `<database>.lock` while they write, with their pid in the file, so a second writer does not page
//! the same entities twice. The kernel drops the lock when the process ends, even by SIGKILL, so a
//! lock is never stale. Readers (BI tools, `status`) never look at it.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the writer lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another kustomer-mirror (pid {pid}) is writing {db}; stop it or wait for it (`sync --wait` waits)"
    )]
    Held {
        /// The holder's pid as it wrote it (`unknown` if it had not yet).
        pid: String,
        /// The database.
        db: PathBuf,
    },
    /// The lock file could not be opened or locked.
    #[error(
        "cannot lock {path}: {source}; check that the database's directory exists and that this user may write to it (database.path)"
    )]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
    path: PathBuf,
}

/// The lock file of database `db`: `mirror.db` → `mirror.db.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl WriterLock {
    /// Takes the lock of `db` now, or fails naming the process that holds it.
    pub fn try_acquire(db: &Path) -> Result<WriterLock, LockError> {
        let (mut file, path) = open(db)?;
        match file.try_lock() {
            Ok(()) => WriterLock::held(file, path),
            Err(TryLockError::WouldBlock) => Err(LockError::Held {
                pid: holder(&mut file),
                db: db.to_path_buf(),
            }),
            Err(TryLockError::Error(source)) => Err(LockError::Io { path, source }),
        }
    }

    /// Takes the lock of `db`, waiting for the holder to finish; `waiting` is called once with the
    /// holder's pid when there is one to wait for.
    pub fn acquire_waiting(db: &Path, waiting: impl FnOnce(&str)) -> Result<WriterLock, LockError> {
        let (mut file, path) = open(db)?;
        match file.try_lock() {
            Ok(()) => return WriterLock::held(file, path),
            Err(TryLockError::WouldBlock) => waiting(&holder(&mut file)),
            Err(TryLockError::Error(source)) => return Err(LockError::Io { path, source }),
        }
        match file.lock() {
            Ok(()) => WriterLock::held(file, path),
            Err(source) => Err(LockError::Io { path, source }),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes our pid into the file we now hold.
    fn held(mut file: File, path: PathBuf) -> Result<WriterLock, LockError> {
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(WriterLock { _file: file, path })
    }
}

/// Whether a process holds the writer lock of `db` now, read from `/proc/locks` without taking the
/// lock (even a shared lock, held for a moment, would make a writer starting at that moment fail).
/// `None` when it cannot be told: no lock file, or no `/proc/locks`.
pub fn held(db: &Path) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(lock_path(db)).ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let dev = meta.dev();
    // glibc's dev_t encoding (gnu_dev_major / gnu_dev_minor); /proc/locks prints them in hex.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let file = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    // `1: FLOCK  ADVISORY  WRITE 11928 fe:00:10010936 0 EOF`; waiters show `->` and hold nothing.
    Some(locks.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&file.as_str())
    }))
}

fn open(db: &Path) -> Result<(File, PathBuf), LockError> {
    let path = lock_path(db);
    // Not truncated on open: the holder's pid must stay readable for the one who is refused.
    let file = super::mode::open_or_create(&path).map_err(|source| LockError::Io {
        path: path.clone(),
        source,
    })?;
    Ok((file, path))
}

/// The pid the holder wrote, or `unknown`.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut text);
    let pid = text.trim();
    if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) {
        pid.to_string()
    } else {
        "unknown".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mirror.db");
        let first = WriterLock::try_acquire(&db).unwrap();
        assert_eq!(first.path(), dir.path().join("mirror.db.lock"));
        match WriterLock::try_acquire(&db) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        assert!(WriterLock::try_acquire(&db).is_ok());
    }
}
