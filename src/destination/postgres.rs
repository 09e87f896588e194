//! [`Destination`] over the PostgreSQL [`Pg`]: each method is one transaction of `postgres`'s, run by
//! [`Pg::with`], which reconnects and runs it again when the server went away mid-way.

use super::{Destination, Error};
use crate::postgres::{Pg, apply, runs};
use crate::status::{EntityStatus, Scope};
use crate::write::{Applied, Mode, Outcome, PageWrite, State};

impl Destination for Pg {
    fn describe(&self) -> String {
        Pg::describe(self)
    }

    fn apply_pages(
        &mut self,
        pages: &[PageWrite],
        deadline: Option<std::time::Instant>,
    ) -> Result<Vec<Applied>, Error> {
        let first = pages.first();
        let context = format!(
            "storing a {} page of run {}{}",
            first.map(|p| p.state_key.as_str()).unwrap_or(""),
            first.map(|p| p.run_id).unwrap_or(0),
            match pages.len() {
                0 | 1 => String::new(),
                n => format!(" with {} pages queued behind it", n - 1),
            }
        );
        // Set while a COMMIT is unanswered: after a reconnect, whether it committed decides
        // between answering its result and running the pages again.
        let mut committing = None;
        Ok(self.with(&context, |c, s| {
            // Kept until answered: a connection lost while asking asks again on the next one.
            if let Some(sent) = &committing {
                let answer = apply::committed(c, sent)?;
                committing = None;
                if let Some(applied) = answer {
                    return Ok(applied);
                }
            }
            apply::apply_pages(c, s, pages, deadline, &mut committing)
        })?)
    }

    fn tombstone_ids(
        &mut self,
        table: &'static str,
        run_id: i64,
        ids: &[String],
    ) -> Result<u64, Error> {
        let context = format!("tombstoning deleted {table} rows (run {run_id})");
        Ok(self.with(&context, |c, _| apply::tombstone_ids(c, table, run_id, ids))?)
    }

    fn bulk_begin(&mut self, table: &'static str) -> Result<bool, Error> {
        let context = format!("preparing the first sync of {table}");
        Ok(self.with(&context, |c, s| s.bulk_begin(c, table))?)
    }

    fn bulk_end(&mut self, table: &'static str, rebuild: bool) -> Result<(), Error> {
        let context = format!("building the indexes of {table}");
        Ok(self.with(&context, |c, s| s.bulk_end(c, table, rebuild))?)
    }

    fn begin_run(&mut self, key: &str, mode: Mode, live: &[i64]) -> Result<i64, Error> {
        let context = format!("starting a {} run of {key}", mode.as_str());
        Ok(self.with(&context, |c, _| runs::begin_run(c, key, mode, live))?)
    }

    fn finish_run(
        &mut self,
        key: &str,
        run_id: i64,
        mode: Mode,
        outcome: Outcome<'_>,
        requests: Option<u64>,
    ) -> Result<(), Error> {
        let context = format!("finishing run {run_id} of {key}");
        Ok(self.with(&context, |c, _| {
            runs::finish_run(c, key, run_id, mode, outcome, requests)
        })?)
    }

    fn record_preflight(
        &mut self,
        entity: &str,
        requests: u64,
        outcome: Outcome<'_>,
    ) -> Result<(), Error> {
        let context = format!("recording the preflight requests of {entity}");
        Ok(self.with(&context, |c, _| {
            runs::record_preflight(c, entity, requests, outcome)
        })?)
    }

    fn read_state(&mut self, key: &str) -> Result<State, Error> {
        let context = format!("reading the sync state of {key}");
        Ok(self.with(&context, |c, _| runs::read_state(c, key))?)
    }

    fn set_strategy(&mut self, key: &str, strategy: crate::entity::Strategy) -> Result<(), Error> {
        let context = format!("saving the strategy of {key}");
        Ok(self.with(&context, |c, _| runs::set_strategy(c, key, strategy))?)
    }

    fn live_ids_by_created(
        &mut self,
        table: &'static str,
        klass: Option<&str>,
    ) -> Result<Vec<(String, Option<String>)>, Error> {
        let context = format!("listing live {table} ids");
        Ok(self.with(&context, |c, _| runs::live_ids_by_created(c, table, klass))?)
    }

    fn rescan_custom_views(&mut self, tables: &[&str], all: bool) -> Result<Vec<String>, Error> {
        Ok(self.with("refreshing the custom attribute views", |c, s| {
            s.rescan_views(c, tables, all)
        })?)
    }

    fn status(&mut self) -> Result<Vec<EntityStatus>, Error> {
        Ok(self.with("reading the sync status", |c, _| {
            crate::postgres::status_of(c, Scope::Full)
        })?)
    }

    fn record_events(&mut self, batches: &[crate::write::EventsApplied]) -> Result<(), Error> {
        // Statistics only: a commit whose answer was lost and is run again counts its batch twice.
        Ok(self.with("recording the webhook events applied", |c, _| {
            runs::record_events(c, batches)
        })?)
    }
}
