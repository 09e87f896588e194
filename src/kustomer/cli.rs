//! The `membrane-cli` transport: each request runs `membrane request <connection> <path> -X METHOD
//! [--query k=v]… [-d BODY --json]`, authenticated by the CLI's own login, and stdout is the upstream
//! JSON. What it cannot see: HTTP status codes and rate-limit headers. So a non-zero exit is read from
//! the error JSON the CLI may print (`{message, type, data:{response:{status, data}}}`) when there is
//! one, and otherwise treated as a transient failure that is retried with backoff; the configured
//! budgets (`sync.requests_per_minute`) are the only rate limiting. Nothing secret is ever passed on
//! the command line: the CLI holds the credentials.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::error::{ApiError, excerpt};

/// How to run the CLI.
#[derive(Debug, Clone)]
pub struct CliBackend {
    /// The executable (`membrane`, found on `PATH`, or a path).
    pub program: PathBuf,
    /// The Membrane connection to Kustomer.
    pub connection_id: String,
    /// Upper bound of one call.
    pub timeout: Duration,
}

/// What a failed call told us.
pub enum CliFailure {
    /// The CLI printed the upstream status and body.
    Status(u16, Vec<u8>),
    /// Anything else, already an error.
    Error(ApiError),
}

impl CliBackend {
    /// Runs one request; `Ok(stdout)` on exit 0 with JSON on stdout.
    pub async fn send(
        &self,
        method: &Method,
        link: &str,
        body: Option<&Value>,
    ) -> Result<Vec<u8>, CliFailure> {
        let (path, query) = link.split_once('?').unwrap_or((link, ""));
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.arg("request")
            .arg(&self.connection_id)
            .arg(path)
            .arg("-X")
            .arg(method.as_str());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            cmd.arg("--query").arg(crate::escape::percent_decoded(pair));
        }
        if let Some(body) = body {
            cmd.arg("-d").arg(body.to_string()).arg("--json");
        }
        // A clean environment: the CLI finds its own login from these, and nothing of ours (the
        // PostgreSQL URL, an API key, a Membrane secret in KUSTOMER_MIRROR__* or MEMBRANE_*) reaches it.
        cmd.env_clear();
        for (name, value) in std::env::vars_os() {
            if name.to_str().is_some_and(passed_to_cli) {
                cmd.env(name, value);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let program = self.program.display().to_string();
        let child = cmd.spawn().map_err(|e| {
            CliFailure::Error(ApiError::Transport {
                url: format!("{program} request {} {path}", self.connection_id),
                reason: format!("cannot run the Membrane CLI ({e}); install it (npm i -g @membranehq/cli) or set membrane.cli_path"),
                timeout: false,
            })
        })?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => {
                return Err(CliFailure::Error(ApiError::Transport {
                    url: path.to_string(),
                    reason: format!("the Membrane CLI failed: {e}"),
                    timeout: false,
                }));
            }
            Err(_) => {
                return Err(CliFailure::Error(ApiError::Transport {
                    url: path.to_string(),
                    reason: format!(
                        "the Membrane CLI did not answer within {:?} (membrane.cli_timeout)",
                        self.timeout
                    ),
                    timeout: true,
                }));
            }
        };
        if output.status.success() {
            return Ok(output.stdout);
        }
        // The error JSON the CLI may print carries the upstream status; stderr wording is not relied on.
        if let Ok(v) = serde_json::from_slice::<Value>(&output.stdout)
            && let Some(status) = v.pointer("/data/response/status").and_then(Value::as_u64)
        {
            let data = v
                .pointer("/data/response/data")
                .map(|d| d.to_string())
                .unwrap_or_default();
            return Err(CliFailure::Status(status as u16, data.into_bytes()));
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(CliFailure::Error(ApiError::Server {
            status: 0,
            path: path.to_string(),
            message: format!(
                "the Membrane CLI exited with {} ({}); check `membrane` login and membrane.connection_id",
                output
                    .status
                    .code()
                    .map_or("a signal".to_string(), |c| c.to_string()),
                excerpt(stderr.trim(), 200)
            ),
        }))
    }
}

/// The variables the Membrane CLI (a Node program) may need to find itself, its login
/// (`~/.membrane/`) and the network: the search path, the home and user, the locale and time zone,
/// temporary files, the XDG directories, Node's own settings, the proxy settings and where the
/// system's CA certificates are. Everything
/// else, and whatever holds a secret of the mirror's, stays behind.
fn passed_to_cli(name: &str) -> bool {
    const EXACT: [&str; 15] = [
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "TZ",
        "TMPDIR",
        "TERM",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ];
    const PREFIXES: [&str; 3] = ["XDG_", "LC_", "NODE_"];
    let upper = name.to_ascii_uppercase();
    EXACT.contains(&upper.as_str()) || PREFIXES.iter().any(|p| upper.starts_with(p))
}
