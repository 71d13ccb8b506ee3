//! State a lane's handles and its driver both see. It holds no sender of the lane's
//! queue: if it did, the driver would keep its own queue open and never notice that the
//! last handle is gone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::task::AtomicWaker;

use super::limit::Limit;
use super::LaneOptions;
use crate::connect::ClientIdCell;
use crate::error::Error;
use crate::stats::Stats;

/// Counters the driver accumulates per poll and publishes here in one go.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) in_flight: AtomicU64,
    pub(crate) written_batches: AtomicU64,
    pub(crate) written_requests: AtomicU64,
    pub(crate) replies: AtomicU64,
    pub(crate) server_errors: AtomicU64,
    pub(crate) pushes: AtomicU64,
    pub(crate) pushes_dropped: AtomicU64,
    pub(crate) dropped_before_write: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) connection_errors: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    /// Liveness probes sent, and connections declared dead (by the lane's own check or
    /// by a watch from the shared lane).
    pub(crate) health_checks: AtomicU64,
    /// Callers refused because the lane stayed full for `max_in_flight_wait`.
    pub(crate) backpressure: AtomicU64,
    pub(crate) deaths: crate::stats::Deaths,
}

#[derive(Debug)]
pub(crate) struct LaneState {
    pub(crate) counters: Counters,
    /// In-flight slots: a request holds one from before it is queued until it is
    /// answered, so waiting for a permit is the backpressure.
    pub(crate) limit: Arc<Limit>,
    /// How long a caller may wait for room under the limit; `None`: as long as it takes.
    pub(crate) max_in_flight_wait: Option<Duration>,
    /// Why the lane ended; `None` while it runs.
    terminal: Mutex<Option<Error>>,
    /// Set by `close()`: new requests are refused at once.
    closing: AtomicBool,
    /// Set when `close()` ran out of time: the driver fails what is left and ends.
    abort: AtomicBool,
    pub(crate) abort_waker: AtomicWaker,
    /// Set by [`LaneState::kill`]: the connection was declared dead from outside.
    killed: AtomicBool,
    kill_cause: Mutex<Option<Error>>,
    /// The connection's `CLIENT ID`; replaced when the lane reconnects.
    client_id: ClientIdCell,
    /// Which connection the lane is on: bumped by every reconnect. A dedicated lane
    /// stores the shared lane's generation it was opened under, so a connection from
    /// before a break is recognised and discarded; shared through an `Arc` so pools can
    /// compare against the live value.
    pub(crate) generation: Arc<AtomicU64>,
    /// `false` while a reconnecting lane has no connection.
    connected: AtomicBool,
    pub(crate) db: i64,
    pub(crate) response_timeout: Option<Duration>,
    pub(crate) close_timeout: Duration,
}

impl LaneState {
    pub(crate) fn new(
        options: &LaneOptions,
        client_id: Option<i64>,
        generation: Arc<AtomicU64>,
    ) -> Self {
        Self {
            counters: Counters::default(),
            limit: Arc::new(Limit::new(
                options.max_in_flight,
                options.max_in_flight_bytes,
            )),
            max_in_flight_wait: options.max_in_flight_wait,
            terminal: Mutex::new(None),
            closing: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            abort_waker: AtomicWaker::new(),
            killed: AtomicBool::new(false),
            kill_cause: Mutex::new(None),
            client_id: ClientIdCell::new(client_id),
            generation,
            connected: AtomicBool::new(true),
            db: options.connect.info.db,
            response_timeout: options.response_timeout,
            close_timeout: options.close_timeout,
        }
    }

    pub(crate) fn client_id(&self) -> Option<i64> {
        self.client_id.get()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Relaxed) && !self.has_ended()
    }

    /// The driver lost its connection and is reconnecting.
    pub(crate) fn set_disconnected(&self) {
        self.connected.store(false, Relaxed);
    }

    /// The driver is on a new connection: a new generation with its own `CLIENT ID`.
    pub(crate) fn set_reconnected(&self, client_id: Option<i64>) {
        self.client_id.set(client_id);
        self.generation.fetch_add(1, Relaxed);
        self.counters.reconnects.fetch_add(1, Relaxed);
        self.connected.store(true, Relaxed);
    }

    /// Records why the lane ended (the first cause wins) and wakes every caller
    /// waiting for an in-flight slot.
    pub(crate) fn end(&self, cause: &Error) {
        // A poisoned lock only means another thread panicked mid-assignment of an
        // `Option`; the value is still usable.
        let mut terminal = self.terminal.lock().unwrap_or_else(|p| p.into_inner());
        if terminal.is_none() {
            *terminal = Some(cause.clone());
        }
        drop(terminal);
        self.limit.close();
    }

    /// The error a caller gets from a lane that has ended.
    pub(crate) fn terminal_error(&self) -> Error {
        let terminal = self.terminal.lock().unwrap_or_else(|p| p.into_inner());
        terminal.clone().unwrap_or_else(Error::closed)
    }

    pub(crate) fn has_ended(&self) -> bool {
        self.terminal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    pub(crate) fn start_closing(&self) {
        self.closing.store(true, Relaxed);
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Relaxed)
    }

    pub(crate) fn abort(&self) {
        self.abort.store(true, Relaxed);
        self.abort_waker.wake();
    }

    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Relaxed)
    }

    /// Closes the current connection as if it had broken with `cause`: callers in flight
    /// get it (outcome unknown), and a reconnecting lane reconnects.
    pub(crate) fn kill(&self, cause: Error) {
        if let Ok(mut slot) = self.kill_cause.lock() {
            slot.get_or_insert(cause);
        }
        self.killed.store(true, Relaxed);
        self.abort_waker.wake();
    }

    /// The cause of a [`LaneState::kill`] not yet acted on.
    pub(crate) fn take_kill(&self) -> Option<Error> {
        if !self.killed.load(Relaxed) {
            return None;
        }
        self.killed.store(false, Relaxed);
        self.kill_cause.lock().ok()?.take()
    }

    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        let in_flight = c.in_flight.load(Relaxed);
        let ended = self.has_ended();
        // Every accepted request holds a permit until answered; those not written yet
        // are the queue.
        let held = if ended { 0 } else { self.limit.in_use() as u64 };
        let mut stats = Stats {
            in_flight,
            queued: held.saturating_sub(in_flight),
            written_batches: c.written_batches.load(Relaxed),
            written_requests: c.written_requests.load(Relaxed),
            replies: c.replies.load(Relaxed),
            server_errors: c.server_errors.load(Relaxed),
            pushes: c.pushes.load(Relaxed),
            pushes_dropped: c.pushes_dropped.load(Relaxed),
            dropped_before_write: c.dropped_before_write.load(Relaxed),
            timeouts: c.timeouts.load(Relaxed),
            connection_errors: c.connection_errors.load(Relaxed),
            reconnects: c.reconnects.load(Relaxed),
            health_checks: c.health_checks.load(Relaxed),
            backpressure: c.backpressure.load(Relaxed),
            connected: self.is_connected(),
            // The blocking side is filled in by the client that owns the pool.
            ..Stats::default()
        };
        c.deaths.add_to(&mut stats);
        stats
    }
}
