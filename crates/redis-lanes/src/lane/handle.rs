//! The handle side of a lane: cheap to clone, sends requests to the driver.
//!
//! Its ways in, by who uses them:
//! - users of a bare [`Lane`]: `send` and `send_pipeline`, which refuse what would
//!   corrupt a shared connection;
//! - the crate's layers above, which routed the request already: `send_unrouted` and
//!   `send_pipeline_unrouted` (both through the in-flight bound);
//! - a dedicated lane's one request: `submit` (its pool is the bound);
//! - the control path: `unblock`, and `unblock_again` ahead of its gate.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::{mpsc, oneshot};

use super::gate::{Gate, Opener};
use super::request::{Commit, Message, Reply, Request};
use super::state::LaneState;
use crate::error::{Error, ErrorKind};
use crate::route::{self, BlockingCommands, Route};
use crate::stats::Stats;

/// Where the answer to a queued request arrives.
pub(crate) type ReplyRx = oneshot::Receiver<Result<Reply, Error>>;

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
    state: Arc<LaneState>,
}

impl fmt::Debug for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lane")
            .field("client_id", &self.state.client_id())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Lane {
    pub(crate) fn new(tx: mpsc::UnboundedSender<Message>, state: Arc<LaneState>) -> Self {
        Self { tx, state }
    }

    /// Sends one command and returns its reply. A server error reply (`-ERR ...`) is
    /// returned as `Ok(Value::ServerError(..))`, as the `redis` crate expects.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Refused`] for a command that would corrupt the shared connection,
    /// [`ErrorKind::InvalidCommand`] for an empty one, [`ErrorKind::Closed`] after
    /// `close()`, [`ErrorKind::ConnectionLost`] or [`ErrorKind::Protocol`] when the
    /// connection fails, [`ErrorKind::Timeout`] when a response timeout is set and runs
    /// out, [`ErrorKind::ResponseTooLarge`] for a reply over `max_bulk_len`.
    ///
    /// A command with `set_no_response(true)` returns `Value::Nil` as soon as it is
    /// queued, as in redis-rs; its reply is read and dropped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the command is written means it is never written.
    /// After it is written, the server runs it and its reply is read and discarded.
    pub async fn send(&self, cmd: &Cmd) -> Result<Value, Error> {
        // A bare lane has no blocking lanes: blocking commands run here, in line.
        if let Route::Refused(refusal) = route::classify_cmd(cmd, &BlockingCommands::new()) {
            return Err(refusal.error());
        }
        self.send_unrouted(cmd).await
    }

    /// Sends without the routing check: the caller routed it already.
    pub(crate) async fn send_unrouted(&self, cmd: &Cmd) -> Result<Value, Error> {
        let bytes = cmd.get_packed_command();
        if bytes.is_empty() {
            return Err(empty_command());
        }
        if cmd.is_no_response() {
            // As in redis-rs: the server still answers; the driver reads that reply and
            // drops it, and the caller is done once the command is queued.
            self.enqueue_unanswered(bytes).await?;
            return Ok(Value::Nil);
        }
        Ok(self.request(bytes, 1, 0).await?.into_last())
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
        if let Route::Refused(refusal) = route::classify_pipeline(pipe, &BlockingCommands::new()) {
            return Err(refusal.error());
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
        let packed = PackedPipeline::new(pipe, offset, count)?;
        let reply = self
            .request(packed.bytes, packed.frames, packed.keep_from)
            .await?;
        pipeline_replies(pipe, offset, reply)
    }

    /// Queues packed bytes and waits for their replies. No routing check: callers
    /// inside the crate decide where a request may go.
    async fn request(
        &self,
        bytes: Vec<u8>,
        frames: usize,
        keep_from: usize,
    ) -> Result<Reply, Error> {
        match self.state.response_timeout {
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
        let timed_out = |not_sent: bool| {
            self.state.counters.timeouts.fetch_add(1, Relaxed);
            let err = Error::new(ErrorKind::Timeout, format!("no reply within {limit:?}"));
            if not_sent {
                err.not_sent()
            } else {
                err
            }
        };
        // A limit too large to add to the clock is as good as none.
        let Some(deadline) = tokio::time::Instant::now().checked_add(limit) else {
            let rx = self.enqueue(bytes, frames, keep_from).await?;
            return self.await_reply(rx).await;
        };
        let len = bytes.len();
        let enqueue = self.enqueue_with(bytes, frames, keep_from, true);
        let (rx, early) = match tokio::time::timeout_at(deadline, enqueue).await {
            Ok(queued) => queued?,
            Err(_) => return Err(timed_out(true)),
        };
        // Biased: a reply that is ready wins over a deadline that passed in the same poll.
        let reply = self.await_reply(rx);
        tokio::pin!(reply);
        tokio::select! {
            biased;
            answer = &mut reply => answer,
            () = tokio::time::sleep_until(deadline) => {
                // The request stays in flight and its late reply is read and dropped,
                // but its slot is free at once: on a stalled server, slots held by
                // requests nobody waits for would fail every later caller.
                if let Some(early) = early {
                    super::limit::release_early(&self.state.limit, &early, len);
                }
                Err(timed_out(false))
            }
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
        let (rx, _) = self.enqueue_with(bytes, frames, keep_from, false).await?;
        Ok(rx)
    }

    /// [`Lane::enqueue`], with a handle to return the slot early when `early` is set.
    async fn enqueue_with(
        &self,
        bytes: Vec<u8>,
        frames: usize,
        keep_from: usize,
        early: bool,
    ) -> Result<(ReplyRx, Option<Arc<std::sync::atomic::AtomicBool>>), Error> {
        let mut permit = self.take_slot(bytes.len()).await?;
        let early = early.then(|| permit.shared());
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
            return Err(self.state.terminal_error().not_sent());
        }
        Ok((rx, early))
    }

    /// Queues a one-reply command whose reply nobody waits for (`set_no_response`). It
    /// holds an in-flight slot until the driver has read and dropped its reply, and is
    /// written even if the caller is gone by then: the caller was already told it was
    /// sent.
    async fn enqueue_unanswered(&self, bytes: Vec<u8>) -> Result<(), Error> {
        let permit = match self.state.response_timeout {
            None => self.take_slot(bytes.len()).await?,
            Some(limit) => match tokio::time::timeout(limit, self.take_slot(bytes.len())).await {
                Ok(permit) => permit?,
                Err(_) => {
                    self.state.counters.timeouts.fetch_add(1, Relaxed);
                    let why = format!("no in-flight slot within {limit:?}");
                    return Err(Error::new(ErrorKind::Timeout, why).not_sent());
                }
            },
        };
        let req = Request {
            bytes,
            frames: 1,
            keep_from: 0,
            reply: None,
            commit: None,
            permit: Some(permit),
            generation: None,
        };
        self.tx
            .send(Message::Request(req))
            .map_err(|_| self.state.terminal_error().not_sent())
    }

    /// Waits for room under `max_in_flight` and `max_in_flight_bytes`, for at most
    /// `max_in_flight_wait`.
    async fn take_slot(&self, bytes: usize) -> Result<super::limit::Permit, Error> {
        if self.state.is_closing() {
            return Err(Error::closed().not_sent());
        }
        // The common case, a free slot, builds no timer: a timeout reads the clock and
        // looks up the runtime on creation, which showed in the per-request profile.
        if let Some(permit) = self.state.limit.try_acquire(bytes) {
            return Ok(permit);
        }
        let acquire = self.state.limit.acquire(bytes);
        let taken = match self.state.max_in_flight_wait {
            None => acquire.await,
            Some(limit) => match tokio::time::timeout(limit, acquire).await {
                Ok(taken) => taken,
                Err(_) => {
                    self.state.counters.backpressure.fetch_add(1, Relaxed);
                    return Err(Error::new(
                        ErrorKind::Backpressure,
                        format!(
                            "the lane stayed full (max_in_flight or max_in_flight_bytes) \
                             for {limit:?}: the server is not keeping up or not answering"
                        ),
                    ));
                }
            },
        };
        taken.map_err(|_| self.state.terminal_error().not_sent())
    }

    /// Queues the one request of a dedicated (blocking or exclusive) lane at once,
    /// without an in-flight slot: the pool that lent the lane bounds it instead. The
    /// shared lane's requests never come here; its control requests (`CLIENT UNBLOCK`)
    /// skip the bound through [`Lane::unblock`], because a `Drop` cannot wait for room.
    pub(crate) fn submit(
        &self,
        bytes: Vec<u8>,
        frames: usize,
        keep_from: usize,
        commit: Option<Arc<Commit>>,
    ) -> Result<ReplyRx, Error> {
        if self.state.is_closing() {
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
            generation: None,
        };
        self.tx
            .send(Message::Request(req))
            .map_err(|_| self.state.terminal_error().not_sent())?;
        Ok(rx)
    }

    /// Queues `CLIENT UNBLOCK <target's id>` on this lane through the control path,
    /// with a gate that holds back everything queued after it until the returned
    /// [`Opener`] opens it (or is dropped). It is written only on the connection
    /// generation `target` was opened under: after a reconnect the id may name another
    /// client, so the unblock fails instead and the caller falls back to closing
    /// `target`. `None` when `target`'s id is unknown.
    pub(crate) fn unblock(&self, target: &Lane) -> Option<Result<(ReplyRx, Opener), Error>> {
        let (req, rx) = Self::unblock_request(target)?;
        if self.state.is_closing() {
            return Some(Err(Error::closed().not_sent()));
        }
        let gate = Arc::new(Gate::default());
        let opener = Opener::new(Arc::clone(&gate));
        // The control path: see `Lane::submit`.
        if self.tx.send(Message::Gated(req, gate)).is_err() {
            return Some(Err(self.state.terminal_error().not_sent()));
        }
        Some(Ok((rx, opener)))
    }

    /// `CLIENT UNBLOCK <target's id>` again, ahead of what the still closed gate of an
    /// earlier [`Lane::unblock`] holds back.
    pub(crate) fn unblock_again(&self, target: &Lane, opener: &Opener) -> Result<ReplyRx, Error> {
        let lost = || Error::new(ErrorKind::ConnectionLost, "the unblock's gate is gone");
        let (req, rx) = Self::unblock_request(target).ok_or_else(lost)?;
        let gate = opener.gate().ok_or_else(lost)?;
        gate.push_urgent(req)
            .map_err(|_| self.state.terminal_error().not_sent())?;
        Ok(rx)
    }

    fn unblock_request(target: &Lane) -> Option<(Request, ReplyRx)> {
        let id = target.client_id()?;
        let mut cmd = redis::cmd("CLIENT");
        cmd.arg("UNBLOCK").arg(id);
        let (reply, rx) = oneshot::channel();
        let req = Request {
            bytes: cmd.get_packed_command(),
            frames: 1,
            keep_from: 0,
            reply: Some(reply),
            commit: None,
            permit: None,
            generation: Some(target.generation()),
        };
        Some((req, rx))
    }

    /// Closes the lane's current connection as broken with `cause` (see
    /// [`LaneState::kill`](super::state::LaneState::kill)).
    pub(crate) fn kill(&self, cause: Error) {
        self.state.kill(cause);
    }

    /// Which connection generation the lane is on (see `LaneState::generation`).
    pub(crate) fn generation(&self) -> u64 {
        self.state.generation()
    }

    /// The error callers get once the lane has ended.
    pub(crate) fn terminal_error(&self) -> Error {
        self.state.terminal_error()
    }

    /// Waits for the answer to a request queued with [`Lane::submit`].
    pub(crate) async fn await_reply(
        &self,
        rx: oneshot::Receiver<Result<Reply, Error>>,
    ) -> Result<Reply, Error> {
        // A dropped reply sender means the driver ended without answering.
        rx.await
            .unwrap_or_else(|_| Err(self.state.terminal_error()))
    }

    /// The server's `CLIENT ID` for this connection, if the handshake could learn it.
    ///
    /// A lane that reconnected has a new id.
    pub fn client_id(&self) -> Option<i64> {
        self.state.client_id()
    }

    /// A snapshot of this lane's counters.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// Whether the lane has a connection now (`false` while it reconnects).
    pub(crate) fn is_connected(&self) -> bool {
        self.state.is_connected() && !self.state.has_ended()
    }

    /// `true` once `close()` was called or the connection ended.
    pub fn is_closed(&self) -> bool {
        self.state.is_closing() || self.state.has_ended()
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
        self.state.start_closing();
        let (done, mut rx) = oneshot::channel();
        if self.tx.send(Message::Close(done)).is_err() {
            return; // The driver has already ended.
        }
        if tokio::time::timeout(self.state.close_timeout, &mut rx)
            .await
            .is_err()
        {
            tracing::warn!(
                client_id = ?self.state.client_id(),
                "close timed out; cutting off requests still in flight"
            );
            self.state.abort();
            // The driver answers at once when it is polled; if nobody polls it (a
            // `pair()` driver that was never spawned) there is nothing more to wait for.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), rx).await;
        }
    }

    /// Closes the socket now, failing whatever is in flight with [`ErrorKind::Closed`].
    /// For a dedicated lane whose state can no longer be trusted.
    pub(crate) fn abort(&self) {
        self.state.start_closing();
        self.state.abort();
    }

    /// The database selected in the handshake.
    pub fn db(&self) -> i64 {
        self.state.db
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
        self.state.db
    }
}

/// A pipeline packed for one request: the bytes, the replies the server sends, and the
/// first reply the caller keeps.
#[derive(Debug)]
pub(crate) struct PackedPipeline {
    pub(crate) bytes: Vec<u8>,
    pub(crate) frames: usize,
    pub(crate) keep_from: usize,
}

impl PackedPipeline {
    /// Packs `pipe` for `req_packed_commands(pipe, offset, count)`.
    ///
    /// An atomic pipeline keeps every reply: the `QUEUED` replies before `offset` carry
    /// the errors that made the server discard the transaction, which
    /// [`pipeline_replies`] reports.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidCommand`] for an empty pipeline or one holding an empty
    /// command: the server answers nothing to an empty command, so waiting for its
    /// reply would take the next caller's.
    pub(crate) fn new(pipe: &Pipeline, offset: usize, count: usize) -> Result<Self, Error> {
        if pipe.cmd_iter().any(|cmd| cmd.args_iter().next().is_none()) {
            return Err(empty_command());
        }
        let bytes = pipe.get_packed_pipeline();
        if bytes.is_empty() {
            return Err(empty_command());
        }
        let frames = offset.saturating_add(count);
        let keep_from = if pipe.is_transaction() { 0 } else { offset };
        Ok(Self {
            bytes,
            frames,
            keep_from,
        })
    }
}

/// The replies `req_packed_commands(pipe, offset, ..)` returns, from what the lane kept
/// (see [`PackedPipeline::new`]). For an atomic pipeline whose commands the server
/// refused while queueing them, the `EXECABORT` error names those refusals, as redis-rs
/// reports it.
pub(crate) fn pipeline_replies(
    pipe: &Pipeline,
    offset: usize,
    reply: Reply,
) -> Result<Vec<Value>, Error> {
    let mut values = reply.into_list();
    if !pipe.is_transaction() {
        return Ok(values);
    }
    // Reply 0 answers MULTI; replies 1..offset answer the queued commands.
    let refused: Vec<String> = values
        .iter()
        .take(offset)
        .enumerate()
        .skip(1)
        .filter_map(|(i, value)| match value {
            Value::ServerError(err) => Some(format!("(index {}) {err}", i - 1)),
            _ => None,
        })
        .collect();
    if refused.is_empty() {
        values.drain(..offset.min(values.len()));
        return Ok(values);
    }
    Err(exec_abort(&refused.join(", ")))
}

/// The `EXECABORT` error of a transaction the server discarded, naming why.
fn exec_abort(why: &str) -> Error {
    // Built by the `redis` crate's parser, the only way to make its `ServerError`; line
    // breaks from the server's messages would end the frame early.
    let detail: String = why.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    let frame =
        format!("-EXECABORT Transaction discarded because of previous errors: {detail}\r\n");
    let message = format!("the transaction was discarded: {detail}");
    match redis::parse_redis_value(frame.as_bytes()) {
        Ok(Value::ServerError(server)) => Error::server(message, server),
        _ => Error::new(ErrorKind::Server, message),
    }
}

/// What redis-rs answers for a command with nothing in it.
pub(crate) fn empty_command() -> Error {
    Error::new(
        ErrorKind::InvalidCommand,
        "empty command: there is nothing to send",
    )
}
