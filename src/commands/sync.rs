//! `sync [--entity E]… [--full] [--sweep | --since T] [--wait]`: one pass over the chosen entities, then exit 0 (all ok), 1
//! (a pass failed, the others still ran and committed; or another process is writing the database)
//! or 2 (bad usage or configuration). Shows progress while it runs (`progress`): bars on a terminal,
//! periodic log lines otherwise, errors only with `--quiet`.

use std::path::Path;
use std::process::ExitCode;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::entity::{self, Entity};
use crate::exit::{EXIT_OK, EXIT_SYNC_FAILED, EXIT_USAGE};
use crate::kustomer::counted;
use crate::progress::{Mode, Progress};
use crate::sync::Start;

/// Arguments of `sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Sync only this entity (repeatable); default: `sync.entities` from the config.
    #[arg(long = "entity", value_name = "ENTITY")]
    pub entities: Vec<String>,
    /// Also re-check strategies and run the hard-delete reconcile (slower; uses more requests).
    #[arg(long)]
    pub full: bool,
    /// Sweep: start each incremental pass `sync.sweep_window` (default 2 days) before its cursor
    /// instead of `sync.overlap`, to find changes that reached Kustomer's search late.
    #[arg(long, conflicts_with = "since")]
    pub sweep: bool,
    /// Re-read the incremental entities from a point in time: an RFC 3339 time
    /// (2026-01-01T00:00:00Z), a duration back from now (36h, 7d), or `all`. The saved cursors only
    /// ever move forward.
    #[arg(long, value_name = "TIME|DURATION|all", value_parser = parse_since)]
    pub since: Option<Start>,
    /// When another kustomer-mirror is writing the database, wait for it instead of exiting 1.
    #[arg(long)]
    pub wait: bool,
    /// Print errors only: no progress, no log lines below ERROR, no summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Reads `--since`: `all`, an RFC 3339 time, or a duration back from now.
fn parse_since(text: &str) -> Result<Start, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("all") {
        return Ok(Start::All);
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(Start::At(at.with_timezone(&chrono::Utc)));
    }
    let back = crate::config::values::parse_duration(t)
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .ok_or_else(|| {
            format!("expected an RFC 3339 time (2026-01-01T00:00:00Z), a duration (36h, 7d) or all, found {t:?}")
        })?;
    chrono::Utc::now()
        .checked_sub_signed(back)
        .map(Start::At)
        .ok_or_else(|| format!("{t:?} reaches back before any date; use all"))
}

/// The `sync_runs.entity` of the access check's `preflight` row.
pub const PREFLIGHT: &str = "access";

/// Runs `sync`.
pub fn run(config: Option<&Path>, args: SyncArgs) -> ExitCode {
    let settings = match super::load_settings(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut progress = Progress::new(Mode::detect(args.quiet, settings.log.progress_interval));
    let level = if args.quiet {
        "error"
    } else {
        settings.log.level.as_str()
    };
    crate::logging::init_with_writer(
        level,
        settings.log.format,
        progress.log_writer(),
        !args.quiet,
    );
    let names: Vec<String> = if args.entities.is_empty() {
        settings.sync.entities.clone()
    } else {
        args.entities.clone()
    };
    let mut chosen: Vec<&'static Entity> = Vec::new();
    for name in &names {
        match entity::by_name(name) {
            Some(e) if !chosen.contains(&e) => chosen.push(e),
            Some(_) => {}
            None => {
                eprintln!(
                    "error: unknown entity {name:?}; choose from {}",
                    entity::names().join(", ")
                );
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    // Keep the dependency order of ENTITIES (klasses before kobjects) whatever order was given.
    chosen.sort_by_key(|e| entity::ENTITIES.iter().position(|x| x == *e));
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_SYNC_FAILED);
        }
    };
    let client = match super::client(&settings) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // One writer per database: a second sync would page the same entities again.
    let _lock = match super::writer_lock(&settings, args.wait) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_SYNC_FAILED);
        }
    };
    // Reach Kustomer first: a wrong key or URL fails here, before the database is created or touched.
    let access = Arc::new(AtomicU64::new(0));
    if let Err(e) = runtime.block_on(counted(access.clone(), client.check_access())) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_SYNC_FAILED);
    }
    let engine = match super::engine(&settings, client, args.full, args.wait) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_SYNC_FAILED);
        }
    };
    let checked = engine.record_preflight(PREFLIGHT, access.load(Ordering::Relaxed), None);
    if let Err(e) = runtime.block_on(checked) {
        tracing::warn!(error = %e, "could not record the access check's requests");
    }
    progress.start(engine.client().clone());
    let engine = engine.with_progress(progress.callback());
    let engine = match (args.sweep, args.since) {
        (_, Some(start)) => engine.starting(start),
        (true, None) => engine.starting(Start::Back(settings.sync.sweep_window)),
        (false, None) => engine,
    };
    let report = runtime.block_on(engine.run(&chosen));
    progress.finish();
    if !args.quiet {
        super::print_report(&report);
    }
    if report.ok() {
        ExitCode::from(EXIT_OK)
    } else {
        for p in report.passes.iter().filter(|p| p.error.is_some()) {
            eprintln!("error: {}", p.error.as_deref().unwrap_or_default());
        }
        ExitCode::from(EXIT_SYNC_FAILED)
    }
}
