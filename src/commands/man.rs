//! `man`: the man page (roff), generated from the command line's definitions, with the sections
//! clap does not know (exit status, files, environment); the Debian package installs it.

use std::process::ExitCode;

use crate::exit::{EXIT_OK, EXIT_SYNC_FAILED};

/// Prints the man page of the command line `cmd` on stdout.
pub fn run(cmd: clap::Command) -> ExitCode {
    match write(cmd, &mut std::io::stdout()) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("error: cannot write the man page: {e}");
            ExitCode::from(EXIT_SYNC_FAILED)
        }
    }
}

/// Writes the man page: the command and its options, each visible subcommand with its usage and
/// options, then the exit codes, the files and the environment.
pub fn write(mut cmd: clap::Command, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    cmd.build();
    let page = clap_mangen::Man::new(cmd.clone());
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)?;
    writeln!(out, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        writeln!(out, ".SS \"{}\"", roff(&format!("kustomer-mirror {name}")))?;
        if let Some(about) = sub.get_about() {
            writeln!(out, "{}", roff(&about.to_string()))?;
        }
        let usage = sub
            .clone()
            .bin_name(format!("kustomer-mirror {name}"))
            .render_usage()
            .to_string();
        writeln!(out, ".PP\n{}", roff(usage.trim()))?;
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" || arg.is_global_set() {
                continue;
            }
            let flag = match (arg.get_short(), arg.get_long()) {
                (Some(s), Some(l)) => format!("-{s}, --{l}"),
                (None, Some(l)) => format!("--{l}"),
                (Some(s), None) => format!("-{s}"),
                (None, None) => format!("<{}>", id.to_uppercase()),
            };
            let value = match arg.get_value_names() {
                Some(names) if arg.get_long().is_some() && arg.get_action().takes_values() => {
                    names.iter().map(|n| format!(" <{n}>")).collect::<String>()
                }
                _ => String::new(),
            };
            writeln!(out, ".TP\n\\fB{}\\fR{}", roff(&flag), roff(&value))?;
            if let Some(help) = arg.get_help() {
                writeln!(out, "{}", roff(&help.to_string()))?;
            }
        }
    }
    out.write_all(MAN_EXTRA.as_bytes())?;
    page.render_version_section(out)?;
    Ok(())
}

/// Text as roff: backslashes and hyphens escaped, no line starting with a control character.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The man page's sections that clap does not know.
const MAN_EXTRA: &str = r#".SH "EXIT STATUS"
0 success; 1 a sync failed, or another kustomer\-mirror is writing the database; 2 bad usage or
configuration; 130 a second SIGTERM or SIGINT.
.SH FILES
.TP
/etc/kustomer\-mirror/config.toml
The configuration (every key with its default: /usr/share/doc/kustomer\-mirror/config.example.toml).
.TP
/etc/kustomer\-mirror/api\-key
The Kustomer API key, passed to the service as a systemd credential.
.TP
/var/lib/kustomer\-mirror/kustomer\-mirror.db
The mirror (SQLite), readable by the kustomer\-mirror group.
.SH ENVIRONMENT
.TP
KUSTOMER_MIRROR__SECTION__KEY
Overrides a configuration key, e.g. KUSTOMER_MIRROR__SYNC__PAGE_SIZE=100.
.TP
KUSTOMER_API_KEY
The Kustomer API key.
.TP
KUSTOMER_MIRROR_CONFIG
The configuration file, as \-\-config.
.SH "SEE ALSO"
/usr/share/doc/kustomer\-mirror/README.md, docs/schema.md and docs/queries.md there.
"#;
