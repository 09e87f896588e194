//! The commands, a file each (`run`, `sync`, `status`, `demo`, `fake-api`, `check-config`,
//! `webhooks`, `completions`, `man`): turning settings into a client, a writer and an engine, printing
//! outcomes, and choosing exit codes.

pub mod check_config;
pub mod completions;
pub mod demo;
pub mod fake_api;
pub mod man;
pub mod run;
pub mod status;
pub mod sync;
pub mod webhooks;

use std::path::Path;
use std::sync::Arc;

use crate::config::{Settings, Transport};
use crate::destination::{self, Destination, Writer};
use crate::kustomer::MembraneAuth;
use crate::kustomer::cli::CliBackend;
use crate::kustomer::jwt::Minter;
use crate::kustomer::{Budget, Client, ClientOptions, Limiter};
use crate::sqlite::WriterLock;
use crate::sync::{Engine, SyncOptions, SyncReport};

/// Loads the settings, or prints one `error:` line per problem and gives the usage exit code.
pub fn load_settings(config: Option<&Path>) -> Result<Settings, std::process::ExitCode> {
    Settings::load(config).map_err(|e| {
        for line in e.to_string().lines() {
            eprintln!("error: {line}");
        }
        std::process::ExitCode::from(crate::exit::EXIT_USAGE)
    })
}

/// A multi-threaded tokio runtime for one command, or a message saying why there is none.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Builds the API client for the configured transport from validated settings, with the shared
/// rate limiter.
pub fn client(settings: &Settings) -> Result<Client, String> {
    let k = &settings.kustomer;
    let m = &settings.membrane;
    let options = ClientOptions {
        connect_timeout: k.connect_timeout,
        request_timeout: k.request_timeout,
        max_attempts: k.max_retries + 1,
        backoff: k.retry_backoff,
        ..ClientOptions::default()
    };
    let connection = || {
        m.connection_id
            .clone()
            .ok_or_else(|| "missing membrane.connection_id".to_string())
    };
    let client = match k.transport {
        Transport::Direct => {
            let key = k.api_key().map_err(|e| e.to_string())?;
            let base = k
                .base_url
                .as_ref()
                .ok_or_else(|| "missing kustomer.base_url".to_string())?;
            Client::new(base.as_str(), key.expose(), options)
        }
        Transport::Membrane => {
            let auth = match m.token().map_err(|e| e.to_string())? {
                Some(token) => MembraneAuth::Token(token),
                None => {
                    let secret = m
                        .workspace_secret()
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| "missing membrane.workspace_secret".to_string())?;
                    MembraneAuth::Mint(Minter::new(
                        m.workspace_key.as_deref().unwrap_or_default(),
                        m.tenant_key.as_deref().unwrap_or_default(),
                        secret,
                        m.token_lifetime,
                    ))
                }
            };
            Client::membrane(&m.api_uri, &connection()?, auth, options)
        }
        Transport::MembraneCli => Client::membrane_cli(
            CliBackend {
                program: m.cli_path.clone(),
                connection_id: connection()?,
                timeout: m.cli_timeout,
            },
            options,
        ),
    }
    .map_err(|e| e.to_string())?
    .with_limiter(Arc::new(Limiter::new(
        Budget::rate(settings.sync.requests_per_minute, settings.sync.rate_window),
        Budget::rate(
            settings.sync.search_requests_per_minute,
            settings.sync.rate_window,
        ),
    )));
    Ok(client)
}

/// Takes the SQLite file's writer lock ([`crate::sqlite::lock`]); with `wait`, waits for the holder
/// and says so on stderr. The error is the one line to print. PostgreSQL has none here: its
/// advisory lock is taken on the writer's own session when the destination opens ([`engine`]).
pub fn writer_lock(settings: &Settings, wait: bool) -> Result<Option<WriterLock>, String> {
    if settings.database.postgres.is_some() {
        return Ok(None);
    }
    let db = &settings.database.path;
    let lock = if wait {
        WriterLock::acquire_waiting(db, |pid| {
            eprintln!(
                "waiting for kustomer-mirror (pid {pid}) to finish writing {}…",
                db.display()
            );
        })
    } else {
        WriterLock::try_acquire(db)
    };
    lock.map(Some).map_err(|e| e.to_string())
}

/// Opens the destination (creating or upgrading its schema; for PostgreSQL taking the schema's
/// advisory lock, waiting for its holder when `wait`). Blocking: call it off the async runtime.
pub fn open_destination(settings: &Settings, wait: bool) -> Result<Box<dyn Destination>, String> {
    destination::open(&settings.database, wait).map_err(|e| e.to_string())
}

/// Opens the destination and builds the engine a sync runs with. Blocking (see
/// [`open_destination`]).
pub fn engine(
    settings: &Settings,
    client: Client,
    full: bool,
    wait: bool,
) -> Result<Engine, String> {
    let destination = open_destination(settings, wait)?;
    engine_on(settings, client, full, destination)
}

/// The engine writing to `destination`.
pub fn engine_on(
    settings: &Settings,
    client: Client,
    full: bool,
    destination: Box<dyn Destination>,
) -> Result<Engine, String> {
    tracing::debug!(destination = %destination.describe(), "writing to");
    let writer = Writer::spawn_boxed(destination).map_err(|e| e.to_string())?;
    Ok(Engine::new(
        Arc::new(client),
        writer,
        SyncOptions {
            page_size: settings.sync.page_size,
            overlap: settings.sync.overlap,
            concurrency: settings.sync.concurrency as usize,
            full,
            start: crate::sync::Start::Overlap,
            fallback: crate::sync::Fallback::Either,
        },
    ))
}

/// Prints one line per pass and a total line to stdout.
pub fn print_report(report: &SyncReport) {
    let mut passes = report.passes.clone();
    passes.sort_by(|a, b| a.key.cmp(&b.key).then(a.mode.as_str().cmp(b.mode.as_str())));
    println!(
        "{:<28} {:<11} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>8}",
        "ENTITY", "MODE", "FETCHED", "INSERTED", "UPDATED", "DELETED", "SAME", "REQUESTS", "TIME"
    );
    for p in &passes {
        println!(
            "{:<28} {:<11} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>7.1}s{}",
            p.key,
            p.mode.as_str(),
            p.fetched,
            p.applied.inserted,
            p.applied.updated,
            p.applied.deleted,
            p.applied.unchanged,
            p.requests,
            p.duration.as_secs_f64(),
            match (&p.error, p.unsupported()) {
                (Some(e), _) => format!("  FAILED: {e}"),
                (None, Some(why)) => format!("  UNSUPPORTED: {why}"),
                (None, None) => String::new(),
            }
        );
    }
    let (applied, fetched, requests) = report.totals();
    println!(
        "total: {fetched} fetched, {} inserted, {} updated, {} deleted, {} unchanged, {requests} requests",
        applied.inserted, applied.updated, applied.deleted, applied.unchanged
    );
}

/// True when `path` names an existing database file.
pub fn database_exists(path: &Path) -> bool {
    path.is_file()
}
