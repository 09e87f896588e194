//! Settings: defaults → TOML file → environment, validated, with secrets that never print.

pub mod cli;
