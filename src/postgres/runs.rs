//! Run bookkeeping in PostgreSQL: a `sync_runs` row per pass, the per-entity `sync_state`, and the
//! reads the engine makes of them (saved state, live ids for the reconcile), by the rules of
//! `mirror::runs` and `mirror::cursor`.

use postgres::Client;

use super::jsonb::Jsonb;
use crate::entity::Strategy;
use crate::mirror::runs::{self, LEFT_RUNNING, StateChange};
use crate::write::{Cursor, EventsApplied, Mode, Outcome, RunState, State};

/// Starts a run: the runs of `key` still running that are not in `live` are marked interrupted
/// (a process that went away left them); returns the new run's id.
pub fn begin_run(
    c: &mut Client,
    key: &str,
    mode: Mode,
    live: &[i64],
) -> Result<i64, postgres::Error> {
    let mut tx = c.transaction()?;
    tx.execute(
        "UPDATE sync_runs SET status = $3, finished_at = now(), error = COALESCE(error, $4) \
         WHERE entity = $1 AND status = $5 AND NOT (id = ANY($2))",
        &[
            &key,
            &live,
            &RunState::Interrupted.as_str(),
            &LEFT_RUNNING,
            &RunState::Running.as_str(),
        ],
    )?;
    let id: i64 = tx
        .query_one(
            "INSERT INTO sync_runs (entity, mode, started_at, status) VALUES ($1, $2, now(), $3) RETURNING id",
            &[&key, &mode.as_str(), &RunState::Running.as_str()],
        )?
        .get(0);
    if crate::mirror::runs::links_state(mode) {
        tx.execute(
            "INSERT INTO sync_state (entity, last_run_id) VALUES ($1, $2) \
             ON CONFLICT (entity) DO UPDATE SET last_run_id = excluded.last_run_id",
            &[&key, &id],
        )?;
    }
    tx.commit()?;
    Ok(id)
}

/// Records requests spent outside any pass as a finished `preflight` row.
pub fn record_preflight(
    c: &mut Client,
    entity: &str,
    requests: u64,
    outcome: Outcome<'_>,
) -> Result<(), postgres::Error> {
    let (status, error) = outcome.status_and_error();
    c.execute(
        "INSERT INTO sync_runs (entity, mode, started_at, finished_at, status, requests, error) \
         VALUES ($1, 'preflight', now(), now(), $2, $3, $4)",
        &[&entity, &status.as_str(), &(requests as i64), &error],
    )?;
    Ok(())
}

/// Ends a run, with what `mirror::runs::finish` says it does to `sync_state`.
pub fn finish_run(
    c: &mut Client,
    key: &str,
    run_id: i64,
    mode: Mode,
    outcome: Outcome<'_>,
    requests: Option<u64>,
) -> Result<(), postgres::Error> {
    let (status, error, change) = runs::finish(mode, outcome);
    // Text columns cannot hold NUL: what cannot be stored as is becomes U+FFFD.
    let error = error.map(|e| super::jsonb::text(e).into_owned());
    let mut tx = c.transaction()?;
    tx.execute(
        "UPDATE sync_runs SET status = $2, finished_at = now(), error = $3, \
         requests = COALESCE($4, requests) WHERE id = $1",
        &[
            &run_id,
            &status.as_str(),
            &error,
            &requests.map(|r| r as i64),
        ],
    )?;
    match change {
        StateChange::Leave => {}
        StateChange::Failed(_) => {
            tx.execute(
                "UPDATE sync_state SET last_error = $2, consecutive_failures = consecutive_failures + 1 WHERE entity = $1",
                &[&key, &error],
            )?;
        }
        StateChange::Unsupported(_) => {
            tx.execute(
                "UPDATE sync_state SET unsupported = $2, last_error = NULL, consecutive_failures = 0 WHERE entity = $1",
                &[&key, &error],
            )?;
        }
        StateChange::Succeeded { full } => {
            tx.execute(
                "UPDATE sync_state SET last_error = NULL, unsupported = NULL, consecutive_failures = 0, last_success_at = now(), \
                 last_full_at = CASE WHEN $2 THEN now() ELSE last_full_at END WHERE entity = $1",
                &[&key, &full],
            )?;
        }
    }
    tx.commit()
}

/// The saved state of `key`. `cursor_ids` is jsonb: anything but an array of strings (hand-edited)
/// is logged and read as no ids, as in SQLite.
pub fn read_state(c: &mut Client, key: &str) -> Result<State, postgres::Error> {
    let row = c.query_opt(
        "SELECT strategy, cursor, cursor_ids::text, unsupported FROM sync_state WHERE entity = $1",
        &[&key],
    )?;
    Ok(match row {
        None => State::default(),
        Some(row) => State {
            unsupported: row.get(3),
            ..crate::mirror::cursor::state(
                key,
                row.get::<_, Option<&str>>(0),
                row.get(1),
                row.get::<_, &str>(2),
            )
        },
    })
}

/// Records the strategy `key` is synced with.
pub fn set_strategy(c: &mut Client, key: &str, strategy: Strategy) -> Result<(), postgres::Error> {
    c.execute(
        "INSERT INTO sync_state (entity, strategy) VALUES ($1, $2) \
         ON CONFLICT (entity) DO UPDATE SET strategy = excluded.strategy",
        &[&key, &strategy.saved_name()],
    )?;
    Ok(())
}

/// Live ids with `attributes.createdAt` as served, oldest first (by the typed column, as SQLite
/// orders its ISO text).
pub fn live_ids_by_created(
    c: &mut Client,
    table: &'static str,
    klass: Option<&str>,
) -> Result<Vec<(String, Option<String>)>, postgres::Error> {
    let sql = format!(
        "SELECT id, data #>> '{{attributes,createdAt}}' FROM {table} WHERE deleted_at IS NULL AND {} \
         ORDER BY created_at, id",
        if klass.is_some() {
            "klass = $1"
        } else {
            "$1::text IS NULL"
        }
    );
    let rows = c.query(&sql, &[&klass])?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Moves the cursor forward in the page's transaction (never back): a later timestamp replaces
/// it, the same timestamp adds ids.
pub fn advance_cursor(
    tx: &mut postgres::Transaction<'_>,
    key: &str,
    cursor: &Cursor,
) -> Result<(), postgres::Error> {
    let current = tx.query_opt(
        "SELECT cursor, cursor_ids::text FROM sync_state WHERE entity = $1",
        &[&key],
    )?;
    let current: Option<(Option<String>, String)> = current.map(|r| (r.get(0), r.get(1)));
    let (at, ids) =
        crate::mirror::cursor::merged(cursor, key, current.and_then(|(at, ids)| Some((at?, ids))));
    let (ids, _) = super::jsonb::storable(&ids);
    tx.execute(
        "INSERT INTO sync_state (entity, cursor, cursor_ids) VALUES ($1, $2, $3) \
         ON CONFLICT (entity) DO UPDATE SET cursor = excluded.cursor, cursor_ids = excluded.cursor_ids",
        &[&key, &cursor_text(&at), &Jsonb(&ids)],
    )?;
    Ok(())
}

fn cursor_text(at: &str) -> String {
    super::jsonb::text(at).into_owned()
}

/// Adds each batch of pushed events to its entity's `webhook_events` row, in one transaction.
pub fn record_events(c: &mut Client, batches: &[EventsApplied]) -> Result<(), postgres::Error> {
    let mut tx = c.transaction()?;
    for b in batches {
        tx.execute(
            "INSERT INTO webhook_events (entity, event, event_id, record_id, received_at, applied_at, \
             events, changed, stale, rejected) \
             VALUES ($1, $2, $3, $4, $5::text::timestamptz, now(), $6, $7, $8, $9) \
             ON CONFLICT (entity) DO UPDATE SET event = excluded.event, event_id = excluded.event_id, \
             record_id = excluded.record_id, received_at = excluded.received_at, \
             applied_at = excluded.applied_at, events = webhook_events.events + excluded.events, \
             changed = webhook_events.changed + excluded.changed, \
             stale = webhook_events.stale + excluded.stale, \
             rejected = webhook_events.rejected + excluded.rejected",
            &[
                &b.table,
                &b.event,
                &b.event_id,
                &b.record_id,
                &b.received_at,
                &(b.events as i64),
                &(b.changed as i64),
                &(b.stale as i64),
                &(b.rejected as i64),
            ],
        )?;
    }
    tx.commit()
}
