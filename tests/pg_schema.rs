//! The PostgreSQL data model (`src/postgres/schema.sql`) against the SQLite one (`schema.sql`), on a real
//! private PostgreSQL server: every table and view of SQLite has its twin with the same columns in
//! the same order, the views part re-runs on a live schema, typed columns hold PostgreSQL types with
//! hand-written expected values, and awkward values insert as NULL instead of failing the row.

use crate::common::pg;
use kustomer_mirror::sqlite::Store;

const PG_SCHEMA: &str = include_str!("../src/postgres/schema.sql");

fn parts() -> (&'static str, &'static str) {
    let at = PG_SCHEMA
        .find("\n-- @views\n")
        .expect("src/postgres/schema.sql has a `-- @views` line");
    (&PG_SCHEMA[..at], &PG_SCHEMA[at..])
}

/// A fresh database with the schema `kustomer` created from the file, views run twice.
fn fresh(cluster: &pg::Cluster) -> String {
    let db = cluster.create_database("schema");
    let (tables, views) = parts();
    cluster.execute(
        &db,
        &format!("CREATE SCHEMA kustomer; SET search_path TO kustomer; {tables} {views}"),
    );
    cluster.execute(&db, &format!("SET search_path TO kustomer; {views}"));
    db
}

/// Every SQLite table and view's columns, in order.
fn sqlite_columns() -> Vec<(String, Vec<String>)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    names
        .into_iter()
        .map(|n| {
            // table_xinfo: generated columns too (table_info leaves them out).
            let cols = conn
                .prepare(&format!(
                    "SELECT name FROM pragma_table_xinfo('{n}') ORDER BY cid"
                ))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            (n, cols)
        })
        .collect()
}

#[tokio::test]
async fn every_sqlite_table_and_view_has_its_postgres_twin() {
    let Some(cluster) = pg::shared() else { return };
    let db = tokio::task::spawn_blocking(move || fresh(cluster))
        .await
        .unwrap();
    let expected = sqlite_columns();
    let found = tokio::task::spawn_blocking(move || {
        let mut client = cluster.client(&db);
        let mut out = Vec::new();
        for (name, _) in &expected {
            let cols: Vec<String> = client
                .query(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_schema = 'kustomer' AND table_name = $1 ORDER BY ordinal_position",
                    &[name],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            out.push((name.clone(), cols));
        }
        (expected, out)
    })
    .await
    .unwrap();
    let (expected, found) = found;
    assert!(expected.len() > 30, "{expected:?}");
    for ((name, want), (_, got)) in expected.iter().zip(&found) {
        // PostgreSQL keeps the exact text beside jsonb `data` only where jsonb cannot hold it.
        let got: Vec<&String> = got.iter().filter(|c| *c != "data_exact").collect();
        let want: Vec<&String> = want.iter().collect();
        assert_eq!(got, want, "columns of {name}");
    }
}

#[tokio::test]
async fn typed_columns_have_postgres_types_and_awkward_values_become_null() {
    let Some(cluster) = pg::shared() else { return };
    let rows = tokio::task::spawn_blocking(move || {
        let db = fresh(cluster);
        let mut client = cluster.client(&db);
        client
            .batch_execute(
                r#"SET search_path TO kustomer;
                INSERT INTO conversations (id, data, first_synced_at, last_changed_at, hash) VALUES
                ('c1', '{"id":"c1","attributes":{"createdAt":"2024-10-21T14:05:40.118Z","updatedAt":"2024-10-21T16:05:40.000+02:00","priority":3,"ended":true,"status":"open","assignedUsers":["u1","u2"],"messageCount":12}}', now(), now(), 'h'),
                ('c2', '{"id":"c2","attributes":{"createdAt":"garbage","updatedAt":"2024-02-30T00:00:00Z","priority":"high","ended":1,"assignedUsers":"u9","tags":null,"messageCount":3.5}}', now(), now(), 'h');"#,
            )
            .unwrap();
        client
            .query(
                "SELECT id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS'), \
                 to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS'), priority, ended, \
                 status, assigned_user_id, message_count, \
                 pg_typeof(created_at)::text, pg_typeof(priority)::text, pg_typeof(ended)::text \
                 FROM conversations ORDER BY id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, Option<String>>(1),
                    r.get::<_, Option<String>>(2),
                    r.get::<_, Option<i32>>(3),
                    r.get::<_, Option<bool>>(4),
                    r.get::<_, Option<String>>(5),
                    r.get::<_, Option<String>>(6),
                    r.get::<_, Option<i32>>(7),
                    (r.get::<_, String>(8), r.get::<_, String>(9), r.get::<_, String>(10)),
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let types = (
        "timestamp with time zone".to_string(),
        "integer".to_string(),
        "boolean".to_string(),
    );
    assert_eq!(
        rows,
        vec![
            (
                "c1".to_string(),
                Some("2024-10-21T14:05:40.118".to_string()),
                Some("2024-10-21T14:05:40.000".to_string()),
                Some(3),
                Some(true),
                Some("open".to_string()),
                Some("u1".to_string()),
                Some(12),
                types.clone(),
            ),
            (
                "c2".to_string(),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                types
            ),
        ]
    );
}

/// PostgreSQL's name of a type, short where psql's is long.
fn short(t: &str) -> String {
    match t {
        "timestamp with time zone" => "timestamptz".to_string(),
        other => other.to_string(),
    }
}

#[test]
fn docs_schema_md_gives_the_postgresql_type_of_every_table_column() {
    let Some(cluster) = pg::shared() else { return };
    let db = fresh(cluster);
    let actual = cluster.query(
        &db,
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'kustomer' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY c.relname, a.attnum",
    );
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schema.md")).unwrap();
    let mut wrong = Vec::new();
    for row in &actual {
        let (table, column, pg_type) = (
            row[0].as_deref().unwrap(),
            row[1].as_deref().unwrap(),
            short(row[2].as_deref().unwrap()),
        );
        if table == "schema_meta" {
            continue;
        }
        // `| `column` | SQLite type | PostgreSQL type | meaning |` in the table's section.
        let documented = doc
            .split(&format!("### `{table}`\n"))
            .nth(1)
            .and_then(|section| section.split("\n### ").next())
            .and_then(|section| {
                section
                    .lines()
                    .find(|l| l.starts_with(&format!("| `{column}` |")))
            })
            .and_then(|line| line.split('|').nth(3))
            .map(|cell| cell.trim().trim_matches('`').to_string());
        if documented.as_deref() != Some(pg_type.as_str()) {
            wrong.push(format!(
                "{table}.{column}: {pg_type} (documented: {documented:?})"
            ));
        }
    }
    assert!(actual.len() > 100);
    assert!(
        wrong.is_empty(),
        "docs/schema.md, PostgreSQL types:\n{}",
        wrong.join("\n")
    );
}

/// Each table's columns with their types, in order, as the server describes them (positions left
/// out: a dropped column leaves a gap in them).
fn columns_of(cluster: &pg::Cluster, db: &str, schema: &str) -> Vec<Vec<Option<String>>> {
    cluster.query(
        db,
        &format!(
            "SELECT table_name::text, column_name::text, data_type::text, \
             is_nullable::text, column_default::text FROM information_schema.columns \
             WHERE table_schema = '{schema}' ORDER BY table_name, ordinal_position"
        ),
    )
}

#[tokio::test]
async fn a_version_1_schema_upgrades_to_the_current_one_with_its_rows() {
    let Some(db) = crate::common::Db::postgres() else {
        return;
    };
    let cluster = pg::shared().unwrap();
    let settings = db.settings().postgres.unwrap();
    let name = db.url().unwrap();
    let name = name.rsplit('/').next().unwrap().split('?').next().unwrap();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        // A current schema as the binary creates it, taken back to version 1 by hand: version 2
        // added `sync_runs.expected`, version 3 `view_problems`, version 4 `webhook_events` and the
        // `webhook` mode, version 5 `sync_state.unsupported` and the coverage tables.
        drop(kustomer_mirror::postgres::Pg::open(&settings, false).unwrap());
        let current = columns_of(cluster, &name, "kustomer");
        cluster.execute(
            &name,
            "SET search_path TO kustomer; \
             ALTER TABLE sync_runs DROP COLUMN expected CASCADE; \
             DROP TABLE view_problems; \
             DROP TABLE webhook_events; \
             DROP TABLE work_sessions, slas, schedules, holidays, snoozes, brands, shortcuts, \
               satisfaction_forms, team_routing_settings, assistants CASCADE; \
             ALTER TABLE sync_state DROP COLUMN unsupported; \
             ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_mode_check; \
             ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_mode_check \
               CHECK (mode IN ('incremental', 'full', 'reconcile', 'preflight')); \
             UPDATE schema_meta SET version = 1; \
             INSERT INTO sync_runs (entity, mode, started_at, finished_at, status, requests, fetched, inserted) \
             VALUES ('conversations', 'incremental', now(), now(), 'ok', 7, 5, 5);",
        );
        assert_ne!(columns_of(cluster, &name, "kustomer"), current);
        drop(kustomer_mirror::postgres::Pg::open(&settings, false).unwrap());
        let upgraded = columns_of(cluster, &name, "kustomer");
        let differ: Vec<_> = upgraded
            .iter()
            .zip(&current)
            .filter(|(a, b)| a != b)
            .take(3)
            .collect();
        assert!(
            differ.is_empty() && upgraded.len() == current.len(),
            "an upgraded schema has the same columns as a new one: {differ:?}"
        );
        assert_eq!(
            cluster.query(&name, "SELECT version::text FROM kustomer.schema_meta"),
            vec![vec![Some(
                kustomer_mirror::postgres::SCHEMA_VERSION.to_string()
            )]]
        );
        assert_eq!(
            cluster.query(
                &name,
                "SELECT entity, requests::text, fetched::text, inserted::text, expected::text \
                 FROM kustomer.sync_runs"
            ),
            vec![vec![
                Some("conversations".to_string()),
                Some("7".to_string()),
                Some("5".to_string()),
                Some("5".to_string()),
                None
            ]]
        );
        // Every view is back (the views that read sync_runs were dropped with the column).
        let views = |db: &str| {
            cluster.query(
                db,
                "SELECT table_name::text FROM information_schema.views \
                 WHERE table_schema = 'kustomer' ORDER BY 1",
            )
        };
        assert_eq!(views(&name), views(&fresh(cluster)));
    })
    .await
    .unwrap();
}
