//! The bounded buffer between a subscriber's driver and its consumer.
//!
//! A plain bounded channel cannot do this job: `DropOldest` needs the producer to evict
//! from the front, and a lost connection must be reported *after* the messages that
//! arrived before it. So it is a small queue under a mutex, filled a batch at a time
//! (one lock per socket read, not per message) and drained by the stream.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::message::Message;
use super::overflow::OverflowPolicy;
use crate::error::Error;

#[derive(Debug)]
enum Item {
    Message(Message),
    /// The connection ended here; reported once, in order. Not counted against the
    /// capacity: at most one per connection, and connections are opened by the user.
    Lost(Error),
}

#[derive(Debug)]
struct State {
    items: VecDeque<Item>,
    /// Messages in `items` (the capacity bounds these).
    messages: usize,
    /// Their size, as [`size`] counts it (`max_bytes` bounds this).
    bytes: usize,
    /// `false` while the subscriber is disconnected and nothing is reviving it: the
    /// stream ends once it is drained, instead of waiting forever.
    open: bool,
    waker: Option<Waker>,
}

/// Counters summed over every subscriber of one client, for [`Stats`](crate::Stats).
#[derive(Debug, Default)]
pub(crate) struct Totals {
    pub(crate) received: AtomicU64,
    pub(crate) dropped: AtomicU64,
    /// Health-check `PING`s sent, and connections declared dead by them.
    pub(crate) health_checks: AtomicU64,
    pub(crate) deaths: crate::stats::Deaths,
}

/// The buffer and its counters.
#[derive(Debug)]
pub(super) struct Inbox {
    capacity: usize,
    /// A message larger than this alone is still taken into an empty buffer.
    max_bytes: usize,
    policy: OverflowPolicy,
    state: Mutex<State>,
    received: AtomicU64,
    dropped: AtomicU64,
    totals: Arc<Totals>,
}

/// The `Disconnect` policy was hit: the driver must close the connection.
#[derive(Debug)]
pub(super) struct Overflowed;

impl Inbox {
    pub(super) fn new(
        capacity: usize,
        max_bytes: usize,
        policy: OverflowPolicy,
        totals: Arc<Totals>,
    ) -> Self {
        Self {
            capacity,
            max_bytes,
            policy,
            state: Mutex::new(State {
                // Grows with use: a large capacity that is never needed costs nothing.
                items: VecDeque::with_capacity(capacity.min(64)),
                messages: 0,
                bytes: 0,
                open: true,
                waker: None,
            }),
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            totals,
        }
    }

    /// The state stays consistent under a panic elsewhere (every update is a single
    /// push or pop), so a poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The client-wide counters this subscriber adds to.
    pub(super) fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Counts a message that could not be delivered at all (one over `max_bulk_len`).
    pub(super) fn count_dropped(&self) {
        self.received.fetch_add(1, Relaxed);
        self.totals.received.fetch_add(1, Relaxed);
        self.dropped.fetch_add(1, Relaxed);
        self.totals.dropped.fetch_add(1, Relaxed);
    }

    /// Moves `batch` into the buffer, applying the overflow policy message by message.
    /// Under `Disconnect`, the first message that does not fit and all after it are
    /// dropped and `Overflowed` is returned.
    pub(super) fn deliver(&self, batch: &mut Vec<Message>) -> Result<(), Overflowed> {
        if batch.is_empty() {
            return Ok(());
        }
        let received = batch.len() as u64;
        let mut dropped = 0u64;
        let mut overflowed = false;
        let waker = {
            let mut state = self.lock();
            for message in batch.drain(..) {
                let size = size(&message);
                if overflowed {
                    dropped += 1;
                } else if state.fits(size, self.capacity, self.max_bytes) {
                    state.push(message, size);
                } else {
                    match self.policy {
                        OverflowPolicy::DropNewest => dropped += 1,
                        OverflowPolicy::DropOldest => {
                            while !state.fits(size, self.capacity, self.max_bytes) {
                                if !state.pop_oldest() {
                                    break;
                                }
                                dropped += 1;
                            }
                            state.push(message, size);
                        }
                        OverflowPolicy::Disconnect => {
                            dropped += 1;
                            overflowed = true;
                        }
                    }
                }
            }
            state.waker.take()
        };
        self.received.fetch_add(received, Relaxed);
        self.totals.received.fetch_add(received, Relaxed);
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Relaxed);
            self.totals.dropped.fetch_add(dropped, Relaxed);
        }
        // Woken outside the lock, so the consumer does not wake into a held mutex.
        if let Some(waker) = waker {
            waker.wake();
        }
        if overflowed {
            Err(Overflowed)
        } else {
            Ok(())
        }
    }

    /// Reports the end of a connection after the messages already buffered, and lets
    /// the stream end once it is drained.
    ///
    /// Gaps with no message between them are one gap to the consumer: the newest cause
    /// replaces an unread marker at the end, so a connection that flaps while nobody
    /// reads cannot grow the buffer (markers stay at most one per buffered message).
    pub(super) fn lost(&self, cause: Error) {
        let waker = {
            let mut state = self.lock();
            match state.items.back_mut() {
                Some(Item::Lost(unread)) => *unread = cause,
                _ => state.items.push_back(Item::Lost(cause)),
            }
            state.open = false;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// `true` while connecting or connected (the stream waits for messages), `false`
    /// while disconnected (the stream ends once drained).
    pub(super) fn set_open(&self, open: bool) {
        let waker = {
            let mut state = self.lock();
            state.open = open;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub(super) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        let mut state = self.lock();
        match state.items.pop_front() {
            Some(Item::Message(message)) => {
                state.messages -= 1;
                state.bytes -= size(&message);
                Poll::Ready(Some(Ok(message)))
            }
            Some(Item::Lost(cause)) => Poll::Ready(Some(Err(cause))),
            None if !state.open => Poll::Ready(None),
            None => {
                match &mut state.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// Messages buffered now.
    pub(super) fn len(&self) -> usize {
        self.lock().messages
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(super) fn policy(&self) -> OverflowPolicy {
        self.policy
    }

    pub(super) fn received(&self) -> u64 {
        self.received.load(Relaxed)
    }

    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

/// What a buffered message counts for against `max_bytes`: its bytes, and a little
/// for its bookkeeping, so that a flood of empty messages is bounded too.
fn size(message: &Message) -> usize {
    const OVERHEAD: usize = 64;
    OVERHEAD
        + message.channel().len()
        + message.payload().len()
        + message.pattern().map_or(0, <[u8]>::len)
}

impl State {
    /// Whether a message of `size` fits; an empty buffer takes any one message.
    fn fits(&self, size: usize, capacity: usize, max_bytes: usize) -> bool {
        self.messages < capacity
            && (self.messages == 0 || self.bytes.saturating_add(size) <= max_bytes)
    }

    fn push(&mut self, message: Message, size: usize) {
        self.items.push_back(Item::Message(message));
        self.messages += 1;
        self.bytes += size;
    }

    /// Evicts the oldest message; `false` when there is none. It is at the front unless
    /// a `Lost` marker from an earlier connection is still unread; the marker stays, so
    /// the gap is still reported.
    fn pop_oldest(&mut self) -> bool {
        let index = match self.items.front() {
            Some(Item::Message(_)) => Some(0),
            _ => self
                .items
                .iter()
                .position(|i| matches!(i, Item::Message(_))),
        };
        match index.and_then(|index| self.items.remove(index)) {
            Some(Item::Message(message)) => {
                self.messages -= 1;
                self.bytes -= size(&message);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::pubsub::message::MessageKind;

    fn msg(n: u32) -> Message {
        Message::new(
            MessageKind::Channel,
            b"c".to_vec(),
            None,
            n.to_string().into_bytes(),
        )
    }

    fn drain(inbox: &Inbox) -> (Vec<String>, Option<ErrorKind>, bool) {
        let mut cx = Context::from_waker(Waker::noop());
        let (mut got, mut err) = (Vec::new(), None);
        loop {
            match inbox.poll_next(&mut cx) {
                Poll::Ready(Some(Ok(m))) => got.push(m.payload_str().unwrap().to_owned()),
                Poll::Ready(Some(Err(e))) => err = Some(e.kind()),
                Poll::Ready(None) => return (got, err, true),
                Poll::Pending => return (got, err, false),
            }
        }
    }

    fn fill(policy: OverflowPolicy) -> (Inbox, Result<(), Overflowed>) {
        let inbox = Inbox::new(3, usize::MAX, policy, Arc::default());
        let mut batch: Vec<Message> = (0..5).map(msg).collect();
        let outcome = inbox.deliver(&mut batch);
        assert!(batch.is_empty());
        (inbox, outcome)
    }

    #[test]
    fn drop_newest_keeps_the_first() {
        let (inbox, outcome) = fill(OverflowPolicy::DropNewest);
        assert!(outcome.is_ok());
        assert_eq!((inbox.received(), inbox.dropped()), (5, 2));
        assert_eq!(
            drain(&inbox),
            (vec!["0".into(), "1".into(), "2".into()], None, false)
        );
    }

    #[test]
    fn drop_oldest_keeps_the_last() {
        let (inbox, outcome) = fill(OverflowPolicy::DropOldest);
        assert!(outcome.is_ok());
        assert_eq!(inbox.dropped(), 2);
        assert_eq!(
            drain(&inbox),
            (vec!["2".into(), "3".into(), "4".into()], None, false)
        );
    }

    #[test]
    fn disconnect_reports_after_the_buffered_messages_then_ends() {
        let (inbox, outcome) = fill(OverflowPolicy::Disconnect);
        assert!(outcome.is_err());
        assert_eq!(inbox.dropped(), 2);
        inbox.lost(Error::new(ErrorKind::Overflow, "full"));
        let (got, err, ended) = drain(&inbox);
        assert_eq!(got, ["0", "1", "2"]);
        assert_eq!(err, Some(ErrorKind::Overflow));
        assert!(ended);
        // Revived by a reconnection: waits for messages again.
        inbox.set_open(true);
        assert_eq!(drain(&inbox), (vec![], None, false));
    }

    #[test]
    fn drop_oldest_keeps_an_unread_loss_marker() {
        let inbox = Inbox::new(2, usize::MAX, OverflowPolicy::DropOldest, Arc::default());
        inbox.lost(Error::new(ErrorKind::ConnectionLost, "gone"));
        inbox.set_open(true);
        let mut batch: Vec<Message> = (0..3).map(msg).collect();
        assert!(inbox.deliver(&mut batch).is_ok());
        let (got, err, _) = drain(&inbox);
        assert_eq!(err, Some(ErrorKind::ConnectionLost));
        assert_eq!(got, ["1", "2"]);
        assert_eq!(inbox.len(), 0);
    }

    #[test]
    fn gaps_in_a_row_are_one_marker() {
        let inbox = Inbox::new(4, usize::MAX, OverflowPolicy::DropNewest, Arc::default());
        for n in 0..1000 {
            inbox.lost(Error::new(ErrorKind::ConnectionLost, format!("gap {n}")));
        }
        let state = inbox.lock();
        assert_eq!(state.items.len(), 1);
        assert!(
            matches!(state.items.back(), Some(Item::Lost(e)) if e.to_string().contains("gap 999"))
        );
    }
}
