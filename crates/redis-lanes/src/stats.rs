//! A snapshot of a client's counters, for dashboards and alerts, and the guard that
//! keeps a waiter gauge true.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

/// Counters and gauges of a [`Client`](crate::Client) or [`Lane`](crate::Lane).
///
/// Counters only grow; gauges (`in_flight`, `queued`) are read at the moment of the
/// snapshot. New fields may be added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Requests written and awaiting their reply.
    pub in_flight: u64,
    /// Requests accepted but not yet written.
    pub queued: u64,
    /// Socket writes that carried one or more requests (auto-pipelined batches).
    pub written_batches: u64,
    /// Requests written (a pipeline counts once).
    pub written_requests: u64,
    /// Reply frames read.
    pub replies: u64,
    /// Replies that were server errors (`-ERR ...`), delivered to their callers.
    pub server_errors: u64,
    /// RESP3 push frames received (never taken for replies).
    pub pushes: u64,
    /// Push frames dropped because no push sender was set or its channel was full.
    pub pushes_dropped: u64,
    /// Requests whose caller gave up before they were written, so they never were.
    pub dropped_before_write: u64,
    /// Requests failed by the response timeout.
    pub timeouts: u64,
    /// Connections that ended with an I/O or protocol error.
    pub connection_errors: u64,
    /// Times the shared connection was re-established after it broke.
    pub reconnects: u64,
    /// Liveness probes (`PING`, or `CLIENT LIST ID` for a busy blocking lane) sent
    /// because a connection was quiet for a health-check interval.
    pub health_checks: u64,
    /// Connections declared dead because their server stayed silent past the health
    /// check's limit, of every kind. Each was closed; the shared lane reconnected.
    pub dead_connections: u64,
    /// Of those, busy blocking (or exclusive) lanes, found by a watch from the shared lane.
    pub blocking_dead_connections: u64,
    /// Of those, subscriber connections.
    pub subscriber_dead_connections: u64,
    /// The longest a silent connection went unnoticed: from its last sign of life to
    /// being declared dead.
    pub max_detect_time: std::time::Duration,
    /// Callers refused with [`ErrorKind::Backpressure`](crate::ErrorKind::Backpressure):
    /// the lane stayed full for `max_in_flight_wait`.
    pub backpressure: u64,
    /// Whether the lane's connection is up.
    pub connected: bool,
    /// Blocking lanes running a command now.
    pub blocking_busy: u64,
    /// Blocking lanes open and idle.
    pub blocking_idle: u64,
    /// Callers waiting for a blocking lane because all `max_blocking_lanes` are busy.
    pub blocking_waiters: u64,
    /// Blocking calls whose caller gave up (dropped future, deadline, `close()`).
    pub blocking_cancels: u64,
    /// Raced replies whose data was put back where it came from.
    pub orphans_restored: u64,
    /// Raced replies whose data was reported, not restored (see `Orphan`).
    pub orphans_reported: u64,
    /// Cancelled commands whose reply could not be inspected (the lane was closed).
    pub orphans_unrecoverable: u64,
    /// Cancels where `CLIENT UNBLOCK` was refused or impossible, so the lane was closed.
    pub unblock_fallbacks: u64,
    /// Pub/sub messages received by this client's subscribers.
    pub subscriber_messages: u64,
    /// Pub/sub messages dropped by the subscribers' overflow policy (see
    /// [`OverflowPolicy`](crate::OverflowPolicy)).
    pub subscriber_dropped: u64,
    /// Exclusive lanes on loan now (see [`Client::exclusive`](crate::Client::exclusive)),
    /// including ones whose reset after the lease is still running.
    pub exclusive_busy: u64,
    /// Exclusive lanes open and idle.
    pub exclusive_idle: u64,
    /// Callers waiting for an exclusive lane because all `max_exclusive_lanes` are busy.
    pub exclusive_waiters: u64,
    /// Exclusive lanes closed instead of reused when their lease ended, because the
    /// connection broke or its state could not be reset in time.
    pub exclusive_discards: u64,
    /// Optimistic transactions run again because a watched key changed (or the body
    /// asked for another attempt).
    pub transaction_retries: u64,
    /// Optimistic transactions that ran out of retries
    /// ([`ErrorKind::TransactionConflict`](crate::ErrorKind::TransactionConflict)).
    pub transaction_conflicts: u64,
    /// Cluster only: `MOVED` answers followed (the slot lives elsewhere now).
    pub moved_redirects: u64,
    /// Cluster only: `ASK` answers followed (the key is being migrated).
    pub ask_redirects: u64,
    /// Cluster only: `TRYAGAIN` and `CLUSTERDOWN` answers waited out.
    pub retried_later: u64,
}

/// Adds another lane's or node's counters: counters and gauges add up, the longest
/// detection time is the longest of both, and `connected` holds only if both are.
impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, other: Stats) {
        let Stats {
            in_flight,
            queued,
            written_batches,
            written_requests,
            replies,
            server_errors,
            pushes,
            pushes_dropped,
            dropped_before_write,
            timeouts,
            connection_errors,
            reconnects,
            health_checks,
            dead_connections,
            blocking_dead_connections,
            subscriber_dead_connections,
            max_detect_time,
            backpressure,
            connected,
            blocking_busy,
            blocking_idle,
            blocking_waiters,
            blocking_cancels,
            orphans_restored,
            orphans_reported,
            orphans_unrecoverable,
            unblock_fallbacks,
            subscriber_messages,
            subscriber_dropped,
            exclusive_busy,
            exclusive_idle,
            exclusive_waiters,
            exclusive_discards,
            transaction_retries,
            transaction_conflicts,
            moved_redirects,
            ask_redirects,
            retried_later,
        } = other;
        self.in_flight += in_flight;
        self.queued += queued;
        self.written_batches += written_batches;
        self.written_requests += written_requests;
        self.replies += replies;
        self.server_errors += server_errors;
        self.pushes += pushes;
        self.pushes_dropped += pushes_dropped;
        self.dropped_before_write += dropped_before_write;
        self.timeouts += timeouts;
        self.connection_errors += connection_errors;
        self.reconnects += reconnects;
        self.health_checks += health_checks;
        self.dead_connections += dead_connections;
        self.blocking_dead_connections += blocking_dead_connections;
        self.subscriber_dead_connections += subscriber_dead_connections;
        self.max_detect_time = self.max_detect_time.max(max_detect_time);
        self.backpressure += backpressure;
        self.connected &= connected;
        self.blocking_busy += blocking_busy;
        self.blocking_idle += blocking_idle;
        self.blocking_waiters += blocking_waiters;
        self.blocking_cancels += blocking_cancels;
        self.orphans_restored += orphans_restored;
        self.orphans_reported += orphans_reported;
        self.orphans_unrecoverable += orphans_unrecoverable;
        self.unblock_fallbacks += unblock_fallbacks;
        self.subscriber_messages += subscriber_messages;
        self.subscriber_dropped += subscriber_dropped;
        self.exclusive_busy += exclusive_busy;
        self.exclusive_idle += exclusive_idle;
        self.exclusive_waiters += exclusive_waiters;
        self.exclusive_discards += exclusive_discards;
        self.transaction_retries += transaction_retries;
        self.transaction_conflicts += transaction_conflicts;
        self.moved_redirects += moved_redirects;
        self.ask_redirects += ask_redirects;
        self.retried_later += retried_later;
    }
}

/// Connections declared dead, and the longest time one took to be found.
#[derive(Debug, Default)]
pub(crate) struct Deaths {
    count: AtomicU64,
    max_silence_ms: AtomicU64,
}

impl Deaths {
    /// Counts one connection found dead after `silence` without a sign of life.
    pub(crate) fn record(&self, silence: Duration) {
        self.count.fetch_add(1, Relaxed);
        let ms = u64::try_from(silence.as_millis()).unwrap_or(u64::MAX);
        self.max_silence_ms.fetch_max(ms, Relaxed);
    }

    /// Adds these deaths to `stats`; returns how many there were.
    pub(crate) fn add_to(&self, stats: &mut Stats) -> u64 {
        let count = self.count.load(Relaxed);
        stats.dead_connections += count;
        let max = Duration::from_millis(self.max_silence_ms.load(Relaxed));
        stats.max_detect_time = stats.max_detect_time.max(max);
        count
    }
}

/// Counts a caller as waiting for exactly as long as it waits, also when its future is
/// dropped mid-wait. `SeqCst`: the in-flight bound reads the count to decide whether a
/// release must wake someone, so the increment must be seen before the waiter sleeps.
#[derive(Debug)]
pub(crate) struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    pub(crate) fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}
