//! A lane between two connections: the driver reconnects with backoff while requests
//! wait here, each up to the disconnected-wait deadline.
//!
//! Nothing in this state was ever written. Requests that were on the wire when the
//! connection broke were answered with an outcome-unknown error before the lane got
//! here; what waits here goes out on the next connection, in the order it was sent.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::request::{Reply, Request};
use super::LaneOptions;
use crate::connect::{self, Session};
use crate::error::{Error, ErrorKind};
use crate::reconnect::ReconnectOptions;

type Connecting = Pin<Box<dyn Future<Output = Result<Session, Error>> + Send>>;

enum Phase {
    /// Backing off before the next attempt.
    Waiting(Pin<Box<Sleep>>),
    Connecting(Connecting),
}

struct Parked {
    req: Request,
    /// `None`: waits as long as it takes (a `disconnected_wait` too long for the clock).
    deadline: Option<Instant>,
}

/// The disconnected state of a reconnecting lane.
pub(super) struct Down {
    config: Arc<LaneOptions>,
    /// Why the last connection ended, for the errors of requests that cannot wait.
    cause: Error,
    /// Failed attempts in a row (plus connections that broke right after being made).
    attempt: u32,
    phase: Phase,
    /// FIFO, so deadlines are in order: one timer, armed for the front.
    parked: VecDeque<Parked>,
    expiry: Pin<Box<Sleep>>,
}

impl fmt::Debug for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Down")
            .field("attempt", &self.attempt)
            .field("parked", &self.parked.len())
            .finish()
    }
}

/// What came of polling the reconnect.
pub(super) enum Outcome {
    Connected(Box<Session>),
    /// The lane ends: a refusal that retrying cannot fix, or the attempt limit.
    GaveUp(Error),
}

impl Down {
    /// Starts reconnecting: at once after a connection that lived a while, after a
    /// backoff pause when connections keep breaking (`failures` in a row so far).
    pub(super) fn new(config: Arc<LaneOptions>, cause: Error, failures: u32) -> Self {
        let phase = if failures == 0 {
            Phase::Connecting(Box::pin(reconnect(Arc::clone(&config))))
        } else {
            Phase::Waiting(Box::pin(tokio::time::sleep(
                config.reconnect.backoff(failures),
            )))
        };
        Self {
            config,
            cause,
            attempt: failures,
            phase,
            parked: VecDeque::new(),
            expiry: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Failed attempts in a row before the connection came back.
    pub(super) fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Keeps `req` until the lane is connected again, or answers it at once with a
    /// retry-safe error when the lane is set to fail fast.
    pub(super) fn park(&mut self, req: Request) {
        let wait = self.config.reconnect.wait;
        if wait.is_zero() {
            let err = Error::new(
                ErrorKind::ConnectionLost,
                format!(
                    "not connected ({}); reconnecting, and set to fail fast",
                    self.cause.detail()
                ),
            )
            .not_sent();
            answer(req, err);
            return;
        }
        self.parked.push_back(Parked {
            req,
            deadline: Instant::now().checked_add(wait),
        });
    }

    /// Fails the requests that waited their full deadline. Registers for the next one.
    pub(super) fn expire(&mut self, cx: &mut Context<'_>) {
        loop {
            // Every request waits the same `disconnected_wait`: when the oldest one has
            // no deadline, none has.
            let Some(Parked {
                deadline: Some(deadline),
                ..
            }) = self.parked.front()
            else {
                return;
            };
            let deadline = *deadline;
            if deadline > Instant::now() {
                if self.expiry.deadline() != deadline {
                    self.expiry.as_mut().reset(deadline);
                }
                if self.expiry.as_mut().poll(cx).is_pending() {
                    return;
                }
            }
            if let Some(expired) = self.parked.pop_front() {
                let err = Error::new(
                    ErrorKind::ConnectionLost,
                    format!(
                        "not connected within {:?} ({}); the request was not sent",
                        self.config.reconnect.wait,
                        self.cause.detail()
                    ),
                )
                .not_sent();
                answer(expired.req, err);
            }
        }
    }

    /// Drives the backoff and the connect attempts.
    pub(super) fn poll_reconnect(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        loop {
            match &mut self.phase {
                Phase::Waiting(pause) => {
                    if pause.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.phase = Phase::Connecting(Box::pin(reconnect(Arc::clone(&self.config))));
                }
                Phase::Connecting(attempt) => {
                    let err = match attempt.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(session)) => {
                            return Poll::Ready(Outcome::Connected(Box::new(session)))
                        }
                        Poll::Ready(Err(err)) => err,
                    };
                    self.attempt = self.attempt.saturating_add(1);
                    if ReconnectOptions::is_final(&err) {
                        tracing::error!(error = %err, "reconnect refused by the server; giving up");
                        return Poll::Ready(Outcome::GaveUp(err));
                    }
                    let options = &self.config.reconnect;
                    if options.max_attempts.is_some_and(|max| self.attempt >= max) {
                        let err = Error::new(
                            ErrorKind::ConnectionLost,
                            format!(
                                "gave up reconnecting after {} attempts; last error: {err}",
                                self.attempt
                            ),
                        );
                        tracing::error!(error = %err, "reconnect gave up");
                        return Poll::Ready(Outcome::GaveUp(err));
                    }
                    let pause = options.backoff(self.attempt);
                    tracing::debug!(attempt = self.attempt, ?pause, error = %err, "reconnect attempt failed");
                    self.phase = Phase::Waiting(Box::pin(tokio::time::sleep(pause)));
                }
            }
        }
    }

    /// The waiting requests, oldest first, for the new connection or for failing.
    pub(super) fn take_parked(&mut self) -> impl Iterator<Item = Request> + '_ {
        self.parked.drain(..).map(|p| p.req)
    }
}

fn answer(req: Request, err: Error) {
    if let Some(tx) = req.reply {
        let _ = tx.send(Err::<Reply, _>(err));
    }
}

/// One reconnect attempt, owning what it needs so it can be boxed and polled.
async fn reconnect(options: Arc<LaneOptions>) -> Result<Session, Error> {
    connect::open(&options.connect, "").await
}
