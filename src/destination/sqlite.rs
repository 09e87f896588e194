//! [`Destination`] over the SQLite [`Store`]: each method is the `sqlite` function of the same name.

use super::{Destination, Error};
use crate::sqlite::{Store, apply, bulk, runs};
use crate::status::EntityStatus;
use crate::write::{Applied, Mode, Outcome, PageWrite, State};

impl Destination for Store {
    fn describe(&self) -> String {
        self.path().display().to_string()
    }

    fn apply_pages(
        &mut self,
        pages: &[PageWrite],
        deadline: Option<std::time::Instant>,
    ) -> Result<Vec<Applied>, Error> {
        Ok(apply::apply_pages(self, pages, deadline)?)
    }

    fn tombstone_ids(
        &mut self,
        table: &'static str,
        run_id: i64,
        ids: &[String],
    ) -> Result<u64, Error> {
        Ok(apply::tombstone_ids(self, table, run_id, ids)?)
    }

    fn bulk_begin(&mut self, table: &'static str) -> Result<bool, Error> {
        Ok(bulk::begin(self, table)?)
    }

    fn bulk_end(&mut self, table: &'static str, rebuild: bool) -> Result<(), Error> {
        Ok(bulk::end(self, table, rebuild)?)
    }

    fn begin_run(&mut self, key: &str, mode: Mode, live: &[i64]) -> Result<i64, Error> {
        Ok(runs::begin_run(self, key, mode, live)?)
    }

    fn finish_run(
        &mut self,
        key: &str,
        run_id: i64,
        mode: Mode,
        outcome: Outcome<'_>,
        requests: Option<u64>,
    ) -> Result<(), Error> {
        Ok(runs::finish_run(
            self, key, run_id, mode, outcome, requests,
        )?)
    }

    fn record_preflight(
        &mut self,
        entity: &str,
        requests: u64,
        outcome: Outcome<'_>,
    ) -> Result<(), Error> {
        Ok(runs::record_preflight(self, entity, requests, outcome)?)
    }

    fn read_state(&mut self, key: &str) -> Result<State, Error> {
        Ok(runs::read_state(self, key)?)
    }

    fn set_strategy(&mut self, key: &str, strategy: crate::entity::Strategy) -> Result<(), Error> {
        Ok(runs::set_strategy(self, key, strategy)?)
    }

    fn live_ids_by_created(
        &mut self,
        table: &'static str,
        klass: Option<&str>,
    ) -> Result<Vec<(String, Option<String>)>, Error> {
        Ok(runs::live_ids_by_created(self, table, klass)?)
    }

    fn rescan_custom_views(&mut self, tables: &[&str], all: bool) -> Result<Vec<String>, Error> {
        Ok(Store::rescan_custom_views(self, tables, all)?)
    }

    fn status(&mut self) -> Result<Vec<EntityStatus>, Error> {
        Ok(crate::sqlite::status::read(
            self.conn(),
            crate::status::Scope::Full,
        )?)
    }

    fn record_events(&mut self, batches: &[crate::write::EventsApplied]) -> Result<(), Error> {
        Ok(runs::record_events(self, batches)?)
    }
}
