//! A blocking command on a lease. The contract is the blocking lanes' (see
//! `crate::blocking::guard`), with one difference: the lane stays with its lease instead
//! of going back to a pool. The recovery only has to finish reading the late reply (and
//! confirming every `CLIENT UNBLOCK`) before the lease sends anything else, which the
//! lease waits for.

use super::Exclusive;
use crate::blocking::{self, Commands, Holder};
use crate::error::Error;
use crate::lane::Reply;
use crate::route::Block;

/// Runs blocking commands on the lease, with the client-side deadline of a blocking
/// lane (the commands' own timeout plus grace) and `close()` cancelling them.
///
/// # Cancel safety
///
/// See [`guard::call`](crate::blocking::guard::call): a cancelled command's late reply
/// is read (and every `CLIENT UNBLOCK` answered) before the lease sends anything else.
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
    let holder = Holder::Lease { lane, recovering };
    blocking::guard::call(
        holder,
        commands,
        block,
        core.shared_lane(),
        blocking,
        tracked,
    )
    .await
}
