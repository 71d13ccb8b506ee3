//! What travels from a lane's handles to its driver.

use std::sync::atomic::{AtomicU8, Ordering::AcqRel};
use std::sync::Arc;

use redis::Value;
use tokio::sync::oneshot;

use super::gate::Gate;
use super::limit::Permit;

use crate::error::Error;

/// The answer to one request: a single reply, or the kept replies of a pipeline.
#[derive(Debug)]
pub(crate) enum Reply {
    One(Value),
    Many(Vec<Value>),
}

impl Reply {
    /// The last reply: a single command's, or a pipeline's last (`Nil` for none).
    pub(crate) fn into_last(self) -> Value {
        match self {
            Reply::One(value) => value,
            Reply::Many(mut values) => values.pop().unwrap_or(Value::Nil),
        }
    }

    /// Every reply kept, as a list.
    pub(crate) fn into_list(self) -> Vec<Value> {
        match self {
            Reply::One(value) => vec![value],
            Reply::Many(values) => values,
        }
    }
}

/// Where the driver sends the answer. Dropping it unanswered makes the caller see the
/// lane's terminal error, so no caller ever waits forever.
pub(crate) type ReplyTx = oneshot::Sender<Result<Reply, Error>>;

/// One request envelope: packed bytes plus how to match their replies.
pub(crate) struct Request {
    /// The commands, already in RESP form.
    pub(crate) bytes: Vec<u8>,
    /// How many replies the server sends for `bytes`.
    pub(crate) frames: usize,
    /// Replies before this index are read and discarded (`MULTI` and `QUEUED` of an
    /// atomic pipeline).
    pub(crate) keep_from: usize,
    /// `None` for control requests (e.g. `CLIENT UNBLOCK`) whose reply nobody awaits.
    pub(crate) reply: Option<ReplyTx>,
    /// Decides, once and atomically, between "written" (by the driver) and "cancelled
    /// before it was written" (by a cancel guard).
    pub(crate) commit: Option<Arc<Commit>>,
    /// The in-flight slot this request holds until it is answered or discarded.
    pub(crate) permit: Option<Permit>,
    /// Written only on this connection generation of the lane; `None`: on any. A
    /// `CLIENT UNBLOCK <id>` names a connection of one server's life: after a reconnect
    /// the id may belong to someone else.
    pub(crate) generation: Option<u64>,
}

/// Shows the size of the bytes, not the bytes: they can be a handshake's `AUTH` (an
/// exclusive lane's reset replays it) or any user's data.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("bytes", &self.bytes.len())
            .field("frames", &self.frames)
            .field("keep_from", &self.keep_from)
            .field("reply", &self.reply.is_some())
            .field("commit", &self.commit)
            .finish_non_exhaustive()
    }
}

/// A message on a lane's queue. One queue carries both requests and control messages,
/// so a control message is ordered exactly where it was sent relative to requests.
#[derive(Debug)]
pub(crate) enum Message {
    Request(Request),
    /// Graceful close: everything queued before it is written and answered, everything
    /// after it is refused; the sender is told when the socket is closed.
    Close(oneshot::Sender<()>),
    /// A control request (`CLIENT UNBLOCK`) and the gate that holds back everything
    /// queued after it until the request's sender opens it (see `gate.rs`).
    Gated(Request, Arc<Gate>),
}

const PENDING: u8 = 0;
const WRITTEN: u8 = 1;
const CANCELLED: u8 = 2;

/// Who got to a request first: the driver writing it, or its caller giving up.
///
/// A plain "written" flag would race: the driver could check that the caller is still
/// there, the caller could give up and read "not written", and the driver could then
/// write. With one compare-and-swap on each side exactly one of them wins.
#[derive(Debug, Default)]
pub(crate) struct Commit(AtomicU8);

impl Commit {
    /// Called by the driver before it writes: `false` means the caller gave up first,
    /// so the request must not be written.
    pub(crate) fn write(&self) -> bool {
        self.transition(WRITTEN)
    }

    /// Called by a cancel guard: `true` means the request was never written and never
    /// will be; `false` means it was written and its reply is on its way.
    pub(crate) fn cancel(&self) -> bool {
        self.transition(CANCELLED)
    }

    fn transition(&self, to: u8) -> bool {
        self.0
            .compare_exchange(PENDING, to, AcqRel, std::sync::atomic::Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_side_wins() {
        let c = Commit::default();
        assert!(c.write());
        assert!(!c.cancel());
        let c = Commit::default();
        assert!(c.cancel());
        assert!(!c.write());
    }
}
