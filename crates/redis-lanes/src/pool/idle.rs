//! The state of a pool behind its lock: the idle lanes and whether the pool is closed.
//! Kept apart from the async acquire (`mod.rs`), in the bb8 way: nothing here awaits,
//! and the lock is never held across an `.await`.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::lane::Lane;

/// A lane nobody is using, and since when.
#[derive(Debug)]
struct Entry {
    lane: Lane,
    since: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// Open lanes not in use, most recently used last.
    lanes: Vec<Entry>,
    closed: bool,
}

/// The idle lanes of one pool. `usable` decides whether a lane may still be handed out
/// (its connection is alive and of the current generation).
#[derive(Debug, Default)]
pub(super) struct IdleLanes {
    state: Mutex<State>,
}

impl IdleLanes {
    /// Every update is a single push, pop or filter, so a poisoned lock still holds a
    /// consistent list.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used lane that is still `usable`; those that are not are
    /// dropped on the way, which closes them.
    pub(super) fn pop(&self, usable: impl Fn(&Lane) -> bool) -> Option<Lane> {
        let mut state = self.lock();
        while let Some(entry) = state.lanes.pop() {
            if usable(&entry.lane) {
                return Some(entry.lane);
            }
        }
        None
    }

    /// Takes `lane` back, unless the pool is closed or the lane is not `usable`. Idle
    /// lanes that stopped being usable (after a reconnect of the shared lane) are closed
    /// now rather than when the reaper or a lease gets to them.
    pub(super) fn put_back(&self, lane: Lane, usable: impl Fn(&Lane) -> bool) {
        // `closed` is read under the lock that `close()` sets it under, so a lane can
        // never slip into the list after `close()` emptied it.
        let mut state = self.lock();
        if state.closed || !usable(&lane) {
            return;
        }
        state.lanes.retain(|entry| usable(&entry.lane));
        state.lanes.push(Entry {
            lane,
            since: Instant::now(),
        });
    }

    /// Closes lanes left idle for `cutoff` or longer.
    pub(super) fn reap(&self, cutoff: Duration) {
        // Dropping the `Lane` ends its driver, which closes the socket.
        self.lock()
            .lanes
            .retain(|entry| entry.since.elapsed() < cutoff);
    }

    /// Refuses every later `put_back` and closes the idle lanes.
    pub(super) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.lanes.clear();
    }

    pub(super) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(super) fn len(&self) -> usize {
        self.lock().lanes.len()
    }
}
