//! The effective settings as TOML with secrets redacted, as `check-config` (`commands::check_config`)
//! prints them: every key, defaults included, so that the output is a complete configuration file.

use super::values::format_duration;
use super::{MembraneSettings, REDACTED, Settings};

/// The effective settings as TOML, secrets redacted.
pub fn render(s: &Settings) -> String {
    let mut out = String::new();
    render_kustomer(&mut out, s);
    render_database(&mut out, s);
    render_sync(&mut out, s);
    render_schedules(&mut out, s);
    render_log(&mut out, s);
    if s.kustomer.transport != crate::config::Transport::Direct {
        render_membrane(&mut out, &s.membrane);
    }
    render_http(&mut out, s);
    render_webhooks(&mut out, s);
    out
}

/// A TOML string literal of `v`.
fn quoted(v: &str) -> String {
    toml::Value::String(v.to_string()).to_string()
}

/// Writes the `[kustomer]` table: transport, URL, where the key comes from (redacted), timeouts.
fn render_kustomer(out: &mut String, s: &Settings) {
    out.push_str("[kustomer]\n");
    out.push_str(&format!(
        "transport = {}\n",
        quoted(s.kustomer.transport.as_str())
    ));
    if let Some(url) = &s.kustomer.base_url {
        out.push_str(&format!(
            "base_url = {}\n",
            quoted(url.as_str().trim_end_matches('/'))
        ));
    }
    if s.kustomer.api_key.is_some() {
        out.push_str(&format!("api_key = {}\n", quoted(REDACTED)));
    }
    if let Some(file) = &s.kustomer.api_key_file {
        out.push_str(&format!(
            "api_key_file = {}\n",
            quoted(&file.display().to_string())
        ));
    }
    out.push_str(&format!(
        "connect_timeout = {}\n",
        quoted(&format_duration(s.kustomer.connect_timeout))
    ));
    out.push_str(&format!(
        "request_timeout = {}\n",
        quoted(&format_duration(s.kustomer.request_timeout))
    ));
}

/// Writes the `[database]` table: the SQLite path, or the PostgreSQL URL (as shown) and TLS settings.
fn render_database(out: &mut String, s: &Settings) {
    out.push_str("\n[database]\n");
    match &s.database.postgres {
        None => out.push_str(&format!(
            "path = {}\n",
            quoted(&s.database.path.display().to_string())
        )),
        Some(pg) => {
            out.push_str(&format!(
                "url = {}  # from {}\n",
                quoted(&pg.shown),
                pg.source
            ));
            out.push_str(&format!("schema = {}\n", quoted(&pg.schema)));
            out.push_str(&format!("sslmode = {}\n", quoted(pg.sslmode.as_str())));
            if let Some(root) = &pg.sslrootcert {
                out.push_str(&format!(
                    "sslrootcert = {}\n",
                    quoted(&root.display().to_string())
                ));
            }
        }
    }
}

/// Writes the `[sync]` table: rate budgets, paging, schedules, entities, backoff and concurrency.
fn render_sync(out: &mut String, s: &Settings) {
    out.push_str("\n[sync]\n");
    out.push_str(&format!(
        "requests_per_minute = {}\n",
        s.sync.requests_per_minute
    ));
    out.push_str(&format!(
        "search_requests_per_minute = {}\n",
        s.sync.search_requests_per_minute
    ));
    out.push_str(&format!(
        "rate_window = {}\n",
        quoted(&format_duration(s.sync.rate_window))
    ));
    out.push_str(&format!("page_size = {}\n", s.sync.page_size));
    out.push_str(&format!(
        "overlap = {}\n",
        quoted(&format_duration(s.sync.overlap))
    ));
    out.push_str(&format!("schedule = {}\n", quoted(&s.sync.schedule)));
    let entities: Vec<String> = s.sync.entities.iter().map(|e| quoted(e)).collect();
    out.push_str(&format!("entities = [{}]\n", entities.join(", ")));
    out.push_str(&format!(
        "full_refresh_schedule = {}\n",
        quoted(&s.sync.full_refresh_schedule)
    ));
    out.push_str(&format!(
        "reconcile_schedule = {}\n",
        quoted(&s.sync.reconcile_schedule)
    ));
    out.push_str(&format!(
        "sweep_window = {}\n",
        quoted(&format_duration(s.sync.sweep_window))
    ));
    out.push_str(&format!(
        "sweep_schedule = {}\n",
        quoted(&s.sync.sweep_schedule)
    ));
    out.push_str(&format!(
        "failure_backoff = {}\n",
        quoted(&format_duration(s.sync.failure_backoff))
    ));
    out.push_str(&format!("concurrency = {}\n", s.sync.concurrency));
}

/// Writes the `[schedules]` table of per-entity cron overrides, when there are any.
fn render_schedules(out: &mut String, s: &Settings) {
    if !s.sync.schedules.is_empty() {
        out.push_str("\n[schedules]\n");
        for (entity, cron) in &s.sync.schedules {
            out.push_str(&format!("{entity} = {}\n", quoted(cron)));
        }
    }
}

/// Writes the `[log]` table: level, format and progress interval.
fn render_log(out: &mut String, s: &Settings) {
    out.push_str("\n[log]\n");
    out.push_str(&format!("level = {}\n", quoted(&s.log.level)));
    let format = match s.log.format {
        crate::logging::Format::Auto => "auto",
        crate::logging::Format::Human => "human",
        crate::logging::Format::Json => "json",
    };
    out.push_str(&format!("format = {}\n", quoted(format)));
    out.push_str(&format!(
        "progress_interval = {}\n",
        quoted(&format_duration(s.log.progress_interval))
    ));
}

/// Writes the `[membrane]` table: API URI, connection, secrets (redacted) or their files, keys, CLI.
fn render_membrane(out: &mut String, m: &MembraneSettings) {
    out.push_str("\n[membrane]\n");
    out.push_str(&format!("api_uri = {}\n", quoted(&m.api_uri)));
    if let Some(id) = &m.connection_id {
        out.push_str(&format!("connection_id = {}\n", quoted(id)));
    }
    for (key, set) in [
        ("token", m.token.is_some()),
        ("workspace_secret", m.workspace_secret.is_some()),
    ] {
        if set {
            out.push_str(&format!("{key} = {}\n", quoted(REDACTED)));
        }
    }
    for (key, file) in [
        ("token_file", &m.token_file),
        ("workspace_secret_file", &m.workspace_secret_file),
    ] {
        if let Some(f) = file {
            out.push_str(&format!("{key} = {}\n", quoted(&f.display().to_string())));
        }
    }
    for (key, value) in [
        ("workspace_key", &m.workspace_key),
        ("tenant_key", &m.tenant_key),
    ] {
        if let Some(v) = value {
            out.push_str(&format!("{key} = {}\n", quoted(v)));
        }
    }
    out.push_str(&format!(
        "token_lifetime = {}\n",
        quoted(&format_duration(m.token_lifetime))
    ));
    out.push_str(&format!(
        "cli_path = {}\n",
        quoted(&m.cli_path.display().to_string())
    ));
    out.push_str(&format!(
        "cli_timeout = {}\n",
        quoted(&format_duration(m.cli_timeout))
    ));
}

/// Writes the `[http]` table: the listen address and the health thresholds.
fn render_http(out: &mut String, s: &Settings) {
    out.push_str("\n[http]\n");
    if let Some(listen) = s.http.listen {
        out.push_str(&format!("listen = {}\n", quoted(&listen.to_string())));
    }
    out.push_str(&format!(
        "max_consecutive_failures = {}\n",
        s.http.max_consecutive_failures
    ));
    out.push_str(&format!(
        "max_lag = {}\n",
        quoted(&format_duration(s.http.max_lag))
    ));
}

/// Writes the `[webhooks]` table; the token is redacted and the token file named, never read.
fn render_webhooks(out: &mut String, s: &Settings) {
    let w = &s.webhooks;
    out.push_str("\n[webhooks]\n");
    if let Some(listen) = w.listen {
        out.push_str(&format!("listen = {}\n", quoted(&listen.to_string())));
    }
    out.push_str(&format!("path = {}\n", quoted(&w.path)));
    if w.token.is_some() {
        out.push_str(&format!("token = {}\n", quoted(crate::config::REDACTED)));
    }
    if let Some(file) = &w.token_file {
        out.push_str(&format!(
            "token_file = {}\n",
            quoted(&file.display().to_string())
        ));
    }
    out.push_str(&format!(
        "inbox = {}\n",
        quoted(&w.inbox.display().to_string())
    ));
    out.push_str(&format!("max_body = {}\n", w.max_body));
    out.push_str(&format!(
        "read_timeout = {}\n",
        quoted(&format_duration(w.read_timeout))
    ));
}
