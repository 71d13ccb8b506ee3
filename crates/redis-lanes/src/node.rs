//! Layer 4: everything one server needs, once per server.
//!
//! A [`Config`] holds every layer's options as the builder checked them, and a [`Core`]
//! the lanes, pools and services of one server. A cluster client holds one `Core` per
//! node.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, Pipeline, Value};

use crate::blocking::{self, Blocking, BlockingOptions, Commands};
use crate::error::{Error, ErrorKind};
use crate::exclusive::{ExclusiveOptions, Exclusives};
use crate::lane::{self, Lane, LaneOptions};
use crate::observe::{Kind, Op, Peer};
use crate::pubsub::{SubscriberOptions, Totals};
use crate::route::{self, Block, BlockKind, Route};
use crate::stats::Stats;

/// A client's options, checked, in the form each layer takes them.
#[derive(Debug)]
pub(crate) struct Config {
    /// The shared lane's options; dedicated lanes take [`LaneOptions::dedicated`].
    pub(crate) lane: Arc<LaneOptions>,
    pub(crate) blocking: BlockingOptions,
    pub(crate) exclusive: ExclusiveOptions,
    pub(crate) pubsub: SubscriberOptions,
    /// How often counters and gauges are published to the `metrics` recorder.
    #[cfg(feature = "metrics")]
    pub(crate) metrics_interval: Duration,
}

impl Config {
    /// The same options for another server of a cluster: only the address differs.
    pub(crate) fn for_node(&self, host: &str, port: u16) -> Config {
        let lane = LaneOptions {
            connect: Arc::new(self.lane.connect.with_addr(host, port)),
            ..LaneOptions::clone(&self.lane)
        };
        Config {
            lane: Arc::new(lane),
            blocking: self.blocking.clone(),
            exclusive: self.exclusive.clone(),
            pubsub: self.pubsub.clone(),
            #[cfg(feature = "metrics")]
            metrics_interval: self.metrics_interval,
        }
    }
}

/// One server's machinery: its shared lane, its blocking-lane and exclusive-lane pools,
/// the connection generation they share, and their counters. A [`Client`] is a handle
/// over one `Core`; [`Exclusive`] leases and blocking calls hold the `Core` they came
/// from, never a `Client`.
///
/// [`Client`]: crate::Client
/// [`Exclusive`]: crate::Exclusive
pub(crate) struct Core {
    config: Config,
    shared: Lane,
    blocking: Arc<Blocking>,
    exclusive: Arc<Exclusives>,
    /// Message counters summed over this server's subscribers.
    pubsub: Arc<Totals>,
    /// The server as spans and metrics name it.
    peer: Peer,
    closing: AtomicBool,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("addr", &self.config.lane.connect.info.addr)
            .field("db", &self.config.lane.connect.info.db)
            .field("shared", &self.shared)
            .finish()
    }
}

impl Core {
    /// Connects the shared lane and sets up the pools (empty until used).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] outside a Tokio runtime; the shared lane's connect
    /// errors.
    pub(crate) async fn connect(config: Config) -> Result<Arc<Core>, Error> {
        // Checked first so a missing runtime is an error, not a panic in `spawn`.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::InvalidConfig,
                "redis-lanes needs a Tokio runtime; call connect() from within one",
            )
        })?;
        let generation = Arc::new(AtomicU64::new(0));
        let (shared, driver) =
            lane::open(Arc::clone(&config.lane), Arc::clone(&generation)).await?;
        // The task holds only the driver: it ends when every handle is dropped.
        runtime.spawn(driver);
        // The pools (and their reapers) exist only once connecting succeeded, so a failed
        // connect leaves no task behind.
        let exclusive = Exclusives::new(&config.exclusive, &config.lane, Arc::clone(&generation));
        let blocking = Arc::new(Blocking::new(
            &config.blocking,
            &config.lane,
            generation,
            runtime,
        ));
        let core = Arc::new(Core {
            peer: Peer::new(&config.lane.connect.info),
            config,
            shared,
            blocking,
            exclusive,
            pubsub: Arc::default(),
            closing: AtomicBool::new(false),
        });
        #[cfg(feature = "metrics")]
        {
            // Holds a `Weak`: the task never keeps the core (or its connections) alive.
            let weak = Arc::downgrade(&core);
            core.peer.metrics.spawn_publisher(
                &core.blocking.runtime,
                core.config.metrics_interval,
                move || {
                    let core = weak.upgrade()?;
                    core.peer.metrics.publish(&core.stats());
                    Some(())
                },
            );
        }
        Ok(core)
    }

    /// The server as spans and metrics name it.
    pub(crate) fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The error for a refused command, counted.
    pub(crate) fn refused(&self, refusal: route::Refusal) -> Error {
        #[cfg(feature = "metrics")]
        self.peer.metrics.refusal(refusal.label());
        refusal.error()
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The shared lane, for the services built on it (unblocks, restores).
    pub(crate) fn shared_lane(&self) -> &Lane {
        &self.shared
    }

    pub(crate) fn blocking(&self) -> &Arc<Blocking> {
        &self.blocking
    }

    pub(crate) fn exclusives(&self) -> &Arc<Exclusives> {
        &self.exclusive
    }

    pub(crate) fn pubsub_totals(&self) -> &Arc<Totals> {
        &self.pubsub
    }

    /// `Err(Closed)`, marked never sent, once `close()` was called.
    pub(crate) fn check_open(&self) -> Result<(), Error> {
        if self.closing.load(Relaxed) {
            return Err(Error::closed().not_sent());
        }
        Ok(())
    }

    /// Sends one command where its route says: the shared lane, a blocking lane, or
    /// nowhere (refused).
    pub(crate) async fn send(&self, cmd: &Cmd) -> Result<Value, Error> {
        self.check_open()?;
        match route::classify_cmd(cmd, &self.blocking.declared) {
            Route::Shared => {
                let op = Op::command(&self.peer, Kind::Shared, cmd);
                op.run(self.send_shared(cmd)).await
            }
            Route::Refused(refusal) => {
                let op = Op::command(&self.peer, Kind::Shared, cmd);
                op.run(async { Err(self.refused(refusal)) }).await
            }
            Route::Blocking(block) => {
                let op = Op::command(&self.peer, Kind::Blocking, cmd);
                // Boxed: the blocking path's state (lease, cancel guard, recovery) is
                // kilobytes, and unboxed it would size every shared-lane request's
                // future, allocated and moved per command, to match.
                op.run(Box::pin(self.blocking_call(Commands::One(cmd), block)))
                    .await
            }
        }
    }

    /// Sends `cmd` on the shared lane, once more under `retry_read_only` if it may.
    async fn send_shared(&self, cmd: &Cmd) -> Result<Value, Error> {
        match self.shared.send_unrouted(cmd).await {
            Err(err) if self.may_retry(&err) && route::is_read_only_cmd(cmd) => {
                tracing::debug!(error = %err, "retrying a read-only command");
                self.shared.send_unrouted(cmd).await
            }
            other => other,
        }
    }

    /// Whether a shared-lane failure may be retried under `retry_read_only`: the
    /// connection was reset under a written request (broken or garbled), so the retry
    /// goes to a fresh connection.
    fn may_retry(&self, err: &Error) -> bool {
        let reconnect = &self.config.lane.reconnect;
        reconnect.retry_read_only
            && reconnect.enabled
            && err.is_outcome_unknown()
            && matches!(err.kind(), ErrorKind::ConnectionLost | ErrorKind::Protocol)
    }

    /// Sends a pipeline where its route says, and returns `count` replies from reply
    /// `offset`, as `ConnectionLike::req_packed_commands` does.
    pub(crate) async fn send_pipeline(
        &self,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>, Error> {
        self.check_open()?;
        match route::classify_pipeline(pipe, &self.blocking.declared) {
            Route::Shared => {
                let op = Op::pipeline(&self.peer, Kind::Shared, pipe);
                op.run(self.send_pipeline_shared(pipe, offset, count)).await
            }
            Route::Refused(refusal) => {
                let op = Op::pipeline(&self.peer, Kind::Shared, pipe);
                op.run(async { Err(self.refused(refusal)) }).await
            }
            Route::Blocking(block) => {
                let commands = Commands::Pipe {
                    pipe,
                    offset,
                    count,
                };
                let op = Op::pipeline(&self.peer, Kind::Blocking, pipe);
                // Boxed, as in `send`.
                let reply = Box::pin(blocking::run(&self.blocking, &self.shared, commands, block));
                op.run(async { lane::pipeline_replies(pipe, offset, reply.await?) })
                    .await
            }
        }
    }

    /// Sends `pipe` on the shared lane, once more under `retry_read_only` if it may.
    async fn send_pipeline_shared(
        &self,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>, Error> {
        let shared = &self.shared;
        match shared.send_pipeline_unrouted(pipe, offset, count).await {
            Err(err) if self.may_retry(&err) && route::is_read_only_pipeline(pipe) => {
                tracing::debug!(error = %err, "retrying a read-only pipeline");
                shared.send_pipeline_unrouted(pipe, offset, count).await
            }
            other => other,
        }
    }

    /// Runs `cmd` as a blocking command (declared so by the caller) with a client-side
    /// deadline of `timeout` plus the grace period.
    pub(crate) async fn send_blocking(
        &self,
        cmd: &Cmd,
        timeout: Option<Duration>,
    ) -> Result<Value, Error> {
        self.check_open()?;
        if let Route::Refused(refusal) = route::classify_cmd(cmd, &self.blocking.declared) {
            return Err(self.refused(refusal));
        }
        let block = Block {
            timeout,
            kind: BlockKind::UserDeclared,
        };
        let op = Op::command(&self.peer, Kind::Blocking, cmd);
        op.run(self.blocking_call(Commands::One(cmd), block)).await
    }

    async fn blocking_call(&self, commands: Commands<'_>, block: Block) -> Result<Value, Error> {
        let reply = blocking::run(&self.blocking, &self.shared, commands, block).await?;
        Ok(reply.into_last())
    }

    /// Refuses new commands, cancels blocking calls (and waits for their recoveries),
    /// closes the pools, then closes the shared lane gracefully; each step bounded by
    /// `close_timeout`.
    pub(crate) async fn close(self: &Arc<Self>) {
        self.closing.store(true, Relaxed);
        // The steps run on their own task, so dropping this future (a caller's timeout)
        // does not leave the close half done.
        let core = Arc::clone(self);
        let steps = self
            .blocking
            .runtime
            .spawn(async move { core.close_steps().await });
        // An error only means the runtime is shutting down, which closes everything too.
        let _ = steps.await;
    }

    async fn close_steps(&self) {
        let blocking = &self.blocking;
        // Blocking calls in flight stop waiting and cancel on the server; their
        // recoveries (late replies, restores) need the shared lane, so they finish first.
        blocking.shutdown.cancel();
        blocking.recoveries.close();
        let limit = self.config.lane.close_timeout;
        if tokio::time::timeout(limit, blocking.recoveries.wait())
            .await
            .is_err()
        {
            tracing::warn!("close timed out waiting for cancelled blocking commands to recover");
            blocking.abandon.cancel();
        }
        blocking.pool.close();
        self.exclusive.close();
        self.shared.close().await;
    }

    /// Whether the shared lane has a connection now.
    pub(crate) fn is_connected(&self) -> bool {
        self.shared.is_connected()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closing.load(Relaxed) || self.shared.is_closed()
    }

    /// The counters of every lane and service of this server.
    pub(crate) fn stats(&self) -> Stats {
        let mut stats = self.shared.stats();
        self.blocking.fill_stats(&mut stats);
        stats.subscriber_messages = self.pubsub.received.load(Relaxed);
        stats.subscriber_dropped = self.pubsub.dropped.load(Relaxed);
        stats.health_checks += self.pubsub.health_checks.load(Relaxed);
        stats.subscriber_dead_connections = self.pubsub.deaths.add_to(&mut stats);
        self.exclusive.fill_stats(&mut stats);
        stats
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        self.peer.metrics.retire(&self.stats());
        // The last handle is gone: recoveries still running let go of the shared lane,
        // so its driver (and every task) ends now.
        self.blocking.abandon.cancel();
    }
}
