//! The driver's connected state: one socket, its pending commands, and the matching of
//! the server's answers to them.
//!
//! The server answers commands in order, and messages may arrive between (or before)
//! any of the answers. So the pending commands form a FIFO and each non-message frame
//! advances its front: a confirmation counts down the front's expected confirmations,
//! a `PONG` or an error reply completes it. Messages go to a batch that is moved into
//! the consumer's buffer before any command is answered, so a caller that sees its
//! `subscribe` confirmed never finds messages that came before the confirmation missing.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWrite;

use super::driver::{Core, Next};
use super::frame::{classify, Event};
use super::message::Message;
use super::state::{Command, Expect, ReplyTx};
use crate::connect::Session;
use crate::connect::Stream;
use crate::error::{Error, ErrorKind};
use crate::lane::{dead, Health, LaneKind, Verdict};
use crate::resp::Decoder;

/// Read in chunks of at least this size.
const READ_CHUNK: usize = 64 * 1024;

/// Who waits for a command's completion.
#[derive(Debug)]
enum Waiter {
    /// A caller of `subscribe`, `ping`, ...
    User(ReplyTx),
    /// One of the commands restoring subscriptions after a reconnection.
    Restore,
    /// The health check's `PING`: any frame read answers it.
    Probe,
}

#[derive(Debug)]
struct Pending {
    expect: Expect,
    waiter: Waiter,
}

/// A live connection.
#[derive(Debug)]
pub(super) struct Conn {
    stream: Stream,
    decoder: Decoder,
    read_buf: BytesMut,
    write_buf: BytesMut,
    pending: VecDeque<Pending>,
    /// Restore commands not yet confirmed; the connection counts as up at 0.
    restoring: usize,
    /// Messages decoded in this read, not yet in the consumer's buffer.
    batch: Vec<Message>,
    /// The liveness check: a subscriber may legitimately hear nothing for hours, so a
    /// quiet connection is probed with `PING`.
    health: Health,
}

impl Conn {
    /// Takes over a fresh connection and queues the commands that restore `core`'s
    /// subscriptions. Reconnect callers are answered once they are all confirmed (at
    /// once when there is nothing to restore).
    pub(super) fn new(opened: Session, core: &mut Core) -> Self {
        let mut conn = Self {
            stream: opened.stream,
            decoder: opened.decoder,
            read_buf: opened.read_buf,
            write_buf: BytesMut::with_capacity(4096),
            pending: VecDeque::new(),
            restoring: 0,
            batch: Vec::new(),
            health: Health::new(core.config().health, LaneKind::Subscriber),
        };
        core.shared.set_connection(false, opened.client_id);
        for (kind, cmd, names) in core.subs.restore_commands() {
            conn.write_buf.extend_from_slice(&cmd.get_packed_command());
            conn.pending.push_back(Pending {
                expect: Expect::Confirm {
                    kind,
                    on: true,
                    names: names.into(),
                },
                waiter: Waiter::Restore,
            });
            conn.restoring += 1;
        }
        if conn.restoring == 0 {
            core.up();
        }
        conn
    }

    /// Whether every subscription was restored, so the consumer has seen it working.
    pub(super) fn is_up(&self) -> bool {
        self.restoring == 0
    }

    /// Ends the connection: every caller still waiting gets a `ConnectionLost` error
    /// naming `cause` (the stream reports the cause itself, with its own kind). The
    /// socket closes when `self` is dropped.
    pub(super) fn fail(self, cause: &Error) {
        let written = Error::new(
            ErrorKind::ConnectionLost,
            format!("{cause}; the command was sent, so whether it took effect is unknown"),
        );
        for pending in self.pending {
            if let Waiter::User(reply) = pending.waiter {
                let _ = reply.send(Err(written.clone()));
            }
        }
    }

    pub(super) fn poll(&mut self, core: &mut Core, cx: &mut Context<'_>) -> Poll<Next> {
        loop {
            let mut progress = false;
            if let Poll::Ready(next) = self.intake(core, cx) {
                return Poll::Ready(next);
            }
            if !self.write_buf.is_empty() {
                match self.flush(cx) {
                    Poll::Ready(Ok(())) => progress = true,
                    Poll::Ready(Err(err)) => return Poll::Ready(Next::Down(err)),
                    Poll::Pending => {}
                }
            }
            if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 4 {
                self.read_buf.reserve(READ_CHUNK);
            }
            // Tokio's cooperative budget makes this read return `Pending` after a while
            // even under a flood of messages, so the task yields to others.
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read_buf)
            {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Next::Down(lost("the server closed the connection", None)))
                }
                Poll::Ready(Ok(_)) => {
                    progress = true;
                    self.health.heard();
                    if let Err(err) = self.decode_all(core) {
                        return Poll::Ready(Next::Down(err));
                    }
                }
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Next::Down(lost("reading failed", Some(e))))
                }
                Poll::Pending => {}
            }
            while let Poll::Ready(verdict) = self.health.poll_tick(cx, !self.pending.is_empty()) {
                match verdict {
                    Verdict::Fine => {}
                    Verdict::SendProbe => {
                        core.shared.count_health_check();
                        self.write_buf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
                        self.pending.push_back(Pending {
                            expect: Expect::Pong,
                            waiter: Waiter::Probe,
                        });
                        progress = true;
                    }
                    Verdict::Dead(silent) => {
                        core.shared.count_dead(silent);
                        let health = core.config().health;
                        return Poll::Ready(Next::Down(dead(silent, health, LaneKind::Subscriber)));
                    }
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Takes queued commands into the write buffer. `Ready` when the driver must leave
    /// this state: every handle is gone, or a reconnection was asked for.
    fn intake(&mut self, core: &mut Core, cx: &mut Context<'_>) -> Poll<Next> {
        loop {
            let command = match core.deferred.pop_front() {
                Some(command) => command,
                None => match core.rx.poll_recv(cx) {
                    Poll::Ready(Some(command)) => command,
                    Poll::Ready(None) => return Poll::Ready(Next::Exit),
                    Poll::Pending => return Poll::Pending,
                },
            };
            match command {
                Command::Request {
                    bytes,
                    expect,
                    reply,
                } => {
                    // Its caller gave up before it was written: never write it.
                    if reply.is_closed() {
                        continue;
                    }
                    self.write_buf.extend_from_slice(&bytes);
                    self.pending.push_back(Pending {
                        expect,
                        waiter: Waiter::User(reply),
                    });
                }
                Command::Reconnect(reply) => {
                    core.reconnecting.push(reply);
                    return Poll::Ready(Next::Connect);
                }
            }
        }
    }

    fn flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        while !self.write_buf.is_empty() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.write_buf) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(lost("the socket accepted no bytes", None)))
                }
                Poll::Ready(Ok(n)) => self.write_buf.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(lost("writing failed", Some(e)))),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Handles every complete frame in the read buffer. An error ends the connection.
    fn decode_all(&mut self, core: &mut Core) -> Result<(), Error> {
        loop {
            match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(frame)) => self.on_event(core, classify(frame))?,
                Ok(None) => return self.deliver(core),
                Err(e) => {
                    // What was decoded before the bad frame is still good.
                    self.deliver(core)?;
                    return Err(Error::protocol(e.to_string()));
                }
            }
        }
    }

    /// Moves the batch into the consumer's buffer.
    fn deliver(&mut self, core: &mut Core) -> Result<(), Error> {
        core.shared.inbox.deliver(&mut self.batch).map_err(|_| {
            let inbox = &core.shared.inbox;
            Error::new(
                ErrorKind::Overflow,
                format!(
                    "the subscriber's buffer of {} messages was full (the consumer is behind) \
                     and the overflow policy is Disconnect; {} messages dropped so far",
                    inbox.capacity(),
                    inbox.dropped()
                ),
            )
        })
    }

    fn on_event(&mut self, core: &mut Core, event: Event) -> Result<(), Error> {
        match event {
            Event::Message(message) => self.batch.push(message),
            Event::Confirm {
                kind,
                on,
                channel,
                count,
            } => {
                self.deliver(core)?;
                core.subs.apply(kind, on, channel.as_deref());
                core.shared.publish_counts(&core.subs);
                let done = match self.pending.front_mut().map(|p| &mut p.expect) {
                    // The next name the command is waiting for; any other is not its answer.
                    Some(Expect::Confirm {
                        kind: k,
                        on: o,
                        names,
                    }) if *k == kind && *o == on && names.front() == channel.as_ref() => {
                        names.pop_front();
                        names.is_empty()
                    }
                    Some(Expect::UntilNone(k)) if *k == kind && !on => {
                        channel.is_none() || count == 0 || core.subs.of(kind).is_empty()
                    }
                    // Not an answer: the server unsubscribes on its own in some cases
                    // (e.g. `sunsubscribe` when a cluster slot moves). The set above
                    // already follows it.
                    _ => {
                        tracing::debug!(?kind, on, "unsolicited pub/sub confirmation");
                        false
                    }
                };
                if done {
                    self.complete(core, Ok(()))?;
                }
            }
            Event::Pong => {
                if matches!(self.pending.front(), Some(p) if p.expect == Expect::Pong) {
                    self.complete(core, Ok(()))?;
                } else {
                    tracing::debug!("unexpected PONG on a subscriber connection");
                }
            }
            Event::Error(err) => {
                self.deliver(core)?;
                let Some(front) = self.pending.front() else {
                    tracing::warn!(error = %err, "error reply no subscriber command waited for");
                    return Ok(());
                };
                let refused = Error::with_source(
                    ErrorKind::Server,
                    format!("the server refused {}", front.expect.command()),
                    err,
                );
                self.complete(core, Err(refused))?;
            }
            Event::Other(value) => {
                tracing::debug!(?value, "ignored frame on a subscriber connection");
            }
            Event::TooLarge { len, max } => {
                // Only messages are large enough to hit the limit: counted as dropped.
                tracing::warn!(len, max, "dropped a message larger than max_bulk_len");
                core.shared.inbox.count_dropped();
            }
        }
        Ok(())
    }

    /// Answers the oldest pending command.
    fn complete(&mut self, core: &mut Core, result: Result<(), Error>) -> Result<(), Error> {
        let Some(done) = self.pending.pop_front() else {
            return Ok(());
        };
        match (done.waiter, result) {
            (Waiter::User(reply), result) => {
                // The caller may have given up; the command took effect regardless.
                let _ = reply.send(result);
            }
            (Waiter::Restore, Ok(())) => {
                self.restoring = self.restoring.saturating_sub(1);
                if self.restoring == 0 {
                    core.up();
                }
            }
            // Restoring is all or nothing: drop this connection; the set is unchanged
            // and the reconnect callers get the refusal.
            (Waiter::Restore, Err(err)) => return Err(err),
            // Whatever the answer, the server is there.
            (Waiter::Probe, _) => {}
        }
        Ok(())
    }
}

fn lost(why: &str, source: Option<std::io::Error>) -> Error {
    match source {
        Some(e) => Error::with_source(ErrorKind::ConnectionLost, why.to_owned(), e),
        None => Error::new(ErrorKind::ConnectionLost, why.to_owned()),
    }
}
