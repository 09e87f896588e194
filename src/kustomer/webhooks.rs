//! Kustomer's outbound-webhook management API (`/v1/outbound-webhooks`): the twelve events the
//! mirror subscribes to, creating, listing, reading and deleting hooks over a [`Client`] (any
//! transport), and the errors of these calls in words that name the role to grant. A hook's token
//! (the HMAC key of its events) is held as a [`Secret`] from the moment it is decoded: nothing here
//! prints it.

use serde_json::{Value, json};

use super::client::Client;
use super::error::ApiError;
use crate::config::Secret;

/// The collection's path.
pub const PATH: &str = "/v1/outbound-webhooks";

/// The events the mirror subscribes to: every one outbound webhooks offer (`kustomer-api.md` §9),
/// as the entity table names them.
pub fn events() -> Vec<String> {
    crate::entity::webhook_event_names()
}

/// The roles a key needs to manage outbound webhooks (any one of them).
pub const ROLES: &str = "org.permission.outbound_webhook.* (create, read, delete) or the legacy org.admin.outbound_webhooks";

/// Pages of the list followed at most (Kustomer allows five user-created hooks per org).
const MAX_LIST_PAGES: usize = 20;

/// One outbound webhook as Kustomer serves it.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Kustomer's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Where Kustomer posts the events.
    pub url: String,
    /// The events it is subscribed to.
    pub events: Vec<String>,
    /// Whether Kustomer delivers to it (`None` when the answer does not say).
    pub enabled: Option<bool>,
    /// The HMAC key of its events, when the answer carries it.
    pub token: Option<Secret>,
    /// Every other attribute as served, with the token and header values taken out: what
    /// `webhooks list --json` may print.
    pub attributes: serde_json::Map<String, Value>,
}

/// Why a webhook call failed: each message says what to do and never holds a token.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// 401/403: the key is invalid, expired or lacks the webhook role.
    #[error("Kustomer refused to {action} ({status} on {path}: {message}): {advice}")]
    Denied {
        /// What was attempted ("create the webhook", "list webhooks", …).
        action: &'static str,
        /// 401 or 403.
        status: u16,
        /// The request path.
        path: String,
        /// Kustomer's message.
        message: String,
        /// What to do, for the transport in use: which role, on which credentials.
        advice: String,
    },
    /// 404 on a hook by id.
    #[error("no webhook {id}; `kustomer-mirror webhooks list` shows the ids")]
    NoWebhook {
        /// The id asked for.
        id: String,
    },
    /// 400 (or another 4xx): Kustomer's own words about what it did not accept.
    #[error("Kustomer refused to {action} ({status}): {detail}")]
    Refused {
        /// What was attempted.
        action: &'static str,
        /// The HTTP status.
        status: u16,
        /// Kustomer's error detail (never secret: it describes our request).
        detail: String,
    },
    /// A 2xx answer without the fields a webhook has.
    #[error("unexpected answer from {path} when trying to {action}: {reason}")]
    Unexpected {
        /// What was attempted.
        action: &'static str,
        /// The request path.
        path: String,
        /// What was missing or wrong (never the body itself).
        reason: String,
    },
    /// Any other failure of the call (transport, 5xx, Membrane's own errors, …).
    #[error("cannot {action}: {source}")]
    Api {
        /// What was attempted.
        action: &'static str,
        /// The client's error.
        #[source]
        source: ApiError,
    },
}

impl WebhookError {
    /// Whether the request may have been carried out even though it failed (no answer, or a 5xx
    /// after Kustomer took it): the caller should say so, and how to check.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            WebhookError::Api {
                source: ApiError::Transport { .. }
                    | ApiError::Server { .. }
                    | ApiError::Malformed { .. },
                ..
            } | WebhookError::Unexpected { .. }
        )
    }
}

/// The outbound-webhook calls of one client.
#[derive(Debug, Clone, Copy)]
pub struct Webhooks<'a> {
    client: &'a Client,
    /// The Membrane connection the requests go through, if any (for the role message).
    membrane: Option<&'a str>,
}

impl<'a> Webhooks<'a> {
    /// The calls over `client`; `membrane` names the Membrane connection requests go through,
    /// when they do (a refusal then concerns the Kustomer credentials behind it).
    pub fn new(client: &'a Client, membrane: Option<&'a str>) -> Webhooks<'a> {
        Webhooks { client, membrane }
    }

    /// The body of `POST /v1/outbound-webhooks` for a hook named `name` posting every event to
    /// `url`, with no extra headers.
    pub fn create_body(name: &str, url: &str) -> Value {
        json!({"name": name, "url": url, "events": events(), "headers": []})
    }

    /// Creates a hook. Its token is the one in the create answer or, when that has none, the one
    /// `GET /v1/outbound-webhooks/{id}` serves. Kustomer's docs say both carry it; which one does
    /// on the live API is uncertain (`kustomer-api.md` §9), hence the second look.
    pub async fn create(&self, name: &str, url: &str) -> Result<Webhook, WebhookError> {
        const ACTION: &str = "create the webhook";
        let answer = self
            .client
            .post_json(PATH, &Webhooks::create_body(name, url))
            .await
            .map_err(|e| self.error(ACTION, e, None))?
            .ok_or_else(|| WebhookError::Unexpected {
                action: ACTION,
                path: PATH.to_string(),
                reason: "the answer is empty".to_string(),
            })?;
        let created = decode(ACTION, PATH, answer.get("data"))?;
        if created.token.is_some() {
            return Ok(created);
        }
        // Uncertain: the docs show the token in both answers; if the create answer lacks it, the
        // hook's own document is the other documented place.
        let fetched = self.get(&created.id).await?;
        Ok(Webhook {
            token: fetched.token,
            ..created
        })
    }

    /// Reads one hook (with its token, when Kustomer serves it).
    pub async fn get(&self, id: &str) -> Result<Webhook, WebhookError> {
        const ACTION: &str = "read the webhook";
        let path = item_path(id);
        let answer = self
            .client
            .get_json(&path)
            .await
            .map_err(|e| self.error(ACTION, e, Some(id)))?;
        decode(ACTION, &path, answer.get("data"))
    }

    /// Lists every hook, following `links.next`.
    pub async fn list(&self) -> Result<Vec<Webhook>, WebhookError> {
        const ACTION: &str = "list webhooks";
        let mut hooks = Vec::new();
        let mut link = Some(PATH.to_string());
        let mut pages = 0;
        while let Some(current) = link.take() {
            pages += 1;
            let answer = self
                .client
                .get_json(&current)
                .await
                .map_err(|e| self.error(ACTION, e, None))?;
            let items = match answer.get("data") {
                Some(Value::Array(items)) => items.as_slice(),
                Some(Value::Null) | None => &[],
                Some(_) => {
                    return Err(WebhookError::Unexpected {
                        action: ACTION,
                        path: PATH.to_string(),
                        reason: "\"data\" is not a list".to_string(),
                    });
                }
            };
            for item in items {
                hooks.push(decode(ACTION, PATH, Some(item))?);
            }
            link = answer
                .pointer("/links/next")
                .and_then(Value::as_str)
                .filter(|next| !next.is_empty() && !items.is_empty())
                .map(str::to_string);
            if pages >= MAX_LIST_PAGES {
                break;
            }
        }
        Ok(hooks)
    }

    /// Deletes a hook.
    pub async fn delete(&self, id: &str) -> Result<(), WebhookError> {
        self.client
            .delete(&item_path(id))
            .await
            .map_err(|e| self.error("delete the webhook", e, Some(id)))
    }

    /// The error of a failed call: 404 on a hook by id is "no such hook", 401/403 name the role,
    /// 400 shows Kustomer's detail.
    fn error(&self, action: &'static str, err: ApiError, id: Option<&str>) -> WebhookError {
        let advice = || match self.membrane {
            Some(connection) => format!(
                "the Kustomer credentials behind Membrane connection {connection} are invalid or lack the role {ROLES}; reconnect Kustomer in Membrane with credentials that have one of them"
            ),
            None => format!(
                "the API key (kustomer.api_key) is invalid or expired, or lacks the role {ROLES}; a key's roles are fixed when it is created, so make a key with one of them"
            ),
        };
        if let (ApiError::NotFound { .. }, Some(id)) = (&err, id) {
            return WebhookError::NoWebhook { id: id.to_string() };
        }
        match err {
            ApiError::Unauthorized {
                status,
                path,
                message,
            } => WebhookError::Denied {
                action,
                status,
                path: strip_query(&path),
                message,
                advice: advice(),
            },
            ApiError::Forbidden { path, message } => WebhookError::Denied {
                action,
                status: 403,
                path: strip_query(&path),
                message,
                advice: advice(),
            },
            ApiError::Rejected {
                status, message, ..
            } => WebhookError::Refused {
                action,
                status,
                detail: message,
            },
            source => WebhookError::Api { action, source },
        }
    }
}

/// `/v1/outbound-webhooks/{id}`, the id percent-encoded so that it stays one path segment.
fn item_path(id: &str) -> String {
    let segment = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC);
    format!("{PATH}/{segment}")
}

/// A path without its query.
fn strip_query(path: &str) -> String {
    path.split(['?', '#']).next().unwrap_or(path).to_string()
}

/// Decodes a JSON:API `outbound-webhook` resource object.
fn decode(action: &'static str, path: &str, data: Option<&Value>) -> Result<Webhook, WebhookError> {
    let unexpected = |reason: &str| WebhookError::Unexpected {
        action,
        path: strip_query(path),
        reason: reason.to_string(),
    };
    let data = data
        .and_then(Value::as_object)
        .ok_or_else(|| unexpected("\"data\" is not a resource object"))?;
    let id = match data.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(unexpected("the webhook has no id")),
    };
    let mut attributes = data
        .get("attributes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let token = match attributes.remove("token") {
        Some(Value::String(t)) if !t.trim().is_empty() => Some(Secret::new(t.trim())),
        _ => None,
    };
    // Header values are often credentials of the receiver's own: only their names stay.
    if let Some(Value::Array(headers)) = attributes.get_mut("headers") {
        for header in headers.iter_mut() {
            if let Some(value) = header.as_object_mut().and_then(|h| h.get_mut("value")) {
                *value = Value::String(crate::config::REDACTED.to_string());
            }
        }
    }
    let text = |key: &str| {
        attributes
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(Webhook {
        name: text("name"),
        url: text("url"),
        events: attributes
            .get("events")
            .and_then(Value::as_array)
            .map(|events| {
                events
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        enabled: attributes.get("enabled").and_then(Value::as_bool),
        id,
        token,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_takes_the_token_out_of_the_attributes_and_hides_header_values() {
        let data = json!({"type": "outbound-webhook", "id": "wh1", "attributes": {
            "name": "n", "url": "https://x/webhooks/kustomer", "events": events(), "enabled": true,
            "token": "tok-123", "headers": [{"name": "X-Auth", "value": "s3cret"}]}});
        let hook = decode("read", PATH, Some(&data)).expect("a webhook");
        assert_eq!(hook.id, "wh1");
        assert_eq!(hook.events.len(), 12);
        assert_eq!(hook.enabled, Some(true));
        assert_eq!(hook.token.as_ref().map(Secret::expose), Some("tok-123"));
        let printed = Value::Object(hook.attributes).to_string();
        assert!(
            !printed.contains("tok-123") && !printed.contains("s3cret"),
            "{printed}"
        );
        assert!(printed.contains("X-Auth"));
    }

    #[test]
    fn ids_stay_one_path_segment() {
        assert_eq!(item_path("abc123"), "/v1/outbound-webhooks/abc123");
        assert_eq!(item_path("../x?y"), "/v1/outbound-webhooks/%2E%2E%2Fx%3Fy");
    }

    #[test]
    fn the_create_body_subscribes_to_all_twelve_events() {
        let body = Webhooks::create_body("kustomer-mirror", "https://h/webhooks/kustomer");
        assert_eq!(body["events"].as_array().map(Vec::len), Some(12));
        assert_eq!(body["headers"], json!([]));
    }
}
