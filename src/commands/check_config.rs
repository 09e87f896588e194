//! `check-config`: prints the effective configuration (secrets redacted, as `config::cli` renders
//! it) and says where the API key comes from; exits 2 when the configuration is invalid.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Settings;
use crate::exit::{EXIT_OK, EXIT_USAGE};

/// Runs `check-config`.
pub fn run(path: Option<&Path>) -> ExitCode {
    match Settings::load(path) {
        Ok(settings) => {
            print!("{}", crate::config::cli::render(&settings));
            if settings.kustomer.transport != crate::config::Transport::Direct {
                println!(
                    "# Kustomer is reached through Membrane ({}); no Kustomer API key is used",
                    settings.kustomer.transport.as_str()
                );
                return ExitCode::from(EXIT_OK);
            }
            match settings.kustomer.api_key() {
                Ok(_) => {
                    println!(
                        "# API key: set, from {}",
                        settings
                            .kustomer
                            .api_key_source
                            .unwrap_or("the configuration")
                    );
                    ExitCode::from(EXIT_OK)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_USAGE)
                }
            }
        }
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("error: {line}");
            }
            ExitCode::from(EXIT_USAGE)
        }
    }
}
