//! Writing what a sync read: one page of records applied in one transaction — upserts by id with a
//! content hash, a `change_log` row only for a real change, the run's counters and the entity's cursor
//! — plus tombstoning rows that upstream no longer has.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::{Map, Value, json};

use super::{Store, StoreError, now_iso};
use crate::kustomer::Record;

/// Where an incremental read has got to: the newest `updatedAt` stored and the ids stored at exactly
/// that timestamp (so a resume with no overlap skips them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cursor {
    /// ISO-8601 UTC `updatedAt`.
    pub at: String,
    /// Ids already stored whose `updatedAt` equals `at`.
    pub ids: Vec<String>,
}

/// One page to apply.
#[derive(Debug, Clone)]
pub struct PageWrite {
    /// Entity table, e.g. `customers`.
    pub table: &'static str,
    /// `sync_state` key: the table name, or `kobjects:<klass>`.
    pub state_key: String,
    /// The klass name, for kobjects.
    pub klass: Option<String>,
    /// The run these changes belong to.
    pub run_id: i64,
    /// Records to upsert (already filtered of ones seen earlier in this run).
    pub records: Vec<Record>,
    /// HTTP requests spent on this page, for the run's counters.
    pub requests: u64,
    /// Records fetched on this page, including skipped ones.
    pub fetched: u64,
    /// The cursor after this page, when the read is incremental; never moves backwards.
    pub cursor: Option<Cursor>,
}

/// What applying writes changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// New rows.
    pub inserted: u64,
    /// Rows whose content changed (deletes not included).
    pub updated: u64,
    /// Rows seen with identical content: nothing written.
    pub unchanged: u64,
    /// Rows that became tombstones.
    pub deleted: u64,
}

impl Applied {
    /// Adds another page's outcome.
    pub fn add(&mut self, other: Applied) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.deleted += other.deleted;
    }

    /// Rows written (inserted, updated or deleted).
    pub fn changed(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }
}

/// Applies one page in one transaction: rows, change log, counters and cursor commit together or not
/// at all.
pub fn apply_page(store: &mut Store, page: &PageWrite) -> Result<Applied, StoreError> {
    let ctx = |what: &str| format!("{what} ({} page of run {})", page.state_key, page.run_id);
    let insert_first = store.bulk.is_loading(page.table);
    let Store { conn, views, .. } = store;
    let tx = conn
        .transaction()
        .map_err(|e| StoreError::sqlite(ctx("starting the transaction"), e))?;
    let (applied, custom_removed) = apply_records(&tx, page, insert_first)
        .map_err(|e| StoreError::sqlite(ctx("storing records"), e))?;
    let view = crate::views::plan_page(
        &tx,
        views,
        page.table,
        page.klass.as_deref(),
        &page.records,
        custom_removed,
    )
    .map_err(|e| StoreError::sqlite(ctx("adding custom attributes to their view"), e))?;
    add_counters(&tx, page.run_id, page.requests, page.fetched, applied)
        .map_err(|e| StoreError::sqlite(ctx("updating run counters"), e))?;
    if let Some(cursor) = &page.cursor {
        advance_cursor(&tx, &page.state_key, cursor)
            .map_err(|e| StoreError::sqlite(ctx("saving the cursor"), e))?;
    }
    tx.commit()
        .map_err(|e| StoreError::sqlite(ctx("committing"), e))?;
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
    if page.table == "kobjects" {
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

/// Applies the page's records; also answers whether an update removed (or nulled) a custom
/// attribute, which may take a name out of the custom view.
fn apply_records(
    tx: &Transaction<'_>,
    page: &PageWrite,
    insert_first: bool,
) -> rusqlite::Result<(Applied, bool)> {
    let table = page.table;
    let now = now_iso();
    let mut applied = Applied::default();
    let mut custom_removed = false;
    let mut select = tx.prepare_cached(&format!(
        "SELECT hash, deleted_at, data FROM {table} WHERE id = ?1"
    ))?;
    let mut insert = if table == "kobjects" {
        tx.prepare_cached(
            "INSERT INTO kobjects (id, data, deleted_at, first_synced_at, last_changed_at, hash, klass) \
             VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
        )?
    } else {
        tx.prepare_cached(&format!(
            "INSERT INTO {table} (id, data, deleted_at, first_synced_at, last_changed_at, hash) \
             VALUES (?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT (id) DO NOTHING"
        ))?
    };
    let mut update = tx.prepare_cached(&format!(
        "UPDATE {table} SET data = ?2, deleted_at = ?3, last_changed_at = ?4, hash = ?5 WHERE id = ?1"
    ))?;
    let mut log = tx.prepare_cached(
        "INSERT INTO change_log (run_id, entity, record_id, op, source_updated_at, synced_at, changes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for record in &page.records {
        let deleted_at = record.deleted.then(|| {
            record
                .deleted_at
                .clone()
                .or_else(|| record.updated_at.clone())
                .unwrap_or_else(|| now.clone())
        });
        // In a first sync nearly every record is new: try the insert, and look the row up only when
        // it conflicts. Otherwise look first, so an unchanged row costs one lookup and no write.
        let fresh = insert_first
            && insert_record(&mut insert, page, record, deleted_at.as_deref(), &now)? == 1;
        let existing: Option<(String, Option<String>, String)> = if fresh {
            None
        } else {
            select
                .query_row([&record.id], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?
        };
        let (op, changes) = match existing {
            None => {
                if !fresh {
                    insert_record(&mut insert, page, record, deleted_at.as_deref(), &now)?;
                }
                applied.inserted += 1;
                ("insert", None)
            }
            Some((hash, old_deleted_at, _))
                if hash == record.hash && old_deleted_at.is_some() == deleted_at.is_some() =>
            {
                applied.unchanged += 1;
                continue;
            }
            Some((_, old_deleted_at, old_data)) => {
                update.execute(params![
                    record.id,
                    record.data,
                    deleted_at,
                    now,
                    record.hash
                ])?;
                let old: Value = serde_json::from_str(&old_data).unwrap_or(Value::Null);
                let mut diff = Map::new();
                diff_values("", &old, &record.value(), &mut diff);
                // A name can leave the custom view when its key went (a diff cannot tell a removed
                // key from one set to null, so both count) or the whole object was replaced.
                custom_removed |= diff.iter().any(|(path, change)| {
                    match path.strip_prefix("attributes.custom") {
                        Some("") => true,
                        Some(name) => name.starts_with('.') && change["new"].is_null(),
                        None => path == "attributes" || path.is_empty(),
                    }
                });
                if old_deleted_at != deleted_at {
                    diff.insert(
                        "deleted_at".to_string(),
                        json!({"old": old_deleted_at, "new": deleted_at}),
                    );
                }
                let op = if old_deleted_at.is_none() && deleted_at.is_some() {
                    applied.deleted += 1;
                    "delete"
                } else {
                    applied.updated += 1;
                    "update"
                };
                (op, Some(Value::Object(diff).to_string()))
            }
        };
        log.execute(params![
            page.run_id,
            page.table,
            record.id,
            op,
            record.updated_at,
            now,
            changes
        ])?;
    }
    Ok((applied, custom_removed))
}

/// Collects `path → {old, new}` for every leaf that differs. Objects are walked; arrays and scalars
/// are compared whole (a changed tag list is one entry). Paths are dotted from the resource root,
/// e.g. `attributes.status`, `attributes.custom.tierStr`.
pub fn diff_values(path: &str, old: &Value, new: &Value, out: &mut Map<String, Value>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeMap<&String, ()> = a.keys().chain(b.keys()).map(|k| (k, ())).collect();
            for key in keys.keys() {
                let child = if path.is_empty() {
                    (*key).clone()
                } else {
                    format!("{path}.{key}")
                };
                diff_values(
                    &child,
                    a.get(*key).unwrap_or(&Value::Null),
                    b.get(*key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ => {
            out.insert(path.to_string(), json!({"old": old, "new": new}));
        }
    }
}

fn add_counters(
    tx: &Transaction<'_>,
    run_id: i64,
    requests: u64,
    fetched: u64,
    a: Applied,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE sync_runs SET requests = requests + ?2, fetched = fetched + ?3, inserted = inserted + ?4, \
         updated = updated + ?5, unchanged = unchanged + ?6, deleted = deleted + ?7 WHERE id = ?1",
    )?
    .execute(params![
        run_id,
        requests as i64,
        fetched as i64,
        a.inserted as i64,
        a.updated as i64,
        a.unchanged as i64,
        a.deleted as i64
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
    let (at, ids) = match current {
        Some((Some(old), old_ids)) if old.as_str() > cursor.at.as_str() => (old, old_ids),
        Some((Some(old), old_ids)) if old == cursor.at => {
            let mut ids: Vec<String> = serde_json::from_str(&old_ids).unwrap_or_default();
            for id in &cursor.ids {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
            (old, Value::from(ids).to_string())
        }
        _ => (
            cursor.at.clone(),
            Value::from(cursor.ids.clone()).to_string(),
        ),
    };
    tx.execute(
        "INSERT INTO sync_state (entity, cursor, cursor_ids) VALUES (?1, ?2, ?3) \
         ON CONFLICT (entity) DO UPDATE SET cursor = excluded.cursor, cursor_ids = excluded.cursor_ids",
        params![key, at, ids],
    )?;
    Ok(())
}

/// Tombstones rows of `table` (of one klass, for kobjects) that are live locally but absent from
/// `seen` — called only after a complete, successful full read. One transaction.
pub fn tombstone_unseen(
    store: &mut Store,
    table: &'static str,
    klass: Option<&str>,
    run_id: i64,
    seen: &[String],
) -> Result<u64, StoreError> {
    let ctx = |what: &str| format!("{what} ({table} tombstones of run {run_id})");
    let tx = store
        .conn_mut()
        .transaction()
        .map_err(|e| StoreError::sqlite(ctx("starting the transaction"), e))?;
    let missing = (|| -> rusqlite::Result<Vec<String>> {
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS seen_ids (id TEXT PRIMARY KEY); DELETE FROM temp.seen_ids;",
        )?;
        {
            let mut ins = tx.prepare_cached("INSERT OR IGNORE INTO temp.seen_ids (id) VALUES (?1)")?;
            for id in seen {
                ins.execute([id])?;
            }
        }
        let sql = format!(
            "SELECT id FROM {table} WHERE deleted_at IS NULL {} AND id NOT IN (SELECT id FROM temp.seen_ids)",
            if klass.is_some() { "AND klass = ?1" } else { "AND ?1 IS NULL" }
        );
        let mut stmt = tx.prepare(&sql)?;
        let ids = stmt
            .query_map([klass], |row| row.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        tx.execute_batch("DELETE FROM temp.seen_ids;")?;
        Ok(ids)
    })()
    .map_err(|e| StoreError::sqlite(ctx("finding unseen rows"), e))?;
    let n = tombstone_in(&tx, table, run_id, &missing)
        .map_err(|e| StoreError::sqlite(ctx("writing tombstones"), e))?;
    tx.commit()
        .map_err(|e| StoreError::sqlite(ctx("committing"), e))?;
    Ok(n)
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
