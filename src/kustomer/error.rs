//! Errors from talking to Kustomer, each with a message that says what happened and what to do.
//!
//! Kustomer answers errors in two shapes (`{"errors":[{code,message,meta}]}` and JSON:API
//! `{"errors":[{status,code,title,detail,source}]}`); Membrane's proxy adds `{type,key,message}`. Some
//! error responses have no body at all. [`error_message`] reads any of them.

use serde_json::Value;

/// What went wrong with one request. Never contains the API key: request headers are not part of any
/// variant, and reqwest's own errors name only the URL.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: the key is wrong, expired or lacks a role (Kustomer uses 401 for all three).
    #[error(
        "API key rejected ({status}) for {path}: {message}; check kustomer.api_key — an expired key must be recreated in Kustomer, and the key needs read roles for this entity"
    )]
    Unauthorized {
        /// HTTP status.
        status: u16,
        /// Request path.
        path: String,
        /// Kustomer's message.
        message: String,
    },
    /// 403: the key is valid but lacks a role.
    #[error(
        "API key lacks permission (403) for {path}: {message}; give the key's machine user the read role for this entity (and the search role for incremental syncs), or drop the entity from sync.entities"
    )]
    Forbidden {
        /// Request path.
        path: String,
        /// Kustomer's message.
        message: String,
    },
    /// 404.
    #[error("not found (404): {path}")]
    NotFound {
        /// Request path.
        path: String,
    },
    /// 429: the org's (or the search) budget is spent until the window resets.
    #[error("rate limited (429) on {path}; the budget resets in {reset_secs:?} s")]
    RateLimited {
        /// Request path.
        path: String,
        /// Seconds until the window resets, from `Retry-After` or `x-ratelimit-reset`, if given.
        reset_secs: Option<u64>,
    },
    /// Another 4xx: the request was wrong for this org (e.g. an unsupported search context).
    #[error("Kustomer refused the request ({status}) to {path}: {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Request path.
        path: String,
        /// Kustomer's message.
        message: String,
    },
    /// 5xx.
    #[error("Kustomer server error ({status}) on {path}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Request path.
        path: String,
        /// Kustomer's message, or "empty body".
        message: String,
    },
    /// No answer: DNS, refused or dropped connection, TLS, timeout.
    #[error("cannot reach Kustomer at {url}: {reason}; check kustomer.base_url and the network")]
    Transport {
        /// The URL tried (no credentials are ever part of it).
        url: String,
        /// What failed, e.g. "connection refused", "timed out".
        reason: String,
        /// True when the request timed out.
        timeout: bool,
    },
    /// Membrane's own error (not Kustomer's, which Membrane passes through unchanged): a defunct
    /// connection, a rejected token, Membrane unavailable.
    #[error("{message}")]
    Membrane {
        /// HTTP status from Membrane.
        status: u16,
        /// What happened and what to do.
        message: String,
    },
    /// A `links` value or a redirect that leads off the configured origin: nothing was sent there.
    #[error(
        "refused to follow {what} to {target}: it is not {origin}, where requests are configured to go, so no request (and no credential) was sent there; if Kustomer moved the org, change kustomer.base_url"
    )]
    ForeignOrigin {
        /// What pointed there, e.g. "links.next of /v1/users?page=1" or "a 302 redirect from /v1/…".
        what: String,
        /// The foreign origin (scheme, host and port; never a path or a query).
        target: String,
        /// The configured origin (and the Membrane proxy prefix, when there is one).
        origin: String,
    },
    /// A 2xx answer whose body is not the JSON:API document expected (truncated, malformed).
    #[error("malformed response from {path}: {reason}")]
    Malformed {
        /// Request path.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl ApiError {
    /// True for failures worth retrying with the same request: 5xx, 429, transport faults, malformed
    /// bodies (a truncated transfer). Permanent ones (401, 403, 404, other 4xx) are not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Server { .. }
                | ApiError::Membrane { status: 500.., .. }
                | ApiError::RateLimited { .. }
                | ApiError::Transport { .. }
                | ApiError::Malformed { .. }
        )
    }

    /// The HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Unauthorized { status, .. }
            | ApiError::Rejected { status, .. }
            | ApiError::Server { status, .. }
            | ApiError::Membrane { status, .. } => Some(*status),
            ApiError::Forbidden { .. } => Some(403),
            ApiError::NotFound { .. } => Some(404),
            ApiError::RateLimited { .. } => Some(429),
            ApiError::Transport { .. }
            | ApiError::Malformed { .. }
            | ApiError::ForeignOrigin { .. } => None,
        }
    }
}

/// Reads a human message out of an error body of any known shape; `"empty body"` when there is none,
/// and a short excerpt when the body is not JSON.
pub fn error_message(body: &[u8]) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        return "empty body".to_string();
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body);
        return excerpt(&text, 200);
    };
    match value.get("errors").and_then(Value::as_array) {
        // Several errors (one per invalid field, say) are all worth reading: up to five of them.
        Some(errors) if !errors.is_empty() => {
            let mut texts: Vec<String> = errors.iter().take(5).map(one_error).collect();
            texts.dedup();
            if errors.len() > 5 {
                texts.push(format!("and {} more", errors.len() - 5));
            }
            texts.join("; ")
        }
        _ => one_error(&value),
    }
}

/// One error object (`{title, detail, message, code}` in any combination) as a line.
fn one_error(first: &Value) -> String {
    let pick = |key: &str| {
        first
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let text = match (pick("title"), pick("detail"), pick("message")) {
        (Some(title), Some(detail), _) if title != detail => format!("{title}: {detail}"),
        (Some(title), _, _) => title.to_string(),
        (None, Some(detail), _) => detail.to_string(),
        (None, None, Some(message)) => message.to_string(),
        (None, None, None) => pick("code")
            .or_else(|| pick("type"))
            .map(str::to_string)
            .unwrap_or_else(|| excerpt(&first.to_string(), 200)),
    };
    let text = match first
        .pointer("/source/pointer")
        .or_else(|| first.pointer("/source/parameter"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(at) if !text.contains(at) => format!("{text} (at {at})"),
        _ => text,
    };
    match pick("code").or_else(|| pick("type")) {
        Some(code) if !text.contains(code) => format!("{text} [{code}]"),
        _ => text,
    }
}

/// The first `max` characters of `text`, with an ellipsis when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::error_message;

    #[test]
    fn reads_both_kustomer_error_shapes_and_empty_bodies() {
        assert_eq!(
            error_message(br#"{"errors":[{"code":"bad_request","message":"Invalid request body or parameters.","meta":{}}]}"#),
            "Invalid request body or parameters. [bad_request]"
        );
        assert_eq!(
            error_message(
                br#"{"errors":[{"status":"401","code":"unauthorized","title":"Expired token"}]}"#
            ),
            "Expired token [unauthorized]"
        );
        assert_eq!(
            error_message(br#"{"type":"connection_is_defunct","message":"Connection is defunct"}"#),
            "Connection is defunct [connection_is_defunct]"
        );
        assert_eq!(
            error_message(
                br#"{"errors":[{"status":"400","title":"Invalid url","detail":"url must be https","source":{"pointer":"/data/attributes/url"}},{"status":"400","title":"Invalid name"}]}"#
            ),
            "Invalid url: url must be https (at /data/attributes/url); Invalid name"
        );
        assert_eq!(error_message(b""), "empty body");
        assert_eq!(
            error_message(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }
}
