//! The driver: the future that owns a lane's socket.
//!
//! Each poll it moves every queued request into one write buffer (auto-pipelining),
//! writes as much as the socket takes, reads in large chunks and decodes every complete
//! frame before it yields. Replies are matched to requests in FIFO order.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use redis::Value;
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, oneshot};

use super::down::{Down, Outcome};
use super::gate::Gate;
use super::limit::Permit;
use super::request::{Message, Reply, ReplyTx, Request};
use super::shared::LaneShared;
use super::Session;
use crate::config::LaneConfig;
use crate::error::{Error, ErrorKind};
use crate::resp::{Decoder, Frame};
use crate::transport::Stream;

/// Stop taking requests from the queue once this much is waiting to be written; the
/// rest waits for the next round, so one burst cannot grow the buffer without bound.
const MAX_WRITE_BATCH: usize = 1 << 20;
/// Read in chunks of at least this size.
const READ_CHUNK: usize = 64 * 1024;
/// A connection that lived this long before it broke counts as having worked: the next
/// reconnect is tried at once rather than after a backoff pause.
const STABLE: Duration = Duration::from_secs(1);

/// A request that was written and awaits its replies.
struct InFlight {
    reply: Option<ReplyTx>,
    /// Replies still to come.
    remaining: usize,
    /// Leading replies still to discard.
    skip: usize,
    /// Whether the caller wants a list of replies (pipelines) or a single one.
    multi: bool,
    /// Replies kept so far, for multi-reply requests.
    kept: Vec<Value>,
    /// Where its bytes start in the connection's output, see [`Conn::flushed`].
    start: u64,
    /// Set when one of its replies was too large to keep: the request fails with this
    /// once all its replies are read.
    failed: Option<Error>,
    _permit: Option<Permit>,
}

/// Counters accumulated during one poll and published to [`LaneShared`] at its end, so
/// the hot path does not touch shared cache lines once per frame.
#[derive(Default)]
struct Tally {
    batches: u64,
    requests: u64,
    replies: u64,
    server_errors: u64,
    pushes: u64,
    pushes_dropped: u64,
    dropped_before_write: u64,
}

/// Drives one lane: owns its socket, writes its requests, reads its replies.
///
/// Returned by [`Builder::pair`](crate::Builder::pair). Nothing happens on the lane
/// until this future is polled, typically with `tokio::spawn(driver)`. It completes when
/// the lane ends: every [`Lane`](crate::Lane) handle dropped, `close()` finished, or the
/// connection failed for good. A broken connection is re-opened by the driver itself
/// (see "When the connection breaks" in the crate documentation), unless
/// [`Builder::reconnect`](crate::Builder::reconnect) turned that off.
///
/// # Drop behavior
///
/// Dropping the driver closes the socket at once. Requests in flight or queued are
/// answered with an error of kind [`ErrorKind::Closed`]; later requests fail the same way.
#[must_use = "the lane does nothing unless its driver is polled (e.g. tokio::spawn(driver))"]
pub struct LaneDriver {
    state: Option<DriverState>,
}

/// What lives as long as the lane: its queue, the callers waiting for `close()`, and
/// the current connection or the reconnect in progress.
struct DriverState {
    rx: mpsc::UnboundedReceiver<Message>,
    shared: Arc<LaneShared>,
    /// Callers of `close()` waiting for the socket to be closed.
    closers: Vec<oneshot::Sender<()>>,
    push_sender: Option<mpsc::Sender<redis::PushInfo>>,
    tally: Tally,
    link: Link,
    /// Set for a lane that reconnects when its connection breaks (the shared lane);
    /// `None` for dedicated lanes, which end instead.
    redial: Option<Arc<LaneConfig>>,
    /// Connections in a row that failed or broke right after being made; decides
    /// whether the next attempt waits a backoff pause.
    failures: u32,
    /// A gate reached in the queue and not yet opened: nothing queued after it is taken.
    gate: Option<Arc<Gate>>,
    /// Whether new work waits one scheduler pass to join a larger batch (the shared
    /// lane), or is written at once (a dedicated lane carries one request at a time, and
    /// a blocking command should reach the server before anything can cancel it).
    batching: bool,
}

// `Up` is where a lane spends its life; boxing it would put an indirection on every
// poll to save bytes only while disconnected.
#[allow(clippy::large_enum_variant)]
enum Link {
    Up(Conn),
    Down(Down),
    /// Only while switching between the two.
    Switching,
}

/// One connection: its socket, buffers and the requests written on it.
struct Conn {
    stream: Stream,
    decoder: Decoder,
    read_buf: BytesMut,
    write_buf: BytesMut,
    in_flight: VecDeque<InFlight>,
    /// The bytes in the write buffer have already waited one scheduler pass.
    deferred: bool,
    /// Bytes ever put into / taken out of the write buffer: a request whose first byte
    /// is at or past `flushed` certainly never left, which matters when the
    /// connection breaks.
    appended: u64,
    flushed: u64,
    opened: Instant,
    /// `read_buf` may hold bytes read along with the handshake's replies, which no
    /// read will announce; they are decoded on the first poll.
    leftover: bool,
}

impl fmt::Debug for LaneDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("LaneDriver");
        if let Some(state) = &self.state {
            match &state.link {
                Link::Up(conn) => d.field("in_flight", &conn.in_flight.len()),
                Link::Down(down) => d.field("reconnecting", down),
                Link::Switching => &mut d,
            };
            d.field("client_id", &state.shared.client_id());
        } else {
            d.field("finished", &true);
        }
        d.finish()
    }
}

impl LaneDriver {
    pub(crate) fn new(
        session: Session,
        rx: mpsc::UnboundedReceiver<Message>,
        shared: Arc<LaneShared>,
        push_sender: Option<mpsc::Sender<redis::PushInfo>>,
        redial: Option<Arc<LaneConfig>>,
        batching: bool,
    ) -> Self {
        Self {
            state: Some(DriverState {
                rx,
                shared,
                closers: Vec::new(),
                push_sender,
                tally: Tally::default(),
                link: Link::Up(Conn::new(session)),
                redial,
                failures: 0,
                gate: None,
                batching,
            }),
        }
    }
}

impl Conn {
    fn new(session: Session) -> Self {
        Self {
            leftover: !session.read_buf.is_empty(),
            stream: session.stream,
            decoder: session.decoder,
            read_buf: session.read_buf,
            write_buf: BytesMut::with_capacity(16 * 1024),
            in_flight: VecDeque::new(),
            deferred: false,
            appended: 0,
            flushed: 0,
            opened: Instant::now(),
        }
    }
}

/// What one step of the driver came to.
enum Turn {
    End(Exit),
    /// The connection broke; a reconnecting lane starts over, others end.
    Broken(Error),
    Connected(Box<Session>),
}

/// Why a poll round ended the lane.
enum Exit {
    /// Every handle is gone, or a graceful close finished.
    Done,
    /// The connection failed; callers get this error.
    Failed(Error),
}

impl Future for LaneDriver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(state) = self.state.as_mut() else {
            return Poll::Ready(());
        };
        let outcome = state.poll_round(cx);
        state.publish_tally();
        match outcome {
            Poll::Pending => Poll::Pending,
            Poll::Ready(exit) => {
                if let Some(state) = self.state.take() {
                    state.finish(exit);
                }
                Poll::Ready(())
            }
        }
    }
}

impl Drop for LaneDriver {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            state.finish(Exit::Done);
        }
    }
}

impl DriverState {
    fn poll_round(&mut self, cx: &mut Context<'_>) -> Poll<Exit> {
        self.shared.abort_waker.register(cx.waker());
        loop {
            let turn = match &self.link {
                Link::Up(_) => self.poll_up(cx),
                Link::Down(_) => self.poll_down(cx),
                Link::Switching => Poll::Ready(Turn::End(Exit::Done)),
            };
            match turn {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Turn::End(exit)) => return Poll::Ready(exit),
                Poll::Ready(Turn::Broken(err)) => match self.redial.clone() {
                    // A lane being closed does not come back.
                    Some(config) if self.closers.is_empty() && !self.shared.is_closing() => {
                        self.go_down(config, err);
                    }
                    _ => return Poll::Ready(Exit::Failed(err)),
                },
                Poll::Ready(Turn::Connected(session)) => self.go_up(*session),
            }
        }
    }

    /// One connection's work: write queued requests, read and match replies.
    fn poll_up(&mut self, cx: &mut Context<'_>) -> Poll<Turn> {
        if let Link::Up(conn) = &mut self.link {
            if std::mem::take(&mut conn.leftover) {
                // Decoded before any request is taken: these bytes arrived before
                // anything was written, so a reply among them is nobody's (a protocol
                // error), and a push among them is delivered now, not after the next read.
                if let Err(err) = conn.decode_all(&mut self.tally, self.push_sender.as_ref()) {
                    return Poll::Ready(Turn::Broken(err));
                }
            }
        }
        // Set when this poll yields to let other tasks add to the batch; nothing is
        // written until the next poll.
        let mut yielding = false;
        loop {
            if self.shared.aborted() {
                return Poll::Ready(Turn::End(Exit::Done));
            }
            let mut progress = false;

            // 1. Take queued requests into the write buffer.
            if let Poll::Ready(exit) = self.intake(cx) {
                return Poll::Ready(Turn::End(exit));
            }
            let Link::Up(conn) = &mut self.link else {
                return Poll::Ready(Turn::End(Exit::Done));
            };

            // 2. Write what the socket takes, but let new work wait one scheduler pass
            //    first. The caller that queued it woke this task, and the runtime runs
            //    a freshly woken task right after its waker (Tokio's LIFO slot), so
            //    writing now would send one request per write while the other callers
            //    woken by the last replies are about to queue theirs. Yielding once
            //    lets them join the batch: with 16 callers, ~15 requests per write
            //    instead of ~3. (Measured alternatives, e.g. writing at once while the
            //    server is idle, did no better; see docs/BENCHMARKS.md.)
            if !conn.write_buf.is_empty() && !yielding {
                if conn.deferred || !self.batching {
                    match conn.flush(cx, &mut self.tally) {
                        Poll::Ready(Err(err)) => return Poll::Ready(Turn::Broken(err)),
                        Poll::Ready(Ok(true)) => progress = true,
                        Poll::Ready(Ok(false)) | Poll::Pending => {}
                    }
                } else {
                    conn.deferred = true;
                    yielding = true;
                    cx.waker().wake_by_ref();
                }
            }

            // 3. Read and decode every complete frame.
            if conn.read_buf.capacity() - conn.read_buf.len() < READ_CHUNK / 4 {
                conn.read_buf.reserve(READ_CHUNK);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut conn.stream), cx, &mut conn.read_buf)
            {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Turn::Broken(lost("the server closed the connection")))
                }
                Poll::Ready(Ok(_)) => {
                    progress = true;
                    if let Err(err) = conn.decode_all(&mut self.tally, self.push_sender.as_ref()) {
                        return Poll::Ready(Turn::Broken(err));
                    }
                }
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Turn::Broken(lost_io("reading failed", e)))
                }
                Poll::Pending => {}
            }

            // 4. A graceful close ends once everything before it is answered.
            if !self.closers.is_empty() && conn.in_flight.is_empty() && conn.write_buf.is_empty() {
                return Poll::Ready(Turn::End(Exit::Done));
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Between connections: requests wait (up to their deadline) while the reconnect
    /// runs.
    fn poll_down(&mut self, cx: &mut Context<'_>) -> Poll<Turn> {
        if self.shared.aborted() {
            return Poll::Ready(Turn::End(Exit::Done));
        }
        if let Poll::Ready(exit) = self.intake(cx) {
            return Poll::Ready(Turn::End(exit));
        }
        // Closing while disconnected: nothing is on the wire to wait for.
        if !self.closers.is_empty() {
            return Poll::Ready(Turn::End(Exit::Done));
        }
        let Link::Down(down) = &mut self.link else {
            return Poll::Ready(Turn::End(Exit::Done));
        };
        down.expire(cx);
        match down.poll_reconnect(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Outcome::Connected(session)) => Poll::Ready(Turn::Connected(session)),
            Poll::Ready(Outcome::GaveUp(err)) => Poll::Ready(Turn::End(Exit::Failed(err))),
        }
    }

    /// The connection broke: answer what was on it, then start reconnecting.
    fn go_down(&mut self, config: Arc<LaneConfig>, cause: Error) {
        let Link::Up(conn) = std::mem::replace(&mut self.link, Link::Switching) else {
            return;
        };
        self.shared.counters.connection_errors.fetch_add(1, Relaxed);
        self.shared.set_disconnected();
        // A connection that breaks right after it was made (a server that takes the
        // handshake, then fails every command) must not make the lane spin.
        self.failures = if conn.opened.elapsed() >= STABLE {
            0
        } else {
            self.failures.saturating_add(1)
        };
        tracing::warn!(
            client_id = ?self.shared.client_id(),
            error = %cause,
            in_flight = conn.in_flight.len(),
            "connection lost; reconnecting"
        );
        conn.fail(&cause);
        notify_disconnection(self.push_sender.as_ref());
        self.link = Link::Down(Down::new(config, cause, self.failures));
    }

    /// Connected again: a new generation; what waited goes out first, in order.
    fn go_up(&mut self, session: Session) {
        let Link::Down(mut down) = std::mem::replace(&mut self.link, Link::Switching) else {
            return;
        };
        self.failures = self.failures.max(down.attempts());
        self.shared.set_reconnected(session.hello.client_id);
        tracing::info!(
            client_id = ?session.hello.client_id,
            attempts = down.attempts(),
            "reconnected"
        );
        self.link = Link::Up(Conn::new(session));
        for req in down.take_parked() {
            self.accept(req);
        }
    }

    /// Moves queued requests to the connection (or, while disconnected, to the waiting
    /// list). Returns `Ready` only when the lane should end because every handle is gone.
    fn intake(&mut self, cx: &mut Context<'_>) -> Poll<Exit> {
        loop {
            if let Some(gate) = self.gate.clone() {
                for req in gate.take_urgent() {
                    self.accept(req);
                }
                if !gate.poll_open(cx) {
                    // Woken when the gate opens or an urgent request arrives.
                    break;
                }
                self.gate = None;
            }
            if let Link::Up(conn) = &self.link {
                if conn.write_buf.len() >= MAX_WRITE_BATCH {
                    break;
                }
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Message::Gated(req, gate))) => {
                    if !self.closers.is_empty() {
                        answer(req.reply, Err(Error::closed().not_sent()));
                        continue;
                    }
                    self.accept(req);
                    self.gate = Some(gate);
                }
                Poll::Ready(Some(Message::Request(req))) => {
                    if !self.closers.is_empty() {
                        // Sent after close(): refused, never written.
                        answer(req.reply, Err(Error::closed().not_sent()));
                        continue;
                    }
                    self.accept(req);
                }
                Poll::Ready(Some(Message::Close(done))) => self.closers.push(done),
                // Every handle is gone: nobody can be waiting for a reply.
                Poll::Ready(None) => return Poll::Ready(Exit::Done),
                Poll::Pending => break,
            }
        }
        Poll::Pending
    }

    fn accept(&mut self, req: Request) {
        if req.reply.as_ref().is_some_and(|tx| tx.is_closed()) {
            // Cancellation contract, rule 1: dropped before written, never written.
            self.tally.dropped_before_write += 1;
            return;
        }
        match &mut self.link {
            Link::Up(conn) => {
                if req
                    .generation
                    .is_some_and(|g| g != self.shared.generation())
                {
                    let err = lost("the connection this request was meant for was replaced");
                    answer(req.reply, Err(err.not_sent()));
                    return;
                }
                conn.accept(req, &mut self.tally);
            }
            Link::Down(down) => down.park(req),
            Link::Switching => answer(req.reply, Err(Error::closed().not_sent())),
        }
    }

    fn publish_tally(&mut self) {
        /// Skips the atomic write when there is nothing to add, the common case for
        /// most counters in a poll.
        fn add(counter: &AtomicU64, n: u64) {
            if n > 0 {
                counter.fetch_add(n, Relaxed);
            }
        }
        let t = std::mem::take(&mut self.tally);
        let c = &self.shared.counters;
        add(&c.written_batches, t.batches);
        add(&c.written_requests, t.requests);
        add(&c.replies, t.replies);
        add(&c.server_errors, t.server_errors);
        add(&c.pushes, t.pushes);
        add(&c.pushes_dropped, t.pushes_dropped);
        add(&c.dropped_before_write, t.dropped_before_write);
        let in_flight = match &self.link {
            Link::Up(conn) => conn.in_flight.len() as u64,
            _ => 0,
        };
        c.in_flight.store(in_flight, Relaxed);
    }

    /// Ends the lane: records the cause, answers every caller, closes the socket (by
    /// dropping it with `self`).
    fn finish(mut self, exit: Exit) {
        let cause = match exit {
            Exit::Done => Error::closed(),
            Exit::Failed(err) => {
                if matches!(self.link, Link::Up(_)) {
                    self.shared.counters.connection_errors.fetch_add(1, Relaxed);
                }
                tracing::warn!(client_id = ?self.shared.client_id(), error = %err, "lane failed");
                err
            }
        };
        self.shared.end(&cause);
        if let Some(gate) = self.gate.take() {
            for req in gate.close() {
                answer(req.reply, Err(cause.not_sent()));
            }
        }
        match std::mem::replace(&mut self.link, Link::Switching) {
            Link::Up(conn) => {
                conn.fail(&cause);
                notify_disconnection(self.push_sender.as_ref());
            }
            Link::Down(mut down) => {
                for req in down.take_parked() {
                    answer(req.reply, Err(cause.not_sent()));
                }
            }
            Link::Switching => {}
        }
        // Queued requests were never written: safe to retry elsewhere.
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Message::Request(req) => answer(req.reply, Err(cause.not_sent())),
                Message::Gated(req, gate) => {
                    answer(req.reply, Err(cause.not_sent()));
                    for req in gate.close() {
                        answer(req.reply, Err(cause.not_sent()));
                    }
                }
                Message::Close(done) => self.closers.push(done),
            }
        }
        self.shared.counters.in_flight.store(0, Relaxed);
        for done in self.closers.drain(..) {
            let _ = done.send(());
        }
    }
}

impl Conn {
    /// Writes as much of the write buffer as the socket takes. `Ok(true)` when some
    /// bytes went out.
    fn flush(&mut self, cx: &mut Context<'_>, tally: &mut Tally) -> Poll<Result<bool, Error>> {
        let mut wrote = false;
        while !self.write_buf.is_empty() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.write_buf) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(lost("the socket accepted no bytes")))
                }
                Poll::Ready(Ok(n)) => {
                    self.write_buf.advance(n);
                    self.flushed += n as u64;
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(lost_io("writing failed", e))),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Everything queued so far is on the wire: one batch.
        tally.batches += 1;
        self.deferred = false;
        Poll::Ready(Ok(wrote))
    }

    /// Commits one request to the write buffer, unless its caller already gave up.
    fn accept(&mut self, req: Request, tally: &mut Tally) {
        let Request {
            bytes,
            frames,
            keep_from,
            reply,
            commit,
            permit,
            generation: _,
        } = req;
        if commit.is_some_and(|c| !c.write()) {
            // The cancel guard got there first: never written.
            tally.dropped_before_write += 1;
            return;
        }
        let start = self.appended;
        self.write_buf.extend_from_slice(&bytes);
        self.appended += bytes.len() as u64;
        tally.requests += 1;
        if frames == 0 {
            answer(reply, Ok(Reply::One(Value::Nil)));
            return;
        }
        let multi = frames > 1 || keep_from > 0;
        let keep = frames.saturating_sub(keep_from);
        self.in_flight.push_back(InFlight {
            reply,
            remaining: frames,
            skip: keep_from.min(frames),
            multi,
            kept: if multi {
                Vec::with_capacity(keep.min(1024))
            } else {
                Vec::new()
            },
            start,
            failed: None,
            _permit: permit,
        });
    }

    fn decode_all(
        &mut self,
        tally: &mut Tally,
        push_sender: Option<&mpsc::Sender<redis::PushInfo>>,
    ) -> Result<(), Error> {
        loop {
            match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(Frame::Reply(value))) => self.on_reply(Ok(value), tally)?,
                Ok(Some(Frame::Push(value))) => on_push(value, tally, push_sender),
                Ok(Some(Frame::TooLarge { push: true, .. })) => {
                    tally.pushes += 1;
                    tally.pushes_dropped += 1;
                }
                Ok(Some(Frame::TooLarge {
                    push: false,
                    len,
                    max,
                })) => {
                    let err = Error::new(
                        ErrorKind::ResponseTooLarge,
                        format!(
                            "the reply held a bulk string of {len} bytes, over max_bulk_len \
                             ({max}); it was read and discarded"
                        ),
                    );
                    self.on_reply(Err(err), tally)?;
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(Error::protocol(e.to_string())),
            }
        }
    }

    /// Matches one reply (`Err`: one too large to keep) to the oldest request.
    fn on_reply(&mut self, value: Result<Value, Error>, tally: &mut Tally) -> Result<(), Error> {
        tally.replies += 1;
        if matches!(value, Ok(Value::ServerError(_))) {
            tally.server_errors += 1;
        }
        let Some(front) = self.in_flight.front_mut() else {
            return Err(Error::protocol(
                "the server sent a reply that no request was waiting for",
            ));
        };
        if front.start >= self.flushed {
            // The oldest request is still in the write buffer (it waits a scheduler
            // pass to join a batch), so the server cannot be answering it: taking this
            // frame as its reply would shift every reply after it onto the wrong caller.
            return Err(Error::protocol(
                "the server sent a reply before the request it would answer was written",
            ));
        }
        front.remaining -= 1;
        if !front.multi {
            // The common case: one command, one reply.
            if let Some(done) = self.in_flight.pop_front() {
                answer(done.reply, value.map(Reply::One));
            }
            return Ok(());
        }
        match value {
            Ok(_) if front.skip > 0 => front.skip -= 1,
            Ok(value) => front.kept.push(value),
            Err(err) => {
                front.skip = front.skip.saturating_sub(1);
                front.failed.get_or_insert(err);
            }
        }
        if front.remaining == 0 {
            if let Some(done) = self.in_flight.pop_front() {
                let result = match done.failed {
                    Some(err) => Err(err),
                    None => Ok(Reply::Many(done.kept)),
                };
                answer(done.reply, result);
            }
        }
        Ok(())
    }

    /// Answers everything on this connection as it goes away.
    fn fail(mut self, cause: &Error) {
        // Written requests: the server may or may not have run them.
        let unknown = if cause.kind() == ErrorKind::Closed {
            cause.clone()
        } else {
            cause.in_flight()
        };
        let flushed = self.flushed;
        for pending in self.in_flight.drain(..) {
            let err = if pending.start >= flushed {
                // Its bytes never left the write buffer.
                cause.not_sent()
            } else {
                unknown.clone()
            };
            answer(pending.reply, Err(err));
        }
    }
}

fn on_push(value: Value, tally: &mut Tally, push_sender: Option<&mpsc::Sender<redis::PushInfo>>) {
    tally.pushes += 1;
    let Value::Push { kind, data } = value else {
        return;
    };
    let delivered = match push_sender {
        Some(tx) => tx.try_send(redis::PushInfo { kind, data }).is_ok(),
        None => false,
    };
    if !delivered {
        tally.pushes_dropped += 1;
    }
}

/// Tells the push channel that the connection is gone, as redis-rs does: what was set up
/// on it (`CLIENT TRACKING`, say) is lost. A full channel gets it as soon as there is
/// room, from a task of its own, so the driver never waits for a slow consumer.
fn notify_disconnection(push_sender: Option<&mpsc::Sender<redis::PushInfo>>) {
    let Some(tx) = push_sender else { return };
    let info = redis::PushInfo {
        kind: redis::PushKind::Disconnection,
        data: Vec::new(),
    };
    match tx.try_send(info) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(info)) => {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let tx = tx.clone();
                // Ends when the message is taken or the receiver is dropped.
                drop(runtime.spawn(async move { tx.send(info).await }));
            }
        }
    }
}

fn answer(reply: Option<ReplyTx>, result: Result<Reply, Error>) {
    if let Some(tx) = reply {
        // The caller may have given up; then the answer has nobody to go to.
        let _ = tx.send(result);
    }
}

fn lost(why: &str) -> Error {
    Error::new(ErrorKind::ConnectionLost, why.to_owned())
}

fn lost_io(why: &str, e: std::io::Error) -> Error {
    Error::with_source(ErrorKind::ConnectionLost, why.to_owned(), e)
}

#[cfg(all(test, unix))]
#[path = "driver_tests.rs"]
mod tests;
