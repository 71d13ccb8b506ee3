//! [`Exclusive`]: a dedicated connection on loan, and how commands travel on it.

use std::fmt;
use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::oneshot;

use super::track::Track;
use super::{blocking, route};
use crate::blocking::Commands;
use crate::error::{Error, ErrorKind};
use crate::lane::Lane;
use crate::node::Core;
use crate::observe::{Kind, Op};
use crate::pool::Lease;
#[cfg(doc)] // For the documentation's links.
use crate::Client;

/// A dedicated connection leased from the client's pool of exclusive lanes, for
/// commands that keep per-connection state: `WATCH`, `MULTI`/`EXEC`/`DISCARD`, `SELECT`,
/// `CLIENT SETNAME`. Get one with [`Client::exclusive`]; for optimistic transactions,
/// [`Client::transaction`] does the leasing for you.
///
/// It implements [`redis::aio::ConnectionLike`], so the whole `redis` command API works on
/// it. Commands run one caller's way: nothing else shares the connection while the lease
/// lasts. Blocking commands (`BLPOP`, `XREAD ... BLOCK`, ...) block on the lease itself.
/// Still refused, with [`ErrorKind::Refused`]: the `SUBSCRIBE` family and `MONITOR` (the
/// connection would never give replies back), `CLIENT REPLY`, and `RESET`, `HELLO`,
/// `AUTH` and `QUIT`, which would change what the connection is; redis-lanes sets those
/// up itself and restores them when the lease ends.
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
/// let mut conn = client.exclusive().await?;
/// redis::cmd("SELECT").arg(3).exec_async(&mut conn).await?;
/// conn.set::<_, _, ()>("in-db-3", 1).await?;
/// redis::cmd("MULTI").exec_async(&mut conn).await?;
/// redis::cmd("INCR").arg("in-db-3").exec_async(&mut conn).await?; // QUEUED
/// let (n,): (i64,) = redis::cmd("EXEC").query_async(&mut conn).await?;
/// assert_eq!(n, 2);
/// drop(conn); // reset in the background, then returned to the pool
///
/// // Every lease starts on the configured database (here 0), whichever lane it gets.
/// let mut next = client.exclusive().await?;
/// assert!(!next.exists::<_, bool>("in-db-3").await?);
/// # Ok(()) }
/// ```
///
/// # Cancel safety
///
/// As on the shared lane: a command whose future is dropped before it is written is
/// never written; one dropped after it is written runs, and its reply is read and
/// discarded, so later replies never shift. A dropped **blocking** command is cancelled
/// on the server (`CLIENT UNBLOCK`, queued on the shared lane before the drop returns),
/// its late reply is read before this lease sends anything else, and data it raced is
/// put back, as for [`Client`]'s blocking commands.
///
/// # Drop behavior
///
/// Dropping the lease queues its reset behind whatever it still has in flight: `RESET`
/// followed by the connection's own setup (`AUTH`/`HELLO`, `SELECT`, `CLIENT SETNAME`),
/// or on servers older than Redis 6.2 `DISCARD` (if a `MULTI` may be open), `UNWATCH`
/// and the configured database and name. A background task, which [`Client::close`] waits
/// for, reads every outstanding reply and checks the reset's; only then does the
/// connection go back to the pool. If anything fails, or the replies take longer than
/// [`Builder::close_timeout`](crate::Builder::close_timeout), the connection is closed
/// instead. A lease keeps its client's connections open until it is dropped. After
/// [`Client::close`] a lease refuses new commands with [`ErrorKind::Closed`] and its
/// connection is closed when it is dropped.
pub struct Exclusive {
    pub(super) core: Arc<Core>,
    pub(super) lane: Lane,
    /// `None` only once `drop` has handed the lease to its reset.
    pub(super) lease: Option<Lease>,
    pub(super) track: Track,
    /// Completes once a cancelled blocking command's late reply was read and every
    /// `CLIENT UNBLOCK` sent for it was answered. Until then nothing else is sent, so a
    /// repeated unblock can never hit a later command of this lease.
    pub(super) recovering: Option<oneshot::Receiver<()>>,
}

impl fmt::Debug for Exclusive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exclusive")
            .field("client_id", &self.lane.client_id())
            .field("db", &self.track.db)
            .field("maybe_in_multi", &self.track.maybe_in_multi)
            .field("closed", &self.lane.is_closed())
            .finish()
    }
}

impl Exclusive {
    /// Leases a lane from `core`'s pool of exclusive lanes; see [`Client::exclusive`].
    pub(crate) async fn lease(core: &Arc<Core>) -> Result<Exclusive, Error> {
        core.check_open()?;
        let state = core.exclusives();
        let lease = state.pool.acquire().await?;
        let Some(lane) = lease.lane().cloned() else {
            return Err(Error::closed().not_sent());
        };
        if let Err(e) = core.check_open() {
            // `close()` began while this call waited; the lane is untouched.
            lease.release();
            return Err(e);
        }
        if let Err(e) = state.has_reset(&lane).await {
            lease.discard();
            return Err(e);
        }
        Ok(Exclusive {
            track: Track::new(lane.db()),
            core: Arc::clone(core),
            lane,
            lease: Some(lease),
            recovering: None,
        })
    }

    /// Sends one command and returns its reply; a server error reply is returned as
    /// `Ok(Value::ServerError(..))`. Most code uses the `redis` command API instead.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Refused`] for a command an exclusive lane does not take (see
    /// [`Exclusive`]), [`ErrorKind::Closed`] after [`Client::close`],
    /// [`ErrorKind::ConnectionLost`] when the connection fails, [`ErrorKind::Timeout`]
    /// when the response timeout (or a blocking command's own timeout plus
    /// [`Builder::blocking_grace`](crate::Builder::blocking_grace)) runs out.
    ///
    /// # Cancel safety
    ///
    /// See [`Exclusive`]: a dropped command is never half-sent, and a dropped blocking
    /// command is cancelled on the server.
    pub async fn send(&mut self, cmd: &Cmd) -> Result<Value, Error> {
        let core = Arc::clone(&self.core);
        let op = Op::command(core.peer(), Kind::Exclusive, cmd);
        op.run(self.send_routed(cmd)).await
    }

    async fn send_routed(&mut self, cmd: &Cmd) -> Result<Value, Error> {
        self.core.check_open()?;
        let routed = route::classify_cmd(cmd, self.declared(), self.track.maybe_in_multi)?;
        let changes = Option::as_slice(&routed.change);
        self.settle().await;
        self.track.before(changes);
        let reply = match routed.block {
            Some(block) => blocking::run(self, Commands::One(cmd), block)
                .await?
                .into_last(),
            None => {
                let lane = self.lane.clone();
                self.in_line(lane.send_unrouted(cmd)).await?
            }
        };
        let ok = !matches!(reply, Value::ServerError(_));
        self.track.after(changes, false, ok);
        Ok(reply)
    }

    /// Sends a pipeline and returns `count` replies from reply `offset`, as
    /// [`ConnectionLike::req_packed_commands`] does. Prefer `pipe.query_async(&mut conn)`.
    async fn send_pipeline(
        &mut self,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>, Error> {
        let core = Arc::clone(&self.core);
        let op = Op::pipeline(core.peer(), Kind::Exclusive, pipe);
        op.run(self.send_pipeline_routed(pipe, offset, count)).await
    }

    async fn send_pipeline_routed(
        &mut self,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>, Error> {
        self.core.check_open()?;
        let (block, changes) =
            route::classify_pipeline(pipe, self.declared(), self.track.maybe_in_multi)?;
        self.settle().await;
        self.track.before(&changes);
        let replies = match block {
            Some(block) => {
                let commands = Commands::Pipe {
                    pipe,
                    offset,
                    count,
                };
                let reply = blocking::run(self, commands, block).await?;
                crate::lane::pipeline_replies(pipe, offset, reply)?
            }
            None => {
                let lane = self.lane.clone();
                self.in_line(lane.send_pipeline_unrouted(pipe, offset, count))
                    .await?
            }
        };
        self.track.after(&changes, pipe.is_transaction(), true);
        Ok(replies)
    }

    /// The server's `CLIENT ID` of the leased connection: the same for every lease of
    /// the same connection.
    pub fn client_id(&self) -> Option<i64> {
        self.lane.client_id()
    }

    fn declared(&self) -> &crate::route::BlockingCommands {
        &self.core.blocking().declared
    }

    /// Waits until a cancelled blocking command's late reply has been read (see
    /// `recovering`). Cancel-safe: the receiver stays until it completes.
    async fn settle(&mut self) {
        if let Some(rx) = self.recovering.as_mut() {
            // Either outcome means the recovery is done with this lane.
            let _ = rx.await;
            self.recovering = None;
        }
    }

    /// Runs an ordinary request under the client's response timeout. Dedicated lanes
    /// run without one of their own (a blocking command must not be cut off by it), so
    /// it is applied here, to everything that does not block. An exclusive lane never
    /// probes its peer itself (the lease may be inside `MULTI`), so while the request
    /// waits it is watched from the shared lane, as a busy blocking lane is.
    async fn in_line<T>(
        &self,
        request: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let blocking = self.core.blocking();
        let watch = crate::blocking::watch(
            self.core.shared_lane(),
            &self.lane,
            blocking.health,
            &blocking.watches,
        );
        let request = async {
            tokio::select! {
                biased;
                answer = request => answer,
                // Never completes: a lane declared dead fails the request.
                () = watch => Err(Error::closed()),
            }
        };
        match self.core.config().lane.response_timeout {
            None => request.await,
            Some(limit) => match tokio::time::timeout(limit, request).await {
                Ok(answer) => answer,
                // The request stays in flight; its late reply is read and discarded.
                Err(_) => Err(Error::new(
                    ErrorKind::Timeout,
                    format!("no reply within {limit:?}"),
                )),
            },
        }
    }
}

impl ConnectionLike for Exclusive {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move { self.send(cmd).await.map_err(Into::into) })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.send_pipeline(pipeline, offset, count)
                .await
                .map_err(Into::into)
        })
    }

    /// The database of the last `SELECT` answered on this lease; the configured one
    /// before any.
    fn get_db(&self) -> i64 {
        self.track.db
    }
}
