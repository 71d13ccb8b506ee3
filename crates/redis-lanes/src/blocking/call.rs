//! One blocking call on a leased lane, and the guard that cancels it on the server when
//! its future is dropped.

use std::sync::Arc;

use redis::{Arg, Cmd, Pipeline};
use tokio::sync::oneshot;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::recover::{self, Sent};
use super::Blocking;
use crate::error::Error;
use crate::lane::{Commit, Lane, PackedPipeline, Reply, ReplyRx};
use crate::pool::Lease;
use crate::route::Block;

/// What the caller sent: one command, or a pipeline with the replies it keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Commands<'a> {
    One(&'a Cmd),
    Pipe {
        pipe: &'a Pipeline,
        offset: usize,
        count: usize,
    },
}

impl Commands<'_> {
    /// Packed bytes, replies to expect, first reply to keep.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidCommand`](crate::ErrorKind::InvalidCommand) for an empty
    /// command or pipeline.
    pub(crate) fn pack(&self) -> Result<PackedPipeline, Error> {
        match *self {
            Commands::One(cmd) => {
                let bytes = cmd.get_packed_command();
                if bytes.is_empty() {
                    return Err(crate::lane::empty_command());
                }
                Ok(PackedPipeline {
                    bytes,
                    frames: 1,
                    keep_from: 0,
                })
            }
            Commands::Pipe {
                pipe,
                offset,
                count,
            } => PackedPipeline::new(pipe, offset, count),
        }
    }

    /// Packs the commands and queues them on `lane`, the dedicated lane the call holds,
    /// with `commit` deciding between "written" and "cancelled first".
    ///
    /// # Errors
    ///
    /// As for [`Commands::pack`], and the lane's error if it has ended.
    pub(crate) fn submit(&self, lane: &Lane, commit: &Arc<Commit>) -> Result<ReplyRx, Error> {
        let packed = self.pack()?;
        lane.submit(
            packed.bytes,
            packed.frames,
            packed.keep_from,
            Some(Arc::clone(commit)),
        )
    }

    /// An owned copy of the commands' arguments, for the recovery that outlives the
    /// caller. Only made on the cancel path.
    pub(crate) fn to_sent(self) -> Sent {
        fn args(cmd: &Cmd) -> Vec<Vec<u8>> {
            cmd.args_iter()
                .filter_map(|arg| match arg {
                    Arg::Simple(bytes) => Some(bytes.to_vec()),
                    _ => None,
                })
                .collect()
        }
        match self {
            Commands::One(cmd) => Sent {
                commands: vec![args(cmd)],
                atomic: false,
            },
            Commands::Pipe { pipe, .. } => Sent {
                commands: pipe.cmd_iter().map(args).collect(),
                atomic: pipe.is_transaction(),
            },
        }
    }
}

type Answer = Result<Reply, Error>;

/// A blocking call that was queued on its lane. Dropped without `finish`, it runs the
/// cancellation contract.
struct InFlight<'a> {
    /// Counts this call among the work `close()` waits for. Fields drop after
    /// `Drop::drop` has handed a cancel over to a tracked recovery, so `close()` never
    /// sees a gap between the call and its recovery.
    _tracked: TaskTrackerToken,
    lease: Option<Lease>,
    late: Option<oneshot::Receiver<Answer>>,
    commit: Arc<Commit>,
    commands: Commands<'a>,
    shared: &'a Lane,
    blocking: &'a Arc<Blocking>,
}

/// Runs blocking commands on a leased lane.
///
/// # Cancel safety
///
/// Dropping the future follows the cancellation contract: not yet written, never
/// written; written, `CLIENT UNBLOCK` is queued on the shared lane before `drop`
/// returns, and a background recovery reads the late reply and puts back any data it
/// carried before the lane returns to the pool.
pub(crate) async fn run(
    blocking: &Arc<Blocking>,
    shared: &Lane,
    commands: Commands<'_>,
    block: Block,
) -> Result<Reply, Error> {
    if blocking.shutdown.is_cancelled() {
        return Err(Error::closed().not_sent());
    }
    let lease = blocking.pool.acquire().await?;
    // Taken before the check below: once `close()` has cancelled `shutdown` it waits
    // for every token, so this call either sees the cancel or is waited for.
    let tracked = blocking.recoveries.token();
    if blocking.shutdown.is_cancelled() {
        // `close()` began while this call waited for a lane; nothing was sent.
        lease.release();
        return Err(Error::closed().not_sent());
    }
    let Some(lane) = lease.lane().cloned() else {
        return Err(Error::closed().not_sent());
    };
    let commit = Arc::new(Commit::default());
    let late = match commands.submit(&lane, &commit) {
        Ok(late) => late,
        Err(err) => {
            lease.release(); // Nothing was sent: the lane is clean (or closed, and dropped).
            return Err(err);
        }
    };
    let mut call = InFlight {
        _tracked: tracked,
        lease: Some(lease),
        late: Some(late),
        commit,
        commands,
        shared,
        blocking,
    };
    // The deadline is the command's own timeout plus grace; none for `0` (forever).
    let deadline = block.timeout.map(|t| t.saturating_add(blocking.grace));
    let answer = {
        let Some(late) = call.late.as_mut() else {
            return Err(Error::closed());
        };
        let sleep = super::sleep_or_forever(deadline);
        tokio::select! {
            // Biased: a reply that is ready wins over a deadline that passed in the same
            // poll, which would otherwise cancel it and make its recovery restore data.
            biased;
            answer = late => Some(answer),
            () = blocking.shutdown.cancelled() => None,
            () = sleep => None,
        }
    };
    match answer {
        Some(answer) => {
            call.late = None;
            let answer = answer.unwrap_or_else(|_| Err(lane.terminal_error()));
            match call.lease.take() {
                // The reply was read: the lane is clean and can be reused.
                Some(lease) if answer.is_ok() => lease.release(),
                Some(lease) => lease.discard(),
                None => {}
            }
            answer
        }
        // Dropping `call` runs the cancellation contract.
        None => Err(super::gave_up(blocking)),
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let (Some(lease), Some(late)) = (self.lease.take(), self.late.take()) else {
            return; // Finished normally.
        };
        self.blocking
            .counters
            .cancels
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.commit.cancel() {
            // Never written, and now it never will be: the lane is clean.
            lease.release();
            return;
        }
        // Written: cancel it on the server. Queued on the shared lane synchronously, so
        // anything this client sends after this drop is executed after the unblock.
        let unblock = lease.lane().and_then(|lane| self.shared.unblock(lane));
        let recovery = recover::recover(
            lease,
            late,
            unblock,
            self.commands.to_sent(),
            self.shared.clone(),
            Arc::clone(self.blocking),
        );
        let tracked = self.blocking.recoveries.track_future(recovery);
        // Spawning on a runtime that is shutting down drops the task, which drops the
        // lease and closes the lane: the server releases the blocked client.
        drop(self.blocking.runtime.spawn(tracked));
    }
}
