//! Applying pages to a real SQLite file: idempotent upserts, change-log rows only for real changes
//! (with the changed paths' old and new values), a cursor that never moves back, tombstones.

use kustomer_mirror::record::Record;
use kustomer_mirror::sqlite::Store;
use kustomer_mirror::sqlite::apply::{Cursor, PageWrite, apply_page, tombstone_ids};
use kustomer_mirror::sqlite::runs::{Mode, begin_run, read_state};
use serde_json::json;

fn record(id: &str, status: &str, updated: &str) -> Record {
    Record::from_value(&json!({
        "type": "conversation", "id": id,
        "attributes": {"status": status, "updatedAt": updated, "createdAt": "2024-01-01T00:00:00.000Z", "tags": ["a"]},
        "relationships": {"customer": {"data": {"type": "customer", "id": "c1"}}}
    }))
    .unwrap()
}

fn page(run_id: i64, records: Vec<Record>, cursor: Option<&str>) -> PageWrite {
    PageWrite {
        table: "conversations",
        state_key: "conversations".into(),
        klass: None,
        run_id,
        records,
        rejected: vec![],
        source: "test page".into(),
        requests: 1,
        fetched: 0,
        cursor: cursor.map(|at| Cursor {
            at: at.into(),
            ids: vec![],
        }),
        expected: None,
        only_newer: false,
    }
}

fn log_rows(store: &Store) -> Vec<(String, String, Option<String>)> {
    let mut stmt = store
        .conn()
        .prepare("SELECT record_id, op, changes FROM change_log ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn applying_the_same_page_twice_writes_once_and_logs_only_real_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("m.db")).unwrap();
    let run = begin_run(&mut store, "conversations", Mode::Incremental, &[]).unwrap();
    let first = vec![
        record("a", "open", "2024-05-01T00:00:00.000Z"),
        record("b", "open", "2024-05-01T00:00:01.000Z"),
    ];
    let applied = apply_page(
        &mut store,
        &page(run, first.clone(), Some("2024-05-01T00:00:01.000Z")),
    )
    .unwrap();
    assert_eq!(
        (applied.inserted, applied.updated, applied.unchanged),
        (2, 0, 0)
    );
    let again = apply_page(
        &mut store,
        &page(run, first, Some("2024-05-01T00:00:01.000Z")),
    )
    .unwrap();
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 2));
    assert_eq!(log_rows(&store).len(), 2);

    let changed = apply_page(
        &mut store,
        &page(
            run,
            vec![record("a", "done", "2024-05-02T00:00:00.000Z")],
            None,
        ),
    )
    .unwrap();
    assert_eq!(changed.updated, 1);
    let rows = log_rows(&store);
    let (id, op, changes) = rows.last().unwrap();
    assert_eq!((id.as_str(), op.as_str()), ("a", "update"));
    let changes: serde_json::Value = serde_json::from_str(changes.as_deref().unwrap()).unwrap();
    assert_eq!(
        changes["attributes.status"],
        json!({"old": "open", "new": "done"})
    );
    assert!(
        changes.get("attributes.tags").is_none(),
        "unchanged paths are not listed"
    );
    let status: String = store
        .conn()
        .query_row("SELECT status FROM conversations WHERE id = 'a'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "done");
}

#[test]
fn the_cursor_never_moves_backwards_and_collects_ids_at_its_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("m.db")).unwrap();
    let run = begin_run(&mut store, "conversations", Mode::Incremental, &[]).unwrap();
    let mut p = page(run, vec![], Some("2024-05-02T00:00:00.000Z"));
    p.cursor.as_mut().unwrap().ids = vec!["x".into()];
    apply_page(&mut store, &p).unwrap();
    let mut same = page(run, vec![], Some("2024-05-02T00:00:00.000Z"));
    same.cursor.as_mut().unwrap().ids = vec!["y".into()];
    apply_page(&mut store, &same).unwrap();
    apply_page(
        &mut store,
        &page(run, vec![], Some("2024-05-01T00:00:00.000Z")),
    )
    .unwrap();
    let state = read_state(&store, "conversations").unwrap();
    assert_eq!(
        state.cursor,
        Some(Cursor {
            at: "2024-05-02T00:00:00.000Z".into(),
            ids: vec!["x".into(), "y".into()]
        })
    );
}

#[test]
fn a_record_deleted_upstream_becomes_a_tombstone_with_a_delete_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("m.db")).unwrap();
    let run = begin_run(&mut store, "conversations", Mode::Full, &[]).unwrap();
    apply_page(
        &mut store,
        &page(
            run,
            vec![
                record("a", "open", "2024-05-01T00:00:00.000Z"),
                record("b", "open", "2024-05-01T00:00:00.000Z"),
            ],
            None,
        ),
    )
    .unwrap();
    let mut deleted = record("a", "open", "2024-06-01T00:00:00.000Z");
    deleted.deleted = true;
    let applied = apply_page(&mut store, &page(run, vec![deleted], None)).unwrap();
    assert_eq!(applied.deleted, 1);
    let n = tombstone_ids(&mut store, "conversations", run, &["b".to_string()]).unwrap();
    assert_eq!(n, 1, "b is gone upstream");
    let live: i64 = store
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM conversations WHERE deleted_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(live, 0);
    let ops: Vec<String> = log_rows(&store).into_iter().map(|r| r.1).collect();
    assert_eq!(ops, ["insert", "insert", "delete", "delete"]);
    let counted: i64 = store
        .conn()
        .query_row("SELECT deleted FROM sync_runs WHERE id = ?1", [run], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(counted, 2);
}
