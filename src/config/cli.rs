//! The `check-config` command.

use std::path::Path;
use std::process::ExitCode;

/// Runs `check-config`.
pub fn check_config(_path: Option<&Path>) -> ExitCode {
    eprintln!("check-config is not implemented yet");
    ExitCode::from(crate::cli::EXIT_USAGE)
}
