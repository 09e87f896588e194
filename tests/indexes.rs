//! First-sync bulk loading: a table's secondary indexes (and the change log's) are deferred while it
//! receives its first sync and are always back, exactly as `schema.sql` defines them, once a sync of
//! it ends — including after a sync that was killed half-way or a crash that lost an index.

use std::collections::BTreeMap;

use crate::common::*;
use kustomer_mirror::fake::Scale;
use kustomer_mirror::sqlite::Store;
use kustomer_mirror::sync::SyncOptions;
use rusqlite::Connection;

fn options() -> SyncOptions {
    SyncOptions {
        page_size: 25,
        concurrency: 2,
        ..SyncOptions::default()
    }
}

/// name → CREATE statement of every index SQLite did not create itself.
fn indexes(conn: &Connection) -> BTreeMap<String, String> {
    let mut stmt = conn
        .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The indexes a newly created mirror has.
fn fresh_indexes() -> BTreeMap<String, String> {
    let db = db();
    drop(Store::open(&db.path).unwrap());
    indexes(&open(&db.path))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_ends_with_every_index_a_new_mirror_has() {
    let server = fake(Scale::Small).await;
    let db = db();
    let expected = fresh_indexes();
    assert!(expected.contains_key("messages_conversation_id"));
    assert!(expected.contains_key("change_log_record"));
    sync_ok(&engine(&server, &db.path, options())).await;
    let conn = open(&db.path);
    assert_eq!(indexes(&conn), expected);
    // And SQLite uses them: a report filtering messages by conversation does not scan the table.
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE conversation_id = 'x'",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("messages_conversation_id"), "plan: {plan}");
    assert_mirror_equals_fake(&db.path, &server.handle());
    // A second sync, not a first one any more, leaves them as they are.
    sync_ok(&engine(&server, &db.path, options())).await;
    assert_eq!(indexes(&open(&db.path)), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_killed_half_way_gets_its_indexes_when_the_next_sync_ends() {
    let server = fake(Scale::Small).await;
    let db = db();
    let expected = fresh_indexes();
    // From the 12th request on, every answer takes a minute: the passes in flight are all stuck
    // mid-load (in their bulk phase) when the sync is dropped, so none can end one and rebuild.
    // (Killing after N stored pages instead raced with a pass ending between two others.)
    let fake = server.handle();
    fake.on_request(
        12,
        Box::new(|fake| {
            fake.set_faults(kustomer_mirror::fake::Faults {
                slow: 1.0,
                slow_delay: std::time::Duration::from_secs(60),
                ..Default::default()
            })
        }),
    );
    let stuck = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        engine(&server, &db.path, options()).run(&all()),
    )
    .await;
    assert!(
        stuck.is_err(),
        "the sync should have been stuck on slow answers"
    );
    fake.set_faults(kustomer_mirror::fake::Faults::default());
    let killed = indexes(&open(&db.path));
    assert!(
        count(&open(&db.path), "SELECT COUNT(*) FROM change_log") > 0,
        "some pages were stored before the sync got stuck"
    );
    assert!(
        !killed.contains_key("change_log_record"),
        "the change log's indexes are deferred while first syncs load"
    );
    assert_ne!(killed, expected);
    let resumed = engine(&server, &db.path, options());
    sync_ok(&resumed).await;
    assert_eq!(indexes(&open(&db.path)), expected);
    assert_mirror_equals_fake(&db.path, &server.handle());
    assert_no_duplicate_log_rows(&db.path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_lost_after_a_finished_first_sync_are_recreated_by_the_next_sync() {
    let server = fake(Scale::Small).await;
    let db = db();
    let expected = fresh_indexes();
    sync_ok(&engine(&server, &db.path, options())).await;
    {
        let conn = open(&db.path);
        conn.execute_batch(
            "DROP INDEX messages_conversation_id; DROP INDEX customers_email; DROP INDEX change_log_run;",
        )
        .unwrap();
    }
    let again = sync_ok(&engine(&server, &db.path, options())).await;
    assert_eq!(again.totals().0.changed(), 0);
    assert_eq!(indexes(&open(&db.path)), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_that_fails_half_way_still_builds_the_indexes_of_what_it_stored() {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let db = db();
    let expected = fresh_indexes();
    fake.on_request(
        12,
        Box::new(|fake| {
            fake.set_faults(kustomer_mirror::fake::Faults {
                dropped_connection: 1.0,
                ..Default::default()
            })
        }),
    );
    let report = engine(&server, &db.path, options()).run(&all()).await;
    assert!(!report.ok());
    let conn = open(&db.path);
    let stored = count(&conn, "SELECT COUNT(*) FROM change_log");
    assert!(stored > 0, "some pages were stored before the failure");
    assert_eq!(indexes(&conn), expected);
}
