//! After a written blocking command was cancelled: confirm the server-side unblock, read
//! the late reply, put back any data it carried, and only then return the lane.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio::sync::oneshot;

use super::orphan::{self, OrphanOutcome, Plan};
use super::{Blocking, Orphan};
use crate::error::Error;
use crate::lane::{Lane, Reply};
use crate::pool::Lease;
use crate::route::{self, Route};

/// The cancelled commands, owned, for planning the restore.
#[derive(Debug)]
pub(crate) struct Sent {
    pub(crate) commands: Vec<Vec<Vec<u8>>>,
    pub(crate) atomic: bool,
}

type Answer = Result<Reply, Error>;

/// How long to wait for the late reply after an unblock that found nothing blocked, before
/// trying again: the command may still have been on its way to the server.
const UNBLOCK_RETRY: Duration = Duration::from_millis(100);
const UNBLOCK_ATTEMPTS: u32 = 20;

pub(crate) async fn recover(
    lease: Lease,
    late: oneshot::Receiver<Answer>,
    unblock: Option<Result<oneshot::Receiver<Answer>, Error>>,
    sent: Sent,
    shared: Lane,
    blocking: Arc<Blocking>,
) {
    let Some(lane) = lease.lane().cloned() else {
        return;
    };
    match read_late(&lane, &shared, late, unblock).await {
        Ok(reply) => {
            // Contract, rule 3: the late reply is read; the lane is clean again.
            lease.release();
            handle_replies(&blocking, &shared, &sent, reply).await;
        }
        Err(why) => {
            // Contract, rule 5: without CLIENT UNBLOCK, closing the socket is what
            // releases the blocked client; a raced reply is lost with it.
            lease.discard();
            report_unrecoverable(&blocking, &sent, &why);
        }
    }
}

/// Confirms the server-side unblock of a cancelled command written on `lane` and reads
/// its late reply, unblocking again while the command may still have been on its way.
/// When this returns, every `CLIENT UNBLOCK` it sent has been answered, so none can hit
/// a later command of the lane.
///
/// `Err` carries the reason the contract's fallback applies: the caller must close the
/// lane and report the command with [`report_unrecoverable`].
pub(crate) async fn read_late(
    lane: &Lane,
    shared: &Lane,
    mut late: oneshot::Receiver<Answer>,
    mut unblock: Option<Result<oneshot::Receiver<Answer>, Error>>,
) -> Result<Reply, String> {
    let mut attempts = 0;
    loop {
        confirm_unblock(shared, unblock.take()).await?;
        match tokio::time::timeout(UNBLOCK_RETRY, &mut late).await {
            Ok(Ok(Ok(reply))) => return Ok(reply),
            Ok(Ok(Err(e))) => return Err(format!("the blocking lane failed: {e}")),
            Ok(Err(_)) => return Err("the blocking lane closed".to_owned()),
            Err(_) if attempts < UNBLOCK_ATTEMPTS => {
                // The unblock found nothing blocked and no reply came: the command had
                // not reached the server yet. Unblock again.
                attempts += 1;
                unblock = shared.unblock(lane);
            }
            Err(_) => return Err("the command never unblocked".to_owned()),
        }
    }
}

/// Waits for the `CLIENT UNBLOCK` reply. `Ok` when the server accepted it (whether or
/// not the client was still blocked), `Err` with the reason otherwise.
async fn confirm_unblock(
    shared: &Lane,
    unblock: Option<Result<oneshot::Receiver<Answer>, Error>>,
) -> Result<(), String> {
    match unblock {
        None => Err("the blocking lane's CLIENT ID is unknown".to_owned()),
        Some(Err(e)) => Err(format!("CLIENT UNBLOCK could not be sent: {e}")),
        Some(Ok(rx)) => match shared.await_reply(rx).await {
            Ok(Reply::One(Value::Int(_))) => Ok(()),
            Ok(Reply::One(Value::ServerError(e))) => Err(format!("CLIENT UNBLOCK refused: {e}")),
            Ok(other) => Err(format!("unexpected CLIENT UNBLOCK reply {other:?}")),
            Err(e) => Err(format!("CLIENT UNBLOCK failed: {e}")),
        },
    }
}

/// Counts, traces and hands to the hook a cancelled command whose reply could not be
/// inspected because its lane had to be closed.
pub(crate) fn report_unrecoverable(blocking: &Blocking, sent: &Sent, why: &str) {
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
pub(crate) async fn handle_replies(blocking: &Blocking, shared: &Lane, sent: &Sent, reply: Reply) {
    for (args, value) in pair_replies(sent, reply) {
        handle_orphan(blocking, shared, args, value).await;
    }
}

/// Pairs each blocking command with its own reply.
fn pair_replies(sent: &Sent, reply: Reply) -> Vec<(&Vec<Vec<u8>>, Value)> {
    let values = match (reply, sent.atomic) {
        (Reply::One(value), _) => vec![value],
        // An atomic pipeline keeps only EXEC's reply: one entry per command, or nil if
        // the transaction was aborted.
        (Reply::Many(mut values), true) => match values.pop() {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        (Reply::Many(values), false) => values,
    };
    sent.commands.iter().zip(values).collect()
}

async fn handle_orphan(blocking: &Blocking, shared: &Lane, args: &[Vec<u8>], value: Value) {
    let words: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    // Only blocking commands can have raced their cancel.
    if !matches!(
        route::classify(words.iter().copied(), &blocking.declared),
        Route::Blocking(_)
    ) {
        return;
    }
    let plan = orphan::plan(&words, &value);
    let outcome = match (&blocking.hook, plan) {
        (_, Plan::Nothing) => return,
        // A hook takes the data instead of the default restore.
        (Some(_), _) | (None, Plan::Report) => OrphanOutcome::Reported,
        (None, Plan::Restore { cmd, conditional }) => match shared.send(&cmd).await {
            Ok(reply) => orphan::outcome_of(conditional, &reply),
            Err(e) => {
                tracing::warn!(error = %e, "restoring raced data failed");
                OrphanOutcome::Reported
            }
        },
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
