//! Settings: defaults → TOML file → environment (`KUSTOMER_MIRROR__SECTION__KEY`, then
//! `KUSTOMER_API_KEY`), the environment winning. Every key is validated with a one-line message that
//! names it, its bad value and what is expected; unknown keys are rejected with a "did you mean";
//! secrets are [`Secret`]s and never print.

pub mod cli;
pub mod database;
pub mod defaults;
mod load;
mod secret;
pub mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use database::{DatabaseSettings, PgSettings, SslMode};
pub use load::KEYS;
pub use secret::{REDACTED, Secret};

/// All settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How to reach Kustomer.
    pub kustomer: KustomerSettings,
    /// Where the mirror lives.
    pub database: DatabaseSettings,
    /// What to sync and how fast.
    pub sync: SyncSettings,
    /// Logging.
    pub log: LogSettings,
    /// The optional health and metrics listener.
    pub http: HttpSettings,
    /// How to reach Kustomer through Membrane (`kustomer.transport = "membrane" | "membrane-cli"`).
    pub membrane: MembraneSettings,
    /// The receiver of Kustomer's outbound webhooks (`[webhooks]`).
    pub webhooks: WebhookSettings,
}

/// `[webhooks]`: the receiver of Kustomer's outbound webhooks, on a listener of its own.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where to listen; `None` (the default) turns the receiver off.
    pub listen: Option<std::net::SocketAddr>,
    /// The path Kustomer posts to (default `/webhooks/kustomer`).
    pub path: String,
    /// A token given in the config or `KUSTOMER_MIRROR__WEBHOOKS__TOKEN`.
    pub token: Option<Secret>,
    /// A file of tokens, one per line (several during a rotation); `webhooks register` writes it.
    pub token_file: Option<PathBuf>,
    /// The durable inbox: a SQLite file that holds each verified event until it is applied.
    pub inbox: PathBuf,
    /// Bodies larger than this are refused with 413 before they are read whole.
    pub max_body: u64,
    /// A client that has not sent its whole request within this time is cut off.
    pub read_timeout: Duration,
}

impl WebhookSettings {
    /// The tokens events may be signed with: the configured one, then each non-empty line of the
    /// token file. An error names the file and what to do; no tokens at all is an error too.
    pub fn tokens(&self) -> Result<Vec<Secret>, ConfigError> {
        let mut tokens: Vec<Secret> = self.token.iter().cloned().collect();
        if let Some(path) = &self.token_file {
            match std::fs::read_to_string(path) {
                Ok(text) => tokens.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(Secret::new),
                ),
                Err(e) if tokens.is_empty() => {
                    return Err(ConfigError::Invalid(vec![format!(
                        "cannot read webhooks.token_file {}: {e} (`kustomer-mirror webhooks register --url https://…` writes it)",
                        path.display()
                    )]));
                }
                Err(_) => {}
            }
        }
        if tokens.is_empty() {
            return Err(ConfigError::Invalid(vec![
                "webhooks.listen is set but there is no webhook token: set webhooks.token_file (run `kustomer-mirror webhooks register --url https://…` to create the hook and the file), webhooks.token or KUSTOMER_MIRROR__WEBHOOKS__TOKEN".to_string(),
            ]));
        }
        Ok(tokens)
    }
}

/// How requests reach Kustomer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Straight to `kustomer.base_url` with the API key.
    Direct,
    /// Through Membrane's API proxy with a Membrane token.
    Membrane,
    /// Through the `membrane` CLI and its own login.
    MembraneCli,
}

impl Transport {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Direct => "direct",
            Transport::Membrane => "membrane",
            Transport::MembraneCli => "membrane-cli",
        }
    }
}

/// `[membrane]`.
#[derive(Debug, Clone)]
pub struct MembraneSettings {
    /// Membrane's API (self-hosted installs have their own), validated, without a trailing slash.
    pub api_uri: String,
    /// The id of the Kustomer connection in Membrane.
    pub connection_id: Option<String>,
    /// A ready access token.
    pub token: Option<Secret>,
    /// A file holding the access token.
    pub token_file: Option<PathBuf>,
    /// Workspace key, for minting tokens.
    pub workspace_key: Option<String>,
    /// Workspace secret, for minting tokens.
    pub workspace_secret: Option<Secret>,
    /// A file holding the workspace secret.
    pub workspace_secret_file: Option<PathBuf>,
    /// The tenant (customer) whose connection is used.
    pub tenant_key: Option<String>,
    /// Lifetime of minted tokens (renewed when a quarter is left).
    pub token_lifetime: Duration,
    /// The `membrane` executable for `membrane-cli`.
    pub cli_path: PathBuf,
    /// Upper bound of one CLI call.
    pub cli_timeout: Duration,
}

fn read_secret_file(path: &Path, key: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::KeyFile {
        path: path.to_path_buf(),
        reason: format!("{e} ({key})"),
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(ConfigError::KeyFile {
            path: path.to_path_buf(),
            reason: format!("the file is empty ({key})"),
        });
    }
    Ok(Secret::new(value))
}

impl MembraneSettings {
    /// The ready token, from the setting or its file.
    pub fn token(&self) -> Result<Option<Secret>, ConfigError> {
        match (&self.token, &self.token_file) {
            (Some(t), _) => Ok(Some(t.clone())),
            (None, Some(f)) => read_secret_file(f, "membrane.token_file").map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The workspace secret, from the setting or its file.
    pub fn workspace_secret(&self) -> Result<Option<Secret>, ConfigError> {
        match (&self.workspace_secret, &self.workspace_secret_file) {
            (Some(t), _) => Ok(Some(t.clone())),
            (None, Some(f)) => read_secret_file(f, "membrane.workspace_secret_file").map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// `[http]`: `/healthz` and `/metrics` for the daemon.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Where to listen; `None` (the default) turns the listener off.
    pub listen: Option<std::net::SocketAddr>,
    /// Failed runs in a row after which an entity makes `/healthz` answer 503.
    pub max_consecutive_failures: u32,
    /// Time since an entity's last successful run after which `/healthz` answers 503.
    pub max_lag: Duration,
}

/// `[kustomer]`.
#[derive(Debug, Clone)]
pub struct KustomerSettings {
    /// How requests reach Kustomer.
    pub transport: Transport,
    /// API base URL, e.g. `https://acme.api.kustomerapp.com` (a path prefix is kept); required for
    /// the direct transport, unused through Membrane (which knows the org's host).
    pub base_url: Option<url::Url>,
    /// The API key, from `kustomer.api_key` or the environment.
    pub api_key: Option<Secret>,
    /// A file holding the key (relative paths resolve against `$CREDENTIALS_DIRECTORY` when set).
    pub api_key_file: Option<PathBuf>,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Retries of a request after transient failures (5xx, dropped connections, timeouts).
    pub max_retries: u32,
    /// First retry delay; doubles per retry, with jitter, up to a minute.
    pub retry_backoff: Duration,
    /// Where the key came from, for `check-config`.
    pub api_key_source: Option<&'static str>,
}

/// `[sync]`.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// The org-wide request budget this mirror may use.
    pub requests_per_minute: u32,
    /// The search budget this mirror may use (Kustomer allows API keys 100 a minute).
    pub search_requests_per_minute: u32,
    /// The window the budgets are counted over (Kustomer's is a minute; shorter windows pace the
    /// same per-minute rate more evenly, e.g. against a server with short windows).
    pub rate_window: Duration,
    /// Records per request.
    pub page_size: u32,
    /// How far before the cursor incremental passes start.
    pub overlap: Duration,
    /// Cron schedule of incremental syncs (6 fields, seconds first, UTC).
    pub schedule: String,
    /// Cron schedule of the full-refresh entities (users, teams, tags, queues, klasses).
    pub full_refresh_schedule: String,
    /// Cron schedule of the hard-delete reconcile.
    pub reconcile_schedule: String,
    /// How far before the cursor the sweep starts (changes that reached search late).
    pub sweep_window: Duration,
    /// Cron schedule of the sweep.
    pub sweep_schedule: String,
    /// Per-entity schedule overrides (`[schedules]`).
    pub schedules: std::collections::BTreeMap<String, String>,
    /// First wait after a failed run of an entity; doubles per failure (with jitter) up to an hour.
    pub failure_backoff: Duration,
    /// Entities to mirror.
    pub entities: Vec<String>,
    /// Entities synced at once.
    pub concurrency: u32,
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// A tracing filter directive, e.g. `info` or `kustomer_mirror=debug`.
    pub level: String,
    /// Output format.
    pub format: crate::logging::Format,
    /// How often `sync` without a terminal logs a progress line per running entity.
    pub progress_interval: std::time::Duration,
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or is not valid TOML.
    #[error("cannot read the config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// One or more keys are missing, unknown or invalid: one line each.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// No API key anywhere.
    #[error(
        "no API key: set KUSTOMER_API_KEY, kustomer.api_key or kustomer.api_key_file (with systemd, LoadCredential= and api_key_file)"
    )]
    NoApiKey,
    /// The key file could not be read.
    #[error("cannot read kustomer.api_key_file {path}: {reason}")]
    KeyFile {
        /// The resolved path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

impl Settings {
    /// Loads settings from `path` (if any) and the process environment.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let env: std::collections::HashMap<String, String> = std::env::vars().collect();
        Settings::load_from(path, &env)
    }

    /// Loads settings from `path` (if any) and the given environment (for tests).
    pub fn load_from(
        path: Option<&Path>,
        env: &std::collections::HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        load::load(path, env)
    }
}

impl KustomerSettings {
    /// The API key: the configured one, else the key file's first line.
    pub fn api_key(&self) -> Result<Secret, ConfigError> {
        if let Some(key) = &self.api_key {
            return Ok(key.clone());
        }
        let Some(path) = &self.api_key_file else {
            return Err(ConfigError::NoApiKey);
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::KeyFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let key = text.trim();
        if key.is_empty() {
            return Err(ConfigError::KeyFile {
                path: path.clone(),
                reason: "the file is empty".to_string(),
            });
        }
        Ok(Secret::new(key))
    }
}
