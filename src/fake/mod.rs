//! The built-in fake Kustomer API, faithful to what Kustomer's REST API is known to do: bearer auth
//! with Kustomer's 401 body, JSON:API lists with relative links, `POST /v1/customers/search` with
//! `*_updated_at` ranges, sorting, `includeDeleted`, `idsOnly` and the 100-page cap, per-parent lists,
//! by-id reads, rate-limit headers and 429s, fault injection, deterministic data per seed, and a
//! control API (in-process [`FakeHandle`], or HTTP under `/_fake/`) for tests to change data, and
//! Kustomer's outbound webhooks: the management endpoints (`webhooks`) and a sender that POSTs a
//! signed event for every data change to the registered hooks, with switches to drop, duplicate,
//! reorder and delay deliveries (`sender`).
//!
//! Choices where Kustomer's behaviour is uncertain: GET lists include soft-deleted records flagged
//! `deleted: true` (as teams and tags carry `deleted`/`deletedAt`); search hides them unless
//! `includeDeleted`; `queryContext: "kobject"` without a klass is refused (use `kobject_<klass>`);
//! `idsOnly` answers `{type, id}` items; past the page cap or the 10,000-row window search answers 400.

mod body;
mod control;
mod coverage;
mod data;
mod http;
mod limits;
mod rng;
mod search;
mod sender;
mod state;
mod table;
mod webhooks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use state::State;

pub use crate::webhooks::signature::sign as webhook_signature;
pub use sender::{WebhookEvent, WebhookStats, WebhookSwitches};

/// Size of the fake organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    /// ≈ 200 customers, 400 conversations, 1,200 messages.
    Small,
    /// ≈ 5,000 customers, 10,000 conversations, 30,000 messages.
    Medium,
    /// ≈ 50,000 customers, 100,000 conversations, 300,000 messages.
    Large,
}

impl std::fmt::Display for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scale::Small => "small",
            Scale::Medium => "medium",
            Scale::Large => "large",
        })
    }
}

/// A budget: `requests` per fixed `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per window.
    pub requests: u32,
    /// Window length.
    pub window: Duration,
}

/// How `x-ratelimit-reset` is written (Kustomer's sources disagree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResetStyle {
    /// Seconds until the window resets.
    #[default]
    SecondsFromNow,
    /// Unix time of the reset.
    EpochSeconds,
}

/// Fault rates (0..1 per request) and the delay of slow answers.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct Faults {
    /// 500/502/503 with an `errors[]` body.
    pub server_error: f64,
    /// 500/503 with an empty body.
    pub empty_body_error: f64,
    /// 200 whose JSON body is cut off half-way.
    pub truncated_json: f64,
    /// Answer after `slow_delay`.
    pub slow: f64,
    /// Delay of slow answers.
    #[serde(with = "millis")]
    pub slow_delay: Duration,
    /// Close the connection without a complete answer.
    pub dropped_connection: f64,
    /// 401 "Expired token".
    pub expired_token: f64,
}

mod millis {
    use std::time::Duration;
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms: u64 = serde::Deserialize::deserialize(d)?;
        Ok(Duration::from_millis(ms))
    }
}

/// What the fake's Membrane proxy accepts.
#[derive(Debug, Clone)]
pub struct MembraneFake {
    /// The workspace key tokens must name.
    pub workspace_key: String,
    /// The secret tokens must be signed with (HS256).
    pub workspace_secret: String,
    /// The one Kustomer connection served under `/connections/{id}/proxy/`.
    pub connection_id: String,
}

/// Options of a fake server.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Data seed.
    pub seed: u64,
    /// Organisation size.
    pub scale: Scale,
    /// The bearer token accepted.
    pub api_key: String,
    /// Org budget (`None`: unlimited, headers still sent).
    pub rate_limit: Option<RateLimit>,
    /// Search budget.
    pub search_rate_limit: Option<RateLimit>,
    /// Form of `x-ratelimit-reset`.
    pub reset_style: ResetStyle,
    /// Send `Retry-After` with 429s.
    pub retry_after: bool,
    /// Search page cap (Kustomer: 100).
    pub max_pages: u32,
    /// Largest `page × pageSize` a search may reach.
    pub max_result_window: u32,
    /// Whether `queryContext: "company"` is accepted.
    pub company_search: bool,
    /// Delay before search sees a change.
    pub index_lag: Duration,
    /// Serve Membrane's proxy too.
    pub membrane: Option<MembraneFake>,
}

impl FakeOptions {
    /// Defaults: unlimited, Kustomer's caps, company search on, no index lag.
    pub fn new(seed: u64, scale: Scale, api_key: impl Into<String>) -> FakeOptions {
        FakeOptions {
            seed,
            scale,
            api_key: api_key.into(),
            rate_limit: None,
            search_rate_limit: None,
            reset_style: ResetStyle::SecondsFromNow,
            retry_after: false,
            max_pages: 100,
            max_result_window: 10_000,
            company_search: true,
            index_lag: Duration::ZERO,
            membrane: None,
        }
    }
}

/// Request counters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FakeStats {
    /// All `/v1` requests.
    pub requests: u64,
    /// Searches.
    pub search_requests: u64,
    /// GET lists.
    pub list_requests: u64,
    /// By-id reads.
    pub by_id_requests: u64,
    /// 429s served.
    pub served_429: u64,
    /// 5xx served.
    pub served_5xx: u64,
    /// Faults injected.
    pub faults_injected: u64,
    /// 401s served.
    pub unauthorized: u64,
    /// Requests through the Membrane proxy.
    pub membrane_requests: u64,
    /// Distinct valid Membrane tokens seen (renewals show as more than one).
    pub membrane_tokens_seen: u64,
    /// Requests per search context or list path.
    pub requests_by_context: BTreeMap<String, u64>,
}

type Hook = Box<dyn FnOnce(&FakeHandle) + Send>;

struct Control {
    options: FakeOptions,
    faults: Faults,
    rng: rng::Rng,
    org: limits::Window,
    search: limits::Window,
    stats: FakeStats,
    seen: u64,
    hooks: Vec<(u64, Hook)>,
    membrane_tokens: std::collections::BTreeSet<String>,
    membrane_revoked: bool,
    /// Entity → the status every GET of it answers (see [`FakeHandle::set_resource_answer`]).
    resource_answers: BTreeMap<String, u16>,
    /// Search contexts answered 400 (see [`FakeHandle::refuse_search_contexts`]).
    refused_contexts: std::collections::BTreeSet<String>,
}

struct Shared {
    state: Mutex<State>,
    control: Mutex<Control>,
    webhooks: Mutex<webhooks::Registry>,
}

/// Changes and inspects a running fake. Cheap to clone; all methods are synchronous.
#[derive(Clone)]
pub struct FakeHandle {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeHandle {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    fn control(&self) -> MutexGuard<'_, Control> {
        lock(&self.shared.control)
    }

    fn webhooks(&self) -> MutexGuard<'_, webhooks::Registry> {
        lock(&self.shared.webhooks)
    }

    /// Runs a mutation of the data and hands its journal of changes to the webhook sender, under the
    /// data lock so that events are queued in the order of the changes (the sender never takes it).
    fn mutate<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state();
        let out = f(&mut state);
        let changes = std::mem::take(&mut state.journal);
        if !changes.is_empty() {
            self.webhooks().emit(changes);
        }
        out
    }

    /// The entity names served.
    pub fn entities() -> &'static [&'static str] {
        &state::ENTITIES
    }

    /// Every record not hard-deleted (soft-deleted included), as lists serve them.
    pub fn records(&self, entity: &str) -> Vec<Value> {
        self.state().records(entity)
    }

    /// One record as served by id (soft-deleted included).
    pub fn record(&self, entity: &str, id: &str) -> Option<Value> {
        let state = self.state();
        let key = state.key_of(entity, id)?;
        state
            .tables
            .get(&key)?
            .records
            .get(id)
            .map(table::Rec::value)
    }

    /// Klass names.
    pub fn klass_names(&self) -> Vec<String> {
        self.state()
            .klasses
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Records not hard-deleted.
    pub fn count(&self, entity: &str) -> usize {
        self.state().count(entity)
    }

    /// Merges `patch` into the record's attributes and bumps `updatedAt`.
    pub fn update(&self, entity: &str, id: &str, patch: Value) -> Option<Value> {
        self.mutate(|s| {
            s.modify(
                entity,
                id,
                |v, _| {
                    if let (Some(attrs), Value::Object(patch)) =
                        (v["attributes"].as_object_mut(), patch)
                    {
                        for (k, val) in patch {
                            attrs.insert(k, val);
                        }
                    }
                },
                None,
            )
        })
    }

    /// Updates `n` live records, each at its own timestamp; returns their ids.
    pub fn update_many(&self, entity: &str, n: usize) -> Vec<String> {
        self.mutate(|s| s.update_many(entity, n))
    }

    /// Updates `n` live records to one shared `updatedAt`; returns the ids and the timestamp.
    pub fn touch_many_same_timestamp(&self, entity: &str, n: usize) -> (Vec<String>, String) {
        self.mutate(|s| s.touch_same(entity, n))
    }

    /// Serves `text` verbatim as record `id` of `key` (an entity or `kobjects:<klass>`), updated at
    /// `updated`, visible to search at once (a record of that id is replaced).
    pub fn put_raw(&self, key: &str, id: &str, text: &str, updated: &str) {
        self.mutate(|s| s.put_raw(key, id, text, updated));
    }

    /// The text served for record `id` of `entity`, exactly.
    pub fn raw(&self, entity: &str, id: &str) -> Option<String> {
        let state = self.state();
        let key = state.key_of(entity, id)?;
        Some(state.tables.get(&key)?.records.get(id)?.text.to_string())
    }

    /// Creates a record (kobjects: of `klass`); returns its id (empty for an unknown entity).
    pub fn insert(&self, entity: &str, klass: Option<&str>) -> String {
        self.mutate(|s| s.insert(entity, klass)).unwrap_or_default()
    }

    /// Soft-deletes a record.
    pub fn soft_delete(&self, entity: &str, id: &str) -> bool {
        self.mutate(|s| s.soft_delete(entity, id))
    }

    /// Hard-deletes a record.
    pub fn hard_delete(&self, entity: &str, id: &str) -> bool {
        self.state().hard_delete(entity, id)
    }

    /// Sets fault rates.
    pub fn set_faults(&self, faults: Faults) {
        self.control().faults = faults;
    }

    /// Sets the budgets (windows restart).
    pub fn set_rate_limit(&self, org: Option<RateLimit>, search: Option<RateLimit>) {
        let mut c = self.control();
        c.org = limits::Window::new(org);
        c.search = limits::Window::new(search);
    }

    /// Spends `n` requests of the current org window, as another integration would.
    pub fn spend_budget(&self, n: u32) {
        self.control().org.spend(n);
    }

    /// Counters since start or the last reset.
    pub fn stats(&self) -> FakeStats {
        self.control().stats.clone()
    }

    /// Zeroes the counters.
    pub fn reset_stats(&self) {
        self.control().stats = FakeStats::default();
    }

    /// Revokes the Membrane connection: the proxy answers `connection_is_defunct` from now on.
    pub fn revoke_membrane_connection(&self) {
        self.control().membrane_revoked = true;
    }

    /// Makes every GET of `entity` (list and by id; for `schedules` also `/v1/holidays/{id}`; for
    /// `work_sessions` also search with `queryContext: "work_session"`) answer `status` with
    /// Kustomer's error body; `None` serves it again.
    pub fn set_resource_answer(&self, entity: &str, status: Option<u16>) {
        let mut c = self.control();
        match status {
            Some(s) => {
                c.resource_answers.insert(entity.to_string(), s);
            }
            None => {
                c.resource_answers.remove(entity);
            }
        }
    }

    /// The statuses set by [`FakeHandle::set_resource_answer`], by entity.
    pub fn resource_answers(&self) -> BTreeMap<String, u16> {
        self.control().resource_answers.clone()
    }

    /// Makes search refuse these query contexts with a 400 saying the context is not supported
    /// (an empty list accepts them all again).
    pub fn refuse_search_contexts(&self, contexts: Vec<String>) {
        self.control().refused_contexts = contexts.into_iter().collect();
    }

    /// The search contexts refused now.
    pub fn refused_search_contexts(&self) -> Vec<String> {
        self.control().refused_contexts.iter().cloned().collect()
    }

    /// Sets the webhook sender's switches (drop, duplicate, reorder, delay, retry scale).
    pub fn set_webhook_switches(&self, switches: WebhookSwitches) {
        sender::ledger(&self.webhooks().ledger).switches = switches;
    }

    /// The webhook sender's switches.
    pub fn webhook_switches(&self) -> WebhookSwitches {
        sender::ledger(&self.webhooks().ledger).switches.clone()
    }

    /// The webhook sender's counters.
    pub fn webhook_stats(&self) -> WebhookStats {
        sender::ledger(&self.webhooks().ledger).stats()
    }

    /// Every delivery (or drop) of an event to a webhook so far, oldest first.
    pub fn webhook_events(&self) -> Vec<WebhookEvent> {
        sender::ledger(&self.webhooks().ledger).log.clone()
    }

    /// Waits until no delivery is pending (each answered 2xx or given up); false after `timeout`.
    pub async fn webhooks_settled(&self, timeout: std::time::Duration) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            if self.webhook_stats().pending == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Runs `f` once, just before serving the `after`-th request from now (without locks held).
    pub fn on_request(&self, after: u64, f: Box<dyn FnOnce(&FakeHandle) + Send>) {
        let mut c = self.control();
        let at = c.seen + after.max(1);
        c.hooks.push((at, f));
    }
}

/// A running fake server.
pub struct FakeServer {
    addr: SocketAddr,
    handle: FakeHandle,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    /// Generates the data and serves it on `listener` until [`FakeServer::shutdown`].
    pub async fn start(
        listener: tokio::net::TcpListener,
        options: FakeOptions,
    ) -> std::io::Result<FakeServer> {
        let addr = listener.local_addr()?;
        let (seed, scale, lag) = (options.seed, options.scale, options.index_lag);
        let state = tokio::task::spawn_blocking(move || State::generate(seed, scale, lag))
            .await
            .map_err(std::io::Error::other)?;
        let client = sender::client().map_err(std::io::Error::other)?;
        let (outbox, inbox) = tokio::sync::mpsc::unbounded_channel();
        let ledger = Arc::new(Mutex::new(sender::Ledger::default()));
        tokio::spawn(sender::run(inbox, ledger.clone(), client));
        let registry = webhooks::Registry::new(options.seed, outbox, ledger);
        let control = Control {
            faults: Faults::default(),
            rng: rng::Rng::new(options.seed ^ 0xFA17),
            org: limits::Window::new(options.rate_limit),
            search: limits::Window::new(options.search_rate_limit),
            stats: FakeStats::default(),
            seen: 0,
            hooks: Vec::new(),
            membrane_tokens: Default::default(),
            membrane_revoked: false,
            resource_answers: BTreeMap::new(),
            refused_contexts: Default::default(),
            options,
        };
        let handle = FakeHandle {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                control: Mutex::new(control),
                webhooks: Mutex::new(registry),
            }),
        };
        let app = http::router(handle.clone()).merge(control::router(handle.clone()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "the fake API stopped");
            }
        });
        Ok(FakeServer {
            addr,
            handle,
            stop,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The control handle.
    pub fn handle(&self) -> FakeHandle {
        self.handle.clone()
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Every record of a small organisation, per entity, for unit tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn state_for_tests() -> Vec<(String, Vec<Value>)> {
    let state = state::State::generate(7, Scale::Small, Duration::ZERO);
    crate::entity::ENTITIES
        .iter()
        .map(|e| (e.name.to_string(), state.records(e.name)))
        .collect()
}
