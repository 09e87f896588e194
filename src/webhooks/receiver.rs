//! The HTTP side: one POST route on the receiver's own listener. In order: a declared length over
//! `webhooks.max_body` is refused (413) before any byte of the body is read, the body is read up
//! to that limit within `webhooks.read_timeout` (else 413 or 408), the signature is checked over
//! the raw bytes (401 with no detail), an event the mirror does not apply is answered 200 and
//! counted as ignored (so Kustomer never disables the hook for an event added later), and every
//! other event is stored in the durable inbox before the 200 (503 when it cannot be: Kustomer
//! retries). Nothing is parsed before the signature holds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;

use super::envelope;
use super::inbox::Inbox;
use super::metrics::{Metrics, Refused};
use crate::config::{Secret, WebhookSettings};

/// The signature header.
pub const SIGNATURE: &str = "x-kustomer-webhook-signature";
/// The event-name header.
pub const EVENT: &str = "x-kustomer-webhook-event";

/// What the handler needs.
#[derive(Debug)]
pub struct Shared {
    pub tokens: Tokens,
    pub inbox: Inbox,
    pub metrics: Arc<Metrics>,
    pub max_body: u64,
    pub read_timeout: Duration,
    /// Wakes the drain when an event is stored.
    pub stored: Arc<tokio::sync::Notify>,
}

/// The route at `path` (everything else is 404).
pub fn router(path: &str, shared: Arc<Shared>) -> Router {
    Router::new().route(path, post(receive)).with_state(shared)
}

/// The webhook tokens, read again from `webhooks.token_file` when it changes (a rotation by
/// `webhooks register` needs no restart).
#[derive(Debug)]
pub struct Tokens {
    settings: WebhookSettings,
    cache: Mutex<(Option<SystemTime>, Vec<Secret>)>,
}

impl Tokens {
    /// Reads the tokens once; an error (no token anywhere, an unreadable file) stops the start.
    pub fn load(settings: &WebhookSettings) -> Result<Tokens, crate::config::ConfigError> {
        let tokens = settings.tokens()?;
        Ok(Tokens {
            settings: settings.clone(),
            cache: Mutex::new((modified(settings), tokens)),
        })
    }

    /// The tokens now.
    fn current(&self) -> Vec<Secret> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = modified(&self.settings);
        if now != cache.0 {
            match self.settings.tokens() {
                Ok(tokens) => *cache = (now, tokens),
                // Keep the tokens that worked; the next change of the file is tried again.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the webhook tokens again; keeping the previous ones")
                }
            }
        }
        cache.1.clone()
    }
}

fn modified(settings: &WebhookSettings) -> Option<SystemTime> {
    settings
        .token_file
        .as_ref()
        .and_then(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
}

async fn receive(State(s): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.max_body) {
        return refuse(&s, Refused::TooLarge, StatusCode::PAYLOAD_TOO_LARGE);
    }
    let body = match tokio::time::timeout(s.read_timeout, read_limited(body, s.max_body)).await {
        Err(_) => return refuse(&s, Refused::Timeout, StatusCode::REQUEST_TIMEOUT),
        Ok(Err(Unread::TooLarge)) => {
            return refuse(&s, Refused::TooLarge, StatusCode::PAYLOAD_TOO_LARGE);
        }
        Ok(Err(Unread::Broken)) => return refuse(&s, Refused::Body, StatusCode::BAD_REQUEST),
        Ok(Ok(body)) => body,
    };
    let signature = parts.headers.get(SIGNATURE).map(|v| v.as_bytes());
    if !super::signature::verify(&s.tokens.current(), &body, signature) {
        return refuse(&s, Refused::Signature, StatusCode::UNAUTHORIZED);
    }
    let Some(event) = event_name(&parts.headers, &body) else {
        s.metrics
            .ignored
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return (StatusCode::OK, "ignored: no event name\n").into_response();
    };
    if crate::entity::by_webhook_event(&event).is_none() {
        s.metrics
            .ignored
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(event = %event, "ignored a webhook event the mirror does not apply");
        return (StatusCode::OK, "ignored\n").into_response();
    }
    let received_at = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    match s.inbox.put(event, body, received_at).await {
        Ok(()) => {
            s.metrics
                .received
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            s.stored.notify_one();
            (StatusCode::OK, "ok\n").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store a webhook event; answering 503 so that Kustomer retries it");
            refuse(&s, Refused::Inbox, StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

fn refuse(s: &Shared, why: Refused, status: StatusCode) -> Response {
    s.metrics.refused(why);
    status.into_response()
}

/// The event name: the header, else the body's `name` (read only after the signature held).
fn event_name(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    match headers.get(EVENT).and_then(|v| v.to_str().ok()) {
        Some(name) if !name.trim().is_empty() => Some(name.trim().to_string()),
        _ => envelope::read(body).ok().and_then(|e| e.name),
    }
}

enum Unread {
    TooLarge,
    Broken,
}

/// The body, read chunk by chunk and given up as soon as it passes `max` bytes.
async fn read_limited(body: Body, max: u64) -> Result<bytes::Bytes, Unread> {
    let mut stream = body.into_data_stream();
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Unread::Broken)?;
        if (out.len() + chunk.len()) as u64 > max {
            return Err(Unread::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}
