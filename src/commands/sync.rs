//! `sync [--entity E]… [--full]`: one pass over the chosen entities, then exit 0 (all ok), 1 (a pass
//! failed; the others still ran and committed) or 2 (bad usage or configuration).

use std::path::Path;
use std::process::ExitCode;

use crate::cli::{EXIT_OK, EXIT_SYNC_FAILED, EXIT_USAGE};
use crate::entity::{self, Entity};

/// Arguments of `sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Sync only this entity (repeatable); default: `sync.entities` from the config.
    #[arg(long = "entity", value_name = "ENTITY")]
    pub entities: Vec<String>,
    /// Also re-check strategies and run the hard-delete reconcile (slower; uses more requests).
    #[arg(long)]
    pub full: bool,
}

/// Runs `sync`.
pub fn run(config: Option<&Path>, args: SyncArgs) -> ExitCode {
    let settings = match super::load_settings(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    crate::logging::init(&settings.log.level, settings.log.format);
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
    // Reach Kustomer first: a wrong key or URL fails here, before the database is created or touched.
    let client = match super::client(&settings) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(e) = runtime.block_on(client.check_access()) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_SYNC_FAILED);
    }
    let engine = match super::engine(&settings, client, args.full) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_SYNC_FAILED);
        }
    };
    let report = runtime.block_on(engine.run(&chosen));
    super::print_report(&report);
    if report.ok() {
        ExitCode::from(EXIT_OK)
    } else {
        for p in report.passes.iter().filter(|p| p.error.is_some()) {
            eprintln!("error: {}", p.error.as_deref().unwrap_or_default());
        }
        ExitCode::from(EXIT_SYNC_FAILED)
    }
}
