//! Run bookkeeping: a `sync_runs` row per pass of one entity, and the per-entity `sync_state` (strategy,
//! cursor, last success, last error, consecutive failures).

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now_iso};
use crate::entity::Strategy;
use crate::mirror::runs::{self, LEFT_RUNNING, StateChange};
use crate::write::EventsApplied;
pub use crate::write::{Mode, Outcome, RunState, State};

/// Starts a run: marks the runs of the same key still `running` that are not in `live` (this
/// process's own passes) as `interrupted` (a process that went away left them), inserts the new
/// row and links it from `sync_state`. Returns the run id.
pub fn begin_run(
    store: &mut Store,
    key: &str,
    mode: Mode,
    live: &[i64],
) -> Result<i64, StoreError> {
    let err = |e| StoreError::sqlite(format!("starting a {} run of {key}", mode.as_str()), e);
    let now = now_iso();
    let tx = store.conn_mut().transaction().map_err(err)?;
    // The live ids as a JSON array (integers only, so nothing of it is text from elsewhere).
    let live = format!(
        "[{}]",
        live.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    tx.execute(
        "UPDATE sync_runs SET status = ?4, finished_at = ?2, error = COALESCE(error, ?5) \
         WHERE entity = ?1 AND status = ?6 AND id NOT IN (SELECT value FROM json_each(?3))",
        params![
            key,
            now,
            live,
            RunState::Interrupted.as_str(),
            LEFT_RUNNING,
            RunState::Running.as_str()
        ],
    )
    .map_err(err)?;
    tx.execute(
        "INSERT INTO sync_runs (entity, mode, started_at, status) VALUES (?1, ?2, ?3, ?4)",
        params![key, mode.as_str(), now, RunState::Running.as_str()],
    )
    .map_err(err)?;
    let id = tx.last_insert_rowid();
    if runs::links_state(mode) {
        tx.execute(
            "INSERT INTO sync_state (entity, last_run_id) VALUES (?1, ?2) \
             ON CONFLICT (entity) DO UPDATE SET last_run_id = excluded.last_run_id",
            params![key, id],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(id)
}

/// Records requests spent outside any pass as a finished `preflight` row of `entity` (the access
/// check, klass discovery, the companies search probe), so `sync_runs.requests` adds up to every
/// request a sync made. `sync_state` is left alone: a preflight is not a run of the entity.
pub fn record_preflight(
    store: &mut Store,
    entity: &str,
    requests: u64,
    outcome: Outcome<'_>,
) -> Result<(), StoreError> {
    let now = now_iso();
    let (status, error) = outcome.status_and_error();
    store
        .conn_mut()
        .execute(
            "INSERT INTO sync_runs (entity, mode, started_at, finished_at, status, requests, error) \
             VALUES (?1, 'preflight', ?2, ?2, ?3, ?4, ?5)",
            params![
                entity,
                now,
                status.as_str(),
                requests as i64,
                error
            ],
        )
        .map_err(|e| StoreError::sqlite(format!("recording the preflight requests of {entity}"), e))?;
    Ok(())
}

/// Ends a run, updating `sync_state`'s success/failure fields. `requests`, when known, is the
/// run's exact request count (it replaces the sum of its pages, which misses failed attempts).
pub fn finish_run(
    store: &mut Store,
    key: &str,
    run_id: i64,
    mode: Mode,
    outcome: Outcome<'_>,
    requests: Option<u64>,
) -> Result<(), StoreError> {
    let err = |e| StoreError::sqlite(format!("finishing run {run_id} of {key}"), e);
    let now = now_iso();
    let tx = store.conn_mut().transaction().map_err(err)?;
    let (status, error, change) = runs::finish(mode, outcome);
    tx.execute(
        "UPDATE sync_runs SET status = ?2, finished_at = ?3, error = ?4, \
         requests = COALESCE(?5, requests) WHERE id = ?1",
        params![
            run_id,
            status.as_str(),
            now,
            error,
            requests.map(|r| r as i64)
        ],
    )
    .map_err(err)?;
    match change {
        StateChange::Leave => {}
        StateChange::Failed(error) => {
            tx.execute(
                "UPDATE sync_state SET last_error = ?2, consecutive_failures = consecutive_failures + 1 WHERE entity = ?1",
                params![key, error],
            )
            .map_err(err)?;
        }
        StateChange::Unsupported(why) => {
            tx.execute(
                "UPDATE sync_state SET unsupported = ?2, last_error = NULL, consecutive_failures = 0 WHERE entity = ?1",
                params![key, why],
            )
            .map_err(err)?;
        }
        StateChange::Succeeded { full } => {
            tx.execute(
                "UPDATE sync_state SET last_error = NULL, unsupported = NULL, consecutive_failures = 0, last_success_at = ?2, \
                 last_full_at = CASE WHEN ?3 THEN ?2 ELSE last_full_at END WHERE entity = ?1",
                params![key, now, full],
            )
            .map_err(err)?;
        }
    }
    tx.commit().map_err(err)
}

/// Reads the saved state of `key`.
pub fn read_state(store: &Store, key: &str) -> Result<State, StoreError> {
    type Row = (Option<String>, Option<String>, String, Option<String>);
    let row: Option<Row> = store
        .conn()
        .query_row(
            "SELECT strategy, cursor, cursor_ids, unsupported FROM sync_state WHERE entity = ?1",
            [key],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()
        .map_err(|e| StoreError::sqlite(format!("reading the sync state of {key}"), e))?;
    Ok(match row {
        None => State::default(),
        Some((strategy, cursor, ids, unsupported)) => State {
            unsupported,
            ..crate::mirror::cursor::state(key, strategy.as_deref(), cursor, &ids)
        },
    })
}

/// Records the strategy an entity is synced with (`search` or `full`).
pub fn set_strategy(store: &mut Store, key: &str, strategy: Strategy) -> Result<(), StoreError> {
    store
        .conn()
        .execute(
            "INSERT INTO sync_state (entity, strategy) VALUES (?1, ?2) \
             ON CONFLICT (entity) DO UPDATE SET strategy = excluded.strategy",
            params![key, strategy.saved_name()],
        )
        .map_err(|e| StoreError::sqlite(format!("saving the strategy of {key}"), e))?;
    Ok(())
}

/// Live (not deleted) ids and creation times of a table, oldest first; kobjects filtered by klass.
pub fn live_ids_by_created(
    store: &Store,
    table: &'static str,
    klass: Option<&str>,
) -> Result<Vec<(String, Option<String>)>, StoreError> {
    let sql = format!(
        "SELECT id, created_at FROM {table} WHERE deleted_at IS NULL AND {} ORDER BY created_at, id",
        if klass.is_some() {
            "klass = ?1"
        } else {
            "?1 IS NULL"
        }
    );
    let err = |e| StoreError::sqlite(format!("listing live {table} ids"), e);
    let mut stmt = store.conn().prepare(&sql).map_err(err)?;
    let rows = stmt
        .query_map([klass], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(err)?;
    Ok(rows)
}

/// Adds each batch of pushed events to its entity's `webhook_events` row, in one transaction.
pub fn record_events(store: &mut Store, batches: &[EventsApplied]) -> Result<(), StoreError> {
    let err = |e| StoreError::sqlite("recording the webhook events applied".to_string(), e);
    let now = now_iso();
    let tx = store.conn_mut().transaction().map_err(err)?;
    for b in batches {
        tx.execute(
            "INSERT INTO webhook_events (entity, event, event_id, record_id, received_at, applied_at, \
             events, changed, stale, rejected) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT (entity) DO UPDATE SET event = excluded.event, event_id = excluded.event_id, \
             record_id = excluded.record_id, received_at = excluded.received_at, \
             applied_at = excluded.applied_at, events = events + excluded.events, \
             changed = changed + excluded.changed, stale = stale + excluded.stale, \
             rejected = rejected + excluded.rejected",
            params![
                b.table,
                b.event,
                b.event_id,
                b.record_id,
                b.received_at,
                now,
                b.events as i64,
                b.changed as i64,
                b.stale as i64,
                b.rejected as i64
            ],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)
}
