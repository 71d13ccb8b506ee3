//! Opening a subscriber's connection: the same socket and handshake as every lane, so
//! it carries the client's credentials, database, name and protocol.

use bytes::BytesMut;

use crate::config::LaneConfig;
use crate::error::Error;
use crate::resp::Decoder;
use crate::transport::Stream;
use crate::{handshake, transport};

/// A connected, handshaken socket, ready for the driver.
#[derive(Debug)]
pub(super) struct Opened {
    pub(super) stream: Stream,
    pub(super) decoder: Decoder,
    /// Bytes read past the handshake's replies (normally none).
    pub(super) read_buf: BytesMut,
    pub(super) client_id: Option<i64>,
}

/// Connects and runs the handshake, bounded by the connect timeout.
pub(super) async fn open(config: &LaneConfig) -> Result<Opened, Error> {
    let connect = async {
        let mut stream = transport::connect(&config.info.addr, config.tls.as_deref()).await?;
        let mut decoder = Decoder::new(config.limits);
        let mut read_buf = BytesMut::with_capacity(16 * 1024);
        let hello = handshake::run(&mut stream, config, &mut decoder, &mut read_buf).await?;
        Ok(Opened {
            stream,
            decoder,
            read_buf,
            client_id: hello.client_id,
        })
    };
    crate::lane::within_connect_timeout(config, "the subscriber ", connect).await
}
