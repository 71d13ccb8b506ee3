//! Opening the byte stream under a lane: TCP (with `TCP_NODELAY`, keepalive and a user
//! timeout), TLS over TCP, or a Unix socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

use super::socket::TcpOptions;
use super::tls::Tls;
use crate::error::{Error, ErrorKind};
use crate::url::Addr;

/// One connected socket.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    /// Boxed: the TLS state is over a kilobyte, the other variants a few words.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    #[cfg(unix)]
    Unix(UnixStream),
}

/// Connects to `addr`, wrapping the TCP connection in TLS when `tls` is given (the
/// builder allows TLS only for `rediss://`, which is always TCP). The caller bounds the
/// time it may take, TLS handshake included.
pub(crate) async fn connect(
    addr: &Addr,
    tls: Option<&Tls>,
    tcp_options: &TcpOptions,
) -> Result<Stream, Error> {
    let fail = |e: io::Error| Error::with_source(ErrorKind::Connect, format!("{addr}"), e);
    match addr {
        Addr::Tcp { host, port } => {
            let tcp = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(fail)?;
            // Requests are batched by the driver already; Nagle would only add latency.
            tcp.set_nodelay(true).map_err(fail)?;
            // A Unix socket needs neither: its peer is on this machine, and the kernel
            // closes it when that process goes away.
            tcp_options.apply(&tcp).map_err(fail)?;
            match tls {
                Some(tls) => Ok(Stream::Tls(Box::new(tls.handshake(tcp, addr).await?))),
                None => Ok(Stream::Tcp(tcp)),
            }
        }
        #[cfg(unix)]
        Addr::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await.map_err(fail)?)),
        #[cfg(not(unix))]
        Addr::Unix(_) => Err(Error::new(
            ErrorKind::InvalidConfig,
            "Unix sockets are not available on this platform",
        )),
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => {
                // A TLS write can accept the plaintext and keep part of the ciphertext in
                // rustls' buffer when the socket is full; only a flush sends the rest.
                // The drivers write until their buffer is empty and then wait for
                // replies, and they poll the read side on every wake-up, so flushing here
                // sends a request's tail as soon as the socket has room. Without it a
                // large batch could wait forever for a reply to bytes never sent.
                let tls = s.as_mut();
                if let Poll::Ready(Err(e)) = Pin::new(&mut *tls).poll_flush(cx) {
                    return Poll::Ready(Err(e));
                }
                Pin::new(tls).poll_read(cx, buf)
            }
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
            #[cfg(unix)]
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
