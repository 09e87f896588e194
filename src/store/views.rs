//! Per-org custom attribute views: each org's own attributes under `attributes.custom` become real
//! columns of `<entity>_custom` (kobjects: `kobjects_<klass>_custom`), named and typed by the rules of
//! [`crate::custom`] (`Num` real, `At` timestamp text, `Bool` integer, the rest text). A view is rewritten only when its
//! attribute set changed, so a sync that sees a new attribute name adds the column.
//!
//! Upkeep without scans: the writer knows each view's attribute set ([`Known`]; read back from the
//! view's own SQL, or found by one scan when that is not possible) and adds the names a page brings
//! in the page's own transaction, so a view never lags the rows it shows, even after a crash. Names
//! leave a view only when an update removed or nulled a custom attribute (the last row having it may
//! be gone): that view is rescanned when the sync ends, and `sync --full` rescans every view it
//! touched. Before this, every sync that changed a table scanned all of its JSON (1–2 s per sync on
//! half a million rows).

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;
pub use crate::custom::view_name;
use crate::custom::{self, Kind};
use crate::record::Record;

/// SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `text` as an SQL expression with no NUL in it: quoted pieces joined by `char(0)`.
fn text_with_nuls(text: &str) -> String {
    text.split('\0')
        .map(quote)
        .collect::<Vec<_>>()
        .join(" || char(0) || ")
}

/// The view's SQL for these attribute names.
pub fn view_sql(view: &str, table: &str, klass: Option<&str>, names: &BTreeSet<String>) -> String {
    let mut columns = Vec::new();
    for (name, column, kind) in custom::columns(names) {
        // The JSON path quotes the key, with JSON escapes for quotes, backslashes and control
        // characters, so any attribute name is addressed exactly and the SQL holds no NUL. SQLite
        // compares a path's key only up to a NUL, so a name holding one is looked up among the
        // object's members instead, compared in full (`char(0)` in the SQL text).
        let expr = if name.contains('\0') {
            format!(
                "(SELECT value FROM json_each(data, '$.attributes.custom') WHERE key = {})",
                text_with_nuls(&name)
            )
        } else {
            let path = quote(&format!(
                "$.attributes.custom.\"{}\"",
                custom::json_key(&name)
            ));
            format!("json_extract(data, {path})")
        };
        // Times stay text in SQLite (its date functions read ISO-8601 text).
        let expr = match kind {
            Kind::Number => format!("CAST({expr} AS REAL)"),
            Kind::Bool => format!("CAST({expr} AS INTEGER)"),
            Kind::Text | Kind::Time => expr,
        };
        columns.push(format!("{expr} AS \"{column}\""));
    }
    let mut sql = format!("CREATE VIEW \"{view}\" AS SELECT id, updated_at, deleted_at");
    if klass.is_some() {
        sql.push_str(", klass");
    }
    for c in columns {
        sql.push_str(", ");
        sql.push_str(&c);
    }
    sql.push_str(&format!(" FROM {table}"));
    if let Some(k) = klass {
        sql.push_str(&format!(" WHERE klass = {}", quote(k)));
    }
    sql
}

/// Records that `view` could not be built (reported by `status` and `/metrics`), in the caller's
/// transaction.
fn record_problem(
    conn: &Connection,
    view: &str,
    table: &str,
    klass: Option<&str>,
    error: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO view_problems (view, entity, error, failed_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (view) DO UPDATE SET entity = excluded.entity, error = excluded.error, \
         failed_at = excluded.failed_at",
        rusqlite::params![
            view,
            custom::view_entity(table, klass),
            error,
            super::now_iso()
        ],
    )
    .map(|_| ())
}

/// Forgets `view`'s problem once it is built.
fn clear_problem(conn: &Connection, view: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM view_problems WHERE view = ?1", [view])
        .map(|_| ())
}

/// Attribute names found in a table (of one klass).
fn names(
    conn: &Connection,
    table: &str,
    klass: Option<&str>,
) -> rusqlite::Result<BTreeSet<String>> {
    // Only objects have names: a record whose `custom` is a list or a scalar adds none (json_each
    // would answer numeric keys or NULL for it).
    let sql = format!(
        "SELECT DISTINCT j.key FROM {table} t, json_each(t.data, '$.attributes.custom') j \
         WHERE json_type(t.data, '$.attributes.custom') = 'object' AND {}",
        if klass.is_some() {
            "t.klass = ?1"
        } else {
            "?1 IS NULL"
        }
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([klass], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// The attribute names a view made by [`view_sql`] shows, read back from its SQL; `None` when the
/// SQL is not exactly what [`view_sql`] makes of them (another version wrote it, or a name it cannot
/// round-trip), so the caller scans instead.
fn names_of_view(
    sql: &str,
    view: &str,
    table: &str,
    klass: Option<&str>,
) -> Option<BTreeSet<String>> {
    const PATH: &str = "'$.attributes.custom.\"";
    let mut names = BTreeSet::new();
    let mut rest = sql;
    while let Some(at) = rest.find(PATH) {
        let after = &rest[at + PATH.len()..];
        let end = after.find("\"'")?;
        names.insert(after[..end].replace("''", "'"));
        rest = &after[end..];
    }
    (view_sql(view, table, klass, &names) == sql).then_some(names)
}

/// The SQL of `view`, if it exists.
fn current_sql(conn: &Connection, view: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT sql FROM sqlite_schema WHERE type = 'view' AND name = ?1",
        [view],
        |r| r.get(0),
    )
    .optional()
}

/// What the writer knows about the custom views: their attribute sets, and which need a rescan.
#[derive(Debug, Default, Clone)]
pub struct Known {
    names: BTreeMap<String, BTreeSet<String>>,
    /// (table, klass) of views a name may have left.
    rescan: BTreeSet<(String, Option<String>)>,
}

/// A page's change to its custom view, made in the page's transaction and remembered after commit.
#[derive(Debug)]
pub struct PagePlan {
    view: String,
    table: String,
    klass: Option<String>,
    names: BTreeSet<String>,
    rescan: bool,
}

/// In the transaction of a page of `table` (of `klass`), after its rows: makes the custom view show
/// every name the page's records carry. `removed` says an update removed or nulled a custom
/// attribute. Returns what to [`Known::remember`] once the transaction committed.
pub fn plan_page(
    conn: &Connection,
    known: &Known,
    table: &str,
    klass: Option<&str>,
    records: &[Record],
    removed: bool,
) -> rusqlite::Result<Option<PagePlan>> {
    let Some(view) = view_name(table, klass) else {
        return Ok(None);
    };
    if records.is_empty() && !removed {
        return Ok(None);
    }
    let current = current_sql(conn, &view)?;
    let base = match (known.names.get(&view), &current) {
        (Some(names), Some(_)) => names.clone(),
        (_, Some(sql)) => match names_of_view(sql, &view, table, klass) {
            Some(names) => names,
            None => names(conn, table, klass)?,
        },
        // No view yet: the rows (this page's included) say which names there are; on a first sync
        // that is this page alone.
        (_, None) => names(conn, table, klass)?,
    };
    let mut wanted = base.clone();
    for record in records {
        for name in &record.custom {
            if !wanted.contains(name.as_str()) {
                wanted.insert(name.clone());
            }
        }
    }
    let sql = view_sql(&view, table, klass, &wanted);
    if current.as_deref() != Some(sql.as_str()) {
        // A view is a convenience: one that cannot be built never fails the rows it shows. The
        // page commits without it, and the sync's end (or a later page) tries again.
        let built = conn.execute_batch(&format!(
            "SAVEPOINT km_view; DROP VIEW IF EXISTS \"{view}\"; {sql}; RELEASE km_view;"
        ));
        if let Err(e) = built {
            conn.execute_batch("ROLLBACK TO km_view; RELEASE km_view;")?;
            tracing::warn!(view = %view, error = %e, "could not build the custom attribute view; the rows are stored, and the view is tried again when the sync ends");
            record_problem(conn, &view, table, klass, &e.to_string())?;
            return Ok(Some(PagePlan {
                view,
                table: table.to_string(),
                klass: klass.map(str::to_string),
                names: base,
                rescan: true,
            }));
        }
        clear_problem(conn, &view)?;
        tracing::info!(view = %view, columns = wanted.len(), "custom attribute view updated");
    }
    Ok(Some(PagePlan {
        view,
        table: table.to_string(),
        klass: klass.map(str::to_string),
        names: wanted,
        rescan: removed,
    }))
}

impl Known {
    /// Records a committed page's view.
    pub fn remember(&mut self, plan: PagePlan) {
        if plan.rescan {
            self.rescan.insert((plan.table, plan.klass));
        }
        self.names.insert(plan.view, plan.names);
    }
}

/// When a sync ends: rescans the custom views a name may have left (all views of `tables` when
/// `all`), dropping names no row carries any more. Returns the views rewritten.
pub fn rescan(
    conn: &Connection,
    known: &mut Known,
    tables: &[&str],
    all: bool,
) -> Result<Vec<String>, StoreError> {
    let mut rewritten = Vec::new();
    if all {
        // Forget first: whatever a rescan rewrites, the next page reads it back from the view.
        known.names.clear();
        known.rescan.clear();
        for table in tables {
            rewritten.extend(refresh(conn, table)?);
        }
        return Ok(rewritten);
    }
    for (table, klass) in std::mem::take(&mut known.rescan) {
        let Some(view) = view_name(&table, klass.as_deref()) else {
            continue;
        };
        known.names.remove(&view);
        if let Some(v) = refresh_one(conn, &table, klass.as_deref(), &view)? {
            rewritten.push(v);
        }
    }
    Ok(rewritten)
}

/// (Re)creates the custom views of `table` whose attribute set changed, scanning its rows; returns the
/// views rewritten.
fn refresh(conn: &Connection, table: &str) -> Result<Vec<String>, StoreError> {
    let err = |e| {
        StoreError::sqlite(
            format!("refreshing the custom attribute views of {table}"),
            e,
        )
    };
    let Some(entity) = crate::entity::by_name(table).filter(|e| e.custom_views) else {
        return Ok(Vec::new());
    };
    let klasses: Vec<Option<String>> = if entity.per_klass() {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT DISTINCT klass FROM {table} ORDER BY klass"
            ))
            .map_err(err)?;
        let klasses = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(err)?;
        klasses.into_iter().map(Some).collect()
    } else {
        vec![None]
    };
    let mut rewritten = Vec::new();
    for klass in klasses {
        let Some(view) = view_name(table, klass.as_deref()) else {
            continue;
        };
        if let Some(v) = refresh_one(conn, table, klass.as_deref(), &view)? {
            rewritten.push(v);
        }
    }
    Ok(rewritten)
}

/// Rescans one view's rows and rewrites it when its attribute set changed.
fn refresh_one(
    conn: &Connection,
    table: &str,
    klass: Option<&str>,
    view: &str,
) -> Result<Option<String>, StoreError> {
    let err = |e| StoreError::sqlite(format!("refreshing the custom attribute view {view}"), e);
    let names = names(conn, table, klass).map_err(err)?;
    let sql = view_sql(view, table, klass, &names);
    if current_sql(conn, view).map_err(err)?.as_deref() == Some(sql.as_str()) {
        return Ok(None);
    }
    let built = conn.execute_batch(&format!(
        "BEGIN; DROP VIEW IF EXISTS \"{view}\"; {sql}; DELETE FROM view_problems WHERE view = {}; COMMIT;",
        quote(view)
    ));
    if let Err(e) = built {
        // The view stays as it was; the problem is recorded for `status`, and a later sync retries.
        conn.execute_batch("ROLLBACK").map_err(err)?;
        tracing::warn!(view = %view, error = %e, "could not rebuild the custom attribute view; the rows are stored, and a later sync tries again");
        record_problem(conn, view, table, klass, &e.to_string()).map_err(err)?;
        return Ok(None);
    }
    tracing::info!(view = %view, columns = names.len(), "custom attribute view updated");
    Ok(Some(view.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_views_names_are_read_back_from_its_sql_or_not_at_all() {
        let names: BTreeSet<String> = [
            "tierStr",
            "tierNum",
            "it's",
            "with space",
            "a.b",
            "x''y",
            "id",
            "2fast",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (view, table, klass) in [
            ("customers_custom", "customers", None),
            ("kobjects_order_custom", "kobjects", Some("order")),
        ] {
            let sql = view_sql(view, table, klass, &names);
            assert_eq!(names_of_view(&sql, view, table, klass), Some(names.clone()));
            let none = view_sql(view, table, klass, &BTreeSet::new());
            assert_eq!(
                names_of_view(&none, view, table, klass),
                Some(BTreeSet::new())
            );
            // SQL this module would not write is not trusted: the caller scans instead.
            let edited = sql.replace(" FROM ", ", 1 AS extra FROM ");
            assert_eq!(names_of_view(&edited, view, table, klass), None);
            assert_eq!(names_of_view(&sql, "other_view", table, klass), None);
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the attribute names hold, the view builds on SQLite and each column shows its
        /// own attribute's value, read by its exact key.
        #[test]
        fn the_view_builds_and_reads_each_key_exactly(
            names in prop::collection::btree_set(
                prop_oneof![any::<String>(), "[a-z\\x00-\\x1f\"'\\\\.\\[\\]$ *]{1,8}", "[a-z]{64,70}[A-Z]?"],
                1..8,
            )
        ) {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(
                "CREATE TABLE customers (id TEXT PRIMARY KEY, updated_at TEXT, deleted_at TEXT, data TEXT)",
            )
            .unwrap();
            let mut custom = serde_json::Map::new();
            for (i, n) in names.iter().enumerate() {
                custom.insert(n.clone(), serde_json::Value::String(format!("v{i}")));
            }
            let data = serde_json::json!({"id": "r1", "attributes": {"custom": custom}});
            conn.execute(
                "INSERT INTO customers (id, data) VALUES ('r1', ?1)",
                [data.to_string()],
            )
            .unwrap();
            let sql = view_sql("customers_custom", "customers", None, &names);
            conn.execute_batch(&sql).map_err(|e| TestCaseError::fail(format!("{e}: {sql}")))?;
            for (i, (name, column, _)) in custom::columns(&names).iter().enumerate() {
                let shown: Option<String> = conn
                    .query_row(&format!("SELECT \"{column}\" FROM customers_custom"), [], |r| r.get(0))
                    .unwrap();
                let want = names.iter().position(|n| n == name).map(|j| format!("v{j}"));
                prop_assert_eq!(shown, want, "column {} ({}) of {:?}", column, i, name);
            }
        }
    }
}
