//! A lane: one Redis connection, split into a cloneable handle ([`Lane`]) and the
//! future that owns the socket ([`LaneDriver`]).

mod down;
mod driver;
mod gate;
mod handle;
mod limit;
mod request;
mod shared;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::mpsc;

pub use driver::LaneDriver;
pub(crate) use gate::Opener;
pub use handle::Lane;
pub(crate) use handle::{empty_command, pipeline_replies, PackedPipeline, ReplyRx};
pub(crate) use request::{Commit, Reply};

use crate::config::LaneConfig;
use crate::error::{Error, ErrorKind};
use crate::resp::Decoder;
use crate::{handshake, transport};
use shared::LaneShared;

/// A connection that passed its handshake, ready for a driver.
pub(crate) struct Session {
    pub(crate) stream: transport::Stream,
    pub(crate) decoder: Decoder,
    /// Bytes read past the handshake's last reply.
    pub(crate) read_buf: BytesMut,
    pub(crate) hello: handshake::Handshake,
}

/// Opens one connection and runs the handshake, bounded by the connect timeout.
pub(crate) async fn connect(config: Arc<LaneConfig>) -> Result<Session, Error> {
    let attempt = async {
        let mut stream = transport::connect(&config.info.addr, config.tls.as_deref()).await?;
        let mut decoder = Decoder::new(config.limits);
        let mut read_buf = BytesMut::with_capacity(64 * 1024);
        let hello = handshake::run(&mut stream, &config, &mut decoder, &mut read_buf).await?;
        Ok::<_, Error>(Session {
            stream,
            decoder,
            read_buf,
            hello,
        })
    };
    within_connect_timeout(&config, "", attempt).await
}

/// Runs `attempt` (a connect plus handshake) within the configured connect timeout, if
/// any. `what` names the connection in the error (e.g. "the subscriber ").
pub(crate) async fn within_connect_timeout<T>(
    config: &LaneConfig,
    what: &str,
    attempt: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let Some(limit) = config.connect_timeout else {
        return attempt.await;
    };
    tokio::time::timeout(limit, attempt).await.map_err(|_| {
        Error::new(
            ErrorKind::Connect,
            format!(
                "connecting {what}to {} timed out after {limit:?}{}",
                config.info.addr,
                crate::tls::timeout_hint(config)
            ),
        )
    })?
}

/// Connects and returns the handle and driver of a lane that reconnects on its own when
/// its connection breaks (unless the config turns that off): the shared lane.
/// `generation` is the counter its reconnects bump; pools compare their lanes with it.
pub(crate) async fn open(
    config: Arc<LaneConfig>,
    generation: Arc<AtomicU64>,
) -> Result<(Lane, LaneDriver), Error> {
    let redial = config.reconnect.enabled.then(|| Arc::clone(&config));
    build(config, generation, redial, true).await
}

/// Connects a dedicated lane: it ends when its connection breaks, and is stamped with
/// the shared lane's `generation`, so a pool can tell it predates a reconnect.
pub(crate) async fn open_dedicated(
    config: Arc<LaneConfig>,
    generation: u64,
) -> Result<(Lane, LaneDriver), Error> {
    build(config, Arc::new(AtomicU64::new(generation)), None, false).await
}

async fn build(
    config: Arc<LaneConfig>,
    generation: Arc<AtomicU64>,
    redial: Option<Arc<LaneConfig>>,
    batching: bool,
) -> Result<(Lane, LaneDriver), Error> {
    let session = connect(Arc::clone(&config)).await?;
    let shared = Arc::new(LaneShared::new(
        config.max_in_flight,
        session.hello.client_id,
        generation,
        config.info.db,
        config.response_timeout,
        config.close_timeout,
    ));
    let (tx, rx) = mpsc::unbounded_channel();
    let lane = Lane::new(tx, Arc::clone(&shared));
    let driver = LaneDriver::new(
        session,
        rx,
        shared,
        config.push_sender.clone(),
        redial,
        batching,
    );
    Ok((lane, driver))
}
