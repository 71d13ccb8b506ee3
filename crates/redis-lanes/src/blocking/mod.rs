//! Blocking lanes: dedicated connections for commands that hold their connection until
//! the server answers (`BLPOP`, `XREAD ... BLOCK`, `WAIT`, ...), cancelled on the server
//! when their caller gives up, without losing data that raced the cancel.
//!
//! - `call.rs`: one blocking call and its cancel guard (the `Drop` side of the contract).
//! - `recover.rs`: what happens after a cancel: the late reply, the restore, the report.
//! - `orphan.rs`: the pure plan for putting raced data back.

mod call;
mod orphan;
mod recover;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use call::{run, Commands};
pub use orphan::OrphanOutcome;
pub(crate) use recover::{handle_replies, read_late, report_unrecoverable, Sent, Unblock};

use crate::pool::Pool;
use crate::route::BlockingCommands;

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
pub(crate) struct Counters {
    pub(crate) cancels: AtomicU64,
    pub(crate) restored: AtomicU64,
    pub(crate) reported: AtomicU64,
    pub(crate) unrecoverable: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
}

impl Counters {
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
    pub(crate) counters: Counters,
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

impl fmt::Debug for Blocking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocking")
            .field("pool", &self.pool)
            .field("grace", &self.grace)
            .field("hook", &self.hook.is_some())
            .finish()
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
