//! `webhooks register | list | remove` driving the real binary against the built-in fake's
//! `/v1/outbound-webhooks`, directly with the API key, through the Membrane proxy and through the
//! (fake) Membrane CLI: the token file (0600, the newest token first, earlier ones kept, a removed
//! hook's line dropped) holds exactly the token the fake serves (read here with a plain HTTP
//! request), no output ever shows a token, bad usage is refused before any request, and Kustomer's
//! refusals (401: the role to grant; 400: its detail) are shown.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;
use crate::membrane::{CONNECTION, SECRET, WORKSPACE, fake_cli, membrane_fake};
use kustomer_mirror::fake::FakeServer;
use serde_json::Value;

/// Where the test's receiver would be (nothing listens: Kustomer's fake does not deliver).
const URL: &str = "http://127.0.0.1:9/webhooks/kustomer";

#[derive(Clone, Copy, Debug)]
enum Way {
    Direct,
    Proxy,
    /// The `membrane` CLI: the fake one of `tests/membrane.rs`, first on PATH, HOME in the temp dir.
    Cli,
}

async fn server() -> FakeServer {
    membrane_fake().await
}

/// The binary configured for `way`, with `tokens` as webhooks.token_file (when given).
fn hooks_cmd(way: Way, server: &FakeServer, dir: &Path, tokens: Option<&Path>) -> Command {
    let mut cmd = bin();
    cmd.env("KUSTOMER_MIRROR__DATABASE__PATH", dir.join("mirror.db"))
        .env("HOME", dir.join("home"));
    if let Some(tokens) = tokens {
        cmd.env("KUSTOMER_MIRROR__WEBHOOKS__TOKEN_FILE", tokens);
    }
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
            cmd.env(
                "PATH",
                format!(
                    "{}:{}",
                    dir.join("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("KUSTOMER_MIRROR__KUSTOMER__TRANSPORT", "membrane-cli")
            .env("KUSTOMER_MIRROR__MEMBRANE__CONNECTION_ID", CONNECTION);
        }
    }
    cmd.arg("webhooks");
    cmd
}

async fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args);
    output(cmd).await
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The id `register` printed ("registered webhook <id>").
fn registered_id(o: &Output) -> String {
    let stdout = String::from_utf8_lossy(&o.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("registered webhook "))
        .unwrap_or_else(|| panic!("no id in the output:\n{}", text(o)))
        .trim()
        .to_string()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `GET /v1/outbound-webhooks/{id}` on the fake with the API key, independently of the mirror's
/// client: the status and the document.
async fn fake_hook(server: &FakeServer, id: &str) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::Client::new()
        .get(format!("{}/v1/outbound-webhooks/{id}", server.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn served_token(server: &FakeServer, id: &str) -> String {
    let (status, doc) = fake_hook(server, id).await;
    assert_eq!(status, 200, "{doc}");
    doc["data"]["attributes"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("the fake serves no token: {doc}"))
        .to_string()
}

fn assert_no_token(o: &Output, tokens: &[&str]) {
    let all = text(o);
    for token in tokens {
        assert!(!all.contains(token), "a token was printed:\n{all}");
    }
}

/// Register twice, list (table and JSON), remove the first, remove it again: over `way`.
async fn lifecycle(way: Way) {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    fake_cli(dir.path(), &server.base_url());
    let tokens: PathBuf = dir.path().join("webhook-tokens");
    let cmd = || hooks_cmd(way, &server, dir.path(), Some(&tokens));

    let first = run(cmd(), &["register", "--url", URL]).await;
    assert!(first.status.success(), "{way:?}: {}", text(&first));
    let id1 = registered_id(&first);
    let token1 = served_token(&server, &id1).await;
    assert_eq!(lines(&tokens), vec![token1.clone()], "{way:?}");
    let mode = std::fs::metadata(&tokens).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{way:?}: mode {mode:o}");
    assert_no_token(&first, &[&token1]);
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        out.contains(URL) && out.contains("kustomer-mirror"),
        "{out}"
    );
    assert!(
        out.contains("kustomer.tag.update") && out.contains("(12)"),
        "{out}"
    );
    assert!(out.contains(&tokens.display().to_string()), "{out}");
    // Only the token file is in the directory besides what the binary itself may create.
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")),
        "a temporary file was left behind"
    );

    let second = run(cmd(), &["register", "--url", URL, "--name", "second hook"]).await;
    assert!(second.status.success(), "{way:?}: {}", text(&second));
    let id2 = registered_id(&second);
    assert_ne!(id1, id2);
    let token2 = served_token(&server, &id2).await;
    assert_eq!(
        lines(&tokens),
        vec![token2.clone(), token1.clone()],
        "{way:?}"
    );
    assert_no_token(&second, &[&token1, &token2]);

    let list = run(cmd(), &["list"]).await;
    assert!(list.status.success(), "{way:?}: {}", text(&list));
    let table = String::from_utf8_lossy(&list.stdout);
    assert!(table.contains(&id1) && table.contains(&id2), "{table}");
    assert!(
        table.contains("second hook") && table.contains(URL),
        "{table}"
    );
    assert_no_token(&list, &[&token1, &token2]);

    let json = run(cmd(), &["list", "--json"]).await;
    assert!(json.status.success(), "{way:?}: {}", text(&json));
    assert_no_token(&json, &[&token1, &token2]);
    let listed: Value = serde_json::from_slice(&json.stdout).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert!(
        ids.contains(&id1.as_str()) && ids.contains(&id2.as_str()),
        "{listed}"
    );
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h.get("token").is_none())
    );

    let removed = run(cmd(), &["remove", &id1]).await;
    assert!(removed.status.success(), "{way:?}: {}", text(&removed));
    assert_no_token(&removed, &[&token1, &token2]);
    assert_eq!(fake_hook(&server, &id1).await.0, 404, "{way:?}");
    assert_eq!(lines(&tokens), vec![token2.clone()], "{way:?}");
    let mode = std::fs::metadata(&tokens).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{way:?}: mode {mode:o}");

    let again = run(cmd(), &["remove", &id1]).await;
    assert_eq!(again.status.code(), Some(1), "{way:?}: {}", text(&again));
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains(&format!(
            "no webhook {id1}; `kustomer-mirror webhooks list` shows the ids"
        )),
        "{said}"
    );
    assert_eq!(lines(&tokens), vec![token2], "{way:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_list_and_remove_with_the_api_key() {
    lifecycle(Way::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_list_and_remove_through_the_membrane_proxy() {
    lifecycle(Way::Proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_list_and_remove_through_the_membrane_cli() {
    if !tool_available("python3", "the fake membrane CLI") {
        eprintln!("python3 missing: skipping");
        return;
    }
    lifecycle(Way::Cli).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_is_refused_before_any_request() {
    let server = server().await;
    let fake = server.handle();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let cases: [(&[&str], Option<&Path>, &str); 5] = [
        (
            &[
                "register",
                "--url",
                "http://mirror.example.com/webhooks/kustomer",
            ],
            Some(&tokens),
            "must be https",
        ),
        (
            &["register", "--url", "not a url"],
            Some(&tokens),
            "is not a URL",
        ),
        (
            &[
                "register",
                "--url",
                "https://user:pw@mirror.example.com/webhooks/kustomer",
            ],
            Some(&tokens),
            "user name or password",
        ),
        (&["register", "--url", URL], None, "webhooks.token_file"),
        (
            &["register", "--url", URL],
            Some(&dir.path().join("no-such-dir/tokens")),
            "does not exist",
        ),
    ];
    for (args, file, expected) in cases {
        let before = fake.stats().requests;
        let o = run(hooks_cmd(Way::Direct, &server, dir.path(), file), args).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(expected), "{args:?}: {}", text(&o));
        assert_eq!(fake.stats().requests, before, "{args:?} sent a request");
    }
    assert!(!tokens.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_off_webhooks_path_warns_but_registers() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let o = run(
        hooks_cmd(Way::Direct, &server, dir.path(), Some(&tokens)),
        &["register", "--url", "http://localhost:9/elsewhere"],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("warning:") && said.contains("webhooks.path"),
        "{said}"
    );
    let id = registered_id(&o);
    assert_eq!(lines(&tokens), vec![served_token(&server, &id).await]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_names_the_role_to_grant_and_not_the_key() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let wrong = "wrong-key-0b6f2d";
    for args in [
        &["register", "--url", URL][..],
        &["list"],
        &["remove", "x1"],
    ] {
        let mut cmd = hooks_cmd(Way::Direct, &server, dir.path(), Some(&tokens));
        cmd.env("KUSTOMER_API_KEY", wrong);
        let o = run(cmd, args).await;
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        let said = text(&o);
        assert!(said.contains("org.permission.outbound_webhook"), "{said}");
        assert!(said.contains("org.admin.outbound_webhooks"), "{said}");
        assert!(!said.contains(wrong), "{said}");
    }
    assert!(!tokens.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomers_refusal_is_shown_and_the_token_file_is_untouched() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    // The fake, as Kustomer, allows five webhooks per org; the sixth is refused with 400.
    for n in 0..5 {
        let o = run(
            hooks_cmd(Way::Direct, &server, dir.path(), Some(&tokens)),
            &["register", "--url", URL, "--name", &format!("hook {n}")],
        )
        .await;
        assert!(o.status.success(), "{}", text(&o));
    }
    let before = std::fs::read(&tokens).unwrap();
    assert_eq!(lines(&tokens).len(), 5);
    let o = run(
        hooks_cmd(Way::Direct, &server, dir.path(), Some(&tokens)),
        &["register", "--url", URL],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("(400)") && said.contains("at most 5 outbound webhooks"),
        "{said}"
    );
    assert_eq!(std::fs::read(&tokens).unwrap(), before);
}
