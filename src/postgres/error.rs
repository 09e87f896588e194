//! What can go wrong with the PostgreSQL destination, each as one line that names the problem and
//! what to do. Messages show the server as [`PgSettings::shown`] (password redacted), never the URL.

use crate::config::PgSettings;

/// An error of the PostgreSQL destination.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A setting cannot be used (a bad URL, an unreadable `sslrootcert`).
    #[error("{0}")]
    Config(String),
    /// TLS could not be set up on this machine.
    #[error("{0}")]
    Tls(String),
    /// The server could not be reached or refused the session.
    #[error("cannot connect to PostgreSQL at {server}: {message}")]
    Connect {
        /// The server, password redacted.
        server: String,
        /// What went wrong and what to do.
        message: String,
        /// Whether trying again later may work (refused, starting up) rather than a setting to fix.
        retryable: bool,
    },
    /// Another mirror holds the schema's advisory lock.
    #[error(
        "another kustomer-mirror ({holder}) is writing schema {schema} on {server}; stop it or wait for it (`sync --wait` waits)"
    )]
    LockHeld {
        /// The schema.
        schema: String,
        /// The server, password redacted.
        server: String,
        /// Who holds it, as PostgreSQL knows it.
        holder: String,
    },
    /// The schema holds a newer version of the data model.
    #[error(
        "schema {schema} on {server} has data model version {found}, newer than this kustomer-mirror supports ({supported}); upgrade kustomer-mirror or set database.schema to another schema"
    )]
    TooNew {
        /// The schema.
        schema: String,
        /// The server.
        server: String,
        /// Version found.
        found: i32,
        /// Newest version known.
        supported: i32,
    },
    /// The schema holds tables the mirror did not create.
    #[error(
        "schema {schema} on {server} already holds tables that kustomer-mirror did not create ({table}, …); set database.schema to a new or kustomer-mirror schema"
    )]
    Foreign {
        /// The schema.
        schema: String,
        /// The server.
        server: String,
        /// One of the tables.
        table: String,
    },
    /// A statement failed; its transaction was rolled back.
    #[error("PostgreSQL error while {context} (schema {schema} on {server}): {message}")]
    Query {
        /// What the mirror was doing.
        context: String,
        /// The schema.
        schema: String,
        /// The server.
        server: String,
        /// What the server said, and what to do.
        message: String,
    },
}

impl PgError {
    /// A failed connection attempt, explained.
    pub fn connect(settings: &PgSettings, e: postgres::Error) -> PgError {
        let user = user_of(settings);
        let (message, retryable) = match e.code().map(|c| c.code()) {
            Some("28P01") => (
                format!(
                    "password authentication failed for user {user}; fix the password in database.url (or url_file)"
                ),
                false,
            ),
            Some("28000") => (
                format!(
                    "the server does not allow user {user} to connect ({}); check pg_hba.conf and database.sslmode",
                    db_message(&e)
                ),
                false,
            ),
            Some("3D000") => (
                format!(
                    "{}; create it (createdb, or CREATE DATABASE) or fix the database name in database.url",
                    db_message(&e)
                ),
                false,
            ),
            Some("57P03") => (
                format!("{}; try again when it has started", db_message(&e)),
                true,
            ),
            Some(_) => (explain(&e), false),
            None => {
                let text = source_chain(&e);
                if text.contains("server does not support TLS") || text.contains("not support SSL")
                {
                    (
                        format!(
                            "database.sslmode is {} but the server does not offer TLS; enable ssl on the server, or set sslmode = \"prefer\" or \"disable\" on a trusted network",
                            settings.sslmode.as_str()
                        ),
                        false,
                    )
                } else if text.contains("certificate") || text.contains("Certificate") {
                    (
                        format!(
                            "the server's TLS certificate does not verify ({text}); set database.sslrootcert to the CA that signed it, and connect by the host name the certificate names"
                        ),
                        false,
                    )
                } else if text.contains("refused") {
                    (
                        format!(
                            "connection refused ({text}); is the server running and listening on that host and port?"
                        ),
                        true,
                    )
                } else if text.contains("timed out") || text.contains("timeout") {
                    (
                        format!(
                            "no answer ({text}); check the host, the port and any firewall between"
                        ),
                        true,
                    )
                } else {
                    (text, true)
                }
            }
        };
        PgError::Connect {
            server: settings.shown.clone(),
            message,
            retryable,
        }
    }

    /// A failed statement, explained.
    pub fn query(context: &str, settings: &PgSettings, e: postgres::Error) -> PgError {
        PgError::Query {
            context: context.to_string(),
            schema: settings.schema.clone(),
            server: settings.shown.clone(),
            message: explain(&e),
        }
    }

    /// True when trying the same thing later may work.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            PgError::Connect {
                retryable: true,
                ..
            }
        )
    }
}

fn user_of(settings: &PgSettings) -> String {
    settings
        .url
        .expose()
        .parse::<postgres::Config>()
        .ok()
        .and_then(|c| c.get_user().map(str::to_string))
        .unwrap_or_else(|| "(default)".to_string())
}

fn db_message(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// The error and its causes in one line.
fn source_chain(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// What the server said, with what to do about the errors a user can fix.
pub fn explain(e: &postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return source_chain(e);
    };
    let code = db.code().code();
    let hint = match code {
        "42501" => {
            "; the mirror's user lacks a privilege: it needs CREATE on the database (or an existing schema it owns) and ownership of the schema's tables — see README, PostgreSQL"
        }
        "53100" => {
            "; the server's disk is full: free space and run again (the page was rolled back and will be fetched again)"
        }
        "53200" => {
            "; the server ran out of memory: lower sync.page_size or give the server more memory"
        }
        "57014" => {
            "; a statement ran longer than the server's statement_timeout: raise it for the mirror's user (ALTER ROLE … SET statement_timeout = 0); the page was rolled back and will be fetched again"
        }
        "25006" => "; the server is read-only (a standby?): point database.url at the primary",
        "40001" | "40P01" => "; a conflict with another session: run again",
        _ => "",
    };
    format!("{} (SQLSTATE {code}){hint}", db.message())
}

/// True for errors after which the session is gone or unusable: the server shut down or restarted,
/// the network dropped. The work is then redone on a new session.
pub fn connection_lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code().map(|c| c.code()) {
        Some(code) => code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03"),
        // No SQLSTATE: the client's own error kinds, told apart only by their text. I/O on the
        // socket, a garbled or unexpected message and a timeout mean the session is gone; a
        // parameter that does not convert is the mirror's own bug and must not loop.
        None => {
            let text = e.to_string();
            [
                "error communicating with the server",
                "unexpected message from server",
                "error parsing response from server",
                "timeout waiting for server",
                "error connecting to server",
            ]
            .iter()
            .any(|t| text.starts_with(t))
        }
    }
}

/// True for errors about one record's content (a value the server refuses, a constraint), after
/// which the page is redone record by record so only that record is set aside.
pub fn refused_record(e: &postgres::Error) -> bool {
    matches!(
        e.code().map(|c| &c.code()[..2]),
        Some("22") | Some("23") | Some("54")
    )
}
