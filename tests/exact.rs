//! The mirror keeps what was served, exactly: numbers with their digits, half emoji as served, bad
//! items quarantined while their pages sync on, and a cursor that a bad clock upstream cannot push
//! into the future. Real HTTP to the built-in fake, real SQLite files; expected values come from the
//! text the fake served, from Rust's own float parser, from Python's `json` with `Decimal`, or from
//! literals, never from the mirror's decoder.

use std::io::Write;
use std::process::Stdio;

use crate::common::*;
use kustomer_mirror::fake::Scale;
use kustomer_mirror::sync::SyncOptions;
use rusqlite::types::Value as Sql;

/// The number token after `"ratioNum":` in `text`.
fn ratio_token(text: &str) -> &str {
    let at = text.find("\"ratioNum\":").expect("a ratioNum") + "\"ratioNum\":".len();
    let rest = &text[at..];
    let end = rest.find([',', '}', ']']).expect("the end of the number");
    rest[..end].trim()
}

/// A raw customer carrying `ratio` exactly as written here.
fn raw_customer(id: &str, at: &str, ratio: &str) -> String {
    format!(
        r#"{{"type":"customer","id":"{id}","attributes":{{"name":"Raw {id}","createdAt":"{at}","updatedAt":"{at}","custom":{{"ratioNum":{ratio}}}}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_mirrored_exactly_as_served() {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    // Spellings a `serde_json::Value` would normalise, served verbatim.
    let spellings = ["1e21", "1E+21", "-0.0", "1.0", "1e-7", "100E-2", "-0"];
    for (i, n) in spellings.iter().enumerate() {
        let at = format!("2026-01-01T00:00:0{i}.000Z");
        let id = format!("raw-{i}");
        fake.put_raw("customers", &id, &raw_customer(&id, &at, n), &at);
    }
    let db = db();
    sync_ok(&engine(&server, &db.path, SyncOptions::default())).await;
    assert_mirror_equals_fake(&db.path, &fake);

    let conn = open(&db.path);
    let ids: Vec<String> = fake
        .records("customers")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let mut pairs = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for id in &ids {
        let served = fake.raw("customers", id).unwrap();
        let token = ratio_token(&served).to_string();
        let (data, extracted): (String, Sql) = conn
            .query_row(
                "SELECT data, json_extract(data, '$.attributes.custom.ratioNum') FROM customers WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        // The text itself.
        assert_eq!(ratio_token(&data), token, "{id}");
        // SQLite reads it as the value the served text means: an integer when it fits, else the
        // double Rust's correctly rounded parser gives (bit for bit, so -0.0 and one-ulp drifts show).
        match extracted {
            Sql::Integer(i) => assert_eq!(Ok(i), token.parse::<i64>(), "{id}: {token}"),
            Sql::Real(f) => {
                assert!(token.parse::<i64>().is_err(), "{id}: {token} read as {f}");
                let expected: f64 = token.parse().unwrap();
                assert_eq!(
                    f.to_bits(),
                    expected.to_bits(),
                    "{id}: {token} read as {f:e}"
                );
                kinds.insert("real");
            }
            other => panic!("{id}: {token} read as {other:?}"),
        }
        pairs.push((id.clone(), token));
    }
    assert!(kinds.contains("real"));
    let served_tokens: std::collections::BTreeSet<&str> =
        pairs.iter().map(|(_, t)| t.as_str()).collect();
    for must in [
        "123456789.12345679",
        "18446744073709552000",
        "1e21",
        "1E+21",
        "-0.0",
        "5e-324",
        "9007199254740993",
    ] {
        assert!(served_tokens.contains(must), "the fake should serve {must}");
    }
    python_reads_the_same_values(&db.path, &pairs);

    // The change log keeps old and new exactly too.
    let id = pairs
        .iter()
        .find(|(_, t)| t == "0.30000000000000004")
        .map(|(id, _)| id.clone())
        .expect("a customer with 0.30000000000000004");
    let mut custom = fake.record("customers", &id).unwrap()["attributes"]["custom"].clone();
    custom["ratioNum"] = serde_json::from_str("123456789.12345679").unwrap();
    fake.update("customers", &id, serde_json::json!({ "custom": custom }));
    sync_ok(&engine(&server, &db.path, SyncOptions::default())).await;
    let changes: String = conn
        .query_row(
            "SELECT changes FROM change_log WHERE record_id = ?1 AND op = 'update' ORDER BY seq DESC LIMIT 1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        changes.contains(
            r#""attributes.custom.ratioNum":{"new":123456789.12345679,"old":0.30000000000000004}"#
        ),
        "{changes}"
    );
}

/// Python's `json` with `Decimal` floats and exact ints reads every stored number as the value of the
/// served token (and keeps the sign of zero).
fn python_reads_the_same_values(db: &std::path::Path, pairs: &[(String, String)]) {
    let script = r#"
import json, sqlite3, sys
from decimal import Decimal
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
bad = []
for line in sys.stdin.read().splitlines():
    rid, token = line.split("\t")
    data = db.execute("SELECT data FROM customers WHERE id = ?", (rid,)).fetchone()[0]
    got = json.loads(data, parse_float=Decimal)["attributes"]["custom"]["ratioNum"]
    want = Decimal(token)
    # An integer has no negative zero (JSON's -0 is 0); a decimal keeps its sign.
    if Decimal(got) != want or (isinstance(got, Decimal) and got.is_signed() != want.is_signed()):
        bad.append(f"{rid}: served {token}, read {got!r}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
"#;
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (CI installs it)");
    let input: String = pairs.iter().map(|(id, t)| format!("{id}\t{t}\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

const T: [&str; 9] = [
    "2026-01-01T00:00:01.000Z",
    "2026-01-01T00:00:02.000Z",
    "2026-01-01T00:00:03.000Z",
    "2026-01-01T00:00:04.000Z",
    "2026-01-01T00:00:05.000Z",
    "2026-01-01T00:00:06.000Z",
    "2026-01-01T00:00:07.000Z",
    "2026-01-01T00:00:08.000Z",
    "2026-01-01T00:00:09.000Z",
];

fn rejected(conn: &rusqlite::Connection) -> Vec<(Option<String>, String, String)> {
    conn.prepare(
        "SELECT record_id, reason, raw FROM rejected_records WHERE entity = 'messages' ORDER BY updated_at, raw",
    )
    .unwrap()
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_emoji_are_mirrored_as_served_and_bad_items_are_set_aside_while_the_entity_syncs_on() {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let db = db();
    sync_ok(&engine(&server, &db.path, SyncOptions::default())).await;

    // What a JavaScript backend prints for strings cut inside a surrogate pair, at several depths
    // and in a key; then items that cannot be records, between good ones.
    let items = [
        (
            "half-1",
            T[0],
            format!(
                r#"{{"type":"message","id":"half-1","attributes":{{"preview":"Thanks! \ud83d","createdAt":"{0}","updatedAt":"{0}","meta":{{"deep":{{"deeper":["ok \ud83d","\ude00 end"]}}}}}}}}"#,
                T[0]
            ),
        ),
        (
            "half-2",
            T[1],
            format!(
                r#"{{"type":"message","id":"half-2","attributes":{{"createdAt":"{0}","updatedAt":"{0}","custom":{{"k\ud83d":"v","noteStr":"\uD83D"}}}}}}"#,
                T[1]
            ),
        ),
        ("not-an-object", T[2], r#""just text""#.to_string()),
        (
            "id-object",
            T[3],
            format!(
                r#"{{"type":"message","id":{{"$oid":"x"}},"attributes":{{"updatedAt":"{}"}}}}"#,
                T[3]
            ),
        ),
        (
            "bad-escape",
            T[4],
            format!(
                r#"{{"type":"message","id":"bad-escape","attributes":{{"updatedAt":"{}","preview":"\x"}}}}"#,
                T[4]
            ),
        ),
        (
            "half-3",
            T[5],
            format!(
                r#"{{"type":"message","id":"half-3","attributes":{{"createdAt":"{0}","updatedAt":"{0}","preview":"\ud83d\ude00 whole, then half \ud83d"}}}}"#,
                T[5]
            ),
        ),
    ];
    for (key, at, text) in &items {
        fake.put_raw("messages", key, text, at);
    }
    // Two records a page: every item sits at a page boundary or next to one.
    let small_pages = SyncOptions {
        page_size: 2,
        ..SyncOptions::default()
    };
    sync_ok(&engine(&server, &db.path, small_pages.clone())).await;

    let conn = open(&db.path);
    let data = |id: &str| -> String {
        conn.query_row("SELECT data FROM messages WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap()
    };
    assert_eq!(
        data("half-1"),
        format!(
            r#"{{"attributes":{{"createdAt":"{0}","meta":{{"deep":{{"deeper":["ok \ud83d","\ude00 end"]}}}},"preview":"Thanks! \ud83d","updatedAt":"{0}"}},"id":"half-1","type":"message"}}"#,
            T[0]
        )
    );
    assert_eq!(
        data("half-2"),
        format!(
            r#"{{"attributes":{{"createdAt":"{0}","custom":{{"k\ud83d":"v","noteStr":"\ud83d"}},"updatedAt":"{0}"}},"id":"half-2","type":"message"}}"#,
            T[1]
        )
    );
    assert_eq!(
        data("half-3"),
        format!(
            r#"{{"attributes":{{"createdAt":"{0}","preview":"😀 whole, then half \ud83d","updatedAt":"{0}"}},"id":"half-3","type":"message"}}"#,
            T[5]
        )
    );
    // A parser that allows lone surrogates (Python's) reads the same string that was served.
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import json,sys; print(json.loads(sys.argv[1])['attributes']['preview'] == 'Thanks! \\ud83d')")
        .arg(data("half-1"))
        .output()
        .expect("python3");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "True");

    let quarantined = rejected(&conn);
    assert_eq!(
        quarantined,
        vec![
            (
                None,
                "the item is not a JSON object".to_string(),
                r#""just text""#.to_string()
            ),
            (
                None,
                "the record has an \"id\" that is neither a string nor a number".to_string(),
                items[3].2.clone()
            ),
            (
                Some("bad-escape".to_string()),
                "invalid escape \\x at byte 100 of the record".to_string(),
                items[4].2.clone()
            ),
        ]
    );
    let counted: i64 = count(
        &conn,
        "SELECT SUM(rejected) FROM sync_runs WHERE entity = 'messages'",
    );
    assert_eq!(counted, 3);
    let status =
        kustomer_mirror::sqlite::status::read(&conn, kustomer_mirror::status::Scope::Full).unwrap();
    let messages = status.iter().find(|s| s.entity == "messages").unwrap();
    assert_eq!(messages.rejected, 3);
    assert_eq!(messages.last_run.as_ref().unwrap().rejected, 3);

    // The record arrives in good form later: it is stored and leaves the quarantine.
    let good = format!(
        r#"{{"type":"message","id":"bad-escape","attributes":{{"createdAt":"{0}","updatedAt":"{0}","preview":"fixed"}}}}"#,
        T[6]
    );
    fake.put_raw("messages", "bad-escape", &good, T[6]);
    sync_ok(&engine(&server, &db.path, small_pages)).await;
    assert_eq!(
        data("bad-escape"),
        format!(
            r#"{{"attributes":{{"createdAt":"{0}","preview":"fixed","updatedAt":"{0}"}},"id":"bad-escape","type":"message"}}"#,
            T[6]
        )
    );
    let left: Vec<Option<String>> = rejected(&conn).into_iter().map(|r| r.0).collect();
    assert_eq!(left, vec![None, None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_dated_in_the_future_does_not_hide_later_updates() {
    let server = fake(Scale::Small).await;
    let fake = server.handle();
    let db = db();
    sync_ok(&engine(&server, &db.path, SyncOptions::default())).await;
    // A bad clock upstream: one customer is stamped a year ahead.
    let ahead = (chrono::Utc::now() + chrono::Duration::days(365))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let id = live(fake.records("customers"))[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    fake.update(
        "customers",
        &id,
        serde_json::json!({ "updatedAt": ahead.clone() }),
    );
    sync_ok(&engine(&server, &db.path, SyncOptions::default())).await;
    let conn = open(&db.path);
    let stored: String = conn
        .query_row(
            "SELECT updated_at FROM customers WHERE id = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, ahead, "the future-dated record is stored as served");
    let cursor: String = conn
        .query_row(
            "SELECT cursor FROM sync_state WHERE entity = 'customers'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let limit = (chrono::Utc::now() + chrono::Duration::minutes(6))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    assert!(cursor < limit, "cursor {cursor} ran ahead of the clock");

    // Ordinary updates made afterwards are all found.
    let updated = fake.update_many("customers", 20);
    assert_eq!(updated.len(), 20);
    sync_ok(&engine(&server, &db.path, SyncOptions::default())).await;
    assert_mirror_equals_fake(&db.path, &fake);
}
