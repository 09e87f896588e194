//! The `fake-api` command: serves the built-in fake Kustomer API on an address until Ctrl-C or
//! SIGTERM, printing the URL and the key it accepts.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::exit::{EXIT_OK, EXIT_SYNC_FAILED, EXIT_USAGE};
use crate::fake::{FakeOptions, FakeServer, RateLimit, Scale};

/// Arguments of `fake-api`.
#[derive(Debug, clap::Args)]
pub struct FakeApiArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: String,
    /// Data seed: the same seed always gives the same organisation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Size of the organisation.
    #[arg(long, value_enum, default_value = "small")]
    pub scale: Scale,
    /// The bearer token to accept.
    #[arg(long, default_value = "fake-api-key")]
    pub api_key: String,
    /// Org budget: requests per window (default unlimited).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Search budget: searches per window (default unlimited).
    #[arg(long)]
    pub search_rate_limit: Option<u32>,
    /// Length of a rate-limit window in seconds.
    #[arg(long, default_value_t = 60)]
    pub rate_window_secs: u64,
}

/// Runs `fake-api`.
pub fn serve(args: FakeApiArgs) -> ExitCode {
    crate::logging::init("warn", crate::logging::Format::Human);
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_SYNC_FAILED);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "error: cannot listen on {}: {e}; choose another --listen address",
                    args.listen
                );
                return ExitCode::from(EXIT_USAGE);
            }
        };
        let window = Duration::from_secs(args.rate_window_secs.max(1));
        let mut options = FakeOptions::new(args.seed, args.scale, args.api_key.clone());
        options.rate_limit = args
            .rate_limit
            .map(|requests| RateLimit { requests, window });
        options.search_rate_limit = args
            .search_rate_limit
            .map(|requests| RateLimit { requests, window });
        let server = match FakeServer::start(listener, options).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot start the fake API: {e}");
                return ExitCode::from(EXIT_SYNC_FAILED);
            }
        };
        // A closed stdout (the caller stopped reading) must not stop the server.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "Fake Kustomer API listening on {}", server.base_url());
        let _ = writeln!(out, "Accepting API key: {}", args.api_key);
        let _ = out.flush();
        shutdown_signal().await;
        server.shutdown().await;
        ExitCode::from(EXIT_OK)
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
