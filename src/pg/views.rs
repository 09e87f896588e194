//! The per-org custom attribute views in PostgreSQL, named and typed by [`crate::custom`]'s rules with
//! real types (`numeric`, `timestamptz`, `boolean`, `text`). Kept up to date as in SQLite: a page
//! adds the names it brings in its own transaction, and views a name may have left are rescanned
//! when the sync ends. PostgreSQL re-renders a view's SQL, so a view's attribute set is kept in its
//! comment (a JSON array) and read back from there.

use std::collections::{BTreeMap, BTreeSet};

use postgres::GenericClient;

use crate::custom::{self, Kind};
use crate::record::Record;

/// SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The view's SQL for these attribute names.
pub fn view_sql(view: &str, table: &str, klass: Option<&str>, names: &BTreeSet<String>) -> String {
    let mut sql = format!("CREATE VIEW \"{view}\" AS SELECT id, updated_at, deleted_at");
    if klass.is_some() {
        sql.push_str(", klass");
    }
    for (name, column, kind) in custom::columns(names) {
        let value = format!("(data -> 'attributes' -> 'custom' -> {})", quote(&name));
        let expr = match kind {
            Kind::Text => format!("km_text{value}"),
            Kind::Number => format!("km_num{value}"),
            Kind::Time => format!("km_ts{value}"),
            Kind::Bool => format!("km_bool{value}"),
        };
        sql.push_str(&format!(", {expr} AS \"{column}\""));
    }
    sql.push_str(&format!(" FROM {table}"));
    if let Some(k) = klass {
        sql.push_str(&format!(" WHERE klass = {}", quote(k)));
    }
    sql
}

/// Attribute names found in a table (of one klass), by a scan.
fn names(
    c: &mut impl GenericClient,
    table: &str,
    klass: Option<&str>,
) -> Result<BTreeSet<String>, postgres::Error> {
    let sql = format!(
        "SELECT DISTINCT jsonb_object_keys(data -> 'attributes' -> 'custom') FROM {table} \
         WHERE jsonb_typeof(data -> 'attributes' -> 'custom') = 'object' AND {}",
        if klass.is_some() {
            "klass = $1"
        } else {
            "$1::text IS NULL"
        }
    );
    let rows = c.query(&sql, &[&klass])?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, &str>(0).to_string())
        .filter(|n| usable(n))
        .collect())
}

/// A name PostgreSQL can put in a literal (no NUL), and that jsonb stores as is (no U+FFFD from a
/// replaced lone surrogate or NUL).
fn usable(name: &str) -> bool {
    !name.contains('\0') && !name.contains('\u{fffd}')
}

/// The attribute set recorded in the view's comment; `None` when there is no view, `Some(None)`
/// when the view has no readable comment.
fn current(
    c: &mut impl GenericClient,
    view: &str,
) -> Result<Option<Option<BTreeSet<String>>>, postgres::Error> {
    let row = c.query_opt(
        "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c \
         WHERE c.relname = $1 AND c.relkind = 'v' AND c.relnamespace = current_schema()::regnamespace",
        &[&view],
    )?;
    Ok(row.map(|r| {
        r.get::<_, Option<&str>>(0)
            .and_then(|text| serde_json::from_str::<BTreeSet<String>>(text).ok())
    }))
}

/// How long replacing a view waits for readers of it (replacing takes an exclusive lock on the
/// view) before giving up until the next page: a BI tool's long query must not stall the sync.
const VIEW_LOCK_TIMEOUT: &str = "2s";

/// Replaces the view with one showing `names`, inside the caller's transaction. `false` when a
/// reader held the view too long: nothing changed, and a later page tries again.
fn write(
    c: &mut impl GenericClient,
    view: &str,
    table: &str,
    klass: Option<&str>,
    names: &BTreeSet<String>,
) -> Result<bool, postgres::Error> {
    // The JSON text of a set of strings always serializes.
    let comment = serde_json::to_string(names).unwrap_or_else(|_| "[]".to_string());
    let before: String = c.query_one("SHOW lock_timeout", &[])?.get(0);
    c.batch_execute(&format!(
        "SAVEPOINT km_view; SET LOCAL lock_timeout = '{VIEW_LOCK_TIMEOUT}'"
    ))?;
    let replaced = c.batch_execute(&format!(
        "DROP VIEW IF EXISTS \"{view}\"; {}; COMMENT ON VIEW \"{view}\" IS {}",
        view_sql(view, table, klass, names),
        quote(&comment)
    ));
    match replaced {
        Ok(()) => {
            c.batch_execute("RELEASE SAVEPOINT km_view")?;
            c.execute("DELETE FROM view_problems WHERE view = $1", &[&view])?;
        }
        Err(e) if e.code().map(|s| s.code()) == Some("55P03") => {
            c.batch_execute("ROLLBACK TO SAVEPOINT km_view")?;
            tracing::warn!(view = %view, "a reader held the custom attribute view; it is updated with a later page");
            return Ok(false);
        }
        // A view is a convenience: one that cannot be built never fails the rows it shows. The
        // page commits without it, and a later page (or the sync's end) tries again.
        Err(e) if e.as_db_error().is_some() => {
            c.batch_execute("ROLLBACK TO SAVEPOINT km_view")?;
            let problem = e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string());
            c.execute(
                "INSERT INTO view_problems (view, entity, error, failed_at) VALUES ($1, $2, $3, now()) \
                 ON CONFLICT (view) DO UPDATE SET entity = excluded.entity, error = excluded.error, \
                 failed_at = excluded.failed_at",
                &[&view, &custom::view_entity(table, klass), &problem],
            )?;
            tracing::warn!(view = %view, error = %e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string()), "could not build the custom attribute view; the rows are stored, and the view is tried again with a later page");
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    c.execute("SELECT set_config('lock_timeout', $1, true)", &[&before])?;
    tracing::info!(view = %view, columns = names.len(), "custom attribute view updated");
    Ok(true)
}

/// What the writer knows about the custom views: their attribute sets, and which need a rescan.
#[derive(Debug, Default, Clone)]
pub struct Known {
    names: BTreeMap<String, BTreeSet<String>>,
    rescan: BTreeSet<(String, Option<String>)>,
}

/// A page's change to its custom view, remembered once the page committed.
#[derive(Debug)]
pub struct PagePlan {
    view: String,
    table: String,
    klass: Option<String>,
    names: BTreeSet<String>,
    rescan: bool,
}

/// In a page's transaction, after its rows: makes the custom view show every name the page's
/// records carry. `removed` says an update removed or nulled a custom attribute.
pub fn plan_page(
    c: &mut impl GenericClient,
    known: &Known,
    table: &str,
    klass: Option<&str>,
    records: &[Record],
    removed: bool,
) -> Result<Option<PagePlan>, postgres::Error> {
    let Some(view) = custom::view_name(table, klass) else {
        return Ok(None);
    };
    if records.is_empty() && !removed {
        return Ok(None);
    }
    let (base, exists) = match known.names.get(&view) {
        Some(names) => (names.clone(), true),
        None => match current(c, &view)? {
            Some(Some(names)) => (names, true),
            Some(None) => (names(c, table, klass)?, true),
            None => (names(c, table, klass)?, false),
        },
    };
    let mut wanted = base.clone();
    for record in records {
        for name in &record.custom {
            if usable(name) {
                wanted.insert(name.clone());
            }
        }
    }
    if (wanted != base || !exists) && !write(c, &view, table, klass, &wanted)? {
        return Ok(None);
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

    /// Forgets everything (after a reconnect or a failed transaction, the server is the truth).
    pub fn forget(&mut self) {
        self.names.clear();
    }
}

/// When a sync ends: rescans the views a name may have left (all views of `tables` when `all`).
/// Returns the views rewritten.
pub fn rescan(
    c: &mut postgres::Client,
    known: &mut Known,
    tables: &[&str],
    all: bool,
) -> Result<Vec<String>, postgres::Error> {
    let mut targets: Vec<(String, Option<String>)> = Vec::new();
    if all {
        known.names.clear();
        known.rescan.clear();
        for table in tables {
            let Some(entity) = crate::entity::by_name(table).filter(|e| e.custom_views) else {
                continue;
            };
            if entity.per_klass() {
                let rows = c.query(
                    &format!("SELECT DISTINCT klass FROM {table} ORDER BY klass"),
                    &[],
                )?;
                targets.extend(rows.iter().map(|r| (table.to_string(), Some(r.get(0)))));
            } else {
                targets.push((table.to_string(), None));
            }
        }
    } else {
        targets.extend(std::mem::take(&mut known.rescan));
    }
    let mut rewritten = Vec::new();
    for (table, klass) in targets {
        let Some(view) = custom::view_name(&table, klass.as_deref()) else {
            continue;
        };
        known.names.remove(&view);
        let mut tx = c.transaction()?;
        let names = names(&mut tx, &table, klass.as_deref())?;
        if current(&mut tx, &view)? != Some(Some(names.clone()))
            && write(&mut tx, &view, &table, klass.as_deref(), &names)?
        {
            rewritten.push(view);
        }
        tx.commit()?;
    }
    Ok(rewritten)
}
