//! Per-org custom attribute views: each org's own attributes under `attributes.custom` become real
//! columns of `<entity>_custom` (kobjects: `kobjects_<klass>_custom`), typed by Kustomer's name suffix
//! (`Str`/`Txt`/`Url` text, `Num` real, `At` timestamp text, `Bool` integer), names made safe
//! (snake_case, suffix dropped unless two attributes would collide). A view is rewritten only when its
//! attribute set changed, so a sync that sees a new attribute name adds the column.

use std::collections::BTreeSet;

use rusqlite::Connection;

use crate::store::StoreError;

/// Tables whose records carry `attributes.custom`.
pub const CUSTOM_TABLES: [&str; 5] = [
    "customers",
    "companies",
    "conversations",
    "messages",
    "kobjects",
];

/// `loyaltyTierStr` → (`loyalty_tier`, `TEXT`, `str`).
fn column_for(name: &str) -> (String, &'static str, &'static str) {
    let (stem, sql_type, suffix) = [
        ("Str", "TEXT", "str"),
        ("Txt", "TEXT", "txt"),
        ("Url", "TEXT", "url"),
        ("Num", "REAL", "num"),
        ("At", "TEXT", "at"),
        ("Bool", "INTEGER", "bool"),
    ]
    .iter()
    .find_map(|(s, t, l)| {
        name.strip_suffix(s)
            .filter(|stem| !stem.is_empty())
            .map(|stem| (stem, *t, *l))
    })
    .unwrap_or((name, "TEXT", ""));
    let mut out = String::new();
    for (i, c) in stem.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let mut out = out.trim_matches('_').to_string();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("custom_{out}");
    }
    (out, sql_type, suffix)
}

/// SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The view's SQL for these attribute names.
pub fn view_sql(view: &str, table: &str, klass: Option<&str>, names: &BTreeSet<String>) -> String {
    let reserved = ["id", "updated_at", "deleted_at", "klass"];
    let mut used: BTreeSet<String> = reserved.iter().map(|s| s.to_string()).collect();
    let mut columns = Vec::new();
    let planned: Vec<(String, String, &str, &str)> = names
        .iter()
        .map(|n| {
            let (col, ty, suffix) = column_for(n);
            (n.clone(), col, ty, suffix)
        })
        .collect();
    for (name, col, ty, suffix) in &planned {
        let clash = planned.iter().filter(|(_, c, _, _)| c == col).count() > 1;
        let mut column = if clash && !suffix.is_empty() {
            format!("{col}_{suffix}")
        } else {
            col.clone()
        };
        while used.contains(&column) {
            column.push('_');
        }
        used.insert(column.clone());
        // The JSON path quotes the key, so any attribute name is safe inside it.
        let path = quote(&format!(
            "$.attributes.custom.\"{}\"",
            name.replace('"', "")
        ));
        let expr = format!("json_extract(data, {path})");
        let expr = match *ty {
            "REAL" => format!("CAST({expr} AS REAL)"),
            "INTEGER" => format!("CAST({expr} AS INTEGER)"),
            _ => expr,
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

/// Attribute names found in a table (of one klass).
fn names(
    conn: &Connection,
    table: &str,
    klass: Option<&str>,
) -> rusqlite::Result<BTreeSet<String>> {
    let sql = format!(
        "SELECT DISTINCT j.key FROM {table} t, json_each(t.data, '$.attributes.custom') j WHERE {}",
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

/// (Re)creates the custom views of `table` whose attribute set changed; returns the views rewritten.
pub fn refresh(conn: &Connection, table: &str) -> Result<Vec<String>, StoreError> {
    let err = |e| {
        StoreError::sqlite(
            format!("refreshing the custom attribute views of {table}"),
            e,
        )
    };
    if !CUSTOM_TABLES.contains(&table) {
        return Ok(Vec::new());
    }
    let targets: Vec<(String, Option<String>)> = if table == "kobjects" {
        let mut stmt = conn
            .prepare("SELECT DISTINCT klass FROM kobjects ORDER BY klass")
            .map_err(err)?;
        let klasses = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(err)?;
        klasses
            .into_iter()
            .map(|k| {
                let safe: String = k
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_lowercase()
                        } else {
                            '_'
                        }
                    })
                    .collect();
                (format!("kobjects_{safe}_custom"), Some(k))
            })
            .collect()
    } else {
        vec![(format!("{table}_custom"), None)]
    };
    let mut rewritten = Vec::new();
    for (view, klass) in targets {
        let names = names(conn, table, klass.as_deref()).map_err(err)?;
        let sql = view_sql(&view, table, klass.as_deref(), &names);
        let current: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'view' AND name = ?1",
                [&view],
                |r| r.get(0),
            )
            .ok();
        if current.as_deref() == Some(sql.as_str()) {
            continue;
        }
        conn.execute_batch(&format!(
            "BEGIN; DROP VIEW IF EXISTS \"{view}\"; {sql}; COMMIT;"
        ))
        .map_err(err)?;
        tracing::info!(view = %view, columns = names.len(), "custom attribute view updated");
        rewritten.push(view);
    }
    Ok(rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_safe_typed_columns() {
        assert_eq!(
            column_for("loyaltyTierStr"),
            ("loyalty_tier".to_string(), "TEXT", "str")
        );
        assert_eq!(column_for("lifetimeValueNum").1, "REAL");
        assert_eq!(column_for("vipBool").1, "INTEGER");
        assert_eq!(column_for("lastOrderAt").0, "last_order");
        assert_eq!(column_for("weird name!").0, "weird_name");
        assert_eq!(column_for("2fast").0, "custom_2fast");
        let names: BTreeSet<String> = ["tierStr", "tierNum", "id"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let sql = view_sql("c_custom", "customers", None, &names);
        assert!(
            sql.contains("AS \"tier_str\"")
                && sql.contains("AS \"tier_num\"")
                && sql.contains("AS \"id_\""),
            "{sql}"
        );
    }
}
