//! The command line: argument parsing (clap) and dispatch to commands (`crate::commands`, a file
//! each), which answer with the exit codes of [`crate::exit`]. The shell completions and the man page
//! are generated from these same definitions.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::{EXIT_OK, EXIT_USAGE};

/// Keeps a faithful, queryable SQLite mirror of a Kustomer organisation.
#[derive(Debug, Parser)]
#[command(name = "kustomer-mirror", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML). Environment variables KUSTOMER_MIRROR__SECTION__KEY override it.
    #[arg(
        long,
        global = true,
        env = "KUSTOMER_MIRROR_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: scheduled syncs, graceful stop on SIGTERM, systemd notify, /healthz and /metrics.
    Run,
    /// Sync once: fetch what changed since the last run and exit (0 ok, 1 failed, 2 bad config).
    Sync(crate::commands::sync::SyncArgs),
    /// Show per-entity rows, cursors, last runs, errors and lag, read from the database.
    Status(crate::commands::status::StatusArgs),
    /// Mirror the built-in fake Kustomer into a local file and show what the mirror can do.
    Demo(crate::commands::demo::DemoArgs),
    /// Print the effective configuration (secrets redacted) and exit 2 if it is invalid.
    CheckConfig,
    /// Register, list and remove the Kustomer outbound webhook that feeds the receiver ([webhooks]).
    ///
    /// Needs the role org.permission.outbound_webhook.* (or the legacy org.admin.outbound_webhooks).
    #[command(subcommand)]
    Webhooks(crate::commands::webhooks::WebhooksCommand),
    /// Serve the built-in fake Kustomer API (for trying the mirror out and for tests).
    FakeApi(crate::commands::fake_api::FakeApiArgs),
    /// Print shell completions: `kustomer-mirror completions bash > /etc/bash_completion.d/kustomer-mirror`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), as the Debian package installs it.
    #[command(hide = true)]
    Man,
}

/// Parses the process arguments, runs the command and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version on stdout (exit 0) and usage errors on stderr (exit 2).
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_OK
            });
        }
    };
    match cli.command {
        Command::Run => crate::commands::run::run(cli.config.as_deref()),
        Command::Sync(args) => crate::commands::sync::run(cli.config.as_deref(), args),
        Command::Status(args) => crate::commands::status::run(cli.config.as_deref(), args),
        Command::Demo(args) => crate::commands::demo::run(args),
        Command::CheckConfig => crate::commands::check_config::run(cli.config.as_deref()),
        Command::Webhooks(command) => {
            crate::commands::webhooks::run(cli.config.as_deref(), command)
        }
        Command::FakeApi(args) => crate::commands::fake_api::serve(args),
        Command::Completions { shell } => crate::commands::completions::run(shell, definitions()),
        Command::Man => crate::commands::man::run(definitions()),
    }
}

/// The command line's definitions, for the commands that print them (completions, man page).
fn definitions() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
