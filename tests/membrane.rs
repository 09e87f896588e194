//! Reaching Kustomer through Membrane: the API proxy (ready or minted, renewed tokens) and the
//! `membrane` CLI (a fake executable first on PATH, HOME in a temp dir) give the same mirror as direct
//! access; a revoked connection says what to do; no Membrane secret or token leaks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use kustomer_mirror::config::Secret;
use kustomer_mirror::destination::Writer;
use kustomer_mirror::fake::{FakeOptions, FakeServer, Faults, MembraneFake, Scale};
use kustomer_mirror::kustomer::jwt::{Minter, sign};
use kustomer_mirror::kustomer::{Client, MembraneAuth};
use kustomer_mirror::sync::{Engine, SyncOptions};

pub(crate) const WORKSPACE: &str = "ws-test";
pub(crate) const SECRET: &str = "ws-secret-5f1d0c2b9a";
pub(crate) const CONNECTION: &str = "conn-kustomer-1";

pub(crate) async fn membrane_fake() -> FakeServer {
    let mut opts = FakeOptions::new(21, Scale::Small, KEY);
    opts.membrane = Some(MembraneFake {
        workspace_key: WORKSPACE.into(),
        workspace_secret: SECRET.into(),
        connection_id: CONNECTION.into(),
    });
    fake_with(opts).await
}

/// A stand-in for the `membrane` CLI: `request <connection> <path> [-X M] [--query k=v]… [-d B] [--json]`
/// against the fake's proxy, authenticated from `$HOME/.membrane/credentials.json`, logging its argv.
pub(crate) fn fake_cli(dir: &Path, base: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        r#"#!/usr/bin/env python3
import json, os, sys, urllib.error, urllib.parse, urllib.request
BASE = "{base}"
args = sys.argv[1:]
home = os.environ["HOME"]
with open(os.path.join(home, "argv.log"), "a") as log:
    log.write(json.dumps(args) + "\n")
with open(os.path.join(home, "env.log"), "a") as log:
    log.write(json.dumps(dict(os.environ)) + "\n")
if len(args) < 3 or args[0] != "request":
    print("usage: membrane request <connection> <path>", file=sys.stderr)
    sys.exit(2)
conn, path, method, query, body, i = args[1], args[2], "GET", [], None, 3
while i < len(args):
    a = args[i]
    if a == "-X": method = args[i + 1]; i += 2
    elif a == "--query": query.append(args[i + 1]); i += 2
    elif a == "-d": body = args[i + 1]; i += 2
    elif a == "-H": i += 2
    elif a == "--json": i += 1
    else:
        print("unknown option " + a, file=sys.stderr); sys.exit(2)
with open(os.path.join(home, ".membrane", "credentials.json")) as f:
    token = json.load(f)["accessToken"]
url = BASE + "/connections/" + conn + "/proxy" + path
if query:
    url += "?" + urllib.parse.urlencode([tuple(q.split("=", 1)) for q in query])
req = urllib.request.Request(url, method=method, data=body.encode() if body is not None else None)
req.add_header("Authorization", "Bearer " + token)
if body is not None:
    req.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    raw = e.read().decode()
    try:
        data = json.loads(raw)
    except Exception:
        data = raw
    print(json.dumps({{"message": "Request failed with status %d" % e.code, "type": "request_failed", "data": {{"response": {{"status": e.code, "data": data}}}}}}))
    print("Error: request failed", file=sys.stderr)
    sys.exit(1)
"#
    );
    let path = bin.join("membrane");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.join("home");
    std::fs::create_dir_all(home.join(".membrane")).unwrap();
    let token = sign(
        &serde_json::json!({"workspaceKey": WORKSPACE, "tenantKey": "t1", "exp": 4_000_000_000u64}),
        SECRET.as_bytes(),
    );
    std::fs::write(
        home.join(".membrane/credentials.json"),
        serde_json::json!({"accessToken": token}).to_string(),
    )
    .unwrap();
    bin
}

#[derive(Clone, Copy)]
enum Way {
    Direct,
    Proxy,
    Cli,
}

fn sync_via(way: Way, server: &FakeServer, db: &Db, tmp: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kustomer-mirror"));
    let bin = tmp.join("bin");
    cmd.env_clear()
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("HOME", tmp.join("home"))
        .env("RUST_LOG", "trace")
        .envs(db.env())
        .env("KUSTOMER_MIRROR__SYNC__REQUESTS_PER_MINUTE", "100000")
        .env("KUSTOMER_MIRROR__SYNC__SEARCH_REQUESTS_PER_MINUTE", "10000")
        .env("KUSTOMER_MIRROR__SYNC__PAGE_SIZE", "100");
    match way {
        Way::Direct => {
            cmd.env("KUSTOMER_MIRROR__KUSTOMER__BASE_URL", server.base_url())
                .env("KUSTOMER_API_KEY", KEY);
        }
        Way::Proxy => {
            cmd.env("KUSTOMER_MIRROR__KUSTOMER__TRANSPORT", "membrane")
                .env("KUSTOMER_MIRROR__MEMBRANE__API_URI", server.base_url())
                .env("KUSTOMER_MIRROR__MEMBRANE__CONNECTION_ID", CONNECTION)
                .env("MEMBRANE_WORKSPACE_KEY", WORKSPACE)
                .env("MEMBRANE_WORKSPACE_SECRET", SECRET)
                .env("KUSTOMER_MIRROR__MEMBRANE__TENANT_KEY", "t1");
        }
        Way::Cli => {
            cmd.env("KUSTOMER_MIRROR__KUSTOMER__TRANSPORT", "membrane-cli")
                .env("KUSTOMER_MIRROR__MEMBRANE__CONNECTION_ID", CONNECTION);
        }
    }
    cmd.args(["sync", "--full"]).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every entity table and the change log's (entity, id, op, version), for comparing mirrors.
fn snapshot(db: &Db) -> BTreeMap<String, Vec<String>> {
    let line = |r: Vec<Option<String>>| -> String {
        r.into_iter()
            .map(Option::unwrap_or_default)
            .collect::<Vec<_>>()
            .join("|")
    };
    let mut out = BTreeMap::new();
    for e in kustomer_mirror::entity::ENTITIES {
        let rows: Vec<String> = db
            .query(&format!(
                "SELECT id, {}, CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END FROM {} ORDER BY id",
                data_sql(db),
                e.name
            ))
            .into_iter()
            .map(line)
            .collect();
        out.insert(e.name.to_string(), rows);
    }
    let log: Vec<String> = db
        .query("SELECT entity, record_id, op, COALESCE(source_updated_at, '') FROM change_log ORDER BY entity, record_id, op, source_updated_at")
        .into_iter()
        .map(line)
        .collect();
    out.insert("change_log".into(), log);
    out
}

on_every_destination! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_proxy_and_cli_syncs_produce_identical_mirrors(db) {
    if !tool_available("python3", "the fake membrane CLI") {
        eprintln!("python3 missing: skipping");
        return;
    }
    let server = membrane_fake().await;
    let fake = server.handle();
    let tmp = tempfile::tempdir().unwrap();
    fake_cli(tmp.path(), &server.base_url());
    let dbs: Vec<Db> = vec![db.another(), db.another(), db];
    let ways = [Way::Direct, Way::Proxy, Way::Cli];
    let run_all = |server: &FakeServer| {
        for (way, db) in ways.iter().zip(&dbs) {
            let out = sync_via(*way, server, db, tmp.path());
            assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        }
    };
    // Full sync through each way.
    let srv = &server;
    tokio::task::block_in_place(|| run_all(srv));
    // Upstream changes, then incremental (and reconcile) syncs through each way.
    fake.update_many("conversations", 12);
    fake.insert("customers", None);
    let victim = fake.records("notes")[0]["id"].as_str().unwrap().to_string();
    fake.hard_delete("notes", &victim);
    let soft = fake.records("customers")[5]["id"]
        .as_str()
        .unwrap()
        .to_string();
    fake.soft_delete("customers", &soft);
    tokio::task::block_in_place(|| run_all(srv));
    let direct = snapshot(&dbs[0]);
    assert_eq!(direct, snapshot(&dbs[1]), "proxy differs from direct");
    assert_eq!(direct, snapshot(&dbs[2]), "cli differs from direct");
    assert_mirror_equals_fake(&dbs[0], &fake);
    assert!(fake.stats().membrane_requests > 20);
    // The CLI never got a secret on its command line.
    let argv = std::fs::read_to_string(tmp.path().join("home/argv.log")).unwrap();
    assert!(argv.lines().count() > 20);
    assert!(
        !argv.contains("eyJ") && !argv.contains(SECRET) && !argv.contains(KEY),
        "{argv}"
    );
}
}

on_every_destination! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_tokens_are_renewed_before_they_expire(db) {
    let server = membrane_fake().await;
    let fake = server.handle();
    // Slow answers stretch one sync over several token lifetimes.
    fake.set_faults(Faults {
        slow: 1.0,
        slow_delay: Duration::from_millis(60),
        ..Faults::default()
    });
    let minter = Minter::new(WORKSPACE, "t1", Secret::new(SECRET), Duration::from_secs(2));
    let client = Client::membrane(
        &server.base_url(),
        CONNECTION,
        MembraneAuth::Mint(minter),
        quick_client(),
    )
    .unwrap();
    let engine = Engine::new(
        Arc::new(client),
        Writer::spawn_boxed(db.destination()).unwrap(),
        SyncOptions {
            page_size: 25,
            concurrency: 1,
            ..SyncOptions::default()
        },
    );
    let started = std::time::Instant::now();
    sync_ok(&engine).await;
    assert!(
        started.elapsed() > Duration::from_secs(4),
        "the sync was too short to need a renewal"
    );
    assert!(fake.stats().membrane_tokens_seen >= 3, "{:?}", fake.stats());
    assert_mirror_equals_fake(&db, &fake);
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_connection_or_a_bad_token_says_what_to_do() {
    let server = membrane_fake().await;
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::sqlite();
    server.handle().revoke_membrane_connection();
    let out = tokio::task::block_in_place(|| sync_via(Way::Proxy, &server, &db, tmp.path()));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&format!(
            "reconnect Kustomer in Membrane, connection {CONNECTION}"
        )),
        "{stderr}"
    );
    assert!(!db.path.exists());
    // A token signed with the wrong secret.
    let wrong = Minter::new(
        WORKSPACE,
        "t1",
        Secret::new("not-the-secret"),
        Duration::from_secs(600),
    );
    let client = Client::membrane(
        &server.base_url(),
        CONNECTION,
        MembraneAuth::Mint(wrong),
        quick_client(),
    )
    .unwrap();
    let err = client.check_access().await.unwrap_err().to_string();
    assert!(
        err.contains("Membrane rejected the access token (401"),
        "{err}"
    );
    assert!(err.contains("membrane.workspace_secret"), "{err}");
    // An expired ready token.
    let expired = sign(
        &serde_json::json!({"workspaceKey": WORKSPACE, "exp": 1_000}),
        SECRET.as_bytes(),
    );
    let client = Client::membrane(
        &server.base_url(),
        CONNECTION,
        MembraneAuth::Token(Secret::new(expired)),
        quick_client(),
    )
    .unwrap();
    let err = client.check_access().await.unwrap_err().to_string();
    assert!(
        err.contains("Membrane rejected the access token (401"),
        "{err}"
    );
}

on_every_destination! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_membrane_secret_or_token_leaks_into_logs_status_or_the_database(db) {
    let server = membrane_fake().await;
    server.handle().set_faults(Faults {
        server_error: 0.05,
        ..Faults::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = tokio::task::block_in_place(|| sync_via(Way::Proxy, &server, &db, tmp.path()));
    let all = text(&out);
    assert!(all.lines().count() > 50, "trace logging should be verbose");
    assert!(!all.contains(SECRET), "the workspace secret leaked");
    assert!(
        !all.contains("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"),
        "a token leaked"
    );
    let status = mirror_cmd_db(&server.base_url(), "unused", &db)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert!(!text(&status).contains(SECRET) && !text(&status).contains("eyJ"));
    let check = Command::new(env!("CARGO_BIN_EXE_kustomer-mirror"))
        .env_clear()
        .env("KUSTOMER_MIRROR__KUSTOMER__TRANSPORT", "membrane")
        .env("KUSTOMER_MIRROR__MEMBRANE__CONNECTION_ID", CONNECTION)
        .env("MEMBRANE_WORKSPACE_KEY", WORKSPACE)
        .env("MEMBRANE_WORKSPACE_SECRET", SECRET)
        .env("KUSTOMER_MIRROR__MEMBRANE__TENANT_KEY", "t1")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(!text(&check).contains(SECRET));
    assert!(String::from_utf8_lossy(&check.stdout).contains("workspace_secret = \"[redacted]\""));
    // CAST and LIKE read the same on both dialects (the secret has no LIKE wildcards).
    let dump = scalar(
        &db,
        &format!(
            "SELECT COUNT(*) FROM (SELECT CAST(data AS text) AS t FROM customers \
             UNION ALL SELECT error FROM sync_runs UNION ALL SELECT last_error FROM sync_state \
             UNION ALL SELECT CAST(changes AS text) FROM change_log) AS x \
             WHERE t LIKE '%{SECRET}%' OR t LIKE '%eyJhbGci%'"
        ),
    );
    assert_eq!(dump, 0);
    assert!(scalar(&db, "SELECT COUNT(*) FROM customers") > 0);
}
}

on_every_destination! {
    #[tokio::test(flavor = "multi_thread")]
    async fn the_cli_child_gets_a_clean_environment_without_the_mirrors_secrets(db) {
        if !tool_available("python3", "the fake membrane CLI") {
            eprintln!("python3 missing: skipping");
            return;
        }
        let server = membrane_fake().await;
        let tmp = tempfile::tempdir().unwrap();
        fake_cli(tmp.path(), &server.base_url());
        let leaked_secret = "workspace-secret-that-must-stay-home";
        let out = {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_kustomer-mirror"));
            cmd.env_clear()
                .env(
                    "PATH",
                    format!(
                        "{}:{}",
                        tmp.path().join("bin").display(),
                        std::env::var("PATH").unwrap_or_default()
                    ),
                )
                .env("HOME", tmp.path().join("home"))
                .env("XDG_CONFIG_HOME", tmp.path().join("home/.config"))
                .envs(db.env())
                .env("MEMBRANE_WORKSPACE_SECRET", leaked_secret)
                .env("KUSTOMER_API_KEY", "an-api-key-the-cli-must-not-see")
                .env("KUSTOMER_MIRROR__SYNC__REQUESTS_PER_MINUTE", "100000")
                .env("KUSTOMER_MIRROR__SYNC__SEARCH_REQUESTS_PER_MINUTE", "10000")
                .env("KUSTOMER_MIRROR__KUSTOMER__TRANSPORT", "membrane-cli")
                .env("KUSTOMER_MIRROR__MEMBRANE__CONNECTION_ID", CONNECTION)
                .args(["sync", "--entity", "teams"]);
            cmd.output().unwrap()
        };
        assert!(out.status.success(), "{}", text(&out));
        let log = std::fs::read_to_string(tmp.path().join("home/env.log")).unwrap();
        let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
        let names: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(names.contains(&"PATH") && names.contains(&"HOME") && names.contains(&"XDG_CONFIG_HOME"), "{names:?}");
        for name in &names {
            assert!(
                !name.starts_with("KUSTOMER") && !name.starts_with("MEMBRANE"),
                "{name} reached the CLI: {names:?}"
            );
        }
        assert!(!log.contains(leaked_secret), "{log}");
        if let Some(url) = db.url() {
            assert!(!log.contains(&url), "the database URL reached the CLI");
        }
    }
}
