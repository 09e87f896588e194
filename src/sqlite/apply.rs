//! Writing what a sync read: a page of records (or several queued pages) applied in one
//! transaction — upserts by id with a content hash, a `change_log` row only for a real change,
//! quarantined items in `rejected_records`, the run's counters and the entity's cursor — plus
//! tombstoning rows that upstream no longer has.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Transaction, params};

use super::{Store, StoreError, now_iso};
use crate::mirror::fresh::Version;
use crate::mirror::plan::{self, Plan, Stored};
use crate::record::{Record, Rejected};
pub use crate::write::{Applied, Cursor, PageWrite};

/// Applies one page in one transaction: rows, change log, counters and cursor commit together or not
/// at all.
pub fn apply_page(store: &mut Store, page: &PageWrite) -> Result<Applied, StoreError> {
    // One page in, one answer out: the first page of a batch is always applied.
    let applied = apply_pages(store, std::slice::from_ref(page), None)?;
    Ok(applied.into_iter().next().unwrap_or_default())
}

/// Applies `pages` in order in one transaction, each page's rows, change log, counters and cursor
/// with it, so a page's cursor never commits without its rows. The first page is always applied;
/// after it, pages are added only until `deadline` passes. Answers what each applied page changed
/// (in order; fewer than `pages` when the deadline cut the batch) and nothing on error: then the
/// whole transaction rolled back and the error names the page it came from.
pub fn apply_pages(
    store: &mut Store,
    pages: &[PageWrite],
    deadline: Option<std::time::Instant>,
) -> Result<Vec<Applied>, StoreError> {
    let first = pages.first().map(|p| p.state_key.as_str()).unwrap_or("");
    let more = pages.len().saturating_sub(1);
    let Store { conn, views, .. } = store;
    // Views planned by earlier pages of the batch must be seen by later ones, but only kept once
    // the transaction commits.
    let mut working = views.clone();
    let tx = conn.transaction().map_err(|e| {
        StoreError::sqlite(
            format!("starting the transaction ({first} page and {more} queued behind it)"),
            e,
        )
    })?;
    let mut out = Vec::with_capacity(pages.len());
    for page in pages {
        if !out.is_empty() && deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
        out.push(apply_in(&tx, &mut working, page)?);
    }
    let more = out.len().saturating_sub(1);
    tx.commit()
        .map_err(|e| StoreError::sqlite(format!("committing ({first} page and {more} more)"), e))?;
    *views = working;
    store.committed();
    Ok(out)
}

/// One page's writes inside the batch's transaction: the stored state of the page's ids read,
/// the core's plan ([`crate::mirror::plan`]) carried out, then quarantine, view, counters, cursor.
fn apply_in(
    tx: &Transaction<'_>,
    views: &mut crate::mirror::views::Known,
    page: &PageWrite,
) -> Result<Applied, StoreError> {
    let ctx = |what: &str| format!("{what} ({} page of run {})", page.state_key, page.run_id);
    let now = now_iso();
    let stored = read_stored(tx, page.table, &page.records, page.only_newer)
        .map_err(|e| StoreError::sqlite(ctx("reading the stored rows"), e))?;
    let triage = plan::triage(&page.records, &stored, page.only_newer);
    let old = read_text(tx, page.table, &triage.changed_ids())
        .map_err(|e| StoreError::sqlite(ctx("reading the stored rows"), e))?;
    let mut plan = triage.plan(&old, &now);
    let refused = write_rows(tx, page, &mut plan, &now)
        .map_err(|e| StoreError::sqlite(ctx("storing records"), e))?;
    let mut applied = plan.applied();
    applied.rejected = quarantine(tx, page, &plan, page.rejected.iter().chain(&refused))
        .map_err(|e| StoreError::sqlite(ctx("setting aside rejected records"), e))?;
    let view = super::views::plan_page(
        tx,
        views,
        page.table,
        page.klass.as_deref(),
        plan.stored.iter().copied(),
        plan.custom_removed,
    )
    .map_err(|e| StoreError::sqlite(ctx("adding custom attributes to their view"), e))?;
    add_counters(tx, page, applied)
        .map_err(|e| StoreError::sqlite(ctx("updating run counters"), e))?;
    if let Some(cursor) = &page.cursor {
        advance_cursor(tx, &page.state_key, cursor)
            .map_err(|e| StoreError::sqlite(ctx("saving the cursor"), e))?;
    }
    if let Some(view) = view {
        views.remember(view);
    }
    Ok(applied)
}

/// The stored hash and tombstone of the page's ids, one indexed lookup each; with `versions`
/// (pushed records), the stored `rev` and `updatedAt` texts too.
fn read_stored(
    tx: &Transaction<'_>,
    table: &str,
    records: &[Record],
    versions: bool,
) -> rusqlite::Result<HashMap<String, Stored>> {
    let mut select = tx.prepare_cached(&if versions {
        format!(
            "SELECT hash, deleted_at, CAST(json_extract(data, '$.attributes.rev') AS TEXT), \
             CAST(json_extract(data, '$.attributes.updatedAt') AS TEXT) FROM {table} WHERE id = ?1"
        )
    } else {
        format!("SELECT hash, deleted_at, NULL, NULL FROM {table} WHERE id = ?1")
    })?;
    let mut stored = HashMap::with_capacity(records.len());
    for record in records {
        let row = select
            .query_row([&record.id], |row| {
                let rev: Option<String> = row.get(2)?;
                let at: Option<String> = row.get(3)?;
                Ok(Stored {
                    hash: row.get(0)?,
                    deleted_at: row.get(1)?,
                    version: versions.then(|| Version::from_parts(rev.as_deref(), at.as_deref())),
                })
            })
            .optional()?;
        if let Some(row) = row {
            stored.insert(record.id.clone(), row);
        }
    }
    Ok(stored)
}

/// The stored text of the rows the plan changes, for the change log's diff.
fn read_text(
    tx: &Transaction<'_>,
    table: &str,
    ids: &[&str],
) -> rusqlite::Result<HashMap<String, String>> {
    let mut old = HashMap::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(old);
    }
    let mut select = tx.prepare_cached(&format!("SELECT data FROM {table} WHERE id = ?1"))?;
    for id in ids {
        if let Some(data) = select
            .query_row([id], |row| row.get::<_, String>(0))
            .optional()?
        {
            old.insert(id.to_string(), data);
        }
    }
    Ok(old)
}

/// Carries out the plan's row writes and change-log entries, each record's in its own statements:
/// a record the database refuses (its statement rolled back on its own) leaves the plan and comes
/// back to be set aside, so the rest of the page stands.
fn write_rows(
    tx: &Transaction<'_>,
    page: &PageWrite,
    plan: &mut Plan<'_>,
    now: &str,
) -> rusqlite::Result<Vec<Rejected>> {
    let table = page.table;
    // Per-klass tables (kobjects) record each row's klass.
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO {table} (id, data, deleted_at, first_synced_at, last_changed_at, hash{}) \
         VALUES (?1, ?2, ?3, ?4, ?4, ?5{})",
        if page.klass.is_some() { ", klass" } else { "" },
        if page.klass.is_some() { ", ?6" } else { "" },
    ))?;
    let mut update = tx.prepare_cached(&format!(
        "UPDATE {table} SET data = ?2, deleted_at = ?3, last_changed_at = ?4, hash = ?5 WHERE id = ?1"
    ))?;
    let mut refused = Vec::new();
    for w in &plan.writes {
        let r = w.record;
        let done = if w.is_insert() {
            match &page.klass {
                Some(k) => insert.execute(params![r.id, r.data, w.deleted_at, now, r.hash, k]),
                None => insert.execute(params![r.id, r.data, w.deleted_at, now, r.hash]),
            }
        } else {
            update.execute(params![r.id, r.data, w.deleted_at, now, r.hash])
        };
        match done {
            Ok(_) => {}
            Err(e) if refused_record(&e) => {
                tracing::warn!(
                    entity = %page.state_key, id = %r.id, error = %e,
                    "the database refused a record; it is set aside in rejected_records"
                );
                refused.push((r.id.clone(), format!("the database refused it: {e}")));
            }
            Err(e) => return Err(e),
        }
    }
    let refused: Vec<Rejected> = refused
        .into_iter()
        .filter_map(|(id, reason)| plan.refuse(&id, reason))
        .collect();
    let mut log = tx.prepare_cached(
        "INSERT INTO change_log (run_id, entity, record_id, op, source_updated_at, synced_at, changes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for w in &plan.writes {
        log.execute(params![
            page.run_id,
            table,
            w.record.id,
            w.op.as_str(),
            w.record.updated_at,
            now,
            w.changes
        ])?;
    }
    Ok(refused)
}

/// True for an error about this one record's content (a constraint, a value SQLite's JSON functions
/// refuse, a row too big), after which SQLite has rolled back only that statement; false for the
/// database's own trouble (I/O, a full disk, a lock), which must fail the page.
fn refused_record(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    match e {
        rusqlite::Error::SqliteFailure(err, _) => {
            matches!(
                err.code,
                ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch
            ) || (err.code == ErrorCode::Unknown && err.extended_code == 1)
        }
        _ => false,
    }
}

/// Clears the quarantined copies of the records the plan stored, and sets `items` aside in
/// `rejected_records` (a second sighting updates the row and counts it); answers how many were set
/// aside.
fn quarantine<'a>(
    tx: &Transaction<'_>,
    page: &PageWrite,
    plan: &Plan<'_>,
    items: impl Iterator<Item = &'a Rejected>,
) -> rusqlite::Result<u64> {
    let quarantined: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM rejected_records WHERE entity = ?1)")?
        .query_row([&page.state_key], |row| row.get(0))?;
    if quarantined {
        let mut clear = tx
            .prepare_cached("DELETE FROM rejected_records WHERE entity = ?1 AND record_key = ?2")?;
        for id in plan.stored_ids() {
            clear.execute(params![page.state_key, id])?;
        }
    }
    let now = now_iso();
    let mut n = 0;
    for item in items {
        tx.prepare_cached(
            "INSERT INTO rejected_records (entity, record_key, record_id, updated_at, reason, raw, page, \
             run_id, first_seen_at, last_seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) \
             ON CONFLICT (entity, record_key) DO UPDATE SET record_id = excluded.record_id, \
             updated_at = excluded.updated_at, reason = excluded.reason, raw = excluded.raw, \
             page = excluded.page, run_id = excluded.run_id, last_seen_at = excluded.last_seen_at, \
             times_seen = times_seen + 1",
        )?
        .execute(params![
            page.state_key,
            plan::quarantine_key(item),
            item.id,
            item.updated_at,
            item.reason,
            item.raw,
            page.source,
            page.run_id,
            now
        ])?;
        n += 1;
    }
    Ok(n)
}

fn add_counters(tx: &Transaction<'_>, page: &PageWrite, a: Applied) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE sync_runs SET requests = requests + ?2, fetched = fetched + ?3, inserted = inserted + ?4, \
         updated = updated + ?5, unchanged = unchanged + ?6, deleted = deleted + ?7, \
         rejected = rejected + ?8, expected = COALESCE(?9, expected) WHERE id = ?1",
    )?
    .execute(params![
        page.run_id,
        page.requests as i64,
        page.fetched as i64,
        a.inserted as i64,
        a.updated as i64,
        a.unchanged as i64,
        a.deleted as i64,
        a.rejected as i64,
        page.expected.map(|e| e as i64)
    ])?;
    Ok(())
}

/// Saves the cursor as [`crate::mirror::cursor::merged`] answers, in the page's transaction.
fn advance_cursor(tx: &Transaction<'_>, key: &str, cursor: &Cursor) -> rusqlite::Result<()> {
    let current: Option<(Option<String>, String)> = tx
        .query_row(
            "SELECT cursor, cursor_ids FROM sync_state WHERE entity = ?1",
            [key],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let (at, ids) =
        crate::mirror::cursor::merged(cursor, key, current.and_then(|(at, ids)| Some((at?, ids))));
    tx.execute(
        "INSERT INTO sync_state (entity, cursor, cursor_ids) VALUES (?1, ?2, ?3) \
         ON CONFLICT (entity) DO UPDATE SET cursor = excluded.cursor, cursor_ids = excluded.cursor_ids",
        params![key, at, ids],
    )?;
    Ok(())
}

/// Tombstones the given ids (hard deletes confirmed by a 404). One transaction.
pub fn tombstone_ids(
    store: &mut Store,
    table: &'static str,
    run_id: i64,
    ids: &[String],
) -> Result<u64, StoreError> {
    let ctx = |what: &str| format!("{what} ({table} tombstones of run {run_id})");
    let tx = store
        .conn_mut()
        .transaction()
        .map_err(|e| StoreError::sqlite(ctx("starting the transaction"), e))?;
    let n = tombstone_in(&tx, table, run_id, ids)
        .map_err(|e| StoreError::sqlite(ctx("writing tombstones"), e))?;
    tx.commit()
        .map_err(|e| StoreError::sqlite(ctx("committing"), e))?;
    Ok(n)
}

fn tombstone_in(
    tx: &Transaction<'_>,
    table: &'static str,
    run_id: i64,
    ids: &[String],
) -> rusqlite::Result<u64> {
    let now = now_iso();
    let mut mark = tx.prepare_cached(&format!(
        "UPDATE {table} SET deleted_at = ?2, last_changed_at = ?2 WHERE id = ?1 AND deleted_at IS NULL \
         RETURNING updated_at"
    ))?;
    let mut log = tx.prepare_cached(
        "INSERT INTO change_log (run_id, entity, record_id, op, source_updated_at, synced_at, changes) \
         VALUES (?1, ?2, ?3, ?7, ?4, ?5, ?6)",
    )?;
    let changes = plan::tombstone_changes(&now);
    let mut n = 0;
    for id in ids {
        let updated_at: Option<Option<String>> = mark
            .query_row(params![id, now], |row| row.get(0))
            .optional()?;
        if let Some(updated_at) = updated_at {
            log.execute(params![
                run_id,
                table,
                id,
                updated_at,
                now,
                changes,
                plan::Op::Delete.as_str()
            ])?;
            n += 1;
        }
    }
    if n > 0 {
        tx.prepare_cached("UPDATE sync_runs SET deleted = deleted + ?2 WHERE id = ?1")?
            .execute(params![run_id, n as i64])?;
    }
    Ok(n)
}
