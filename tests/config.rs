//! Settings: layering, validation messages that name the key, unknown keys, redaction, and the
//! `check-config` command as users run it.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kustomer_mirror::config::Settings;

fn example() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"))
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn errors(path: Option<&Path>, vars: &[(&str, &str)]) -> String {
    Settings::load_from(path, &env(vars))
        .unwrap_err()
        .to_string()
}

fn toml_file(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_example_config_parses_to_the_defaults() {
    let s = Settings::load_from(Some(example()), &env(&[])).unwrap();
    let d = Settings::load_from(
        None,
        &env(&[(
            "KUSTOMER_MIRROR__KUSTOMER__BASE_URL",
            "http://127.0.0.1:8089",
        )]),
    )
    .unwrap();
    assert_eq!(s.kustomer.base_url, d.kustomer.base_url);
    assert_eq!(s.kustomer.connect_timeout, d.kustomer.connect_timeout);
    assert_eq!(s.kustomer.request_timeout, Duration::from_secs(60));
    assert_eq!(s.database.path, d.database.path);
    assert_eq!(s.sync.requests_per_minute, 240);
    assert_eq!(
        s.sync.search_requests_per_minute,
        d.sync.search_requests_per_minute
    );
    assert_eq!(s.sync.page_size, d.sync.page_size);
    assert_eq!(s.sync.overlap, Duration::from_secs(300));
    assert_eq!(s.sync.schedule, d.sync.schedule);
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    assert_eq!(sorted(&s.sync.entities), sorted(&d.sync.entities));
    assert_eq!(s.sync.entities.len(), 21);
    assert_eq!(s.sync.concurrency, d.sync.concurrency);
    assert_eq!(s.log.level, d.log.level);
    assert_eq!(s.log.progress_interval, d.log.progress_interval);
    assert_eq!(d.log.progress_interval, Duration::from_secs(10));
    // Every key the loader knows is documented in the example.
    let text = std::fs::read_to_string(example()).unwrap();
    for key in kustomer_mirror::config::KEYS {
        let name = key.split('.').nth(1).unwrap();
        assert!(
            text.contains(&format!("{name} =")),
            "{key} is not in config.example.toml"
        );
    }
}

#[test]
fn the_environment_beats_the_file_and_the_file_beats_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = toml_file(
        &dir,
        "[kustomer]\nbase_url = \"https://acme.api.kustomerapp.com/\"\n[sync]\npage_size = 200\noverlap = \"2m\"\n",
    );
    let s = Settings::load_from(Some(&path), &env(&[])).unwrap();
    assert_eq!(s.sync.page_size, 200);
    assert_eq!(s.sync.overlap, Duration::from_secs(120));
    assert_eq!(s.sync.concurrency, 4);
    let s = Settings::load_from(
        Some(&path),
        &env(&[
            ("KUSTOMER_MIRROR__SYNC__PAGE_SIZE", "100"),
            ("KUSTOMER_MIRROR__SYNC__ENTITIES", "customers,conversations"),
            ("KUSTOMER_MIRROR_CONFIG", "/somewhere/else.toml"),
        ]),
    )
    .unwrap();
    assert_eq!(s.sync.page_size, 100);
    assert_eq!(s.sync.entities, ["customers", "conversations"]);
    assert_eq!(
        s.kustomer.base_url.as_ref().unwrap().as_str(),
        "https://acme.api.kustomerapp.com/"
    );
}

#[test]
fn the_api_key_comes_from_the_environment_or_a_credentials_file() {
    let s = Settings::load_from(Some(example()), &env(&[("KUSTOMER_API_KEY", "k-123")])).unwrap();
    assert_eq!(s.kustomer.api_key().unwrap().expose(), "k-123");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kustomer-key"), "k-from-file\n").unwrap();
    let s = Settings::load_from(
        Some(example()),
        &env(&[
            ("KUSTOMER_MIRROR__KUSTOMER__API_KEY_FILE", "kustomer-key"),
            ("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap()),
        ]),
    )
    .unwrap();
    assert_eq!(s.kustomer.api_key().unwrap().expose(), "k-from-file");
    let none = Settings::load_from(Some(example()), &env(&[])).unwrap();
    assert!(
        none.kustomer
            .api_key()
            .unwrap_err()
            .to_string()
            .contains("KUSTOMER_API_KEY")
    );
}

#[test]
fn settings_never_print_the_key() {
    let s =
        Settings::load_from(Some(example()), &env(&[("KUSTOMER_API_KEY", "sekrit-42")])).unwrap();
    assert!(!format!("{s:?}").contains("sekrit-42"));
    assert!(format!("{s:?}").contains("[redacted]"));
    assert!(!kustomer_mirror::config::cli::render(&s).contains("sekrit-42"));
}

#[test]
fn each_bad_setting_gives_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    assert!(errors(None, &[]).starts_with("missing kustomer.base_url"));
    let bad_url = errors(
        None,
        &[("KUSTOMER_MIRROR__KUSTOMER__BASE_URL", "not a url")],
    );
    assert_eq!(bad_url.lines().count(), 1, "{bad_url}");
    assert!(
        bad_url.contains("invalid kustomer.base_url \"not a url\""),
        "{bad_url}"
    );
    let path = toml_file(
        &dir,
        "[kustomer]\nbase_url = \"http://x\"\n[sync]\npagesize = 3\n",
    );
    assert_eq!(
        errors(Some(&path), &[]),
        "unknown key sync.pagesize (did you mean sync.page_size?)"
    );
    let path = toml_file(
        &dir,
        "[kustomer]\nbase_url = \"http://x\"\n[sync]\nrequests_per_minute = \"fast\"\n",
    );
    let rate = errors(Some(&path), &[]);
    assert_eq!(
        rate,
        "invalid sync.requests_per_minute \"fast\": expected a whole number between 1 and 100000"
    );
    let path = toml_file(
        &dir,
        "[kustomer]\nbase_url = \"http://x\"\n[log]\nprogress_interval = \"0s\"\n",
    );
    assert_eq!(
        errors(Some(&path), &[]),
        "invalid log.progress_interval \"0s\": expected a duration of at least 100ms, such as 10s"
    );
    let many = errors(
        None,
        &[
            ("KUSTOMER_MIRROR__SYNC__CONCURRENCY", "0"),
            ("KUSTOMER_MIRROR__LOG__FORMAT", "xml"),
        ],
    );
    assert_eq!(many.lines().count(), 3, "{many}");
    let entity = errors(
        Some(example()),
        &[("KUSTOMER_MIRROR__SYNC__ENTITIES", "customer")],
    );
    assert!(entity.contains("did you mean customers?"), "{entity}");
}

fn check_config(vars: &[(&str, &str)], config: &Path) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kustomer-mirror"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.arg("--config")
        .arg(config)
        .arg("check-config")
        .output()
        .unwrap()
}

#[test]
fn check_config_prints_the_effective_config_with_the_key_redacted() {
    let out = check_config(&[("KUSTOMER_API_KEY", "secret-xyz")], example());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("secret-xyz"));
    assert!(stdout.contains("api_key = \"[redacted]\""), "{stdout}");
    assert!(stdout.contains("page_size = 500"));
    assert!(stdout.contains("from environment KUSTOMER_API_KEY"));
    // The printed config is itself valid TOML.
    let body: String = stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    body.parse::<toml::Table>().unwrap();
}

#[test]
fn check_config_exits_2_with_one_clear_line_for_each_kind_of_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[sync]\npage_size = 10\n", "missing kustomer.base_url"),
        (
            "[kustomer]\nbase_url = \"ftp//nope\"\n",
            "invalid kustomer.base_url \"ftp//nope\"",
        ),
        (
            "[kustomer]\nbase_url = \"http://x\"\nbase_ulr = \"y\"\n",
            "unknown key kustomer.base_ulr (did you mean kustomer.base_url?)",
        ),
        (
            "[kustomer]\nbase_url = \"http://x\"\n[sync]\nsearch_requests_per_minute = \"lots\"\n",
            "invalid sync.search_requests_per_minute \"lots\"",
        ),
    ];
    for (text, expected) in cases {
        let path = toml_file(&dir, text);
        let out = check_config(&[("KUSTOMER_API_KEY", "secret-xyz")], &path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("secret-xyz"));
    }
}

#[test]
fn per_entity_schedules_are_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = toml_file(
        &dir,
        "[kustomer]\nbase_url = \"http://x\"\n[schedules]\nconversations = \"0 * * * * *\"\n",
    );
    let s = Settings::load_from(Some(&path), &env(&[])).unwrap();
    assert_eq!(s.sync.schedules["conversations"], "0 * * * * *");
    assert_eq!(s.sync.full_refresh_schedule, "0 */30 * * * *");
    let path = toml_file(
        &dir,
        "[kustomer]\nbase_url = \"http://x\"\n[schedules]\nconversation = \"0 * * * * *\"\nusers = \"every day\"\n",
    );
    let errors = errors(Some(&path), &[]);
    assert!(
        errors
            .contains("unknown key schedules.conversation (did you mean schedules.conversations?)"),
        "{errors}"
    );
    assert!(
        errors.contains("invalid schedules.users \"every day\""),
        "{errors}"
    );
}
