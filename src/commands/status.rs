//! `status [--json]`: per entity, live and deleted rows, cursor, last run and its counters, last
//! error and lag — read from the database only (no API call, no key needed), SQLite or PostgreSQL.
//! Runs in progress in any process show with an ETA; runs left `running` by a process that is gone
//! (no writer holds the mirror) show as interrupted.

use std::path::Path;
use std::process::ExitCode;

use crate::destination::Reader;
use crate::exit::{EXIT_OK, EXIT_SYNC_FAILED};
use crate::sqlite::Store;
use crate::status::Scope;

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Read this database instead of `database.path` (no config needed then).
    #[arg(long, value_name = "FILE")]
    pub db: Option<std::path::PathBuf>,
}

/// Runs `status`.
pub fn run(config: Option<&Path>, args: StatusArgs) -> ExitCode {
    let (statuses, writer) = match args.db {
        Some(path) => (sqlite(&path), crate::sqlite::lock::held(&path)),
        None => match super::load_settings(config) {
            Ok(s) if s.database.postgres.is_some() => {
                let reader = Reader::new(&s.database);
                let statuses = reader
                    .read(Scope::Full)
                    .map(|(statuses, _)| statuses)
                    .map_err(|e| e.to_string());
                (statuses, reader.writer_active())
            }
            Ok(s) => (
                sqlite(&s.database.path),
                crate::sqlite::lock::held(&s.database.path),
            ),
            Err(code) => return code,
        },
    };
    // Runs left `running` by a process that is gone are not in progress.
    let statuses = statuses.map(|mut statuses| {
        if writer == Some(false) {
            crate::status::mark_cut_off(&mut statuses);
        }
        statuses
    });
    match statuses {
        Ok(statuses) if args.json => match serde_json::to_string_pretty(&statuses) {
            Ok(text) => {
                println!("{text}");
                ExitCode::from(EXIT_OK)
            }
            Err(e) => {
                eprintln!("error: cannot format the status as JSON: {e}");
                ExitCode::from(EXIT_SYNC_FAILED)
            }
        },
        Ok(statuses) => {
            print!("{}", crate::status::render_table(&statuses));
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_SYNC_FAILED)
        }
    }
}

/// The status of the SQLite file at `path` (opened as the writer would, so an older file is
/// upgraded first).
fn sqlite(path: &Path) -> Result<Vec<crate::status::EntityStatus>, String> {
    if !super::database_exists(path) {
        return Err(format!(
            "no database at {}; run `kustomer-mirror sync` first (or check database.path)",
            path.display()
        ));
    }
    Store::open(path)
        .and_then(|store| crate::sqlite::status::read(store.conn(), Scope::Full))
        .map_err(|e| e.to_string())
}
