//! A lane: one Redis connection, split into a cloneable handle ([`Lane`]) and the
//! future that owns the socket ([`LaneDriver`]).

mod driver;
mod handle;
mod limit;
mod request;
mod shared;

use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::mpsc;

pub use driver::LaneDriver;
pub use handle::Lane;
#[allow(unused_imports)] // The blocking-lane pool builds on these.
pub(crate) use request::{Commit, Message, Reply, Request};

use crate::config::LaneConfig;
use crate::error::{Error, ErrorKind};
use crate::resp::Decoder;
use crate::{handshake, transport};
use shared::LaneShared;

/// Connects, runs the handshake, and returns the lane's handle and driver, unspawned.
pub(crate) async fn open(config: Arc<LaneConfig>) -> Result<(Lane, LaneDriver), Error> {
    let connect = async {
        let mut stream = transport::connect(&config.info.addr, config.tls.as_deref()).await?;
        let mut decoder = Decoder::new(config.limits);
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let hello = handshake::run(&mut stream, &config, &mut decoder, &mut buf).await?;
        Ok::<_, Error>((stream, decoder, buf, hello))
    };
    let (stream, decoder, buf, hello) = tokio::time::timeout(config.connect_timeout, connect)
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Connect,
                format!(
                    "connecting to {} timed out after {:?}{}",
                    config.info.addr,
                    config.connect_timeout,
                    crate::tls::timeout_hint(&config)
                ),
            )
        })??;
    let shared = Arc::new(LaneShared::new(
        config.max_in_flight,
        hello.client_id,
        config.info.db,
        config.response_timeout,
        config.close_timeout,
    ));
    let (tx, rx) = mpsc::unbounded_channel();
    let lane = Lane::new(tx, Arc::clone(&shared));
    let driver = LaneDriver::new(stream, rx, shared, decoder, buf, config.push_sender.clone());
    Ok((lane, driver))
}
