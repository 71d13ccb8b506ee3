//! What redis-lanes reports about each request: a `tracing` span, and with the `metrics`
//! feature a latency sample, counters and gauges.
//!
//! Spans are at `DEBUG` level under the target [`TARGET`], so a service whose subscriber
//! does not enable that target pays one cached interest check per request and nothing
//! else: the span's fields (the command's name among them) are only computed when a
//! subscriber wants the span. Their names follow the OpenTelemetry database conventions,
//! which `tracing-opentelemetry` maps one to one (`otel.name`, `otel.kind`,
//! `otel.status_code` included).

pub(crate) mod name;

#[cfg(feature = "metrics")]
pub(crate) mod metrics;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use redis::{Cmd, Pipeline, Value};
use tracing::field::Empty;
use tracing::Span;

use crate::error::Error;
use crate::url::{Addr, ConnectInfo};

/// The `tracing` target of the per-request spans.
pub(crate) const TARGET: &str = "redis_lanes::command";

/// Which kind of lane a request ran on, as spans and metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Shared,
    Blocking,
    Exclusive,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Shared => "shared",
            Kind::Blocking => "blocking",
            Kind::Exclusive => "exclusive",
        }
    }
}

/// The server one `Core` talks to, as spans and metrics name it; built once per server.
#[derive(Debug)]
pub(crate) struct Peer {
    address: String,
    port: Option<u16>,
    /// `db.namespace` is a string in the conventions.
    db: String,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: metrics::Handles,
}

impl Peer {
    pub(crate) fn new(info: &ConnectInfo) -> Peer {
        let (address, port) = match &info.addr {
            Addr::Tcp { host, port } => (host.clone(), Some(*port)),
            Addr::Unix(path) => (path.display().to_string(), None),
        };
        Peer {
            #[cfg(feature = "metrics")]
            metrics: metrics::Handles::new(&info.addr.to_string()),
            address,
            port,
            db: info.db.to_string(),
        }
    }

    fn span(&self, kind: Kind) -> Span {
        tracing::debug_span!(
            target: TARGET,
            "redis",
            otel.name = Empty,
            otel.kind = "client",
            otel.status_code = Empty,
            db.system.name = "redis",
            db.operation.name = Empty,
            db.operation.batch.size = Empty,
            db.namespace = self.db.as_str(),
            db.response.status_code = Empty,
            server.address = self.address.as_str(),
            server.port = self.port,
            error.type = Empty,
            redis_lanes.lane = kind.as_str(),
        )
    }
}

/// One request on its way: its span, and with the `metrics` feature its start time.
/// Finished by [`Op::run`]; a request whose future is dropped first is recorded as
/// cancelled.
#[derive(Debug)]
pub(crate) struct Op<'a> {
    span: Span,
    finished: bool,
    #[cfg(feature = "metrics")]
    peer: &'a Peer,
    #[cfg(feature = "metrics")]
    kind: Kind,
    #[cfg(feature = "metrics")]
    start: std::time::Instant,
    #[cfg(not(feature = "metrics"))]
    _peer: std::marker::PhantomData<&'a Peer>,
}

impl<'a> Op<'a> {
    /// A single command.
    pub(crate) fn command(peer: &'a Peer, kind: Kind, cmd: &Cmd) -> Self {
        let span = peer.span(kind);
        if !span.is_disabled() {
            let name = name::command(cmd);
            span.record("otel.name", name.as_str());
            span.record("db.operation.name", name.as_str());
        }
        Op::new(span, peer, kind)
    }

    /// A pipeline (or transaction) of `pipe.len()` commands.
    pub(crate) fn pipeline(peer: &'a Peer, kind: Kind, pipe: &Pipeline) -> Self {
        let span = peer.span(kind);
        if !span.is_disabled() {
            let name = name::pipeline(pipe);
            span.record("otel.name", name.as_str());
            span.record("db.operation.name", name.as_str());
            // The conventions count a batch from two operations on.
            if pipe.len() >= 2 {
                span.record("db.operation.batch.size", pipe.len());
            }
        }
        Op::new(span, peer, kind)
    }

    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    fn new(span: Span, peer: &'a Peer, kind: Kind) -> Self {
        Op {
            span,
            finished: false,
            #[cfg(feature = "metrics")]
            peer,
            #[cfg(feature = "metrics")]
            kind,
            #[cfg(feature = "metrics")]
            start: std::time::Instant::now(),
            #[cfg(not(feature = "metrics"))]
            _peer: std::marker::PhantomData,
        }
    }

    /// Runs `request` inside the span (so the lanes' own events are its children) and
    /// records how it ended.
    ///
    /// A future of its own rather than an `async fn`: an `async fn` keeps its argument
    /// and the future it awaits in two places in its state, so every request's future,
    /// allocated per command, would hold the request's state twice.
    pub(crate) fn run<T: Reply, F: Future<Output = Result<T, Error>>>(
        self,
        request: F,
    ) -> Run<'a, F> {
        Run { op: self, request }
    }

    /// `failure`: the error's type and, for a server error, its code.
    fn finish(&mut self, failure: Option<(&str, Option<&str>)>) {
        self.finished = true;
        if let Some((error_type, code)) = failure {
            if !self.span.is_disabled() {
                self.span.record("otel.status_code", "ERROR");
                self.span.record("error.type", error_type);
                if let Some(code) = code {
                    self.span.record("db.response.status_code", code);
                }
            }
        }
        #[cfg(feature = "metrics")]
        {
            let outcome = match failure {
                None => metrics::Outcome::Ok,
                Some(_) => metrics::Outcome::Error,
            };
            self.peer
                .metrics
                .latency(self.kind, outcome, self.start.elapsed());
        }
    }
}

impl Drop for Op<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The caller gave up (timeout, `select!`, abort) before the reply.
        if !self.span.is_disabled() {
            self.span.record("error.type", "cancelled");
        }
        #[cfg(feature = "metrics")]
        self.peer
            .metrics
            .latency(self.kind, metrics::Outcome::Cancelled, self.start.elapsed());
    }
}

pin_project_lite::pin_project! {
    /// The future [`Op::run`] returns.
    pub(crate) struct Run<'a, F> {
        op: Op<'a>,
        #[pin]
        request: F,
    }
}

impl<T: Reply, F: Future<Output = Result<T, Error>>> Future for Run<'_, F> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // Inside the span, so the lanes' own events are its children; a disabled span
        // (no subscriber wants it, the common case) is not entered at all.
        let entered = (!this.op.span.is_disabled()).then(|| this.op.span.enter());
        let result = std::task::ready!(this.request.poll(cx));
        drop(entered);
        let failure = match &result {
            Ok(reply) => reply.server_code().map(|code| (code, Some(code))),
            Err(err) => Some((err.kind().label(), err.server_code())),
        };
        this.op.finish(failure);
        Poll::Ready(result)
    }
}

/// A reply that may itself be a server error (`-WRONGTYPE ...` as a command's reply).
pub(crate) trait Reply {
    /// The server error's code (`WRONGTYPE`), if the reply is one.
    fn server_code(&self) -> Option<&str>;
}

impl Reply for Value {
    fn server_code(&self) -> Option<&str> {
        match self {
            Value::ServerError(err) => Some(err.code()),
            _ => None,
        }
    }
}

/// A pipeline's replies: errors inside are the caller's to read, one by one.
impl Reply for Vec<Value> {
    fn server_code(&self) -> Option<&str> {
        None
    }
}
