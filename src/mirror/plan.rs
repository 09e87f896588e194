//! What one page does to the mirror, decided without SQL: each record of the page against the
//! stored state of its id becomes an insert, an update (with its field-level `changes`), a delete
//! (an update that makes the row a tombstone) or nothing at all; every write gets its change-log
//! entry; the records stored clear their own quarantined copies. The executors read the state and
//! carry the plan out in their dialect, in the page's transaction.
//!
//! The decision takes two steps so that an executor reads only what it needs: [`triage`] sorts the
//! page by hash and tombstone state (cheap, every record), and [`Triage::plan`] builds the diffs of
//! the changed records from their stored text (read only for those).

use std::collections::HashMap;

use serde_json::json;

use super::fresh::Version;
use crate::record::diff::Diff;
use crate::record::{Record, Rejected, time};
use crate::write::Applied;

/// The stored state of one row that decides whether a record changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The content hash of the stored `data`.
    pub hash: String,
    /// The stored tombstone time as text, `None` for a live row.
    pub deleted_at: Option<String>,
    /// The stored row's version, read only for pages of pushed records (`only_newer`).
    pub version: Option<Version>,
}

/// What a change-log row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A row that did not exist.
    Insert,
    /// A row whose content changed.
    Update,
    /// A live row that became a tombstone.
    Delete,
}

impl Op {
    /// The text stored in `change_log.op`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// One write of a plan: the record, its tombstone time and its change-log entry.
#[derive(Debug, Clone)]
pub struct Write<'p> {
    /// The record as served.
    pub record: &'p Record,
    /// The row's `deleted_at` after the write (normal RFC 3339 text), `None` for a live row.
    pub deleted_at: Option<String>,
    /// Insert, update or delete: a delete is written as an update of the row.
    pub op: Op,
    /// The change log's `changes` (JSON text): `None` for an insert.
    pub changes: Option<String>,
}

impl Write<'_> {
    /// True when the row does not exist yet (an `INSERT`), false for an `UPDATE` of it.
    pub fn is_insert(&self) -> bool {
        self.op == Op::Insert
    }
}

/// The page sorted by what each record does to its row (see [`triage`]).
#[derive(Debug)]
pub struct Triage<'p> {
    /// The records that count (the last copy of each id), in page order, with what they do.
    sorted: Vec<(&'p Record, Verdict)>,
    /// Stored tombstone times of the changed records.
    old_deleted: HashMap<&'p str, Option<String>>,
}

/// What a record does to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Insert,
    Unchanged,
    Change,
    /// A pushed record not newer than its row: left alone.
    Stale,
}

/// Sorts `records` against the stored state of their ids (absent ids have no row). An unchanged
/// record (same hash, same tombstone state) writes nothing. When an id appears twice in one page
/// (the engine filters these, so only as a safeguard), its last copy wins, as a sequence of
/// upserts would leave it. With `only_newer` (records pushed by a webhook), a record that is not
/// newer than its row ([`Version::newer_than`]) is stale and writes nothing.
pub fn triage<'p>(
    records: &'p [Record],
    stored: &HashMap<String, Stored>,
    only_newer: bool,
) -> Triage<'p> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        last.insert(record.id.as_str(), i);
    }
    let mut sorted = Vec::with_capacity(records.len());
    let mut old_deleted = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        if last.get(record.id.as_str()) != Some(&i) {
            continue;
        }
        let verdict = match stored.get(&record.id) {
            None => Verdict::Insert,
            Some(s)
                if only_newer
                    && !Version::of(record).newer_than(&s.version.clone().unwrap_or_default()) =>
            {
                Verdict::Stale
            }
            Some(s) if s.hash == record.hash && s.deleted_at.is_some() == record.deleted => {
                Verdict::Unchanged
            }
            Some(s) => {
                old_deleted.insert(record.id.as_str(), s.deleted_at.clone());
                Verdict::Change
            }
        };
        sorted.push((record, verdict));
    }
    Triage {
        sorted,
        old_deleted,
    }
}

impl<'p> Triage<'p> {
    /// The ids whose stored text the plan needs (the changed records), for the executor to read.
    pub fn changed_ids(&self) -> Vec<&'p str> {
        self.sorted
            .iter()
            .filter(|(_, v)| *v == Verdict::Change)
            .map(|(r, _)| r.id.as_str())
            .collect()
    }

    /// True when no record of the page changes its row.
    pub fn nothing_to_write(&self) -> bool {
        self.sorted
            .iter()
            .all(|(_, v)| matches!(v, Verdict::Unchanged | Verdict::Stale))
    }

    /// The plan, given the stored `data` text of the changed records (canonical JSON, as
    /// [`Record::data`]) and the time of the write (normal RFC 3339 text). A changed id missing from
    /// `old` (a row deleted by hand since the triage) is logged whole, as an insert's content.
    pub fn plan(self, old: &HashMap<String, String>, now: &str) -> Plan<'p> {
        let mut plan = Plan {
            writes: Vec::new(),
            unchanged: 0,
            stale: 0,
            stored: Vec::with_capacity(self.sorted.len()),
            custom_removed: false,
        };
        for (record, verdict) in self.sorted {
            if verdict == Verdict::Stale {
                // Not stored: the row keeps its newer version (and any quarantined copy stays).
                plan.stale += 1;
                continue;
            }
            plan.stored.push(record);
            let deleted_at = deleted_at(record, now);
            match verdict {
                Verdict::Unchanged | Verdict::Stale => plan.unchanged += 1,
                Verdict::Insert => plan.writes.push(Write {
                    record,
                    deleted_at,
                    op: Op::Insert,
                    changes: None,
                }),
                Verdict::Change => {
                    let old_deleted = self.old_deleted.get(record.id.as_str()).cloned().flatten();
                    let old_data = old.get(&record.id).map(String::as_str);
                    let (op, changes, removed) = change(
                        record,
                        old_data,
                        old_deleted.as_deref(),
                        deleted_at.as_deref(),
                    );
                    plan.custom_removed |= removed;
                    plan.writes.push(Write {
                        record,
                        deleted_at,
                        op,
                        changes: Some(changes),
                    });
                }
            }
        }
        plan
    }
}

/// What a page writes, in page order.
#[derive(Debug)]
pub struct Plan<'p> {
    /// Rows to insert or update, each with its change-log entry.
    pub writes: Vec<Write<'p>>,
    /// Records whose row already holds them.
    pub unchanged: u64,
    /// Pushed records not newer than their row, left alone.
    pub stale: u64,
    /// Every record stored (written or unchanged): each clears its own quarantined copy.
    pub stored: Vec<&'p Record>,
    /// Whether an update removed or nulled a custom attribute, which may take a name out of the
    /// custom view.
    pub custom_removed: bool,
}

impl<'p> Plan<'p> {
    /// Takes the record `id` out of the plan because the database refused it (its write rolled
    /// back on its own): it neither counts nor clears its quarantine, and comes back as the item to
    /// set aside, with `reason`.
    pub fn refuse(&mut self, id: &str, reason: String) -> Option<Rejected> {
        let at = self.stored.iter().position(|r| r.id == id)?;
        let record = self.stored.remove(at);
        self.writes.retain(|w| w.record.id != id);
        Some(Rejected {
            id: Some(record.id.clone()),
            updated_at: record.updated_at.clone(),
            reason,
            raw: record.data.clone(),
        })
    }

    /// The counts of the plan, for the run's counters (`rejected` is the quarantine's).
    pub fn applied(&self) -> Applied {
        let mut a = Applied {
            unchanged: self.unchanged + self.stale,
            stale: self.stale,
            ..Applied::default()
        };
        for w in &self.writes {
            match w.op {
                Op::Insert => a.inserted += 1,
                Op::Update => a.updated += 1,
                Op::Delete => a.deleted += 1,
            }
        }
        a
    }

    /// The ids of the records stored, whose quarantined copies are cleared.
    pub fn stored_ids(&self) -> Vec<&'p str> {
        self.stored.iter().map(|r| r.id.as_str()).collect()
    }
}

/// When a record deleted upstream became a tombstone, in normal form: its `deletedAt`, else its
/// `updatedAt`, else `now` (a time that is not RFC 3339 counts as now, so the row is a tombstone
/// whatever the text). `None` for a live record.
pub fn deleted_at(record: &Record, now: &str) -> Option<String> {
    record.deleted.then(|| {
        record
            .deleted_at
            .as_deref()
            .and_then(time::normal)
            .or_else(|| record.updated_at.as_deref().and_then(time::normal))
            .unwrap_or_else(|| now.to_string())
    })
}

/// The change-log entry of a changed record: its op (a live row becoming a tombstone is a delete),
/// the field-level changes between the stored text and the new one, with `deleted_at` when the
/// tombstone time moved, and whether a custom attribute may have left.
fn change(
    record: &Record,
    old_data: Option<&str>,
    old_deleted_at: Option<&str>,
    new_deleted_at: Option<&str>,
) -> (Op, String, bool) {
    let diff = old_data.map(|old| Diff::between(old, &record.data));
    let mut diff = match diff {
        Some(Ok(diff)) => diff,
        Some(Err(bad)) => {
            // Only a hand-edited or damaged row gets here: the new version replaces it whole, and
            // the log says so.
            tracing::warn!(
                id = %record.id, error = %bad,
                "the stored version of this record is not valid JSON; logging the new version whole"
            );
            Diff::from_nothing(&record.data).unwrap_or_default()
        }
        None => Diff::from_nothing(&record.data).unwrap_or_default(),
    };
    let removed = diff.may_remove_custom();
    let moved = match (old_deleted_at, new_deleted_at) {
        (Some(a), Some(b)) => !time::same(a, b),
        (a, b) => a.is_some() != b.is_some(),
    };
    if moved {
        diff.insert(
            "deleted_at",
            json!(old_deleted_at).to_string(),
            json!(new_deleted_at).to_string(),
        );
    }
    let op = if old_deleted_at.is_none() && new_deleted_at.is_some() {
        Op::Delete
    } else {
        Op::Update
    };
    (op, diff.to_json(), removed)
}

/// The change log's `changes` of a row tombstoned at `now` because upstream no longer has it.
pub fn tombstone_changes(now: &str) -> String {
    json!({"deleted_at": {"old": null, "new": now}}).to_string()
}

/// The `rejected_records.record_key` of a quarantined item: its id, or a hash of its text when it
/// has none (the same broken item seen again updates its row instead of adding one).
pub fn quarantine_key(item: &Rejected) -> String {
    match &item.id {
        Some(id) => id.clone(),
        None => format!(
            "raw:{:032x}",
            xxhash_rust::xxh3::xxh3_128(item.raw.as_bytes())
        ),
    }
}
