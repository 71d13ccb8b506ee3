//! Layer 2: a lane, one Redis connection, split into a cloneable handle ([`Lane`]) and
//! the future that owns the socket ([`LaneDriver`]).
//!
//! - `handle.rs`: [`Lane`], queueing requests, the request shapes of the `redis` crate.
//! - `driver.rs`: [`LaneDriver`], its states (up, down) and its end.
//! - `conn.rs`: one connection: batching writes, decoding replies, FIFO matching.
//! - `down.rs`: between connections: the reconnect and the requests waiting for it.
//! - `request.rs`, `gate.rs`: what travels on the queue.
//! - `health.rs`: the liveness check of a quiet connection.
//! - `limit.rs`: the in-flight bound; `state.rs`: what handle and driver both see.

mod conn;
mod down;
mod driver;
mod gate;
mod handle;
mod health;
mod limit;
mod output;
mod request;
mod state;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

pub use driver::LaneDriver;
pub(crate) use gate::Opener;
pub use handle::Lane;
pub(crate) use handle::{empty_command, pipeline_replies, PackedPipeline, ReplyRx};
pub(crate) use health::{dead, Health, HealthOptions, LaneKind, Verdict};
pub(crate) use request::{Commit, Reply};

use crate::connect::{self, ConnectOptions};
use crate::error::Error;
use crate::reconnect::ReconnectOptions;
use state::LaneState;

/// What a lane takes: how to open its connection, and how it treats its requests.
#[derive(Debug, Clone)]
pub(crate) struct LaneOptions {
    pub(crate) connect: Arc<ConnectOptions>,
    pub(crate) max_in_flight: usize,
    /// The bytes of the requests in flight, bounded like their number.
    pub(crate) max_in_flight_bytes: usize,
    /// How long a caller waits for room under the two bounds above.
    pub(crate) max_in_flight_wait: Option<Duration>,
    pub(crate) response_timeout: Option<Duration>,
    pub(crate) close_timeout: Duration,
    pub(crate) reconnect: ReconnectOptions,
    /// Where RESP3 pushes go; `None` drops (and counts) them.
    pub(crate) push_sender: Option<mpsc::Sender<redis::PushInfo>>,
    /// How a quiet connection proves it is alive.
    pub(crate) health: HealthOptions,
}

impl LaneOptions {
    /// The options of a dedicated lane: no response timeout (its user decides how long
    /// to wait, e.g. a blocking command's own timeout) and no push sender (pushes there
    /// would only be client-tracking noise).
    pub(crate) fn dedicated(&self) -> Self {
        Self {
            response_timeout: None,
            push_sender: None,
            ..self.clone()
        }
    }
}

/// Connects and returns the handle and driver of a lane that reconnects on its own when
/// its connection breaks (unless its options turn that off): the shared lane.
/// `generation` is the counter its reconnects bump; pools compare their lanes with it.
pub(crate) async fn open(
    options: Arc<LaneOptions>,
    generation: Arc<AtomicU64>,
) -> Result<(Lane, LaneDriver), Error> {
    let redial = options.reconnect.enabled.then(|| Arc::clone(&options));
    build(options, generation, redial, LaneKind::Shared).await
}

/// Connects a dedicated lane: it ends when its connection breaks, and is stamped with
/// the shared lane's `generation`, so a pool can tell it predates a reconnect.
pub(crate) async fn open_dedicated(
    options: Arc<LaneOptions>,
    generation: u64,
    kind: LaneKind,
) -> Result<(Lane, LaneDriver), Error> {
    build(options, Arc::new(AtomicU64::new(generation)), None, kind).await
}

async fn build(
    options: Arc<LaneOptions>,
    generation: Arc<AtomicU64>,
    redial: Option<Arc<LaneOptions>>,
    kind: LaneKind,
) -> Result<(Lane, LaneDriver), Error> {
    let session = connect::open(&options.connect, "").await?;
    let state = Arc::new(LaneState::new(&options, session.client_id, generation));
    let (tx, rx) = mpsc::unbounded_channel();
    let lane = Lane::new(tx, Arc::clone(&state));
    let driver = LaneDriver::new(
        session,
        rx,
        state,
        options.push_sender.clone(),
        redial,
        options.health,
        kind,
    );
    Ok((lane, driver))
}
