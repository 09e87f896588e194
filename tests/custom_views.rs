//! The `<entity>_custom` views kept page by page: after any sync, finished or killed, each view is
//! exactly what a scan of its rows would make of it; names come with the page that brings them and
//! leave once no row carries them.

use std::collections::BTreeSet;

use crate::common::*;
use kustomer_mirror::entity::custom_view_tables;
use kustomer_mirror::fake::Scale;
use kustomer_mirror::store::views::{view_name, view_sql};
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
