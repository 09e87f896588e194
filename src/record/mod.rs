//! A served resource object as the mirror keeps it: [`Record`] (id, cursor fields, canonical text
//! and hash) or, when one item of a page cannot be kept, a [`Rejected`] one for the quarantine. It
//! owns the JSON text handling under both: a lexer that keeps numbers as their exact text and lone
//! surrogate escapes as escapes ([`scan`]), the canonical writer ([`canonical`]) and the change-log
//! diff over canonical texts ([`diff`]).
//!
//! Nothing here knows HTTP or SQL: the Kustomer client decodes pages into records, and every
//! destination stores them.

pub mod canonical;
pub mod diff;
pub mod scan;
pub mod time;

use canonical::Picked;
use scan::{Bad, Scanner};

/// One resource object as served, with what the mirror needs pulled out of it.
#[derive(Debug, Clone)]
pub struct Record {
    /// The resource id (24-hex Mongo-style id in practice; any non-empty string accepted, and a
    /// number as its exact text).
    pub id: String,
    /// `attributes.updatedAt` as served (the change log's `source_updated_at`).
    pub updated_at: Option<String>,
    /// `updatedAt` in normal form ([`time::normal`]), the cursor value of search-incremental syncs;
    /// `None` when it is missing or not an RFC 3339 timestamp (the record is stored all the same).
    pub cursor_at: Option<String>,
    /// True when Kustomer marks the record deleted (`attributes.deleted: true`).
    pub deleted: bool,
    /// `attributes.deletedAt` when present (teams, tags).
    pub deleted_at: Option<String>,
    /// The resource object as canonical JSON text (keys sorted), stored in the `data` column.
    pub data: String,
    /// xxh3-128 of `data`, hex: equal hashes mean nothing changed.
    pub hash: String,
    /// The names under `attributes.custom` (sorted, distinct): what the custom views need to know.
    pub custom: Vec<String>,
}

/// One item of a page that could not be kept as a record: quarantined in `rejected_records` while
/// the rest of its page is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The item's `id` when it could be read (a later good copy clears the quarantine row by it).
    pub id: Option<String>,
    /// `attributes.updatedAt` when it could be read.
    pub updated_at: Option<String>,
    /// What is wrong with it, e.g. `a string is not valid UTF-8 at byte 120 of the record`.
    pub reason: String,
    /// The item's text as served (invalid UTF-8 replaced by U+FFFD).
    pub raw: String,
}

impl Record {
    /// Decodes one resource object from its JSON text (a single-object document's `data`, a test's
    /// literal, a benchmark's generated record).
    pub fn from_text(text: &[u8]) -> Result<Record, Rejected> {
        let mut s = Scanner::new(text);
        let item = decode_item(&mut s).map_err(|bad| Rejected {
            id: None,
            updated_at: None,
            reason: bad.to_string(),
            raw: String::from_utf8_lossy(text).into_owned(),
        })?;
        if item.is_ok() && s.peek().is_some() {
            return Err(Rejected {
                id: None,
                updated_at: None,
                reason: "trailing characters after the object".to_string(),
                raw: String::from_utf8_lossy(text).into_owned(),
            });
        }
        item
    }

    /// Decodes a `serde_json::Value` (its text is exact: the crate keeps numbers as text).
    pub fn from_value(value: &serde_json::Value) -> Result<Record, Rejected> {
        Record::from_text(value.to_string().as_bytes())
    }

    /// The record as a `serde_json::Value` (numbers exact), for the rare reader that wants a tree;
    /// `None` when it holds a lone surrogate, which a `Value` cannot.
    pub fn value(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.data).ok()
    }

    fn new(
        id: String,
        updated_at: Option<String>,
        deleted: bool,
        deleted_at: Option<String>,
        data: String,
        custom: Vec<String>,
    ) -> Record {
        let hash = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(data.as_bytes()));
        Record {
            id,
            cursor_at: updated_at.as_deref().and_then(time::normal),
            updated_at,
            deleted,
            deleted_at,
            data,
            hash,
            custom,
        }
    }
}

/// Decodes the item at the scanner's position into a record. A bad item whose end can still be
/// found by its structure is answered as `Ok(Err(rejected))`, with the scanner after it, so the
/// rest of the page can be read; `Err` means the text is broken beyond the item (the page is lost).
pub fn decode_item(s: &mut Scanner<'_>) -> Result<Result<Record, Rejected>, Bad> {
    s.peek();
    let start = s.pos;
    let mut out = Vec::with_capacity(2048);
    let mut picked = Picked::default();
    let reason = match canonical::record(s, &mut out, &mut picked) {
        Ok(()) => match check(&picked) {
            None => {
                let Picked {
                    id,
                    updated_at,
                    deleted_at,
                    deleted,
                    custom,
                    ..
                } = picked;
                // `check` answered None only with an id; the writer wrote valid UTF-8 (validated
                // input, ASCII escapes), so neither arm below is taken. Both stay errors, not
                // panics.
                let id = id.unwrap_or_default();
                return Ok(match String::from_utf8(out) {
                    Ok(data) => Ok(Record::new(
                        id, updated_at, deleted, deleted_at, data, custom,
                    )),
                    Err(_) => Err(rejected(s, start, s.pos, &Picked::default(), "not UTF-8")),
                });
            }
            Some(reason) => reason,
        },
        Err(bad) => {
            s.pos = start;
            // Where the item ends, judged by its brackets and quotes alone.
            s.skip().map_err(|_| bad.clone())?;
            let at = bad.at.saturating_sub(start);
            format!("{} at byte {at} of the record", bad.what)
        }
    };
    Ok(Err(rejected(s, start, s.pos, &picked, &reason)))
}

fn rejected(s: &Scanner<'_>, start: usize, end: usize, picked: &Picked, reason: &str) -> Rejected {
    Rejected {
        id: picked.id.clone().filter(|id| !id.is_empty()),
        updated_at: picked.updated_at.clone(),
        reason: reason.to_string(),
        raw: String::from_utf8_lossy(s.bytes.get(start..end).unwrap_or_default()).into_owned(),
    }
}

/// Why a well-formed item is still not a record, if it is not.
fn check(picked: &Picked) -> Option<String> {
    if !picked.object {
        return Some("the item is not a JSON object".to_string());
    }
    if let Some(problem) = picked.id_problem {
        return Some(format!("the record has {problem}"));
    }
    match picked.id.as_deref() {
        None => Some("the record has no \"id\"".to_string()),
        Some("") => Some("the record has an empty \"id\"".to_string()),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests;
