//! Blocking lanes: dedicated connections for commands that hold their connection until
//! the server answers (`BLPOP`, `XREAD ... BLOCK`, `WAIT`, ...), cancelled on the server
//! when their caller gives up, without losing data that raced the cancel.
//!
//! - `call.rs`: one blocking call on a pooled lane; what a call sent.
//! - `guard.rs`: the cancel guard (the `Drop` side of the contract), for pooled lanes
//!   and exclusive leases alike.
//! - `recover.rs`: what happens after a cancel: the late reply, the restore, the report.
//! - `orphan.rs`: the pure plan for putting raced data back.

mod call;
pub(crate) mod guard;
mod orphan;
mod recover;
mod watch;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use call::{run, Commands};
pub(crate) use guard::Holder;
pub use orphan::OrphanOutcome;
pub(crate) use watch::watch;

use crate::lane::LaneOptions;
use crate::pool::{Pool, PoolConfig};
use crate::route::BlockingCommands;
use crate::stats::Stats;

/// A blocking command's reply that raced its cancellation and carried data.
///
/// Reported to the hook set with [`Builder::on_orphan`](crate::Builder::on_orphan), and
/// counted in [`Stats`](crate::Stats).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Orphan {
    /// The cancelled command, name first, as sent.
    pub command: Vec<Vec<u8>>,
    /// The late reply; `None` when it could not be read (the lane had to be closed).
    pub reply: Option<Value>,
    /// What redis-lanes did with it.
    pub outcome: OrphanOutcome,
}

/// Receives raced replies instead of the default restore. See
/// [`Builder::on_orphan`](crate::Builder::on_orphan).
pub(crate) type OrphanHook = Arc<dyn Fn(&Orphan) + Send + Sync>;

/// Counters of the blocking side, published in [`Stats`](crate::Stats).
#[derive(Debug, Default)]
pub(crate) struct CancelCounters {
    pub(crate) cancels: AtomicU64,
    pub(crate) restored: AtomicU64,
    pub(crate) reported: AtomicU64,
    pub(crate) unrecoverable: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
}

impl CancelCounters {
    pub(crate) fn count(&self, outcome: OrphanOutcome) {
        match outcome {
            OrphanOutcome::Restored => self.restored.fetch_add(1, Relaxed),
            OrphanOutcome::Reported => self.reported.fetch_add(1, Relaxed),
            OrphanOutcome::Unrecoverable => self.unrecoverable.fetch_add(1, Relaxed),
        };
    }
}

/// Everything a client's blocking calls share.
pub(crate) struct Blocking {
    pub(crate) pool: Arc<Pool>,
    /// Added to a command's own timeout to make its client-side deadline.
    pub(crate) grace: Duration,
    pub(crate) declared: BlockingCommands,
    pub(crate) hook: Option<OrphanHook>,
    pub(crate) counters: CancelCounters,
    /// How busy lanes are watched, and what the watches found.
    pub(crate) health: crate::lane::HealthOptions,
    pub(crate) watches: watch::WatchCounters,
    /// Cancelled by `close()`: in-flight calls stop waiting and cancel on the server.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when the client is dropped, or when `close()` stops waiting for
    /// recoveries: they give up at once (counting what they could not recover), so no
    /// recovery keeps the client's connections alive after its last handle is gone.
    pub(crate) abandon: CancellationToken,
    /// Recoveries in progress; `close()` waits for them.
    pub(crate) recoveries: TaskTracker,
    /// Where recoveries run. A `Drop` may happen outside the runtime's context, so the
    /// handle is kept rather than looked up.
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Blocking {
    /// Sets up the (lazily filled) pool of blocking lanes opened with `lane`, stamped
    /// with the shared lane's `generation`. Recoveries run on `runtime`.
    pub(crate) fn new(
        options: &BlockingOptions,
        lane: &LaneOptions,
        generation: Arc<AtomicU64>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        let pool = Pool::new(
            lane,
            PoolConfig {
                what: "blocking lane",
                limit_name: "max_blocking_lanes",
                max_lanes: options.max_lanes,
                idle_timeout: options.idle_timeout,
                acquire_timeout: options.acquire_timeout,
                // Between calls a blocking lane is idle, and a PING is harmless.
                kind: crate::lane::LaneKind::Blocking,
            },
            generation,
        );
        Self {
            pool,
            grace: options.grace,
            declared: options.declared.clone(),
            hook: options.hook.clone(),
            counters: CancelCounters::default(),
            health: lane.health,
            watches: watch::WatchCounters::default(),
            shutdown: CancellationToken::new(),
            abandon: CancellationToken::new(),
            recoveries: TaskTracker::new(),
            runtime,
        }
    }

    /// Adds the pool's gauges and the cancel counters to `stats`.
    pub(crate) fn fill_stats(&self, stats: &mut Stats) {
        let c = &self.counters;
        stats.blocking_busy = self.pool.busy() as u64;
        stats.blocking_idle = self.pool.idle_count() as u64;
        stats.blocking_waiters = self.pool.waiters() as u64;
        stats.blocking_cancels = c.cancels.load(Relaxed);
        stats.orphans_restored = c.restored.load(Relaxed);
        stats.orphans_reported = c.reported.load(Relaxed);
        stats.orphans_unrecoverable = c.unrecoverable.load(Relaxed);
        stats.unblock_fallbacks = c.fallbacks.load(Relaxed);
        stats.health_checks += self.watches.checks.load(Relaxed);
        stats.blocking_dead_connections = self.watches.deaths.add_to(stats);
    }
}

impl fmt::Debug for Blocking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocking")
            .field("pool", &self.pool)
            .field("grace", &self.grace)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

/// Options of the blocking-lane pool.
#[derive(Clone)]
pub(crate) struct BlockingOptions {
    pub(crate) max_lanes: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) acquire_timeout: Duration,
    pub(crate) grace: Duration,
    pub(crate) declared: BlockingCommands,
    pub(crate) hook: Option<OrphanHook>,
}

impl std::fmt::Debug for BlockingOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingOptions")
            .field("max_lanes", &self.max_lanes)
            .field("idle_timeout", &self.idle_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("grace", &self.grace)
            .field("declared", &self.declared)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Default for BlockingOptions {
    fn default() -> Self {
        Self {
            max_lanes: 64,
            idle_timeout: Duration::from_secs(60),
            acquire_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(2),
            declared: BlockingCommands::new(),
            hook: None,
        }
    }
}

/// Sleeps until a blocking call's client-side deadline; forever when it has none.
pub(crate) async fn sleep_or_forever(deadline: Option<Duration>) {
    match deadline {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// The error of a blocking call that stopped waiting: `close()` or its deadline.
pub(crate) fn gave_up(blocking: &Blocking) -> crate::Error {
    if blocking.shutdown.is_cancelled() {
        return crate::Error::closed();
    }
    crate::Error::new(
        crate::ErrorKind::Timeout,
        format!(
            "no reply within the command's own timeout plus {:?} of grace",
            blocking.grace
        ),
    )
}
