//! Writing what a sync read into PostgreSQL, as the core decides (`mirror::plan`, `mirror::cursor`):
//! a page's rows, change log, quarantined items, run counters and cursor in one transaction
//! (several pages in one when the writer has a backlog). Set-based: one lookup of the page's ids,
//! new rows and their change-log rows by binary `COPY`, changed rows by one
//! `UPDATE … FROM unnest(…)`. A record whose value the server refuses makes the page run again
//! record by record under savepoints, so only that record is set aside in `rejected_records`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, Transaction};

use super::Session;
use super::error::refused_record;
use super::jsonb::{self, Jsonb};
use crate::mirror::fresh::Version;
use crate::mirror::plan::{self, Stored, Write};
use crate::record::{Record, Rejected};
use crate::write::{Applied, PageWrite};

/// A transaction of [`apply_pages`] whose `COMMIT` was sent: its server transaction id, and what it
/// answers should it turn out to have committed.
#[derive(Debug)]
pub struct Committing {
    xid: i64,
    applied: Vec<Applied>,
}

/// Applies `pages` in order in one transaction, each page's rows, change log, counters and cursor
/// with it (see `sqlite::apply::apply_pages`). The first page is always applied; after it, pages are
/// added only until `deadline` passes. Each page runs in a savepoint, so a record the server refuses
/// makes only its own page run again record by record. Answers what each applied page changed.
///
/// `committing` is set just before `COMMIT` and cleared once the server confirms it: when the
/// connection is lost in between, the caller asks [`committed`] before running the pages again,
/// since a rerun of a committed transaction would store nothing but count its pages again (as
/// unchanged records, and a second time in the run's counters).
pub fn apply_pages(
    c: &mut Client,
    session: &mut Session,
    pages: &[PageWrite],
    deadline: Option<std::time::Instant>,
    committing: &mut Option<Committing>,
) -> Result<Vec<Applied>, postgres::Error> {
    // Views planned by earlier pages of the batch must be seen by later ones, but only kept once
    // the transaction commits.
    let mut working = session.views.clone();
    let mut tx = c.transaction()?;
    let mut out = Vec::with_capacity(pages.len());
    for page in pages {
        if !out.is_empty() && deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
        let now = Utc::now();
        let mut sp = tx.transaction()?;
        let applied = match write_page(&mut sp, &mut working, page, now, false) {
            Ok(applied) => {
                sp.commit()?;
                applied
            }
            Err(e) if refused_record(&e) => {
                sp.rollback()?;
                tracing::warn!(
                    entity = %page.state_key, error = %super::error::explain(&e),
                    "PostgreSQL refused a record of this page; storing the page record by record"
                );
                let mut sp = tx.transaction()?;
                let applied = write_page(&mut sp, &mut working, page, now, true)?;
                sp.commit()?;
                applied
            }
            Err(e) => return Err(e),
        };
        out.push(applied);
    }
    // txid_current (PostgreSQL 10+; pg_current_xact_id needs 13, and 12 is supported) gives the
    // transaction an id that txid_status can look up from another session.
    let xid: i64 = tx.query_one("SELECT txid_current()", &[])?.get(0);
    *committing = Some(Committing {
        xid,
        applied: out.clone(),
    });
    tx.commit()?;
    *committing = None;
    session.views = working;
    Ok(out)
}

/// What a transaction of [`apply_pages`] whose `COMMIT` got no answer answers, when it did commit:
/// asked on the new connection before the pages run again. `None` when it did not commit (or its
/// fate cannot be known), and the pages must run again.
pub fn committed(
    c: &mut Client,
    committing: &Committing,
) -> Result<Option<Vec<Applied>>, postgres::Error> {
    // The old session's backend may still be finishing the COMMIT: wait for it a little.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status: Option<String> = c
            .query_one("SELECT txid_status($1)", &[&committing.xid])?
            .get(0);
        match status.as_deref() {
            Some("committed") => {
                tracing::info!(
                    xid = committing.xid,
                    "the batch whose COMMIT went unanswered had committed; not storing it again"
                );
                return Ok(Some(committing.applied.clone()));
            }
            Some("in progress") if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            // Still in progress after the wait: running the pages again waits on its row locks,
            // and should it commit after all, they are counted twice (as before this check).
            Some("in progress") => {
                tracing::warn!(
                    xid = committing.xid,
                    "the batch whose COMMIT went unanswered is still committing after 10 s; \
                     storing it again (its pages may be counted twice in the run's counters)"
                );
                return Ok(None);
            }
            // "aborted", or too old to tell (NULL): run them again.
            other => {
                tracing::info!(
                    xid = committing.xid,
                    status = other.unwrap_or("unknown"),
                    "the batch whose COMMIT went unanswered did not commit; storing it again"
                );
                return Ok(None);
            }
        }
    }
}

/// One page's writes inside its savepoint.
fn write_page(
    tx: &mut Transaction<'_>,
    views: &mut crate::mirror::views::Known,
    page: &PageWrite,
    now: DateTime<Utc>,
    one_by_one: bool,
) -> Result<Applied, postgres::Error> {
    let (mut applied, removed, refused) = if one_by_one {
        records_one_by_one(tx, page, now)?
    } else {
        let (applied, removed) = write_records(tx, page, &page.records, now)?;
        (applied, removed, Vec::new())
    };
    applied.rejected = quarantine(tx, page, page.rejected.iter().chain(&refused))?;
    let stored = page.records.iter().filter(|r| {
        !refused
            .iter()
            .any(|x| x.id.as_deref() == Some(r.id.as_str()))
    });
    let view = super::views::plan_page(
        tx,
        views,
        page.table,
        page.klass.as_deref(),
        stored,
        removed,
    )?;
    tx.execute(
        "UPDATE sync_runs SET requests = requests + $2, fetched = fetched + $3, inserted = inserted + $4, \
         updated = updated + $5, unchanged = unchanged + $6, deleted = deleted + $7, \
         rejected = rejected + $8, expected = COALESCE($9, expected) WHERE id = $1",
        &[
            &page.run_id,
            &(page.requests as i64),
            &(page.fetched as i64),
            &(applied.inserted as i64),
            &(applied.updated as i64),
            &(applied.unchanged as i64),
            &(applied.deleted as i64),
            &(applied.rejected as i64),
            &page.expected.map(|e| e as i64),
        ],
    )?;
    if let Some(cursor) = &page.cursor {
        super::runs::advance_cursor(tx, &page.state_key, cursor)?;
    }
    if let Some(view) = view {
        views.remember(view);
    }
    Ok(applied)
}

/// Each record in its own savepoint: the ones the server refuses come back as rejected items.
fn records_one_by_one(
    tx: &mut Transaction<'_>,
    page: &PageWrite,
    now: DateTime<Utc>,
) -> Result<(Applied, bool, Vec<Rejected>), postgres::Error> {
    let mut applied = Applied::default();
    let mut removed = false;
    let mut refused = Vec::new();
    for record in &page.records {
        let mut sp = tx.transaction()?;
        match write_records(&mut sp, page, std::slice::from_ref(record), now) {
            Ok((a, r)) => {
                sp.commit()?;
                applied.add(a);
                removed |= r;
            }
            Err(e) if refused_record(&e) => {
                sp.rollback()?;
                let reason = format!("PostgreSQL refused it: {}", super::error::explain(&e));
                tracing::warn!(
                    entity = %page.state_key, id = %record.id, error = %reason,
                    "the database refused a record; it is set aside in rejected_records"
                );
                refused.push(Rejected {
                    id: Some(record.id.clone()),
                    updated_at: record.updated_at.clone(),
                    reason,
                    raw: record.data.clone(),
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok((applied, removed, refused))
}

/// ISO-8601 UTC text of a time, the normal form `mirror::plan` writes times in.
fn iso(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A normal-form time of the plan as the server's `timestamptz` (the plan only writes normal
/// RFC 3339 text, so the fallback to `now` is never taken).
fn at(text: &str, now: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now)
}

/// Stores `records` as [`crate::mirror::plan`] decides: the stored state of their ids read in one
/// statement (and the stored text of the changed ones in a second), new rows and the change log by
/// binary `COPY`, changed rows by one `UPDATE`, quarantined copies of the stored records cleared.
/// Answers the counts and whether an update may have taken a name out of the custom view.
fn write_records(
    tx: &mut impl GenericClient,
    page: &PageWrite,
    records: &[Record],
    now: DateTime<Utc>,
) -> Result<(Applied, bool), postgres::Error> {
    let table = page.table;
    if records.is_empty() {
        return Ok((Applied::default(), false));
    }
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    // Pushed records need the stored `rev` and `updatedAt` too (as text; the core reads them).
    let versions = if page.only_newer {
        "data #>> '{attributes,rev}', data #>> '{attributes,updatedAt}'"
    } else {
        "NULL::text, NULL::text"
    };
    let stored: HashMap<String, Stored> = tx
        .query(
            &format!(
                "SELECT id, hash, {}, {versions} FROM {table} WHERE id = ANY($1)",
                super::iso("deleted_at")
            ),
            &[&ids],
        )?
        .into_iter()
        .map(|row| {
            (
                row.get(0),
                Stored {
                    hash: row.get(1),
                    deleted_at: row.get(2),
                    version: page.only_newer.then(|| {
                        Version::from_parts(
                            row.get::<_, Option<&str>>(3),
                            row.get::<_, Option<&str>>(4),
                        )
                    }),
                },
            )
        })
        .collect();
    let triage = plan::triage(records, &stored, page.only_newer);
    let changed = triage.changed_ids();
    let old: HashMap<String, String> = if changed.is_empty() {
        HashMap::new()
    } else {
        tx.query(
            &format!("SELECT id, COALESCE(data_exact, data::text) FROM {table} WHERE id = ANY($1)"),
            &[&changed],
        )?
        .into_iter()
        .map(|row| {
            let text: String = row.get(1);
            // jsonb's text has spaces and its own key order: the diff compares canonical texts.
            let text = Record::from_text(text.as_bytes())
                .map(|r| r.data)
                .unwrap_or(text);
            (row.get(0), text)
        })
        .collect()
    };
    let plan = triage.plan(&old, &iso(&now));
    let fresh: Vec<&Write<'_>> = plan.writes.iter().filter(|w| w.is_insert()).collect();
    if !fresh.is_empty() {
        copy_rows(tx, page, &fresh, now)?;
    }
    let changed: Vec<&Write<'_>> = plan.writes.iter().filter(|w| !w.is_insert()).collect();
    if !changed.is_empty() {
        update_rows(tx, table, &changed, now)?;
    }
    let log: Vec<LogRow<'_>> = plan
        .writes
        .iter()
        .map(|w| LogRow {
            id: &w.record.id,
            op: w.op.as_str(),
            source_updated_at: w.record.updated_at.as_deref(),
            changes: w.changes.clone(),
        })
        .collect();
    copy_log(tx, page.run_id, table, &log, now)?;
    // A record stored in good form clears its own quarantined copy.
    tx.execute(
        "DELETE FROM rejected_records WHERE entity = $1 AND record_key = ANY($2)",
        &[&page.state_key, &plan.stored_ids()],
    )?;
    Ok((plan.applied(), plan.custom_removed))
}

/// One change-log row.
struct LogRow<'a> {
    id: &'a str,
    op: &'static str,
    source_updated_at: Option<&'a str>,
    changes: Option<String>,
}

/// Inserts rows that do not exist yet, by binary COPY (generated columns are computed by the server).
fn copy_rows(
    tx: &mut impl GenericClient,
    page: &PageWrite,
    writes: &[&Write<'_>],
    now: DateTime<Utc>,
) -> Result<(), postgres::Error> {
    let klass = page.klass.as_deref();
    let (sql, types): (String, Vec<Type>) = match klass {
        Some(_) => (
            format!(
                "COPY {} (id, klass, data, data_exact, deleted_at, first_synced_at, last_changed_at, hash) FROM STDIN (FORMAT binary)",
                page.table
            ),
            vec![
                Type::TEXT,
                Type::TEXT,
                Type::JSONB,
                Type::TEXT,
                Type::TIMESTAMPTZ,
                Type::TIMESTAMPTZ,
                Type::TIMESTAMPTZ,
                Type::TEXT,
            ],
        ),
        None => (
            format!(
                "COPY {} (id, data, data_exact, deleted_at, first_synced_at, last_changed_at, hash) FROM STDIN (FORMAT binary)",
                page.table
            ),
            vec![
                Type::TEXT,
                Type::JSONB,
                Type::TEXT,
                Type::TIMESTAMPTZ,
                Type::TIMESTAMPTZ,
                Type::TIMESTAMPTZ,
                Type::TEXT,
            ],
        ),
    };
    let mut writer = BinaryCopyInWriter::new(tx.copy_in(&sql)?, &types);
    for w in writes {
        let record = w.record;
        let (data, exact) = jsonb::storable(&record.data);
        let data_exact = exact.then_some(record.data.as_str());
        let deleted_at = w.deleted_at.as_deref().map(|t| at(t, now));
        let data = Jsonb(&data);
        match klass {
            Some(k) => writer.write(&[
                &record.id,
                &k,
                &data,
                &data_exact,
                &deleted_at,
                &now,
                &now,
                &record.hash,
            ])?,
            None => writer.write(&[
                &record.id,
                &data,
                &data_exact,
                &deleted_at,
                &now,
                &now,
                &record.hash,
            ])?,
        }
    }
    writer.finish()?;
    Ok(())
}

/// Updates changed rows in one statement.
fn update_rows(
    tx: &mut impl GenericClient,
    table: &str,
    writes: &[&Write<'_>],
    now: DateTime<Utc>,
) -> Result<(), postgres::Error> {
    let records: Vec<&Record> = writes.iter().map(|w| w.record).collect();
    let storable: Vec<(std::borrow::Cow<'_, str>, bool)> =
        records.iter().map(|r| jsonb::storable(&r.data)).collect();
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let data: Vec<Jsonb<'_>> = storable.iter().map(|(d, _)| Jsonb(d)).collect();
    let exact: Vec<Option<&str>> = records
        .iter()
        .zip(&storable)
        .map(|(r, (_, exact))| exact.then_some(r.data.as_str()))
        .collect();
    let deleted: Vec<Option<DateTime<Utc>>> = writes
        .iter()
        .map(|w| w.deleted_at.as_deref().map(|t| at(t, now)))
        .collect();
    let hashes: Vec<&str> = records.iter().map(|r| r.hash.as_str()).collect();
    tx.execute(
        &format!(
            "UPDATE {table} AS t SET data = u.data, data_exact = u.exact, deleted_at = u.deleted_at, \
             last_changed_at = $5, hash = u.hash \
             FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::timestamptz[], $6::text[]) \
             AS u(id, data, exact, deleted_at, hash) WHERE t.id = u.id"
        ),
        &[&ids, &data, &exact, &deleted, &now, &hashes],
    )?;
    Ok(())
}

/// Appends change-log rows by binary COPY.
fn copy_log(
    tx: &mut impl GenericClient,
    run_id: i64,
    table: &str,
    rows: &[LogRow<'_>],
    now: DateTime<Utc>,
) -> Result<(), postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut writer = BinaryCopyInWriter::new(
        tx.copy_in(
            "COPY change_log (run_id, entity, record_id, op, source_updated_at, synced_at, changes) FROM STDIN (FORMAT binary)",
        )?,
        &[
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::JSONB,
        ],
    );
    for row in rows {
        let changes = row.changes.as_deref().map(jsonb::storable);
        let changes = changes.as_ref().map(|(text, _)| Jsonb(text));
        let source = row.source_updated_at.map(jsonb::text);
        let values: [&(dyn ToSql + Sync); 7] =
            [&run_id, &table, &row.id, &row.op, &source, &now, &changes];
        writer.write(&values)?;
    }
    writer.finish()?;
    Ok(())
}

/// Sets `items` aside in `rejected_records` (a second sighting updates the row and counts it).
fn quarantine<'a>(
    tx: &mut Transaction<'_>,
    page: &PageWrite,
    items: impl Iterator<Item = &'a Rejected>,
) -> Result<u64, postgres::Error> {
    let mut n = 0;
    let mut statement = None;
    for item in items {
        let statement = match &statement {
            Some(s) => s,
            None => statement.insert(tx.prepare(
                "INSERT INTO rejected_records (entity, record_key, record_id, updated_at, reason, raw, page, \
                 run_id, first_seen_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), now()) \
                 ON CONFLICT (entity, record_key) DO UPDATE SET record_id = excluded.record_id, \
                 updated_at = excluded.updated_at, reason = excluded.reason, raw = excluded.raw, \
                 page = excluded.page, run_id = excluded.run_id, last_seen_at = excluded.last_seen_at, \
                 times_seen = rejected_records.times_seen + 1",
            )?),
        };
        let key = plan::quarantine_key(item);
        // Text columns cannot hold NUL: what cannot be stored as is becomes U+FFFD.
        let id = item.id.as_deref().map(jsonb::text);
        let updated_at = item.updated_at.as_deref().map(jsonb::text);
        tx.execute(
            statement,
            &[
                &page.state_key,
                &jsonb::text(&key),
                &id,
                &updated_at,
                &jsonb::text(&item.reason),
                &jsonb::text(&item.raw),
                &jsonb::text(&page.source),
                &page.run_id,
            ],
        )?;
        n += 1;
    }
    Ok(n)
}

/// Tombstones the given ids (hard deletes confirmed by a 404), in one transaction.
pub fn tombstone_ids(
    c: &mut Client,
    table: &'static str,
    run_id: i64,
    ids: &[String],
) -> Result<u64, postgres::Error> {
    let mut tx = c.transaction()?;
    let n = tombstone_in(&mut tx, table, run_id, ids)?;
    tx.commit()?;
    Ok(n)
}

fn tombstone_in(
    tx: &mut Transaction<'_>,
    table: &'static str,
    run_id: i64,
    ids: &[String],
) -> Result<u64, postgres::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    let marked = tx.query(
        &format!(
            "UPDATE {table} SET deleted_at = $2, last_changed_at = $2 WHERE id = ANY($1) AND deleted_at IS NULL \
             RETURNING id, data #>> '{{attributes,updatedAt}}'"
        ),
        &[&ids, &now],
    )?;
    let changes = plan::tombstone_changes(&iso(&now));
    let marked: Vec<(String, Option<String>)> =
        marked.iter().map(|r| (r.get(0), r.get(1))).collect();
    let rows: Vec<LogRow<'_>> = marked
        .iter()
        .map(|(id, updated_at)| LogRow {
            id,
            op: plan::Op::Delete.as_str(),
            source_updated_at: updated_at.as_deref(),
            changes: Some(changes.clone()),
        })
        .collect();
    copy_log(tx, run_id, table, &rows, now)?;
    let n = rows.len() as u64;
    if n > 0 {
        tx.execute(
            "UPDATE sync_runs SET deleted = deleted + $2 WHERE id = $1",
            &[&run_id, &(n as i64)],
        )?;
    }
    Ok(n)
}
