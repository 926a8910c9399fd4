//! PostgreSQL over TLS with rustls: libpq's `sslmode` and `sslrootcert`, which tokio-postgres
//! does not know (it has disable/prefer/require and no certificate options), taken out of the
//! DSN here and turned into a tokio-postgres mode plus a rustls verifier.
//!
//! | sslmode | TLS | chain checked | host name checked |
//! |---|---|---|---|
//! | disable | never | - | - |
//! | prefer (default) | if the server offers it | only with sslrootcert | no |
//! | require | always | only with sslrootcert | no |
//! | verify-ca | always | yes | no |
//! | verify-full | always | yes | yes |

use super::StoreError;
use crate::config::{keyword_pairs, unescape_keyword_value};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // allow (plaintext first) would send a password before knowing TLS was possible.
            other => {
                return Err(StoreError::Config(format!(
                    "sslmode={other} is not supported (disable, prefer, require, verify-ca or verify-full)"
                )));
            }
        })
    }

    /// What tokio-postgres is told: it only decides whether TLS is optional.
    pub fn driver_mode(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            SslMode::Disable => Driver::Disable,
            SslMode::Prefer => Driver::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Driver::Require,
        }
    }
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file (`sslrootcert=/path`).
    File(String),
    /// The system's roots (`sslrootcert=system`, as libpq 16, or verify-* without sslrootcert).
    System,
}

/// A DSN's TLS options, and the DSN without them (what tokio-postgres parses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub dsn: String,
    pub mode: SslMode,
    /// `sslrootcert` as given; `None` when absent.
    pub root_cert: Option<RootCert>,
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query or a key=value string (the last one
/// wins, as in libpq). Without sslmode: prefer, or verify-full for `sslrootcert=system`.
pub fn take_tls_options(dsn: &str) -> Result<TlsOptions, StoreError> {
    let (rest, mode, root) = if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        take_from_url(dsn)?
    } else {
        take_from_keywords(dsn)
    };
    let root_cert = root.map(|r| match r.as_str() {
        "system" => RootCert::System,
        _ => RootCert::File(r),
    });
    let mode = match (mode.as_deref().map(SslMode::parse).transpose()?, &root_cert) {
        (None, Some(RootCert::System)) => SslMode::VerifyFull,
        (None, _) => SslMode::Prefer,
        // libpq 16 refuses this too: the system's roots vouch for any name they signed.
        (Some(m), Some(RootCert::System)) if m != SslMode::VerifyFull => {
            return Err(StoreError::Config(format!(
                "sslrootcert=system needs sslmode=verify-full, not {}",
                mode.as_deref().unwrap_or_default()
            )));
        }
        (Some(m), _) => m,
    };
    Ok(TlsOptions {
        dsn: rest,
        mode,
        root_cert,
    })
}

type Taken = (String, Option<String>, Option<String>);

fn take_from_url(url: &str) -> Result<Taken, StoreError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None, None));
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|v| v.into_owned())
            .map_err(|e| StoreError::Config(format!("database url query: {e}")))
    };
    let (mut mode, mut root, mut kept) = (None, None, vec![]);
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(k)?.as_str() {
            "sslmode" => mode = Some(decode(v)?),
            "sslrootcert" => root = Some(decode(v)?),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, mode, root))
}

fn take_from_keywords(dsn: &str) -> Taken {
    let (mut mode, mut root, mut cut) = (None, None, vec![]);
    for p in keyword_pairs(dsn) {
        let value = || unescape_keyword_value(&dsn[p.value.clone()]);
        match &dsn[p.key.clone()] {
            "sslmode" => mode = Some(value()),
            "sslrootcert" => root = Some(value()),
            _ => continue,
        }
        cut.push(p.whole);
    }
    let mut rest = dsn.to_owned();
    for range in cut.into_iter().rev() {
        rest.replace_range(range, "");
    }
    (rest, mode, root)
}

/// The rustls connector for these options. Reads `sslrootcert` (or the system roots) now, so
/// a missing or unreadable file is a configuration error at start, not at the first query.
pub fn connector(tls: &TlsOptions) -> Result<MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // libpq: with a root certificate the chain is checked even under require (and prefer).
    let check = match (tls.mode, &tls.root_cert) {
        (SslMode::Disable, _) | (SslMode::Prefer | SslMode::Require, None) => Check::Nothing,
        (SslMode::VerifyFull, root) => Check::ChainAndName(load_roots(root.as_ref())?),
        (_, root) => Check::Chain(load_roots(root.as_ref())?),
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("tls: {e}")))?;
    let chain_only = |roots| ChainOnly {
        roots,
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = match check {
        Check::ChainAndName(roots) => builder
            .with_root_certificates(Arc::new(roots))
            .with_no_client_auth(),
        Check::Chain(roots) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(chain_only(Some(Arc::new(roots)))))
            .with_no_client_auth(),
        Check::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(chain_only(None)))
            .with_no_client_auth(),
    };
    // What libpq 17 sends; servers that do not know ALPN ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(MakeRustlsConnect::new(config))
}

/// What is checked of the server's certificate.
enum Check {
    Nothing,
    Chain(RootCertStore),
    ChainAndName(RootCertStore),
}

fn load_roots(root: Option<&RootCert>) -> Result<RootCertStore, StoreError> {
    match root {
        Some(RootCert::File(path)) => roots_from_file(path),
        Some(RootCert::System) | None => system_roots(),
    }
}

fn roots_from_file(path: &str) -> Result<RootCertStore, StoreError> {
    let bad = |why: String| StoreError::Config(format!("sslrootcert {path}: {why}"));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, StoreError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none installed".to_owned(), ToString::to_string);
        return Err(StoreError::Config(format!(
            "no system root certificates ({why}): set sslrootcert"
        )));
    }
    Ok(roots)
}

/// Checks the server's chain against `roots` but not the host name (verify-ca, and require
/// or prefer with sslrootcert), or nothing about the certificate when `roots` is `None`
/// (require, prefer: encryption only, as libpq). Handshake signatures are always checked.
#[derive(Debug)]
struct ChainOnly {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(dsn: &str) -> TlsOptions {
        take_tls_options(dsn).unwrap_or_else(|e| panic!("{dsn}: {e}"))
    }

    #[test]
    fn url_options_are_taken_out_and_the_rest_kept() {
        let t = take(
            "postgres://u@db:5432/app?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20dir%2Fca.pem&connect_timeout=3",
        );
        assert_eq!(
            t.dsn,
            "postgres://u@db:5432/app?application_name=x&connect_timeout=3"
        );
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert_eq!(
            t.root_cert,
            Some(RootCert::File("/etc/ca dir/ca.pem".into()))
        );
        let t = take("postgresql://u@db/app?sslmode=require");
        assert_eq!(t.dsn, "postgresql://u@db/app");
        assert_eq!(t.mode, SslMode::Require);
        assert_eq!(t.root_cert, None);
        let t = take("postgres://u@db/app");
        assert_eq!(
            (t.dsn.as_str(), t.mode),
            ("postgres://u@db/app", SslMode::Prefer)
        );
    }

    #[test]
    fn keyword_options_are_taken_out_and_the_rest_kept() {
        let t = take("host=db sslmode=verify-ca user=app sslrootcert='/etc/my ca/ca.pem' dbname=x");
        assert_eq!(t.mode, SslMode::VerifyCa);
        assert_eq!(
            t.root_cert,
            Some(RootCert::File("/etc/my ca/ca.pem".into()))
        );
        let cfg: tokio_postgres::Config = t.dsn.parse().unwrap();
        assert_eq!(cfg.get_user(), Some("app"));
        assert_eq!(cfg.get_dbname(), Some("x"));
        let t = take("host=db sslmode = disable");
        assert_eq!((t.dsn.trim(), t.mode), ("host=db", SslMode::Disable));
        let t = take("host=db sslrootcert=a\\ b sslmode=prefer sslmode=require");
        assert_eq!(t.mode, SslMode::Require, "the last one wins");
        assert_eq!(t.root_cert, Some(RootCert::File("a b".into())));
    }

    #[test]
    fn modes_map_to_what_tokio_postgres_knows() {
        use tokio_postgres::config::SslMode as D;
        for (mode, want) in [
            ("disable", D::Disable),
            ("prefer", D::Prefer),
            ("require", D::Require),
            ("verify-ca", D::Require),
            ("verify-full", D::Require),
        ] {
            let t = take(&format!("postgres://h/d?sslmode={mode}"));
            assert_eq!(t.mode.driver_mode(), want, "{mode}");
            let parsed: tokio_postgres::Config = t.dsn.parse().unwrap();
            assert_eq!(parsed.get_ssl_mode(), D::Prefer, "no sslmode left: {mode}");
        }
    }

    #[test]
    fn bad_modes_and_weak_modes_with_system_roots_are_config_errors() {
        for dsn in [
            "postgres://h/d?sslmode=allow",
            "postgres://h/d?sslmode=verify_full",
            "host=h sslmode=REQUIRE",
            "postgres://h/d?sslrootcert=system&sslmode=require",
        ] {
            let e = take_tls_options(dsn).unwrap_err();
            assert!(matches!(e, StoreError::Config(_)), "{dsn}: {e}");
        }
        let t = take("postgres://h/d?sslrootcert=system");
        assert_eq!(
            (t.mode, t.root_cert),
            (SslMode::VerifyFull, Some(RootCert::System))
        );
    }

    #[test]
    fn a_bad_root_certificate_file_is_a_config_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("ros-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let missing = dir.join("missing.pem");
        for path in [&empty, &missing] {
            let dsn = format!(
                "postgres://h/d?sslmode=verify-full&sslrootcert={}",
                path.display()
            );
            let e = connector(&take(&dsn)).err().expect("an error");
            let shown = e.to_string();
            assert!(matches!(e, StoreError::Config(_)), "{shown}");
            assert!(shown.contains(&path.display().to_string()), "{shown}");
        }
        // disable never reads it, as libpq.
        let dsn = format!(
            "postgres://h/d?sslmode=disable&sslrootcert={}",
            missing.display()
        );
        assert!(connector(&take(&dsn)).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
