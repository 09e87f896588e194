//! The destination contract, as litestream tests every replica client with one suite: each test
//! drives the `Destination` trait directly with hand-built pages (no HTTP, no engine), and checks
//! what the database then holds and what `status` says against values written out here by hand.
//! [`contract!`] runs every test against SQLite and PostgreSQL; a rule of the core (`mirror::plan`,
//! `mirror::cursor`, `mirror::runs`) that changes makes both fail.

use kustomer_mirror::destination::Destination;
use kustomer_mirror::record::{Record, Rejected};
use kustomer_mirror::status::{EntityStatus, RunState};
use kustomer_mirror::write::{Applied, Cursor, EventsApplied, Mode, Outcome, PageWrite};
use serde_json::{Value, json};

use crate::common::{Db, Mirror};

/// Runs each named test (a `fn(&Db)` of this file) against a new SQLite file and a new database of
/// the private PostgreSQL server.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&crate::common::Db::sqlite());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let Some(db) = crate::common::Db::postgres() else {
                        return;
                    };
                    super::$name(&db);
                }
            )*
        }
    };
}

contract!(
    a_first_insert_logs_and_a_second_store_writes_nothing,
    an_update_logs_each_changed_field_with_old_and_new,
    a_tombstone_and_its_resurrection_are_logged_with_deleted_at,
    confirmed_deletes_tombstone_live_rows_once_and_a_second_sighting_revives_them,
    quarantined_items_are_kept_once_and_cleared_by_a_good_copy,
    the_cursor_keeps_ties_and_never_moves_back,
    a_failed_batch_commits_nothing_and_runs_end_as_recorded,
    pushed_records_apply_only_when_newer_and_never_move_the_cursor,
);

const T0: &str = "2024-05-01T00:00:00.000Z";
const T1: &str = "2024-05-01T00:00:01.000Z";
const T2: &str = "2024-05-01T00:00:02.000Z";

/// A conversation as served.
fn conversation(id: &str, status: &str, updated: &str) -> Value {
    json!({
        "type": "conversation", "id": id,
        "attributes": {
            "status": status, "updatedAt": updated, "createdAt": "2024-01-01T00:00:00.000Z",
            "tags": ["a"], "custom": {"tierStr": "gold"}
        },
        "relationships": {"customer": {"data": {"type": "customer", "id": "c1"}}}
    })
}

fn record(value: &Value) -> Record {
    Record::from_value(value).unwrap()
}

fn page(run_id: i64, records: Vec<Record>) -> PageWrite {
    PageWrite {
        table: "conversations",
        state_key: "conversations".into(),
        klass: None,
        run_id,
        records,
        rejected: vec![],
        source: "contract page".into(),
        requests: 1,
        fetched: 0,
        cursor: None,
        expected: None,
        only_newer: false,
    }
}

fn with_cursor(mut p: PageWrite, at: &str, ids: &[&str]) -> PageWrite {
    p.cursor = Some(Cursor {
        at: at.into(),
        ids: ids.iter().map(|s| s.to_string()).collect(),
    });
    p
}

fn apply(dest: &mut dyn Destination, p: PageWrite) -> Applied {
    let out = dest.apply_pages(std::slice::from_ref(&p), None).unwrap();
    assert_eq!(out.len(), 1);
    out[0]
}

fn applied(inserted: u64, updated: u64, unchanged: u64, deleted: u64, rejected: u64) -> Applied {
    Applied {
        inserted,
        updated,
        unchanged,
        deleted,
        rejected,
        stale: 0,
    }
}

/// The change log as `(record_id, op, changes)`, oldest first; `changes` parsed, so that jsonb's
/// spacing does not matter.
fn log(db: &Db) -> Vec<(String, String, Value)> {
    db.query("SELECT record_id, op, changes FROM change_log ORDER BY seq")
        .into_iter()
        .map(|r| {
            let changes = r[2]
                .as_deref()
                .map_or(Value::Null, |t| serde_json::from_str(t).unwrap());
            (r[0].clone().unwrap(), r[1].clone().unwrap(), changes)
        })
        .collect()
}

fn entry(id: &str, op: &str, changes: Value) -> (String, String, Value) {
    (id.to_string(), op.to_string(), changes)
}

/// The rows of `conversations` as `(id, status served, live or gone)`.
fn rows(db: &Db) -> Vec<(String, String, String)> {
    db.query(
        "SELECT id, status, CASE WHEN deleted_at IS NULL THEN 'live' ELSE 'gone' END \
         FROM conversations ORDER BY id",
    )
    .into_iter()
    .map(|r| {
        (
            r[0].clone().unwrap(),
            r[1].clone().unwrap_or_default(),
            r[2].clone().unwrap(),
        )
    })
    .collect()
}

/// The counters of run `id`: requests, fetched, inserted, updated, unchanged, deleted, rejected.
fn counters(db: &Db, id: i64) -> Vec<i64> {
    let row = db.query(&format!(
        "SELECT requests, fetched, inserted, updated, unchanged, deleted, rejected FROM sync_runs WHERE id = {id}"
    ));
    row[0]
        .iter()
        .map(|v| v.as_deref().unwrap().parse().unwrap())
        .collect()
}

fn status_of(dest: &mut dyn Destination, key: &str) -> EntityStatus {
    dest.status()
        .unwrap()
        .into_iter()
        .find(|s| s.entity == key)
        .unwrap()
}

fn a_first_insert_logs_and_a_second_store_writes_nothing(db: &Db) {
    let mut dest = db.destination();
    let run = dest
        .begin_run("conversations", Mode::Incremental, &[])
        .unwrap();
    let served = vec![
        record(&conversation("a", "open", T0)),
        record(&conversation("b", "snoozed", T1)),
    ];
    let first = apply(&mut *dest, page(run, served.clone()));
    assert_eq!(first, applied(2, 0, 0, 0, 0));
    let again = apply(&mut *dest, page(run, served));
    assert_eq!(again, applied(0, 0, 2, 0, 0));
    assert_eq!(
        log(db),
        vec![
            entry("a", "insert", Value::Null),
            entry("b", "insert", Value::Null)
        ]
    );
    assert_eq!(
        rows(db),
        vec![
            ("a".into(), "open".into(), "live".into()),
            ("b".into(), "snoozed".into(), "live".into())
        ]
    );
    assert_eq!(counters(db, run), vec![2, 0, 2, 0, 2, 0, 0]);
    let s = status_of(&mut *dest, "conversations");
    assert_eq!((s.live, s.deleted, s.rejected), (2, 0, 0));
    let last = s.last_run.unwrap();
    assert_eq!((last.id, last.status), (run, RunState::Running));
    assert_eq!((last.inserted, last.unchanged), (2, 2));
}

fn an_update_logs_each_changed_field_with_old_and_new(db: &Db) {
    let mut dest = db.destination();
    let run = dest.begin_run("conversations", Mode::Full, &[]).unwrap();
    apply(
        &mut *dest,
        page(run, vec![record(&conversation("a", "open", T0))]),
    );
    let mut changed = conversation("a", "done", T1);
    changed["attributes"]["tags"] = json!(["a", "vip"]);
    changed["attributes"]["custom"] = json!({"tierStr": "gold", "tierNum": 3});
    let out = apply(&mut *dest, page(run, vec![record(&changed)]));
    assert_eq!(out, applied(0, 1, 0, 0, 0));
    assert_eq!(
        log(db)[1],
        entry(
            "a",
            "update",
            json!({
                "attributes.custom.tierNum": {"old": null, "new": 3},
                "attributes.status": {"old": "open", "new": "done"},
                "attributes.tags": {"old": ["a"], "new": ["a", "vip"]},
                "attributes.updatedAt": {"old": T0, "new": T1}
            })
        )
    );
    assert_eq!(rows(db), vec![("a".into(), "done".into(), "live".into())]);
    // The custom view gained the new attribute in the same transaction.
    let view = db.query("SELECT id, tier_num, tier_str FROM conversations_custom");
    assert_eq!(view.len(), 1);
    assert_eq!(view[0][0].as_deref(), Some("a"));
    assert_eq!(view[0][2].as_deref(), Some("gold"));
    dest.finish_run("conversations", run, Mode::Full, Outcome::Ok, None)
        .unwrap();
    let s = status_of(&mut *dest, "conversations");
    assert_eq!(s.last_run.unwrap().status, RunState::Ok);
    assert!(s.last_success_at.is_some() && s.last_error.is_none());
}

fn a_tombstone_and_its_resurrection_are_logged_with_deleted_at(db: &Db) {
    let mut dest = db.destination();
    let run = dest
        .begin_run("conversations", Mode::Incremental, &[])
        .unwrap();
    apply(
        &mut *dest,
        page(run, vec![record(&conversation("a", "open", T0))]),
    );
    let mut gone = conversation("a", "open", T1);
    gone["attributes"]["deleted"] = json!(true);
    let out = apply(&mut *dest, page(run, vec![record(&gone)]));
    assert_eq!(out, applied(0, 0, 0, 1, 0));
    // Stored again as served, deleted: nothing to write.
    let out = apply(&mut *dest, page(run, vec![record(&gone)]));
    assert_eq!(out, applied(0, 0, 1, 0, 0));
    let back = conversation("a", "open", T2);
    let out = apply(&mut *dest, page(run, vec![record(&back)]));
    assert_eq!(out, applied(0, 1, 0, 0, 0));
    assert_eq!(
        log(db)[1..],
        [
            entry(
                "a",
                "delete",
                json!({
                    "attributes.deleted": {"old": null, "new": true},
                    "attributes.updatedAt": {"old": T0, "new": T1},
                    "deleted_at": {"old": null, "new": T1}
                })
            ),
            entry(
                "a",
                "update",
                json!({
                    "attributes.deleted": {"old": true, "new": null},
                    "attributes.updatedAt": {"old": T1, "new": T2},
                    "deleted_at": {"old": T1, "new": null}
                })
            )
        ]
    );
    let s = status_of(&mut *dest, "conversations");
    assert_eq!((s.live, s.deleted), (1, 0));
    assert_eq!(counters(db, run), vec![4, 0, 1, 1, 1, 1, 0]);
}

fn confirmed_deletes_tombstone_live_rows_once_and_a_second_sighting_revives_them(db: &Db) {
    let mut dest = db.destination();
    let run = dest
        .begin_run("conversations", Mode::Reconcile, &[])
        .unwrap();
    apply(
        &mut *dest,
        page(
            run,
            vec![
                record(&conversation("a", "open", T0)),
                record(&conversation("b", "open", T0)),
            ],
        ),
    );
    let ids = vec!["a".to_string(), "nowhere".to_string()];
    assert_eq!(dest.tombstone_ids("conversations", run, &ids).unwrap(), 1);
    assert_eq!(dest.tombstone_ids("conversations", run, &ids).unwrap(), 0);
    let logged = log(db);
    assert_eq!(logged.len(), 3);
    let (id, op, changes) = &logged[2];
    assert_eq!((id.as_str(), op.as_str()), ("a", "delete"));
    assert_eq!(changes["deleted_at"]["old"], Value::Null);
    assert!(changes["deleted_at"]["new"].is_string(), "{changes}");
    assert_eq!(changes.as_object().unwrap().len(), 1, "{changes}");
    assert_eq!(
        rows(db),
        vec![
            ("a".into(), "open".into(), "gone".into()),
            ("b".into(), "open".into(), "live".into())
        ]
    );
    assert_eq!(counters(db, run)[5], 1);
    let s = status_of(&mut *dest, "conversations");
    assert_eq!((s.live, s.deleted), (1, 1));
    // Served again exactly as stored (the delete was wrong, or it came back): the row lives again,
    // and the log says only that.
    let out = apply(
        &mut *dest,
        page(run, vec![record(&conversation("a", "open", T0))]),
    );
    assert_eq!(out, applied(0, 1, 0, 0, 0));
    let (id, op, changes) = log(db).pop().unwrap();
    assert_eq!((id.as_str(), op.as_str()), ("a", "update"));
    assert_eq!(changes["deleted_at"]["new"], Value::Null);
    assert!(changes["deleted_at"]["old"].is_string(), "{changes}");
    assert_eq!(changes.as_object().unwrap().len(), 1, "{changes}");
    assert_eq!(status_of(&mut *dest, "conversations").deleted, 0);
}

fn quarantined_items_are_kept_once_and_cleared_by_a_good_copy(db: &Db) {
    let mut dest = db.destination();
    let run = dest
        .begin_run("conversations", Mode::Incremental, &[])
        .unwrap();
    let bad = |id: Option<&str>, raw: &str| Rejected {
        id: id.map(str::to_string),
        updated_at: Some(T0.into()),
        reason: "not valid".into(),
        raw: raw.into(),
    };
    let mut p = page(run, vec![]);
    p.rejected = vec![bad(Some("q"), "{\"id\":\"q\",broken"), bad(None, "{broken")];
    assert_eq!(apply(&mut *dest, p.clone()), applied(0, 0, 0, 0, 2));
    // Seen again: the same two rows, each seen twice.
    assert_eq!(apply(&mut *dest, p), applied(0, 0, 0, 0, 2));
    let kept = db.query(
        "SELECT record_key, record_id, times_seen, page FROM rejected_records ORDER BY record_key",
    );
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0][1].as_deref(), Some("q"));
    assert_eq!(kept[0][0].as_deref(), Some("q"));
    assert_eq!(kept[0][2].as_deref(), Some("2"));
    assert_eq!(kept[0][3].as_deref(), Some("contract page"));
    let raw_key = kept[1][0].clone().unwrap();
    assert!(
        raw_key.starts_with("raw:") && raw_key.len() == 36,
        "{raw_key}"
    );
    assert_eq!(kept[1][1], None);
    assert_eq!(status_of(&mut *dest, "conversations").rejected, 2);
    // A good copy of `q` clears its own quarantine row, not the other.
    apply(
        &mut *dest,
        page(run, vec![record(&conversation("q", "open", T0))]),
    );
    let left = db.query("SELECT record_key FROM rejected_records");
    assert_eq!(left, vec![vec![Some(raw_key)]]);
    assert_eq!(status_of(&mut *dest, "conversations").rejected, 1);
    assert_eq!(counters(db, run)[6], 4);
}

fn the_cursor_keeps_ties_and_never_moves_back(db: &Db) {
    let mut dest = db.destination();
    let run = dest
        .begin_run("conversations", Mode::Incremental, &[])
        .unwrap();
    let saved = |dest: &mut dyn Destination| {
        let c = dest.read_state("conversations").unwrap().cursor.unwrap();
        (c.at, c.ids)
    };
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    apply(&mut *dest, with_cursor(page(run, vec![]), T1, &["a"]));
    assert_eq!(saved(&mut *dest), (T1.to_string(), s(&["a"])));
    // The same instant keeps both id lists (an id once).
    apply(&mut *dest, with_cursor(page(run, vec![]), T1, &["b", "a"]));
    assert_eq!(saved(&mut *dest), (T1.to_string(), s(&["a", "b"])));
    // The same instant written without milliseconds is a tie too.
    apply(
        &mut *dest,
        with_cursor(page(run, vec![]), "2024-05-01T00:00:01Z", &["c"]),
    );
    assert_eq!(saved(&mut *dest).1, s(&["a", "b", "c"]));
    // An earlier page never moves it back.
    apply(&mut *dest, with_cursor(page(run, vec![]), T0, &["z"]));
    assert_eq!(saved(&mut *dest).1, s(&["a", "b", "c"]));
    // Half a second later is later, though its text sorts before `…:01Z`'s.
    apply(
        &mut *dest,
        with_cursor(page(run, vec![]), "2024-05-01T00:00:01.500Z", &["d"]),
    );
    assert_eq!(
        saved(&mut *dest),
        ("2024-05-01T00:00:01.500Z".to_string(), s(&["d"]))
    );
    apply(&mut *dest, with_cursor(page(run, vec![]), T2, &["e"]));
    assert_eq!(saved(&mut *dest), (T2.to_string(), s(&["e"])));
    assert_eq!(
        status_of(&mut *dest, "conversations").cursor.as_deref(),
        Some(T2)
    );
}

fn a_failed_batch_commits_nothing_and_runs_end_as_recorded(db: &Db) {
    let mut dest = db.destination();
    let run = dest
        .begin_run("conversations", Mode::Incremental, &[])
        .unwrap();
    let good = with_cursor(
        page(run, vec![record(&conversation("a", "open", T1))]),
        T1,
        &["a"],
    );
    let mut broken = page(run, vec![record(&conversation("b", "open", T1))]);
    broken.table = "no_such_table";
    assert!(dest.apply_pages(&[good.clone(), broken], None).is_err());
    assert_eq!(rows(db), vec![]);
    assert_eq!(log(db), vec![]);
    assert_eq!(counters(db, run), vec![0, 0, 0, 0, 0, 0, 0]);
    assert!(dest.read_state("conversations").unwrap().cursor.is_none());
    // The good page alone, once: counted once.
    assert_eq!(apply(&mut *dest, good), applied(1, 0, 0, 0, 0));
    assert_eq!(counters(db, run), vec![1, 0, 1, 0, 0, 0, 0]);
    dest.finish_run(
        "conversations",
        run,
        Mode::Incremental,
        Outcome::Failed("boom"),
        Some(7),
    )
    .unwrap();
    let s = status_of(&mut *dest, "conversations");
    assert_eq!(
        (s.last_error.as_deref(), s.consecutive_failures),
        (Some("boom"), 1)
    );
    let last = s.last_run.unwrap();
    assert_eq!(
        (last.status, last.requests, last.error.as_deref()),
        (RunState::Failed, 7, Some("boom"))
    );
    // An interrupted run is neither a success nor a failure of the entity.
    let second = dest
        .begin_run("conversations", Mode::Incremental, &[])
        .unwrap();
    dest.finish_run(
        "conversations",
        second,
        Mode::Incremental,
        Outcome::Interrupted,
        None,
    )
    .unwrap();
    let s = status_of(&mut *dest, "conversations");
    assert_eq!(s.consecutive_failures, 1);
    assert_eq!(s.last_run.unwrap().status, RunState::Interrupted);
    // A run left running by a process that went away is marked interrupted by the next one; a
    // live run of this process is left alone.
    let left = dest
        .begin_run("conversations", Mode::Incremental, &[])
        .unwrap();
    let live = dest
        .begin_run("conversations", Mode::Reconcile, &[])
        .unwrap();
    let next = dest
        .begin_run("conversations", Mode::Incremental, &[live])
        .unwrap();
    let states = db.query(&format!(
        "SELECT id, status, error FROM sync_runs WHERE id IN ({left}, {live}, {next}) ORDER BY id"
    ));
    assert_eq!(
        states,
        vec![
            vec![
                Some(left.to_string()),
                Some("interrupted".into()),
                Some("the process stopped before the run finished".into())
            ],
            vec![Some(live.to_string()), Some("running".into()), None],
            vec![Some(next.to_string()), Some("running".into()), None],
        ]
    );
    dest.finish_run("conversations", next, Mode::Incremental, Outcome::Ok, None)
        .unwrap();
    let s = status_of(&mut *dest, "conversations");
    assert_eq!((s.consecutive_failures, s.last_error), (0, None));
}

/// A conversation as a webhook pushes it: with its `rev`.
fn pushed(id: &str, status: &str, rev: u64, updated: &str) -> Record {
    let mut v = conversation(id, status, updated);
    v["attributes"]["rev"] = json!(rev);
    record(&v)
}

fn webhook_page(run_id: i64, records: Vec<Record>) -> PageWrite {
    PageWrite {
        only_newer: true,
        requests: 0,
        ..page(run_id, records)
    }
}

fn pushed_records_apply_only_when_newer_and_never_move_the_cursor(db: &Db) {
    let mut dest = db.destination();
    let poll = dest
        .begin_run("conversations", Mode::Incremental, &[])
        .unwrap();
    apply(
        &mut *dest,
        with_cursor(page(poll, vec![pushed("a", "open", 5, T1)]), T1, &["a"]),
    );
    let hook = dest.begin_run("webhooks", Mode::Webhook, &[]).unwrap();
    // Newer by rev (even with an earlier time), then a duplicate of it, then an older rev with a
    // later time, then the same rev with a later time, then a new record.
    let newer = apply(
        &mut *dest,
        webhook_page(hook, vec![pushed("a", "snoozed", 6, T0)]),
    );
    assert_eq!((newer.updated, newer.stale), (1, 0));
    let duplicate = apply(
        &mut *dest,
        webhook_page(hook, vec![pushed("a", "snoozed", 6, T0)]),
    );
    assert_eq!(
        (duplicate.updated, duplicate.unchanged, duplicate.stale),
        (0, 1, 1)
    );
    let older = apply(
        &mut *dest,
        webhook_page(hook, vec![pushed("a", "done", 5, T2)]),
    );
    assert_eq!((older.updated, older.stale), (0, 1));
    let later = apply(
        &mut *dest,
        webhook_page(hook, vec![pushed("a", "done", 6, T2)]),
    );
    assert_eq!((later.updated, later.stale), (1, 0));
    let new = apply(
        &mut *dest,
        webhook_page(hook, vec![pushed("b", "open", 1, T0)]),
    );
    assert_eq!((new.inserted, new.stale), (1, 0));
    assert_eq!(
        rows(db),
        vec![
            ("a".into(), "done".into(), "live".into()),
            ("b".into(), "open".into(), "live".into())
        ]
    );
    // The pushed changes are logged under the webhook run, field by field.
    let hooked = db.query(&format!(
        "SELECT record_id, op FROM change_log WHERE run_id = {hook} ORDER BY seq"
    ));
    let hooked: Vec<(String, String)> = hooked
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    assert_eq!(
        hooked,
        vec![
            ("a".into(), "update".into()),
            ("a".into(), "update".into()),
            ("b".into(), "insert".into())
        ]
    );
    assert_eq!(
        log(db)[1].2,
        json!({"attributes.rev": {"old": 5, "new": 6}, "attributes.status": {"old": "open", "new": "snoozed"},
               "attributes.updatedAt": {"old": T1, "new": T0}})
    );
    // The run's counters (stale ones count as unchanged); the cursor is the poll's, untouched.
    assert_eq!(counters(db, hook), vec![0, 0, 1, 2, 2, 0, 0]);
    let mode = db.query(&format!("SELECT mode FROM sync_runs WHERE id = {hook}"));
    assert_eq!(mode[0][0].as_deref(), Some("webhook"));
    let s = status_of(&mut *dest, "conversations");
    assert_eq!(s.cursor.as_deref(), Some(T1));
    assert_eq!(s.last_run.unwrap().id, poll);
    dest.finish_run("webhooks", hook, Mode::Webhook, Outcome::Ok, None)
        .unwrap();
    let s = status_of(&mut *dest, "conversations");
    assert!(s.last_success_at.is_none());
    assert!(s.webhook.is_none());
    dest.record_events(&[EventsApplied {
        table: "conversations",
        event: "kustomer.conversation.update".into(),
        event_id: Some("e5".into()),
        record_id: Some("b".into()),
        received_at: T2.into(),
        events: 5,
        changed: 3,
        stale: 2,
        rejected: 0,
    }])
    .unwrap();
    dest.record_events(&[EventsApplied {
        table: "conversations",
        event: "kustomer.conversation.create".into(),
        event_id: None,
        record_id: Some("c".into()),
        received_at: T2.into(),
        events: 1,
        changed: 0,
        stale: 0,
        rejected: 1,
    }])
    .unwrap();
    let w = status_of(&mut *dest, "conversations").webhook.unwrap();
    assert_eq!(
        (
            w.event.as_str(),
            w.event_id,
            w.record_id.as_deref(),
            w.received_at.as_str()
        ),
        ("kustomer.conversation.create", None, Some("c"), T2)
    );
    assert_eq!((w.events, w.changed, w.stale, w.rejected), (6, 3, 2, 1));
}
