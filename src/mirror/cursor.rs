//! The cursor rule: where an incremental read has got to only moves forward. A page's cursor meets
//! the saved one: the later instant wins, the same instant keeps both id lists. The executors read
//! the saved `(cursor, cursor_ids)` and write back what [`merged`] answers, in the page's
//! transaction.

use crate::record::time;
use crate::write::Cursor;

/// The cursor to save when `page` (a page's cursor) meets the saved `(at, ids)` of entity `key`:
/// the later instant wins (never back), the same instant keeps both id lists. Instants are compared
/// parsed, so `…:00Z` and `…:00.500Z` order by time, and a saved text that is not a timestamp gives
/// way. `key` names the entity in the warning about damaged ids. Answers `(cursor, cursor_ids)`,
/// the ids as a JSON array.
pub fn merged(page: &Cursor, key: &str, saved: Option<(String, String)>) -> (String, String) {
    match saved {
        Some((old, old_ids)) if time::later(&old, &page.at) => (old, old_ids),
        Some((old, old_ids)) if time::same(&old, &page.at) => {
            let mut ids = ids(key, &old_ids);
            for id in &page.ids {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
            (page.at.clone(), serde_json::Value::from(ids).to_string())
        }
        _ => (
            page.at.clone(),
            serde_json::Value::from(page.ids.clone()).to_string(),
        ),
    }
}

/// Reads `sync_state.cursor_ids`. A damaged value (hand-edited, or written by something else) is
/// logged and read as no ids: the next pass then re-reads the records at the cursor's timestamp
/// instead of skipping them, which stores nothing twice (they are unchanged), so no data is lost.
pub fn ids(key: &str, text: &str) -> Vec<String> {
    match serde_json::from_str(text) {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(
                entity = key, cursor_ids = text, error = %e,
                "sync_state.cursor_ids is not a JSON array of ids; the records at the cursor will be read again"
            );
            Vec::new()
        }
    }
}

/// The saved state of an entity from the `sync_state` columns as read: the strategy text and the
/// cursor with its ids text.
pub fn state(
    key: &str,
    strategy: Option<&str>,
    cursor: Option<String>,
    ids_text: &str,
) -> crate::write::State {
    crate::write::State {
        strategy: strategy.and_then(crate::entity::Strategy::from_stored),
        cursor: cursor.map(|at| Cursor {
            at,
            ids: ids(key, ids_text),
        }),
        unsupported: None,
    }
}
