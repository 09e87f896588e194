//! The fake's outbound webhooks, as Kustomer's: the management endpoints under
//! `/v1/outbound-webhooks` (create with Kustomer's validation, list, get with the token, delete, the
//! twelve subscribable events) and the registry of hooks they change.
//!
//! Kustomer's rules kept here: `name` 1..=255 characters, `url` https, 1..=12 `events` out of
//! `kustomer.{customer,conversation,message,user,team,tag}.{create,update}`, `headers` a list of
//! `{name, value}`, at most 5 webhooks per org; the create answer and a by-id read carry the `token`
//! (the HMAC key of `X-Kustomer-Webhook-Signature`).
//!
//! The registry also decides which data changes become which deliveries ([`Registry::emit`]): one
//! event per change of a customer, conversation, message, user, team or tag, to every enabled hook
//! subscribed to its name, with the sender's drop/duplicate/reorder switches drawn from a seeded
//! RNG so runs repeat; `sender` makes the envelopes and the POSTs.

use std::collections::BTreeSet;

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::body::{error, json_response};
use super::data::iso;
use super::rng::Rng;
use super::sender::{self, Change, Delivery, Outbox, SharedLedger, WebhookEvent};

/// The twelve events an outbound webhook can subscribe to, as `GET /v1/outbound-webhooks/events`
/// lists them.
pub const EVENTS: [&str; 12] = [
    "kustomer.customer.create",
    "kustomer.customer.update",
    "kustomer.conversation.create",
    "kustomer.conversation.update",
    "kustomer.message.create",
    "kustomer.message.update",
    "kustomer.user.create",
    "kustomer.user.update",
    "kustomer.team.create",
    "kustomer.team.update",
    "kustomer.tag.create",
    "kustomer.tag.update",
];

/// Most webhooks an org may register (Kustomer's help center: 5 user-created webhooks).
pub const MAX_WEBHOOKS: usize = 5;

/// One registered outbound webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// 24-hex id.
    pub id: String,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    /// Extra `(name, value)` headers sent with every delivery.
    pub headers: Vec<(String, String)>,
    pub enabled: bool,
    /// 64 hex digits (32 random bytes): the HMAC key.
    pub token: String,
    pub created_at: String,
}

impl Webhook {
    /// The JSON:API resource object, token included.
    pub fn resource(&self) -> Value {
        let headers: Vec<Value> = self
            .headers
            .iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect();
        json!({
            "type": "outbound-webhook",
            "id": self.id,
            "attributes": {
                "name": self.name,
                "url": self.url,
                "events": self.events,
                "headers": headers,
                "enabled": self.enabled,
                "token": self.token,
                "createdAt": self.created_at,
                "updatedAt": self.created_at,
            },
            "links": {"self": format!("/v1/outbound-webhooks/{}", self.id)},
        })
    }
}

/// The registered webhooks, the generator of their ids, tokens and switch draws, and the way to
/// the sender.
#[derive(Debug)]
pub struct Registry {
    pub hooks: Vec<Webhook>,
    rng: Rng,
    outbox: Outbox,
    /// Switches, counters and event log, shared with the delivery tasks.
    pub ledger: SharedLedger,
}

impl Registry {
    /// An empty registry whose ids, tokens and draws follow from `seed`, sending through `outbox`.
    pub fn new(seed: u64, outbox: Outbox, ledger: SharedLedger) -> Registry {
        Registry {
            hooks: Vec::new(),
            rng: Rng::new(seed ^ 0x0E7B_0C45),
            outbox,
            ledger,
        }
    }

    /// Queues the events of `changes` (oldest first) to the hooks subscribed to them; returns at
    /// once (the sender delivers in tasks of its own).
    pub fn emit(&mut self, changes: Vec<Change>) {
        if self.hooks.is_empty() {
            return;
        }
        let now = iso(chrono::Utc::now().timestamp_millis());
        for change in changes {
            let Some(kind) = sender::event_type(&change.key) else {
                continue;
            };
            let verb = if change.before.is_none() {
                "create"
            } else {
                "update"
            };
            let name = format!("kustomer.{kind}.{verb}");
            let targets: Vec<Webhook> = self
                .hooks
                .iter()
                .filter(|h| h.enabled && h.events.contains(&name))
                .cloned()
                .collect();
            if targets.is_empty() {
                continue;
            }
            let event_id = self.new_id();
            let body = Bytes::from(sender::envelope(&event_id, &name, &change, &now));
            for hook in targets {
                self.queue(&hook, &event_id, &name, &change.id, &body);
            }
        }
    }

    /// Draws the switches for one event to one hook and queues its deliveries (none if dropped).
    fn queue(&mut self, hook: &Webhook, event_id: &str, name: &str, data_id: &str, body: &Bytes) {
        let mut ledger = sender::ledger(&self.ledger);
        let switches = ledger.switches.clone();
        let entry = |status: &str, duplicate: bool| WebhookEvent {
            id: event_id.to_string(),
            name: name.to_string(),
            data_id: data_id.to_string(),
            hook: hook.id.clone(),
            status: status.to_string(),
            attempts: 0,
            last_status: None,
            duplicate,
        };
        if self.rng.chance(switches.drop) {
            ledger.stats.dropped += 1;
            ledger.log.push(entry("dropped", false));
            return;
        }
        let copies = if self.rng.chance(switches.duplicate) {
            2
        } else {
            1
        };
        let reorder = self.rng.chance(switches.reorder);
        let signature = crate::webhooks::signature::sign(&hook.token, body);
        for copy in 0..copies {
            ledger.stats.sent += 1;
            if copy > 0 {
                ledger.stats.duplicated += 1;
            }
            let index = ledger.log.len();
            ledger.log.push(entry("pending", copy > 0));
            let delivery = Delivery {
                entry: index,
                hook: hook.id.clone(),
                url: hook.url.clone(),
                headers: hook.headers.clone(),
                name: name.to_string(),
                body: body.clone(),
                signature: signature.clone(),
                reorder: reorder && copy == 0,
            };
            if self.outbox.send(delivery).is_err() {
                // The dispatcher is gone (the runtime is shutting down): nothing will be sent.
                ledger.stats.failed += 1;
                if let Some(e) = ledger.log.get_mut(index) {
                    e.status = "failed".into();
                }
            }
        }
    }

    /// A fresh random 24-hex id made now.
    pub fn new_id(&mut self) -> String {
        self.rng.object_id(chrono::Utc::now().timestamp())
    }

    /// Registers a webhook from a create request's body, or says which rule it breaks.
    pub fn create(&mut self, body: &[u8]) -> Result<Webhook, String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
        let name = match v.get("name").and_then(Value::as_str) {
            Some(n) if (1..=255).contains(&n.chars().count()) => n.to_string(),
            Some(_) => return Err("name must be 1 to 255 characters".into()),
            None => return Err("name is required".into()),
        };
        let url = match v.get("url").and_then(Value::as_str) {
            Some(u) => check_url(u)?,
            None => return Err("url is required".into()),
        };
        let events = check_events(v.get("events"))?;
        let headers = check_headers(v.get("headers"))?;
        if self.hooks.len() >= MAX_WEBHOOKS {
            return Err(format!(
                "an org may have at most {MAX_WEBHOOKS} outbound webhooks"
            ));
        }
        let token = (0..4)
            .map(|_| format!("{:016x}", self.rng.next_u64()))
            .collect::<String>();
        let hook = Webhook {
            id: self.new_id(),
            name,
            url,
            events,
            headers,
            enabled: true,
            token,
            created_at: iso(chrono::Utc::now().timestamp_millis()),
        };
        self.hooks.push(hook.clone());
        Ok(hook)
    }
}

/// The url, if it is https — or http to a loopback host: the fake accepts that (Kustomer does not)
/// so that tests and `demo` can receive deliveries without a TLS certificate.
fn check_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("url is not a valid URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(text.to_string()),
        "http" if loopback => Ok(text.to_string()),
        _ => Err("url must use https".into()),
    }
}

/// 1..=12 known event names.
fn check_events(v: Option<&Value>) -> Result<Vec<String>, String> {
    let Some(list) = v.and_then(Value::as_array) else {
        return Err("events is required: a list of event names".into());
    };
    if list.is_empty() {
        return Err("events must name at least one event".into());
    }
    if list.len() > EVENTS.len() {
        return Err(format!(
            "events may name at most {} events, not {}",
            EVENTS.len(),
            list.len()
        ));
    }
    list.iter()
        .map(|e| match e.as_str() {
            Some(name) if EVENTS.contains(&name) => Ok(name.to_string()),
            _ => Err(format!("{e} is not a subscribable event")),
        })
        .collect()
}

/// `headers`: absent, null, or a list of `{name, value}` strings.
fn check_headers(v: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err("headers must be a list of {name, value}".into()),
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    for h in list {
        match (h["name"].as_str(), h["value"].as_str()) {
            (Some(n), Some(val))
                if axum::http::HeaderName::from_bytes(n.as_bytes()).is_ok()
                    && axum::http::HeaderValue::from_str(val).is_ok() =>
            {
                if seen.insert(n.to_ascii_lowercase()) {
                    out.push((n.to_string(), val.to_string()));
                }
            }
            _ => return Err(format!("header {h} must be {{name, value}} strings")),
        }
    }
    Ok(out)
}

fn bad_request(why: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", why)
}

fn not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("outbound webhook {id} was not found"),
    )
}

/// Answers `/v1/outbound-webhooks/…` (`rest`: the segments after `outbound-webhooks`), once auth,
/// limits and faults have passed.
pub fn serve(registry: &mut Registry, method: &Method, rest: &[&str], body: &Bytes) -> Response {
    match (method.clone(), rest) {
        (Method::POST, []) => match registry.create(body) {
            Ok(hook) => json_response(
                StatusCode::CREATED,
                json!({"data": hook.resource()}).to_string(),
            ),
            Err(why) => bad_request(&why),
        },
        (Method::GET, []) => {
            let data: Vec<Value> = registry.hooks.iter().map(Webhook::resource).collect();
            json_response(StatusCode::OK, json!({"data": data}).to_string())
        }
        (Method::GET, ["events"]) => {
            json_response(StatusCode::OK, json!({"events": EVENTS}).to_string())
        }
        (Method::GET, [id]) => match registry.hooks.iter().find(|h| h.id == *id) {
            Some(hook) => {
                json_response(StatusCode::OK, json!({"data": hook.resource()}).to_string())
            }
            None => not_found(id),
        },
        (Method::DELETE, [id]) => {
            let before = registry.hooks.len();
            registry.hooks.retain(|h| h.id != *id);
            if registry.hooks.len() < before {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            } else {
                not_found(id)
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "No such endpoint"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_http_is_accepted_other_http_is_not() {
        assert!(check_url("http://127.0.0.1:9/x").is_ok());
        assert!(check_url("http://[::1]:9/x").is_ok());
        assert!(check_url("http://localhost/x").is_ok());
        assert!(check_url("https://hooks.example.com/x").is_ok());
        assert!(check_url("http://hooks.example.com/x").is_err());
        assert!(check_url("ftp://127.0.0.1/x").is_err());
    }
}
