//! The database file: creation, WAL, schema versions and clear errors.

use kustomer_mirror::sqlite::{SCHEMA_VERSION, Store, StoreError};

const ENTITY_TABLES: [&str; 11] = [
    "customers",
    "companies",
    "conversations",
    "messages",
    "notes",
    "users",
    "teams",
    "tags",
    "queues",
    "klasses",
    "kobjects",
];

fn tables(store: &Store) -> Vec<String> {
    let mut stmt = store
        .conn()
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap();
    stmt.query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_new_file_gets_every_table_of_the_data_model_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("mirror.db")).unwrap();
    let names = tables(&store);
    for table in ENTITY_TABLES
        .iter()
        .chain(&["change_log", "sync_state", "sync_runs"])
    {
        assert!(
            names.iter().any(|n| n == table),
            "missing table {table}: {names:?}"
        );
    }
    let mode: String = store
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn every_entity_table_has_the_contract_columns() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("mirror.db")).unwrap();
    for table in ENTITY_TABLES {
        let mut stmt = store
            .conn()
            .prepare(&format!("SELECT name FROM pragma_table_xinfo('{table}')"))
            .unwrap();
        let cols: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for col in [
            "id",
            "data",
            "created_at",
            "updated_at",
            "deleted_at",
            "first_synced_at",
            "last_changed_at",
            "hash",
        ] {
            assert!(
                cols.iter().any(|c| c == col),
                "{table} lacks {col}: {cols:?}"
            );
        }
    }
}

#[test]
fn typed_columns_are_computed_from_the_stored_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("mirror.db")).unwrap();
    let data = r#"{"type":"conversation","id":"c1","attributes":{"status":"open","priority":3,
        "channels":["email","chat"],"createdAt":"2024-10-21T14:02:11.925Z","updatedAt":"2024-10-21T14:05:40.118Z"},
        "relationships":{"customer":{"data":{"type":"customer","id":"cu1"}}}}"#;
    store
        .conn()
        .execute(
            "INSERT INTO conversations (id, data, first_synced_at, last_changed_at, hash) VALUES ('c1', ?1, 'x', 'x', 'h')",
            [data],
        )
        .unwrap();
    let row: (String, i64, String, String, String) = store
        .conn()
        .query_row(
            "SELECT status, priority, channel, customer_id, updated_at FROM conversations WHERE id = 'c1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        (
            "open".into(),
            3,
            "email".into(),
            "cu1".into(),
            "2024-10-21T14:05:40.118Z".into()
        )
    );
}

#[test]
fn opening_an_existing_mirror_again_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.db");
    {
        let store = Store::open(&path).unwrap();
        store
            .conn()
            .execute(
                "INSERT INTO tags (id, data, first_synced_at, last_changed_at, hash) VALUES ('t1', '{}', 'x', 'x', 'h')",
                [],
            )
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let n: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM tags", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_database_from_a_newer_version_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 5)
            .unwrap();
    }
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found, .. } if found == SCHEMA_VERSION + 5));
    assert!(err.to_string().contains("upgrade kustomer-mirror"), "{err}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION + 5);
}

#[test]
fn a_database_holding_someone_elses_tables_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE invoices (id INTEGER)")
        .unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(err.to_string().contains("invoices"), "{err}");
}

#[test]
fn a_path_in_a_missing_directory_gives_an_error_that_names_the_path_and_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/mirror.db");
    let err = Store::open(&path).unwrap_err().to_string();
    assert!(err.contains("no/such/dir/mirror.db"), "{err}");
    assert!(err.contains("database.path"), "{err}");
}

#[test]
fn the_schema_opens_in_the_systems_older_sqlite3_cli() {
    // BI users poke at the mirror with whatever sqlite3 they have; Debian 12 ships 3.40.
    let Ok(out) = std::process::Command::new("sqlite3")
        .arg("--version")
        .output()
    else {
        // CI installs it (.ci/run); on a developer machine without it there is nothing to check.
        assert!(
            std::env::var_os("CI").is_none(),
            "sqlite3 CLI missing in CI"
        );
        eprintln!("sqlite3 CLI not installed; skipping");
        return;
    };
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.db");
    drop(Store::open(&path).unwrap());
    let out = std::process::Command::new("sqlite3")
        .arg(&path)
        .arg("SELECT count(*) FROM conversations; PRAGMA integrity_check;")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\nok\n");
}

/// The tables of versions 1 and 2, frozen.
const V2_TABLES: &str = include_str!("fixtures/schema-v2-tables.sql");
/// The tables of version 3, frozen.
const V3_TABLES: &str = include_str!("fixtures/schema-v3-tables.sql");
/// The tables of version 4, frozen.
const V4_TABLES: &str = include_str!("fixtures/schema-v4-tables.sql");

#[test]
fn version_1_to_4_databases_upgrade_to_the_current_schema_with_their_rows() {
    for version in [1, 2, 3, 4] {
        upgrades_from(version);
    }
}

fn upgrades_from(version: u32) {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join(format!("v{version}.db"));
    {
        let conn = rusqlite::Connection::open(&old).unwrap();
        conn.execute_batch(match version {
            ..3 => V2_TABLES,
            3 => V3_TABLES,
            _ => V4_TABLES,
        })
        .unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {version}"))
            .unwrap();
        conn.execute(
            "INSERT INTO conversations (id, data, first_synced_at, last_changed_at, hash) VALUES ('c1', ?1, 'x', 'x', 'h')",
            [r#"{"id":"c1","attributes":{"status":"open","tags":["t1"],"createdAt":"2024-01-01T00:00:00.000Z"}}"#],
        )
        .unwrap();
        conn.execute_batch(
            "INSERT INTO sync_runs (entity, mode, started_at, finished_at, status, requests, fetched, inserted) \
             VALUES ('conversations', 'incremental', 's', 'f', 'ok', 7, 5, 5);",
        )
        .unwrap();
    }
    let store = Store::open(&old).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let run: (String, i64, i64, i64, i64) = store
        .conn()
        .query_row(
            "SELECT entity, requests, fetched, inserted, rejected FROM sync_runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(run, ("conversations".to_string(), 7, 5, 5, 0));
    let n: i64 = store
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM conversation_tags WHERE conversation_id = 'c1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    let schema = |s: &Store| -> Vec<(String, String)> {
        let mut stmt = s
            .conn()
            .prepare("SELECT name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let fresh = Store::open(dir.path().join("new.db")).unwrap();
    assert_eq!(
        schema(&store),
        schema(&fresh),
        "an upgraded database has the same schema as a new one"
    );
}

#[test]
fn committed_pages_are_checkpointed_into_the_file_in_the_background_and_the_wal_is_kept() {
    use kustomer_mirror::record::Record;
    use kustomer_mirror::sqlite::apply::{PageWrite, apply_page};
    use kustomer_mirror::sqlite::runs::{Mode, begin_run};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let mut store = Store::open(&path).unwrap();
    let file_size = || std::fs::metadata(&path).unwrap().len();
    let empty = file_size();
    let run = begin_run(&mut store, "notes", Mode::Full, &[]).unwrap();
    // About 6 MB of rows: far below the writer's own autocheckpoint (8000 pages of 8 KiB), so only
    // the background checkpoints copy them into the database file while the store stays open.
    let body = "x".repeat(2000);
    for p in 0..6 {
        let records = (0..500)
            .map(|i| {
                Record::from_value(&serde_json::json!({
                    "type": "note", "id": format!("n{p}-{i}"),
                    "attributes": {"body": body, "updatedAt": "2025-01-01T00:00:00.000Z"}
                }))
                .unwrap()
            })
            .collect();
        let page = PageWrite {
            table: "notes",
            state_key: "notes".into(),
            klass: None,
            run_id: run,
            records,
            rejected: vec![],
            source: "test".into(),
            requests: 1,
            fetched: 500,
            cursor: None,
            expected: None,
            only_newer: false,
        };
        apply_page(&mut store, &page).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while file_size() < empty + 5_000_000 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        file_size() >= empty + 5_000_000,
        "the database file is still {} bytes with the store open: no background checkpoint ran",
        file_size()
    );
    drop(store);
    // Both connections are closed, and the -wal and -shm files stay for group readers.
    assert!(dir.path().join("m.db-wal").exists());
    assert!(dir.path().join("m.db-shm").exists());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3000);
}
