//! The `fake-api` command.

use std::process::ExitCode;

/// Arguments of `fake-api`.
#[derive(Debug, clap::Args)]
pub struct FakeApiArgs {}

/// Runs `fake-api`.
pub fn serve(_args: FakeApiArgs) -> ExitCode {
    eprintln!("fake-api is not implemented yet");
    ExitCode::from(crate::cli::EXIT_USAGE)
}
