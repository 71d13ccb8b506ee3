//! A blocking command on a lease, and the guard that cancels it on the server when its
//! future is dropped.
//!
//! The contract is the blocking lanes' (see `crate::blocking`), with one difference: the
//! lane stays with its lease instead of going back to a pool, so the recovery does not
//! hold the lane. It only has to finish reading the late reply (and confirming every
//! `CLIENT UNBLOCK`) before the lease sends anything else, which the lease waits for.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::Exclusive;
use crate::blocking::{self, Blocking, Commands, Sent};
use crate::error::Error;
use crate::lane::{Commit, Lane, Reply};
use crate::route::Block;

type Answer = Result<Reply, Error>;

/// A blocking command written (or about to be) on a lease. Dropped before its answer
/// arrived, it runs the cancellation contract.
struct InFlight<'a> {
    /// Counts the call among the work `close()` waits for. Fields drop after
    /// `Drop::drop` has handed a cancel over to a tracked recovery, so there is no gap.
    _tracked: TaskTrackerToken,
    late: Option<oneshot::Receiver<Answer>>,
    commit: Arc<Commit>,
    commands: Commands<'a>,
    lane: &'a Lane,
    shared: &'a Lane,
    blocking: &'a Arc<Blocking>,
    /// Where the lease learns that a recovery must finish before it sends again.
    recovering: &'a mut Option<oneshot::Receiver<()>>,
}

/// Runs blocking commands on the lease, with the client-side deadline of a blocking
/// lane (the commands' own timeout plus grace) and `close()` cancelling them.
///
/// # Cancel safety
///
/// Not yet written: never written. Written: `CLIENT UNBLOCK` is queued on the shared
/// lane before `drop` returns; a tracked recovery reads the late reply and restores
/// any data it carried.
pub(super) async fn run(
    conn: &mut Exclusive,
    commands: Commands<'_>,
    block: Block,
) -> Result<Reply, Error> {
    let Exclusive {
        core,
        lane,
        recovering,
        ..
    } = conn;
    let blocking = core.blocking();
    // Taken before the check: once `close()` has cancelled `shutdown` it waits for
    // every token, so this call either sees the cancel or is waited for.
    let tracked = blocking.recoveries.token();
    if blocking.shutdown.is_cancelled() {
        return Err(Error::closed().not_sent());
    }
    let commit = Arc::new(Commit::default());
    let late = commands.submit(lane, &commit)?;
    let mut call = InFlight {
        _tracked: tracked,
        late: Some(late),
        commit,
        commands,
        lane,
        shared: core.shared_lane(),
        blocking,
        recovering,
    };
    let deadline = block.timeout.map(|t| t.saturating_add(blocking.grace));
    let answer = {
        let Some(late) = call.late.as_mut() else {
            return Err(Error::closed());
        };
        tokio::select! {
            // Biased: a reply that is ready wins over a deadline that passed in the same
            // poll, which would otherwise cancel it and make its recovery restore data.
            biased;
            answer = late => Some(answer),
            () = blocking.shutdown.cancelled() => None,
            () = crate::blocking::sleep_or_forever(deadline) => None,
        }
    };
    match answer {
        Some(answer) => {
            call.late = None;
            answer.unwrap_or_else(|_| Err(call.lane.terminal_error()))
        }
        // Dropping `call` runs the cancellation contract.
        None => Err(crate::blocking::gave_up(blocking)),
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let Some(late) = self.late.take() else {
            return; // Answered.
        };
        self.blocking.counters.cancels.fetch_add(1, Relaxed);
        if self.commit.cancel() {
            return; // Never written, and now it never will be: nothing to undo.
        }
        // Written: cancel it on the server. Queued on the shared lane synchronously, so
        // it is ordered before anything the client sends after this drop, including the
        // reset a dropped lease queues next.
        let unblock = self.shared.unblock(self.lane);
        let (done, waiting) = oneshot::channel();
        *self.recovering = Some(waiting);
        let recovery = recover(
            self.lane.clone(),
            self.shared.clone(),
            late,
            unblock,
            self.commands.to_sent(),
            Arc::clone(self.blocking),
            done,
        );
        let tracked = self.blocking.recoveries.track_future(recovery);
        // On a runtime that is shutting down the task is dropped, and with it `done`:
        // the lease then finds its lane closed soon enough (the runtime's drivers stop).
        drop(self.blocking.runtime.spawn(tracked));
    }
}

/// Reads the late reply, then lets the lease go on (`done`) and restores raced data. If
/// the server cannot be told to unblock, the lane is closed, which releases the blocked
/// client; the lease then fails with that error.
async fn recover(
    lane: Lane,
    shared: Lane,
    late: oneshot::Receiver<Answer>,
    unblock: blocking::Unblock,
    sent: Sent,
    blocking: Arc<Blocking>,
    done: oneshot::Sender<()>,
) {
    let abandoned = blocking.abandon.clone();
    let outcome = tokio::select! {
        biased;
        () = abandoned.cancelled() => Err("the client was dropped or closed".to_owned()),
        outcome = blocking::read_late(&lane, &shared, late, unblock) => outcome,
    };
    match outcome {
        Ok(reply) => {
            drop(done);
            blocking::handle_replies(&blocking, &shared, &sent, reply).await;
        }
        Err(why) => {
            lane.abort();
            drop(done);
            blocking::report_unrecoverable(&blocking, &sent, &why);
        }
    }
}
