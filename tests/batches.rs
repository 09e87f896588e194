//! The writer's batches (issue 17): pages queued while the writer is busy commit together in one
//! transaction, in the order queued, each with its own counters and cursor; a page that fails
//! reaches only its own pass, whose later pages are not written, while the other pass's pages in the
//! same batch commit; a batch stops taking pages at its deadline. On every destination.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::common::*;
use kustomer_mirror::destination::{Destination, Error, Writer};
use kustomer_mirror::record::Record;
use kustomer_mirror::status::EntityStatus;
use kustomer_mirror::write::{Applied, Cursor, Mode, Outcome, PageWrite, State};
use serde_json::json;

/// A destination that records how many pages each `apply_pages` call committed.
struct Counting {
    inner: Box<dyn Destination>,
    batches: Arc<Mutex<Vec<Result<usize, String>>>>,
}

impl Destination for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn apply_pages(
        &mut self,
        pages: &[PageWrite],
        deadline: Option<std::time::Instant>,
    ) -> Result<Vec<Applied>, Error> {
        let result = self.inner.apply_pages(pages, deadline);
        self.batches.lock().unwrap().push(match &result {
            Ok(a) => Ok(a.len()),
            Err(e) => Err(e.to_string()),
        });
        result
    }
    fn tombstone_ids(
        &mut self,
        table: &'static str,
        run_id: i64,
        ids: &[String],
    ) -> Result<u64, Error> {
        self.inner.tombstone_ids(table, run_id, ids)
    }
    fn bulk_begin(&mut self, table: &'static str) -> Result<bool, Error> {
        self.inner.bulk_begin(table)
    }
    fn bulk_end(&mut self, table: &'static str, rebuild: bool) -> Result<(), Error> {
        self.inner.bulk_end(table, rebuild)
    }
    fn begin_run(&mut self, key: &str, mode: Mode, live: &[i64]) -> Result<i64, Error> {
        self.inner.begin_run(key, mode, live)
    }
    fn finish_run(
        &mut self,
        key: &str,
        run_id: i64,
        mode: Mode,
        outcome: Outcome<'_>,
        requests: Option<u64>,
    ) -> Result<(), Error> {
        self.inner.finish_run(key, run_id, mode, outcome, requests)
    }
    fn record_preflight(
        &mut self,
        entity: &str,
        requests: u64,
        outcome: Outcome<'_>,
    ) -> Result<(), Error> {
        self.inner.record_preflight(entity, requests, outcome)
    }
    fn read_state(&mut self, key: &str) -> Result<State, Error> {
        self.inner.read_state(key)
    }
    fn set_strategy(
        &mut self,
        key: &str,
        strategy: kustomer_mirror::entity::Strategy,
    ) -> Result<(), Error> {
        self.inner.set_strategy(key, strategy)
    }
    fn live_ids_by_created(
        &mut self,
        table: &'static str,
        klass: Option<&str>,
    ) -> Result<Vec<(String, Option<String>)>, Error> {
        self.inner.live_ids_by_created(table, klass)
    }
    fn rescan_custom_views(&mut self, tables: &[&str], all: bool) -> Result<Vec<String>, Error> {
        self.inner.rescan_custom_views(tables, all)
    }
    fn status(&mut self) -> Result<Vec<EntityStatus>, Error> {
        self.inner.status()
    }

    fn record_events(
        &mut self,
        batches: &[kustomer_mirror::write::EventsApplied],
    ) -> Result<(), Error> {
        self.inner.record_events(batches)
    }
}

/// A page of `n` customers of pass `run_id`, ids `<tag>-0…`, every one updated at `at`, which is
/// also the page's cursor. `table` may name a table that does not exist, to make the page fail.
fn page(table: &'static str, run_id: i64, tag: &str, n: usize, at: &str) -> PageWrite {
    let records = (0..n)
        .map(|i| {
            Record::from_value(&json!({
                "type": "customer", "id": format!("{tag}-{i}"),
                "attributes": {"name": format!("{tag} {i}"), "updatedAt": at,
                               "createdAt": "2024-01-01T00:00:00.000Z"}
            }))
            .unwrap()
        })
        .collect();
    PageWrite {
        table,
        state_key: "customers".into(),
        klass: None,
        run_id,
        records,
        rejected: vec![],
        source: format!("test page {tag}"),
        requests: 1,
        fetched: n as u64,
        cursor: Some(Cursor {
            at: at.into(),
            ids: vec![],
        }),
        expected: None,
        only_newer: false,
    }
}

fn conversation_page(run_id: i64, tag: &str, n: usize, at: &str) -> PageWrite {
    let mut p = page("conversations", run_id, tag, n, at);
    p.state_key = "conversations".into();
    p.records = (0..n)
        .map(|i| {
            Record::from_value(&json!({
                "type": "conversation", "id": format!("{tag}-{i}"),
                "attributes": {"status": "open", "updatedAt": at,
                               "createdAt": "2024-01-01T00:00:00.000Z"}
            }))
            .unwrap()
        })
        .collect();
    p
}

/// Holds the writer thread until the returned sender is dropped or sent to.
fn hold(writer: &Writer) -> std::sync::mpsc::Sender<()> {
    let (release, wait) = std::sync::mpsc::channel::<()>();
    drop(writer.submit(move |_| {
        let _ = wait.recv();
    }));
    release
}

fn cursor_of(m: &(impl Mirror + ?Sized), key: &str) -> String {
    m.query(&format!(
        "SELECT CAST(cursor AS TEXT) FROM sync_state WHERE entity = '{key}'"
    ))
    .first()
    .and_then(|r| r.first().cloned().flatten())
    .unwrap_or_default()
}

on_every_destination! {
    #[tokio::test]
    async fn queued_pages_commit_in_one_transaction_and_a_failure_stays_in_its_pass(db) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let inner = {
            let db_settings = db.settings();
            tokio::task::spawn_blocking(move || {
                kustomer_mirror::destination::open(&db_settings, false).unwrap()
            })
            .await
            .unwrap()
        };
        let writer = Writer::spawn(Counting {
            inner,
            batches: batches.clone(),
        })
        .unwrap();
        let conversations = writer
            .call(|d| d.begin_run("conversations", Mode::Incremental, &[]))
            .await
            .unwrap()
            .unwrap();
        let customers = writer
            .call(|d| d.begin_run("customers", Mode::Incremental, &[]))
            .await
            .unwrap()
            .unwrap();

        // 1. Four pages queued behind a busy writer: one transaction, every page answered, the
        //    cursor the last page's.
        let release = hold(&writer);
        let halt = Arc::new(AtomicBool::new(false));
        let answers: Vec<_> = (0..4)
            .map(|i| {
                writer.submit_page(
                    conversation_page(conversations, &format!("a{i}"), 3, &format!("2025-01-0{}T00:00:00.000Z", i + 1)),
                    halt.clone(), None,
                )
            })
            .collect();
        drop(release);
        for answer in answers {
            assert_eq!(answer.await.unwrap().inserted, 3);
        }
        assert_eq!(*batches.lock().unwrap(), vec![Ok(4)], "four queued pages, one transaction");
        assert_eq!(scalar(&db, "SELECT COUNT(*) FROM conversations"), 12);
        assert_eq!(scalar(&db, "SELECT COUNT(*) FROM change_log WHERE entity = 'conversations'"), 12);
        assert_eq!(scalar(&db, &format!("SELECT fetched FROM sync_runs WHERE id = {conversations}")), 12);
        assert!(cursor_of(&db, "conversations").contains("2025-01-04"), "{}", cursor_of(&db, "conversations"));
        batches.lock().unwrap().clear();

        // 2. Two passes interleaved in one batch; the customers pass's second page fails. Its third
        //    page is not written, while every conversations page commits.
        let release = hold(&writer);
        let halt_conv = Arc::new(AtomicBool::new(false));
        let halt_cust = Arc::new(AtomicBool::new(false));
        let c1 = writer.submit_page(conversation_page(conversations, "b1", 2, "2025-02-01T00:00:00.000Z"), halt_conv.clone(), None);
        let k1 = writer.submit_page(page("customers", customers, "k1", 2, "2025-02-01T00:00:00.000Z"), halt_cust.clone(), None);
        let c2 = writer.submit_page(conversation_page(conversations, "b2", 2, "2025-02-02T00:00:00.000Z"), halt_conv.clone(), None);
        let k2 = writer.submit_page(page("no_such_table", customers, "k2", 2, "2025-02-02T00:00:00.000Z"), halt_cust.clone(), None);
        let c3 = writer.submit_page(conversation_page(conversations, "b3", 2, "2025-02-03T00:00:00.000Z"), halt_conv.clone(), None);
        let k3 = writer.submit_page(page("customers", customers, "k3", 2, "2025-02-03T00:00:00.000Z"), halt_cust.clone(), None);
        drop(release);
        assert_eq!(c1.await.unwrap().inserted, 2);
        assert_eq!(k1.await.unwrap().inserted, 2);
        assert_eq!(c2.await.unwrap().inserted, 2);
        let failed = k2.await.unwrap_err().to_string();
        assert!(failed.contains("no_such_table"), "{failed}");
        assert_eq!(c3.await.unwrap().inserted, 2);
        assert!(matches!(k3.await, Err(Error::Halted)));
        let tried = batches.lock().unwrap().clone();
        assert!(
            tried.len() == 6 && tried[0].is_err(),
            "the six pages are tried in one transaction first, then one by one but for the halted one: {tried:?}"
        );
        assert_eq!(scalar(&db, "SELECT COUNT(*) FROM conversations"), 18);
        assert_eq!(scalar(&db, "SELECT COUNT(*) FROM customers"), 2, "only the page before the failure");
        assert_eq!(scalar(&db, "SELECT COUNT(*) FROM customers WHERE id LIKE 'k3-%'"), 0);
        assert!(cursor_of(&db, "conversations").contains("2025-02-03"));
        let cursor = cursor_of(&db, "customers");
        assert!(cursor.contains("2025-02-01"), "the cursor stays at the last page committed: {cursor}");
        assert_eq!(scalar(&db, &format!("SELECT fetched FROM sync_runs WHERE id = {customers}")), 2);

        // 3. A batch stops taking pages at its deadline (here: already passed), after the first.
        let pages = vec![
            conversation_page(conversations, "d1", 1, "2025-03-01T00:00:00.000Z"),
            conversation_page(conversations, "d2", 1, "2025-03-02T00:00:00.000Z"),
        ];
        let applied = writer
            .call(move |d| d.apply_pages(&pages, Some(std::time::Instant::now())))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(applied.len(), 1);
        assert_eq!(scalar(&db, "SELECT COUNT(*) FROM conversations WHERE id LIKE 'd%'"), 1);
        assert!(cursor_of(&db, "conversations").contains("2025-03-01"));
    }
}
