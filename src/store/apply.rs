//! Writing what a sync read: a page of records (or several queued pages) applied in one
//! transaction — upserts by id with a content hash, a `change_log` row only for a real change,
//! quarantined items in `rejected_records`, the run's counters and the entity's cursor — plus
//! tombstoning rows that upstream no longer has.

use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::json;

use super::{Store, StoreError, now_iso};
use crate::record::diff::Diff;
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
    let Store {
        conn, views, bulk, ..
    } = store;
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
        out.push(apply_in(
            &tx,
            &mut working,
            bulk.is_loading(page.table),
            page,
        )?);
    }
    let more = out.len().saturating_sub(1);
    tx.commit()
        .map_err(|e| StoreError::sqlite(format!("committing ({first} page and {more} more)"), e))?;
    *views = working;
    store.committed();
    Ok(out)
}

/// One page's writes inside the batch's transaction.
fn apply_in(
    tx: &Transaction<'_>,
    views: &mut super::views::Known,
    insert_first: bool,
    page: &PageWrite,
) -> Result<Applied, StoreError> {
    let ctx = |what: &str| format!("{what} ({} page of run {})", page.state_key, page.run_id);
    let (mut applied, custom_removed, refused) = apply_records(tx, page, insert_first)
        .map_err(|e| StoreError::sqlite(ctx("storing records"), e))?;
    applied.rejected = quarantine(tx, page, page.rejected.iter().chain(&refused))
        .map_err(|e| StoreError::sqlite(ctx("setting aside rejected records"), e))?;
    let view = super::views::plan_page(
        tx,
        views,
        page.table,
        page.klass.as_deref(),
        &page.records,
        custom_removed,
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

/// Inserts `record` unless a row with its id exists; answers the rows inserted (0 or 1).
fn insert_record(
    insert: &mut rusqlite::CachedStatement<'_>,
    page: &PageWrite,
    record: &Record,
    deleted_at: Option<&str>,
    now: &str,
) -> rusqlite::Result<usize> {
    if page.klass.is_some() {
        insert.execute(params![
            record.id,
            record.data,
            deleted_at,
            now,
            record.hash,
            page.klass.as_deref().unwrap_or("")
        ])
    } else {
        insert.execute(params![
            record.id,
            record.data,
            deleted_at,
            now,
            record.hash
        ])
    }
}

/// The statements one page's records go through.
struct Statements<'t> {
    select: rusqlite::CachedStatement<'t>,
    insert: rusqlite::CachedStatement<'t>,
    update: rusqlite::CachedStatement<'t>,
    log: rusqlite::CachedStatement<'t>,
    /// Set when the entity has quarantined items: a stored record clears its own.
    unquarantine: Option<rusqlite::CachedStatement<'t>>,
}

/// What storing one record did.
enum Stored {
    Inserted,
    Updated,
    Deleted,
    Unchanged,
}

/// Applies the page's records; also answers whether an update removed (or nulled) a custom
/// attribute, which may take a name out of the custom view, and the records the database refused
/// (each one's statement rolled back on its own, so the rest of the page stands).
fn apply_records(
    tx: &Transaction<'_>,
    page: &PageWrite,
    insert_first: bool,
) -> rusqlite::Result<(Applied, bool, Vec<Rejected>)> {
    let table = page.table;
    let now = now_iso();
    let mut applied = Applied::default();
    let mut custom_removed = false;
    let mut refused = Vec::new();
    let quarantined: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM rejected_records WHERE entity = ?1)")?
        .query_row([&page.state_key], |row| row.get(0))?;
    let mut st = Statements {
        select: tx.prepare_cached(&format!(
            "SELECT hash, deleted_at, data FROM {table} WHERE id = ?1"
        ))?,
        // Per-klass tables (kobjects) record each row's klass.
        insert: if page.klass.is_some() {
            tx.prepare_cached(&format!(
                "INSERT INTO {table} (id, data, deleted_at, first_synced_at, last_changed_at, hash, klass) \
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING"
            ))?
        } else {
            tx.prepare_cached(&format!(
                "INSERT INTO {table} (id, data, deleted_at, first_synced_at, last_changed_at, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT (id) DO NOTHING"
            ))?
        },
        update: tx.prepare_cached(&format!(
            "UPDATE {table} SET data = ?2, deleted_at = ?3, last_changed_at = ?4, hash = ?5 WHERE id = ?1"
        ))?,
        log: tx.prepare_cached(
            "INSERT INTO change_log (run_id, entity, record_id, op, source_updated_at, synced_at, changes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?,
        unquarantine: if quarantined {
            Some(tx.prepare_cached(
                "DELETE FROM rejected_records WHERE entity = ?1 AND record_key = ?2",
            )?)
        } else {
            None
        },
    };
    for record in &page.records {
        match apply_one(
            &mut st,
            page,
            record,
            insert_first,
            &now,
            &mut custom_removed,
        ) {
            Ok(stored) => {
                match stored {
                    Stored::Inserted => applied.inserted += 1,
                    Stored::Updated => applied.updated += 1,
                    Stored::Deleted => applied.deleted += 1,
                    Stored::Unchanged => applied.unchanged += 1,
                }
                if let Some(clear) = &mut st.unquarantine {
                    clear.execute(params![page.state_key, record.id])?;
                }
            }
            Err(e) if refused_record(&e) => {
                tracing::warn!(
                    entity = %page.state_key, id = %record.id, error = %e,
                    "the database refused a record; it is set aside in rejected_records"
                );
                refused.push(Rejected {
                    id: Some(record.id.clone()),
                    updated_at: record.updated_at.clone(),
                    reason: format!("the database refused it: {e}"),
                    raw: record.data.clone(),
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok((applied, custom_removed, refused))
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

/// Stores one record: inserts it, updates it with a change-log diff, or leaves it alone when its
/// hash and tombstone state are unchanged.
fn apply_one(
    st: &mut Statements<'_>,
    page: &PageWrite,
    record: &Record,
    insert_first: bool,
    now: &str,
    custom_removed: &mut bool,
) -> rusqlite::Result<Stored> {
    let deleted_at = record.deleted.then(|| {
        record
            .deleted_at
            .clone()
            .or_else(|| record.updated_at.clone())
            .unwrap_or_else(|| now.to_string())
    });
    // In a first sync nearly every record is new: try the insert, and look the row up only when it
    // conflicts. Otherwise look first, so an unchanged row costs one lookup and no write.
    let fresh = insert_first
        && insert_record(&mut st.insert, page, record, deleted_at.as_deref(), now)? == 1;
    let existing: Option<(String, Option<String>, String)> = if fresh {
        None
    } else {
        st.select
            .query_row([&record.id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?
    };
    let (stored, op, changes) = match existing {
        None => {
            if !fresh {
                insert_record(&mut st.insert, page, record, deleted_at.as_deref(), now)?;
            }
            (Stored::Inserted, "insert", None)
        }
        Some((hash, old_deleted_at, _))
            if hash == record.hash && old_deleted_at.is_some() == deleted_at.is_some() =>
        {
            return Ok(Stored::Unchanged);
        }
        Some((_, old_deleted_at, old_data)) => {
            st.update.execute(params![
                record.id,
                record.data,
                deleted_at,
                now,
                record.hash
            ])?;
            let mut diff = match Diff::between(&old_data, &record.data) {
                Ok(diff) => diff,
                Err(bad) => {
                    // Only a hand-edited or damaged row gets here: the new version replaces it
                    // whole, and the log says so.
                    tracing::warn!(
                        entity = page.table, id = %record.id, error = %bad,
                        "the stored version of this record is not valid JSON; logging the new version whole"
                    );
                    Diff::from_nothing(&record.data).unwrap_or_default()
                }
            };
            *custom_removed |= diff.may_remove_custom();
            if old_deleted_at != deleted_at {
                diff.insert(
                    "deleted_at",
                    json!(old_deleted_at).to_string(),
                    json!(deleted_at).to_string(),
                );
            }
            if old_deleted_at.is_none() && deleted_at.is_some() {
                (Stored::Deleted, "delete", Some(diff.to_json()))
            } else {
                (Stored::Updated, "update", Some(diff.to_json()))
            }
        }
    };
    st.log.execute(params![
        page.run_id,
        page.table,
        record.id,
        op,
        record.updated_at,
        now,
        changes
    ])?;
    Ok(stored)
}

/// Sets `items` aside in `rejected_records` (a second sighting updates the row and counts it);
/// answers how many.
fn quarantine<'a>(
    tx: &Transaction<'_>,
    page: &PageWrite,
    items: impl Iterator<Item = &'a Rejected>,
) -> rusqlite::Result<u64> {
    let now = now_iso();
    let mut n = 0;
    for item in items {
        let key = match &item.id {
            Some(id) => id.clone(),
            None => format!(
                "raw:{:032x}",
                xxhash_rust::xxh3::xxh3_128(item.raw.as_bytes())
            ),
        };
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
            key,
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

/// Moves the cursor forward (never back): a later timestamp replaces it, the same timestamp adds ids.
fn advance_cursor(tx: &Transaction<'_>, key: &str, cursor: &Cursor) -> rusqlite::Result<()> {
    let current: Option<(Option<String>, String)> = tx
        .query_row(
            "SELECT cursor, cursor_ids FROM sync_state WHERE entity = ?1",
            [key],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let (at, ids) = cursor.merged(key, current.and_then(|(at, ids)| Some((at?, ids))));
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
         VALUES (?1, ?2, ?3, 'delete', ?4, ?5, ?6)",
    )?;
    let changes = json!({"deleted_at": {"old": null, "new": now}}).to_string();
    let mut n = 0;
    for id in ids {
        let updated_at: Option<Option<String>> = mark
            .query_row(params![id, now], |row| row.get(0))
            .optional()?;
        if let Some(updated_at) = updated_at {
            log.execute(params![run_id, table, id, updated_at, now, changes])?;
            n += 1;
        }
    }
    if n > 0 {
        tx.prepare_cached("UPDATE sync_runs SET deleted = deleted + ?2 WHERE id = ?1")?
            .execute(params![run_id, n as i64])?;
    }
    Ok(n)
}
