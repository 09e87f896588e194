//! The daemon's dispatcher: which runs are going, which entities back off after failures, and which
//! rare runs (a sweep, a fallback refresh, a reconcile) wait for a busy entity. It starts each run
//! as a task on a shared concurrency limit and, when a task ends (or panics), frees its entity.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Kind, backoff};
use crate::entity::{Entity, Strategy};
use crate::sync::{Engine, Fallback, Start, SyncReport};

/// What a finished run task answers.
type Done = (&'static str, Kind, SyncReport);

/// The runs of the daemon and what it remembers between them.
pub(super) struct Dispatcher {
    engine: Engine,
    semaphore: Arc<Semaphore>,
    failure_backoff: Duration,
    sweep_window: Duration,
    /// Entities with their own `[schedules]` entry (they run whichever strategy applies).
    own_schedule: HashSet<&'static str>,
    running: HashSet<(&'static str, Kind)>,
    /// Rare runs whose tick found their entity busy: started as soon as it is free.
    deferred: Vec<(&'static Entity, Kind)>,
    failures: HashMap<&'static str, u32>,
    not_before: HashMap<&'static str, Instant>,
    pub(super) passes: JoinSet<Done>,
    tasks: HashMap<tokio::task::Id, (&'static str, Kind)>,
}

impl Dispatcher {
    pub(super) fn new(
        engine: Engine,
        settings: &crate::config::Settings,
        own_schedule: HashSet<&'static str>,
    ) -> Dispatcher {
        Dispatcher {
            engine,
            semaphore: Arc::new(Semaphore::new(settings.sync.concurrency.max(1) as usize)),
            failure_backoff: settings.sync.failure_backoff,
            sweep_window: settings.sync.sweep_window,
            own_schedule,
            running: HashSet::new(),
            deferred: Vec::new(),
            failures: HashMap::new(),
            not_before: HashMap::new(),
            passes: JoinSet::new(),
            tasks: HashMap::new(),
        }
    }

    /// Whether a run of `kind` must wait for what `entity` has running. A sweep is a sync from
    /// further back: never beside a sync. A fallback refresh and a search-only sync never both do
    /// work (each is a no-op under the other strategy), so they may run side by side.
    fn busy(&self, entity: &str, kind: Kind) -> bool {
        match kind {
            Kind::Sync | Kind::Sweep => [Kind::Sync, Kind::Sweep]
                .iter()
                .any(|k| self.running.contains(&(entity, *k))),
            Kind::Refresh | Kind::Reconcile => self.running.contains(&(entity, kind)),
        }
    }

    /// A tick of `kind` for `entity`: starts its run, unless the entity is busy (a sync tick is then
    /// skipped, the next one comes soon; a rarer run waits for the entity) or backing off.
    pub(super) fn tick(&mut self, entity: &'static Entity, kind: Kind) {
        if self.busy(entity.name, kind) {
            if kind == Kind::Sync {
                tracing::info!(
                    entity = entity.name,
                    "previous run still going; skipping this tick"
                );
            } else if !self.deferred.contains(&(entity, kind)) {
                tracing::info!(entity = entity.name, kind = ?kind, "entity busy; this run starts when it is free");
                self.deferred.push((entity, kind));
            }
            return;
        }
        if self
            .not_before
            .get(entity.name)
            .is_some_and(|t| Instant::now() < *t)
        {
            tracing::debug!(
                entity = entity.name,
                "backing off after failures; skipping this tick"
            );
            return;
        }
        self.start(entity, kind);
    }

    fn start(&mut self, entity: &'static Entity, kind: Kind) {
        self.running.insert((entity.name, kind));
        let (engine, semaphore) = (self.engine.clone(), self.semaphore.clone());
        let sweep_window = self.sweep_window;
        let fallible =
            entity.strategy == Strategy::SearchOrFull && !self.own_schedule.contains(entity.name);
        let task = self.passes.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let report = match kind {
                Kind::Sync if fallible => {
                    engine
                        .with_fallback(Fallback::SearchOnly)
                        .run(&[entity])
                        .await
                }
                Kind::Sync => engine.run(&[entity]).await,
                Kind::Refresh => {
                    engine
                        .with_fallback(Fallback::RefreshOnly)
                        .run(&[entity])
                        .await
                }
                Kind::Reconcile => engine.reconcile(&[entity]).await,
                Kind::Sweep => {
                    engine
                        .starting(Start::Back(sweep_window))
                        .with_fallback(Fallback::SearchOnly)
                        .run(&[entity])
                        .await
                }
            };
            (entity.name, kind, report)
        });
        self.tasks.insert(task.id(), (entity.name, kind));
    }

    /// A run task ended: frees its entity, counts a failure (a panic is one) or clears the
    /// backoff, and starts the deferred runs the entity was keeping waiting.
    pub(super) fn done(&mut self, done: Result<(tokio::task::Id, Done), tokio::task::JoinError>) {
        let (name, kind, ok, interrupted) = match done {
            Ok((id, (name, kind, report))) => {
                self.tasks.remove(&id);
                let interrupted = report.passes.iter().any(|p| p.interrupted());
                (name, kind, report.ok(), interrupted)
            }
            Err(e) => {
                // A task that panicked outside its pass (which catches its own panics) is a failed
                // run of its entity all the same: freed, counted, backed off.
                let Some((name, kind)) = self.tasks.remove(&e.id()) else {
                    return;
                };
                let why = if e.is_panic() {
                    crate::sync::panic_message(e.into_panic().as_ref())
                } else {
                    "cancelled".to_string()
                };
                tracing::error!(entity = name, kind = ?kind, error = %why, "the run stopped on an internal error; the entity will run again");
                (name, kind, false, false)
            }
        };
        self.running.remove(&(name, kind));
        if ok {
            self.failures.remove(name);
            self.not_before.remove(name);
        } else if !interrupted {
            let n = self.failures.entry(name).or_default();
            *n += 1;
            let wait = backoff(self.failure_backoff, *n);
            self.not_before.insert(name, Instant::now() + wait);
            tracing::warn!(
                entity = name,
                failures = *n,
                retry_in_ms = wait.as_millis() as u64,
                "run failed; backing off"
            );
        }
        let ready: Vec<(&'static Entity, Kind)> = self
            .deferred
            .iter()
            .copied()
            .filter(|(e, k)| e.name == name && !self.busy(e.name, *k))
            .collect();
        for (entity, kind) in ready {
            self.deferred.retain(|d| *d != (entity, kind));
            self.tick(entity, kind);
        }
    }

    /// The running entities' names and how many entities are failing, for systemd's status line.
    pub(super) fn status_line(&self) -> String {
        let mut names: Vec<&str> = self.running.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        let failing = self.failures.len();
        if names.is_empty() {
            format!("idle; {failing} entities failing")
        } else {
            format!("syncing {}; {failing} entities failing", names.join(", "))
        }
    }
}
