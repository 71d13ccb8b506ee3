//! The handle side of a lane: cheap to clone, sends requests to the driver.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::{mpsc, oneshot};

use super::request::{Commit, Message, Reply, Request};
use super::shared::LaneShared;
use crate::error::{Error, ErrorKind};
use crate::route::{self, BlockingCommands, Route};
use crate::stats::Stats;

/// A handle to one Redis connection (a *lane*) driven by its [`LaneDriver`].
///
/// Cloning is cheap; all clones share the connection, and requests from all of them
/// are auto-pipelined. Commands that would corrupt a shared connection (`WATCH`,
/// `SELECT`, `SUBSCRIBE`, ...) are refused with [`ErrorKind::Refused`].
///
/// Most users want [`Client`](crate::Client), which owns its lanes and spawns their
/// drivers. A bare `Lane` comes from [`Builder::pair`](crate::Builder::pair), for users
/// who own the driver task themselves.
///
/// # Drop behavior
///
/// When the last handle is dropped, the driver closes the socket and completes.
///
/// [`LaneDriver`]: crate::LaneDriver
#[derive(Clone)]
pub struct Lane {
    tx: mpsc::UnboundedSender<Message>,
    shared: Arc<LaneShared>,
}

impl fmt::Debug for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lane")
            .field("client_id", &self.shared.client_id())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Lane {
    pub(crate) fn new(tx: mpsc::UnboundedSender<Message>, shared: Arc<LaneShared>) -> Self {
        Self { tx, shared }
    }

    /// Sends one command and returns its reply. A server error reply (`-ERR ...`) is
    /// returned as `Ok(Value::ServerError(..))`, as the `redis` crate expects.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Refused`] for a command that would corrupt the shared connection,
    /// [`ErrorKind::Closed`] after `close()`, [`ErrorKind::ConnectionLost`] or
    /// [`ErrorKind::Protocol`] when the connection fails, [`ErrorKind::Timeout`] when a
    /// response timeout is set and runs out.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the command is written means it is never written.
    /// After it is written, the server runs it and its reply is read and discarded.
    pub async fn send(&self, cmd: &Cmd) -> Result<Value, Error> {
        // A bare lane has no blocking lanes: blocking commands run here, in line.
        if let Route::Refused(why) = route::classify_cmd(cmd, &BlockingCommands::new()) {
            return Err(Error::new(ErrorKind::Refused, why));
        }
        self.send_unrouted(cmd).await
    }

    /// Sends without the routing check: the caller routed it already.
    pub(crate) async fn send_unrouted(&self, cmd: &Cmd) -> Result<Value, Error> {
        let frames = usize::from(!cmd.is_no_response());
        match self.request(cmd.get_packed_command(), frames, 0).await? {
            Reply::One(value) => Ok(value),
            Reply::Many(mut values) => Ok(values.pop().unwrap_or(Value::Nil)),
        }
    }

    /// Sends a pipeline and returns `count` replies starting at reply `offset`, as
    /// [`ConnectionLike::req_packed_commands`] does. Prefer `pipe.query_async(&mut lane)`.
    ///
    /// # Errors
    ///
    /// As for [`Lane::send`].
    ///
    /// # Cancel safety
    ///
    /// As for [`Lane::send`]: the pipeline is written whole or not at all.
    pub async fn send_pipeline(
        &self,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>, Error> {
        if let Route::Refused(why) = route::classify_pipeline(pipe, &BlockingCommands::new()) {
            return Err(Error::new(ErrorKind::Refused, why));
        }
        self.send_pipeline_unrouted(pipe, offset, count).await
    }

    /// Sends a pipeline without the routing check: the caller routed it already.
    pub(crate) async fn send_pipeline_unrouted(
        &self,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>, Error> {
        let frames = offset.saturating_add(count);
        match self
            .request(pipe.get_packed_pipeline(), frames, offset)
            .await?
        {
            Reply::Many(values) => Ok(values),
            Reply::One(value) => Ok(vec![value]),
        }
    }

    /// Queues packed bytes and waits for their replies. No routing check: callers
    /// inside the crate decide where a request may go.
    pub(crate) async fn request(
        &self,
        bytes: Vec<u8>,
        frames: usize,
        keep_from: usize,
    ) -> Result<Reply, Error> {
        match self.shared.response_timeout {
            None => {
                let rx = self.enqueue(bytes, frames, keep_from).await?;
                self.await_reply(rx).await
            }
            // Boxed so the timer's state does not enlarge every request's future when
            // no timeout is configured (the default).
            Some(limit) => Box::pin(self.request_within(bytes, frames, keep_from, limit)).await,
        }
    }

    /// `request` bounded by the response timeout, which also covers waiting for an
    /// in-flight slot: on a stalled server the slots stay taken by requests that timed
    /// out, and later callers must not wait for them without bound.
    async fn request_within(
        &self,
        bytes: Vec<u8>,
        frames: usize,
        keep_from: usize,
        limit: std::time::Duration,
    ) -> Result<Reply, Error> {
        let deadline = tokio::time::Instant::now() + limit;
        let timed_out = |not_sent: bool| {
            self.shared.counters.timeouts.fetch_add(1, Relaxed);
            let err = Error::new(ErrorKind::Timeout, format!("no reply within {limit:?}"));
            if not_sent {
                err.not_sent()
            } else {
                err
            }
        };
        let rx =
            match tokio::time::timeout_at(deadline, self.enqueue(bytes, frames, keep_from)).await {
                Ok(rx) => rx?,
                Err(_) => return Err(timed_out(true)),
            };
        match tokio::time::timeout_at(deadline, self.await_reply(rx)).await {
            Ok(answer) => answer,
            Err(_) => Err(timed_out(false)),
        }
    }

    /// Takes an in-flight slot (waiting for room: that is the backpressure) and queues
    /// the request. Returns where its answer will arrive.
    async fn enqueue(
        &self,
        bytes: Vec<u8>,
        frames: usize,
        keep_from: usize,
    ) -> Result<oneshot::Receiver<Result<Reply, Error>>, Error> {
        if self.shared.is_closing() {
            return Err(Error::closed().not_sent());
        }
        let permit = self
            .shared
            .limit
            .acquire()
            .await
            .map_err(|_| self.shared.terminal_error().not_sent())?;
        let (reply, rx) = oneshot::channel();
        let req = Request {
            bytes,
            frames,
            keep_from,
            reply: Some(reply),
            commit: None,
            permit: Some(permit),
            generation: None,
        };
        if self.tx.send(Message::Request(req)).is_err() {
            return Err(self.shared.terminal_error().not_sent());
        }
        Ok(rx)
    }

    /// Queues a request at once, without an in-flight slot: for the control path (a
    /// `Drop` cannot wait, and a control message must not queue behind the bound) and for
    /// dedicated lanes that carry one request at a time.
    pub(crate) fn submit(
        &self,
        bytes: Vec<u8>,
        frames: usize,
        keep_from: usize,
        commit: Option<Arc<Commit>>,
    ) -> Result<oneshot::Receiver<Result<Reply, Error>>, Error> {
        self.submit_on(bytes, frames, keep_from, commit, None)
    }

    fn submit_on(
        &self,
        bytes: Vec<u8>,
        frames: usize,
        keep_from: usize,
        commit: Option<Arc<Commit>>,
        generation: Option<u64>,
    ) -> Result<oneshot::Receiver<Result<Reply, Error>>, Error> {
        if self.shared.is_closing() {
            return Err(Error::closed().not_sent());
        }
        let (reply, rx) = oneshot::channel();
        let req = Request {
            bytes,
            frames,
            keep_from,
            reply: Some(reply),
            commit,
            permit: None,
            generation,
        };
        self.tx
            .send(Message::Request(req))
            .map_err(|_| self.shared.terminal_error().not_sent())?;
        Ok(rx)
    }

    /// Queues `CLIENT UNBLOCK <target's id>` on this lane through the control path.
    /// It is written only on the connection generation `target` was opened under: after
    /// a reconnect the id may name another client, so the unblock fails instead and the
    /// caller falls back to closing `target`. `None` when `target`'s id is unknown.
    pub(crate) fn unblock(
        &self,
        target: &Lane,
    ) -> Option<Result<oneshot::Receiver<Result<Reply, Error>>, Error>> {
        let id = target.client_id()?;
        let mut cmd = redis::cmd("CLIENT");
        cmd.arg("UNBLOCK").arg(id);
        Some(self.submit_on(
            cmd.get_packed_command(),
            1,
            0,
            None,
            Some(target.generation()),
        ))
    }

    /// Which connection generation the lane is on (see `LaneShared::generation`).
    pub(crate) fn generation(&self) -> u64 {
        self.shared.generation()
    }

    /// The error callers get once the lane has ended.
    pub(crate) fn terminal_error(&self) -> Error {
        self.shared.terminal_error()
    }

    /// Waits for the answer to a request queued with [`Lane::submit`].
    pub(crate) async fn await_reply(
        &self,
        rx: oneshot::Receiver<Result<Reply, Error>>,
    ) -> Result<Reply, Error> {
        // A dropped reply sender means the driver ended without answering.
        rx.await
            .unwrap_or_else(|_| Err(self.shared.terminal_error()))
    }

    /// The server's `CLIENT ID` for this connection, if the handshake could learn it.
    ///
    /// A lane that reconnected has a new id.
    pub fn client_id(&self) -> Option<i64> {
        self.shared.client_id()
    }

    /// A snapshot of this lane's counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// `true` once `close()` was called or the connection ended.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closing() || self.shared.has_ended()
    }

    /// Closes the lane gracefully: refuses new requests, lets everything already queued
    /// be written and answered, then closes the socket. Bounded by the builder's
    /// `close_timeout`; requests still unanswered then get [`ErrorKind::Closed`].
    ///
    /// Idempotent; every clone sees the lane closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not stop the close: the lane keeps refusing new
    /// requests and its driver ends after the in-flight ones are answered.
    pub async fn close(&self) {
        self.shared.start_closing();
        let (done, mut rx) = oneshot::channel();
        if self.tx.send(Message::Close(done)).is_err() {
            return; // The driver has already ended.
        }
        if tokio::time::timeout(self.shared.close_timeout, &mut rx)
            .await
            .is_err()
        {
            tracing::warn!(
                client_id = ?self.shared.client_id(),
                "close timed out; cutting off requests still in flight"
            );
            self.shared.abort();
            // The driver answers at once when it is polled; if nobody polls it (a
            // `pair()` driver that was never spawned) there is nothing more to wait for.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), rx).await;
        }
    }

    /// Closes the socket now, failing whatever is in flight with [`ErrorKind::Closed`].
    /// For a dedicated lane whose state can no longer be trusted.
    pub(crate) fn abort(&self) {
        self.shared.start_closing();
        self.shared.abort();
    }

    /// The database selected in the handshake.
    pub fn db(&self) -> i64 {
        self.shared.db
    }
}

impl ConnectionLike for Lane {
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

    fn get_db(&self) -> i64 {
        self.shared.db
    }
}
