//! The run rules: what beginning and finishing a pass records, and what a finished pass does to its
//! entity's `sync_state` (success, failure, or neither for an interrupted pass). The executors
//! write these in their dialect.

use crate::write::{Mode, Outcome, RunState};

/// The error recorded on a run that a process left running when it went away (marked so by the
/// next run of the same key).
pub const LEFT_RUNNING: &str = "the process stopped before the run finished";

/// What a finished run does to its entity's `sync_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange<'a> {
    /// Nothing: an interrupted pass is neither a success nor a failure of the entity.
    Leave,
    /// `last_error` set and `consecutive_failures` up by one.
    Failed(&'a str),
    /// `unsupported` set to the reason, `last_error` cleared and `consecutive_failures` reset: the
    /// org or key does not offer the entity, which is neither a failure nor a success (no
    /// `last_success_at`, so no lag is claimed for data never read).
    Unsupported(&'a str),
    /// `last_error` and `unsupported` cleared, `consecutive_failures` reset, `last_success_at` now;
    /// `last_full_at` too when `full` (a full refresh or reconcile).
    Succeeded {
        /// Whether the pass read everything.
        full: bool,
    },
}

/// The `sync_runs.entity` of the webhook runs (one per daemon start; the change-log rows say which
/// entity each pushed change was).
pub const WEBHOOK_KEY: &str = "webhooks";

/// Whether beginning a `mode` run links it from its key's `sync_state` row (its last run). A webhook
/// run is not a pass of an entity: it never moves a cursor or a success time.
pub fn links_state(mode: Mode) -> bool {
    mode != Mode::Webhook
}

/// How run `outcome` of a `mode` pass is recorded: its `sync_runs.status` and `error`, and what
/// it does to `sync_state` (nothing for a webhook run). (A preflight never has a run row to
/// finish.)
pub fn finish(mode: Mode, outcome: Outcome<'_>) -> (RunState, Option<&str>, StateChange<'_>) {
    let (state, error) = outcome.status_and_error();
    let change = match (outcome, error) {
        (Outcome::Interrupted, _) => StateChange::Leave,
        _ if mode == Mode::Webhook => StateChange::Leave,
        (Outcome::Unsupported(why), _) => StateChange::Unsupported(why),
        (_, Some(e)) => StateChange::Failed(e),
        (_, None) => StateChange::Succeeded {
            full: matches!(mode, Mode::Full | Mode::Reconcile),
        },
    };
    (state, error, change)
}
