//! A gate on a lane's queue: requests queued after it wait until it opens.
//!
//! A cancelled blocking command is unblocked with `CLIENT UNBLOCK` on the shared lane,
//! but the blocking command itself travels on another socket. If it is still on its way
//! to the server when the unblock arrives, the unblock finds nothing blocked (it answers
//! 0) and the command would run later, after whatever the caller sent next. So the
//! unblock travels with a gate: the shared lane's driver takes nothing queued after it
//! until the recovery knows the blocking command's fate (it was unblocked, or its reply
//! arrived) and opens the gate. Until then only the recovery's repeated unblocks pass,
//! through [`Gate::push_urgent`].
//!
//! Every gate opens: the recovery holds an [`Opener`] that opens it when dropped, on
//! every path, and bounds how long it keeps it closed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Context;

use futures_util::task::AtomicWaker;

use super::request::Request;

/// The shared state of one gate, between the driver and the recovery.
#[derive(Debug)]
pub(crate) struct Gate {
    open: AtomicBool,
    waker: AtomicWaker,
    /// Requests that must go out while the gate is closed, in order; `None` once the
    /// lane has ended and nothing will take them.
    urgent: Mutex<Option<Vec<Request>>>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            open: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            urgent: Mutex::new(Some(Vec::new())),
        }
    }
}

impl Gate {
    /// Whether the driver may take requests queued after the gate. Registers the
    /// driver's waker first, so an `open` or `push_urgent` after this call wakes it.
    pub(super) fn poll_open(&self, cx: &mut Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.open.load(Ordering::Acquire)
    }

    /// The requests pushed with [`Gate::push_urgent`] since the last call.
    pub(super) fn take_urgent(&self) -> Vec<Request> {
        let mut urgent = self.urgent.lock().unwrap_or_else(PoisonError::into_inner);
        urgent.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The lane ended: returns what was pushed and refuses later pushes.
    pub(super) fn close(&self) -> Vec<Request> {
        let mut urgent = self.urgent.lock().unwrap_or_else(PoisonError::into_inner);
        urgent.take().unwrap_or_default()
    }

    /// Queues `req` ahead of everything behind the gate. `Err` gives it back when the
    /// lane has ended.
    pub(super) fn push_urgent(&self, req: Request) -> Result<(), Request> {
        {
            let mut urgent = self.urgent.lock().unwrap_or_else(PoisonError::into_inner);
            match urgent.as_mut() {
                Some(queue) => queue.push(req),
                None => return Err(req),
            }
        }
        self.waker.wake();
        Ok(())
    }

    fn open(&self) {
        self.open.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// Opens its gate when dropped (or earlier, with [`Opener::open`]).
#[derive(Debug)]
pub(crate) struct Opener(Option<Arc<Gate>>);

impl Opener {
    pub(crate) fn new(gate: Arc<Gate>) -> Self {
        Self(Some(gate))
    }

    /// Opens the gate now: the lane's later requests may go.
    pub(crate) fn open(&mut self) {
        if let Some(gate) = self.0.take() {
            gate.open();
        }
    }

    /// The gate, while it is still closed.
    pub(crate) fn gate(&self) -> Option<&Arc<Gate>> {
        self.0.as_ref()
    }
}

impl Drop for Opener {
    fn drop(&mut self) {
        self.open();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker_ref;

    #[test]
    fn an_opener_always_opens() {
        let gate = Arc::new(Gate::default());
        let mut cx = Context::from_waker(noop_waker_ref());
        let opener = Opener::new(Arc::clone(&gate));
        assert!(!gate.poll_open(&mut cx));
        drop(opener);
        assert!(gate.poll_open(&mut cx));
    }
}
