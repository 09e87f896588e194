//! The mirror as BI tools use it: every query in docs/queries.md runs through Debian's `sqlite3` and
//! DuckDB's SQLite reader and returns what the fake's data says it should; custom attributes become
//! columns; the status history shows the transitions made upstream, in order.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use kustomer_mirror::fake::{FakeHandle, Scale};
use kustomer_mirror::sync::SyncOptions;
use serde_json::Value;

type Rows = Vec<Vec<String>>;

/// A documented query: its title, its SQLite/DuckDB form, and its PostgreSQL form when the doc gives
/// one (a ```postgresql block under the same title; otherwise the same SQL runs there).
struct Documented {
    title: String,
    sql: String,
    postgres: Option<String>,
}

impl Documented {
    fn postgres(&self) -> &str {
        self.postgres.as_deref().unwrap_or(&self.sql)
    }
}

/// Every `### title` followed by a ```sql block (and maybe a ```postgresql block).
fn documented_queries() -> Vec<Documented> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/queries.md")).unwrap();
    let mut out: Vec<Documented> = Vec::new();
    let mut title: Option<String> = None;
    // Whether the last query pushed belongs to the current `###` section.
    let mut in_section = false;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(t) = line.strip_prefix("### ") {
            title = Some(t.trim().to_string());
            in_section = false;
        } else if line.starts_with("## ") {
            title = None;
            in_section = false;
        } else if line.trim() == "```sql"
            && let Some(t) = title.take()
        {
            let sql: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            out.push(Documented {
                title: t,
                sql: sql.join("\n"),
                postgres: None,
            });
            in_section = true;
        } else if line.trim() == "```postgresql" {
            let sql: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            let last = out.last_mut().filter(|_| in_section);
            let last = last.expect("a ```postgresql block follows the ```sql block of its query");
            assert!(
                last.postgres.is_none(),
                "two PostgreSQL forms for {}",
                last.title
            );
            last.postgres = Some(sql.join("\n"));
        }
    }
    out
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn ms(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .timestamp_millis()
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn minutes(from: &str, to: &Value) -> Option<f64> {
    to.as_str()
        .map(|t| round((ms(t) - ms(from)) as f64 / 60_000.0, 2))
}

fn sorted_counts(counts: HashMap<String, i64>) -> Vec<(String, i64)> {
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// What each documented query must return, computed from the fake's records.
fn expected(title: &str, fake: &FakeHandle) -> Rows {
    let convs = live(fake.records("conversations"));
    let messages = live(fake.records("messages"));
    let names = |entity: &str| -> HashMap<String, String> {
        fake.records(entity)
            .iter()
            .map(|r| (s(&r["id"]), s(&r["attributes"]["name"])))
            .collect()
    };
    let row = |cells: Vec<String>| cells;
    match title {
        "Backlog by status" => {
            let mut m: BTreeMap<String, i64> = BTreeMap::new();
            for c in &convs {
                *m.entry(s(&c["attributes"]["status"])).or_default() += 1;
            }
            m.into_iter()
                .map(|(k, v)| row(vec![k, v.to_string()]))
                .collect()
        }
        "Open backlog by queue" => {
            let queues = names("queues");
            let mut m: HashMap<String, i64> = HashMap::new();
            for c in convs.iter().filter(|c| {
                ["open", "snoozed"].contains(&c["attributes"]["status"].as_str().unwrap())
            }) {
                let q = c["relationships"]["queue"]["data"]["id"]
                    .as_str()
                    .and_then(|id| queues.get(id).cloned())
                    .unwrap_or("(no queue)".into());
                *m.entry(q).or_default() += 1;
            }
            sorted_counts(m)
                .into_iter()
                .map(|(k, v)| vec![k, v.to_string()])
                .collect()
        }
        "First response time by team and week" => {
            let teams = names("teams");
            let mut m: BTreeMap<(String, String), (i64, f64)> = BTreeMap::new();
            for c in &convs {
                let a = &c["attributes"];
                let created = a["createdAt"].as_str().unwrap();
                let Some(fr) = minutes(created, &a["firstResponse"]["createdAt"]) else {
                    continue;
                };
                let team = a["assignedTeams"][0]
                    .as_str()
                    .and_then(|id| teams.get(id).cloned())
                    .unwrap_or("(no team)".into());
                let week = chrono::DateTime::parse_from_rfc3339(created)
                    .unwrap()
                    .format("%Y-W%W")
                    .to_string();
                let e = m.entry((week, team)).or_default();
                e.0 += 1;
                e.1 += fr;
            }
            let mut v: Vec<_> = m.into_iter().collect();
            v.sort_by(|a, b| b.0.0.cmp(&a.0.0).then(a.0.1.cmp(&b.0.1)));
            v.into_iter()
                .take(20)
                .map(|((week, team), (n, sum))| {
                    vec![
                        team,
                        week,
                        n.to_string(),
                        round(sum / n as f64, 1).to_string(),
                    ]
                })
                .collect()
        }
        "Busiest channels" => {
            let mut m: HashMap<String, (i64, i64)> = HashMap::new();
            for msg in &messages {
                let e = m.entry(s(&msg["attributes"]["channel"])).or_default();
                e.0 += 1;
                e.1 += i64::from(msg["attributes"]["direction"] == "in");
            }
            let mut v: Vec<_> = m.into_iter().collect();
            v.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
            v.into_iter()
                .map(|(k, (n, i))| vec![k, n.to_string(), i.to_string()])
                .collect()
        }
        "Reopen rate" => {
            let n = convs.len() as i64;
            let r = convs
                .iter()
                .filter(|c| c["attributes"]["reopenCount"].as_i64().unwrap_or(0) > 0)
                .count() as i64;
            vec![vec![
                n.to_string(),
                r.to_string(),
                round(100.0 * r as f64 / n as f64, 2).to_string(),
            ]]
        }
        "Top tags" => {
            let tags = names("tags");
            let mut m: HashMap<String, i64> = HashMap::new();
            for c in &convs {
                for t in c["attributes"]["tags"].as_array().unwrap() {
                    *m.entry(tags.get(t.as_str().unwrap()).cloned().unwrap_or_default())
                        .or_default() += 1;
                }
            }
            sorted_counts(m)
                .into_iter()
                .take(10)
                .map(|(k, v)| vec![k, v.to_string()])
                .collect()
        }
        "CSAT by channel" => {
            let mut m: BTreeMap<String, (i64, f64)> = BTreeMap::new();
            for c in convs
                .iter()
                .filter(|c| !c["attributes"]["satisfaction"].is_null())
            {
                let e = m.entry(s(&c["attributes"]["channels"][0])).or_default();
                e.0 += 1;
                e.1 += c["attributes"]["satisfaction"].as_f64().unwrap();
            }
            m.into_iter()
                .map(|(k, (n, sum))| vec![k, n.to_string(), round(sum / n as f64, 2).to_string()])
                .collect()
        }
        "Resolution time by priority" => {
            let mut m: BTreeMap<String, (i64, f64)> = BTreeMap::new();
            for c in &convs {
                let a = &c["attributes"];
                let Some(r) = minutes(
                    a["createdAt"].as_str().unwrap(),
                    &a["firstDone"]["createdAt"],
                ) else {
                    continue;
                };
                let e = m.entry(s(&a["priority"])).or_default();
                e.0 += 1;
                e.1 += r;
            }
            m.into_iter()
                .map(|(k, (n, sum))| vec![k, n.to_string(), round(sum / n as f64, 1).to_string()])
                .collect()
        }
        "Open conversations per agent" => {
            let users = names("users");
            let mut m: HashMap<String, (String, i64)> = HashMap::new();
            for c in convs.iter().filter(|c| c["attributes"]["status"] == "open") {
                for u in c["attributes"]["assignedUsers"].as_array().unwrap() {
                    let id = s(u);
                    let e = m
                        .entry(id.clone())
                        .or_insert((users.get(&id).cloned().unwrap_or_default(), 0));
                    e.1 += 1;
                }
            }
            let mut v: Vec<_> = m.into_iter().collect();
            v.sort_by(|a, b| {
                b.1.1
                    .cmp(&a.1.1)
                    .then(a.1.0.cmp(&b.1.0))
                    .then(a.0.cmp(&b.0))
            });
            v.into_iter()
                .take(10)
                .map(|(_, (name, n))| vec![name, n.to_string()])
                .collect()
        }
        "Customers with the most conversations" => {
            let customers: HashMap<String, Value> = live(fake.records("customers"))
                .into_iter()
                .map(|c| (s(&c["id"]), c))
                .collect();
            let mut m: HashMap<String, i64> = HashMap::new();
            for c in &convs {
                let id = s(&c["relationships"]["customer"]["data"]["id"]);
                if customers.contains_key(&id) {
                    *m.entry(id).or_default() += 1;
                }
            }
            let mut v: Vec<_> = m
                .into_iter()
                .map(|(id, n)| {
                    (
                        s(&customers[&id]["attributes"]["emails"][0]["email"]),
                        id,
                        n,
                    )
                })
                .collect();
            v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
            v.into_iter()
                .take(5)
                .map(|(email, id, n)| {
                    vec![
                        s(&customers[&id]["attributes"]["displayName"]),
                        email,
                        n.to_string(),
                    ]
                })
                .collect()
        }
        "Inbound and outbound messages per day (latest seven days)" => {
            let mut m: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            for msg in &messages {
                let e = m
                    .entry(s(&msg["attributes"]["createdAt"])[..10].to_string())
                    .or_default();
                match msg["attributes"]["direction"].as_str() {
                    Some("in") => e.0 += 1,
                    Some("out") => e.1 += 1,
                    _ => {}
                }
            }
            m.into_iter()
                .rev()
                .take(7)
                .map(|(d, (i, o))| vec![d, i.to_string(), o.to_string()])
                .collect()
        }
        "Customers by loyalty tier (a custom attribute)" => {
            let mut m: BTreeMap<String, (i64, f64)> = BTreeMap::new();
            for c in live(fake.records("customers")) {
                let e = m
                    .entry(s(&c["attributes"]["custom"]["loyaltyTierStr"]))
                    .or_default();
                e.0 += 1;
                e.1 += c["attributes"]["custom"]["lifetimeValueNum"]
                    .as_f64()
                    .unwrap_or(0.0);
            }
            m.into_iter()
                .map(|(k, (n, sum))| vec![k, n.to_string(), round(sum / n as f64, 2).to_string()])
                .collect()
        }
        "Agent availability by day" => {
            let users = names("users");
            let teams = names("teams");
            // (day, user id, team id) → (sessions, ended-session minutes, available ms, handled)
            type Day = (i64, Option<f64>, i64, i64);
            let mut m: HashMap<(String, String, String), Day> = HashMap::new();
            for w in live(fake.records("work_sessions")) {
                let a = &w["attributes"];
                let signed_in = s(&a["signedInAt"]);
                let key = (
                    signed_in[..10].to_string(),
                    s(&w["relationships"]["user"]["data"]["id"]),
                    s(&w["relationships"]["team"]["data"]["id"]),
                );
                let e = m.entry(key).or_default();
                e.0 += 1;
                if let Some(out) = a["signedOutAt"].as_str() {
                    let mins = (ms(out) - ms(&signed_in)) as f64 / 60_000.0;
                    e.1 = Some(e.1.unwrap_or(0.0) + mins);
                }
                e.2 += a["totalAvailable"]["time"].as_i64().unwrap();
                e.3 += a["handledConversationCount"].as_i64().unwrap();
            }
            let or = |name: Option<&String>, none: &str| {
                name.cloned().unwrap_or_else(|| none.to_string())
            };
            let mut v: Vec<_> = m
                .into_iter()
                .map(|((day, user, team), n)| {
                    let agent = or(users.get(&user), "(unknown)");
                    let team_name = or(teams.get(&team), "(no team)");
                    (day, agent, team_name, user, n)
                })
                .collect();
            v.sort_by(|a, b| {
                b.0.cmp(&a.0)
                    .then(a.1.cmp(&b.1))
                    .then(a.2.cmp(&b.2))
                    .then(a.3.cmp(&b.3))
            });
            v.into_iter()
                .take(20)
                .map(|(day, agent, team, _, (n, signed, avail, handled))| {
                    vec![
                        day,
                        agent,
                        team,
                        n.to_string(),
                        signed.map(|x| round(x, 1).to_string()).unwrap_or_default(),
                        round(avail as f64 / 60_000.0, 1).to_string(),
                        handled.to_string(),
                    ]
                })
                .collect()
        }
        "SLA breach rate by metric, team and week" => {
            let teams = names("teams");
            let mut totals: HashMap<(String, String), i64> = HashMap::new();
            let mut breaches: BTreeMap<(String, String, String), i64> = BTreeMap::new();
            for c in convs
                .iter()
                .filter(|c| c["attributes"]["sla"]["name"].is_string())
            {
                let week = chrono::DateTime::parse_from_rfc3339(&s(&c["attributes"]["createdAt"]))
                    .unwrap()
                    .format("%Y-W%W")
                    .to_string();
                let team = c["attributes"]["assignedTeams"][0]
                    .as_str()
                    .and_then(|id| teams.get(id).cloned())
                    .unwrap_or_else(|| "(no team)".to_string());
                *totals.entry((week.clone(), team.clone())).or_default() += 1;
                if c["attributes"]["sla"]["breached"] == true {
                    let metric = s(&c["attributes"]["sla"]["breach"]["metric"]);
                    *breaches.entry((week, team, metric)).or_default() += 1;
                }
            }
            let mut v: Vec<_> = breaches.into_iter().collect();
            // Week descending, then team and metric ascending.
            v.sort_by(|a, b| {
                b.0.0
                    .cmp(&a.0.0)
                    .then(a.0.1.cmp(&b.0.1))
                    .then(a.0.2.cmp(&b.0.2))
            });
            v.into_iter()
                .take(20)
                .map(|((week, team, metric), b)| {
                    let n = totals[&(week.clone(), team.clone())];
                    vec![
                        week,
                        team,
                        metric,
                        b.to_string(),
                        n.to_string(),
                        round(100.0 * b as f64 / n as f64, 1).to_string(),
                    ]
                })
                .collect()
        }
        "CSAT score and response rate by team and agent" => {
            let users = names("users");
            let teams = names("teams");
            // (team id, user id) → (surveys, responses, rating sum)
            let mut m: HashMap<(String, String), (i64, i64, f64)> = HashMap::new();
            for c in convs
                .iter()
                .filter(|c| c["attributes"]["satisfactionLevel"]["sentAt"].is_string())
            {
                let level = &c["attributes"]["satisfactionLevel"];
                let key = (
                    s(&c["attributes"]["assignedTeams"][0]),
                    s(&c["attributes"]["assignedUsers"][0]),
                );
                let e = m.entry(key).or_default();
                e.0 += 1;
                if let Some(r) = level["rating"].as_f64() {
                    e.1 += 1;
                    e.2 += r;
                }
            }
            let mut v: Vec<_> = m
                .into_iter()
                .map(|((team, user), n)| {
                    let team = teams
                        .get(&team)
                        .cloned()
                        .unwrap_or_else(|| "(no team)".to_string());
                    let agent = users
                        .get(&user)
                        .cloned()
                        .unwrap_or_else(|| "(unassigned)".to_string());
                    (team, agent, user, n)
                })
                .collect();
            v.sort_by(|a, b| {
                b.3.0
                    .cmp(&a.3.0)
                    .then(a.0.cmp(&b.0))
                    .then(a.1.cmp(&b.1))
                    .then(a.2.cmp(&b.2))
            });
            v.into_iter()
                .take(15)
                .map(|(team, agent, _, (n, responded, sum))| {
                    vec![
                        team,
                        agent,
                        n.to_string(),
                        responded.to_string(),
                        round(100.0 * responded as f64 / n as f64, 1).to_string(),
                        if responded == 0 {
                            String::new()
                        } else {
                            round(sum / responded as f64, 2).to_string()
                        },
                    ]
                })
                .collect()
        }
        other => panic!(
            "docs/queries.md has a query this test does not know: {other:?}; add its expected values"
        ),
    }
}

fn same(title: &str, tool: &str, got: &Rows, want: &Rows) {
    assert_eq!(
        got.len(),
        want.len(),
        "{title} via {tool}: {got:?} vs {want:?}"
    );
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len(), "{title} via {tool}: {g:?} vs {w:?}");
        for (a, b) in g.iter().zip(w) {
            // Averages are rounded after julianday arithmetic: allow one step of the last decimal.
            let equal = match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) if a.contains('.') || b.contains('.') => {
                    (x - y).abs() <= 0.1 + 1e-6 * y.abs()
                }
                (Ok(x), Ok(y)) => x == y,
                _ => a == b,
            };
            assert!(
                equal,
                "{title} via {tool}: {a:?} != {b:?}\n got  {got:?}\n want {want:?}"
            );
        }
    }
}

fn sqlite3_available() -> bool {
    tool_available("sqlite3", "the documented queries run through it")
}

fn via_sqlite3(db: &Path, sql: &str) -> Rows {
    let out = Command::new("sqlite3")
        .args(["-csv", "-noheader"])
        .arg(db)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().map(parse_csv_line).collect()
}

fn parse_csv_line(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    cells.push(cur);
    cells
}

/// The interpreter of the virtualenv `.ci/run` makes, with duckdb and its SQLite reader.
fn duckdb_python() -> Option<PathBuf> {
    let path = std::env::var_os("KUSTOMER_MIRROR_DUCKDB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/venv/bin/python"))
        });
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must create the DuckDB virtualenv (.ci/run)"
    );
    eprintln!(
        "no DuckDB virtualenv at {}; skipping the DuckDB half (run .ci/run once)",
        path.display()
    );
    None
}

const DUCKDB_SCRIPT: &str = r#"
import json, sys
import duckdb
try:
    import duckdb_extensions
    duckdb_extensions.import_extension("sqlite_scanner")
except ImportError:
    pass
db, sql = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("ATTACH '" + db.replace("'", "''") + "' AS m (TYPE sqlite, READ_ONLY)")
con.execute("USE m")
rows = con.execute(sql).fetchall()
print(json.dumps([["" if v is None else str(v) for v in row] for row in rows]))
"#;

fn via_duckdb(python: &Path, db: &Path, sql: &str) -> Rows {
    let out = Command::new(python)
        .arg("-c")
        .arg(DUCKDB_SCRIPT)
        .arg(db)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "DuckDB: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_query_returns_what_the_fakes_data_says_in_sqlite3_and_duckdb() {
    let server = fake(Scale::Medium).await;
    let fake = server.handle();
    let db = db();
    sync_ok(&engine(&server, &db.path, SyncOptions::default())).await;
    let queries = documented_queries();
    assert_eq!(
        queries.len(),
        15,
        "docs/queries.md should hold fifteen queries"
    );
    let has_sqlite3 = sqlite3_available();
    let python = duckdb_python();
    let conn = open(&db.path);
    for Documented { title, sql, .. } in &queries {
        let want = expected(title, &fake);
        assert!(
            !want.is_empty(),
            "{title}: the fake gives nothing to compare"
        );
        // The bundled SQLite the daemon uses.
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let got: Rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => String::new(),
                            rusqlite::types::ValueRef::Integer(x) => x.to_string(),
                            rusqlite::types::ValueRef::Real(x) => x.to_string(),
                            rusqlite::types::ValueRef::Text(t) => {
                                String::from_utf8_lossy(t).into_owned()
                            }
                            rusqlite::types::ValueRef::Blob(_) => "<blob>".into(),
                        })
                    })
                    .collect()
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        same(title, "rusqlite", &got, &want);
        if has_sqlite3 {
            same(title, "sqlite3", &via_sqlite3(&db.path, sql), &want);
        }
        if let Some(python) = &python {
            same(title, "DuckDB", &via_duckdb(python, &db.path, sql), &want);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_attribute_added_upstream_becomes_a_column_after_the_next_sync() {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let db = db();
    let engine = engine(&server, &db.path, SyncOptions::default());
    sync_ok(&engine).await;
    let conn = open(&db.path);
    let columns = |view: &str| columns(&conn, view);
    let before = columns("customers_custom");
    assert!(
        before.contains(&"loyalty_tier".to_string()) && before.contains(&"vip".to_string()),
        "{before:?}"
    );
    assert!(!before.contains(&"renewal_due".to_string()));
    let id = live(fake.records("customers"))[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut custom = fake.record("customers", &id).unwrap()["attributes"]["custom"].clone();
    custom["renewalDueAt"] = serde_json::json!("2026-12-01T00:00:00.000Z");
    custom["seatsNum"] = serde_json::json!(42.5);
    fake.update("customers", &id, serde_json::json!({ "custom": custom }));
    sync_ok(&engine).await;
    let after = columns("customers_custom");
    assert!(
        after.contains(&"renewal_due".to_string()) && after.contains(&"seats".to_string()),
        "{after:?}"
    );
    let (due, seats): (String, f64) = conn
        .query_row(
            "SELECT renewal_due, seats FROM customers_custom WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(due, "2026-12-01T00:00:00.000Z");
    assert_eq!(seats, 42.5);
    // Kobjects get one view per klass.
    let klass = fake.klass_names()[0].replace('-', "_");
    assert!(columns(&format!("kobjects_{klass}_custom")).contains(&"total".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_history_shows_the_transitions_made_upstream_in_order() {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let db = db();
    let engine = engine(&server, &db.path, SyncOptions::default());
    let id = live(fake.records("conversations"))
        .into_iter()
        .find(|c| c["attributes"]["status"] == "open")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    sync_ok(&engine).await;
    for status in ["snoozed", "done", "open", "done"] {
        fake.update(
            "conversations",
            &id,
            serde_json::json!({ "status": status }),
        );
        sync_ok(&engine).await;
    }
    let conn = open(&db.path);
    let history: Vec<(String, String)> = conn
        .prepare("SELECT from_status, to_status FROM conversation_status_history WHERE conversation_id = ?1 ORDER BY seq")
        .unwrap()
        .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let pairs: Vec<(&str, &str)> = history
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("open", "snoozed"),
            ("snoozed", "done"),
            ("done", "open"),
            ("open", "done")
        ]
    );
}

#[test]
fn docs_schema_md_documents_every_table_column_and_view() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schema.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = kustomer_mirror::sqlite::Store::open(dir.path().join("m.db")).unwrap();
    let conn = store.conn();
    let objects: Vec<(String, String)> = conn
        .prepare("SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(doc.contains("```mermaid"));
    for (name, kind) in objects {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/schema.md does not mention the {kind} {name}"
        );
        let columns: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_xinfo('{name}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if kind == "table" {
            let section = doc
                .split(&format!("### `{name}`"))
                .nth(1)
                .unwrap_or_else(|| panic!("no section for {name}"));
            let section = section.split("\n### ").next().unwrap();
            for c in columns {
                assert!(
                    section.contains(&format!("| `{c}` |")),
                    "docs/schema.md: {name}.{c} is not documented"
                );
            }
        } else if !name.ends_with("_live") {
            for c in columns {
                assert!(
                    doc.contains(&format!("`{c}`")),
                    "docs/schema.md: column {c} of view {name} is not documented"
                );
            }
        }
    }
}

/// The SQL block under "Roles, once, as an administrator" in README.md.
fn readme_roles_block() -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let at = text
        .find("Roles, once, as an administrator")
        .expect("README.md shows the PostgreSQL roles");
    let rest = &text[at..];
    let start = rest.find("```sql\n").expect("a ```sql block") + "```sql\n".len();
    let end = rest[start..].find("```").expect("the end of the block");
    rest[start..start + end].to_string()
}

/// Runs `f` with a session of `url` (plain TCP), on a thread of its own: the blocking client may
/// not run on the async runtime's threads.
fn with_session<R: Send + 'static>(
    url: String,
    f: impl FnOnce(&mut postgres::Client) -> R + Send + 'static,
) -> R {
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        f(&mut client)
    })
    .join()
    .unwrap()
}

/// Rows as text, or the server's SQLSTATE and message.
type PgResult = Result<Rows, (String, String)>;

/// Every row of `sql` as text, or the server's SQLSTATE and message.
fn pg_rows(client: &mut postgres::Client, sql: &str) -> PgResult {
    match client.simple_query(sql) {
        Ok(messages) => Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or("").to_string())
                        .collect(),
                ),
                _ => None,
            })
            .collect()),
        Err(e) => Err(e
            .as_db_error()
            .map(|d| (d.code().code().to_string(), d.message().to_string()))
            .unwrap_or_else(|| (String::new(), e.to_string()))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_query_runs_on_postgresql_as_the_readme_reporting_role_which_cannot_write()
{
    let Some(db) = Db::postgres() else { return };
    let pg = db.pg.as_ref().unwrap();
    let server = fake(Scale::Medium).await;
    let fake = server.handle();
    // README's block, as the administrator, for this test's database.
    pg.cluster.execute(
        &pg.name,
        &readme_roles_block().replace("analytics", &pg.name),
    );
    let url = |user: &str, password: &str| {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{}",
            pg.cluster.port(),
            pg.name
        )
    };
    // The mirror syncs as its own, unprivileged user.
    let sync = || {
        let mut cmd = mirror_cmd_db(&server.base_url(), KEY, &db);
        cmd.arg("sync").env(
            "KUSTOMER_MIRROR__DATABASE__URL",
            url("kustomer_mirror", "choose-a-password"),
        );
        output(cmd)
    };
    let out = sync().await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_mirror_equals_fake(&db, &fake);

    let queries = documented_queries();
    assert_eq!(queries.len(), 15);
    assert!(
        queries.iter().filter(|q| q.postgres.is_some()).count() >= 4,
        "the averaging queries have PostgreSQL forms"
    );
    let wanted: Vec<(String, String, Rows)> = queries
        .iter()
        .map(|q| {
            (
                q.title.clone(),
                q.postgres().to_string(),
                expected(&q.title, &fake),
            )
        })
        .collect();
    let reporting = url("reporting", "another-password");
    let results = with_session(reporting.clone(), move |client| {
        pg_rows(client, "SET search_path TO kustomer").unwrap();
        let read: Vec<(String, PgResult, Rows)> = wanted
            .into_iter()
            .map(|(title, sql, want)| {
                let got = pg_rows(client, &sql);
                (title, got, want)
            })
            .collect();
        // And it cannot write: rows, state, the log, new objects, or drop what is there.
        let writes: Vec<(String, PgResult)> = [
            "INSERT INTO customers (id, data, hash, first_synced_at, last_changed_at) VALUES ('x', '{}', 0, now(), now())",
            "UPDATE sync_state SET cursor = NULL",
            "DELETE FROM change_log",
            "TRUNCATE sync_runs",
            "CREATE TABLE kustomer.mine (x int)",
            "CREATE VIEW kustomer.mine AS SELECT 1 AS x",
            "DROP VIEW customers_live",
            "ALTER TABLE customers ADD COLUMN x int",
        ]
        .into_iter()
        .map(|sql| (sql.to_string(), pg_rows(client, sql)))
        .collect();
        (read, writes)
    });
    let (read, writes) = results;
    for (title, got, want) in &read {
        let got = got
            .as_ref()
            .unwrap_or_else(|e| panic!("{title} on PostgreSQL as reporting: {e:?}"));
        assert!(
            !want.is_empty(),
            "{title}: the fake gives nothing to compare"
        );
        same(title, "PostgreSQL", got, want);
    }
    for (sql, result) in &writes {
        match result {
            Err((code, _)) if code == "42501" => {}
            other => panic!("reporting ran {sql:?}: {other:?}"),
        }
    }
    // Views the mirror rebuilds later (a new custom attribute) stay readable (default privileges).
    let id = live(fake.records("customers"))[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut custom = fake.record("customers", &id).unwrap()["attributes"]["custom"].clone();
    custom["seatsNum"] = serde_json::json!(42.5);
    fake.update("customers", &id, serde_json::json!({ "custom": custom }));
    let out = sync().await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let seats = with_session(reporting, move |client| {
        pg_rows(
            client,
            &format!("SELECT seats FROM kustomer.customers_custom WHERE id = '{id}'"),
        )
    });
    assert_eq!(seats, Ok(vec![vec!["42.5".to_string()]]));
}

/// The uid the mirror's writer runs as in the cross-uid test, the BI tool's uid, and the group
/// they share (numbers need no /etc/passwd entry).
const WRITER_UID: u32 = 4241;
const READER_UID: u32 = 4243;
const SHARED_GID: u32 = 4242;

/// `cmd` as `uid` with the shared group as its only group (util-linux `setpriv`).
fn as_uid(uid: u32, program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={SHARED_GID}"))
        .arg("--clear-groups")
        .arg(program);
    cmd
}

/// Root and `setpriv` are needed to act as other users; CI has both.
fn can_switch_users() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("not root; skipping the cross-uid test");
        return false;
    }
    tool_available("setpriv", "the cross-uid test acts as other users")
}

fn mode_and_group(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.mode() & 0o7777, m.gid())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_in_the_mirrors_group_reads_it_while_a_sync_writes_and_cannot_write() {
    if !can_switch_users() || !sqlite3_available() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let server = fake(Scale::Medium).await;
    let fake = server.handle();
    // Slow answers: the sync is still writing while the reader runs the queries.
    fake.set_faults(kustomer_mirror::fake::Faults {
        slow: 1.0,
        slow_delay: std::time::Duration::from_millis(150),
        ..Default::default()
    });
    // The state directory as the unit makes it: the writer's, group-readable, 0750.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(WRITER_UID), Some(SHARED_GID)).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The binary where the writer's uid may run it.
    let binary = dir.path().join("kustomer-mirror");
    std::fs::copy(env!("CARGO_BIN_EXE_kustomer-mirror"), &binary).unwrap();
    let db = state.join("kustomer-mirror.db");
    // The writer, as the unit runs it: its own uid and group, UMask=0027.
    let mut writer = as_uid(WRITER_UID, Path::new("/bin/sh"));
    writer
        .args(["-c", "umask 0027; exec \"$0\" sync"])
        .arg(&binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("KUSTOMER_MIRROR__KUSTOMER__BASE_URL", server.base_url())
        .env("KUSTOMER_API_KEY", KEY)
        .env("KUSTOMER_MIRROR__DATABASE__PATH", &db)
        .env("KUSTOMER_MIRROR__SYNC__REQUESTS_PER_MINUTE", "100000")
        .env("KUSTOMER_MIRROR__SYNC__SEARCH_REQUESTS_PER_MINUTE", "10000");
    let mut writer = writer
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let sqlite3 = PathBuf::from(
        String::from_utf8(
            Command::new("sh")
                .args(["-c", "command -v sqlite3"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim(),
    );
    let read = |sql: &str| {
        as_uid(READER_UID, &sqlite3)
            .args(["-readonly", "-csv", "-noheader", "-bail"])
            .arg(&db)
            .arg(sql)
            .output()
            .unwrap()
    };
    // Wait for rows, then read while the sync goes on.
    let started = std::time::Instant::now();
    loop {
        let out = read("SELECT COUNT(*) FROM messages");
        if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() != "0" {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the reader never saw rows: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let queries = documented_queries();
    for q in &queries {
        let out = read(&q.sql);
        assert!(
            out.status.success(),
            "{} as the reader during the sync: {}",
            q.title,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        writer.try_wait().unwrap().is_none(),
        "the sync ended before the reader got through the queries; nothing was read while it wrote"
    );
    let done = tokio::task::spawn_blocking(move || writer.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    // The files as the unit leaves them: the writer's group, group-readable, nothing for others,
    // and the -wal and -shm files kept for readers between syncs.
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        assert_eq!(
            mode_and_group(&path),
            (0o640, SHARED_GID),
            "{}",
            path.display()
        );
    }
    // Between syncs the reader still gets the documented answers.
    for q in &queries {
        let out = read(&q.sql);
        assert!(
            out.status.success(),
            "{} as the reader after the sync: {}",
            q.title,
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Rows = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(parse_csv_line)
            .collect();
        same(
            &q.title,
            "sqlite3 as the reader",
            &got,
            &expected(&q.title, &fake),
        );
    }
    // And it cannot write, with or without -readonly.
    let tags = fake.count("tags").to_string();
    for sql in [
        "DELETE FROM tags",
        "UPDATE tags SET hash = 'x'",
        "CREATE TABLE mine (a)",
    ] {
        for readonly in [true, false] {
            let mut cmd = as_uid(READER_UID, &sqlite3);
            if readonly {
                cmd.arg("-readonly");
            }
            let out = cmd.arg("-bail").arg(&db).arg(sql).output().unwrap();
            assert!(!out.status.success(), "the reader could run {sql}");
        }
    }
    let out = read("SELECT COUNT(*) FROM tags");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), tags);
    // Others (not in the group) cannot even open it.
    let out = Command::new("setpriv")
        .args(["--reuid=4244", "--regid=4244", "--clear-groups"])
        .arg(&sqlite3)
        .arg("-readonly")
        .arg(&db)
        .arg("SELECT COUNT(*) FROM tags")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "someone outside the group read the mirror"
    );
}

/// Datasette from the CI virtualenv (`KUSTOMER_MIRROR_DATASETTE`, else .ci/venv/bin/datasette).
fn datasette() -> Option<PathBuf> {
    let path = std::env::var_os("KUSTOMER_MIRROR_DATASETTE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/.ci/venv/bin/datasette"
            ))
        });
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install Datasette into the virtualenv (.ci/run)"
    );
    eprintln!(
        "no Datasette at {}; skipping (run .ci/run once)",
        path.display()
    );
    None
}

/// `datasette serve` on a free port, stopped when dropped.
struct Datasette {
    child: std::process::Child,
    port: u16,
}

impl Drop for Datasette {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Datasette {
    async fn start(program: &Path, db: &Path) -> Datasette {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(program)
            .arg("serve")
            .arg(db)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--setting", "sql_time_limit_ms", "10000"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let d = Datasette { child, port };
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "Datasette did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        d
    }

    /// GET `path`: the status and the JSON body.
    async fn get(&self, path: &str) -> (u16, Value) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let r = reqwest::get(format!("http://127.0.0.1:{}{path}", self.port))
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        (status, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasette_serves_the_demo_mirror_tables_and_views_through_its_json_api() {
    let Some(program) = datasette() else { return };
    // The README's first command, on a file of its own.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mirror.db");
    let out = output({
        let mut cmd = bin();
        cmd.arg("demo")
            .arg("--db")
            .arg(&db)
            .args(["--scale", "small"]);
        cmd
    })
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let conn = open(&db);
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    let datasette = Datasette::start(&program, &db).await;
    let base = "/mirror";
    // A table, a link view, the facts view and a custom-attribute view, each with its columns in
    // the order the mirror defines them and every row Datasette counts.
    for (name, count_sql) in [
        ("conversations", "SELECT COUNT(*) FROM conversations"),
        (
            "conversation_tags",
            "SELECT COUNT(*) FROM conversation_tags",
        ),
        (
            "conversation_facts",
            "SELECT COUNT(*) FROM conversation_facts",
        ),
        ("customers_custom", "SELECT COUNT(*) FROM customers_custom"),
    ] {
        let (status, body) = datasette
            .get(&format!("{base}/{name}.json?_size=5&_shape=objects"))
            .await;
        assert_eq!(status, 200, "{name}: {body}");
        assert!(
            body.get("error").is_none_or(Value::is_null),
            "{name}: {body}"
        );
        let columns: Vec<String> = body["columns"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no columns in {body}"))
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        let mine: Vec<String> = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_xinfo('{name}') ORDER BY cid"
            ))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        // Datasette lists a table's rowid-less columns as they are; views likewise.
        assert_eq!(columns, mine, "{name}: the columns Datasette shows");
        let rows = body["rows"].as_array().unwrap();
        assert_eq!(rows.len() as i64, count(count_sql).min(5), "{name}");
        // Row counts through its SQL API agree with the file.
        let (status, counted) = datasette
            .get(&format!(
                "{base}.json?_shape=array&sql={}",
                url_escape(&format!("select count(*) as n from {name}"))
            ))
            .await;
        assert_eq!(status, 200, "{counted}");
        assert_eq!(counted[0]["n"].as_i64(), Some(count(count_sql)), "{name}");
    }
    // Types come through as BI tools need them: numbers as numbers, dates as ISO text.
    let (_, facts) = datasette
        .get(&format!(
            "{base}.json?_shape=array&sql={}",
            url_escape(
                "select conversation_id, message_count, first_response_minutes, created_at \
                 from conversation_facts where first_response_minutes is not null \
                 order by conversation_id limit 3"
            )
        ))
        .await;
    let facts = facts.as_array().unwrap();
    assert!(!facts.is_empty(), "no conversation with a first response");
    for row in facts {
        assert!(row["message_count"].is_i64(), "{row}");
        assert!(row["first_response_minutes"].is_number(), "{row}");
        let created = row["created_at"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(created).is_ok(),
            "{created}"
        );
        let id = row["conversation_id"].as_str().unwrap();
        let (n, minutes): (i64, f64) = conn
            .query_row(
                "SELECT message_count, first_response_minutes FROM conversation_facts WHERE conversation_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(row["message_count"].as_i64(), Some(n));
        assert_eq!(row["first_response_minutes"].as_f64(), Some(minutes));
    }
    // Views are listed as views, and nothing failed to load.
    let (status, listing) = datasette.get(&format!("{base}.json")).await;
    assert_eq!(status, 200);
    let views: Vec<&str> = listing["views"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|x| x["name"].as_str().or(x.as_str()))
                .collect()
        })
        .unwrap_or_default();
    for view in [
        "conversation_facts",
        "conversation_tags",
        "customers_custom",
    ] {
        assert!(
            views.contains(&view),
            "{view} not among Datasette's views: {listing}"
        );
    }
}

/// Percent-encodes a query-string value.
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
