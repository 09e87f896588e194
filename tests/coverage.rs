//! The coverage entities (issue 30): work sessions, SLAs, schedules, snoozes, brands, shortcuts,
//! CSAT forms, team routing settings and assistants are mirrored exactly from the fake on every
//! destination (work sessions incrementally through search), their deletes become tombstones, and
//! an org or key that does not offer one marks it unsupported, with the reason, while the rest syncs.
//! Expected rows are the fake's own records; expected reasons are hand-written.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;
use kustomer_mirror::fake::Scale;
use kustomer_mirror::sync::SyncOptions;
use kustomer_mirror::write::Mode;

/// The coverage entities, written out here rather than read from `entity.rs`.
pub const COVERAGE: [&str; 10] = [
    "work_sessions",
    "slas",
    "schedules",
    "holidays",
    "snoozes",
    "brands",
    "shortcuts",
    "satisfaction_forms",
    "team_routing_settings",
    "assistants",
];

/// `status --json` of the mirror, by entity.
async fn status(url: &str, db: &Db) -> std::collections::HashMap<String, Value> {
    let mut cmd = mirror_cmd_db(url, KEY, db);
    cmd.args(["status", "--json"]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", text(&out));
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .map(|s| (s["entity"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

/// `sync` (plus `extra` arguments) through the binary; its output, after checking it succeeded.
async fn sync(url: &str, db: &Db, extra: &[&str]) -> String {
    let mut cmd = mirror_cmd_db(url, KEY, db);
    cmd.arg("sync").args(extra);
    let out = output(cmd).await;
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    log
}

fn one_live_id(fake: &kustomer_mirror::fake::FakeHandle, entity: &str, skip: usize) -> String {
    live(fake.records(entity))
        .get(skip)
        .and_then(|r| r["id"].as_str())
        .unwrap_or_else(|| panic!("the fake has no {entity}"))
        .to_string()
}

on_every_destination! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn coverage_entities_are_mirrored_exactly_incrementally_and_with_tombstones(db) {
        let server = fake(Scale::Small).await;
        let f = server.handle();
        let engine = engine(&server, &db, SyncOptions::default());
        let first = sync_ok(&engine).await;
        for name in COVERAGE {
            assert!(f.count(name) > 0, "the fake serves no {name}");
            assert_eq!(
                scalar(&db, &format!("SELECT COUNT(*) FROM {name}")),
                f.count(name) as i64,
                "{name}"
            );
            let pass = first.passes.iter().find(|p| p.key == name).unwrap();
            assert_eq!(pass.unsupported(), None, "{name}");
        }
        assert_mirror_equals_fake(&db, &f);
        assert_eq!(
            db.query("SELECT strategy, unsupported FROM sync_state WHERE entity = 'work_sessions'"),
            [[Some("search".to_string()), None]]
        );

        // Upstream changes: sessions updated (search finds them), an SLA added, a schedule renamed,
        // a shortcut soft-deleted, a brand and an assistant hard-deleted (gone from the list).
        let updated = f.update_many("work_sessions", 5);
        let sla = f.insert("slas", None);
        let schedule = one_live_id(&f, "schedules", 0);
        f.update("schedules", &schedule, json!({"name": "Weekend cover ☕"}));
        let shortcut = one_live_id(&f, "shortcuts", 1);
        assert!(f.soft_delete("shortcuts", &shortcut));
        let brand = live(f.records("brands"))
            .into_iter()
            .find(|b| b["attributes"]["default"] != true)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(f.hard_delete("brands", &brand));
        let assistant = one_live_id(&f, "assistants", 0);
        assert!(f.hard_delete("assistants", &assistant));
        // Holidays only arrive inside the schedules list: one soft-deleted there, one gone from it
        // (confirmed by its own 404 at /v1/holidays/{id}).
        let holiday_gone = one_live_id(&f, "holidays", 0);
        assert!(f.hard_delete("holidays", &holiday_gone));
        let holiday_off = one_live_id(&f, "holidays", 1);
        assert!(f.soft_delete("holidays", &holiday_off));
        // Past the search index lag.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let second = sync_ok(&engine).await;
        assert_mirror_equals_fake(&db, &f);
        let sessions = second.passes.iter().find(|p| p.key == "work_sessions").unwrap();
        assert_eq!(sessions.mode, Mode::Incremental);
        assert_eq!(sessions.applied.updated, 5, "{sessions:?}");
        assert!(
            (sessions.fetched as usize) < f.count("work_sessions"),
            "an incremental pass reads only what changed: {sessions:?}"
        );
        let logged = |entity: &str, op: &str, id: &str| {
            scalar(
                &db,
                &format!(
                    "SELECT COUNT(*) FROM change_log WHERE entity = '{entity}' AND op = '{op}' AND record_id = '{id}'"
                ),
            )
        };
        for id in &updated {
            assert_eq!(logged("work_sessions", "update", id), 1, "{id}");
        }
        assert_eq!(logged("slas", "insert", &sla), 1);
        assert_eq!(logged("schedules", "update", &schedule), 1);
        assert_eq!(logged("shortcuts", "delete", &shortcut), 1);
        assert_eq!(logged("brands", "delete", &brand), 1);
        assert_eq!(logged("assistants", "delete", &assistant), 1);
        assert_eq!(logged("holidays", "delete", &holiday_gone), 1);
        assert_eq!(logged("holidays", "delete", &holiday_off), 1);
        let tombstone = |table: &str, id: &str| {
            db.query(&format!("SELECT deleted_at IS NOT NULL FROM {table} WHERE id = '{id}'"))
        };
        let yes = if db.is_postgres() { "t" } else { "1" };
        for (table, id) in [
            ("brands", &brand),
            ("assistants", &assistant),
            ("shortcuts", &shortcut),
            ("holidays", &holiday_gone),
            ("holidays", &holiday_off),
        ] {
            assert_eq!(tombstone(table, id), [[Some(yes.to_string())]], "{table} {id}");
        }
        // Typed columns read what the fake served.
        let s = f.record("work_sessions", &updated[0]).unwrap();
        let typed = db.query(&format!(
            "SELECT user_id, team_id, status_type, handled_conversation_count, available_ms FROM work_sessions WHERE id = '{}'",
            updated[0]
        ));
        let text = |v: &Value| match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        assert_eq!(
            typed,
            [[
                text(&s["relationships"]["user"]["data"]["id"]),
                text(&s["relationships"]["team"]["data"]["id"]),
                text(&s["attributes"]["statusType"]),
                text(&s["attributes"]["handledConversationCount"]),
                text(&s["attributes"]["totalAvailable"]["time"]),
            ]]
        );
        // Each live schedule's live holidays, as the fake relates them.
        let mut want: Vec<(String, String)> = Vec::new();
        let live_holidays: std::collections::HashSet<String> = live(f.records("holidays"))
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_string())
            .collect();
        for s in live(f.records("schedules")) {
            for h in s["relationships"]["holidays"]["data"].as_array().unwrap() {
                let hid = h["id"].as_str().unwrap().to_string();
                if live_holidays.contains(&hid) {
                    want.push((s["id"].as_str().unwrap().to_string(), hid));
                }
            }
        }
        want.sort();
        let got: Vec<(String, String)> = db
            .query("SELECT schedule_id, holiday_id FROM schedule_holidays WHERE holiday_name IS NOT NULL ORDER BY schedule_id, holiday_id")
            .into_iter()
            .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
            .collect();
        assert!(!want.is_empty());
        assert_eq!(got, want);
        // A third sync with nothing new writes nothing.
        let third = sync_ok(&engine).await;
        let (applied, _, _) = third.totals();
        assert_eq!(applied.changed(), 0, "{applied:?}");
    }
}

on_every_destination! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resources_an_org_does_not_offer_are_marked_unsupported_and_the_rest_syncs(db) {
        let server = fake(Scale::Small).await;
        let f = server.handle();
        let url = server.base_url();
        // The search contexts refused: work sessions fall back to their full list. SLAs are not in
        // the org (404), the key lacks the assistants role (403), brands are refused (400).
        f.refuse_search_contexts(vec!["work_session".to_string()]);
        f.set_resource_answer("slas", Some(404));
        f.set_resource_answer("assistants", Some(403));
        f.set_resource_answer("brands", Some(400));
        let log = sync(&url, &db, &[]).await;
        assert!(log.contains("UNSUPPORTED"), "{log}");
        let st = status(&url, &db).await;
        let why = |name: &str| st[name]["unsupported"].as_str().map(str::to_string);
        let slas = why("slas").unwrap();
        assert!(slas.contains("404") && slas.contains("/v1/slas"), "{slas}");
        let assistants = why("assistants").unwrap();
        assert!(
            assistants.contains("403") && assistants.contains("org.permission.assistant.read"),
            "{assistants}"
        );
        assert!(why("brands").unwrap().contains("400"));
        assert_eq!(why("work_sessions"), None);
        assert_eq!(st["work_sessions"]["strategy"], "full");
        assert_eq!(st["slas"]["consecutive_failures"], 0);
        for name in ["slas", "assistants", "brands"] {
            assert_eq!(scalar(&db, &format!("SELECT COUNT(*) FROM {name}")), 0);
        }
        for entity in kustomer_mirror::entity::ENTITIES {
            if !["slas", "assistants", "brands"].contains(&entity.name) {
                assert_table_equals_fake(&db, &f, entity.name);
            }
        }
        // The human status says it too.
        let mut cmd = mirror_cmd_db(&url, KEY, &db);
        cmd.arg("status");
        let table = text(&output(cmd).await);
        assert!(table.contains("Not offered by this org or API key"), "{table}");
        let slas_line = table.lines().find(|l| l.starts_with("slas ")).unwrap();
        assert!(slas_line.contains(" unsupported "), "{slas_line}");

        // Work sessions forbidden outright (search and list): unsupported, naming its role; an
        // ordinary sync then leaves it alone, without a request.
        f.set_resource_answer("work_sessions", Some(403));
        sync(&url, &db, &["--full"]).await;
        let st = status(&url, &db).await;
        let sessions = st["work_sessions"]["unsupported"].as_str().unwrap().to_string();
        assert!(sessions.contains("org.permission.work_session.read"), "{sessions}");
        // The rows read before stay (nothing was tombstoned by a refusal).
        assert_eq!(
            scalar(&db, "SELECT COUNT(*) FROM work_sessions WHERE deleted_at IS NULL"),
            live(f.records("work_sessions")).len() as i64
        );
        f.reset_stats();
        let log = sync(&url, &db, &["--entity", "work_sessions"]).await;
        assert!(log.contains("UNSUPPORTED"), "{log}");
        let stats = f.stats();
        for context in ["routing", "work_session"] {
            assert_eq!(stats.requests_by_context.get(context).copied().unwrap_or(0), 0, "{context}");
        }

        // Everything offered again: the next full sync mirrors it all and clears the marks.
        for name in ["slas", "assistants", "brands", "work_sessions"] {
            f.set_resource_answer(name, None);
        }
        f.refuse_search_contexts(Vec::new());
        sync(&url, &db, &["--full"]).await;
        let st = status(&url, &db).await;
        for name in COVERAGE {
            assert_eq!(st[name]["unsupported"], Value::Null, "{name}");
        }
        assert_mirror_equals_fake(&db, &f);
    }
}
