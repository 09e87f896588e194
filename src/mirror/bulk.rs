//! The first-sync phase's bookkeeping, for both destinations: which passes are bulk-loading which
//! tables, which deferred indexes a first sync drops, and which tables' indexes must exist again
//! when a pass begins or ends. The executors answer whether a table has finished a sync, and drop
//! and build indexes in their SQL.

use std::collections::HashMap;

use crate::ddl::IndexDef;

/// The change log's table name: its indexes are deferred while any table bulk-loads.
pub const CHANGE_LOG: &str = "change_log";

/// Passes currently bulk-loading, per table.
#[derive(Debug, Default)]
pub struct Bulk {
    tables: HashMap<String, usize>,
}

impl Bulk {
    /// Whether `table` is in its first sync (most records written are new).
    pub fn is_loading(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    /// When a pass of `table` that is not its first sync begins: the tables whose indexes a crash
    /// may have left missing and no bulk load now defers (the table unless another pass of it
    /// loads, the change log unless any pass loads), to rebuild.
    pub fn settled<'t>(&self, table: &'t str) -> Vec<&'t str> {
        let mut out = Vec::new();
        if !self.is_loading(table) {
            out.push(table);
        }
        if self.tables.is_empty() {
            out.push(CHANGE_LOG);
        }
        out
    }

    /// The indexes of `defs` a first sync of `table` drops: its deferred ones and the change log's.
    pub fn deferred<'d>(defs: &'d [IndexDef], table: &str) -> Vec<&'d IndexDef> {
        defs.iter()
            .filter(|d| d.deferred && (d.table == table || d.table == CHANGE_LOG))
            .collect()
    }

    /// A pass of `table` dropped its deferred indexes and loads.
    pub fn enter(&mut self, table: &str) {
        *self.tables.entry(table.to_string()).or_default() += 1;
    }

    /// A loading pass of `table` ends: the tables whose indexes to build now (the table when it
    /// was the last pass of it, the change log when it was the last of all), none when not
    /// `rebuild_now` (an interrupted pass leaves that to the next).
    pub fn leave(&mut self, table: &str, rebuild_now: bool) -> Vec<String> {
        if let Some(n) = self.tables.get_mut(table) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.tables.remove(table);
            }
        }
        if !rebuild_now {
            return Vec::new();
        }
        let mut out = Vec::new();
        if !self.is_loading(table) {
            out.push(table.to_string());
        }
        if self.tables.is_empty() {
            out.push(CHANGE_LOG.to_string());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_pass_out_rebuilds_its_table_and_the_last_of_all_the_change_log() {
        let mut bulk = Bulk::default();
        assert_eq!(bulk.settled("customers"), vec!["customers", CHANGE_LOG]);
        bulk.enter("customers");
        bulk.enter("customers");
        bulk.enter("notes");
        assert!(bulk.is_loading("customers"));
        assert_eq!(bulk.settled("customers"), Vec::<&str>::new());
        assert_eq!(bulk.settled("users"), vec!["users"]);
        assert_eq!(bulk.leave("customers", true), Vec::<String>::new());
        assert_eq!(bulk.leave("customers", true), vec!["customers"]);
        // Interrupted: nothing built now, the next pass does it.
        assert_eq!(bulk.leave("notes", false), Vec::<String>::new());
        assert!(!bulk.is_loading("notes"));
        assert_eq!(bulk.settled("notes"), vec!["notes", CHANGE_LOG]);
    }

    #[test]
    fn a_first_sync_defers_its_tables_and_the_change_logs_deferred_indexes_only() {
        let def = |name: &str, table: &str, deferred: bool| IndexDef {
            name: name.into(),
            table: table.into(),
            sql: String::new(),
            deferred,
        };
        let defs = vec![
            def("a", "customers", true),
            def("b", "customers", false),
            def("c", "notes", true),
            def("d", CHANGE_LOG, true),
        ];
        let names: Vec<&str> = Bulk::deferred(&defs, "customers")
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(names, vec!["a", "d"]);
    }
}
