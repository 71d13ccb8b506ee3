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

use bytes::{Buf, BytesMut};
use redis::Value;
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, oneshot};

use super::limit::Permit;
use super::request::{Message, Reply, ReplyTx, Request};
use super::shared::LaneShared;
use crate::error::{Error, ErrorKind};
use crate::resp::{Decoder, Frame};
use crate::transport::Stream;

/// Stop taking requests from the queue once this much is waiting to be written; the
/// rest waits for the next round, so one burst cannot grow the buffer without bound.
const MAX_WRITE_BATCH: usize = 1 << 20;
/// Read in chunks of at least this size.
const READ_CHUNK: usize = 64 * 1024;

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
    /// Its first byte is byte `sent_from - 1` of everything this lane writes: no reply
    /// can be its own before [`DriverState::written`] reaches this.
    sent_from: u64,
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
/// the lane ends: every [`Lane`](crate::Lane) handle dropped, `close()` finished, or
/// the connection failed.
///
/// # Drop behavior
///
/// Dropping the driver closes the socket at once. Requests in flight or queued are
/// answered with an error of kind [`ErrorKind::Closed`]; later requests fail the same way.
#[must_use = "the lane does nothing unless its driver is polled (e.g. tokio::spawn(driver))"]
pub struct LaneDriver {
    state: Option<DriverState>,
}

struct DriverState {
    stream: Stream,
    rx: mpsc::UnboundedReceiver<Message>,
    shared: Arc<LaneShared>,
    decoder: Decoder,
    read_buf: BytesMut,
    write_buf: BytesMut,
    in_flight: VecDeque<InFlight>,
    /// Callers of `close()` waiting for the socket to be closed.
    closers: Vec<oneshot::Sender<()>>,
    push_sender: Option<mpsc::Sender<redis::PushInfo>>,
    tally: Tally,
    /// The bytes in the write buffer have already waited one scheduler pass.
    deferred: bool,
    /// Bytes ever put into the write buffer, and bytes ever written to the socket.
    /// Requests wait in the buffer (and in `in_flight`) for up to a scheduler pass
    /// before they are written; a frame read meanwhile cannot be their reply.
    buffered: u64,
    written: u64,
    /// `read_buf` may hold bytes read along with the handshake's replies, which no
    /// read will announce; they are decoded on the first poll.
    leftover: bool,
}

impl fmt::Debug for LaneDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("LaneDriver");
        if let Some(state) = &self.state {
            d.field("in_flight", &state.in_flight.len())
                .field("client_id", &state.shared.client_id);
        } else {
            d.field("finished", &true);
        }
        d.finish()
    }
}

impl LaneDriver {
    pub(crate) fn new(
        stream: Stream,
        rx: mpsc::UnboundedReceiver<Message>,
        shared: Arc<LaneShared>,
        decoder: Decoder,
        read_buf: BytesMut,
        push_sender: Option<mpsc::Sender<redis::PushInfo>>,
    ) -> Self {
        let leftover = !read_buf.is_empty();
        Self {
            state: Some(DriverState {
                stream,
                rx,
                shared,
                decoder,
                read_buf,
                write_buf: BytesMut::with_capacity(16 * 1024),
                in_flight: VecDeque::new(),
                closers: Vec::new(),
                push_sender,
                tally: Tally::default(),
                deferred: false,
                leftover,
                buffered: 0,
                written: 0,
            }),
        }
    }
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
        if std::mem::take(&mut self.leftover) {
            // Decoded before any request is taken: these bytes arrived before anything
            // was written, so a reply among them is nobody's (a protocol error), and a
            // push among them is delivered now rather than after the next read.
            if let Err(err) = self.decode_all() {
                return Poll::Ready(Exit::Failed(err));
            }
        }
        // Set when this poll yields to let other tasks add to the batch; nothing is
        // written until the next poll.
        let mut yielding = false;
        loop {
            if self.shared.aborted() {
                return Poll::Ready(Exit::Done);
            }
            let mut progress = false;

            // 1. Take queued requests into the write buffer.
            match self.intake(cx) {
                Poll::Ready(exit) => return Poll::Ready(exit),
                Poll::Pending => {}
            }

            // 2. Write what the socket takes, but let new work wait one scheduler pass
            //    first. The caller that queued it woke this task, and the runtime runs
            //    a freshly woken task right after its waker (Tokio's LIFO slot), so
            //    writing now would send one request per write while the other callers
            //    woken by the last replies are about to queue theirs. Yielding once
            //    lets them join the batch: with 16 callers, ~15 requests per write
            //    instead of ~3. (Measured alternatives, e.g. writing at once while the
            //    server is idle, did no better; see docs/BENCHMARKS.md.)
            if !self.write_buf.is_empty() && !yielding {
                if self.deferred {
                    match self.flush(cx) {
                        Poll::Ready(Err(err)) => return Poll::Ready(Exit::Failed(err)),
                        Poll::Ready(Ok(true)) => progress = true,
                        Poll::Ready(Ok(false)) | Poll::Pending => {}
                    }
                } else {
                    self.deferred = true;
                    yielding = true;
                    cx.waker().wake_by_ref();
                }
            }

            // 3. Read and decode every complete frame.
            if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 4 {
                self.read_buf.reserve(READ_CHUNK);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read_buf)
            {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Exit::Failed(lost("the server closed the connection")))
                }
                Poll::Ready(Ok(_)) => {
                    progress = true;
                    if let Err(err) = self.decode_all() {
                        return Poll::Ready(Exit::Failed(err));
                    }
                }
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Exit::Failed(lost_io("reading failed", e)))
                }
                Poll::Pending => {}
            }

            // 4. A graceful close ends once everything before it is answered.
            if !self.closers.is_empty() && self.in_flight.is_empty() && self.write_buf.is_empty() {
                return Poll::Ready(Exit::Done);
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Writes as much of the write buffer as the socket takes. `Ok(true)` when some
    /// bytes went out.
    fn flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, Error>> {
        let mut wrote = false;
        while !self.write_buf.is_empty() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.write_buf) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(lost("the socket accepted no bytes")))
                }
                Poll::Ready(Ok(n)) => {
                    self.write_buf.advance(n);
                    self.written += n as u64;
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(lost_io("writing failed", e))),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Everything queued so far is on the wire: one batch.
        self.tally.batches += 1;
        self.deferred = false;
        Poll::Ready(Ok(wrote))
    }

    /// Moves queued requests into the write buffer. Returns `Ready` only when the lane
    /// should end because every handle is gone.
    fn intake(&mut self, cx: &mut Context<'_>) -> Poll<Exit> {
        while self.write_buf.len() < MAX_WRITE_BATCH {
            match self.rx.poll_recv(cx) {
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

    /// Commits one request to the write buffer, unless its caller already gave up.
    fn accept(&mut self, req: Request) {
        let Request {
            bytes,
            frames,
            keep_from,
            reply,
            commit,
            permit,
        } = req;
        let abandoned =
            reply.as_ref().is_some_and(|tx| tx.is_closed()) || commit.is_some_and(|c| !c.write());
        if abandoned {
            // Cancellation contract, rule 1: dropped before written, never written.
            self.tally.dropped_before_write += 1;
            return;
        }
        let starts_at = self.buffered;
        self.write_buf.extend_from_slice(&bytes);
        self.buffered += bytes.len() as u64;
        self.tally.requests += 1;
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
            sent_from: starts_at + u64::from(!bytes.is_empty()),
            _permit: permit,
        });
    }

    fn decode_all(&mut self) -> Result<(), Error> {
        loop {
            match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(Frame::Reply(value))) => self.on_reply(value)?,
                Ok(Some(Frame::Push(value))) => self.on_push(value),
                Ok(None) => return Ok(()),
                Err(e) => return Err(Error::protocol(e.to_string())),
            }
        }
    }

    fn on_reply(&mut self, value: Value) -> Result<(), Error> {
        self.tally.replies += 1;
        if matches!(value, Value::ServerError(_)) {
            self.tally.server_errors += 1;
        }
        let Some(front) = self.in_flight.front_mut() else {
            return Err(Error::protocol(
                "the server sent a reply that no request was waiting for",
            ));
        };
        if front.sent_from > self.written {
            // The oldest request is still in the write buffer, so the server cannot be
            // answering it: taking this frame as its reply would shift every reply after
            // it onto the wrong caller.
            return Err(Error::protocol(
                "the server sent a reply before the request it would answer was written",
            ));
        }
        front.remaining -= 1;
        if !front.multi {
            // The common case: one command, one reply.
            if let Some(done) = self.in_flight.pop_front() {
                answer(done.reply, Ok(Reply::One(value)));
            }
            return Ok(());
        }
        if front.skip > 0 {
            front.skip -= 1;
        } else {
            front.kept.push(value);
        }
        if front.remaining == 0 {
            if let Some(done) = self.in_flight.pop_front() {
                answer(done.reply, Ok(Reply::Many(done.kept)));
            }
        }
        Ok(())
    }

    fn on_push(&mut self, value: Value) {
        self.tally.pushes += 1;
        let Value::Push { kind, data } = value else {
            return;
        };
        let delivered = match &self.push_sender {
            Some(tx) => tx.try_send(redis::PushInfo { kind, data }).is_ok(),
            None => false,
        };
        if !delivered {
            self.tally.pushes_dropped += 1;
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
        c.in_flight.store(self.in_flight.len() as u64, Relaxed);
    }

    /// Ends the lane: records the cause, answers every caller, closes the socket (by
    /// dropping it with `self`).
    fn finish(mut self, exit: Exit) {
        let cause = match exit {
            Exit::Done => Error::closed(),
            Exit::Failed(err) => {
                self.shared.counters.connection_errors.fetch_add(1, Relaxed);
                tracing::warn!(client_id = ?self.shared.client_id, error = %err, "lane failed");
                err
            }
        };
        self.shared.end(&cause);
        // Written requests (even in part): the server may or may not have run them.
        let written_cause = if cause.kind() == ErrorKind::Closed {
            cause.clone()
        } else {
            Error::new(
                cause.kind(),
                format!("{cause}; the request was in flight, so whether it ran is unknown"),
            )
        };
        let written = self.written;
        for pending in self.in_flight.drain(..) {
            // Requests still waiting in the write buffer never reached the server.
            let err = if pending.sent_from > written {
                cause.not_sent()
            } else {
                written_cause.clone()
            };
            answer(pending.reply, Err(err));
        }
        // Queued requests were never written: safe to retry elsewhere.
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Message::Request(req) => answer(req.reply, Err(cause.not_sent())),
                Message::Close(done) => self.closers.push(done),
            }
        }
        self.shared.counters.in_flight.store(0, Relaxed);
        for done in self.closers.drain(..) {
            let _ = done.send(());
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
