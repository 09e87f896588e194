//! The custom attribute views in PostgreSQL: [`crate::mirror::views`] decides which names each
//! view shows and when it is rewritten; this module renders a [`ViewPlan`] with real types
//! (`numeric`, `timestamptz`, `boolean`, `text`), scans rows for names, and replaces a view inside
//! a savepoint. PostgreSQL re-renders a view's SQL, so a view's attribute set is kept in its
//! comment (a JSON array) and read back from there.

use std::collections::BTreeSet;

use postgres::GenericClient;

use crate::custom::{self, Kind};
use crate::mirror::views::{self, Known, ViewDialect, ViewPlan};

use crate::escape::literal as quote;

/// A view plan in PostgreSQL's SQL.
fn render(plan: &ViewPlan<'_>) -> String {
    let mut sql = format!(
        "CREATE VIEW \"{}\" AS SELECT id, updated_at, deleted_at",
        plan.view
    );
    if plan.klass.is_some() {
        sql.push_str(", klass");
    }
    for c in &plan.columns {
        let value = format!("(data -> 'attributes' -> 'custom' -> {})", quote(&c.name));
        let expr = match c.kind {
            Kind::Text => format!("km_text{value}"),
            Kind::Number => format!("km_num{value}"),
            Kind::Time => format!("km_ts{value}"),
            Kind::Bool => format!("km_bool{value}"),
        };
        sql.push_str(&format!(", {expr} AS \"{}\"", c.column));
    }
    sql.push_str(&format!(" FROM {}", plan.table));
    if let Some(k) = plan.klass {
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
fn write(c: &mut impl GenericClient, plan: &ViewPlan<'_>) -> Result<bool, postgres::Error> {
    let (view, table, klass) = (plan.view, plan.table, plan.klass);
    // The JSON text of a set of strings always serializes.
    let comment = serde_json::to_string(&plan.names()).unwrap_or_else(|_| "[]".to_string());
    let before: String = c.query_one("SHOW lock_timeout", &[])?.get(0);
    c.batch_execute(&format!(
        "SAVEPOINT km_view; SET LOCAL lock_timeout = '{VIEW_LOCK_TIMEOUT}'"
    ))?;
    let replaced = c.batch_execute(&format!(
        "DROP VIEW IF EXISTS \"{view}\"; {}; COMMENT ON VIEW \"{view}\" IS {}",
        render(plan),
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
    tracing::info!(view = %view, columns = plan.columns.len(), "custom attribute view updated");
    Ok(true)
}

/// PostgreSQL's side of the custom views, on a session (inside the page's transaction, or the
/// rescan's).
pub struct Dialect<'c, C: GenericClient>(pub &'c mut C);

impl<C: GenericClient> ViewDialect for Dialect<'_, C> {
    type Error = postgres::Error;

    fn shows(&self, name: &str) -> bool {
        usable(name)
    }

    fn current(
        &mut self,
        view: &str,
        _table: &str,
        _klass: Option<&str>,
    ) -> Result<Option<Option<BTreeSet<String>>>, postgres::Error> {
        current(self.0, view)
    }

    fn scan(
        &mut self,
        table: &str,
        klass: Option<&str>,
    ) -> Result<BTreeSet<String>, postgres::Error> {
        names(self.0, table, klass)
    }

    fn klasses(&mut self, table: &str) -> Result<Vec<String>, postgres::Error> {
        let rows = self.0.query(
            &format!("SELECT DISTINCT klass FROM {table} ORDER BY klass"),
            &[],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn replace(&mut self, plan: &ViewPlan<'_>) -> Result<bool, postgres::Error> {
        write(self.0, plan)
    }
}

/// In a page's transaction, after its rows: see [`views::page`].
pub fn plan_page<'r>(
    c: &mut impl GenericClient,
    known: &Known,
    table: &str,
    klass: Option<&str>,
    records: impl IntoIterator<Item = &'r crate::record::Record>,
    removed: bool,
) -> Result<Option<views::PageView>, postgres::Error> {
    views::page(&mut Dialect(c), known, table, klass, records, removed)
}

/// When a sync ends: rescans the views a name may have left (all views of `tables` when `all`),
/// each in a transaction of its own. Returns the views rewritten.
pub fn rescan(
    c: &mut postgres::Client,
    known: &mut Known,
    tables: &[&str],
    all: bool,
) -> Result<Vec<String>, postgres::Error> {
    let targets = views::rescan_targets(&mut Dialect(c), known, tables, all)?;
    let mut rewritten = Vec::new();
    for target in targets {
        let mut tx = c.transaction()?;
        let done = views::refresh(&mut Dialect(&mut tx), &target)?;
        tx.commit()?;
        if done {
            rewritten.push(target.view);
        }
    }
    Ok(rewritten)
}
