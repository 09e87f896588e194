//! `[database]`: which destination the mirror writes. `path` selects SQLite (the default); `url`
//! (or `url_file`, or `KUSTOMER_MIRROR__DATABASE__URL`) selects PostgreSQL, with `schema`, and TLS
//! as libpq's `sslmode` / `sslrootcert` (in the URL's query or as keys). The URL's password is a
//! secret: only [`PgSettings::shown`] (password redacted) is ever printed.

use std::path::PathBuf;

use super::{REDACTED, Secret};

/// The schema the mirror lives in when `database.schema` is not set.
pub const DEFAULT_SCHEMA: &str = "kustomer";

/// `[database]`.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// The SQLite file (used when no PostgreSQL URL is set).
    pub path: PathBuf,
    /// The PostgreSQL destination, when `database.url` / `url_file` is set.
    pub postgres: Option<PgSettings>,
}

impl DatabaseSettings {
    /// The destination as one line for logs and messages: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match &self.postgres {
            Some(pg) => format!("{} (schema {})", pg.shown, pg.schema),
            None => self.path.display().to_string(),
        }
    }
}

/// libpq's `sslmode`, the subset that makes sense for a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it (certificate not checked, as libpq), else plain. The default.
    Prefer,
    /// TLS or fail; the certificate is checked only against `sslrootcert` when one is given (libpq's
    /// rule: then it behaves as verify-ca, here as verify-full).
    Require,
    /// TLS, with the server's certificate checked against `sslrootcert` (or the system's roots) and
    /// the host name.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's spelling.
    pub fn parse(text: &str) -> Option<SslMode> {
        match text.trim() {
            "disable" => Some(SslMode::Disable),
            "prefer" => Some(SslMode::Prefer),
            "require" => Some(SslMode::Require),
            "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A PostgreSQL destination.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// The connection URL without `sslmode` / `sslrootcert` (read into the fields below), password
    /// included: only the connecting code exposes it.
    pub url: Secret,
    /// The URL with its password replaced by `[redacted]`, for every message and `check-config`.
    pub shown: String,
    /// The schema holding the mirror's tables.
    pub schema: String,
    /// TLS mode.
    pub sslmode: SslMode,
    /// A PEM file of CA certificates to check the server's certificate against.
    pub sslrootcert: Option<PathBuf>,
    /// Where the URL came from, for `check-config`.
    pub source: &'static str,
}

/// The URL with any password replaced by `[redacted]`; text that is not a URL prints as
/// `[redacted]` whole (it might hold a password in a form we cannot find).
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text.trim()) {
        Ok(mut url) => {
            if url.password().is_some() && url.set_password(Some(REDACTED)).is_err() {
                return REDACTED.to_string();
            }
            // `set_password` percent-encodes the brackets; show them as written.
            url.to_string().replace("%5Bredacted%5D", REDACTED)
        }
        Err(_) => REDACTED.to_string(),
    }
}

/// What a URL says, split: the URL without TLS parameters, and those parameters.
#[derive(Debug)]
pub struct ParsedUrl {
    /// The URL to connect with.
    pub url: Secret,
    /// `sslmode` from the query, if any.
    pub sslmode: Option<String>,
    /// `sslrootcert` from the query, if any.
    pub sslrootcert: Option<String>,
}

/// Checks a PostgreSQL URL and takes `sslmode` / `sslrootcert` out of its query (the client library
/// knows neither `verify-full` nor root files). Errors never quote the URL (it may hold a password).
pub fn parse_url(text: &str) -> Result<ParsedUrl, String> {
    let text = text.trim();
    let mut url = url::Url::parse(text).map_err(|e| {
        format!("is not a URL ({e}); expected postgres://user:password@host:5432/database")
    })?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "has scheme {:?}; expected postgres://user:password@host:5432/database",
            url.scheme()
        ));
    }
    // The query is split by hand, keeping the other parameters byte for byte: re-serialising it as
    // a form would turn a space (`options=-c%20statement_timeout%3D0`) into `+`, which the client
    // library, like libpq, does not read as a space.
    let mut sslmode = None;
    let mut sslrootcert = None;
    let mut rest: Vec<&str> = Vec::new();
    let query = url.query().unwrap_or("").to_string();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match crate::escape::percent_decoded(k).as_str() {
            "sslmode" => sslmode = Some(crate::escape::percent_decoded(v)),
            "sslrootcert" => sslrootcert = Some(crate::escape::percent_decoded(v)),
            _ => rest.push(pair),
        }
    }
    if rest.is_empty() {
        url.set_query(None);
    } else {
        url.set_query(Some(&rest.join("&")));
    }
    let url = url.to_string();
    // The client's own parser is the judge of what it will accept.
    url.parse::<postgres::Config>().map_err(|e| {
        format!("cannot be used: {e}; expected postgres://user:password@host:5432/database")
    })?;
    Ok(ParsedUrl {
        url: Secret::new(url),
        sslmode,
        sslrootcert,
    })
}

/// True for a schema name that needs no quoting: lower-case letters, digits and `_`, not starting
/// with a digit, at most 63 bytes (PostgreSQL's identifier limit).
pub fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with("pg_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        assert_eq!(
            redact_url("postgres://mirror:s3cr%40t@db.example:5432/bi?sslmode=require"),
            "postgres://mirror:[redacted]@db.example:5432/bi?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://mirror@db/bi"),
            "postgres://mirror@db/bi"
        );
        assert_eq!(redact_url("host=db password=hunter2"), "[redacted]");
        let err = parse_url("mysql://u:hunter2@db/x").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse_url("postgres://u:hunter2@db:notaport/x").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn tls_parameters_leave_the_url() {
        let p = parse_url(
            "postgres://u:pw@db:5432/bi?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(p.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(p.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            p.url.expose(),
            "postgres://u:pw@db:5432/bi?application_name=x"
        );
        // Other parameters stay byte for byte: %20 is not turned into `+`.
        let p = parse_url(
            "postgres://u@db/bi?options=-c%20statement_timeout%3D0&sslrootcert=%2Fetc%2Fmy%20ca.pem",
        )
        .unwrap();
        assert_eq!(p.sslrootcert.as_deref(), Some("/etc/my ca.pem"));
        assert_eq!(
            p.url.expose(),
            "postgres://u@db/bi?options=-c%20statement_timeout%3D0"
        );
        assert_eq!(SslMode::parse("verify-full"), Some(SslMode::VerifyFull));
        assert_eq!(SslMode::parse("allow"), None);
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema("kustomer"));
        assert!(valid_schema("org_2"));
        for bad in ["", "Kustomer", "2org", "a-b", "pg_temp", "a\"b"] {
            assert!(!valid_schema(bad), "{bad}");
        }
    }
}
