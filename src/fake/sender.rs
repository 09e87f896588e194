//! The fake's webhook sender: turns the fake's data changes into Kustomer's signed event envelopes
//! and POSTs them to the registered webhooks, with Kustomer's retry schedule and switches to
//! misbehave (drop, duplicate, reorder, delay), counting what happened.
//!
//! Owns: the envelope's text (`data` is the stored record text spliced in byte for byte, `changes`
//! an attributes diff on updates and absent on creates), the signature (lowercase hex of
//! HMAC-SHA256 over the raw body keyed with the hook's token), the delivery tasks, and the
//! switches, counters and event log behind the control API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;

use super::data::ORG;

/// Kustomer's retry schedule after a failed attempt, in minutes (scaled by `retry_scale`).
const RETRY_MINUTES: [u64; 7] = [1, 1, 2, 5, 10, 15, 30];
/// How long one attempt may take before it counts as failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a reordered delivery waits for a newer one to overtake it.
const REORDER_HOLD: Duration = Duration::from_secs(1);

/// How the sender misbehaves. Probabilities are per event and per webhook.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WebhookSwitches {
    /// Probability an event is delivered twice.
    pub duplicate: f64,
    /// Probability an event is held back until the next one to the same webhook has been tried
    /// (or about a second), so an older version arrives after a newer one.
    pub reorder: f64,
    /// Extra delay before each delivery, in milliseconds.
    pub delay_ms: u64,
    /// Probability an event is silently never sent.
    pub drop: f64,
    /// Factor on Kustomer's retry schedule (1, 1, 2, 5, 10, 15, 30 minutes); tests use e.g. 0.001.
    pub retry_scale: f64,
}

impl Default for WebhookSwitches {
    fn default() -> Self {
        WebhookSwitches {
            duplicate: 0.0,
            reorder: 0.0,
            delay_ms: 0,
            drop: 0.0,
            retry_scale: 1.0,
        }
    }
}

/// A change to some switches (`POST /_fake/webhooks`): keys left out keep their value.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchesPatch {
    pub duplicate: Option<f64>,
    pub reorder: Option<f64>,
    pub delay_ms: Option<u64>,
    pub drop: Option<f64>,
    pub retry_scale: Option<f64>,
}

impl SwitchesPatch {
    /// `current` with this patch applied, or what is out of range.
    pub fn apply(&self, current: &WebhookSwitches) -> Result<WebhookSwitches, String> {
        let next = WebhookSwitches {
            duplicate: self.duplicate.unwrap_or(current.duplicate),
            reorder: self.reorder.unwrap_or(current.reorder),
            delay_ms: self.delay_ms.unwrap_or(current.delay_ms),
            drop: self.drop.unwrap_or(current.drop),
            retry_scale: self.retry_scale.unwrap_or(current.retry_scale),
        };
        for (key, p) in [
            ("duplicate", next.duplicate),
            ("reorder", next.reorder),
            ("drop", next.drop),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{key} must be a probability in 0..1, not {p}"));
            }
        }
        if !next.retry_scale.is_finite() || next.retry_scale < 0.0 {
            return Err(format!(
                "retry_scale must be a finite number >= 0, not {}",
                next.retry_scale
            ));
        }
        Ok(next)
    }
}

/// Delivery counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WebhookStats {
    /// Deliveries started (one per event and subscribed webhook, duplicates included, drops not).
    pub sent: u64,
    /// HTTP attempts made.
    pub attempts: u64,
    /// Deliveries answered 2xx.
    pub delivered: u64,
    /// Attempts after the first one of a delivery.
    pub retried: u64,
    /// Deliveries given up after the last retry.
    pub failed: u64,
    /// Events never sent (the `drop` switch).
    pub dropped: u64,
    /// Extra deliveries (the `duplicate` switch).
    pub duplicated: u64,
    /// Deliveries neither answered 2xx nor given up yet.
    pub pending: u64,
}

/// One delivery (or drop) of an event to a webhook, for tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WebhookEvent {
    /// The event's id (a duplicate repeats it).
    pub id: String,
    /// `kustomer.<type>.<create|update>`.
    pub name: String,
    /// The changed record's id.
    #[serde(rename = "dataId")]
    pub data_id: String,
    /// The webhook's id.
    pub hook: String,
    /// `pending`, `delivered`, `failed` or `dropped`.
    pub status: String,
    /// HTTP attempts so far.
    pub attempts: u32,
    /// The last answer's status (`None`: none yet, or no answer).
    pub last_status: Option<u16>,
    /// Whether this is the extra copy of a duplicated event.
    pub duplicate: bool,
}

/// A change to one record, as the data journal hands it over.
#[derive(Debug, Clone)]
pub struct Change {
    /// Table key (`customers`, … or `kobjects:<klass>`).
    pub key: String,
    pub id: String,
    /// The stored text before (`None`: the record was created).
    pub before: Option<Arc<str>>,
    /// The stored text after, as `GET /v1/<resource>/{id}` serves it.
    pub after: Arc<str>,
}

/// The webhook event type of a table, for the six entities Kustomer sends events about.
pub fn event_type(key: &str) -> Option<&'static str> {
    Some(match key {
        "customers" => "customer",
        "conversations" => "conversation",
        "messages" => "message",
        "users" => "user",
        "teams" => "team",
        "tags" => "tag",
        _ => return None,
    })
}

/// `changes` of an update envelope: `{"attributes": {field: {op, before, after}}}` for every
/// attribute whose value differs (missing counts as null).
fn changes(before: &str, after: &str) -> Value {
    let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap_or(Value::Null);
    let (b, a) = (parse(before), parse(after));
    let empty = serde_json::Map::new();
    let ba = b["attributes"].as_object().unwrap_or(&empty);
    let aa = a["attributes"].as_object().unwrap_or(&empty);
    let mut diff = serde_json::Map::new();
    for key in ba.keys().chain(aa.keys()) {
        let (old, new) = (
            ba.get(key).unwrap_or(&Value::Null),
            aa.get(key).unwrap_or(&Value::Null),
        );
        if old != new && !diff.contains_key(key) {
            diff.insert(
                key.clone(),
                serde_json::json!({"op": "replace", "before": old, "after": new}),
            );
        }
    }
    serde_json::json!({"attributes": diff})
}

/// A JSON string literal.
fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// The compact envelope of one event; `data` is the stored text verbatim.
pub fn envelope(event_id: &str, name: &str, change: &Change, now: &str) -> String {
    let mut body = format!(
        "{{\"id\":{},\"name\":{},\"org\":{org},\"orgName\":\"fake\",\"partition\":{org},\"createdAt\":{},\"persist\":true,\"dataId\":{},\"data\":{}",
        quoted(event_id),
        quoted(name),
        quoted(now),
        quoted(&change.id),
        change.after,
        org = quoted(ORG),
    );
    if let Some(before) = &change.before {
        body.push_str(",\"changes\":");
        body.push_str(&changes(before, &change.after).to_string());
    }
    body.push('}');
    body
}

/// What the sender tasks share with the control API: switches, counters and the event log.
#[derive(Debug, Default)]
pub struct Ledger {
    pub switches: WebhookSwitches,
    pub stats: WebhookStats,
    pub log: Vec<WebhookEvent>,
}

impl Ledger {
    /// The counters, `pending` computed.
    pub fn stats(&self) -> WebhookStats {
        let mut s = self.stats.clone();
        s.pending = s.sent.saturating_sub(s.delivered + s.failed);
        s
    }
}

pub type SharedLedger = Arc<Mutex<Ledger>>;

pub fn ledger(l: &SharedLedger) -> MutexGuard<'_, Ledger> {
    // A panic while holding the lock leaves plain counters behind; keep using them.
    l.lock().unwrap_or_else(|p| p.into_inner())
}

/// One POST to make (with its retries).
#[derive(Debug)]
pub struct Delivery {
    /// Index of its entry in the ledger's log.
    pub entry: usize,
    pub hook: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub name: String,
    pub body: bytes::Bytes,
    pub signature: String,
    /// Held back until the next delivery to the same hook has been tried.
    pub reorder: bool,
}

/// Hands deliveries to the dispatcher task (sending never blocks the caller).
pub type Outbox = UnboundedSender<Delivery>;

/// Builds the HTTP client of the sender (rustls with ring, as the crate's client).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    // reqwest is built with `rustls-no-provider`: a crypto provider must be installed before the
    // first Client. Installing fails only when one is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("kustomer-fake-webhooks")
        .build()
}

/// The dispatcher: starts a task per delivery, holding reordered ones back until the next delivery
/// to the same hook (or [`REORDER_HOLD`]). Ends when every [`Outbox`] is gone.
pub async fn run(
    mut rx: UnboundedReceiver<Delivery>,
    ledger: SharedLedger,
    client: reqwest::Client,
) {
    let mut held: HashMap<String, (Delivery, Instant)> = HashMap::new();
    loop {
        let due = held.values().map(|(_, at)| *at).min();
        tokio::select! {
            next = rx.recv() => {
                let Some(d) = next else { break };
                if d.reorder && !held.contains_key(&d.hook) {
                    held.insert(d.hook.clone(), (d, Instant::now() + REORDER_HOLD));
                    continue;
                }
                match held.remove(&d.hook) {
                    Some((older, _)) => {
                        // The older one starts once this newer one's first attempt is over.
                        let (tried, wait) = tokio::sync::oneshot::channel();
                        tokio::spawn(deliver(d, Some(tried), ledger.clone(), client.clone()));
                        let (ledger, client) = (ledger.clone(), client.clone());
                        tokio::spawn(async move {
                            let _ = wait.await;
                            deliver(older, None, ledger, client).await;
                        });
                    }
                    None => {
                        tokio::spawn(deliver(d, None, ledger.clone(), client.clone()));
                    }
                }
            }
            _ = sleep_until(due), if due.is_some() => {
                let now = Instant::now();
                let expired: Vec<String> = held
                    .iter()
                    .filter(|(_, (_, at))| *at <= now)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in expired {
                    if let Some((d, _)) = held.remove(&key) {
                        tokio::spawn(deliver(d, None, ledger.clone(), client.clone()));
                    }
                }
            }
        }
    }
    for (_, (d, _)) in held {
        tokio::spawn(deliver(d, None, ledger.clone(), client.clone()));
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One attempt: the HTTP status, or `None` for a connection error or timeout.
async fn attempt(client: &reqwest::Client, d: &Delivery) -> Option<u16> {
    let mut req = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("x-kustomer-webhook-event", &d.name)
        .header("x-kustomer-webhook-signature", &d.signature);
    for (name, value) in &d.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    match req.body(d.body.clone()).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            // Read the answer so the connection can be reused; its content does not matter.
            let _ = r.bytes().await;
            Some(status)
        }
        Err(_) => None,
    }
}

/// Delivers `d` with Kustomer's retries; once its first attempt is over, says so on `tried` (a
/// delivery held back waits for that, so that it arrives after this newer one).
async fn deliver(
    d: Delivery,
    mut tried: Option<tokio::sync::oneshot::Sender<()>>,
    ledger: SharedLedger,
    client: reqwest::Client,
) {
    let delay = self::ledger(&ledger).switches.delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    for tries in 0..=RETRY_MINUTES.len() {
        if tries > 0 {
            let scale = self::ledger(&ledger).switches.retry_scale;
            let minutes = RETRY_MINUTES[tries - 1] as f64;
            tokio::time::sleep(Duration::from_secs_f64(minutes * 60.0 * scale)).await;
        }
        let status = attempt(&client, &d).await;
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        {
            let mut l = self::ledger(&ledger);
            l.stats.attempts += 1;
            if tries > 0 {
                l.stats.retried += 1;
            }
            if ok {
                l.stats.delivered += 1;
            } else if tries == RETRY_MINUTES.len() {
                l.stats.failed += 1;
            }
            if let Some(e) = l.log.get_mut(d.entry) {
                e.attempts += 1;
                e.last_status = status;
                if ok {
                    e.status = "delivered".into();
                } else if tries == RETRY_MINUTES.len() {
                    e.status = "failed".into();
                }
            }
        }
        if let Some(tried) = tried.take() {
            let _ = tried.send(());
        }
        if ok {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_rfc_4231_test_case_2() {
        assert_eq!(
            crate::webhooks::signature::sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn create_envelopes_have_no_changes_and_updates_diff_attributes() {
        let create = Change {
            key: "tags".into(),
            id: "t1".into(),
            before: None,
            after: Arc::from(r#"{"type":"tag","id":"t1","attributes":{"name":"a"}}"#),
        };
        let body = envelope(
            "e1",
            "kustomer.tag.create",
            &create,
            "2026-01-01T00:00:00.000Z",
        );
        assert_eq!(
            body,
            r#"{"id":"e1","name":"kustomer.tag.create","org":"5a79d3e2c8b66e0001ba953e","orgName":"fake","partition":"5a79d3e2c8b66e0001ba953e","createdAt":"2026-01-01T00:00:00.000Z","persist":true,"dataId":"t1","data":{"type":"tag","id":"t1","attributes":{"name":"a"}}}"#
        );
        let update = Change {
            before: Some(Arc::from(
                r#"{"type":"tag","id":"t1","attributes":{"name":"a","n":1}}"#,
            )),
            after: Arc::from(r#"{"type":"tag","id":"t1","attributes":{"name":"b","n":1}}"#),
            ..create
        };
        let body = envelope(
            "e2",
            "kustomer.tag.update",
            &update,
            "2026-01-01T00:00:00.000Z",
        );
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(
            v["changes"],
            serde_json::json!({"attributes": {"name": {"op": "replace", "before": "a", "after": "b"}}})
        );
    }
}
