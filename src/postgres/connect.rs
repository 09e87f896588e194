//! Connecting to the PostgreSQL server: the URL, libpq's `sslmode` over rustls (ring), and the errors
//! a user can fix (refused, wrong password, missing database, TLS) turned into one line each. The
//! password is in the URL only: no message here quotes the URL, only [`PgSettings::shown`].

use std::sync::Arc;
use std::time::Duration;

use postgres::config::SslMode as ClientSslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgError;
use crate::config::{PgSettings, SslMode};

/// How long connecting may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `application_name` the mirror's sessions show in `pg_stat_activity` (followed by this
/// process's tag, see [`own_application_name`]).
pub const APPLICATION_NAME: &str = "kustomer-mirror";

/// This process's sessions' `application_name`: [`APPLICATION_NAME`], the pid and a random tag, so a
/// session of this very process (left holding the schema's lock by a connection that dropped without
/// a FIN) can be told from any other mirror's.
pub fn own_application_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        format!(
            "{APPLICATION_NAME} {}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        )
    })
}

/// Opens a session to the server `settings` names.
pub fn connect(settings: &PgSettings) -> Result<postgres::Client, PgError> {
    let mut config: postgres::Config = settings.url.expose().parse().map_err(|e| {
        PgError::Config(format!(
            "database.url cannot be used: {e}; expected postgres://user:password@host:5432/database"
        ))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name(own_application_name());
    }
    // Every session of the mirror (writer, reader, reconnects) works in its schema: statements name
    // tables unqualified. The schema name is a plain identifier (checked when the config loads).
    // standard_conforming_strings is pinned on: the DDL of the custom views quotes names from the
    // data as '…' literals with doubled quotes, which a role or database set to `off` would read
    // with backslash escapes, letting a name end its literal.
    let path = format!(
        "-c search_path={} -c standard_conforming_strings=on",
        settings.schema
    );
    let options = match config.get_options() {
        Some(given) if !given.is_empty() => format!("{given} {path}"),
        _ => path,
    };
    config.options(&options);
    // Keepalives notice a server that vanished without closing the connection (a host crash, a
    // dropped network) instead of waiting on it for hours.
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(60));
    config.keepalives_interval(Duration::from_secs(10));
    config.keepalives_retries(3);
    // Data sent and not acknowledged for this long means the peer is gone (a half-open connection):
    // the statement fails instead of waiting for TCP's own retransmissions (up to ~15 minutes).
    config.tcp_user_timeout(Duration::from_secs(30));
    config.ssl_mode(match settings.sslmode {
        SslMode::Disable => ClientSslMode::Disable,
        SslMode::Prefer => ClientSslMode::Prefer,
        SslMode::Require | SslMode::VerifyFull => ClientSslMode::Require,
    });
    let tls = MakeRustlsConnect::new(tls_config(settings)?);
    config
        .connect(tls)
        .map_err(|source| PgError::connect(settings, source))
}

/// The rustls configuration for `settings.sslmode`: certificates checked (chain and host name)
/// against `sslrootcert` or the platform's roots for `verify-full`, and for `require` when a root
/// file is given (libpq's verify-ca, here with the host name checked too); otherwise, as libpq does
/// for `prefer` and `require`, the connection is encrypted but the certificate not checked.
fn tls_config(settings: &PgSettings) -> Result<ClientConfig, PgError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls(format!("cannot set up TLS: {e}")))?;
    let verify = settings.sslmode == SslMode::VerifyFull
        || (settings.sslmode == SslMode::Require && settings.sslrootcert.is_some());
    let config = match (&settings.sslrootcert, verify) {
        (_, false) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerifier(provider)))
            .with_no_client_auth(),
        (Some(path), true) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                PgError::Config(format!(
                    "database.sslrootcert {} cannot be read: {e}; it should be a PEM file of CA certificates",
                    path.display()
                ))
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    PgError::Config(format!(
                        "database.sslrootcert {} is not a PEM file of certificates: {e}",
                        path.display()
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    PgError::Config(format!(
                        "database.sslrootcert {} holds a certificate rustls cannot use: {e}",
                        path.display()
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(PgError::Config(format!(
                    "database.sslrootcert {} holds no certificate",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (None, true) => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| {
                    PgError::Tls(format!(
                        "cannot load the system's CA certificates: {e}; set database.sslrootcert"
                    ))
                })?
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// Accepts any server certificate, checking only that the handshake is signed by it: the encryption
/// without authentication that libpq's `prefer` and `require` give.
#[derive(Debug)]
struct NoVerifier(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
