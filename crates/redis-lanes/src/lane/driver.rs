//! The driver: the future that owns a lane's socket.
//!
//! Each poll it moves every queued request into one write buffer (auto-pipelining),
//! writes as much as the socket takes, reads in large chunks and decodes every complete
//! frame before it yields. Replies are matched to requests in FIFO order.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::conn::{answer, lost, Conn, Tally};
use super::down::{Down, Outcome};
use super::gate::Gate;
use super::health::{dead, Health, HealthOptions, LaneKind, Verdict};
use super::request::{Message, Request};
use super::state::LaneState;
use super::LaneOptions;
use crate::connect::Session;
use crate::error::Error;

/// Stop taking requests from the queue once this much is waiting to be written; the
/// rest waits for the next round, so one burst cannot grow the buffer without bound.
const MAX_WRITE_BATCH: usize = 1 << 20;
/// A connection that lived this long before it broke counts as having worked: the next
/// reconnect is tried at once rather than after a backoff pause.
const STABLE: Duration = Duration::from_secs(1);

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
/// answered with an error of kind [`ErrorKind::Closed`](crate::ErrorKind::Closed); later requests fail the same way.
#[must_use = "the lane does nothing unless its driver is polled (e.g. tokio::spawn(driver))"]
pub struct LaneDriver {
    inner: Option<DriverState>,
}

/// What lives as long as the lane: its queue, the callers waiting for `close()`, and
/// the current connection or the reconnect in progress.
struct DriverState {
    rx: mpsc::UnboundedReceiver<Message>,
    state: Arc<LaneState>,
    /// Callers of `close()` waiting for the socket to be closed.
    closers: Vec<oneshot::Sender<()>>,
    push_sender: Option<mpsc::Sender<redis::PushInfo>>,
    tally: Tally,
    link: Link,
    /// Set for a lane that reconnects when its connection breaks (the shared lane);
    /// `None` for dedicated lanes, which end instead.
    redial: Option<Arc<LaneOptions>>,
    /// Connections in a row that failed or broke right after being made; decides
    /// whether the next attempt waits a backoff pause.
    failures: u32,
    /// A gate reached in the queue and not yet opened: nothing queued after it is taken.
    gate: Option<Arc<Gate>>,
    /// The shared lane batches: new work waits one scheduler pass to join a larger
    /// batch. A dedicated lane writes at once: it carries one request at a time, and a
    /// blocking command should reach the server before anything can cancel it.
    kind: LaneKind,
    health_options: HealthOptions,
    /// The current connection's liveness check.
    health: Health,
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

impl fmt::Debug for LaneDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("LaneDriver");
        if let Some(state) = &self.inner {
            match &state.link {
                Link::Up(conn) => d.field("in_flight", &conn.in_flight()),
                Link::Down(down) => d.field("reconnecting", down),
                Link::Switching => &mut d,
            };
            d.field("client_id", &state.state.client_id());
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
        state: Arc<LaneState>,
        push_sender: Option<mpsc::Sender<redis::PushInfo>>,
        redial: Option<Arc<LaneOptions>>,
        health_options: HealthOptions,
        kind: LaneKind,
    ) -> Self {
        Self {
            inner: Some(DriverState {
                rx,
                state,
                closers: Vec::new(),
                push_sender,
                tally: Tally::default(),
                link: Link::Up(Conn::new(session)),
                redial,
                failures: 0,
                gate: None,
                kind,
                health_options,
                health: Health::new(health_options, kind),
            }),
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
        let Some(state) = self.inner.as_mut() else {
            return Poll::Ready(());
        };
        let outcome = state.poll_round(cx);
        state.publish_tally();
        match outcome {
            Poll::Pending => Poll::Pending,
            Poll::Ready(exit) => {
                if let Some(state) = self.inner.take() {
                    state.finish(exit);
                }
                Poll::Ready(())
            }
        }
    }
}

impl Drop for LaneDriver {
    fn drop(&mut self) {
        if let Some(state) = self.inner.take() {
            state.finish(Exit::Done);
        }
    }
}

impl DriverState {
    fn poll_round(&mut self, cx: &mut Context<'_>) -> Poll<Exit> {
        self.state.abort_waker.register(cx.waker());
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
                    Some(config) if self.closers.is_empty() && !self.state.is_closing() => {
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
            if self.state.aborted() {
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

            // 2. Read and decode every complete frame, before writing: a frame that is
            //    already here while the oldest request is still unwritten cannot be
            //    that request's reply, and is caught as a protocol error only if it is
            //    read before the request goes out. (Cheap: the socket's readiness is
            //    cached, so a read with nothing to read costs no system call.)
            match conn.poll_read(cx, &mut self.tally, self.push_sender.as_ref()) {
                Poll::Ready(Ok(())) => {
                    self.health.heard();
                    progress = true;
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Turn::Broken(err)),
                Poll::Pending => {}
            }

            // 3. Write what the socket takes: at once when `Conn::write_now` says so
            //    (callers come one at a time; or half the outstanding requests are
            //    buffered), otherwise after one scheduler pass. The caller that queued
            //    new work woke this task, and the runtime runs a freshly woken task
            //    right after its waker (Tokio's LIFO slot), so writing every time would
            //    send one request per write while the other callers woken by the last
            //    replies are about to queue theirs. Yielding once lets them join: with
            //    16 callers, ~13 requests per write instead of ~3. Writing the first half
            //    as soon as it is buffered lets the server work on it while the rest is
            //    queued (two groups of ~8 in flight at 16 tasks): +10–15% GETs at 16 and
            //    128 tasks in alternating runs of `examples/profile.rs`. (Writing at once
            //    whenever the server was idle split batches into one request and the
            //    rest, and cost throughput in the cluster bench.)
            if !conn.output.is_empty() && !yielding {
                if conn.deferred || self.kind != LaneKind::Shared || conn.write_now() {
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

            // 4. A quiet peer proves it is alive, or the connection is declared dead.
            while let Poll::Ready(verdict) = self.health.poll_tick(cx, conn.in_flight() > 0) {
                match verdict {
                    Verdict::Fine => {}
                    Verdict::SendProbe => {
                        self.tally.health_checks += 1;
                        // Not counted among the written requests, which are the
                        // callers': a test or a dashboard waiting for its own request
                        // to be written must not be fooled by a probe.
                        conn.accept(probe(), &mut Tally::default());
                        progress = true;
                    }
                    Verdict::Dead(silent) => {
                        self.state.counters.deaths.record(silent);
                        let err = dead(silent, self.health_options, self.kind);
                        return Poll::Ready(Turn::Broken(err));
                    }
                }
            }
            if let Some(err) = self.state.take_kill() {
                return Poll::Ready(Turn::Broken(err));
            }

            // 5. A graceful close ends once everything before it is answered.
            if !self.closers.is_empty() && conn.is_idle() {
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
        if self.state.aborted() {
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
    fn go_down(&mut self, config: Arc<LaneOptions>, cause: Error) {
        let Link::Up(conn) = std::mem::replace(&mut self.link, Link::Switching) else {
            return;
        };
        self.state.counters.connection_errors.fetch_add(1, Relaxed);
        self.state.set_disconnected();
        // A connection that breaks right after it was made (a server that takes the
        // handshake, then fails every command) must not make the lane spin.
        self.failures = if conn.opened.elapsed() >= STABLE {
            0
        } else {
            self.failures.saturating_add(1)
        };
        tracing::warn!(
            client_id = ?self.state.client_id(),
            error = %cause,
            in_flight = conn.in_flight(),
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
        self.state.set_reconnected(session.client_id);
        tracing::info!(
            client_id = ?session.client_id,
            attempts = down.attempts(),
            "reconnected"
        );
        self.link = Link::Up(Conn::new(session));
        self.health = Health::new(self.health_options, self.kind);
        // A kill was meant for the connection that is gone.
        let _ = self.state.take_kill();
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
                if conn.output.len() >= MAX_WRITE_BATCH {
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
                if req.generation.is_some_and(|g| g != self.state.generation()) {
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
        let c = &self.state.counters;
        add(&c.written_batches, t.batches);
        add(&c.written_requests, t.requests);
        add(&c.replies, t.replies);
        add(&c.server_errors, t.server_errors);
        add(&c.pushes, t.pushes);
        add(&c.pushes_dropped, t.pushes_dropped);
        add(&c.dropped_before_write, t.dropped_before_write);
        add(&c.health_checks, t.health_checks);
        let in_flight = match &self.link {
            Link::Up(conn) => conn.in_flight() as u64,
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
                    self.state.counters.connection_errors.fetch_add(1, Relaxed);
                }
                tracing::warn!(client_id = ?self.state.client_id(), error = %err, "lane failed");
                err
            }
        };
        self.state.end(&cause);
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
        self.state.counters.in_flight.store(0, Relaxed);
        for done in self.closers.drain(..) {
            let _ = done.send(());
        }
    }
}

/// The liveness probe: a `PING` whose reply nobody waits for. Any bytes read answer it;
/// its own reply is matched and dropped like any other.
fn probe() -> Request {
    Request {
        bytes: b"*1\r\n$4\r\nPING\r\n".to_vec(),
        frames: 1,
        keep_from: 0,
        reply: None,
        commit: None,
        permit: None,
        generation: None,
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

#[cfg(all(test, unix))]
#[path = "driver_tests.rs"]
mod tests;
