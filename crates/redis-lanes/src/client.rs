//! The public client: one shared lane today, the place where lanes are tied together.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blocking::{self, Blocking, Commands};
use crate::config::{Builder, LaneConfig};
use crate::error::{Error, ErrorKind};
use crate::lane::{self, Lane, Reply};
use crate::pool::{Pool, PoolConfig};
use crate::route::{self, Block, BlockKind, Route};
use crate::stats::Stats;

/// An async Redis client: a cheap, cloneable handle that every task can share.
///
/// Commands from all clones are auto-pipelined on one shared connection. `Client`
/// implements [`redis::aio::ConnectionLike`], so the whole `redis` command API works on
/// it: [`redis::AsyncCommands`], `redis::cmd(..).query_async`, `redis::pipe()` (also
/// `.atomic()`), [`redis::Script`].
///
/// # Examples
///
/// ```no_run
/// use redis::AsyncCommands;
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = redis_lanes::Client::connect("redis://127.0.0.1:6379").await?;
/// let mut conn = client.clone(); // ConnectionLike takes `&mut self`; clones are cheap
/// conn.set::<_, _, ()>("greeting", "hello").await?;
/// let greeting: String = conn.get("greeting").await?;
/// assert_eq!(greeting, "hello");
/// client.close().await;
/// # Ok(()) }
/// ```
///
/// # Drop behavior
///
/// Dropping the last clone closes every connection and ends every task of the client
/// at once. Use [`Client::close`] to finish in-flight commands first.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Lane,
    blocking: Arc<Blocking>,
    exclusive: Arc<crate::exclusive::Exclusives>,
    config: Arc<LaneConfig>,
    closing: AtomicBool,
    /// Message counters summed over this client's subscribers.
    pubsub: Arc<crate::pubsub::Totals>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.config.info.addr)
            .field("db", &self.inner.config.info.db)
            .field("shared", &self.inner.shared)
            .finish()
    }
}

impl Client {
    /// Connects with default options.
    ///
    /// # Errors
    ///
    /// As for [`Builder::connect`].
    pub async fn connect(url: &str) -> Result<Client, Error> {
        Self::builder(url).connect().await
    }

    /// Starts a [`Builder`] for options beyond the URL.
    pub fn builder(url: &str) -> Builder {
        Builder::new(url)
    }

    pub(crate) async fn from_config(config: Arc<LaneConfig>) -> Result<Client, Error> {
        // Checked first so a missing runtime is an error, not a panic in `spawn`.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::InvalidConfig,
                "redis-lanes needs a Tokio runtime; call connect() from within one",
            )
        })?;
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        crate::exclusive::Exclusives::check(&config)?;
        let (shared, driver) = lane::open(Arc::clone(&config), Arc::clone(&generation)).await?;
        // The task holds only the driver: it ends when every handle is dropped.
        runtime.spawn(driver);
        // The pools (and their reapers) exist only once connecting succeeded, so a failed
        // connect leaves no task behind.
        let exclusive = crate::exclusive::Exclusives::new(&config, Arc::clone(&generation))?;
        let options = &config.blocking;
        let pool = Pool::new(
            &config,
            PoolConfig {
                what: "blocking lane",
                limit_name: "max_blocking_lanes",
                max_lanes: options.max_lanes,
                idle_timeout: options.idle_timeout,
                acquire_timeout: options.acquire_timeout,
            },
            generation,
        );
        let blocking = Arc::new(Blocking {
            pool,
            grace: options.grace,
            declared: options.declared.clone(),
            hook: options.hook.clone(),
            counters: blocking::Counters::default(),
            shutdown: CancellationToken::new(),
            abandon: CancellationToken::new(),
            recoveries: TaskTracker::new(),
            runtime,
        });
        Ok(Client {
            inner: Arc::new(Inner {
                shared,
                blocking,
                exclusive,
                config,
                closing: AtomicBool::new(false),
                pubsub: Arc::default(),
            }),
        })
    }

    /// The shared lane, for features built on the client (exclusive lanes, pub/sub).
    pub(crate) fn shared_lane(&self) -> &Lane {
        &self.inner.shared
    }

    /// The validated options the client was built with.
    pub(crate) fn lane_config(&self) -> &Arc<LaneConfig> {
        &self.inner.config
    }

    /// Counters every subscriber of this client adds to.
    pub(crate) fn pubsub_totals(&self) -> &Arc<crate::pubsub::Totals> {
        &self.inner.pubsub
    }

    /// The blocking side: its pool, counters, shutdown token and recovery tracker.
    pub(crate) fn blocking_state(&self) -> &Arc<Blocking> {
        &self.inner.blocking
    }

    /// The exclusive side: its pool and counters.
    pub(crate) fn exclusive_state(&self) -> &Arc<crate::exclusive::Exclusives> {
        &self.inner.exclusive
    }

    pub(crate) fn check_open(&self) -> Result<(), Error> {
        if self.inner.closing.load(Relaxed) {
            return Err(Error::closed().not_sent());
        }
        Ok(())
    }

    async fn route_cmd(&self, cmd: &Cmd) -> Result<Value, Error> {
        self.check_open()?;
        match route::classify_cmd(cmd, &self.inner.blocking.declared) {
            Route::Shared => {
                let first = self.inner.shared.send_unrouted(cmd).await;
                match first {
                    Err(err) if self.may_retry(&err) && route::is_read_only_cmd(cmd) => {
                        tracing::debug!(error = %err, "retrying a read-only command");
                        self.inner.shared.send_unrouted(cmd).await
                    }
                    other => other,
                }
            }
            Route::Refused(why) => Err(Error::new(ErrorKind::Refused, why)),
            Route::Blocking(block) => self.blocking(Commands::One(cmd), block).await,
        }
    }

    /// Whether a shared-lane failure may be retried under `retry_read_only`: the
    /// connection was reset under a written request (broken or garbled), so the retry
    /// goes to a fresh connection.
    fn may_retry(&self, err: &Error) -> bool {
        self.inner.config.reconnect.retry_read_only
            && self.inner.config.reconnect.enabled
            && err.is_outcome_unknown()
            && matches!(err.kind(), ErrorKind::ConnectionLost | ErrorKind::Protocol)
    }

    async fn route_pipeline(
        &self,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>, Error> {
        self.check_open()?;
        match route::classify_pipeline(pipe, &self.inner.blocking.declared) {
            Route::Shared => {
                let shared = &self.inner.shared;
                let first = shared.send_pipeline_unrouted(pipe, offset, count).await;
                match first {
                    Err(err) if self.may_retry(&err) && route::is_read_only_pipeline(pipe) => {
                        tracing::debug!(error = %err, "retrying a read-only pipeline");
                        shared.send_pipeline_unrouted(pipe, offset, count).await
                    }
                    other => other,
                }
            }
            Route::Refused(why) => Err(Error::new(ErrorKind::Refused, why)),
            Route::Blocking(block) => {
                let reply = blocking::run(
                    &self.inner.blocking,
                    &self.inner.shared,
                    Commands::Pipe {
                        pipe,
                        offset,
                        count,
                    },
                    block,
                )
                .await?;
                lane::pipeline_replies(pipe, offset, reply)
            }
        }
    }

    async fn blocking(&self, commands: Commands<'_>, block: Block) -> Result<Value, Error> {
        let reply =
            blocking::run(&self.inner.blocking, &self.inner.shared, commands, block).await?;
        Ok(match reply {
            Reply::One(value) => value,
            Reply::Many(mut values) => values.pop().unwrap_or(Value::Nil),
        })
    }

    /// Runs `cmd` as a blocking command: on a dedicated blocking lane, cancelled on the
    /// server if the future is dropped, with a client-side deadline of `timeout` plus the
    /// grace period (`None`: no deadline). For commands redis-lanes does not know to be
    /// blocking, e.g. a module's; to declare one for every call, use
    /// [`Builder::blocking_command`].
    ///
    /// # Errors
    ///
    /// As for [`Client::send`], plus [`ErrorKind::PoolTimeout`] when every blocking lane
    /// stays busy, and [`ErrorKind::Timeout`] when the deadline passes.
    ///
    /// # Cancel safety
    ///
    /// See the crate documentation's "Cancel safety": a written command is unblocked on
    /// the server with `CLIENT UNBLOCK`, ordered before anything this client sends next.
    pub async fn send_blocking(
        &self,
        cmd: &Cmd,
        timeout: Option<Duration>,
    ) -> Result<Value, Error> {
        self.check_open()?;
        if let Route::Refused(why) = route::classify_cmd(cmd, &self.inner.blocking.declared) {
            return Err(Error::new(ErrorKind::Refused, why));
        }
        let block = Block {
            timeout,
            kind: BlockKind::UserDeclared,
        };
        self.blocking(Commands::One(cmd), block).await
    }

    /// Sends one command and returns its reply; a server error reply is returned as
    /// `Ok(Value::ServerError(..))`. Most code uses the `redis` command API instead.
    ///
    /// # Errors
    ///
    /// As for [`Lane::send`].
    ///
    /// # Cancel safety
    ///
    /// A command whose future is dropped before it is written is never written.
    pub async fn send(&self, cmd: &Cmd) -> Result<Value, Error> {
        self.route_cmd(cmd).await
    }

    /// Closes the client gracefully: new commands are refused with
    /// [`ErrorKind::Closed`], commands already sent are answered, then every
    /// connection is closed. Bounded by [`Builder::close_timeout`]; what is still
    /// unanswered then gets [`ErrorKind::Closed`]. Idempotent.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not undo the close.
    pub async fn close(&self) {
        self.inner.closing.store(true, Relaxed);
        // The steps run on their own task, so dropping this future (a caller's timeout)
        // does not leave the close half done; each step is bounded by `close_timeout`.
        let inner = Arc::clone(&self.inner);
        let steps = self
            .inner
            .blocking
            .runtime
            .spawn(async move { close_steps(&inner).await });
        // An error only means the runtime is shutting down, which closes everything too.
        let _ = steps.await;
    }

    /// `true` once [`Client::close`] was called or the shared connection ended.
    pub fn is_closed(&self) -> bool {
        self.inner.closing.load(Relaxed) || self.inner.shared.is_closed()
    }

    /// A snapshot of the client's counters.
    pub fn stats(&self) -> Stats {
        let mut stats = self.inner.shared.stats();
        let blocking = &self.inner.blocking;
        let c = &blocking.counters;
        stats.blocking_busy = blocking.pool.busy() as u64;
        stats.blocking_idle = blocking.pool.idle_count() as u64;
        stats.blocking_waiters = blocking.pool.waiters() as u64;
        stats.blocking_cancels = c.cancels.load(Relaxed);
        stats.orphans_restored = c.restored.load(Relaxed);
        stats.orphans_reported = c.reported.load(Relaxed);
        stats.orphans_unrecoverable = c.unrecoverable.load(Relaxed);
        stats.unblock_fallbacks = c.fallbacks.load(Relaxed);
        stats.subscriber_messages = self.inner.pubsub.received.load(Relaxed);
        stats.subscriber_dropped = self.inner.pubsub.dropped.load(Relaxed);
        self.inner.exclusive.fill_stats(&mut stats);
        stats
    }

    /// The server's `CLIENT ID` of the shared connection.
    pub fn client_id(&self) -> Option<i64> {
        self.inner.shared.client_id()
    }
}

async fn close_steps(inner: &Inner) {
    let blocking = &inner.blocking;
    // Blocking calls in flight stop waiting and cancel on the server; their recoveries
    // (late replies, restores) need the shared lane, so they finish first.
    blocking.shutdown.cancel();
    blocking.recoveries.close();
    if tokio::time::timeout(inner.config.close_timeout, blocking.recoveries.wait())
        .await
        .is_err()
    {
        tracing::warn!("close timed out waiting for cancelled blocking commands to recover");
        blocking.abandon.cancel();
    }
    blocking.pool.close();
    inner.exclusive.close();
    inner.shared.close().await;
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: recoveries still running let go of the shared lane,
        // so its driver (and every task) ends now.
        self.blocking.abandon.cancel();
    }
}

impl ConnectionLike for Client {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move { self.route_cmd(cmd).await.map_err(Into::into) })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.route_pipeline(pipeline, offset, count)
                .await
                .map_err(Into::into)
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.config.info.db
    }
}
