//! Errors of a sync pass: always naming the entity (and the page, when one was being read), wrapping
//! the API or database error that says what to do.

use crate::destination::Error as StoreError;
use crate::kustomer::ApiError;

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Kustomer answered with an error (after retries of transient ones).
    #[error("{entity}{}: {source}", page.map(|p| format!(", page {p}")).unwrap_or_default())]
    Api {
        /// `sync_state` key.
        entity: String,
        /// Page number of the query, when one was being read.
        page: Option<u32>,
        /// The API error.
        source: ApiError,
    },
    /// Writing to the mirror failed; the page's transaction was rolled back.
    #[error("{entity}: {source}")]
    Store {
        /// `sync_state` key.
        entity: String,
        /// The database error.
        source: StoreError,
    },
    /// The process is shutting down; the pass stopped between pages (everything fetched so far is
    /// committed, the pages still in flight were abandoned and are fetched again next time).
    #[error("{entity}: stopped by shutdown; the next run continues from the saved cursor")]
    Interrupted {
        /// `sync_state` key.
        entity: String,
    },
    /// The data cannot be read incrementally as served (e.g. a tie group larger than search allows).
    #[error("{entity}: {message}")]
    Data {
        /// `sync_state` key.
        entity: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A bug: the pass panicked. It ended as failed, the entity is free for its next run, and the
    /// rest of the daemon carries on.
    #[error(
        "{entity}: the pass stopped on an internal error ({message}); nothing of it past the last committed page was kept. Please report this with the log"
    )]
    Panicked {
        /// `sync_state` key.
        entity: String,
        /// The panic's message.
        message: String,
    },
}

/// The message of a caught panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

impl SyncError {
    pub(crate) fn api(entity: &str, page: Option<u32>, source: ApiError) -> SyncError {
        SyncError::Api {
            entity: entity.to_string(),
            page,
            source,
        }
    }

    pub(crate) fn store(entity: &str, source: StoreError) -> SyncError {
        SyncError::Store {
            entity: entity.to_string(),
            source,
        }
    }

    pub(crate) fn data(entity: &str, message: impl Into<String>) -> SyncError {
        SyncError::Data {
            entity: entity.to_string(),
            message: message.into(),
        }
    }
}
