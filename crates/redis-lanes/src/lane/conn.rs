//! One connection of a lane: its socket, its buffers, and the requests written on it.
//!
//! The driver (`driver.rs`) decides when to take requests, write and read; this file
//! does each step: it moves a request's bytes into the write buffer, writes what the
//! socket takes, reads, decodes every complete frame and matches replies to requests in
//! FIFO order.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use redis::Value;
use tokio::sync::mpsc;

use super::limit::Permit;
use super::output::Output;
use super::request::{Reply, ReplyTx, Request};
use crate::connect::{Session, Stream};
use crate::error::{Error, ErrorKind};
use crate::resp::{Decoder, Frame};

/// The fewest buffered requests written as a group of their own before the scheduler
/// pass that gathers a batch (see [`Conn::write_now`]): below it, a split batch costs a
/// write and a server wake-up more than it saves. Measured in the cluster bench, where
/// each node's lane has about 5 callers at 16 tasks.
const HALF_BATCH_MIN: usize = 4;

/// Read in chunks of at least this size.
const READ_CHUNK: usize = 64 * 1024;

/// A request that was written and awaits its replies.
struct Pending {
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

/// Counters accumulated during one poll and published to [`LaneState`] at its end, so
/// the hot path does not touch shared cache lines once per frame.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) batches: u64,
    pub(super) requests: u64,
    pub(super) replies: u64,
    pub(super) server_errors: u64,
    pub(super) pushes: u64,
    pub(super) pushes_dropped: u64,
    pub(super) dropped_before_write: u64,
    pub(super) health_checks: u64,
}

/// One connection: its socket, buffers and the requests written on it.
pub(super) struct Conn {
    stream: Stream,
    decoder: Decoder,
    read_buf: BytesMut,
    pub(super) output: Output,
    in_flight: VecDeque<Pending>,
    /// The bytes in the write buffer have already waited one scheduler pass.
    pub(super) deferred: bool,
    /// Requests put into the write buffer since the last flush, and how many the last
    /// flush carried: a lane whose batches are single requests has one caller at a
    /// time, and batching cannot help it.
    unflushed: usize,
    last_batch: usize,
    /// Bytes ever put into / taken out of the write buffer: a request whose first byte
    /// is at or past `flushed` certainly never left, which matters when the
    /// connection breaks.
    appended: u64,
    flushed: u64,
    pub(super) opened: Instant,
    /// `read_buf` may hold bytes read along with the handshake's replies, which no
    /// read will announce; they are decoded on the first poll.
    pub(super) leftover: bool,
}

impl Conn {
    pub(super) fn new(session: Session) -> Self {
        Self {
            leftover: !session.read_buf.is_empty(),
            stream: session.stream,
            decoder: session.decoder,
            read_buf: session.read_buf,
            output: Output::new(),
            in_flight: VecDeque::new(),
            deferred: false,
            unflushed: 0,
            last_batch: 0,
            appended: 0,
            flushed: 0,
            opened: Instant::now(),
        }
    }
}

impl Conn {
    /// Writes as much of the write buffer as the socket takes. `Ok(true)` when some
    /// bytes went out.
    pub(super) fn flush(
        &mut self,
        cx: &mut Context<'_>,
        tally: &mut Tally,
    ) -> Poll<Result<bool, Error>> {
        let mut wrote = false;
        while !self.output.is_empty() {
            match self.output.poll_write(&mut self.stream, cx) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(lost("the socket accepted no bytes")))
                }
                Poll::Ready(Ok(n)) => {
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
        self.last_batch = std::mem::take(&mut self.unflushed);
        Poll::Ready(Ok(wrote))
    }

    /// Reads what the socket has and decodes every complete frame. `Ready(Ok)` when
    /// something was read; `Ready(Err)` when the connection ended or broke.
    pub(super) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        tally: &mut Tally,
        push_sender: Option<&mpsc::Sender<redis::PushInfo>>,
    ) -> Poll<Result<(), Error>> {
        let stream = Pin::new(&mut self.stream);
        let read = if let Some((payload, wanted)) = self.decoder.direct_buf() {
            // A large bulk string under way: its bytes go straight into the buffer it will
            // be handed over in, and no further, so the frames after it stay in order.
            tokio_util::io::poll_read_buf(stream, cx, &mut payload.limit(wanted))
        } else {
            if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 4 {
                self.read_buf.reserve(READ_CHUNK);
            }
            tokio_util::io::poll_read_buf(stream, cx, &mut self.read_buf)
        };
        match read {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(lost("the server closed the connection"))),
            Poll::Ready(Ok(_)) => Poll::Ready(self.decode_all(tally, push_sender)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(lost_io("reading failed", e))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Requests written (or in the write buffer) and awaiting replies.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether to write what is buffered now rather than after one scheduler pass:
    ///
    /// - callers come one at a time (the last write carried a single request) and the
    ///   server has nothing of ours to work on (every request awaiting a reply is still
    ///   in the write buffer): waiting could only add a pass to the round trip;
    /// - or at least [`HALF_BATCH_MIN`] requests are buffered and they are half or more
    ///   of all the requests awaiting replies: the server starts on them while the other
    ///   callers are still queueing theirs, so two groups are in flight instead of one
    ///   batch per round trip.
    pub(super) fn write_now(&self) -> bool {
        let alone = self.last_batch <= 1
            && self
                .in_flight
                .front()
                .is_none_or(|oldest| oldest.start >= self.flushed);
        let half = self.unflushed >= HALF_BATCH_MIN && self.unflushed * 2 >= self.in_flight.len();
        alone || half
    }

    /// Nothing is waiting to be written or answered.
    pub(super) fn is_idle(&self) -> bool {
        self.in_flight.is_empty() && self.output.is_empty()
    }

    /// Commits one request to the write buffer, unless its caller already gave up.
    pub(super) fn accept(&mut self, req: Request, tally: &mut Tally) {
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
        self.appended += bytes.len() as u64;
        self.output.push(bytes);
        tally.requests += 1;
        self.unflushed += 1;
        if frames == 0 {
            answer(reply, Ok(Reply::One(Value::Nil)));
            return;
        }
        let multi = frames > 1 || keep_from > 0;
        let keep = frames.saturating_sub(keep_from);
        self.in_flight.push_back(Pending {
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

    pub(super) fn decode_all(
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
    pub(super) fn fail(mut self, cause: &Error) {
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

pub(super) fn answer(reply: Option<ReplyTx>, result: Result<Reply, Error>) {
    if let Some(tx) = reply {
        // The caller may have given up; then the answer has nobody to go to.
        let _ = tx.send(result);
    }
}

pub(super) fn lost(why: &str) -> Error {
    Error::new(ErrorKind::ConnectionLost, why.to_owned())
}

pub(super) fn lost_io(why: &str, e: std::io::Error) -> Error {
    Error::with_source(ErrorKind::ConnectionLost, why.to_owned(), e)
}
