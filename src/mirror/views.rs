//! The custom attribute views, planned once for every destination: which names a view shows, when a
//! page must rewrite it, which views the end of a sync rescans, and the columns a set of names
//! becomes ([`ViewPlan`], by `custom`'s naming rules). A destination implements [`ViewDialect`]:
//! reading what a view shows, scanning the rows for names, and rendering and replacing a view in
//! its SQL (a view that cannot be built is recorded in `view_problems` and never fails a page).
//!
//! Upkeep without scans: the writer knows each view's attribute set ([`Known`]; read back from the
//! database, or found by one scan when that is not possible) and adds the names a page brings in
//! the page's own transaction, so a view never lags the rows it shows. Names leave a view only when
//! an update removed or nulled a custom attribute (the last row having it may be gone): that view
//! is rescanned when the sync ends, and `sync --full` rescans every view it touched.

use std::collections::{BTreeMap, BTreeSet};

use crate::custom::{self, Kind};
use crate::record::Record;

/// One column of a custom view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The attribute name exactly as served (the JSON key under `attributes.custom`).
    pub name: String,
    /// The column's identifier (`[a-z0-9_]`, at most 63 bytes, unique in the view).
    pub column: String,
    /// How the value is typed.
    pub kind: Kind,
}

/// A custom view to render: its name, the table (and klass) it reads, and its columns in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewPlan<'a> {
    /// The view's identifier.
    pub view: &'a str,
    /// The entity table it reads.
    pub table: &'a str,
    /// The klass it is filtered to (kobjects).
    pub klass: Option<&'a str>,
    /// The columns after `id, updated_at, deleted_at` (and `klass`).
    pub columns: Vec<Column>,
}

impl<'a> ViewPlan<'a> {
    /// The attribute names the view shows.
    pub fn names(&self) -> BTreeSet<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// The plan of `view` over `table` (of `klass`) showing `names`.
    pub fn new(
        view: &'a str,
        table: &'a str,
        klass: Option<&'a str>,
        names: &BTreeSet<String>,
    ) -> ViewPlan<'a> {
        let columns = custom::columns(names)
            .into_iter()
            .map(|(name, column, kind)| Column { name, column, kind })
            .collect();
        ViewPlan {
            view,
            table,
            klass,
            columns,
        }
    }
}

/// What a destination does for the custom views, in its SQL, on the connection (and inside the
/// transaction) it was made with.
pub trait ViewDialect {
    /// The destination's error.
    type Error;

    /// Whether a view of this destination can show attribute `name` (PostgreSQL cannot put a NUL
    /// in a literal, and jsonb stores neither NUL nor a lone surrogate as served).
    fn shows(&self, name: &str) -> bool;

    /// The names `view` (of `table`, of `klass`) shows now: `None` when there is no such view,
    /// `Some(None)` when it exists but its names cannot be read back (written by another version).
    fn current(
        &mut self,
        view: &str,
        table: &str,
        klass: Option<&str>,
    ) -> Result<Option<Option<BTreeSet<String>>>, Self::Error>;

    /// The names the rows of `table` (of `klass`) carry, by a scan.
    fn scan(&mut self, table: &str, klass: Option<&str>) -> Result<BTreeSet<String>, Self::Error>;

    /// The klasses the rows of `table` hold (for the rescan of every view of kobjects).
    fn klasses(&mut self, table: &str) -> Result<Vec<String>, Self::Error>;

    /// Replaces the view with `plan`, in a savepoint; `false` when it could not be built (recorded
    /// in `view_problems`, or a reader held it) and nothing changed. Clears the view's problem when
    /// it is built.
    fn replace(&mut self, plan: &ViewPlan<'_>) -> Result<bool, Self::Error>;
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
pub struct PageView {
    view: String,
    table: String,
    klass: Option<String>,
    names: BTreeSet<String>,
    rescan: bool,
}

impl Known {
    /// Records a committed page's view.
    pub fn remember(&mut self, page: PageView) {
        if page.rescan {
            self.rescan.insert((page.table, page.klass));
        }
        self.names.insert(page.view, page.names);
    }

    /// Forgets every attribute set (after a reconnect or a failed transaction, the database is the
    /// truth); the views to rescan stay.
    pub fn forget(&mut self) {
        self.names.clear();
    }
}

/// In the transaction of a page of `table` (of `klass`), after its rows: makes the custom view show
/// every name the page's stored `records` carry. `removed` says an update removed or nulled a
/// custom attribute. Returns what to [`Known::remember`] once the transaction committed.
pub fn page<'r, D: ViewDialect>(
    db: &mut D,
    known: &Known,
    table: &str,
    klass: Option<&str>,
    records: impl IntoIterator<Item = &'r Record>,
    removed: bool,
) -> Result<Option<PageView>, D::Error> {
    let Some(view) = custom::view_name(table, klass) else {
        return Ok(None);
    };
    let mut brought = BTreeSet::new();
    let mut any = false;
    for record in records {
        any = true;
        for name in &record.custom {
            if db.shows(name) && !brought.contains(name) {
                brought.insert(name.clone());
            }
        }
    }
    if !any && !removed {
        return Ok(None);
    }
    let (base, exists) = match known.names.get(&view) {
        Some(names) => (names.clone(), true),
        None => match db.current(&view, table, klass)? {
            Some(Some(names)) => (names, true),
            // A view whose names cannot be read back (another version wrote it: rewritten), or
            // none yet: the rows (this page's included) say which names there are; on a first
            // sync that is this page alone.
            Some(None) | None => (db.scan(table, klass)?, false),
        },
    };
    let mut wanted = base.clone();
    wanted.extend(brought);
    let mut rescan = removed;
    let mut names = wanted.clone();
    if wanted != base || !exists {
        let plan = ViewPlan::new(&view, table, klass, &wanted);
        if !db.replace(&plan)? {
            // Not built: remember what the view still shows, and try again when the sync ends.
            names = base;
            rescan = true;
        }
    }
    Ok(Some(PageView {
        view,
        table: table.to_string(),
        klass: klass.map(str::to_string),
        names,
        rescan,
    }))
}

/// A view the end of a sync rescans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The entity table.
    pub table: String,
    /// The klass (kobjects).
    pub klass: Option<String>,
    /// The view.
    pub view: String,
}

/// The views the end of a sync rescans: those a name may have left, or every view of `tables`
/// when `all` (then everything known is forgotten first: whatever a rescan rewrites, the next page
/// reads it back).
pub fn rescan_targets<D: ViewDialect>(
    db: &mut D,
    known: &mut Known,
    tables: &[&str],
    all: bool,
) -> Result<Vec<Target>, D::Error> {
    let mut targets: Vec<(String, Option<String>)> = Vec::new();
    if all {
        known.names.clear();
        known.rescan.clear();
        for table in tables {
            let Some(entity) = crate::entity::by_name(table).filter(|e| e.custom_views) else {
                continue;
            };
            if entity.per_klass() {
                targets.extend(
                    db.klasses(table)?
                        .into_iter()
                        .map(|k| (table.to_string(), Some(k))),
                );
            } else {
                targets.push((table.to_string(), None));
            }
        }
    } else {
        targets.extend(std::mem::take(&mut known.rescan));
    }
    let mut out = Vec::new();
    for (table, klass) in targets {
        if let Some(view) = custom::view_name(&table, klass.as_deref()) {
            known.names.remove(&view);
            out.push(Target { table, klass, view });
        }
    }
    Ok(out)
}

/// Rescans one view's rows and rewrites it when its attribute set changed; `true` when rewritten.
pub fn refresh<D: ViewDialect>(db: &mut D, target: &Target) -> Result<bool, D::Error> {
    let (table, klass, view) = (&target.table, target.klass.as_deref(), &target.view);
    let names: BTreeSet<String> = db
        .scan(table, klass)?
        .into_iter()
        .filter(|n| db.shows(n))
        .collect();
    if db.current(view, table, klass)? == Some(Some(names.clone())) {
        return Ok(false);
    }
    db.replace(&ViewPlan::new(view, table, klass, &names))
}
