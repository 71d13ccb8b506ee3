//! The driver's liveness check: a peer that sends nothing for a while must prove it is
//! alive, or the connection is declared dead.
//!
//! A tick every `interval` looks at whether anything was read since the last one. The
//! hot path only sets a flag per read: no clock read, no timer reset per request. When
//! a whole interval passed in silence, the lane sends `PING` in line (pipelined behind
//! whatever is in flight, so reply order holds); when nothing at all is read within
//! `timeout` after that, the peer is dead. A silent peer is therefore found between
//! `interval + timeout` and `2 × interval + timeout` after the last byte it sent.
//!
//! A dedicated lane busy with a request cannot send `PING` (a blocking command holds the
//! socket; an exclusive lease may be inside `MULTI`, where a `PING` would be queued into
//! the transaction). It probes only when idle, if at all; while busy it is watched from
//! the shared lane instead (`node::Core::watched`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::error::{Error, ErrorKind};

/// How often a connection must show signs of life, and how long a probe may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HealthOptions {
    /// Silence after which a probe is sent; `None` turns the check off.
    pub(crate) interval: Option<Duration>,
    /// How long the peer may stay silent after a probe before it is declared dead.
    pub(crate) timeout: Duration,
}

impl Default for HealthOptions {
    /// A silent peer is found within 2 × 2 s + 4 s = 8 s.
    fn default() -> Self {
        Self {
            interval: Some(Duration::from_secs(2)),
            timeout: Duration::from_secs(4),
        }
    }
}

/// What a lane is for, which decides how it batches and when it may probe its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LaneKind {
    /// The shared lane: batches, and probes in line whenever it was silent for an
    /// interval.
    Shared,
    /// A blocking lane: probes only with nothing in flight (between calls).
    Blocking,
    /// An exclusive lane: never probes by itself, since its lease may be inside `MULTI`.
    Exclusive,
    /// A subscriber's connection: probes whenever it was silent for an interval
    /// (`PING` is allowed while subscribed).
    Subscriber,
}

impl LaneKind {
    /// Its name in logs and metrics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            LaneKind::Shared => "shared",
            LaneKind::Blocking => "blocking",
            LaneKind::Exclusive => "exclusive",
            LaneKind::Subscriber => "subscriber",
        }
    }
}

/// What the driver should do after a tick.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing.
    Fine,
    /// Write a `PING`.
    SendProbe,
    /// The peer sent nothing within the limit: close the connection.
    Dead(Duration),
}

/// One connection's check.
#[derive(Debug)]
pub(crate) struct Health {
    options: HealthOptions,
    kind: LaneKind,
    timer: Option<Pin<Box<Sleep>>>,
    /// Something was read since the last tick.
    heard: bool,
    /// When the last silent interval began, as far as a tick can tell.
    silent_since: Instant,
    /// The deadline of an unanswered probe.
    deadline: Option<Instant>,
}

impl Health {
    pub(crate) fn new(options: HealthOptions, kind: LaneKind) -> Self {
        let now = Instant::now();
        let timer = options
            .interval
            .and_then(|every| now.checked_add(every))
            .map(|at| Box::pin(tokio::time::sleep_until(at)));
        Self {
            options,
            kind,
            timer,
            heard: false,
            silent_since: now,
            deadline: None,
        }
    }

    /// Notes that bytes were read.
    #[inline]
    pub(crate) fn heard(&mut self) {
        self.heard = true;
    }

    /// Polls the tick; `busy` says whether requests are in flight.
    pub(crate) fn poll_tick(&mut self, cx: &mut Context<'_>, busy: bool) -> Poll<Verdict> {
        let may_probe = self.may_probe(busy);
        let (Some(timer), Some(interval)) = (self.timer.as_mut(), self.options.interval) else {
            return Poll::Pending;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let now = Instant::now();
        let verdict = if std::mem::take(&mut self.heard) {
            self.deadline = None;
            self.silent_since = now;
            Verdict::Fine
        } else if let Some(deadline) = self.deadline {
            if now >= deadline {
                Verdict::Dead(now.saturating_duration_since(self.silent_since))
            } else {
                Verdict::Fine
            }
        } else if may_probe {
            self.deadline = now.checked_add(self.options.timeout);
            Verdict::SendProbe
        } else {
            Verdict::Fine
        };
        // The next tick: the probe's deadline if it comes first.
        let mut next = now.checked_add(interval);
        if let (Some(deadline), Some(at)) = (self.deadline, next) {
            next = Some(deadline.min(at));
        }
        match next {
            Some(at) => timer.as_mut().reset(at),
            None => self.timer = None,
        }
        // The caller polls again until `Pending`, which registers the re-armed timer.
        Poll::Ready(verdict)
    }

    fn may_probe(&self, busy: bool) -> bool {
        match self.kind {
            LaneKind::Shared | LaneKind::Subscriber => true,
            LaneKind::Blocking => !busy,
            LaneKind::Exclusive => false,
        }
    }

    /// Whether ticks are running at all.
    #[cfg(test)]
    pub(super) fn is_on(&self) -> bool {
        self.timer.is_some()
    }
}

/// The error callers in flight get when the peer was declared dead.
pub(crate) fn dead(silent: Duration, health: HealthOptions, kind: LaneKind) -> Error {
    let err = Error::new(
        ErrorKind::ConnectionLost,
        format!(
            "the server sent nothing for {silent:?} and did not answer a PING within {:?} \
         (health check of the {} lane); the connection was declared dead and closed",
            health.timeout,
            kind.name()
        ),
    );
    tracing::warn!(
        lane = kind.name(),
        silent_ms = silent.as_millis() as u64,
        "{err}"
    );
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    async fn tick(health: &mut Health, busy: bool) -> Verdict {
        poll_fn(|cx| health.poll_tick(cx, busy)).await
    }

    fn options() -> HealthOptions {
        HealthOptions {
            interval: Some(Duration::from_secs(2)),
            timeout: Duration::from_secs(4),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn silence_leads_to_a_probe_then_to_death() {
        let start = Instant::now();
        let mut health = Health::new(options(), LaneKind::Shared);
        assert_eq!(tick(&mut health, true).await, Verdict::SendProbe);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(tick(&mut health, true).await, Verdict::Fine);
        let Verdict::Dead(silent) = tick(&mut health, true).await else {
            panic!("not declared dead");
        };
        assert_eq!(start.elapsed(), Duration::from_secs(6));
        assert_eq!(silent, Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn anything_read_answers_the_probe() {
        let mut health = Health::new(options(), LaneKind::Shared);
        assert_eq!(tick(&mut health, false).await, Verdict::SendProbe);
        health.heard();
        for _ in 0..10 {
            assert_ne!(
                tick(&mut health, false).await,
                Verdict::Dead(Duration::ZERO)
            );
            health.heard();
        }
        // Traffic keeps it quiet: no probe while replies flow.
        assert_eq!(tick(&mut health, true).await, Verdict::Fine);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_dedicated_lane_never_probes_or_dies_by_itself() {
        let mut health = Health::new(options(), LaneKind::Blocking);
        for _ in 0..20 {
            assert_eq!(tick(&mut health, true).await, Verdict::Fine);
        }
        assert_eq!(tick(&mut health, false).await, Verdict::SendProbe);
        let mut never = Health::new(options(), LaneKind::Exclusive);
        for _ in 0..20 {
            assert_eq!(tick(&mut never, false).await, Verdict::Fine);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn off_never_ticks() {
        let mut health = Health::new(
            HealthOptions {
                interval: None,
                timeout: Duration::from_secs(1),
            },
            LaneKind::Shared,
        );
        assert!(!health.is_on());
        let waited = tokio::time::timeout(Duration::from_secs(3600), tick(&mut health, true)).await;
        assert!(waited.is_err());
    }
}
