//! Which of two versions of a record is newer, for records pushed by webhooks: Kustomer delivers
//! events at least once and in any order, so a pushed record is applied only when it is newer than
//! the stored row. Newer means a higher `attributes.rev` when both carry one and they differ, else a
//! later `attributes.updatedAt` (as instants). Equal, or impossible to tell, is not newer: the
//! record is left alone and the next poll (the source of truth) settles it. No SQL, no I/O.

use std::collections::HashMap;

use crate::record::{Record, time};

/// What orders two versions of one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version {
    /// `attributes.rev` when it is a non-negative integer.
    pub rev: Option<u64>,
    /// `attributes.updatedAt` in normal form, when it is a timestamp.
    pub at: Option<String>,
}

impl Version {
    /// The version of a record from its served or stored `rev` and `updatedAt` texts (either may
    /// be missing or garbage: garbage counts as missing).
    pub fn from_parts(rev: Option<&str>, updated_at: Option<&str>) -> Version {
        Version {
            rev: rev.and_then(|r| r.trim().parse::<u64>().ok()),
            at: updated_at.and_then(time::normal),
        }
    }

    /// The version of a record as decoded (its canonical `data` holds `rev`).
    pub fn of(record: &Record) -> Version {
        let rev = serde_json::from_str::<serde_json::Value>(&record.data)
            .ok()
            .and_then(|v| v.pointer("/attributes/rev").map(rev_text));
        Version {
            rev: rev.as_deref().and_then(|r| r.parse::<u64>().ok()),
            at: record.cursor_at.clone(),
        }
    }

    /// True when `self` is newer than `stored` (see the module doc).
    pub fn newer_than(&self, stored: &Version) -> bool {
        if let (Some(a), Some(b)) = (self.rev, stored.rev)
            && a != b
        {
            return a > b;
        }
        match (&self.at, &stored.at) {
            // Both are normal form, whose text order is time order.
            (Some(a), Some(b)) => a > b,
            // A stored row without a time (or a rev that told) is older than any timed version.
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// A JSON value's text as `rev` (numbers as written, strings unquoted).
fn rev_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The newest copy of each id among pushed `records` (a batch of events may hold several versions
/// of one record, in any order), in the order of their first appearance, and how many older or
/// equal copies were dropped.
pub fn newest(records: Vec<Record>) -> (Vec<Record>, u64) {
    let mut at: HashMap<String, usize> = HashMap::with_capacity(records.len());
    let mut kept: Vec<(Record, Version)> = Vec::with_capacity(records.len());
    let mut dropped = 0;
    for record in records {
        let version = Version::of(&record);
        match at.get(&record.id) {
            Some(&i) => {
                if version.newer_than(&kept[i].1) {
                    kept[i] = (record, version);
                }
                dropped += 1;
            }
            None => {
                at.insert(record.id.clone(), kept.len());
                kept.push((record, version));
            }
        }
    }
    (kept.into_iter().map(|(r, _)| r).collect(), dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(rev: Option<&str>, at: Option<&str>) -> Version {
        Version::from_parts(rev, at)
    }

    #[test]
    fn rev_decides_before_time() {
        let stored = v(Some("5"), Some("2026-12-07T12:00:00.000Z"));
        // A higher rev wins even with an earlier time (clocks of two servers).
        assert!(v(Some("6"), Some("2026-12-07T11:00:00.000Z")).newer_than(&stored));
        assert!(!v(Some("4"), Some("2026-12-07T13:00:00.000Z")).newer_than(&stored));
        // Equal revs: the time decides, strictly.
        assert!(v(Some("5"), Some("2026-12-07T12:00:00.001Z")).newer_than(&stored));
        assert!(!v(Some("5"), Some("2026-12-07T12:00:00Z")).newer_than(&stored));
        // No rev on one side: the time decides.
        assert!(v(None, Some("2026-12-07T12:00:01.000Z")).newer_than(&stored));
        assert!(!v(None, Some("2026-12-07T11:59:59.999Z")).newer_than(&stored));
    }

    #[test]
    fn garbage_cannot_win() {
        let stored = v(Some("5"), Some("2026-12-07T12:00:00.000Z"));
        assert!(!v(Some("x"), Some("yesterday")).newer_than(&stored));
        assert!(!v(None, None).newer_than(&stored));
        // A stored row with nothing to compare loses to any timed version.
        assert!(v(None, Some("2020-01-01T00:00:00Z")).newer_than(&v(Some("-1"), None)));
    }

    #[test]
    fn newest_keeps_the_newest_copy_in_first_order() {
        let rec = |id: &str, rev: u64| {
            Record::from_text(
                format!(r#"{{"type":"customer","id":"{id}","attributes":{{"rev":{rev},"updatedAt":"2026-12-07T12:00:00.000Z"}}}}"#)
                    .as_bytes(),
            )
            .unwrap()
        };
        let (kept, dropped) = newest(vec![rec("a", 2), rec("b", 1), rec("a", 3), rec("a", 1)]);
        assert_eq!(dropped, 2);
        let got: Vec<(String, bool)> = kept
            .iter()
            .map(|r| (r.id.clone(), r.data.contains("\"rev\":3")))
            .collect();
        assert_eq!(got, vec![("a".into(), true), ("b".into(), false)]);
    }
}
