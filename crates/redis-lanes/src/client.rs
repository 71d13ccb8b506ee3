//! The public client: one shared lane today, the place where lanes are tied together.

use std::fmt;
use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::config::{Builder, LaneConfig};
use crate::error::{Error, ErrorKind};
use crate::lane::{self, Lane};
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
    config: Arc<LaneConfig>,
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
        let (shared, driver) = lane::open(Arc::clone(&config)).await?;
        // The task holds only the driver: it ends when every handle is dropped.
        runtime.spawn(driver);
        Ok(Client {
            inner: Arc::new(Inner { shared, config }),
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
        self.inner.shared.send(cmd).await
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
        self.inner.shared.close().await;
    }

    /// `true` once [`Client::close`] was called or the shared connection ended.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.is_closed()
    }

    /// A snapshot of the client's counters.
    pub fn stats(&self) -> Stats {
        self.inner.shared.stats()
    }

    /// The server's `CLIENT ID` of the shared connection.
    pub fn client_id(&self) -> Option<i64> {
        self.inner.shared.client_id()
    }
}

impl ConnectionLike for Client {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move { self.inner.shared.send(cmd).await.map_err(Into::into) })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.inner
                .shared
                .send_pipeline(pipeline, offset, count)
                .await
                .map_err(Into::into)
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.config.info.db
    }
}
