//! The TLS stream against a TLS server of the test's own, on sockets whose buffers are
//! small enough to fill.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use super::*;

/// A CA (PEM) and a certificate for `localhost` signed by it, with its key.
fn certificates() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    (ca_cert.pem(), cert.der().clone(), key)
}

/// A driver writes until its buffer is empty, then only reads. A TLS write that found the
/// socket full keeps the rest of its ciphertext in rustls; the reads must send it, or the
/// server never gets the whole request and never answers.
#[tokio::test]
async fn reading_sends_ciphertext_a_write_left_behind() {
    let (ca_pem, cert, key) = certificates();
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));

    // Tiny buffers on both ends, so 48 KiB cannot leave the client in one go.
    let listener = TcpSocket::new_v4().unwrap();
    listener.set_recv_buffer_size(4096).unwrap();
    listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = listener.listen(1).unwrap();
    const LEN: usize = 48 * 1024;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut request = vec![0; LEN];
        tls.read_exact(&mut request).await.unwrap();
        tls.write_all(b"done").await.unwrap();
        tls.flush().await.unwrap();
        // Keep the connection open until the client has read the answer.
        let _ = tls.read(&mut [0; 1]).await;
    });

    let config = crate::Client::builder(&format!("rediss://localhost:{}", addr.port()))
        .tls_ca_pem(ca_pem)
        .build()
        .unwrap();
    let tls = config
        .lane
        .connect
        .tls
        .as_deref()
        .expect("a rediss:// config has TLS");
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let to = Addr::Tcp {
        host: "localhost".to_owned(),
        port: addr.port(),
    };
    let mut stream = Stream::Tls(Box::new(tls.handshake(tcp, &to).await.unwrap()));

    // One write, as a driver's last: all of it is taken, not all of it is sent.
    let wrote = stream.write(&[b'x'; LEN]).await.unwrap();
    assert_eq!(wrote, LEN);
    let Stream::Tls(inner) = &stream else {
        unreachable!("built as TLS")
    };
    assert!(
        inner.get_ref().1.wants_write(),
        "the socket took everything: the test proves nothing on this machine"
    );

    let mut answer = [0; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut answer))
        .await
        .expect("the server never got the whole request")
        .unwrap();
    assert_eq!(&answer, b"done");
    drop(stream);
    server.await.unwrap();
}
