//! One blocking call on a lane of the blocking pool, and what the call sent, in the
//! forms the lane and the recovery need.

use std::sync::Arc;

use redis::{Arg, Cmd, Pipeline};

use super::guard::{self, Holder};
use super::recover::Sent;
use super::Blocking;
use crate::error::Error;
use crate::lane::{Commit, Lane, PackedPipeline, Reply, ReplyRx};
use crate::route::{self, Block, BlockKind, BlockingCommands, Route};

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
    /// caller, with each command's kind: `kind` for a single command, as routed; for a
    /// pipeline, whose route has one kind only, each command's own. Only made on the
    /// cancel path.
    pub(crate) fn to_sent(self, kind: BlockKind, declared: &BlockingCommands) -> Sent {
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
                kinds: vec![Some(kind)],
                atomic: false,
            },
            Commands::Pipe { pipe, .. } => Sent {
                commands: pipe.cmd_iter().map(args).collect(),
                kinds: pipe
                    .cmd_iter()
                    .map(|cmd| match route::classify_cmd(cmd, declared) {
                        Route::Blocking(block) => Some(block.kind),
                        _ => None,
                    })
                    .collect(),
                atomic: pipe.is_transaction(),
            },
        }
    }
}

/// Runs blocking commands on a lane of the blocking pool.
///
/// # Cancel safety
///
/// See [`guard::call`](super::guard::call).
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
    guard::call(
        Holder::Pool(lease),
        commands,
        block,
        shared,
        blocking,
        tracked,
    )
    .await
}
