//! What a subscriber's handle and its driver share: the commands the handle sends, and
//! the state both read (the message buffer, the connection's id, gauges for `Debug`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use tokio::sync::oneshot;

use super::inbox::Inbox;
use super::subs::{SubKind, Subscriptions};
use crate::connect::ClientIdCell;
use crate::error::Error;

/// Where the driver answers a command.
pub(super) type ReplyTx = oneshot::Sender<Result<(), Error>>;

/// A message from the handle to the driver.
#[derive(Debug)]
pub(super) enum Command {
    /// Write `bytes`; answer `reply` once the server's answers meet `expect`.
    Request {
        bytes: Vec<u8>,
        expect: Expect,
        reply: ReplyTx,
    },
    /// Open a new connection (closing the current one, if any) and restore every
    /// subscription; answer once the server confirmed them all.
    Reconnect(ReplyTx),
}

/// What completes a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expect {
    /// One confirmation of this kind per name given, in the order given: the server
    /// sends one per name, even for a name given twice or one not subscribed. Holding
    /// the names (not just their count) keeps a confirmation the server sent on its own
    /// (or a stray one) from being taken for this command's.
    Confirm {
        kind: SubKind,
        on: bool,
        names: VecDeque<Vec<u8>>,
    },
    /// An unsubscribe without names: one confirmation per subscription of the kind, or
    /// a single one naming nothing when there was none. Done when none of the kind is
    /// left (or the server's count, which includes other kinds, reaches 0).
    UntilNone(SubKind),
    /// The answer to `PING`.
    Pong,
}

impl Expect {
    /// The command's name, for error messages.
    pub(super) fn command(&self) -> &'static str {
        match *self {
            Expect::Confirm { kind, on, .. } => kind.command(on),
            Expect::UntilNone(kind) => kind.command(false),
            Expect::Pong => "PING",
        }
    }
}

/// The state the handle reads and the driver writes.
#[derive(Debug)]
pub(super) struct SubscriberState {
    pub(super) inbox: Inbox,
    client_id: ClientIdCell,
    /// The connection is up and every subscription restored.
    connected: AtomicBool,
    /// How many subscriptions of each kind the server confirmed (for `Debug`).
    counts: [AtomicUsize; 3],
}

impl SubscriberState {
    pub(super) fn new(inbox: Inbox) -> Self {
        Self {
            inbox,
            client_id: ClientIdCell::default(),
            connected: AtomicBool::new(false),
            counts: Default::default(),
        }
    }

    pub(super) fn set_connection(&self, connected: bool, client_id: Option<i64>) {
        self.client_id.set(client_id);
        self.connected.store(connected, Relaxed);
    }

    pub(super) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Relaxed);
    }

    pub(super) fn client_id(&self) -> Option<i64> {
        self.client_id.get()
    }

    pub(super) fn is_connected(&self) -> bool {
        self.connected.load(Relaxed)
    }

    pub(super) fn count_health_check(&self) {
        self.inbox.totals().health_checks.fetch_add(1, Relaxed);
    }

    pub(super) fn count_dead(&self, silence: std::time::Duration) {
        self.inbox.totals().deaths.record(silence);
    }

    pub(super) fn publish_counts(&self, subs: &Subscriptions) {
        for (count, kind) in self.counts.iter().zip(SubKind::ALL) {
            count.store(subs.of(kind).len(), Relaxed);
        }
    }

    /// Confirmed subscriptions: channels, patterns, shard channels.
    pub(super) fn counts(&self) -> [usize; 3] {
        [0, 1, 2].map(|i| self.counts[i].load(Relaxed))
    }
}
