//! TLS for `rediss://` URLs, through rustls: the builder options, the connector built
//! from them once per client, and the errors a handshake can end with.
//!
//! The connector (one `rustls::ClientConfig` behind an `Arc`) is made when the builder
//! is turned into a client's config and shared by every lane of that client, so a new
//! blocking lane or subscriber pays for the TCP and TLS handshakes only, never for
//! parsing certificates again.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, ErrorKind};
use crate::url::{Addr, ConnectInfo, REDACTED};

/// PEM given to the builder, or the path of a file holding it, read when the client is
/// built (so a bad path is an error of `connect`, like every other bad option).
#[derive(Clone)]
pub(crate) enum Pem {
    Bytes(Arc<[u8]>),
    File(PathBuf),
}

impl Pem {
    fn load(&self, what: &str) -> Result<Vec<u8>, Error> {
        match self {
            Pem::Bytes(bytes) => Ok(bytes.to_vec()),
            // Read synchronously: a certificate or key is a few KiB, read once per client.
            Pem::File(path) => std::fs::read(path).map_err(|e| {
                Error::with_source(
                    ErrorKind::InvalidConfig,
                    format!("{what}: cannot read {}", path.display()),
                    e,
                )
            }),
        }
    }
}

/// Shows where PEM comes from, never what it holds.
impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::Bytes(bytes) => write!(f, "<{} bytes of PEM>", bytes.len()),
            Pem::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The TLS options of a [`Builder`](crate::Builder), set by its `tls_*` methods.
#[derive(Clone, Default)]
pub(crate) struct TlsOptions {
    /// Trusted CA certificates; when empty, the built-in web roots are trusted instead.
    pub(crate) ca: Vec<Pem>,
    /// The client's certificate chain and private key, for mutual TLS.
    pub(crate) client_auth: Option<(Pem, Pem)>,
    /// The name the server's certificate must carry, instead of the URL's host.
    pub(crate) server_name: Option<String>,
}

impl TlsOptions {
    fn is_set(&self) -> bool {
        !self.ca.is_empty() || self.client_auth.is_some() || self.server_name.is_some()
    }
}

/// The private key is a secret: only whether one is configured is shown.
impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca", &self.ca)
            .field(
                "client_cert",
                &self.client_auth.as_ref().map(|(chain, _)| chain),
            )
            .field("client_key", &self.client_auth.as_ref().map(|_| REDACTED))
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// What every TLS connection of one client shares.
pub(crate) struct Tls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    /// Set with `tls_server_name`: every node of a cluster is verified against it.
    /// Otherwise each node is verified against its own host.
    fixed_name: bool,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name.to_str())
            .finish_non_exhaustive()
    }
}

/// Builds the client's TLS connector from its options, or `None` for a URL without TLS.
///
/// # Errors
///
/// [`ErrorKind::InvalidConfig`] for TLS options on a URL that is not `rediss://`, PEM
/// that cannot be read or parsed, a key that does not match its certificate, or an
/// invalid server name.
pub(crate) fn build(info: &ConnectInfo, options: TlsOptions) -> Result<Option<Arc<Tls>>, Error> {
    let host = match (&info.addr, info.tls) {
        (Addr::Tcp { host, .. }, true) => host,
        _ if options.is_set() => {
            // As redis-rs does: the URL alone says whether a connection is encrypted. A
            // CA configured for a `redis://` URL means the deployment believes it is
            // encrypted; connecting in plain text would betray that, and silently
            // upgrading would make the URL lie.
            return Err(invalid(
                "TLS options (tls_ca_pem, tls_client_cert_pem, tls_server_name, ...) need a \
                 rediss:// (or valkeys://) URL",
            ));
        }
        _ => return Ok(None),
    };
    let name = options.server_name.as_deref().unwrap_or(host);
    let server_name = ServerName::try_from(name.to_owned()).map_err(|_| {
        invalid(format!(
            "TLS server name {name:?} is not a valid DNS name or IP address"
        ))
    })?;

    let mut roots = RootCertStore::empty();
    if options.ca.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for pem in &options.ca {
        for cert in certificates(&pem.load("TLS CA")?, "TLS CA")? {
            roots.add(cert).map_err(|e| {
                Error::with_source(
                    ErrorKind::InvalidConfig,
                    "TLS CA: a certificate cannot be used as a trust anchor",
                    e,
                )
            })?;
        }
    }

    // An explicit provider, so nothing depends on (or installs) a process-wide default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::with_source(ErrorKind::InvalidConfig, "TLS setup", e))?
        .with_root_certificates(roots);
    let config = match &options.client_auth {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain = certificates(
                &chain.load("TLS client certificate")?,
                "TLS client certificate",
            )?;
            let key = private_key(&key.load("TLS client key")?)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                Error::with_source(
                    ErrorKind::InvalidConfig,
                    "TLS client certificate and key cannot be used together",
                    e,
                )
            })?
        }
    };
    Ok(Some(Arc::new(Tls {
        connector: TlsConnector::from(Arc::new(config)),
        server_name,
        fixed_name: options.server_name.is_some(),
    })))
}

impl Tls {
    /// The same TLS setup for another host of a cluster: its certificate is verified
    /// against that host, unless a server name was configured. A host that is no valid
    /// name keeps this one's name, and verification then says what is wrong.
    pub(crate) fn for_host(self: &Arc<Self>, host: &str) -> Arc<Tls> {
        if self.fixed_name {
            return Arc::clone(self);
        }
        match ServerName::try_from(host.to_owned()) {
            Ok(server_name) => Arc::new(Tls {
                connector: self.connector.clone(),
                server_name,
                fixed_name: false,
            }),
            Err(_) => Arc::clone(self),
        }
    }
}

/// Appended to a connect timeout's message. A TLS client on a port without TLS waits for
/// a handshake reply that never comes: Redis takes the ClientHello for the start of an
/// inline command and waits for its end of line.
pub(super) fn timeout_hint(config: &super::ConnectOptions) -> &'static str {
    match config.tls {
        Some(_) => " (over TLS: a port that does not speak TLS never answers the TLS handshake)",
        None => "",
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidConfig, message)
}

/// Every `CERTIFICATE` section of `pem`; at least one.
fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::with_source(ErrorKind::InvalidConfig, format!("{what}: bad PEM"), e))?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "{what}: no certificate found (expected a PEM section \
             \"-----BEGIN CERTIFICATE-----\")"
        )));
    }
    Ok(certs)
}

/// The first private key in `pem`. The PEM parser's own error is not passed on: its text
/// can quote a line of the input, and this input is a secret.
fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        invalid(match e {
            pem::Error::NoItemsFound => {
                "TLS client key: no private key found \
                 (expected a PEM section such as \"-----BEGIN PRIVATE KEY-----\")"
            }
            _ => "TLS client key: the PEM is malformed",
        })
    })
}

impl Tls {
    /// Runs the TLS handshake on a connected socket, checking the server's certificate.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Connect`], saying why: verification failed (unknown issuer, name
    /// mismatch, expired...), the server refused the handshake, or the socket failed.
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        addr: &Addr,
    ) -> Result<TlsStream<TcpStream>, Error> {
        self.connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                let message = self
                    .explain(&e)
                    .unwrap_or_else(|| format!("the TLS handshake with {addr} failed"));
                Error::with_source(ErrorKind::Connect, message, e)
            })
    }

    /// Says what a TLS failure means for the user, when `err` is one. Also used for the
    /// first reads after the handshake: with TLS 1.3 the server checks the client's
    /// certificate after the client considers the handshake done, so a missing or
    /// untrusted client certificate surfaces there.
    pub(crate) fn explain(&self, err: &io::Error) -> Option<String> {
        let tls = err.get_ref()?.downcast_ref::<rustls::Error>()?;
        let name = self.server_name.to_str();
        Some(match tls {
            rustls::Error::InvalidCertificate(cert) => format!(
                "TLS verification of the server's certificate for {name:?} failed: {}",
                certificate_problem(cert, &name)
            ),
            rustls::Error::AlertReceived(alert) => format!(
                "the server refused the TLS connection (alert: {alert:?}){}",
                alert_hint(*alert)
            ),
            rustls::Error::InvalidMessage(_) => format!(
                "the TLS handshake for {name:?} failed: the server does not speak TLS on this \
                 port ({tls})"
            ),
            other => format!("the TLS handshake for {name:?} failed: {other}"),
        })
    }
}

/// What is wrong with the server's certificate, in words; rustls' error follows as the
/// source.
fn certificate_problem(err: &CertificateError, name: &str) -> String {
    match err {
        CertificateError::UnknownIssuer => "unknown issuer: the certificate is not signed by \
             a trusted CA (those given with Builder::tls_ca_pem, or without them the built-in \
             web roots)"
            .to_owned(),
        // rustls' own text (the source, shown after this) lists the names it is valid for.
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "name mismatch: the certificate is not valid for {name:?}; connect by a name \
                 it lists, or set the expected name with Builder::tls_server_name"
            )
        }
        CertificateError::BadSignature => "bad signature: the certificate names a trusted CA \
             as its issuer but was not signed by it (a different CA with the same name?)"
            .to_owned(),
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => {
            "it is expired or not yet valid (check its dates and this machine's clock)".to_owned()
        }
        _ => "the certificate was rejected".to_owned(),
    }
}

fn alert_hint(alert: AlertDescription) -> &'static str {
    match alert {
        AlertDescription::CertificateRequired
        | AlertDescription::HandshakeFailure
        | AlertDescription::BadCertificate
        | AlertDescription::UnknownCA
        | AlertDescription::CertificateUnknown
        | AlertDescription::AccessDenied => {
            "; it may require a client certificate (Builder::tls_client_cert_pem) or not \
             trust the one given"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(url: &str) -> ConnectInfo {
        crate::url::parse(url).expect("valid URL")
    }

    #[test]
    fn cluster_nodes_are_verified_against_their_own_host() {
        let tls = build(&info("rediss://seed.example:7000"), TlsOptions::default())
            .expect("built")
            .expect("TLS");
        assert_eq!(tls.server_name.to_str(), "seed.example");
        let node = tls.for_host("node2.example");
        assert_eq!(node.server_name.to_str(), "node2.example");
        assert_eq!(tls.for_host("10.0.0.7").server_name.to_str(), "10.0.0.7");
        let fixed = TlsOptions {
            server_name: Some("redis.internal".into()),
            ..TlsOptions::default()
        };
        let tls = build(&info("rediss://10.0.0.1:7000"), fixed)
            .expect("built")
            .expect("TLS");
        assert_eq!(
            tls.for_host("10.0.0.2").server_name.to_str(),
            "redis.internal"
        );
    }

    #[test]
    fn plain_urls_need_no_tls_and_refuse_tls_options() {
        assert!(build(&info("redis://h"), TlsOptions::default())
            .expect("no options")
            .is_none());
        for url in ["redis://h", "unix:///tmp/s"] {
            let options = TlsOptions {
                server_name: Some("h".into()),
                ..TlsOptions::default()
            };
            let err = build(&info(url), options).expect_err(url);
            assert!(err.is_config(), "{err}");
            assert!(err.to_string().contains("rediss://"), "{err}");
        }
    }

    #[test]
    fn default_roots_and_server_name() {
        let tls = build(&info("rediss://cache.example:6380"), TlsOptions::default())
            .expect("builds")
            .expect("TLS");
        assert_eq!(tls.server_name.to_str(), "cache.example");
        let options = TlsOptions {
            server_name: Some("redis.internal".into()),
            ..TlsOptions::default()
        };
        let tls = build(&info("rediss://10.0.0.1"), options)
            .expect("builds")
            .expect("TLS");
        assert_eq!(tls.server_name.to_str(), "redis.internal");
        let ip = build(&info("rediss://[::1]"), TlsOptions::default())
            .expect("builds")
            .expect("TLS");
        assert_eq!(ip.server_name.to_str(), "::1");
    }

    #[test]
    fn bad_options_are_config_errors() {
        let bad_name = TlsOptions {
            server_name: Some("not a name!".into()),
            ..TlsOptions::default()
        };
        let cases = [
            (bad_name, "not a valid DNS name"),
            (
                TlsOptions {
                    ca: vec![Pem::Bytes(b"hello".as_slice().into())],
                    ..TlsOptions::default()
                },
                "no certificate found",
            ),
            (
                TlsOptions {
                    ca: vec![Pem::Bytes(
                        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"
                            .as_slice()
                            .into(),
                    )],
                    ..TlsOptions::default()
                },
                "bad PEM",
            ),
            (
                TlsOptions {
                    ca: vec![Pem::File("/nonexistent/ca.pem".into())],
                    ..TlsOptions::default()
                },
                "cannot read /nonexistent/ca.pem",
            ),
        ];
        for (options, needle) in cases {
            let err = build(&info("rediss://h"), options).expect_err(needle);
            assert!(err.is_config(), "{err}");
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let options = TlsOptions {
            client_auth: Some((
                Pem::Bytes(b"cert".as_slice().into()),
                Pem::Bytes(
                    b"-----BEGIN PRIVATE KEY-----\nsecretkeybytes"
                        .as_slice()
                        .into(),
                ),
            )),
            ..TlsOptions::default()
        };
        let shown = format!("{options:?}");
        assert!(!shown.contains("secretkeybytes"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
