//! Reading parts of a schema file. The non-unique index definitions: both dialects' `schema.sql` write
//! them as `CREATE INDEX name ON table (col, …)`; the first-sync bulk loads of `sqlite` and `postgres` drop
//! the costly ones and rebuild them from these definitions when the load ends. And named sections
//! (`-- @<name>` … `-- @end <name>`), which upgrade steps create as the file writes them.

/// Leading columns whose index stays during a bulk load: their values arrive in sync order or have a
/// handful of distinct values, so each page's rows land on a few B-tree pages.
const CHEAP_LEADING_COLUMNS: &[&str] = &["updated_at", "run_id", "status", "channel", "klass"];

/// The section `name` of a schema file: from the line `-- @<name>` up to `-- @end <name>`; empty
/// if the markers are missing, which each dialect's upgrade test rules out (an upgraded database
/// would lack the section's tables).
pub fn section<'a>(schema_sql: &'a str, name: &str) -> &'a str {
    let start = format!("-- @{name}\n");
    let start_colon = format!("-- @{name}:");
    let end = format!("-- @end {name}");
    let from = schema_sql
        .find(&start)
        .or_else(|| schema_sql.find(&start_colon));
    match (from, schema_sql.find(&end)) {
        (Some(a), Some(b)) if a < b => &schema_sql[a..b],
        _ => "",
    }
}

/// One non-unique index of a schema file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDef {
    /// Index name.
    pub name: String,
    /// The table it indexes.
    pub table: String,
    /// Its `CREATE INDEX` statement, as in the schema file.
    pub sql: String,
    /// Dropped during a first sync rather than kept up to date.
    pub deferred: bool,
}

/// The non-unique indexes of `schema_sql` before `views_marker` (unique ones are constraints and
/// always stay).
pub fn schema_indexes(schema_sql: &str, views_marker: &str) -> Vec<IndexDef> {
    let tables = schema_sql
        .find(views_marker)
        .map_or(schema_sql, |at| &schema_sql[..at]);
    tables
        .split(';')
        .filter_map(|statement| {
            let sql: String = statement
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            let sql = sql.trim();
            let words: Vec<&str> = sql.split_whitespace().collect();
            match words.as_slice() {
                ["CREATE", "INDEX", name, "ON", table, ..] => {
                    let leading = sql
                        .split_once('(')
                        .and_then(|(_, cols)| cols.split([',', ')']).next())
                        .map(str::trim)
                        .unwrap_or_default();
                    Some(IndexDef {
                        name: name.to_string(),
                        table: table.trim_end_matches('(').to_string(),
                        sql: sql.to_string(),
                        deferred: !CHEAP_LEADING_COLUMNS.contains(&leading),
                    })
                }
                _ => None,
            }
        })
        .collect()
}
