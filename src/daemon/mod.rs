//! The daemon (`run`): cron jobs from the settings feed one dispatcher that runs each entity through
//! the same [`Engine`] as `sync`, never two runs of one entity at once, with backoff after failures;
//! a first pass at start; systemd notify (`READY`, `WATCHDOG`, `STATUS`, `STOPPING`); the optional
//! health and metrics listener; and a graceful stop between pages when `shutdown` turns true.

mod dispatch;
pub mod http;
pub mod notify;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::config::Settings;
use crate::entity::{self, Entity, Strategy};
use crate::sync::Engine;

/// How long a stop may wait for passes to reach a page boundary before they are abandoned (still
/// safe: an abandoned page's transaction never committed).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// Longest wait after repeated failures.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Settings that cannot work (e.g. no key, unknown entity).
    #[error("{0}")]
    Config(String),
    /// Kustomer refused us at start (wrong key or URL, unreachable).
    #[error("{0}")]
    Start(String),
    /// The scheduler failed.
    #[error(
        "the scheduler failed: {0}; check sync.schedule, sync.full_refresh_schedule, sync.reconcile_schedule, sync.sweep_schedule and [schedules]"
    )]
    Scheduler(String),
    /// The webhook receiver could not start.
    #[error("{0}")]
    Webhooks(#[from] crate::webhooks::WebhookError),
    /// The health/metrics listener could not start.
    #[error("cannot listen on {addr} for http.listen: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// What a job does to its entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Sync,
    Reconcile,
    /// An incremental pass from `cursor − sync.sweep_window` (changes that reached search late).
    Sweep,
    /// The full refresh of an entity that fell back from search (companies when the org refuses
    /// company search), on the full-refresh schedule; its `Sync` ticks then do nothing.
    Refresh,
}

/// One cron job: a schedule and the entities it runs.
#[derive(Debug, Clone)]
struct Plan {
    cron: String,
    kind: Kind,
    entities: Vec<&'static Entity>,
}

/// Groups the configured entities into jobs by schedule.
fn plans(settings: &Settings) -> Result<Vec<Plan>, DaemonError> {
    let mut chosen = Vec::new();
    for name in &settings.sync.entities {
        let e = entity::by_name(name).ok_or_else(|| {
            DaemonError::Config(format!("unknown entity {name:?} in sync.entities"))
        })?;
        if !chosen.contains(&e) {
            chosen.push(e);
        }
    }
    chosen.sort_by_key(|e| entity::ENTITIES.iter().position(|x| x == *e));
    let mut by_cron: BTreeMap<String, Vec<&'static Entity>> = BTreeMap::new();
    for e in &chosen {
        let cron = settings
            .sync
            .schedules
            .get(e.name)
            .cloned()
            .unwrap_or_else(|| {
                if e.strategy == Strategy::FullRefresh {
                    settings.sync.full_refresh_schedule.clone()
                } else {
                    settings.sync.schedule.clone()
                }
            });
        by_cron.entry(cron).or_default().push(e);
    }
    let mut plans: Vec<Plan> = by_cron
        .into_iter()
        .map(|(cron, entities)| Plan {
            cron,
            kind: Kind::Sync,
            entities,
        })
        .collect();
    let fallible: Vec<_> = chosen
        .iter()
        .copied()
        .filter(|e| {
            e.strategy == Strategy::SearchOrFull && !settings.sync.schedules.contains_key(e.name)
        })
        .collect();
    if !fallible.is_empty() {
        plans.push(Plan {
            cron: settings.sync.full_refresh_schedule.clone(),
            kind: Kind::Refresh,
            entities: fallible,
        });
    }
    let searchable: Vec<_> = chosen
        .iter()
        .copied()
        .filter(|e| e.strategy != Strategy::FullRefresh)
        .collect();
    if !searchable.is_empty() {
        plans.push(Plan {
            cron: settings.sync.sweep_schedule.clone(),
            kind: Kind::Sweep,
            entities: searchable.clone(),
        });
        plans.push(Plan {
            cron: settings.sync.reconcile_schedule.clone(),
            kind: Kind::Reconcile,
            entities: searchable,
        });
    }
    Ok(plans)
}

/// Wait before the next try after `failures` failed runs in a row: `base · 2^(failures−1)`, ±25%
/// jitter, at most an hour.
pub fn backoff(base: Duration, failures: u32) -> Duration {
    let exp = base
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    // ±25 %, from a real RNG (thread-local, seeded per thread): workers that failed together do
    // not retry together.
    let factor = 0.75 + fastrand::f64() / 2.0;
    exp.mul_f64(factor).min(MAX_BACKOFF)
}

/// Runs the daemon until `shutdown` turns true. `listener` overrides `http.listen` (tests pass one
/// bound to port 0).
pub async fn run(
    settings: Settings,
    engine: Engine,
    listener: Option<tokio::net::TcpListener>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let plans = plans(&settings)?;
    let engine = engine.with_shutdown(shutdown.clone());
    let listener = bind_listener(listener, &settings).await?;
    let webhooks = match settings.webhooks.listen {
        Some(_) => Some(
            crate::webhooks::start(
                &settings.webhooks,
                engine.writer().clone(),
                None,
                shutdown.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let mut background = JoinSet::new();
    if let Some(listener) = listener {
        let metrics = webhooks.as_ref().map(|w| Arc::clone(&w.metrics));
        spawn_http(
            &mut background,
            listener,
            &settings,
            &engine,
            metrics,
            &shutdown,
        );
    }
    if let Some(interval) = notify::watchdog_interval() {
        spawn_watchdog(&mut background, interval, &engine, &shutdown);
    }

    let (ticks, mut tick_rx) = mpsc::channel::<usize>(64);
    let mut scheduler = schedule(&plans, &ticks).await?;
    start_first_pass(&plans, &ticks);

    let own_schedule = own_schedules(&plans, &settings);
    let mut dispatcher = dispatch::Dispatcher::new(engine.clone(), &settings, own_schedule);
    dispatch_until_stopped(&plans, &mut dispatcher, &mut tick_rx, &mut shutdown).await;

    stop_gracefully(&mut scheduler, &mut dispatcher, &mut background).await;
    if let Some(webhooks) = webhooks {
        webhooks.stop(SHUTDOWN_GRACE).await;
    }
    Ok(())
}

/// The health and metrics listener: the one given, else one bound to `http.listen`, else none.
async fn bind_listener(
    listener: Option<tokio::net::TcpListener>,
    settings: &Settings,
) -> Result<Option<tokio::net::TcpListener>, DaemonError> {
    Ok(match (listener, settings.http.listen) {
        (Some(l), _) => Some(l),
        (None, Some(addr)) => {
            Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| DaemonError::Listen {
                        addr: addr.to_string(),
                        reason: e.to_string(),
                    })?,
            )
        }
        (None, None) => None,
    })
}

/// Spawns the `/healthz` and `/metrics` server on `listener`, stopping gracefully with `shutdown`.
fn spawn_http(
    background: &mut JoinSet<()>,
    listener: tokio::net::TcpListener,
    settings: &Settings,
    engine: &Engine,
    webhooks: Option<Arc<crate::webhooks::Metrics>>,
    shutdown: &watch::Receiver<bool>,
) {
    let state = http::HttpState {
        db: Arc::new(crate::destination::Reader::new(&settings.database)),
        client: engine.client().clone(),
        webhooks,
        max_failures: settings.http.max_consecutive_failures,
        max_lag: settings.http.max_lag,
    };
    let mut stop = shutdown.clone();
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(address = %addr, "serving /healthz and /metrics");
    background.spawn(async move {
        let serve = axum::serve(listener, http::router(state)).with_graceful_shutdown(async move {
            stopped(&mut stop).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the health and metrics listener stopped");
        }
    });
}

/// Spawns the systemd watchdog pinger: `WATCHDOG=1` every half `interval` while the writer answers.
fn spawn_watchdog(
    background: &mut JoinSet<()>,
    interval: Duration,
    engine: &Engine,
    shutdown: &watch::Receiver<bool>,
) {
    let engine = engine.clone();
    let mut stop = shutdown.clone();
    background.spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    // Ping only while the writer answers: a wedged database stops the pings and
                    // systemd restarts us.
                    if tokio::time::timeout(interval / 2, engine.writer_alive()).await == Ok(true) {
                        notify::notify("WATCHDOG=1");
                    }
                }
                _ = stopped(&mut stop) => break,
            }
        }
    });
}

/// Starts the cron scheduler with one job per plan, each sending its plan's index to `ticks`.
async fn schedule(
    plans: &[Plan],
    ticks: &mpsc::Sender<usize>,
) -> Result<JobScheduler, DaemonError> {
    let scheduler = JobScheduler::new()
        .await
        .map_err(|e| DaemonError::Scheduler(e.to_string()))?;
    for (i, plan) in plans.iter().enumerate() {
        let tx = ticks.clone();
        let job = Job::new_async(plan.cron.as_str(), move |_, _| {
            let tx = tx.clone();
            Box::pin(async move {
                // Full channel: a tick is already waiting; dropping this one loses nothing.
                let _ = tx.try_send(i);
            })
        })
        .map_err(|e| DaemonError::Scheduler(format!("{} ({})", e, plan.cron)))?;
        scheduler
            .add(job)
            .await
            .map_err(|e| DaemonError::Scheduler(e.to_string()))?;
        tracing::info!(schedule = %plan.cron, kind = ?plan.kind, entities = ?plan.entities.iter().map(|e| e.name).collect::<Vec<_>>(), "scheduled");
    }
    scheduler
        .start()
        .await
        .map_err(|e| DaemonError::Scheduler(e.to_string()))?;
    Ok(scheduler)
}

/// Queues the first pass at start and tells systemd the daemon is ready.
fn start_first_pass(plans: &[Plan], ticks: &mpsc::Sender<usize>) {
    // The first pass at start: every sync and fallback refresh job once (the sweep and the reconcile
    // wait for their schedules).
    for (i, plan) in plans.iter().enumerate() {
        if matches!(plan.kind, Kind::Sync | Kind::Refresh) {
            let _ = ticks.try_send(i);
        }
    }
    notify::notify("READY=1\nSTATUS=started; first pass running");
}

/// The planned entities that have their own `[schedules]` entry.
fn own_schedules(plans: &[Plan], settings: &Settings) -> HashSet<&'static str> {
    plans
        .iter()
        .flat_map(|p| p.entities.iter())
        .filter(|e| settings.sync.schedules.contains_key(e.name))
        .map(|e| e.name)
        .collect()
}

/// Feeds cron ticks to the dispatcher and reaps finished passes until `shutdown` turns true.
async fn dispatch_until_stopped(
    plans: &[Plan],
    dispatcher: &mut dispatch::Dispatcher,
    tick_rx: &mut mpsc::Receiver<usize>,
    shutdown: &mut watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped(shutdown) => break,
            Some(i) = tick_rx.recv() => {
                let Some(plan) = plans.get(i) else { continue };
                for e in &plan.entities {
                    dispatcher.tick(e, plan.kind);
                }
                notify::notify(&format!("STATUS={}", dispatcher.status_line()));
            }
            Some(done) = dispatcher.passes.join_next_with_id(), if !dispatcher.passes.is_empty() => {
                dispatcher.done(done);
                notify::notify(&format!("STATUS={}", dispatcher.status_line()));
            }
        }
    }
}

/// Stops the scheduler, gives passes [`SHUTDOWN_GRACE`] to reach a page boundary, then aborts
/// what is left, background tasks included.
async fn stop_gracefully(
    scheduler: &mut JobScheduler,
    dispatcher: &mut dispatch::Dispatcher,
    background: &mut JoinSet<()>,
) {
    notify::notify("STOPPING=1\nSTATUS=stopping: finishing the pages in flight");
    tracing::info!("stopping: letting passes reach a page boundary");
    let _ = scheduler.shutdown().await;
    let mut passes = std::mem::take(&mut dispatcher.passes);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while passes.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "passes did not stop within {SHUTDOWN_GRACE:?}; abandoning them (uncommitted pages roll back)"
        );
        passes.abort_all();
    }
    background.abort_all();
}

/// Resolves once `rx` turns true (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::collections::HashSet;
    use std::time::Duration;

    #[test]
    fn failure_backoff_is_spread_over_plus_minus_a_quarter() {
        let base = Duration::from_secs(60);
        let waits: Vec<Duration> = (0..2000).map(|_| backoff(base, 2)).collect();
        // base · 2 = 120 s, ±25 %.
        assert!(waits.iter().all(|w| *w >= Duration::from_secs(90)));
        assert!(waits.iter().all(|w| *w < Duration::from_secs(150)));
        // Spread over the whole range, in tenths: a constant or clock-stepped jitter fails here.
        let buckets: HashSet<u128> = waits
            .iter()
            .map(|w| (w.as_millis() - 90_000) / 6_000)
            .collect();
        assert_eq!(buckets.len(), 10, "{buckets:?}");
        let distinct: HashSet<Duration> = waits.iter().copied().collect();
        assert!(distinct.len() > 1_900, "{}", distinct.len());
    }
}
