//! The defaults of the settings that also have a programmatic default (`ClientOptions`,
//! `SyncOptions`), written once: `config::load` falls back to them for a key that is not set, and
//! the options' `Default` impls (the demo, the tests, a library user) use the same values.

use std::time::Duration;

/// `kustomer.connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `kustomer.request_timeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// `kustomer.max_retries` (attempts are one more).
pub const MAX_RETRIES: u32 = 4;
/// `kustomer.retry_backoff`.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between two attempts (not a setting).
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// `sync.page_size`.
pub const PAGE_SIZE: u32 = 500;
/// `sync.overlap`.
pub const OVERLAP: Duration = Duration::from_secs(300);
/// `sync.concurrency`.
pub const CONCURRENCY: u32 = 4;
/// `webhooks.path`.
pub const WEBHOOK_PATH: &str = "/webhooks/kustomer";
/// `webhooks.inbox` when the mirror is on PostgreSQL (relative to the working directory).
pub const WEBHOOK_INBOX: &str = "kustomer-mirror-webhooks.db";
/// `webhooks.max_body`: 8 MiB, far above any resource Kustomer sends.
pub const WEBHOOK_MAX_BODY: u32 = 8 << 20;
/// `webhooks.read_timeout`: Kustomer expects an answer within a few seconds anyway.
pub const WEBHOOK_READ_TIMEOUT: Duration = Duration::from_secs(10);
