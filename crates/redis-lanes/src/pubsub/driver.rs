//! The subscriber's driver: the future that owns its connection, across reconnections.
//!
//! It is a small state machine, polled by one spawned task:
//!
//! ```text
//!   Connected ──(lost, overflow, refused restore)──▶ Waiting (backoff) ──┐
//!       ▲  │                          │ (reconnect off, gave up,          │
//!       │  │                          ▼  refused for good)                │
//!       │  │                     Disconnected ──(reconnect())──┐        │
//!       │  └──────────(reconnect())──────┐                     │        │
//!       │                                ▼                     ▼        │
//!       └──────(socket open, restore)── Connecting ◀─────────────────────┘
//! ```
//!
//! The subscriptions live here, not in the connection, so they survive it: they are
//! updated from the server's confirmations and restored on each new connection. With
//! the builder's reconnect on (the default), a lost connection is re-opened after the
//! builder's backoff; a refusal (credentials, ACL on a channel) or the attempt limit
//! leaves the subscriber disconnected until `reconnect()`.
//!
//! The task ends when the handle is gone (its queue closes), and the handle also aborts
//! it on drop, so no task outlives its [`Subscriber`](crate::Subscriber).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Sleep;

use super::conn::Conn;
use super::state::{Command, ReplyTx, SubscriberState};
use super::subs::Subscriptions;
use crate::connect::{self, Session};
use crate::error::{Error, ErrorKind};
use crate::lane::LaneOptions;
use crate::reconnect::ReconnectOptions;

type Connecting = Pin<Box<dyn Future<Output = Result<Session, Error>> + Send>>;

/// Everything the driver keeps across connections.
pub(super) struct Core {
    pub(super) rx: mpsc::UnboundedReceiver<Command>,
    pub(super) shared: Arc<SubscriberState>,
    config: Arc<LaneOptions>,
    /// What the server confirmed; restored on every new connection.
    pub(super) subs: Subscriptions,
    /// Callers of `reconnect()` waiting for the connection being opened and restored.
    pub(super) reconnecting: Vec<ReplyTx>,
    /// Commands that arrived while connecting, run once connected (in order).
    pub(super) deferred: VecDeque<Command>,
    /// Failed connection attempts in a row.
    attempts: u32,
}

impl Core {
    pub(super) fn config(&self) -> &LaneOptions {
        &self.config
    }
}

impl Core {
    /// The pause before reconnecting on its own after `cause`, or `None` to stay
    /// disconnected: reconnect is off, the attempt limit is reached, or the server
    /// refused something that trying again cannot fix.
    fn reconnect_pause(&self, cause: &Error, was_up: bool) -> Option<Duration> {
        let options = &self.config.reconnect;
        let refused = ReconnectOptions::is_final(cause) || cause.kind() == ErrorKind::Server;
        let exhausted = options.max_attempts.is_some_and(|max| self.attempts >= max);
        if !options.enabled || refused || exhausted {
            return None;
        }
        // A connection that worked is re-opened at once; failed attempts back off.
        Some(if was_up {
            Duration::ZERO
        } else {
            options.backoff(self.attempts)
        })
    }

    /// The connection is up and every subscription restored.
    pub(super) fn up(&mut self) {
        self.attempts = 0;
        self.shared.set_connected(true);
        for reply in self.reconnecting.drain(..) {
            let _ = reply.send(Ok(()));
        }
    }
}

enum State {
    // Boxed: a connection is large, and the other states are small.
    Connected(Box<Conn>),
    Connecting(Connecting),
    /// Backing off before reconnecting on its own.
    Waiting(Pin<Box<Sleep>>),
    Disconnected(Error),
}

/// Why the current state ends.
pub(super) enum Next {
    /// Every handle is gone.
    Exit,
    /// Open a new connection (asked for by `reconnect()`).
    Connect,
    /// The connection attempt succeeded.
    Opened(Box<Session>),
    /// The connection, or the attempt, ended with this error.
    Down(Error),
}

/// Drives one subscriber. Spawned by [`Subscriber`](crate::Subscriber); never seen by users.
pub(super) struct Driver {
    core: Core,
    state: State,
}

impl Driver {
    pub(super) fn new(
        opened: Session,
        rx: mpsc::UnboundedReceiver<Command>,
        shared: Arc<SubscriberState>,
        config: Arc<LaneOptions>,
    ) -> Self {
        let mut core = Core {
            rx,
            shared,
            config,
            subs: Subscriptions::default(),
            reconnecting: Vec::new(),
            deferred: VecDeque::new(),
            attempts: 0,
        };
        let conn = Conn::new(opened, &mut core);
        Self {
            core,
            state: State::Connected(Box::new(conn)),
        }
    }

    /// Leaves the current state for the one `next` leads to.
    fn enter(&mut self, next: Next) {
        let core = &mut self.core;
        // Stands in only while the old state is taken apart below (transitions are rare,
        // so its allocation does not matter).
        let old = std::mem::replace(
            &mut self.state,
            State::Disconnected(Error::new(ErrorKind::Closed, "in transition")),
        );
        self.state = match next {
            // `poll` returns on `Exit` before calling this; keep the state as it is.
            Next::Exit => old,
            Next::Connect => {
                if let State::Connected(conn) = old {
                    // Asked for by the user, who knows messages sent meanwhile are missed.
                    conn.fail(&Error::new(
                        ErrorKind::ConnectionLost,
                        "the connection was replaced by reconnect()",
                    ));
                }
                core.shared.set_connection(false, None);
                // The stream waits (rather than ends) while the new connection opens.
                core.shared.inbox.set_open(true);
                let config = Arc::clone(&core.config);
                State::Connecting(Box::pin(async move {
                    connect::open(&config.connect, "the subscriber ").await
                }))
            }
            Next::Opened(opened) => State::Connected(Box::new(Conn::new(*opened, core))),
            Next::Down(cause) => {
                let was_up = match old {
                    State::Connected(conn) => {
                        let up = conn.is_up();
                        conn.fail(&cause);
                        up
                    }
                    _ => false,
                };
                core.shared.set_connection(false, None);
                if !was_up {
                    core.attempts = core.attempts.saturating_add(1);
                }
                let pause = core.reconnect_pause(&cause, was_up);
                if was_up {
                    tracing::warn!(error = %cause, "subscriber connection lost");
                    // The consumer sees the gap after the messages that came before it.
                    core.shared.inbox.lost(cause.clone());
                }
                for reply in core.reconnecting.drain(..) {
                    let _ = reply.send(Err(cause.clone()));
                }
                if let Some(pause) = pause {
                    // Reconnecting on its own: the stream waits (it reported the gap),
                    // and commands given meanwhile wait for the new connection.
                    core.shared.inbox.set_open(true);
                    State::Waiting(Box::pin(tokio::time::sleep(pause)))
                } else {
                    if !was_up {
                        // A reconnection failed: the stream had already reported the
                        // loss and just ends again.
                        core.shared.inbox.set_open(false);
                    }
                    let refused = disconnected(&cause);
                    for command in core.deferred.drain(..) {
                        refuse(command, &refused);
                    }
                    State::Disconnected(cause)
                }
            }
        };
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            let step = match &mut this.state {
                State::Connected(conn) => conn.poll(&mut this.core, cx),
                State::Connecting(attempt) => poll_connecting(&mut this.core, attempt, cx),
                State::Waiting(pause) => poll_waiting(&mut this.core, pause, cx),
                State::Disconnected(cause) => poll_disconnected(&mut this.core, cause, cx),
            };
            match step {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Next::Exit) => return Poll::Ready(()),
                Poll::Ready(next) => this.enter(next),
            }
        }
    }
}

/// While connecting: `reconnect()` calls join the attempt, other commands wait for it.
fn poll_connecting(core: &mut Core, attempt: &mut Connecting, cx: &mut Context<'_>) -> Poll<Next> {
    loop {
        match core.rx.poll_recv(cx) {
            Poll::Ready(None) => return Poll::Ready(Next::Exit),
            Poll::Ready(Some(Command::Reconnect(reply))) => core.reconnecting.push(reply),
            Poll::Ready(Some(command)) => core.deferred.push_back(command),
            Poll::Pending => break,
        }
    }
    attempt.as_mut().poll(cx).map(|opened| match opened {
        Ok(opened) => Next::Opened(Box::new(opened)),
        Err(err) => Next::Down(err),
    })
}

/// While backing off: like connecting, and `reconnect()` cuts the pause short.
fn poll_waiting(core: &mut Core, pause: &mut Pin<Box<Sleep>>, cx: &mut Context<'_>) -> Poll<Next> {
    if let Some(next) = take_commands(core, cx, |core, command| core.deferred.push_back(command)) {
        return Poll::Ready(next);
    }
    pause.as_mut().poll(cx).map(|()| Next::Connect)
}

/// While disconnected: commands fail at once (nothing was sent), `reconnect()` connects.
fn poll_disconnected(core: &mut Core, cause: &Error, cx: &mut Context<'_>) -> Poll<Next> {
    match take_commands(core, cx, |_, command| refuse(command, &disconnected(cause))) {
        Some(next) => Poll::Ready(next),
        None => Poll::Pending,
    }
}

/// Takes the queued commands while there is no connection: `reconnect()` connects now,
/// others go to `other`. `None` once the queue is empty for now.
fn take_commands(
    core: &mut Core,
    cx: &mut Context<'_>,
    mut other: impl FnMut(&mut Core, Command),
) -> Option<Next> {
    loop {
        match core.rx.poll_recv(cx) {
            Poll::Ready(None) => return Some(Next::Exit),
            Poll::Ready(Some(Command::Reconnect(reply))) => {
                core.reconnecting.push(reply);
                return Some(Next::Connect);
            }
            Poll::Ready(Some(command)) => other(core, command),
            Poll::Pending => return None,
        }
    }
}

/// The error for commands given while disconnected. Always `ConnectionLost`, whatever
/// ended the connection, so `is_connection()` is the one check that says "reconnect".
fn disconnected(cause: &Error) -> Error {
    Error::new(
        ErrorKind::ConnectionLost,
        format!("the subscriber is disconnected ({cause}); call reconnect()"),
    )
    .not_sent()
}

fn refuse(command: Command, err: &Error) {
    let reply = match command {
        Command::Request { reply, .. } | Command::Reconnect(reply) => reply,
    };
    let _ = reply.send(Err(err.clone()));
}
