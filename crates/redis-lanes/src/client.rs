//! Layer 5: [`Client`], the public handle: a cheap clone of one server's [`Core`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, ToRedisArgs, Value};

use crate::builder::Builder;
use crate::error::Error;
use crate::exclusive::{self, Exclusive};
use crate::node::{Config, Core};
use crate::pubsub::Subscriber;
use crate::stats::Stats;
#[cfg(doc)] // For the documentation's links.
use crate::{ErrorKind, Lane};

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
    core: Arc<Core>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("core", &self.core).finish()
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

    pub(crate) async fn from_config(config: Config) -> Result<Client, Error> {
        Ok(Client {
            core: Core::connect(config).await?,
        })
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
        self.core.send(cmd).await
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
        self.core.send_blocking(cmd, timeout).await
    }

    /// Leases a dedicated connection from the pool of exclusive lanes (up to
    /// [`Builder::max_exclusive_lanes`](crate::Builder::max_exclusive_lanes), opened on
    /// demand), for commands that keep per-connection state. See [`Exclusive`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PoolTimeout`] when every exclusive lane stays on loan for
    /// [`Builder::exclusive_acquire_timeout`](crate::Builder::exclusive_acquire_timeout)
    /// (the message names `max_exclusive_lanes`); [`ErrorKind::Closed`] after
    /// [`Client::close`]; connect and handshake errors when a new connection is opened.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits for a free lane gives up the place in line. A
    /// connection it had already taken is closed, never handed out half set up.
    pub async fn exclusive(&self) -> Result<Exclusive, Error> {
        Exclusive::lease(&self.core).await
    }

    /// Runs an optimistic transaction on an exclusive lane, the way `redis::transaction`
    /// does on a connection of its own: `WATCH keys`, then `body`, again and again until
    /// it returns `Ok(Some(value))`.
    ///
    /// `body` gets the leased connection, for reading the watched keys, and an atomic
    /// pipeline (`pipe().atomic()`, fresh for every attempt) for the writes. Run the
    /// pipeline with `pipe.query_async(conn)`: it answers `Ok(None)` when `EXEC` aborted
    /// because a watched key changed, and returning that `None` runs the body again.
    /// Retries are bounded by
    /// [`Builder::transaction_max_retries`](crate::Builder::transaction_max_retries) and
    /// counted in [`Stats::transaction_retries`](crate::Stats::transaction_retries).
    ///
    /// The error type is the body's: anything that can hold a redis-lanes [`Error`] and
    /// a [`redis::RedisError`] (`redis::RedisError` itself, `anyhow::Error`, `Box<dyn
    /// Error>`...). With `redis::RedisError`, [`Error::from_redis`] finds the kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use redis::AsyncCommands;
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = redis_lanes_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// let client = redis_lanes::Client::connect(&url).await?;
    /// // Doubles a counter without losing a concurrent write.
    /// let doubled: i64 = client
    ///     .transaction(&["counter"], async |conn, pipe| {
    ///         let now: i64 = conn.get::<_, Option<i64>>("counter").await?.unwrap_or(1);
    ///         pipe.set("counter", now * 2).ignore().get("counter");
    ///         // `None` (EXEC aborted): the body runs again.
    ///         let done: Option<(i64,)> = pipe.query_async(conn).await?;
    ///         Ok::<_, redis::RedisError>(done.map(|(value,)| value))
    ///     })
    ///     .await?;
    /// assert_eq!(doubled, 2);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TransactionConflict`] when `body` asked for another attempt more
    /// than `transaction_max_retries` times; whatever `body` returns; the errors of
    /// [`Client::exclusive`] and [`Exclusive::send`]; a server error reply to `WATCH`
    /// as a [`redis::RedisError`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the lease as any [`Exclusive`]: what was sent is
    /// answered, an open `MULTI` is discarded with everything queued in it, the watches
    /// are cleared, and the connection is reset before it is reused.
    pub async fn transaction<K, T, E, F>(&self, keys: &[K], body: F) -> Result<T, E>
    where
        K: ToRedisArgs,
        F: AsyncFnMut(&mut Exclusive, &mut Pipeline) -> Result<Option<T>, E>,
        E: From<Error> + From<RedisError>,
    {
        let mut conn = self.exclusive().await?;
        // The lease's reset clears the watches when it is dropped; no UNWATCH needed.
        exclusive::run_transaction(&mut conn, keys, body, false).await
    }

    /// Opens a [`Subscriber`]: a dedicated pub/sub connection with the client's URL,
    /// credentials, database, name and protocol, bounded by the connect timeout.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// use redis_lanes::{Client, OverflowPolicy};
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = Client::builder("redis://127.0.0.1:6379")
    ///     .subscriber_buffer(1024)
    ///     .subscriber_overflow(OverflowPolicy::DropOldest)
    ///     .connect()
    ///     .await?;
    /// let mut subscriber = client.subscriber().await?;
    /// subscriber.subscribe("news").await?;
    /// let mut publisher = client.clone();
    /// redis::cmd("PUBLISH").arg("news").arg("hello").query_async::<i64>(&mut publisher).await?;
    /// if let Some(message) = subscriber.next().await {
    ///     assert_eq!(message?.payload(), b"hello");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Closed`] after [`Client::close`]; [`ErrorKind::InvalidConfig`] for a
    /// `subscriber_buffer` of 0; otherwise as for [`Client::connect`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes closes the connection being opened.
    ///
    /// [`ErrorKind::Closed`]: crate::ErrorKind::Closed
    /// [`ErrorKind::InvalidConfig`]: crate::ErrorKind::InvalidConfig
    pub async fn subscriber(&self) -> Result<Subscriber, Error> {
        self.core.check_open()?;
        let config = self.core.config();
        Subscriber::open(
            Arc::clone(&config.lane),
            &config.pubsub,
            Arc::clone(self.core.pubsub_totals()),
        )
        .await
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
        self.core.close().await;
    }

    /// `true` once [`Client::close`] was called or the shared connection ended.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// A snapshot of the client's counters.
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// The server's `CLIENT ID` of the shared connection.
    pub fn client_id(&self) -> Option<i64> {
        self.core.shared_lane().client_id()
    }
}

impl ConnectionLike for Client {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move { self.core.send(cmd).await.map_err(Into::into) })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.core
                .send_pipeline(pipeline, offset, count)
                .await
                .map_err(Into::into)
        })
    }

    fn get_db(&self) -> i64 {
        self.core.config().lane.connect.info.db
    }
}
