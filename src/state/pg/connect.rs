//! A connection to the store's database: its password, TLS as `sslmode` asks, a name the
//! server shows for it (`journey on HOST pid N`), and its tables in the store's schema.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_postgres::Client;

use super::target::{Target, Tls};

/// Connects, spawning the connection's driver on the current runtime, and sets the search path
/// to the store's schema (created when missing).
pub async fn connect(
    target: &Target,
    password: Option<&str>,
    timeout: Duration,
) -> Result<Client, String> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&target.host)
        .port(target.port)
        .user(&target.user)
        .dbname(&target.dbname)
        .application_name(format!(
            "journey on {} pid {}",
            host_name(),
            std::process::id()
        ))
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3);
    if let Some(p) = password {
        cfg.password(p);
    }
    let (client, driver) = match tls_config(&target.tls)? {
        None => {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (c, conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(why)?;
            (c, tokio::spawn(conn))
        }
        Some((mode, config)) => {
            cfg.ssl_mode(mode);
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config);
            let (c, conn) = cfg.connect(tls).await.map_err(why)?;
            (c, tokio::spawn(conn))
        }
    };
    drop(driver);
    let schema = &target.schema;
    // The name was checked to be a plain identifier when the URL was read.
    client
        .batch_execute(&format!(
            "SET search_path TO \"{schema}\"; SET idle_in_transaction_session_timeout = '60s'"
        ))
        .await
        .map_err(why)?;
    Ok(client)
}

/// This host's name, for lock holders and `state show`.
pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "an unnamed host".into())
}

/// What went wrong, in the server's words when it said any.
pub fn why(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        }
    }
}

/// The TLS settings for `sslmode`, or `None` for plain TCP.
fn tls_config(
    tls: &Tls,
) -> Result<Option<(tokio_postgres::config::SslMode, rustls::ClientConfig)>, String> {
    use tokio_postgres::config::SslMode;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = rustls::ClientConfig::builder();
    Ok(match tls {
        Tls::Off => None,
        Tls::Prefer | Tls::Require => {
            let mode = match tls {
                Tls::Prefer => SslMode::Prefer,
                _ => SslMode::Require,
            };
            let verifier = Arc::new(Unverified(provider()));
            let config = builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            Some((mode, config))
        }
        Tls::Verify { roots, host } => {
            let pem = std::fs::read(roots)
                .map_err(|e| format!("sslrootcert {}: {e}", roots.display()))?;
            let mut store = rustls::RootCertStore::empty();
            let certs = rustls::pki_types::pem::PemObject::pem_slice_iter(&pem)
                .collect::<Result<Vec<CertificateDer<'static>>, _>>()
                .map_err(|e| {
                    format!(
                        "sslrootcert {}: not PEM certificates ({e})",
                        roots.display()
                    )
                })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert {}: holds no PEM certificate",
                    roots.display()
                ));
            }
            let verifier = rustls::client::WebPkiServerVerifier::builder(Arc::new(store))
                .build()
                .map_err(|e| format!("sslrootcert {}: {e}", roots.display()))?;
            let verifier: Arc<dyn ServerCertVerifier> = match host {
                true => verifier,
                false => Arc::new(AnyName(verifier)),
            };
            let config = builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            Some((SslMode::Require, config))
        }
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `sslmode=require`: encrypted, the certificate not checked (as libpq does without a root
/// file); signatures are still checked, so the handshake is real.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain is checked against the root file, the name is not.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
