//! Layer 1: opening one connection. The transport (TCP, TLS over TCP, a Unix socket),
//! then the handshake (protocol, credentials, database, name, `CLIENT ID`), bounded by the
//! connect timeout. Every kind of lane and the subscriber connect through [`open`].
//!
//! - `transport.rs`: the byte stream; `socket.rs`: TCP keepalive and user timeout.
//! - `tls.rs`: the rustls connector built once per client, and what TLS errors mean.
//! - `handshake.rs`: the handshake's commands, and what a refusal of each means.

mod handshake;
mod socket;
mod tls;
mod transport;

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

pub(crate) use handshake::{steps, Step};
pub(crate) use socket::TcpOptions;
pub(crate) use tls::{Pem, Tls, TlsOptions};
pub(crate) use transport::Stream;

use crate::error::{Error, ErrorKind};
use crate::resp::{Decoder, Limits};
use crate::url::ConnectInfo;

/// Everything opening a connection takes: where, who, how (TLS), the decoder's limits
/// and how long it may take.
#[derive(Debug)]
pub(crate) struct ConnectOptions {
    pub(crate) info: ConnectInfo,
    /// The TLS connector for a `rediss://` URL, built once and shared by every lane.
    pub(crate) tls: Option<Arc<Tls>>,
    pub(crate) limits: Limits,
    /// `None`: connecting waits as long as the operating system does.
    pub(crate) connect_timeout: Option<Duration>,
    /// Keepalive and user timeout of TCP connections (TLS included).
    pub(crate) tcp: TcpOptions,
}

impl ConnectOptions {
    /// Checks `tls` against the URL and builds the connector.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] for TLS options on a URL that is not `rediss://`, and
    /// for certificates or keys that cannot be read.
    pub(crate) fn new(
        info: ConnectInfo,
        tls: TlsOptions,
        limits: Limits,
        connect_timeout: Option<Duration>,
        tcp: TcpOptions,
    ) -> Result<Self, Error> {
        let tls = tls::build(&info, tls)?;
        Ok(Self {
            info,
            tls,
            limits,
            connect_timeout,
            tcp,
        })
    }
}

impl ConnectOptions {
    /// The same options for another server (a cluster node): only the address differs.
    /// TLS verifies the new host's name, unless a server name was configured.
    pub(crate) fn with_addr(&self, host: &str, port: u16) -> ConnectOptions {
        let mut info = self.info.clone();
        info.addr = crate::url::Addr::Tcp {
            host: host.to_owned(),
            port,
        };
        ConnectOptions {
            info,
            tls: self.tls.as_ref().map(|tls| tls.for_host(host)),
            limits: self.limits,
            connect_timeout: self.connect_timeout,
            tcp: self.tcp,
        }
    }
}

/// The `CLIENT ID` of a connection that may be replaced (a reconnect gets a new one),
/// readable from any thread. Redis numbers clients from 1, so 0 stands for "unknown"
/// (an ACL that denies `CLIENT ID`).
#[derive(Debug, Default)]
pub(crate) struct ClientIdCell(AtomicI64);

impl ClientIdCell {
    const UNKNOWN: i64 = 0;

    pub(crate) fn new(id: Option<i64>) -> Self {
        Self(AtomicI64::new(id.unwrap_or(Self::UNKNOWN)))
    }

    pub(crate) fn get(&self) -> Option<i64> {
        Some(self.0.load(Relaxed)).filter(|&id| id != Self::UNKNOWN)
    }

    pub(crate) fn set(&self, id: Option<i64>) {
        self.0.store(id.unwrap_or(Self::UNKNOWN), Relaxed);
    }
}

/// A connection that passed its handshake, ready for a driver.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) stream: Stream,
    pub(crate) decoder: Decoder,
    /// Bytes read past the handshake's last reply.
    pub(crate) read_buf: BytesMut,
    /// `CLIENT ID` of the connection, when the server (and the ACL) allows asking.
    pub(crate) client_id: Option<i64>,
}

/// Opens one connection and runs the handshake, bounded by the connect timeout. `what`
/// names the connection in a timeout's message (e.g. `"the subscriber "`).
///
/// # Errors
///
/// [`ErrorKind::Connect`] when the server cannot be reached in time or the TLS handshake
/// fails, [`ErrorKind::Auth`] and [`ErrorKind::Handshake`] when the server refuses the
/// credentials or another part of the handshake.
pub(crate) async fn open(options: &ConnectOptions, what: &str) -> Result<Session, Error> {
    let attempt = async {
        let mut stream =
            transport::connect(&options.info.addr, options.tls.as_deref(), &options.tcp).await?;
        let mut decoder = Decoder::new(options.limits);
        let mut read_buf = BytesMut::with_capacity(64 * 1024);
        let client_id = handshake::run(&mut stream, options, &mut decoder, &mut read_buf).await?;
        Ok(Session {
            stream,
            decoder,
            read_buf,
            client_id,
        })
    };
    within_timeout(options, what, attempt).await
}

async fn within_timeout<T>(
    options: &ConnectOptions,
    what: &str,
    attempt: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let Some(limit) = options.connect_timeout else {
        return attempt.await;
    };
    tokio::time::timeout(limit, attempt).await.map_err(|_| {
        Error::new(
            ErrorKind::Connect,
            format!(
                "connecting {what}to {} timed out after {limit:?}{}",
                options.info.addr,
                tls::timeout_hint(options)
            ),
        )
    })?
}
