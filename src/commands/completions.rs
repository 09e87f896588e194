//! `completions <shell>`: shell completions generated from the command line's definitions.

use std::process::ExitCode;

use crate::exit::EXIT_OK;

/// Prints the completions of the command line `cmd` for `shell` on stdout.
pub fn run(shell: clap_complete::Shell, mut cmd: clap::Command) -> ExitCode {
    clap_complete::generate(shell, &mut cmd, "kustomer-mirror", &mut std::io::stdout());
    ExitCode::from(EXIT_OK)
}
