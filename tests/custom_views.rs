//! The `<entity>_custom` views kept page by page: after any sync, finished or killed, each view is
//! exactly what a scan of its rows would make of it; names come with the page that brings them and
//! leave once no row carries them.

use std::collections::BTreeSet;

use crate::common::*;
use kustomer_mirror::custom::view_name;
use kustomer_mirror::entity::custom_view_tables;
use kustomer_mirror::fake::Scale;
use kustomer_mirror::sqlite::views::view_sql;
use kustomer_mirror::sync::SyncOptions;
use rusqlite::Connection;
use serde_json::json;

/// The attribute names the rows of `table` (of `klass`) carry, found the slow way.
fn names_in_rows(conn: &Connection, table: &str, klass: Option<&str>) -> BTreeSet<String> {
    let of_klass = if klass.is_some() {
        "t.klass = ?1"
    } else {
        "?1 IS NULL"
    };
    let sql = format!(
        "SELECT DISTINCT replace(j.key, '\"', '') FROM {table} t, json_each(t.data, '$.attributes.custom') j \
         WHERE json_type(t.data, '$.attributes.custom') = 'object' AND {of_klass}"
    );
    conn.prepare(&sql)
        .unwrap()
        .query_map([klass], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn view_sql_in_file(conn: &Connection, view: &str) -> Option<String> {
    conn.query_row(
        "SELECT sql FROM sqlite_schema WHERE type = 'view' AND name = ?1",
        [view],
        |r| r.get(0),
    )
    .ok()
}

/// Every custom view is what a scan of its rows gives, and a view exists for every table (klass)
/// with rows. Answers how many views were checked.
fn assert_views_match_rows(conn: &Connection) -> usize {
    let mut checked = 0;
    for table in custom_view_tables() {
        let klasses: Vec<Option<String>> = if table == "kobjects" {
            conn.prepare("SELECT DISTINCT klass FROM kobjects")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(|k| Some(k.unwrap()))
                .collect()
        } else if count(conn, &format!("SELECT count(*) FROM {table}")) > 0 {
            vec![None]
        } else {
            vec![]
        };
        for klass in klasses {
            let view = view_name(table, klass.as_deref()).unwrap();
            let names = names_in_rows(conn, table, klass.as_deref());
            let want = view_sql(&view, table, klass.as_deref(), &names);
            assert_eq!(
                view_sql_in_file(conn, &view).as_deref(),
                Some(want.as_str()),
                "{view}"
            );
            checked += 1;
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_views_match_the_stored_rows_even_when_a_sync_is_killed_half_way() {
    let server = fake(Scale::Small).await;
    let db = db();
    kill_after_pages(engine(&server, &db.path, SyncOptions::default()), 12).await;
    let killed = assert_views_match_rows(&open(&db.path));
    assert!(killed > 0, "the killed sync stored pages of custom tables");
    sync_ok(&engine(&server, &db.path, SyncOptions::default())).await;
    let conn = open(&db.path);
    assert!(assert_views_match_rows(&conn) > killed);
    assert!(columns(&conn, "customers_custom").contains(&"loyalty_tier".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_attribute_no_row_carries_any_more_leaves_its_view_after_the_next_sync() {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let db = db();
    let engine = engine(&server, &db.path, SyncOptions::default());
    let id = live(fake.records("customers"))[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let plain = fake.record("customers", &id).unwrap()["attributes"]["custom"].clone();
    let mut extra = plain.clone();
    extra["onlyHereStr"] = json!("x");
    fake.update("customers", &id, json!({ "custom": extra }));
    sync_ok(&engine).await;
    let conn = open(&db.path);
    assert!(columns(&conn, "customers_custom").contains(&"only_here".to_string()));

    // An update that removes nothing keeps the view as it is.
    let other = live(fake.records("customers"))[1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    fake.update("customers", &other, json!({ "name": "Renamed" }));
    sync_ok(&engine).await;
    assert!(columns(&conn, "customers_custom").contains(&"only_here".to_string()));

    fake.update("customers", &id, json!({ "custom": plain }));
    sync_ok(&engine).await;
    let after = columns(&conn, "customers_custom");
    assert!(!after.contains(&"only_here".to_string()), "{after:?}");
    assert!(after.contains(&"loyalty_tier".to_string()), "{after:?}");
    assert_views_match_rows(&conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_attributes_that_are_not_an_object_neither_break_nor_add_to_the_view() {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let db = db();
    let customers = live(fake.records("customers"));
    let id = |i: usize| customers[i]["id"].as_str().unwrap().to_string();
    // Before the first sync, so the first page's view is found by scanning rows like these.
    fake.update("customers", &id(0), json!({ "custom": "not an object" }));
    fake.update("customers", &id(1), json!({ "custom": ["a", "b"] }));
    fake.update("customers", &id(2), json!({ "custom": null }));
    sync_ok(&engine(&server, &db.path, SyncOptions::default())).await;
    let conn = open(&db.path);
    assert_views_match_rows(&conn);
    let text: Option<String> = conn
        .query_row(
            "SELECT loyalty_tier FROM customers_custom WHERE id = ?1",
            [id(0)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(text, None);
    // An update that replaces a whole custom object, then `sync --full`, which rescans every view
    // it touched: the same again.
    fake.update("customers", &id(3), json!({ "custom": 7 }));
    let full = SyncOptions {
        full: true,
        ..SyncOptions::default()
    };
    sync_ok(&engine(&server, &db.path, full)).await;
    assert_views_match_rows(&open(&db.path));
}

on_every_destination! {
    /// Whatever names the data brings (control characters, NUL, quotes, backslashes, dots, brackets,
    /// `$`, 70-byte names sharing 63 bytes), pages commit, the view builds, every column's name is a
    /// bounded identifier and shows its own attribute's value. Through the destination seam, on both
    /// databases, for generated sets of names.
    #[tokio::test(flavor = "multi_thread")]
    async fn hostile_attribute_names_build_a_view_that_reads_each_key(db) {
        // The blocking database clients run off the runtime's threads.
        tokio::task::spawn_blocking(move || hostile_names_on(db)).await.unwrap();
    }
}

/// The body of `hostile_attribute_names_build_a_view_that_reads_each_key`, for one destination.
fn hostile_names_on(db: Db) {
    {
        use kustomer_mirror::record::Record;
        use kustomer_mirror::write::{Mode, PageWrite};
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        // The runner's closure is `Fn`: the destination and the case count live in cells.
        let dest = std::cell::RefCell::new(db.destination());
        let case = std::cell::Cell::new(0u32);
        let mut runner = TestRunner::new(Config {
            cases: 24,
            failure_persistence: None,
            ..Config::default()
        });
        let names = prop::collection::btree_set(
            prop_oneof![
                any::<String>(),
                "[a-z\\x00-\\x1f\"'\\\\.\\[\\]$ *]{1,8}(Str|Num|)",
                "[a-z]{64,70}[A-Z]?Str",
            ],
            1..6,
        );
        runner
            .run(&names, |names| {
                case.set(case.get() + 1);
                let mut dest = dest.borrow_mut();
                let run = dest.begin_run("customers", Mode::Incremental, &[]).unwrap();
                let mut custom = serde_json::Map::new();
                for (i, n) in names.iter().enumerate() {
                    custom.insert(n.clone(), json!(format!("v{i}")));
                }
                let id = format!("case{}", case.get());
                let record = Record::from_value(&json!({"id": id, "type": "customer", "attributes": {"custom": custom}})).unwrap();
                let page = PageWrite {
                    table: "customers",
                    state_key: "customers".into(),
                    klass: None,
                    run_id: run,
                    records: vec![record],
                    rejected: vec![],
                    source: "property".into(),
                    requests: 1,
                    fetched: 1,
                    cursor: None,
                    expected: None,
                    only_newer: false,
                };
                dest.apply_pages(&[page], None).map_err(|e| TestCaseError::fail(e.to_string()))?;
                drop(dest);
                let columns: Vec<String> = if db.is_postgres() {
                    db.query("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'customers_custom'")
                } else {
                    db.query("SELECT name FROM pragma_table_info('customers_custom')")
                }
                .into_iter()
                .map(|r| r[0].clone().unwrap())
                .collect();
                prop_assert!(columns.iter().all(|c| c.len() <= 63 && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')), "{:?}", columns);
                // Each generated attribute (PostgreSQL's jsonb cannot hold NUL: none there) shows its value.
                let all: BTreeSet<String> = rows(&db, "customers")
                    .values()
                    .filter_map(|(d, _)| d["attributes"]["custom"].as_object().cloned())
                    .flat_map(|m| m.keys().cloned().collect::<Vec<_>>())
                    .filter(|n| !(db.is_postgres() && (n.contains('\0') || n.contains('\u{fffd}'))))
                    .collect();
                let plan = kustomer_mirror::custom::columns(&all);
                for (i, n) in names.iter().enumerate() {
                    if db.is_postgres() && (n.contains('\0') || n.contains('\u{fffd}')) {
                        continue;
                    }
                    let (_, column, kind) = plan.iter().find(|(name, _, _)| name == n).unwrap();
                    let shown = db.query(&format!("SELECT \"{column}\" FROM customers_custom WHERE id = '{id}'"));
                    // Text columns show the value; typed ones (a `…Num` name holding text) read
                    // it as their type, which the column's existence and the query above cover.
                    if *kind == kustomer_mirror::custom::Kind::Text {
                        prop_assert_eq!(shown[0][0].clone(), Some(format!("v{i}")), "{:?} as {}", n, column);
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}
