//! Exclusive lanes: dedicated connections leased to one caller at a time, for the
//! connection state a shared lane cannot hold (`WATCH`, `MULTI`/`EXEC`, `SELECT`,
//! `CLIENT SETNAME`), and the optimistic-transaction helper built on them.
//!
//! - `options.rs`: the builder options and their defaults.
//! - `lease.rs`: [`Exclusive`], the leased connection users hold, and how it sends.
//! - `route.rs`: which commands an exclusive lane takes, refuses, or runs as blocking.
//! - `track.rs`: what the lease's commands may have changed on the connection.
//! - `blocking.rs`: a blocking command on a lease, cancelled on the server when dropped.
//! - `reset.rs`: what happens when a lease ends: reset, verify, then reuse or close.
//! - `transaction.rs`: `WATCH` / read / `MULTI`...`EXEC` with retries.

mod blocking;
mod lease;
mod options;
mod reset;
mod route;
mod track;
mod transaction;

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

pub use lease::Exclusive;
pub(crate) use options::ExclusiveOptions;
pub(crate) use transaction::run_transaction;

use crate::error::Error;
use crate::lane::Lane;
use crate::lane::LaneOptions;
use crate::pool::{Pool, PoolConfig};
use crate::stats::Stats;

/// Whether the server has `RESET` (Redis 6.2 and later): not asked yet, yes, no.
const RESET_UNKNOWN: u8 = 0;
const RESET_YES: u8 = 1;
const RESET_NO: u8 = 2;

/// Everything a client's exclusive lanes share.
pub(crate) struct Exclusives {
    pool: Arc<Pool>,
    /// One of the `RESET_*` values; learned from the first lease, then kept.
    reset: AtomicU8,
    discards: AtomicU64,
    retries: AtomicU64,
    conflicts: AtomicU64,
}

impl fmt::Debug for Exclusives {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exclusives")
            .field("pool", &self.pool)
            .field("reset", &self.reset.load(Relaxed))
            .finish()
    }
}

impl Exclusives {
    /// Sets up the (lazily filled) pool of lanes opened with `lane`. Needs a Tokio
    /// runtime: the pool's idle reaper is spawned here.
    pub(crate) fn new(
        options: &ExclusiveOptions,
        lane: &LaneOptions,
        generation: Arc<std::sync::atomic::AtomicU64>,
    ) -> Arc<Self> {
        let pool = Pool::new(
            lane,
            PoolConfig {
                what: "exclusive lane",
                limit_name: "max_exclusive_lanes",
                max_lanes: options.max_lanes,
                idle_timeout: options.idle_timeout,
                acquire_timeout: options.acquire_timeout,
                // A lease may be inside MULTI, where a PING would join the transaction.
                kind: crate::lane::LaneKind::Exclusive,
            },
            generation,
        );
        Arc::new(Self {
            pool,
            reset: AtomicU8::new(RESET_UNKNOWN),
            discards: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
        })
    }

    /// Refuses new leases and closes idle lanes. Leased lanes close when their lease
    /// ends (their reset sees the client closing).
    pub(crate) fn close(&self) {
        self.pool.close();
    }

    pub(crate) fn fill_stats(&self, stats: &mut Stats) {
        stats.exclusive_busy = self.pool.busy() as u64;
        stats.exclusive_idle = self.pool.idle_count() as u64;
        stats.exclusive_waiters = self.pool.waiters() as u64;
        stats.exclusive_discards = self.discards.load(Relaxed);
        stats.transaction_retries = self.retries.load(Relaxed);
        stats.transaction_conflicts = self.conflicts.load(Relaxed);
    }

    /// Whether the server has `RESET`, asking once on a clean, freshly leased `lane`.
    ///
    /// `COMMAND INFO RESET` answers `[nil]` for a command the server does not have (and
    /// for one renamed away). A refusal (an ACL without `COMMAND`) counts as "no": the
    /// step-by-step reset works on every server.
    async fn has_reset(&self, lane: &Lane) -> Result<bool, Error> {
        match self.reset.load(Relaxed) {
            RESET_YES => return Ok(true),
            RESET_NO => return Ok(false),
            _ => {}
        }
        let mut probe = redis::cmd("COMMAND");
        probe.arg("INFO").arg("RESET");
        let has = match lane.send_unrouted(&probe).await? {
            redis::Value::Array(items) => items
                .first()
                .is_some_and(|item| !matches!(item, redis::Value::Nil)),
            _ => false,
        };
        self.reset
            .store(if has { RESET_YES } else { RESET_NO }, Relaxed);
        Ok(has)
    }
}
