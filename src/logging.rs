//! Log setup: `tracing` to stderr, human-readable on a terminal, JSON lines otherwise when asked
//! (`log.format`), filtered by `log.level` (or `RUST_LOG` when set). Field names are fixed across the
//! code: `entity, page, rows, changed, cursor, duration_ms, error`.

use std::io::IsTerminal;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human on a terminal, JSON when stderr is captured by systemd's journal.
    Auto,
    /// Always human-readable.
    Human,
    /// Always one JSON object per line.
    Json,
}

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(level: &str, format: Format) {
    init_with_writer(level, format, std::io::stderr, true);
}

/// [`init`], writing through `writer` (which writes to stderr in the end: `sync`'s progress bars
/// pass one that keeps log lines from tearing them). `RUST_LOG` replaces `level` only when
/// `env_may_override` (`sync --quiet` means errors only, whatever the environment says).
pub fn init_with_writer<W>(level: &str, format: Format, writer: W, env_may_override: bool)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| env_may_override && !s.trim().is_empty())
        .unwrap_or_else(|| format!("{level},tokio_cron_scheduler=warn,hyper=warn,reqwest=warn"));
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match format {
        Format::Json => true,
        Format::Human => false,
        Format::Auto => {
            !std::io::stderr().is_terminal() && std::env::var_os("JOURNAL_STREAM").is_some()
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}
