//! Exit codes, part of the command-line interface: 0 ok, 1 a sync failed (or another process is
//! writing the database, or a `webhooks` request failed), 2 bad usage or bad configuration, 130 a second stop signal. Every command
//! returns one of these; nothing else in the crate decides them.

/// Exit code for a run that completed.
pub const EXIT_OK: u8 = 0;
/// Exit code for a sync that failed (or could not start: another writer, an unreachable database),
/// and for any other command whose work failed (a `webhooks` request Kustomer refused).
pub const EXIT_SYNC_FAILED: u8 = 1;
/// Exit code for bad usage or bad configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `run` when a second SIGTERM/SIGINT ends it at once (128 + SIGINT, what shells
/// expect of an interrupted program).
pub const EXIT_SECOND_SIGNAL: u8 = 130;
