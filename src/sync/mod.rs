//! The sync engine: runs passes over entities (search-incremental, full refresh, hard-delete
//! reconcile) against a [`Client`] and writes through the single [`Writer`], entities concurrently up
//! to a limit. The same code serves `sync`, `demo` and the daemon (`run`).

mod error;
mod full;
mod pages;
mod reconcile;
mod search;
mod unsupported;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};

pub use error::{SyncError, panic_message};

use crate::destination::{Destination, Error as DestError, Writer};
use crate::entity::{Entity, StateKey, Strategy};
use crate::kustomer::{ApiError, Client, counted};
use crate::write::{Applied, Mode, Outcome};

/// Knobs of a sync pass.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Records per request (search allows 500; GET lists are clamped to their own maximum).
    pub page_size: u32,
    /// How far before the cursor an incremental pass starts (search-index lag, clock skew).
    pub overlap: Duration,
    /// Entities synced at once.
    pub concurrency: usize,
    /// `sync --full`: re-probe strategies and run the hard-delete reconcile after the incremental pass.
    pub full: bool,
    /// Where incremental passes start instead of `cursor − overlap`: the sweep and `sync --since`.
    pub start: Start,
    /// Which passes an entity that may fall back to a full refresh (companies) gets: the daemon
    /// runs its search passes on the incremental schedule and its fallback refreshes on the
    /// full-refresh schedule; `sync` runs whichever applies.
    pub fallback: Fallback,
}

/// Which strategy's passes run for an entity that can fall back from search to full refreshes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fallback {
    /// Whichever the entity uses (`sync`).
    #[default]
    Either,
    /// Only search passes (the daemon's incremental ticks).
    SearchOnly,
    /// Only full refreshes (the daemon's full-refresh ticks).
    RefreshOnly,
}

/// Where an incremental pass starts reading. Whatever it is, the saved cursor only moves forward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Start {
    /// `cursor − sync.overlap` (the ordinary pass).
    #[default]
    Overlap,
    /// `cursor − d`: the sweep (`sync.sweep_window`), which finds changes that reached search late.
    Back(Duration),
    /// A fixed instant (`sync --since 2026-01-01T00:00:00Z`), for entities with a cursor or not.
    At(chrono::DateTime<chrono::Utc>),
    /// From the beginning (`sync --since all`).
    All,
}

impl Default for SyncOptions {
    fn default() -> Self {
        use crate::config::defaults;
        SyncOptions {
            page_size: defaults::PAGE_SIZE,
            overlap: defaults::OVERLAP,
            concurrency: defaults::CONCURRENCY as usize,
            full: false,
            start: Start::Overlap,
            fallback: Fallback::Either,
        }
    }
}

/// Progress of a pass, for displays.
#[derive(Debug, Clone)]
pub struct ProgressEvent {
    /// `sync_state` key (`customers`, `kobjects:ecomm-order`).
    pub key: String,
    /// Records fetched so far in this pass.
    pub fetched: u64,
    /// Records the pass is expected to fetch in all, when the server reports totals (search and
    /// the customers list do).
    pub expected: Option<u64>,
    /// Rows written so far in this pass.
    pub changed: u64,
    /// Whether the pass has ended.
    pub done: bool,
    /// When the pass started (its first page arrives later), for records/s and ETAs.
    pub started: Option<Instant>,
}

/// Receives progress events.
pub type ProgressFn = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

/// How a pass ended.
#[derive(Debug, Clone)]
pub enum PassOutcome {
    /// Completed.
    Ok,
    /// Failed; the error names the entity and says what to do.
    Failed(Arc<SyncError>),
    /// Stopped by a shutdown between pages: neither a success nor a failure of the entity.
    Interrupted,
    /// The org or key does not offer the entity (an optional one), for this reason: not a failure.
    Unsupported(String),
}

/// The outcome of one pass (one entity, or one klass of kobjects, in one mode).
#[derive(Debug, Clone)]
pub struct PassReport {
    /// `sync_state` key.
    pub key: String,
    /// Kind of pass.
    pub mode: Mode,
    /// What was written.
    pub applied: Applied,
    /// Records fetched.
    pub fetched: u64,
    /// HTTP requests spent.
    pub requests: u64,
    /// Wall time.
    pub duration: Duration,
    /// How it ended.
    pub outcome: PassOutcome,
    /// Why it failed, if it did (the outcome's error as text).
    pub error: Option<String>,
}

impl PassReport {
    /// True when a shutdown stopped the pass.
    pub fn interrupted(&self) -> bool {
        matches!(self.outcome, PassOutcome::Interrupted)
    }

    /// Why the org or key does not offer the entity, when the pass found that out.
    pub fn unsupported(&self) -> Option<&str> {
        match &self.outcome {
            PassOutcome::Unsupported(why) => Some(why),
            _ => None,
        }
    }
}

/// The outcome of a whole sync.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// One entry per pass, in completion order.
    pub passes: Vec<PassReport>,
}

impl SyncReport {
    /// True when every pass succeeded.
    pub fn ok(&self) -> bool {
        self.passes.iter().all(|p| p.error.is_none())
    }

    /// Totals over all passes.
    pub fn totals(&self) -> (Applied, u64, u64) {
        let mut applied = Applied::default();
        let (mut fetched, mut requests) = (0, 0);
        for p in &self.passes {
            applied.add(p.applied);
            fetched += p.fetched;
            requests += p.requests;
        }
        (applied, fetched, requests)
    }
}

/// Runs sync passes.
#[derive(Clone)]
pub struct Engine {
    client: Arc<Client>,
    writer: Writer,
    options: SyncOptions,
    progress: Option<ProgressFn>,
    shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    /// KiB of record text the passes may have queued for the writer together (`pages::QUEUED_KIB`).
    queued: Arc<tokio::sync::Semaphore>,
    /// The `sync_runs` ids of this engine's passes now running. Read and changed only inside
    /// writer jobs, which run one at a time, so a run begun beside another of the same key never
    /// marks it interrupted.
    live_runs: Arc<std::sync::Mutex<std::collections::BTreeSet<i64>>>,
}

/// What one pass reads: an entity, or one klass of kobjects.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub entity: &'static Entity,
    pub key: String,
    pub klass: Option<String>,
    /// Search `queryContext`.
    pub context: String,
}

impl Target {
    fn plain(entity: &'static Entity) -> Target {
        Target {
            entity,
            key: StateKey::entity(entity).to_string(),
            klass: None,
            context: entity.context.to_string(),
        }
    }

    /// One klass of a per-klass entity: its own key, and search context `<context>_<klass>`.
    fn per_klass(entity: &'static Entity, klass: String) -> Target {
        Target {
            entity,
            key: StateKey::klass(entity, klass.clone()).to_string(),
            context: format!("{}_{klass}", entity.context),
            klass: Some(klass),
        }
    }
}

/// Counters of a pass in progress.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub applied: Applied,
    pub fetched: u64,
    pub requests: u64,
    /// Items the pass is expected to fetch in all, once a page said (`meta.total`).
    pub expected: Option<u64>,
    /// When the pass started, for the pace of progress displays.
    pub started: Option<Instant>,
}

impl Engine {
    /// An engine reading through `client` and writing through `writer`.
    pub fn new(client: Arc<Client>, writer: Writer, options: SyncOptions) -> Engine {
        Engine {
            client,
            writer,
            options,
            progress: None,
            shutdown: None,
            queued: Arc::new(tokio::sync::Semaphore::new(pages::QUEUED_KIB as usize)),
            live_runs: Arc::default(),
        }
    }

    /// The same engine, running only `fallback`'s passes of entities that can fall back.
    pub fn with_fallback(&self, fallback: Fallback) -> Engine {
        let mut engine = self.clone();
        engine.options.fallback = fallback;
        engine
    }

    /// The same engine, its incremental passes starting at `start` (the daemon's sweep).
    pub fn starting(&self, start: Start) -> Engine {
        let mut engine = self.clone();
        engine.options.start = start;
        engine
    }

    /// Stops passes between pages once `shutdown` turns true (an HTTP request in flight is
    /// abandoned; whatever was committed stays).
    pub fn with_shutdown(mut self, shutdown: tokio::sync::watch::Receiver<bool>) -> Engine {
        self.shutdown = Some(shutdown);
        self
    }

    /// Runs `f` on the writer thread; errors name the entity.
    pub(crate) async fn store<R, F>(&self, key: &str, f: F) -> Result<R, SyncError>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Destination) -> Result<R, DestError> + Send + 'static,
    {
        self.writer
            .call(f)
            .await
            .and_then(|r| r)
            .map_err(|e| SyncError::store(key, e))
    }

    /// The client this engine reads through (its counters feed `/metrics`).
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// The writer this engine writes through (the webhook drain shares it).
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// True when the writer thread answers (the daemon's watchdog check).
    pub async fn writer_alive(&self) -> bool {
        self.writer.call(|_| ()).await.is_ok()
    }

    /// Awaits `work` unless a shutdown comes first (then `Err(Interrupted)`).
    pub(crate) async fn unless_stopped<T>(
        &self,
        key: &str,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, SyncError> {
        let interrupted = || SyncError::Interrupted {
            entity: key.to_string(),
        };
        let Some(shutdown) = &self.shutdown else {
            return Ok(work.await);
        };
        let mut shutdown = shutdown.clone();
        if *shutdown.borrow() {
            return Err(interrupted());
        }
        tokio::select! {
            out = work => Ok(out),
            _ = shutdown.wait_for(|stop| *stop) => Err(interrupted()),
        }
    }

    /// Runs only the hard-delete reconcile of the search entities among `entities` (the daemon's
    /// slow schedule); full-refresh entities need none.
    pub async fn reconcile(&self, entities: &[&'static Entity]) -> SyncReport {
        let mut passes = Vec::new();
        for entity in entities {
            match entity.strategy {
                Strategy::FullRefresh => {}
                Strategy::Search | Strategy::SearchOrFull => {
                    let target = Target::plain(entity);
                    if entity.strategy == Strategy::SearchOrFull {
                        match self.company_strategy(&target).await {
                            Ok(true) => {}
                            Ok(false) => continue,
                            Err(e) => {
                                passes.push(self.failed(&target, Mode::Reconcile, e).await);
                                continue;
                            }
                        }
                    }
                    passes.push(self.pass(target, Mode::Reconcile).await);
                }
                Strategy::PerKlass => match self.klass_names(entity).await {
                    Ok(klasses) => {
                        for klass in klasses {
                            let target = Target::per_klass(entity, klass);
                            passes.push(self.pass(target, Mode::Reconcile).await);
                        }
                    }
                    Err(e) => passes.push(
                        self.failed(&Target::plain(entity), Mode::Reconcile, e)
                            .await,
                    ),
                },
            }
        }
        SyncReport { passes }
    }

    /// Reports progress to `f` after every page.
    pub fn with_progress(mut self, f: ProgressFn) -> Engine {
        self.progress = Some(f);
        self
    }

    /// Syncs `entities` (concurrently up to `options.concurrency`) and reports every pass. A failed
    /// entity does not stop the others.
    pub async fn run(&self, entities: &[&'static Entity]) -> SyncReport {
        let concurrency = self.options.concurrency.max(1);
        // Boxed so the stream's item type names no closure lifetime: the daemon spawns this future,
        // which needs it to be Send for every lifetime.
        type PassFuture<'a> =
            std::pin::Pin<Box<dyn std::future::Future<Output = Vec<PassReport>> + Send + 'a>>;
        let futures: Vec<PassFuture<'_>> = entities
            .iter()
            .map(|entity| Box::pin(self.run_entity(entity)) as PassFuture<'_>)
            .collect();
        let passes: Vec<Vec<PassReport>> = futures_util::stream::iter(futures)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let report = SyncReport {
            passes: passes.into_iter().flatten().collect(),
        };
        self.refresh_custom_views(&report).await;
        report
    }

    /// Rescans the custom attribute views a name may have left during this sync (every view of the
    /// tables it changed, with `--full`); pages already added the names they brought. A failure is
    /// logged, not fatal: the rows are stored either way.
    async fn refresh_custom_views(&self, report: &SyncReport) {
        let mut tables: Vec<&'static str> = report
            .passes
            .iter()
            .filter(|p| p.applied.changed() > 0)
            .filter_map(|p| StateKey::parse(&p.key))
            .filter(|key| key.entity.custom_views)
            .map(|key| key.table())
            .collect();
        tables.sort_unstable();
        tables.dedup();
        let all = self.options.full;
        let result = self
            .writer
            .call(move |s| s.rescan_custom_views(&tables, all))
            .await;
        if let Err(e) | Ok(Err(e)) = result {
            tracing::warn!(error = %e, "could not refresh the custom attribute views");
        }
    }

    async fn run_entity(&self, entity: &'static Entity) -> Vec<PassReport> {
        if let Some(why) = self.remembered_unsupported(entity).await {
            let target = Target::plain(entity);
            return vec![self.report(
                &target,
                Mode::Incremental,
                Tally::default(),
                Instant::now(),
                Err(why),
            )];
        }
        match entity.strategy {
            Strategy::FullRefresh => vec![self.pass(Target::plain(entity), Mode::Full).await],
            Strategy::Search => self.search_entity(Target::plain(entity)).await,
            Strategy::SearchOrFull => {
                let target = Target::plain(entity);
                match (self.company_strategy(&target).await, self.options.fallback) {
                    // Each strategy's passes on their own schedule: nothing to do on the other's.
                    (Ok(true), Fallback::RefreshOnly) | (Ok(false), Fallback::SearchOnly) => {
                        Vec::new()
                    }
                    (Ok(true), _) => self.search_entity(target).await,
                    (Ok(false), _) => vec![self.pass(target, Mode::Full).await],
                    (Err(e), _) => vec![self.failed(&target, Mode::Incremental, e).await],
                }
            }
            Strategy::PerKlass => {
                let klasses = match self.klass_names(entity).await {
                    Ok(k) => k,
                    Err(e) => {
                        let target = Target::plain(entity);
                        return vec![self.failed(&target, Mode::Incremental, e).await];
                    }
                };
                let mut reports = Vec::new();
                for klass in klasses {
                    let target = Target::per_klass(entity, klass);
                    reports.extend(self.search_entity(target).await);
                }
                reports
            }
        }
    }

    /// The incremental pass, then (with `--full`) the reconcile.
    async fn search_entity(&self, target: Target) -> Vec<PassReport> {
        let first = self.pass(target.clone(), Mode::Incremental).await;
        let mut reports = vec![first];
        if self.options.full && reports[0].error.is_none() {
            reports.push(self.pass(target, Mode::Reconcile).await);
        }
        reports
    }

    /// The reason an optional entity was found unsupported, when this sync should not ask again: an
    /// incremental run of an entity read by search (work sessions). Full refreshes, `--full` and the
    /// daemon's full-refresh runs ask again (one request), so a role granted later is picked up.
    async fn remembered_unsupported(&self, entity: &'static Entity) -> Option<String> {
        if !entity.optional
            || self.options.full
            || self.options.fallback == Fallback::RefreshOnly
            || entity.strategy == Strategy::FullRefresh
        {
            return None;
        }
        let key = StateKey::entity(entity).to_string();
        let read = key.clone();
        match self.store(&key, move |s| s.read_state(&read)).await {
            Ok(state) => state.unsupported,
            // The pass reads the state again and reports the error there.
            Err(_) => None,
        }
    }

    /// Decides whether an entity that may use search (companies, work sessions) does: remembered in
    /// `sync_state.strategy`, probed with one small search on the first run and on `--full`. An
    /// optional entity also falls back to its list when search answers 403 or 404 (the list may
    /// still be readable; its own answer decides whether the entity is unsupported).
    async fn company_strategy(&self, target: &Target) -> Result<bool, SyncError> {
        let key = target.key.clone();
        let state = self.store(&target.key, move |s| s.read_state(&key)).await?;
        if !self.options.full {
            match state.strategy {
                Some(Strategy::Search) => return Ok(true),
                Some(Strategy::FullRefresh) => return Ok(false),
                _ => {}
            }
        }
        let body = search::query_body(target, None);
        let counter = Arc::new(AtomicU64::new(0));
        let probe = self
            .unless_stopped(
                &target.key,
                counted(counter.clone(), self.client.search(&body, 1, 1, true)),
            )
            .await;
        let probe = match probe {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(ApiError::Rejected { status: 400, .. })) => {
                tracing::warn!(entity = %target.key, "the org rejects this search context; the entity will be fully refreshed each run");
                Ok(false)
            }
            Ok(Err(e)) if unsupported::probe_falls_back(target.entity, &e) => {
                tracing::warn!(entity = %target.key, error = %e, "search is not offered for this entity; reading its full list instead");
                Ok(false)
            }
            Ok(Err(e)) => Err(SyncError::api(&target.key, Some(1), e)),
            Err(stopped) => Err(stopped),
        };
        self.record_preflight_of(&target.key, counter.load(Ordering::Relaxed), &probe)
            .await?;
        let supported = probe?;
        let key = target.key.clone();
        let strategy = if supported {
            Strategy::Search
        } else {
            Strategy::FullRefresh
        };
        self.store(&target.key, move |s| s.set_strategy(&key, strategy))
            .await?;
        Ok(supported)
    }

    /// The org's klass names, with the requests spent finding them recorded as a preflight of
    /// `entity` (kobjects).
    async fn klass_names(&self, entity: &Entity) -> Result<Vec<String>, SyncError> {
        let counter = Arc::new(AtomicU64::new(0));
        let names = self
            .unless_stopped(
                entity.name,
                counted(counter.clone(), full::klass_names(&self.client)),
            )
            .await
            .and_then(|names| names);
        self.record_preflight_of(entity.name, counter.load(Ordering::Relaxed), &names)
            .await?;
        names
    }

    /// Records `requests` spent outside any pass (the access check before a sync, klass discovery,
    /// the companies probe) as a `preflight` row of `entity`, so that `sync_runs.requests` adds up
    /// to every request made. Nothing is written for zero requests.
    pub async fn record_preflight(
        &self,
        entity: &str,
        requests: u64,
        error: Option<String>,
    ) -> Result<(), SyncError> {
        self.store_preflight(entity, requests, error, false).await
    }

    /// Records the requests of a preflight that ended with `result`: a shutdown that stopped it
    /// is recorded as interrupted, not as a failure.
    async fn record_preflight_of<T>(
        &self,
        entity: &str,
        requests: u64,
        result: &Result<T, SyncError>,
    ) -> Result<(), SyncError> {
        let interrupted = matches!(result, Err(SyncError::Interrupted { .. }));
        let error = result.as_ref().err().map(ToString::to_string);
        self.store_preflight(entity, requests, error, interrupted)
            .await
    }

    async fn store_preflight(
        &self,
        entity: &str,
        requests: u64,
        error: Option<String>,
        interrupted: bool,
    ) -> Result<(), SyncError> {
        if requests == 0 {
            return Ok(());
        }
        let key = entity.to_string();
        self.store(entity, move |s| {
            let outcome = match (&error, interrupted) {
                (_, true) => Outcome::Interrupted,
                (Some(e), false) => Outcome::Failed(e),
                (None, false) => Outcome::Ok,
            };
            s.record_preflight(&key, requests, outcome)
        })
        .await
    }

    /// Runs one pass with its `sync_runs` row.
    async fn pass(&self, target: Target, mode: Mode) -> PassReport {
        let started = Instant::now();
        let key = target.key.clone();
        let live = self.live_runs.clone();
        let run_id = match self
            .writer
            .call(move |s| {
                // A poisoned set only means a writer job panicked mid-insert of a plain integer.
                let mut live = live.lock().unwrap_or_else(|p| p.into_inner());
                let ids: Vec<i64> = live.iter().copied().collect();
                let id = s.begin_run(&key, mode, &ids)?;
                live.insert(id);
                Ok(id)
            })
            .await
            .and_then(|r| r)
        {
            Ok(id) => id,
            Err(e) => {
                return self.report(
                    &target,
                    mode,
                    Tally::default(),
                    started,
                    Ok(Some(SyncError::store(&target.key, e))),
                );
            }
        };
        // A table's first sync loads without its secondary indexes (the destination's bulk phase): far fewer pages
        // written per transaction; they are built once when the pass ends.
        let table = target.entity.name;
        let bulk = match mode {
            Mode::Incremental | Mode::Full => {
                match self.store(&target.key, move |s| s.bulk_begin(table)).await {
                    Ok(bulk) => bulk,
                    Err(e) => {
                        tracing::warn!(entity = %target.key, error = %e, "could not defer indexes; syncing with them");
                        false
                    }
                }
            }
            Mode::Reconcile | Mode::Preflight | Mode::Webhook => false,
        };
        let mut tally = Tally {
            started: Some(started),
            ..Tally::default()
        };
        // Every request the pass sends is counted here, failed attempts included, and the run's
        // row gets the exact total when it finishes.
        let counter = Arc::new(AtomicU64::new(0));
        let work = async {
            crate::failpoint::panic_if("pass", &target.key);
            match mode {
                Mode::Incremental => search::run(self, &target, run_id, &mut tally).await,
                Mode::Full => full::run(self, &target, run_id, &mut tally).await,
                Mode::Reconcile => reconcile::run(self, &target, run_id, &mut tally).await,
                Mode::Preflight | Mode::Webhook => Ok(()),
            }
        };
        // A panic inside the pass (a bug) ends it as failed, like any error: its run row is finished,
        // its entity is free for the next run, and nothing else stops. Unwind safety: what the pass
        // shares (the writer's channel, the client's atomics and mutexes, which recover from poison)
        // stays consistent at any await point; the tally is only read for counts.
        let result = counted(
            counter.clone(),
            std::panic::AssertUnwindSafe(work).catch_unwind(),
        )
        .await
        .unwrap_or_else(|payload| {
            Err(SyncError::Panicked {
                entity: target.key.clone(),
                message: error::panic_message(payload.as_ref()),
            })
        });
        tally.requests = counter.load(Ordering::Relaxed);
        let requests = tally.requests;
        let error = result.err();
        // An optional entity whose first request was refused is unsupported, not failed.
        let unsupported = error
            .as_ref()
            .filter(|_| tally.fetched == 0)
            .and_then(|e| unsupported::reason(target.entity, e));
        let error = if unsupported.is_some() { None } else { error };
        let message = error.as_ref().map(ToString::to_string);
        let interrupted = matches!(error, Some(SyncError::Interrupted { .. }));
        if bulk {
            let rebuild = !interrupted;
            if let Err(e) = self
                .store(&target.key, move |s| s.bulk_end(table, rebuild))
                .await
            {
                // The rows are stored; the next pass of this table retries the build.
                tracing::error!(entity = %target.key, error = %e, "could not build the indexes after the first sync");
            }
        }
        let key = target.key.clone();
        let live = self.live_runs.clone();
        let why = unsupported.clone();
        let finished = self
            .writer
            .call(move |s| {
                let outcome = match (&message, interrupted, &why) {
                    (_, true, _) => Outcome::Interrupted,
                    (Some(m), false, _) => Outcome::Failed(m),
                    (None, false, Some(why)) => Outcome::Unsupported(why),
                    (None, false, None) => Outcome::Ok,
                };
                live.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&run_id);
                s.finish_run(&key, run_id, mode, outcome, Some(requests))
            })
            .await
            .and_then(|r| r);
        let ended = match (error, finished, unsupported) {
            (Some(e), _, _) => Ok(Some(e)),
            (None, Err(e), _) => Ok(Some(SyncError::store(&target.key, e))),
            (None, Ok(()), Some(why)) => Err(why),
            (None, Ok(()), None) => Ok(None),
        };
        self.report(&target, mode, tally, started, ended)
    }

    async fn failed(&self, target: &Target, mode: Mode, error: SyncError) -> PassReport {
        self.report(
            target,
            mode,
            Tally::default(),
            Instant::now(),
            Ok(Some(error)),
        )
    }

    /// The report of a pass that ended with `ended`: `Ok(None)` a success, `Ok(Some(e))` an error,
    /// `Err(why)` the entity found (or known) unsupported.
    fn report(
        &self,
        target: &Target,
        mode: Mode,
        tally: Tally,
        started: Instant,
        ended: Result<Option<SyncError>, String>,
    ) -> PassReport {
        let duration = started.elapsed();
        let outcome = match ended {
            Ok(None) => PassOutcome::Ok,
            Ok(Some(SyncError::Interrupted { .. })) => PassOutcome::Interrupted,
            Ok(Some(e)) => PassOutcome::Failed(Arc::new(e)),
            Err(why) => PassOutcome::Unsupported(why),
        };
        let error = match &outcome {
            PassOutcome::Ok | PassOutcome::Unsupported(_) => None,
            PassOutcome::Interrupted => Some(
                SyncError::Interrupted {
                    entity: target.key.clone(),
                }
                .to_string(),
            ),
            PassOutcome::Failed(e) => Some(e.to_string()),
        };
        match (&outcome, &error) {
            (PassOutcome::Unsupported(why), _) => tracing::warn!(
                entity = %target.key, mode = mode.as_str(), requests = tally.requests,
                reason = %why, "entity not offered by this org or key; marked unsupported"
            ),
            (PassOutcome::Ok, _) | (_, None) => tracing::info!(
                entity = %target.key, mode = mode.as_str(), rows = tally.fetched,
                changed = tally.applied.changed(), requests = tally.requests,
                duration_ms = duration.as_millis() as u64, "pass finished"
            ),
            // A stop someone asked for is not a failure: INFO, so alerts on journal errors stay
            // quiet through restarts.
            (PassOutcome::Interrupted, Some(e)) => tracing::info!(
                entity = %target.key, mode = mode.as_str(), rows = tally.fetched,
                changed = tally.applied.changed(), requests = tally.requests,
                reason = %e, "pass interrupted"
            ),
            (PassOutcome::Failed(_), Some(e)) => {
                tracing::error!(entity = %target.key, mode = mode.as_str(), error = %e, "pass failed")
            }
        }
        self.emit(&target.key, &tally, true);
        PassReport {
            key: target.key.clone(),
            mode,
            applied: tally.applied,
            fetched: tally.fetched,
            requests: tally.requests,
            duration,
            outcome,
            error,
        }
    }

    pub(crate) fn emit(&self, key: &str, tally: &Tally, done: bool) {
        if let Some(progress) = &self.progress {
            progress(ProgressEvent {
                key: key.to_string(),
                fetched: tally.fetched,
                expected: tally.expected,
                changed: tally.applied.changed(),
                done,
                started: tally.started,
            });
        }
    }
}
