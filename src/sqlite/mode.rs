//! The mode of the files the SQLite mirror creates: 0640 (owner writes, the service's group reads, as
//! the BI tool on the same host does; nobody else), set by the code itself, whatever the caller's
//! umask. SQLite creates `-wal` and `-shm` with the mode of the database file, so setting the database
//! file's mode when it is created covers them; the writer lock's `.lock` file is created here too.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of every file the mirror creates.
pub const MODE: u32 = 0o640;

/// Creates `path` with [`MODE`] if it does not exist (a file already there keeps its mode: the
/// operator may have chosen another). Paths SQLite reads as URIs or memory are left alone.
pub fn create(path: &Path) -> io::Result<()> {
    let text = path.to_string_lossy();
    if text.starts_with("file:") || text == ":memory:" || text.is_empty() {
        return Ok(());
    }
    match options().open(path) {
        Ok(file) => fix(&file),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens `path` for reading and writing, creating it with [`MODE`] when it is new (the lock file).
pub fn open_or_create(path: &Path) -> io::Result<File> {
    match options().open(path) {
        Ok(file) => {
            fix(&file)?;
            Ok(file)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            OpenOptions::new().read(true).write(true).open(path)
        }
        Err(e) => Err(e),
    }
}

fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create_new(true).mode(MODE);
    o
}

/// The umask may have taken bits off the mode `open` asked for; put [`MODE`] back exactly.
fn fix(file: &File) -> io::Result<()> {
    file.set_permissions(std::fs::Permissions::from_mode(MODE))
}
