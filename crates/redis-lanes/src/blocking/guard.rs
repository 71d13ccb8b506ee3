//! The cancel guard: one blocking call written on a dedicated lane, which runs the
//! cancellation contract when its future is dropped before the answer arrives. The same
//! guard serves a blocking lane from the pool and an exclusive lease's own lane; only
//! what happens to the lane afterwards differs ([`Holder`]).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::call::Commands;
use super::recover::{self, Target};
use super::Blocking;
use crate::error::Error;
use crate::lane::{Commit, Lane, Reply, ReplyRx};
use crate::pool::Lease;
use crate::route::{Block, BlockKind};

/// Who has the lane the call runs on.
pub(crate) enum Holder<'a> {
    /// A lane of the blocking pool, on loan to this call: back to the pool once its
    /// reply is read, closed if its state is unknown.
    Pool(Lease),
    /// An exclusive lease's own lane. The lease stays with its user; after a cancel it
    /// waits on `recovering` before it sends anything else.
    Lease {
        lane: &'a Lane,
        recovering: &'a mut Option<oneshot::Receiver<()>>,
    },
}

impl Holder<'_> {
    fn lane(&self) -> Option<&Lane> {
        match self {
            Holder::Pool(lease) => lease.lane(),
            Holder::Lease { lane, .. } => Some(lane),
        }
    }

    /// The call ended without a cancel: a pooled lane goes back (its reply was read)
    /// or is closed (`clean` false: the lane failed).
    fn finish(self, clean: bool) {
        if let Holder::Pool(lease) = self {
            if clean {
                lease.release();
            } else {
                lease.discard();
            }
        }
    }

    /// What the recovery of a cancelled call takes with it.
    fn into_target(self) -> Target {
        match self {
            Holder::Pool(lease) => Target::Pool(lease),
            Holder::Lease { lane, recovering } => {
                let (done, waiting) = oneshot::channel();
                *recovering = Some(waiting);
                Target::Lease {
                    lane: lane.clone(),
                    done,
                }
            }
        }
    }
}

/// Writes `commands` on the holder's lane and waits for the answer, up to the
/// commands' own timeout plus grace (none for `0`) or `close()`.
///
/// # Cancel safety
///
/// Dropping the future follows the cancellation contract: not yet written, never
/// written; written, `CLIENT UNBLOCK` is queued on the shared lane before `drop`
/// returns, and a tracked recovery reads the late reply and puts back any data it
/// carried before the lane is used again.
pub(crate) async fn call(
    holder: Holder<'_>,
    commands: Commands<'_>,
    block: Block,
    shared: &Lane,
    blocking: &Arc<Blocking>,
    tracked: TaskTrackerToken,
) -> Result<Reply, Error> {
    let Some(lane) = holder.lane().cloned() else {
        holder.finish(true);
        return Err(Error::closed().not_sent());
    };
    let commit = Arc::new(Commit::default());
    let late = match commands.submit(&lane, &commit) {
        Ok(late) => late,
        Err(err) => {
            // Nothing was sent: the lane is clean (or closed, and then dropped).
            holder.finish(true);
            return Err(err);
        }
    };
    let mut guard = CancelGuard {
        _tracked: tracked,
        kind: block.kind,
        holder: Some(holder),
        late: Some(late),
        commit,
        commands,
        shared,
        blocking,
    };
    let deadline = block.timeout.map(|t| t.saturating_add(blocking.grace));
    let answer = {
        let Some(late) = guard.late.as_mut() else {
            return Err(Error::closed());
        };
        tokio::select! {
            // Biased: a reply that is ready wins over a deadline that passed in the same
            // poll, which would otherwise cancel it and make its recovery restore data.
            biased;
            answer = late => Some(answer),
            () = blocking.shutdown.cancelled() => None,
            // Never completes: a lane declared dead is closed, and `late` fails.
            () = super::watch::watch(shared, &lane, blocking.health, &blocking.watches) => None,
            () = super::sleep_or_forever(deadline) => None,
        }
    };
    match answer {
        Some(answer) => {
            guard.late = None;
            let answer = answer.unwrap_or_else(|_| Err(lane.terminal_error()));
            if let Some(holder) = guard.holder.take() {
                holder.finish(answer.is_ok());
            }
            answer
        }
        // Dropping the guard runs the cancellation contract.
        None => Err(super::gave_up(blocking)),
    }
}

/// A blocking call that was queued on its lane. Dropped while `late` is still there, it
/// runs the cancellation contract.
struct CancelGuard<'a, 'h> {
    /// Counts this call among the work `close()` waits for. Fields drop after
    /// `Drop::drop` has handed a cancel over to a tracked recovery, so `close()` never
    /// sees a gap between the call and its recovery.
    _tracked: TaskTrackerToken,
    /// What the router found the call to be; the recovery plans restores by it.
    kind: BlockKind,
    holder: Option<Holder<'h>>,
    late: Option<ReplyRx>,
    commit: Arc<Commit>,
    commands: Commands<'a>,
    shared: &'a Lane,
    blocking: &'a Arc<Blocking>,
}

impl Drop for CancelGuard<'_, '_> {
    fn drop(&mut self) {
        let (Some(holder), Some(late)) = (self.holder.take(), self.late.take()) else {
            return; // Answered.
        };
        self.blocking.counters.cancels.fetch_add(1, Relaxed);
        if self.commit.cancel() {
            // Never written, and now it never will be: the lane is clean.
            holder.finish(true);
            return;
        }
        // Written: cancel it on the server. Queued on the shared lane synchronously, so
        // anything this client sends after this drop (a dropped lease's reset included)
        // is executed after the unblock.
        let unblock = holder.lane().and_then(|lane| self.shared.unblock(lane));
        let recovery = recover::recover(
            holder.into_target(),
            late,
            unblock,
            self.commands.to_sent(self.kind, &self.blocking.declared),
            self.shared.clone(),
            Arc::clone(self.blocking),
        );
        let tracked = self.blocking.recoveries.track_future(recovery);
        // Spawning on a runtime that is shutting down drops the task, which drops the
        // lease (closing a pooled lane: the server releases the blocked client) or the
        // lease's `done`, so a waiting lease finds its lane closed soon enough.
        drop(self.blocking.runtime.spawn(tracked));
    }
}
