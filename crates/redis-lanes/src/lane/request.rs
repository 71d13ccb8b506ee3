//! What travels from a lane's handles to its driver.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use redis::Value;
use tokio::sync::oneshot;

use super::limit::Permit;

use crate::error::Error;

/// The answer to one request: a single reply, or the kept replies of a pipeline.
#[derive(Debug)]
pub(crate) enum Reply {
    One(Value),
    Many(Vec<Value>),
}

/// Where the driver sends the answer. Dropping it unanswered makes the caller see the
/// lane's terminal error, so no caller ever waits forever.
pub(crate) type ReplyTx = oneshot::Sender<Result<Reply, Error>>;

/// One request envelope: packed bytes plus how to match their replies.
#[derive(Debug)]
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
    /// Set by the driver once the bytes are committed to the socket, so a cancel guard
    /// can tell "never sent" from "sent, reply pending".
    pub(crate) written: Option<Arc<AtomicBool>>,
    /// The in-flight slot this request holds until it is answered or discarded.
    pub(crate) permit: Option<Permit>,
}

/// A message on a lane's queue. One queue carries both requests and control messages,
/// so a control message is ordered exactly where it was sent relative to requests.
#[derive(Debug)]
pub(crate) enum Message {
    Request(Request),
    /// Graceful close: everything queued before it is written and answered, everything
    /// after it is refused; the sender is told when the socket is closed.
    Close(oneshot::Sender<()>),
}
