//! The custom attribute views in SQLite: [`crate::mirror::views`] decides which names each view
//! shows and when it is rewritten; this module renders a [`ViewPlan`] in SQLite's SQL (`Num` real,
//! `At` timestamp text, `Bool` integer, the rest text), reads a view's names back from its SQL, scans
//! rows for names, and records a view that cannot be built in `view_problems`.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;
use crate::custom::{self, Kind};
use crate::mirror::views::{self, Known, ViewDialect, ViewPlan};

use crate::escape::literal as quote;

/// `text` as an SQL expression with no NUL in it: quoted pieces joined by `char(0)`.
fn text_with_nuls(text: &str) -> String {
    text.split('\0')
        .map(quote)
        .collect::<Vec<_>>()
        .join(" || char(0) || ")
}

/// The view's SQL for these attribute names.
pub fn view_sql(view: &str, table: &str, klass: Option<&str>, names: &BTreeSet<String>) -> String {
    render(&ViewPlan::new(view, table, klass, names))
}

/// A view plan in SQLite's SQL.
fn render(plan: &ViewPlan<'_>) -> String {
    let mut sql = format!(
        "CREATE VIEW \"{}\" AS SELECT id, updated_at, deleted_at",
        plan.view
    );
    if plan.klass.is_some() {
        sql.push_str(", klass");
    }
    for c in &plan.columns {
        // The JSON path quotes the key, with JSON escapes for quotes, backslashes and control
        // characters, so any attribute name is addressed exactly and the SQL holds no NUL. SQLite
        // compares a path's key only up to a NUL, so a name holding one is looked up among the
        // object's members instead, compared in full (`char(0)` in the SQL text).
        let expr = if c.name.contains('\0') {
            format!(
                "(SELECT value FROM json_each(data, '$.attributes.custom') WHERE key = {})",
                text_with_nuls(&c.name)
            )
        } else {
            let path = quote(&format!(
                "$.attributes.custom.\"{}\"",
                custom::json_key(&c.name)
            ));
            format!("json_extract(data, {path})")
        };
        // Times stay text in SQLite (its date functions read ISO-8601 text).
        let expr = match c.kind {
            Kind::Number => format!("CAST({expr} AS REAL)"),
            Kind::Bool => format!("CAST({expr} AS INTEGER)"),
            Kind::Text | Kind::Time => expr,
        };
        sql.push_str(&format!(", {expr} AS \"{}\"", c.column));
    }
    sql.push_str(&format!(" FROM {}", plan.table));
    if let Some(k) = plan.klass {
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

/// SQLite's side of the custom views, on a connection (inside the page's transaction, or not).
pub struct Dialect<'c>(pub &'c Connection);

impl ViewDialect for Dialect<'_> {
    type Error = rusqlite::Error;

    fn shows(&self, _name: &str) -> bool {
        // JSON escapes in the path, and `json_each` for a NUL: every name can be shown.
        true
    }

    fn current(
        &mut self,
        view: &str,
        table: &str,
        klass: Option<&str>,
    ) -> rusqlite::Result<Option<Option<BTreeSet<String>>>> {
        Ok(current_sql(self.0, view)?.map(|sql| names_of_view(&sql, view, table, klass)))
    }

    fn scan(&mut self, table: &str, klass: Option<&str>) -> rusqlite::Result<BTreeSet<String>> {
        names(self.0, table, klass)
    }

    fn klasses(&mut self, table: &str) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self.0.prepare(&format!(
            "SELECT DISTINCT klass FROM {table} ORDER BY klass"
        ))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    }

    fn replace(&mut self, plan: &ViewPlan<'_>) -> rusqlite::Result<bool> {
        let view = plan.view;
        // A savepoint is a transaction of its own outside one (the rescan at a sync's end).
        let built = self.0.execute_batch(&format!(
            "SAVEPOINT km_view; DROP VIEW IF EXISTS \"{view}\"; {}; RELEASE km_view;",
            render(plan)
        ));
        if let Err(e) = built {
            self.0
                .execute_batch("ROLLBACK TO km_view; RELEASE km_view;")?;
            tracing::warn!(view = %view, error = %e, "could not build the custom attribute view; the rows are stored, and the view is tried again when the sync ends");
            record_problem(self.0, view, plan.table, plan.klass, &e.to_string())?;
            return Ok(false);
        }
        clear_problem(self.0, view)?;
        tracing::info!(view = %view, columns = plan.columns.len(), "custom attribute view updated");
        Ok(true)
    }
}

/// In a page's transaction, after its rows: see [`views::page`].
pub fn plan_page<'r>(
    conn: &Connection,
    known: &Known,
    table: &str,
    klass: Option<&str>,
    records: impl IntoIterator<Item = &'r crate::record::Record>,
    removed: bool,
) -> rusqlite::Result<Option<views::PageView>> {
    views::page(&mut Dialect(conn), known, table, klass, records, removed)
}

/// When a sync ends: rescans the custom views a name may have left (all views of `tables` when
/// `all`), dropping names no row carries any more. Returns the views rewritten.
pub fn rescan(
    conn: &Connection,
    known: &mut Known,
    tables: &[&str],
    all: bool,
) -> Result<Vec<String>, StoreError> {
    let err = |e| StoreError::sqlite("refreshing the custom attribute views", e);
    let mut db = Dialect(conn);
    let mut rewritten = Vec::new();
    for target in views::rescan_targets(&mut db, known, tables, all).map_err(err)? {
        if views::refresh(&mut db, &target).map_err(err)? {
            rewritten.push(target.view);
        }
    }
    Ok(rewritten)
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
