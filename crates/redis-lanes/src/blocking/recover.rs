//! After a written blocking command was cancelled: confirm the server-side unblock, read
//! the late reply, put back any data it carried, and only then return the lane.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::orphan::{self, OrphanOutcome, RestorePlan};
use super::{Blocking, Orphan};
use crate::error::Error;
use tokio::sync::oneshot;

use crate::lane::{Lane, Opener, Reply, ReplyRx};
use crate::pool::Lease;
use crate::route::BlockKind;

/// The cancelled commands, owned, for planning the restore.
#[derive(Debug)]
pub(crate) struct Sent {
    pub(crate) commands: Vec<Vec<Vec<u8>>>,
    /// Each command's kind as the router found it; `None` for one that does not block.
    pub(crate) kinds: Vec<Option<BlockKind>>,
    pub(crate) atomic: bool,
}

/// The first `CLIENT UNBLOCK` and the gate that holds the client's later commands until
/// the cancelled command's fate is known; `None` when the blocking lane's id is unknown.
pub(crate) type Unblock = Option<Result<(ReplyRx, Opener), Error>>;

/// Longest wait for the answer to one `CLIENT UNBLOCK` on the shared lane.
const CONFIRM_LIMIT: Duration = Duration::from_secs(5);
/// Longest time the client's later commands are held back while a cancelled command
/// neither blocks nor answers (it is still on its way to the server). Past it, the
/// blocking lane is closed instead.
const GATE_LIMIT: Duration = Duration::from_secs(1);
/// Pauses between repeated unblocks while the command may still be on its way: the
/// first at once, then doubling up to the cap.
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(20);
/// Longest wait for a command that puts raced data back.
pub(crate) const RESTORE_LIMIT: Duration = Duration::from_secs(10);

/// Where a cancelled call's lane goes once its fate is known.
pub(crate) enum Target {
    /// A blocking-pool lane: back to the pool when clean, closed otherwise.
    Pool(Lease),
    /// An exclusive lease's lane: closed if unclean; either way `done` tells the lease
    /// it may send again.
    Lease {
        lane: Lane,
        done: oneshot::Sender<()>,
    },
}

impl Target {
    fn lane(&self) -> Option<&Lane> {
        match self {
            Target::Pool(lease) => lease.lane(),
            Target::Lease { lane, .. } => Some(lane),
        }
    }

    fn clean(self) {
        match self {
            Target::Pool(lease) => lease.release(),
            Target::Lease { done, .. } => drop(done),
        }
    }

    fn close(self) {
        match self {
            Target::Pool(lease) => lease.discard(),
            Target::Lease { lane, done } => {
                lane.abort();
                drop(done);
            }
        }
    }
}

/// After a written blocking call was cancelled: confirms the unblock, reads the late
/// reply, then returns or closes the lane and puts back raced data.
pub(crate) async fn recover(
    target: Target,
    late: ReplyRx,
    unblock: Unblock,
    sent: Sent,
    shared: Lane,
    blocking: Arc<Blocking>,
) {
    let Some(lane) = target.lane().cloned() else {
        return;
    };
    let abandoned = blocking.abandon.clone();
    let outcome = tokio::select! {
        biased;
        () = abandoned.cancelled() => Err("the client was dropped or closed".to_owned()),
        outcome = read_late(&lane, &shared, late, unblock) => outcome,
    };
    match outcome {
        Ok(reply) => {
            // Contract, rule 3: the late reply is read; the lane is clean again.
            target.clean();
            handle_replies(&blocking, &shared, &sent, reply).await;
        }
        Err(why) => {
            // Contract, rule 5: without CLIENT UNBLOCK, closing the socket is what
            // releases the blocked client; a raced reply is lost with it.
            target.close();
            report_unrecoverable(&blocking, &sent, &why);
        }
    }
}

/// Confirms the server-side unblock of a cancelled command written on `lane` and reads
/// its late reply.
///
/// The client's later commands wait behind the unblock's gate until the command's fate
/// is known: the unblock released it (`1`), or its reply arrived. An unblock that found
/// nothing blocked (`0`) while no reply has come means the command may still be on its
/// way to the server; the unblock is repeated, ahead of the gate, until one of the two
/// happens, for up to [`GATE_LIMIT`]. Once the server has released the command its reply
/// is certain, and it is waited for without a limit (the caller bounds that: `close()`
/// and the client's drop abandon the recovery). When this returns, every `CLIENT
/// UNBLOCK` it sent has been answered, so none can hit a later command of the lane.
///
/// `Err` carries the reason the contract's fallback applies: the caller must close the
/// lane and report the command with [`report_unrecoverable`].
async fn read_late(
    lane: &Lane,
    shared: &Lane,
    mut late: ReplyRx,
    unblock: Unblock,
) -> Result<Reply, String> {
    let (mut asked, mut gate) = match unblock {
        None => return Err("the blocking lane's CLIENT ID is unknown".to_owned()),
        Some(Err(e)) => return Err(format!("CLIENT UNBLOCK could not be sent: {e}")),
        Some(Ok(first)) => first,
    };
    let held_until = tokio::time::Instant::now() + GATE_LIMIT;
    let mut pause = Duration::ZERO;
    let mut reply = None;
    loop {
        // The outstanding unblock's answer; the late reply may come meanwhile.
        let released = {
            let confirm = tokio::time::timeout(CONFIRM_LIMIT, shared.await_reply(asked));
            tokio::pin!(confirm);
            loop {
                tokio::select! {
                    biased;
                    answer = &mut late, if reply.is_none() => {
                        reply = Some(late_answer(answer)?);
                        // Its fate is known: the client's later commands may go.
                        gate.open();
                    }
                    confirmed = &mut confirm => break unblock_answer(confirmed)?,
                }
            }
        };
        if let Some(reply) = reply {
            return Ok(reply);
        }
        if released {
            // Released before anything queued behind the gate; its reply is certain.
            gate.open();
            return late_answer(late.await);
        }
        if tokio::time::Instant::now() >= held_until {
            return Err(format!(
                "the command neither blocked nor answered within {GATE_LIMIT:?}"
            ));
        }
        if let Ok(answer) = tokio::time::timeout(pause, &mut late).await {
            gate.open();
            return late_answer(answer);
        }
        pause = (pause * 2).clamp(Duration::from_millis(1), RETRY_PAUSE_MAX);
        asked = shared
            .unblock_again(lane, &gate)
            .map_err(|e| format!("CLIENT UNBLOCK could not be sent: {e}"))?;
    }
}

fn late_answer(
    answer: Result<Result<Reply, Error>, tokio::sync::oneshot::error::RecvError>,
) -> Result<Reply, String> {
    match answer {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(format!("the blocking lane failed: {e}")),
        Err(_) => Err("the blocking lane closed".to_owned()),
    }
}

/// Reads a `CLIENT UNBLOCK` answer: `Ok(true)` when it released a blocked client,
/// `Ok(false)` when nothing was blocked, `Err` with the reason otherwise.
fn unblock_answer(
    confirmed: Result<Result<Reply, Error>, tokio::time::error::Elapsed>,
) -> Result<bool, String> {
    match confirmed {
        Err(_) => Err(format!(
            "CLIENT UNBLOCK not answered within {CONFIRM_LIMIT:?}"
        )),
        Ok(Ok(Reply::One(Value::Int(n)))) => Ok(n > 0),
        Ok(Ok(Reply::One(Value::ServerError(e)))) => Err(format!("CLIENT UNBLOCK refused: {e}")),
        Ok(Ok(other)) => Err(format!("unexpected CLIENT UNBLOCK reply {other:?}")),
        Ok(Err(e)) => Err(format!("CLIENT UNBLOCK failed: {e}")),
    }
}

/// Counts, traces and hands to the hook a cancelled command whose reply could not be
/// inspected because its lane had to be closed.
fn report_unrecoverable(blocking: &Blocking, sent: &Sent, why: &str) {
    use std::sync::atomic::Ordering::Relaxed;
    blocking.counters.fallbacks.fetch_add(1, Relaxed);
    blocking.counters.count(OrphanOutcome::Unrecoverable);
    tracing::warn!(
        reason = why,
        "cancelled blocking command: closing its lane; a reply that raced the cancel \
         cannot be inspected"
    );
    if let Some(hook) = &blocking.hook {
        for args in &sent.commands {
            hook(&Orphan {
                command: args.clone(),
                reply: None,
                outcome: OrphanOutcome::Unrecoverable,
            });
        }
    }
}

/// Puts back (or reports) the data a cancelled command's late reply carried.
async fn handle_replies(blocking: &Blocking, shared: &Lane, sent: &Sent, reply: Reply) {
    for ((args, kind), value) in pair_replies(sent, reply) {
        // Only blocking commands can have raced their cancel.
        if let Some(kind) = kind {
            handle_orphan(blocking, shared, args, kind, value).await;
        }
    }
}

/// Pairs each blocking command with its own reply.
/// One cancelled command, its kind (`None`: it does not block) and its late reply.
type Raced<'a> = ((&'a Vec<Vec<u8>>, Option<BlockKind>), Value);

fn pair_replies(sent: &Sent, reply: Reply) -> Vec<Raced<'_>> {
    let values = match (reply, sent.atomic) {
        (reply @ Reply::One(_), _) => reply.into_list(),
        // An atomic pipeline's last reply is EXEC's: one entry per command, or nil if
        // the transaction was aborted.
        (Reply::Many(mut values), true) => match values.pop() {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        (Reply::Many(values), false) => values,
    };
    sent.commands
        .iter()
        .zip(sent.kinds.iter().copied())
        .zip(values)
        .collect()
}

async fn handle_orphan(
    blocking: &Blocking,
    shared: &Lane,
    args: &[Vec<u8>],
    kind: BlockKind,
    value: Value,
) {
    let words: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    let plan = orphan::plan(kind, &words, &value);
    let outcome = match (&blocking.hook, plan) {
        (_, RestorePlan::Nothing) => return,
        // A hook takes the data instead of the default restore.
        (Some(_), _) | (None, RestorePlan::Report) => OrphanOutcome::Reported,
        (None, RestorePlan::Restore { cmd, conditional }) => {
            let restore = tokio::time::timeout(RESTORE_LIMIT, shared.send(&cmd));
            let failed = |why: String| {
                tracing::warn!(error = %why, "restoring raced data failed");
                OrphanOutcome::Reported
            };
            tokio::select! {
                biased;
                restored = restore => match restored {
                    Ok(Ok(reply)) => orphan::outcome_of(conditional, &reply),
                    Ok(Err(e)) => failed(e.to_string()),
                    Err(_) => failed(format!("no answer within {RESTORE_LIMIT:?}")),
                },
                () = blocking.abandon.cancelled() => failed("the client was dropped".to_owned()),
            }
        }
    };
    blocking.counters.count(outcome);
    tracing::info!(
        command = %String::from_utf8_lossy(args.first().map_or(&[][..], Vec::as_slice)),
        ?outcome,
        "a cancelled blocking command's reply carried data"
    );
    if let Some(hook) = &blocking.hook {
        hook(&Orphan {
            command: args.to_vec(),
            reply: Some(value),
            outcome,
        });
    }
}
