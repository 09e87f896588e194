//! `status [--json]`: per entity, live and deleted rows, cursor, last run and its counters, last
//! error and lag — read from the database only (no API call, no key needed).

use std::path::Path;
use std::process::ExitCode;

use crate::exit::{EXIT_OK, EXIT_SYNC_FAILED};
use crate::store::Store;

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
    let path = match args.db {
        Some(path) => path,
        None => match super::load_settings(config) {
            Ok(s) => s.database.path,
            Err(code) => return code,
        },
    };
    if !super::database_exists(&path) {
        eprintln!(
            "error: no database at {}; run `kustomer-mirror sync` first (or check database.path)",
            path.display()
        );
        return ExitCode::from(EXIT_SYNC_FAILED);
    }
    let statuses = Store::open(&path).and_then(|store| crate::status::read(store.conn()));
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
