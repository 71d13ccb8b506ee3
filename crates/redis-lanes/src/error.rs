//! The one error type of redis-lanes.

use std::fmt;
use std::io;
use std::sync::Arc;

/// What went wrong, in a form a program can branch on.
///
/// New kinds may be added: match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The URL or an option is invalid. Nothing was sent.
    InvalidConfig,
    /// The connection could not be opened (refused, unreachable, DNS, connect timeout).
    Connect,
    /// The server refused the credentials (`WRONGPASS`, `NOAUTH`) or the user lacks
    /// permission for a handshake command.
    Auth,
    /// The server refused another part of the handshake, e.g. `SELECT` of a database
    /// that does not exist or `HELLO 3` on a server without RESP3.
    Handshake,
    /// The connection broke while the request was queued or in flight. Whether the
    /// server executed it is unknown; see [`Error::is_retry_safe`].
    ConnectionLost,
    /// The client was closed with `close()` or all of its handles were dropped.
    Closed,
    /// No reply arrived within the configured response timeout.
    Timeout,
    /// The server sent bytes that are not valid RESP, or a frame over the frame-size or
    /// nesting limits. The connection is closed because its reply stream can no longer
    /// be trusted. (A bulk string over `max_bulk_len` alone is
    /// [`ErrorKind::ResponseTooLarge`], and the connection stays.)
    Protocol,
    /// The command would corrupt a shared connection and was refused before it was sent.
    /// The message names the API to use instead.
    Refused,
    /// Every dedicated connection of a pool (e.g. `max_blocking_lanes`) stayed busy for
    /// the pool's acquire timeout. The message names the limit. Nothing was sent.
    PoolTimeout,
    /// An optimistic transaction ([`Client::transaction`](crate::Client::transaction))
    /// was retried `transaction_max_retries` times and a watched key changed every
    /// time. No attempt's `EXEC` took effect.
    TransactionConflict,
    /// A [`Subscriber`](crate::Subscriber)'s message buffer was full under
    /// [`OverflowPolicy::Disconnect`](crate::OverflowPolicy::Disconnect), so its
    /// connection was closed: the consumer fell behind.
    Overflow,
    /// The server answered with an error reply where the API has no reply to return it
    /// in, e.g. a [`Subscriber::subscribe`](crate::Subscriber::subscribe) refused with
    /// `NOPERM`. The server's error is the [`source`](std::error::Error::source).
    Server,
    /// The request cannot be sent as it is: an empty command or an empty pipeline.
    /// Nothing was sent.
    InvalidCommand,
    /// A reply carried a bulk string longer than
    /// [`Builder::max_bulk_len`](crate::Builder::max_bulk_len). The command ran; its reply
    /// was read and discarded without being buffered, and only this request fails: the
    /// connection and every other caller's reply are unaffected.
    ResponseTooLarge,
    /// The lane stayed full (`max_in_flight` requests, or `max_in_flight_bytes` of them)
    /// for [`Builder::max_in_flight_wait`](crate::Builder::max_in_flight_wait): the
    /// server is not keeping up, or is not answering. Nothing was sent.
    Backpressure,
}

impl ErrorKind {
    /// The kind as an identifier, for the `error.type` of spans.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::InvalidConfig => "invalid_config",
            Self::Connect => "connect",
            Self::Auth => "auth",
            Self::Handshake => "handshake",
            Self::ConnectionLost => "connection_lost",
            Self::Closed => "closed",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
            Self::Refused => "refused",
            Self::PoolTimeout => "pool_timeout",
            Self::TransactionConflict => "transaction_conflict",
            Self::Overflow => "overflow",
            Self::Server => "server",
            Self::InvalidCommand => "invalid_command",
            Self::ResponseTooLarge => "response_too_large",
            Self::Backpressure => "backpressure",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::InvalidConfig => "invalid configuration",
            Self::Connect => "could not connect",
            Self::Auth => "authentication failed",
            Self::Handshake => "handshake refused",
            Self::ConnectionLost => "connection lost",
            Self::Closed => "client closed",
            Self::Timeout => "response timed out",
            Self::Protocol => "protocol error",
            Self::Refused => "command refused",
            Self::PoolTimeout => "pool exhausted",
            Self::TransactionConflict => "transaction conflict",
            Self::Overflow => "subscriber overflow",
            Self::Server => "server error",
            Self::InvalidCommand => "invalid command",
            Self::ResponseTooLarge => "response too large",
            Self::Backpressure => "too much in flight",
        }
    }
}

/// The error returned by every fallible redis-lanes operation.
///
/// It is opaque on purpose: branch on [`Error::kind`] or the `is_*` methods. The
/// `Display` text is meant for people and may change between versions; do not parse it.
///
/// Errors are cheap to clone: when a connection dies, every waiting caller receives a
/// clone of the same cause.
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    /// Set when the request certainly never reached the socket, so sending it again
    /// cannot execute it twice.
    not_sent: bool,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                message: message.into(),
                not_sent: matches!(
                    kind,
                    ErrorKind::InvalidConfig
                        | ErrorKind::Refused
                        | ErrorKind::Connect
                        | ErrorKind::PoolTimeout
                        | ErrorKind::Backpressure
                        | ErrorKind::InvalidCommand
                ),
                source: None,
            }),
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let mut err = Self::new(kind, message);
        if let Some(inner) = Arc::get_mut(&mut err.inner) {
            inner.source = Some(Arc::new(source));
        }
        err
    }

    /// Returns a copy of this error that records the request was never written, so a
    /// retry is safe. Used where the lane knows the bytes did not leave the queue.
    pub(crate) fn not_sent(&self) -> Self {
        if self.inner.not_sent {
            return self.clone();
        }
        Self {
            inner: Arc::new(Inner {
                kind: self.inner.kind,
                message: self.inner.message.clone(),
                not_sent: true,
                source: self.inner.source.clone(),
            }),
        }
    }

    /// The same error for a request that was written when it happened: the message
    /// says the outcome is unknown, and it is never marked safe to retry.
    pub(crate) fn in_flight(&self) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind: self.inner.kind,
                message: format!(
                    "{}; the request was in flight, so whether it ran is unknown",
                    self.inner.message
                ),
                not_sent: false,
                source: self.inner.source.clone(),
            }),
        }
    }

    /// The message and source without the kind, for quoting inside another error.
    pub(crate) fn detail(&self) -> String {
        match &self.inner.source {
            Some(source) => format!("{}: {source}", self.inner.message),
            None => self.inner.message.clone(),
        }
    }

    pub(crate) fn closed() -> Self {
        Self::new(ErrorKind::Closed, "the client was closed")
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, message)
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The client was closed or dropped.
    pub fn is_closed(&self) -> bool {
        self.inner.kind == ErrorKind::Closed
    }

    /// The response timeout ran out.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// Connecting failed or an established connection broke.
    pub fn is_connection(&self) -> bool {
        matches!(
            self.inner.kind,
            ErrorKind::Connect | ErrorKind::ConnectionLost
        )
    }

    /// The server refused the credentials.
    pub fn is_auth(&self) -> bool {
        self.inner.kind == ErrorKind::Auth
    }

    /// The server broke the protocol or a frame exceeded a configured limit.
    pub fn is_protocol(&self) -> bool {
        self.inner.kind == ErrorKind::Protocol
    }

    /// The command was refused before it was sent because it would corrupt the
    /// shared connection.
    pub fn is_refused(&self) -> bool {
        self.inner.kind == ErrorKind::Refused
    }

    /// No pooled connection became free in time.
    pub fn is_pool_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::PoolTimeout
    }

    /// The lane stayed full for the in-flight wait limit; nothing was sent.
    pub fn is_backpressure(&self) -> bool {
        self.inner.kind == ErrorKind::Backpressure
    }

    /// An optimistic transaction ran out of retries because watched keys kept changing.
    pub fn is_transaction_conflict(&self) -> bool {
        self.inner.kind == ErrorKind::TransactionConflict
    }

    /// The URL or an option was invalid.
    pub fn is_config(&self) -> bool {
        self.inner.kind == ErrorKind::InvalidConfig
    }

    /// `true` when the request certainly never reached the server, so sending it again
    /// cannot make it run twice. `false` means the outcome is unknown (or, for
    /// [`ErrorKind::Refused`], that a retry would be refused again).
    pub fn is_retry_safe(&self) -> bool {
        self.inner.not_sent
            && !matches!(
                self.inner.kind,
                ErrorKind::Refused | ErrorKind::InvalidCommand
            )
    }

    /// A reply was larger than the configured limit and was discarded.
    pub fn is_response_too_large(&self) -> bool {
        self.inner.kind == ErrorKind::ResponseTooLarge
    }

    /// `true` when the request may or may not have run on the server: it was written
    /// and then the connection broke, the reply stream turned out to be garbage, the
    /// response timeout ran out, or `close()` cut it off. Such a request is never sent
    /// again by redis-lanes (unless it is read-only and
    /// [`Builder::retry_read_only`](crate::Builder::retry_read_only) is on); whether to
    /// retry it is the application's call.
    pub fn is_outcome_unknown(&self) -> bool {
        !self.inner.not_sent
            && matches!(
                self.inner.kind,
                ErrorKind::ConnectionLost
                    | ErrorKind::Protocol
                    | ErrorKind::Timeout
                    | ErrorKind::Closed
            )
    }

    /// Finds the redis-lanes error inside a [`redis::RedisError`] produced by this crate's
    /// [`redis::aio::ConnectionLike`] implementations, so code using the `redis` command
    /// API can still branch on [`Error::kind`]. `None` for errors the `redis` crate or the
    /// server made (a server error reply, a type conversion), and for a server error
    /// redis-lanes passes on in the server's own form (`EXECABORT` of an atomic pipeline).
    ///
    /// Errors that travel as an I/O error (connection, timeout, close) come back whole;
    /// the others (kinds the `redis` crate has a kind of its own for, such as
    /// `AuthenticationFailed` or `Client`) come back with their kind and message.
    pub fn from_redis(err: &redis::RedisError) -> Option<Error> {
        if let Some(source) = std::error::Error::source(err) {
            // `RedisError` exposes its inner error as the `Arc` it stores it in.
            let io = match source.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>() {
                Some(arc) => (**arc).downcast_ref::<io::Error>(),
                None => source.downcast_ref::<io::Error>(),
            };
            if let Some(inner) = io.and_then(|io| io.get_ref()?.downcast_ref::<Error>()) {
                return Some(inner.clone());
            }
        }
        // Carried as one of the `redis` crate's own kinds: the description names the
        // redis-lanes kind, the detail is the message.
        let (kind, text) = split_tag(&err.to_string())?;
        Some(Error::new(kind, text))
    }

    /// How this error travels inside a [`redis::RedisError`]: an I/O error for what the
    /// `redis` crate reports as one (so `is_timeout`, `is_connection_dropped` and
    /// `retry_method` agree with a `MultiplexedConnection`'s), otherwise the `redis`
    /// crate's own kind for the same failure.
    fn carrier(&self) -> Carrier {
        use redis::ErrorKind as R;
        match self.inner.kind {
            ErrorKind::Connect => Carrier::Io(io::ErrorKind::ConnectionRefused),
            ErrorKind::ConnectionLost => Carrier::Io(io::ErrorKind::ConnectionReset),
            ErrorKind::Closed => Carrier::Io(io::ErrorKind::NotConnected),
            ErrorKind::Timeout | ErrorKind::PoolTimeout | ErrorKind::Backpressure => {
                Carrier::Io(io::ErrorKind::TimedOut)
            }
            // The subscriber's connection was closed under it.
            ErrorKind::Overflow => Carrier::Io(io::ErrorKind::ConnectionAborted),
            ErrorKind::InvalidConfig => Carrier::Kind(R::InvalidClientConfig),
            ErrorKind::Auth => Carrier::Kind(R::AuthenticationFailed),
            ErrorKind::Protocol => Carrier::Kind(R::Parse),
            ErrorKind::Handshake => Carrier::Kind(R::Server(redis::ServerErrorKind::ResponseError)),
            ErrorKind::Server => match self.server_error() {
                Some(server) => Carrier::Server(server.clone()),
                None => Carrier::Kind(R::Server(redis::ServerErrorKind::ResponseError)),
            },
            ErrorKind::Refused
            | ErrorKind::TransactionConflict
            | ErrorKind::InvalidCommand
            | ErrorKind::ResponseTooLarge => Carrier::Kind(R::Client),
        }
    }

    /// The server's error reply this error stands for, if it is one.
    /// The server's error code (`WRONGTYPE`, `NOSCRIPT`), for an error reply.
    pub(crate) fn server_code(&self) -> Option<&str> {
        self.server_error().map(redis::ServerError::code)
    }

    fn server_error(&self) -> Option<&redis::ServerError> {
        self.inner.source.as_deref()?.downcast_ref()
    }

    /// A [`ErrorKind::Server`] error that stands for `server`'s error reply.
    pub(crate) fn server(message: impl Into<String>, server: redis::ServerError) -> Self {
        Self::with_source(ErrorKind::Server, message, server)
    }
}

/// See [`Error::carrier`].
enum Carrier {
    Io(io::ErrorKind),
    Kind(redis::ErrorKind),
    Server(redis::ServerError),
}

/// The description a redis-lanes error carries in a `redis` crate kind: one per kind, so
/// [`Error::from_redis`] can tell which it was.
fn tag(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidConfig => "redis-lanes: invalid configuration",
        ErrorKind::Auth => "redis-lanes: authentication failed",
        ErrorKind::Handshake => "redis-lanes: handshake refused",
        ErrorKind::Protocol => "redis-lanes: protocol error",
        ErrorKind::Refused => "redis-lanes: command refused",
        ErrorKind::TransactionConflict => "redis-lanes: transaction conflict",
        ErrorKind::InvalidCommand => "redis-lanes: invalid command",
        ErrorKind::ResponseTooLarge => "redis-lanes: response too large",
        ErrorKind::Server => "redis-lanes: server error",
        _ => "redis-lanes",
    }
}

/// Reads back what [`tag`] wrote: `RedisError` displays a general error as
/// `"{description} - {kind:?}: {detail}"`.
fn split_tag(text: &str) -> Option<(ErrorKind, String)> {
    const KINDS: [ErrorKind; 9] = [
        ErrorKind::InvalidConfig,
        ErrorKind::Auth,
        ErrorKind::Handshake,
        ErrorKind::Protocol,
        ErrorKind::Refused,
        ErrorKind::TransactionConflict,
        ErrorKind::InvalidCommand,
        ErrorKind::ResponseTooLarge,
        ErrorKind::Server,
    ];
    KINDS.into_iter().find_map(|kind| {
        let rest = text.strip_prefix(tag(kind))?.strip_prefix(" - ")?;
        // After the tag: the `redis` kind, then the detail.
        let (_, detail) = rest.split_once(": ")?;
        Some((kind, detail.to_owned()))
    })
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if self.inner.not_sent {
            d.field("not_sent", &true);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.inner.kind.as_str(), self.inner.message)?;
        if let Some(source) = &self.inner.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// Carries the redis-lanes error inside a `RedisError` of the kind the `redis` crate uses
/// for the same failure, so code written against `RedisError` (`kind()`, `is_timeout()`,
/// `is_connection_dropped()`, `retry_method()`) behaves as it does with a
/// `MultiplexedConnection`. [`Error::from_redis`] recovers it.
impl From<Error> for redis::RedisError {
    fn from(err: Error) -> Self {
        match err.carrier() {
            Carrier::Io(kind) => redis::RedisError::from(io::Error::new(kind, err)),
            Carrier::Kind(kind) => redis::RedisError::from((kind, tag(err.kind()), err.detail())),
            Carrier::Server(server) => redis::RedisError::from(server),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_the_trip_through_redis_error() {
        let err = Error::new(ErrorKind::Refused, "WATCH needs a dedicated connection");
        let redis_err = redis::RedisError::from(err);
        let back = Error::from_redis(&redis_err).expect("redis-lanes error inside");
        assert_eq!(back.kind(), ErrorKind::Refused);
        assert!(redis_err.to_string().contains("WATCH"));
    }

    #[test]
    fn redis_predicates_agree() {
        use redis::{ErrorKind as R, RetryMethod};
        let timeout = redis::RedisError::from(Error::new(ErrorKind::Timeout, "x"));
        assert!(timeout.is_timeout() && timeout.is_io_error());
        let lost = redis::RedisError::from(Error::new(ErrorKind::ConnectionLost, "x"));
        assert!(lost.is_connection_dropped());
        assert!(matches!(lost.retry_method(), RetryMethod::Reconnect));
        let closed = redis::RedisError::from(Error::closed());
        assert!(closed.is_connection_dropped());
        let refused = redis::RedisError::from(Error::new(ErrorKind::Connect, "x"));
        assert!(refused.is_connection_refusal());
        let cases = [
            (ErrorKind::Auth, R::AuthenticationFailed),
            (ErrorKind::Refused, R::Client),
            (ErrorKind::InvalidConfig, R::InvalidClientConfig),
            (ErrorKind::Protocol, R::Parse),
            (ErrorKind::InvalidCommand, R::Client),
            (ErrorKind::ResponseTooLarge, R::Client),
            (ErrorKind::TransactionConflict, R::Client),
        ];
        for (ours, theirs) in cases {
            let err = redis::RedisError::from(Error::new(ours, "what happened: in detail"));
            assert_eq!(err.kind(), theirs, "{ours:?}");
            assert!(!err.is_io_error() && !err.is_timeout(), "{ours:?}");
            let back = Error::from_redis(&err).expect("recognised");
            assert_eq!(back.kind(), ours);
            assert_eq!(
                back.to_string(),
                Error::new(ours, "what happened: in detail").to_string()
            );
        }
    }

    #[test]
    fn a_server_error_travels_in_the_servers_form() {
        let Ok(redis::Value::ServerError(server)) =
            redis::parse_redis_value(b"-EXECABORT Transaction discarded\r\n")
        else {
            panic!("a server error");
        };
        let err = redis::RedisError::from(Error::server("aborted", server));
        assert_eq!(
            err.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::ExecAbort)
        );
        assert!(Error::from_redis(&err).is_none());
    }

    #[test]
    fn errors_the_redis_crate_made_are_not_ours() {
        let err = redis::RedisError::from((redis::ErrorKind::Client, "empty command"));
        assert!(Error::from_redis(&err).is_none());
        let io = redis::RedisError::from(io::Error::new(io::ErrorKind::TimedOut, "slow"));
        assert!(Error::from_redis(&io).is_none());
    }

    #[test]
    fn an_in_flight_error_keeps_kind_and_source_and_reads_once() {
        let io = io::Error::new(io::ErrorKind::ConnectionReset, "reset by peer");
        let cause = Error::with_source(ErrorKind::ConnectionLost, "reading failed", io);
        let err = cause.not_sent().in_flight();
        assert_eq!(err.kind(), ErrorKind::ConnectionLost);
        assert!(err.is_outcome_unknown() && !err.is_retry_safe());
        let text = err.to_string();
        assert_eq!(text.matches("connection lost").count(), 1, "{text}");
        assert!(
            text.contains("in flight") && text.contains("reset by peer"),
            "{text}"
        );
        assert_eq!(cause.detail(), "reading failed: reset by peer");
    }

    #[test]
    fn retry_safety() {
        let lost = Error::new(ErrorKind::ConnectionLost, "x");
        assert!(!lost.is_retry_safe());
        assert!(lost.not_sent().is_retry_safe());
        assert!(!Error::new(ErrorKind::Refused, "x").is_retry_safe());
        assert!(Error::new(ErrorKind::Connect, "x").is_retry_safe());
        assert!(lost.is_outcome_unknown());
        assert!(!lost.not_sent().is_outcome_unknown());
        assert!(!Error::new(ErrorKind::Refused, "x").is_outcome_unknown());
    }
}
