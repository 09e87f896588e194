//! `run`: the daemon in the foreground, as systemd runs it. The first SIGTERM or SIGINT stops it
//! gracefully (passes stop between pages, exit 0); a second one exits at once — still safe, since an
//! uncommitted page simply rolls back.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::daemon::{self, DaemonError};
use crate::exit::{EXIT_OK, EXIT_SECOND_SIGNAL, EXIT_SYNC_FAILED, EXIT_USAGE};
use crate::kustomer::counted;

/// Runs `run`.
pub fn run(config: Option<&Path>) -> ExitCode {
    let settings = match super::load_settings(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    crate::logging::init(&settings.log.level, settings.log.format);
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_SYNC_FAILED);
        }
    };
    let client = match super::client(&settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // One writer per database, for the daemon's whole life.
    let _lock = match super::writer_lock(&settings, false) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_SYNC_FAILED);
        }
    };
    let result = runtime.block_on(async move {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signals(stop).await;
        });
        let mut startup = shutdown.clone();
        let access = Arc::new(AtomicU64::new(0));
        tokio::select! {
            checked = counted(access.clone(), client.check_access()) => checked.map_err(|e| DaemonError::Start(e.to_string()))?,
            _ = startup.wait_for(|s| *s) => return Ok(()),
        }
        // Opening connects and takes locks with blocking clients: off the runtime's threads.
        let opening = settings.clone();
        let destination =
            tokio::task::spawn_blocking(move || super::open_destination(&opening, false))
                .await
                .map_err(|e| DaemonError::Start(e.to_string()))?
                .map_err(DaemonError::Start)?;
        let engine =
            super::engine_on(&settings, client, false, destination).map_err(DaemonError::Start)?;
        let requests = access.load(Ordering::Relaxed);
        if let Err(e) = engine.record_preflight(super::sync::PREFLIGHT, requests, None).await {
            tracing::warn!(error = %e, "could not record the access check's requests");
        }
        daemon::run(settings, engine, None, shutdown).await
    });
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::from(EXIT_OK)
        }
        Err(e @ DaemonError::Config(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_SYNC_FAILED)
        }
    }
}

/// First SIGTERM/SIGINT: ask for a graceful stop. Second: exit now.
async fn signals(stop: tokio::sync::watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for SIGTERM/SIGINT; stop the daemon with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!(
        "shutdown requested; finishing the pages in flight (send the signal again to exit now)"
    );
    let _ = stop.send(true);
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!(
        "second signal: exiting now; the pages in flight roll back and are fetched again next time"
    );
    std::process::exit(i32::from(EXIT_SECOND_SIGNAL));
}
