//! Reading settings: layering the TOML file and the environment with the `config` crate, then
//! checking every key against [`KEYS`] and turning values into typed [`Settings`], collecting one
//! clear line per problem.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat, Value, ValueKind};

use super::database::{self, DatabaseSettings, PgSettings, SslMode};
use super::defaults;
use super::values::{did_you_mean, parse_duration, valid_cron};
use super::{
    ConfigError, HttpSettings, KustomerSettings, LogSettings, MembraneSettings, Secret, Settings,
    SyncSettings, Transport, WebhookSettings,
};
use crate::logging::Format;

/// Every key, as `section.key`.
pub const KEYS: &[&str] = &[
    "kustomer.base_url",
    "kustomer.api_key",
    "kustomer.api_key_file",
    "kustomer.connect_timeout",
    "kustomer.request_timeout",
    "kustomer.transport",
    "kustomer.max_retries",
    "kustomer.retry_backoff",
    "database.path",
    "database.url",
    "database.url_file",
    "database.schema",
    "database.sslmode",
    "database.sslrootcert",
    "sync.requests_per_minute",
    "sync.search_requests_per_minute",
    "sync.rate_window",
    "sync.page_size",
    "sync.overlap",
    "sync.schedule",
    "sync.full_refresh_schedule",
    "sync.reconcile_schedule",
    "sync.sweep_window",
    "sync.sweep_schedule",
    "sync.failure_backoff",
    "sync.entities",
    "sync.concurrency",
    "log.level",
    "log.format",
    "log.progress_interval",
    "membrane.api_uri",
    "membrane.connection_id",
    "membrane.token",
    "membrane.token_file",
    "membrane.workspace_key",
    "membrane.workspace_secret",
    "membrane.workspace_secret_file",
    "membrane.tenant_key",
    "membrane.token_lifetime",
    "membrane.cli_path",
    "membrane.cli_timeout",
    "http.listen",
    "http.max_consecutive_failures",
    "http.max_lag",
    "webhooks.listen",
    "webhooks.path",
    "webhooks.token",
    "webhooks.token_file",
    "webhooks.inbox",
    "webhooks.max_body",
    "webhooks.read_timeout",
];

/// Layers and validates.
pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Settings, ConfigError> {
    let mut builder = Config::builder();
    if let Some(path) = path {
        if !path.is_file() {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                reason: "no such file".to_string(),
            });
        }
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    // `KUSTOMER_MIRROR_CONFIG` (one underscore) names the file and is not a setting: only variables
    // with the `KUSTOMER_MIRROR__` prefix are read here. Added last, so the environment wins.
    let settings_env: config::Map<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("KUSTOMER_MIRROR__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix("KUSTOMER_MIRROR")
            .prefix_separator("__")
            .separator("__")
            .source(Some(settings_env)),
    );
    let merged = builder
        .build()
        .and_then(|c| c.try_deserialize::<config::Map<String, Value>>())
        .map_err(|e| ConfigError::Read {
            path: path.map_or_else(|| PathBuf::from("(environment)"), Path::to_path_buf),
            reason: e.to_string(),
        })?;
    let mut flat: HashMap<String, Value> = HashMap::new();
    let mut errors = Vec::new();
    for (section, value) in merged {
        match value.kind {
            ValueKind::Table(table) => {
                for (key, value) in table {
                    flat.insert(
                        format!("{}.{}", section.to_lowercase(), key.to_lowercase()),
                        value,
                    );
                }
            }
            _ => errors.push(unknown(&section)),
        }
    }
    let mut keys: Vec<&String> = flat.keys().collect();
    keys.sort();
    for key in keys {
        if key.starts_with("schedules.") {
            // Per-entity schedule overrides: the key is an entity name, checked with the values.
            continue;
        }
        if !KEYS.contains(&key.as_str()) {
            errors.push(unknown(key));
        }
    }
    let mut r = Reader { flat, errors };
    let settings = r.settings(env);
    match settings {
        Some(s) if r.errors.is_empty() => Ok(s),
        _ => Err(ConfigError::Invalid(r.errors)),
    }
}

fn unknown_entity_key(key: &str, name: &str, all: &[String]) -> String {
    match did_you_mean(name, all.iter().map(String::as_str)) {
        Some(close) => format!("unknown key {key} (did you mean schedules.{close}?)"),
        None => format!(
            "unknown key {key}: schedules.<entity> takes one of {}",
            all.join(", ")
        ),
    }
}

fn unknown(key: &str) -> String {
    match did_you_mean(key, KEYS.iter().copied()) {
        Some(close) => format!("unknown key {key} (did you mean {close}?)"),
        None => format!("unknown key {key}; the keys are listed in config.example.toml"),
    }
}

struct Reader {
    flat: HashMap<String, Value>,
    errors: Vec<String>,
}

impl Reader {
    fn text(&self, key: &str) -> Option<String> {
        self.flat.get(key).and_then(|v| match &v.kind {
            ValueKind::Nil => None,
            kind => Some(kind.to_string()),
        })
    }

    fn bad(&mut self, key: &str, value: &str, expected: &str) {
        self.errors
            .push(format!("invalid {key} {value:?}: expected {expected}"));
    }

    fn number(&mut self, key: &str, default: u32, min: u32, max: u32) -> u32 {
        let Some(text) = self.text(key) else {
            return default;
        };
        match text.trim().parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                self.bad(
                    key,
                    &text,
                    &format!("a whole number between {min} and {max}"),
                );
                default
            }
        }
    }

    fn duration(&mut self, key: &str, default: Duration, max: Duration) -> Duration {
        let Some(text) = self.text(key) else {
            return default;
        };
        match parse_duration(&text) {
            Some(d) if d <= max => d,
            _ => {
                self.bad(key, &text, "a duration such as 30s, 5m or 1h30m");
                default
            }
        }
    }

    fn settings(&mut self, env: &HashMap<String, String>) -> Option<Settings> {
        let transport = match self.text("kustomer.transport").as_deref().map(str::trim) {
            None | Some("direct") => Transport::Direct,
            Some("membrane") => Transport::Membrane,
            Some("membrane-cli") => Transport::MembraneCli,
            Some(other) => {
                let other = other.to_string();
                self.bad(
                    "kustomer.transport",
                    &other,
                    "direct, membrane or membrane-cli",
                );
                Transport::Direct
            }
        };
        let base_url = self.base_url(transport == Transport::Direct);
        let membrane = self.membrane(transport, env);
        let mut api_key_source = None;
        let mut api_key = None;
        if let Some(key) = self
            .text("kustomer.api_key")
            .filter(|k| !k.trim().is_empty())
        {
            api_key_source = Some(if env.contains_key("KUSTOMER_MIRROR__KUSTOMER__API_KEY") {
                "environment KUSTOMER_MIRROR__KUSTOMER__API_KEY"
            } else {
                "kustomer.api_key in the config file"
            });
            api_key = Some(Secret::new(key.trim()));
        }
        if let Some(key) = env.get("KUSTOMER_API_KEY").filter(|k| !k.trim().is_empty()) {
            api_key_source = Some("environment KUSTOMER_API_KEY");
            api_key = Some(Secret::new(key.trim()));
        }
        let api_key_file = self.text("kustomer.api_key_file").map(|f| {
            let f = PathBuf::from(f);
            match env.get("CREDENTIALS_DIRECTORY") {
                Some(dir) if f.is_relative() => Path::new(dir).join(f),
                _ => f,
            }
        });
        if api_key.is_none() && api_key_file.is_some() {
            api_key_source = Some("kustomer.api_key_file");
        }
        let connect_timeout = self.duration(
            "kustomer.connect_timeout",
            defaults::CONNECT_TIMEOUT,
            Duration::from_secs(600),
        );
        let max_retries = self.number("kustomer.max_retries", defaults::MAX_RETRIES, 0, 20);
        let retry_backoff = self.duration(
            "kustomer.retry_backoff",
            defaults::RETRY_BACKOFF,
            Duration::from_secs(600),
        );
        let request_timeout = self.duration(
            "kustomer.request_timeout",
            defaults::REQUEST_TIMEOUT,
            Duration::from_secs(3600),
        );
        let database = self.database(env);
        let sync = self.sync();
        let log = self.log();
        let http = self.http();
        let webhooks = self.webhooks(&database);
        Some(Settings {
            kustomer: KustomerSettings {
                transport,
                base_url: if transport == Transport::Direct {
                    Some(base_url?)
                } else {
                    base_url
                },
                api_key,
                api_key_file,
                connect_timeout,
                request_timeout,
                max_retries,
                retry_backoff,
                api_key_source,
            },
            database,
            sync,
            log,
            http,
            membrane,
            webhooks,
        })
    }

    /// `[database]`: SQLite by `path`, or PostgreSQL by `url` / `url_file`, never both.
    fn database(&mut self, env: &HashMap<String, String>) -> DatabaseSettings {
        let path = self.text("database.path");
        let url_text = self.text("database.url").filter(|u| !u.trim().is_empty());
        let url_file = self.file("database.url_file", env);
        let mut source = None;
        let url = match (url_text, url_file) {
            (Some(_), Some(_)) => {
                self.errors
                    .push("database.url and database.url_file are both set: keep one".to_string());
                None
            }
            (Some(url), None) => {
                source = Some(if env.contains_key("KUSTOMER_MIRROR__DATABASE__URL") {
                    "environment KUSTOMER_MIRROR__DATABASE__URL"
                } else {
                    "database.url in the config file"
                });
                Some(url)
            }
            (None, Some(file)) => match std::fs::read_to_string(&file) {
                Ok(text) if !text.trim().is_empty() => {
                    source = Some("database.url_file");
                    Some(text.trim().to_string())
                }
                Ok(_) => {
                    self.errors.push(format!(
                        "database.url_file {} is empty; it should hold postgres://user:password@host:5432/database",
                        file.display()
                    ));
                    None
                }
                Err(e) => {
                    self.errors.push(format!(
                        "cannot read database.url_file {}: {e}",
                        file.display()
                    ));
                    None
                }
            },
            (None, None) => None,
        };
        let pg_only = [
            "database.schema",
            "database.sslmode",
            "database.sslrootcert",
        ];
        let postgres = match (url, source) {
            (Some(url), Some(source)) => {
                if path.is_some() {
                    self.errors.push(format!(
                        "database.path and {} are both set: database.path selects SQLite, the URL PostgreSQL; keep one",
                        if source == "database.url_file" { "database.url_file" } else { "database.url" }
                    ));
                }
                self.postgres(&url, source, env)
            }
            _ => {
                for key in pg_only {
                    if self.text(key).is_some()
                        && !self.errors.iter().any(|e| e.contains("database.url"))
                    {
                        self.errors.push(format!(
                            "{key} is set but no database.url is: it applies to PostgreSQL only"
                        ));
                    }
                }
                None
            }
        };
        DatabaseSettings {
            path: path.map_or_else(|| PathBuf::from("kustomer-mirror.db"), PathBuf::from),
            postgres,
        }
    }

    fn postgres(
        &mut self,
        url: &str,
        source: &'static str,
        env: &HashMap<String, String>,
    ) -> Option<PgSettings> {
        let parsed = match database::parse_url(url) {
            Ok(p) => p,
            Err(why) => {
                // The URL may hold a password: the message names the key, never the value.
                self.errors.push(format!("database.url {why}"));
                return None;
            }
        };
        let schema = self
            .text("database.schema")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| database::DEFAULT_SCHEMA.to_string());
        if !database::valid_schema(&schema) {
            self.bad(
                "database.schema",
                &schema,
                "lower-case letters, digits and _ (at most 63, not starting with a digit or pg_)",
            );
        }
        let key_mode = self.text("database.sslmode");
        let mode_text = key_mode.clone().or(parsed.sslmode.clone());
        let sslmode = match mode_text.as_deref().map(SslMode::parse) {
            None => SslMode::Prefer,
            Some(Some(mode)) => mode,
            Some(None) => {
                let shown = mode_text.unwrap_or_default();
                self.bad(
                    if key_mode.is_some() {
                        "database.sslmode"
                    } else {
                        "sslmode in database.url"
                    },
                    &shown,
                    "disable, prefer, require or verify-full",
                );
                SslMode::Prefer
            }
        };
        let sslrootcert = self
            .file("database.sslrootcert", env)
            .or(parsed.sslrootcert.map(PathBuf::from));
        if let Some(file) = &sslrootcert
            && !file.is_file()
        {
            self.errors.push(format!(
                "database.sslrootcert {} does not exist; it should be a PEM file of the CA that signed the server's certificate",
                file.display()
            ));
        }
        Some(PgSettings {
            shown: database::redact_url(parsed.url.expose()),
            url: parsed.url,
            schema,
            sslmode,
            sslrootcert,
            source,
        })
    }

    fn file(&self, key: &str, env: &HashMap<String, String>) -> Option<PathBuf> {
        self.text(key).map(|f| {
            let f = PathBuf::from(f);
            match env.get("CREDENTIALS_DIRECTORY") {
                Some(dir) if f.is_relative() => Path::new(dir).join(f),
                _ => f,
            }
        })
    }

    fn membrane(
        &mut self,
        transport: Transport,
        env: &HashMap<String, String>,
    ) -> MembraneSettings {
        // Membrane's SDK reads MEMBRANE_*; honour them below our own keys.
        let from_env = |name: &str| {
            env.get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let text = |r: &Self, key: &str, fallback: &str| {
            r.text(key)
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .or_else(|| from_env(fallback))
        };
        let api_uri_text = text(self, "membrane.api_uri", "MEMBRANE_API_URI")
            .unwrap_or_else(|| "https://api.getmembrane.com".to_string());
        let api_uri = match url::Url::parse(api_uri_text.trim_end_matches('/')) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            _ => {
                self.bad(
                    "membrane.api_uri",
                    &api_uri_text,
                    "an absolute http(s) URL such as https://api.getmembrane.com",
                );
                None
            }
        };
        let connection_id = text(self, "membrane.connection_id", "MEMBRANE_CONNECTION_ID");
        let token = text(self, "membrane.token", "MEMBRANE_ACCESS_TOKEN").map(Secret::new);
        let token_file = self.file("membrane.token_file", env);
        let workspace_key = text(self, "membrane.workspace_key", "MEMBRANE_WORKSPACE_KEY");
        let workspace_secret = text(
            self,
            "membrane.workspace_secret",
            "MEMBRANE_WORKSPACE_SECRET",
        )
        .map(Secret::new);
        let workspace_secret_file = self.file("membrane.workspace_secret_file", env);
        let tenant_key = text(self, "membrane.tenant_key", "MEMBRANE_TENANT_KEY");
        let token_lifetime = self.duration(
            "membrane.token_lifetime",
            Duration::from_secs(3600),
            Duration::from_secs(86_400),
        );
        let cli_path = PathBuf::from(
            self.text("membrane.cli_path")
                .unwrap_or_else(|| "membrane".to_string()),
        );
        let cli_timeout = self.duration(
            "membrane.cli_timeout",
            Duration::from_secs(60),
            Duration::from_secs(3600),
        );
        if transport != Transport::Direct && connection_id.is_none() {
            self.errors.push(format!(
                "missing membrane.connection_id: kustomer.transport = \"{}\" needs the id of the Kustomer connection in Membrane",
                transport.as_str()
            ));
        }
        if transport == Transport::Membrane {
            let has_token = token.is_some() || token_file.is_some();
            let has_secret = workspace_secret.is_some() || workspace_secret_file.is_some();
            let mint = workspace_key.is_some() || has_secret || tenant_key.is_some();
            if !has_token && !mint {
                self.errors.push("missing Membrane credentials: set membrane.token (or token_file, or MEMBRANE_ACCESS_TOKEN), or membrane.workspace_key, membrane.workspace_secret (or workspace_secret_file) and membrane.tenant_key".to_string());
            } else if !has_token {
                for (missing, key) in [
                    (workspace_key.is_none(), "membrane.workspace_key"),
                    (!has_secret, "membrane.workspace_secret"),
                    (tenant_key.is_none(), "membrane.tenant_key"),
                ] {
                    if missing {
                        self.errors.push(format!("missing {key}: minting Membrane tokens needs membrane.workspace_key, membrane.workspace_secret and membrane.tenant_key"));
                    }
                }
            }
        }
        MembraneSettings {
            api_uri: api_uri.map_or(api_uri_text, |u| {
                u.as_str().trim_end_matches('/').to_string()
            }),
            connection_id,
            token,
            token_file,
            workspace_key,
            workspace_secret,
            workspace_secret_file,
            tenant_key,
            token_lifetime,
            cli_path,
            cli_timeout,
        }
    }

    fn base_url(&mut self, required: bool) -> Option<url::Url> {
        let key = "kustomer.base_url";
        let Some(text) = self.text(key).filter(|t| !t.trim().is_empty()) else {
            if !required {
                return None;
            }
            self.errors.push(format!(
                "missing {key}: set it in the config file or KUSTOMER_MIRROR__KUSTOMER__BASE_URL (e.g. https://acme.api.kustomerapp.com)"
            ));
            return None;
        };
        let expected = "an absolute http(s) URL such as https://acme.api.kustomerapp.com";
        match url::Url::parse(text.trim().trim_end_matches('/')) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.username().is_empty()
                    && url.password().is_none()
                    && url.query().is_none() =>
            {
                Some(url)
            }
            _ => {
                self.bad(key, &text, expected);
                None
            }
        }
    }

    fn cron(&mut self, key: &str, default: &str) -> String {
        let value = self.text(key).unwrap_or_else(|| default.to_string());
        if !valid_cron(&value) {
            self.bad(
                key,
                &value,
                "a cron expression with seconds, e.g. \"0 */5 * * * *\" (every 5 minutes)",
            );
        }
        value
    }

    fn http(&mut self) -> HttpSettings {
        let listen = self.text("http.listen").filter(|t| !t.trim().is_empty()).and_then(|t| {
            match t.trim().parse::<std::net::SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.bad("http.listen", &t, "an address and port such as 127.0.0.1:9187 (leave unset to turn the listener off)");
                    None
                }
            }
        });
        HttpSettings {
            listen,
            max_consecutive_failures: self.number("http.max_consecutive_failures", 3, 1, 1000),
            max_lag: self.duration(
                "http.max_lag",
                Duration::from_secs(3600),
                Duration::from_secs(30 * 86_400),
            ),
        }
    }

    /// `[webhooks]`. The inbox defaults to a file beside the SQLite mirror, or to
    /// `kustomer-mirror-webhooks.db` in the working directory (the unit's StateDirectory) for
    /// PostgreSQL.
    fn webhooks(&mut self, database: &DatabaseSettings) -> WebhookSettings {
        let listen = self.text("webhooks.listen").filter(|t| !t.trim().is_empty()).and_then(|t| {
            match t.trim().parse::<std::net::SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.bad("webhooks.listen", &t, "an address and port such as 127.0.0.1:8089 (leave unset to turn the receiver off)");
                    None
                }
            }
        });
        let path = self
            .text("webhooks.path")
            .unwrap_or_else(|| defaults::WEBHOOK_PATH.to_string());
        let path_ok = path.starts_with('/')
            && path.len() <= 200
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
        if !path_ok {
            self.bad(
                "webhooks.path",
                &path,
                "an absolute URL path of letters, digits and / - _ . ~ such as /webhooks/kustomer",
            );
        }
        let token = self
            .text("webhooks.token")
            .filter(|t| !t.trim().is_empty())
            .map(|t| Secret::new(t.trim()));
        let token_file = self
            .text("webhooks.token_file")
            .filter(|t| !t.trim().is_empty())
            .map(PathBuf::from);
        let inbox = match self.text("webhooks.inbox").filter(|t| !t.trim().is_empty()) {
            Some(p) => PathBuf::from(p),
            None if database.postgres.is_some() => PathBuf::from(defaults::WEBHOOK_INBOX),
            None => {
                let mut name = database.path.as_os_str().to_os_string();
                name.push(".webhooks");
                PathBuf::from(name)
            }
        };
        let max_body = self.number(
            "webhooks.max_body",
            defaults::WEBHOOK_MAX_BODY,
            1024,
            1 << 30,
        );
        let read_timeout = self.duration(
            "webhooks.read_timeout",
            defaults::WEBHOOK_READ_TIMEOUT,
            Duration::from_secs(300),
        );
        WebhookSettings {
            listen,
            path: if path_ok {
                path
            } else {
                defaults::WEBHOOK_PATH.to_string()
            },
            token,
            token_file,
            inbox,
            max_body: u64::from(max_body),
            read_timeout,
        }
    }

    fn sync(&mut self) -> SyncSettings {
        let all: Vec<String> = crate::entity::names()
            .into_iter()
            .map(String::from)
            .collect();
        let entities = match self.flat.get("sync.entities").map(|v| v.kind.clone()) {
            None | Some(ValueKind::Nil) => all.clone(),
            Some(ValueKind::Array(items)) => items.iter().map(|v| v.kind.to_string()).collect(),
            Some(kind) => kind
                .to_string()
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        };
        for name in &entities {
            if !all.contains(name) {
                let hint = did_you_mean(name, all.iter().map(String::as_str))
                    .map(|c| format!(" (did you mean {c}?)"))
                    .unwrap_or_default();
                self.errors.push(format!(
                    "invalid sync.entities entry {name:?}{hint}: expected some of {}",
                    all.join(", ")
                ));
            }
        }
        if entities.is_empty() {
            self.bad("sync.entities", "", "at least one entity");
        }
        let schedule = self.cron("sync.schedule", "0 */5 * * * *");
        let full_refresh_schedule = self.cron("sync.full_refresh_schedule", "0 */30 * * * *");
        let reconcile_schedule = self.cron("sync.reconcile_schedule", "0 15 3 * * *");
        let sweep_schedule = self.cron("sync.sweep_schedule", "0 45 2 * * *");
        let mut overrides = std::collections::BTreeMap::new();
        let mut keys: Vec<String> = self
            .flat
            .keys()
            .filter(|k| k.starts_with("schedules."))
            .cloned()
            .collect();
        keys.sort();
        for key in keys {
            let name = key.trim_start_matches("schedules.").to_string();
            if !all.contains(&name) {
                self.errors.push(unknown_entity_key(&key, &name, &all));
                continue;
            }
            let cron = self.cron(&key, "");
            overrides.insert(name, cron);
        }
        SyncSettings {
            requests_per_minute: self.number("sync.requests_per_minute", 240, 1, 100_000),
            search_requests_per_minute: self.number(
                "sync.search_requests_per_minute",
                80,
                1,
                10_000,
            ),
            rate_window: self.duration(
                "sync.rate_window",
                Duration::from_secs(60),
                Duration::from_secs(3600),
            ),
            page_size: self.number("sync.page_size", defaults::PAGE_SIZE, 1, 500),
            overlap: self.duration(
                "sync.overlap",
                defaults::OVERLAP,
                Duration::from_secs(86_400),
            ),
            schedule,
            full_refresh_schedule,
            reconcile_schedule,
            sweep_window: self.duration(
                "sync.sweep_window",
                Duration::from_secs(48 * 3600),
                Duration::from_secs(366 * 86_400),
            ),
            sweep_schedule,
            schedules: overrides,
            failure_backoff: self.duration(
                "sync.failure_backoff",
                Duration::from_secs(60),
                Duration::from_secs(86_400),
            ),
            entities,
            concurrency: self.number("sync.concurrency", defaults::CONCURRENCY, 1, 32),
        }
    }

    fn log(&mut self) -> LogSettings {
        let level = self.text("log.level").unwrap_or_else(|| "info".to_string());
        if level.trim().is_empty() || tracing_subscriber::EnvFilter::try_new(level.trim()).is_err()
        {
            self.bad(
                "log.level",
                &level,
                "a level (error, warn, info, debug, trace) or a tracing filter",
            );
        }
        let format = match self.text("log.format").as_deref().map(str::trim) {
            None | Some("auto") => Format::Auto,
            Some("human") => Format::Human,
            Some("json") => Format::Json,
            Some(other) => {
                let other = other.to_string();
                self.bad("log.format", &other, "auto, human or json");
                Format::Auto
            }
        };
        let mut progress_interval = self.duration(
            "log.progress_interval",
            Duration::from_secs(10),
            Duration::from_secs(24 * 3600),
        );
        // A zero interval would log in a busy loop.
        if progress_interval < Duration::from_millis(100) {
            let text = self.text("log.progress_interval").unwrap_or_default();
            self.bad(
                "log.progress_interval",
                &text,
                "a duration of at least 100ms, such as 10s",
            );
            progress_interval = Duration::from_secs(10);
        }
        LogSettings {
            level: level.trim().to_string(),
            format,
            progress_interval,
        }
    }
}
