//! Certificates for TLS test servers, made at run time so no key material is checked in:
//! a CA, a server certificate and a client certificate, both signed by the CA.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::{Error, ErrorKind};

/// Whether a TLS server asks clients for a certificate: Redis's `tls-auth-clients`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `no`: clients connect without a certificate. The kit's default.
    #[default]
    No,
    /// `optional`: a client may present a certificate; if it does, it must be valid.
    Optional,
    /// `yes`: a client without a valid certificate signed by the CA is refused.
    Yes,
}

impl ClientAuth {
    pub(crate) fn as_arg(self) -> &'static str {
        match self {
            ClientAuth::No => "no",
            ClientAuth::Optional => "optional",
            ClientAuth::Yes => "yes",
        }
    }
}

/// The names the server certificate is issued for unless
/// [`ServerBuilder::tls_server_names`](crate::ServerBuilder::tls_server_names) says
/// otherwise.
pub(crate) const DEFAULT_SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// The certificates of a TLS test server, as PEM text and as files in its temporary
/// directory. Made by [`ServerBuilder::tls`](crate::ServerBuilder::tls); see
/// [`RedisServer::tls_certs`](crate::RedisServer::tls_certs).
///
/// The CA signs both the server's certificate and the client certificate, so a client
/// that trusts [`ca_pem`](TlsCerts::ca_pem) accepts the server, and a server run with
/// [`ClientAuth::Yes`] accepts [`client_cert_pem`](TlsCerts::client_cert_pem).
#[derive(Clone)]
pub struct TlsCerts {
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
    server_names: Vec<String>,
    ca_path: PathBuf,
    client_cert_path: PathBuf,
    client_key_path: PathBuf,
    pub(crate) server_cert_path: PathBuf,
    pub(crate) server_key_path: PathBuf,
}

/// Keys are test material, but still not printed: a failed assertion's output should
/// not teach anyone to log keys.
impl std::fmt::Debug for TlsCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCerts")
            .field("server_names", &self.server_names)
            .field("ca_path", &self.ca_path)
            .field("client_cert_path", &self.client_cert_path)
            .finish_non_exhaustive()
    }
}

impl TlsCerts {
    /// The CA certificate (PEM) that signed the server and client certificates: what a
    /// client must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The client certificate (PEM), for servers started with [`ClientAuth::Yes`] or
    /// [`ClientAuth::Optional`].
    pub fn client_cert_pem(&self) -> &str {
        &self.client_cert_pem
    }

    /// The client certificate's private key (PKCS#8 PEM).
    pub fn client_key_pem(&self) -> &str {
        &self.client_key_pem
    }

    /// The names (DNS names and IP addresses) the server certificate is valid for.
    pub fn server_names(&self) -> &[String] {
        &self.server_names
    }

    /// The CA certificate's file, inside the server's temporary directory.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The client certificate's file.
    pub fn client_cert_path(&self) -> &Path {
        &self.client_cert_path
    }

    /// The client key's file.
    pub fn client_key_path(&self) -> &Path {
        &self.client_key_path
    }

    /// Makes a CA, a server certificate for `server_names` and a client certificate, and
    /// writes them (with the keys) into `dir`.
    pub(crate) fn generate(dir: &Path, server_names: &[String]) -> Result<Self, Error> {
        let ca_key = KeyPair::generate().map_err(cert_error)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
        // A name of its own: CAs of two servers sharing a name would make a certificate of
        // one look like a forgery (bad signature) to a client trusting the other, rather
        // than what it is (an unknown issuer).
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("redis-lanes test CA {}", unique()),
        );
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_error)?;
        let ca = Issuer::new(ca_params, ca_key);

        let (server_cert, server_key) = leaf(
            &ca,
            server_names.to_vec(),
            "redis-lanes test server",
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_cert, client_key) = leaf(
            &ca,
            Vec::new(),
            "redis-lanes test client",
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;

        let certs = Self {
            ca_pem: ca_cert.pem(),
            client_cert_pem: client_cert,
            client_key_pem: client_key,
            server_names: server_names.to_vec(),
            ca_path: dir.join("ca.crt"),
            client_cert_path: dir.join("client.crt"),
            client_key_path: dir.join("client.key"),
            server_cert_path: dir.join("server.crt"),
            server_key_path: dir.join("server.key"),
        };
        for (path, text) in [
            (&certs.ca_path, &certs.ca_pem),
            (&certs.client_cert_path, &certs.client_cert_pem),
            (&certs.client_key_path, &certs.client_key_pem),
            (&certs.server_cert_path, &server_cert),
            (&certs.server_key_path, &server_key),
        ] {
            fs::write(path, text)
                .map_err(|e| Error::io(format!("could not write {}", path.display()), e))?;
        }
        Ok(certs)
    }
}

/// A certificate for `names`, signed by `ca`, and its key, both as PEM.
fn leaf(
    ca: &Issuer<'_, KeyPair>,
    names: Vec<String>,
    common_name: &str,
    purpose: ExtendedKeyUsagePurpose,
) -> Result<(String, String), Error> {
    let key = KeyPair::generate().map_err(cert_error)?;
    let mut params = CertificateParams::new(names).map_err(cert_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![purpose];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, ca).map_err(cert_error)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Distinct per CA made by this process, and very likely across processes.
fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn cert_error(e: rcgen::Error) -> Error {
    Error::new(
        ErrorKind::Certificate,
        format!("could not generate the TLS test certificates: {e}"),
    )
}
