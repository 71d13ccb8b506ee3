//! The handle users hold: [`Subscriber`].

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use redis::ToRedisArgs;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

use super::driver::Driver;
use super::inbox::{Inbox, Totals};
use super::message::Message;
use super::state::{Command, Expect, SubscriberState};
use super::subs::SubKind;
use crate::connect;
use crate::error::{Error, ErrorKind};
use crate::lane::LaneOptions;

/// A dedicated pub/sub connection, and the stream of the messages it receives.
///
/// Created by [`Client::subscriber`](crate::Client::subscriber). It has its own socket,
/// opened with the client's URL, credentials, database, name and protocol (RESP2 or
/// RESP3; both work the same).
///
/// - [`subscribe`](Self::subscribe), [`psubscribe`](Self::psubscribe),
///   [`ssubscribe`](Self::ssubscribe) and their `un*` counterparts return once the
///   server confirmed every channel or pattern given.
/// - Messages arrive as a [`Stream`] of `Result<`[`Message`]`, `[`Error`]`>`, through a
///   bounded buffer with an explicit [`OverflowPolicy`](crate::OverflowPolicy)
///   ([`Builder::subscriber_buffer`](crate::Builder::subscriber_buffer),
///   [`Builder::subscriber_overflow`](crate::Builder::subscriber_overflow)). Messages of
///   one channel arrive in the order they were published.
/// - The subscriber remembers what the server confirmed, and
///   [`reconnect`](Self::reconnect) restores all of it on a new connection.
///
/// # The stream and connection loss
///
/// When the connection ends (lost, killed, or closed by the `Disconnect` overflow
/// policy), the stream yields the messages received before, then one `Err` with the
/// cause, marking the gap: messages published while disconnected are not delivered.
///
/// With [`Builder::reconnect`](crate::Builder::reconnect) on (the default), the
/// subscriber then reconnects on its own, with the client's backoff, and restores every
/// subscription; the stream carries on. Commands given meanwhile wait for the new
/// connection. It stays disconnected, and the stream ends (`None`), only when reconnect
/// is off, the attempt limit is reached, or the server refuses the credentials or a
/// restored subscription; [`reconnect`](Self::reconnect) then tries again by hand. So
/// `Subscriber` is deliberately not a `FusedStream`: after a `None`, a successful
/// `reconnect()` revives it.
///
/// # Examples
///
/// ```no_run
/// use futures_util::StreamExt;
/// # async fn run() -> Result<(), redis_lanes::Error> {
/// let client = redis_lanes::Client::connect("redis://127.0.0.1:6379").await?;
/// let mut subscriber = client.subscriber().await?;
/// subscriber.subscribe(&["orders", "payments"]).await?;
/// subscriber.psubscribe("audit.*").await?;
/// loop {
///     match subscriber.next().await {
///         Some(Ok(message)) => println!("{:?}: {:?}", message.channel_str(), message.payload_str()),
///         // A gap: the subscriber is reconnecting on its own.
///         Some(Err(err)) => eprintln!("subscriber lost messages: {err}"),
///         // It gave up (or reconnect is off): try again by hand.
///         None => subscriber.reconnect().await?,
///     }
/// }
/// # Ok(()) }
/// ```
///
/// # Drop behavior
///
/// Dropping the `Subscriber` closes its connection and ends its task at once; the
/// messages still buffered are dropped with it. The subscriber does not depend on the
/// [`Client`](crate::Client) it came from: dropping or closing the client leaves it
/// running.
pub struct Subscriber {
    tx: mpsc::UnboundedSender<Command>,
    shared: Arc<SubscriberState>,
    /// The client's response timeout, applied to each command's confirmation.
    response_timeout: Option<Duration>,
    /// Aborts the driver's task when the subscriber is dropped. The driver would also
    /// end on its own when it sees `tx` gone; the abort makes it immediate even while a
    /// connection is being opened.
    _task: AbortOnDropHandle<()>,
}

impl Subscriber {
    /// Opens the connection and spawns the driver.
    pub(crate) async fn open(
        config: Arc<LaneOptions>,
        options: &super::SubscriberOptions,
        totals: Arc<Totals>,
    ) -> Result<Self, Error> {
        if options.buffer == 0 {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "subscriber_buffer must be at least 1",
            ));
        }
        // Checked first so a missing runtime is an error, not a panic in `spawn`.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::InvalidConfig,
                "redis-lanes needs a Tokio runtime; call subscriber() from within one",
            )
        })?;
        let response_timeout = config.response_timeout;
        let opened = connect::open(&config.connect, "the subscriber ").await?;
        let shared = Arc::new(SubscriberState::new(Inbox::new(
            options.buffer,
            options.buffer_bytes,
            options.overflow,
            totals,
        )));
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = Driver::new(opened, rx, Arc::clone(&shared), config);
        let task = AbortOnDropHandle::new(runtime.spawn(driver));
        Ok(Self {
            tx,
            shared,
            response_timeout,
            _task: task,
        })
    }

    /// Subscribes to one or more channels (`SUBSCRIBE`): a name, or a list such as
    /// `&["a", "b"]` or a `Vec<String>`. Returns once the server confirmed each of them.
    /// Subscribing to a channel already subscribed is harmless. An empty list does
    /// nothing.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Server`] when the server refuses the command (e.g. `NOPERM` for a
    /// channel the ACL user may not use; nothing was subscribed).
    /// [`ErrorKind::ConnectionLost`] when the connection is down or goes down before the
    /// confirmation, whatever ended it (the stream reports the cause itself); retry
    /// after [`reconnect`](Self::reconnect), [`Error::is_retry_safe`] telling whether
    /// the command was sent. [`ErrorKind::Timeout`] when the client's
    /// [`response_timeout`](crate::Builder::response_timeout) is set and runs out; the
    /// command may still take effect.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the command was written means it is never written.
    /// Once written, the server applies it anyway; the subscriber follows the server's
    /// confirmations, so [`reconnect`](Self::reconnect) restores what the server really
    /// had.
    pub async fn subscribe(&self, channels: impl ToRedisArgs) -> Result<(), Error> {
        self.change(SubKind::Channel, true, channels).await
    }

    /// Subscribes to one or more glob-style patterns (`PSUBSCRIBE`, e.g. `"news.*"`);
    /// their messages carry the pattern ([`Message::pattern`]).
    ///
    /// # Errors
    ///
    /// As for [`subscribe`](Self::subscribe).
    ///
    /// # Cancel safety
    ///
    /// As for [`subscribe`](Self::subscribe).
    pub async fn psubscribe(&self, patterns: impl ToRedisArgs) -> Result<(), Error> {
        self.change(SubKind::Pattern, true, patterns).await
    }

    /// Subscribes to one or more shard channels (`SSUBSCRIBE`, Redis 7 or later; also
    /// on a standalone server). Their messages are published with `SPUBLISH`.
    ///
    /// # Errors
    ///
    /// As for [`subscribe`](Self::subscribe); an older server refuses the command with
    /// [`ErrorKind::Server`].
    ///
    /// # Cancel safety
    ///
    /// As for [`subscribe`](Self::subscribe).
    pub async fn ssubscribe(&self, channels: impl ToRedisArgs) -> Result<(), Error> {
        self.change(SubKind::Shard, true, channels).await
    }

    /// Unsubscribes from one or more channels (`UNSUBSCRIBE`) and returns once the
    /// server confirmed each; no message of them arrives after that. An empty list does
    /// nothing (so a computed empty list cannot drop every subscription): use
    /// [`unsubscribe_all`](Self::unsubscribe_all) for that.
    ///
    /// # Errors
    ///
    /// As for [`subscribe`](Self::subscribe).
    ///
    /// # Cancel safety
    ///
    /// As for [`subscribe`](Self::subscribe).
    pub async fn unsubscribe(&self, channels: impl ToRedisArgs) -> Result<(), Error> {
        self.change(SubKind::Channel, false, channels).await
    }

    /// Unsubscribes from one or more patterns (`PUNSUBSCRIBE`). An empty list does
    /// nothing; see [`punsubscribe_all`](Self::punsubscribe_all).
    ///
    /// # Errors
    ///
    /// As for [`subscribe`](Self::subscribe).
    ///
    /// # Cancel safety
    ///
    /// As for [`subscribe`](Self::subscribe).
    pub async fn punsubscribe(&self, patterns: impl ToRedisArgs) -> Result<(), Error> {
        self.change(SubKind::Pattern, false, patterns).await
    }

    /// Unsubscribes from one or more shard channels (`SUNSUBSCRIBE`). An empty list
    /// does nothing; see [`sunsubscribe_all`](Self::sunsubscribe_all).
    ///
    /// # Errors
    ///
    /// As for [`subscribe`](Self::subscribe).
    ///
    /// # Cancel safety
    ///
    /// As for [`subscribe`](Self::subscribe).
    pub async fn sunsubscribe(&self, channels: impl ToRedisArgs) -> Result<(), Error> {
        self.change(SubKind::Shard, false, channels).await
    }

    /// Unsubscribes from every channel (`UNSUBSCRIBE` without arguments) and returns
    /// once the server confirmed that none is left. Patterns and shard channels stay.
    ///
    /// # Errors
    ///
    /// As for [`subscribe`](Self::subscribe).
    ///
    /// # Cancel safety
    ///
    /// As for [`subscribe`](Self::subscribe).
    pub async fn unsubscribe_all(&self) -> Result<(), Error> {
        self.change_all(SubKind::Channel).await
    }

    /// Unsubscribes from every pattern (`PUNSUBSCRIBE` without arguments).
    ///
    /// # Errors
    ///
    /// As for [`subscribe`](Self::subscribe).
    ///
    /// # Cancel safety
    ///
    /// As for [`subscribe`](Self::subscribe).
    pub async fn punsubscribe_all(&self) -> Result<(), Error> {
        self.change_all(SubKind::Pattern).await
    }

    /// Unsubscribes from every shard channel (`SUNSUBSCRIBE` without arguments).
    ///
    /// # Errors
    ///
    /// As for [`subscribe`](Self::subscribe).
    ///
    /// # Cancel safety
    ///
    /// As for [`subscribe`](Self::subscribe).
    pub async fn sunsubscribe_all(&self) -> Result<(), Error> {
        self.change_all(SubKind::Shard).await
    }

    /// Sends `PING` (allowed while subscribed) and waits for the answer, which comes
    /// after every message the server sent before it: a quick check that the connection
    /// is alive and that the subscriber has caught up with the socket.
    ///
    /// # Errors
    ///
    /// As for [`subscribe`](Self::subscribe).
    ///
    /// # Cancel safety
    ///
    /// Safe: a `PING` dropped before it was written is never written, and a late answer
    /// is matched and discarded.
    pub async fn ping(&self) -> Result<(), Error> {
        self.request(redis::cmd("PING").get_packed_command(), Expect::Pong)
            .await
    }

    /// Opens a new connection and restores every subscription the server had confirmed
    /// (channels, patterns, shard channels), returning once it confirmed them all.
    ///
    /// Use it after the stream reported a lost connection; on a live connection it
    /// replaces the connection (messages published during the switch are missed).
    /// Restoring is all or nothing: if the server refuses any of it, the new connection
    /// is closed, the subscriptions are kept for the next attempt, and the error is
    /// returned. Commands given while it connects run once it is connected.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Connect`], [`ErrorKind::Auth`] or [`ErrorKind::Handshake`] as for
    /// [`Client::connect`](crate::Client::connect); [`ErrorKind::Server`] when the
    /// server refuses a subscription; [`ErrorKind::ConnectionLost`] when the new
    /// connection fails while restoring.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not stop the reconnection: it carries on in the
    /// subscriber's task, and a later call joins it if it is still running.
    pub async fn reconnect(&self) -> Result<(), Error> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Command::Reconnect(reply))
            .map_err(|_| Error::closed().not_sent())?;
        done.await.unwrap_or_else(|_| Err(Error::closed()))
    }

    /// The server's `CLIENT ID` of the current connection; `None` while disconnected,
    /// or when the server (or an ACL) does not tell.
    pub fn client_id(&self) -> Option<i64> {
        self.shared.client_id()
    }

    /// Whether the connection is up with every subscription restored.
    pub fn is_connected(&self) -> bool {
        self.shared.is_connected()
    }

    /// Messages dropped by the [`OverflowPolicy`](crate::OverflowPolicy) because the
    /// buffer was full, since the subscriber was created.
    pub fn dropped(&self) -> u64 {
        self.shared.inbox.dropped()
    }

    /// Messages received from the server (buffered or dropped), since the subscriber
    /// was created.
    pub fn received(&self) -> u64 {
        self.shared.inbox.received()
    }

    /// Messages waiting in the buffer now. (Not `buffered`: that name belongs to
    /// `StreamExt`, and would shadow this for callers who import it.)
    pub fn backlog(&self) -> usize {
        self.shared.inbox.len()
    }

    async fn change(&self, kind: SubKind, on: bool, names: impl ToRedisArgs) -> Result<(), Error> {
        let names = names.to_redis_args();
        if names.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd(kind.command(on));
        for name in &names {
            cmd.arg(name.as_slice());
        }
        let expect = Expect::Confirm {
            kind,
            on,
            names: names.into(),
        };
        self.request(cmd.get_packed_command(), expect).await
    }

    async fn change_all(&self, kind: SubKind) -> Result<(), Error> {
        let bytes = redis::cmd(kind.command(false)).get_packed_command();
        self.request(bytes, Expect::UntilNone(kind)).await
    }

    async fn request(&self, bytes: Vec<u8>, expect: Expect) -> Result<(), Error> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Command::Request {
                bytes,
                expect,
                reply,
            })
            .map_err(|_| Error::closed().not_sent())?;
        // The driver answers every command it takes; a dropped answer means it ended.
        let answer = async { done.await.unwrap_or_else(|_| Err(Error::closed())) };
        let Some(limit) = self.response_timeout else {
            return answer.await;
        };
        // Giving up leaves the command in the driver's queue, where its late answer is
        // still matched, so later commands stay in step.
        tokio::time::timeout(limit, answer)
            .await
            .unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!("no confirmation from the server within {limit:?}"),
                ))
            })
    }
}

/// Yields messages in arrival order; see "The stream and connection loss" above.
impl Stream for Subscriber {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.shared.inbox.poll_next(cx)
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [channels, patterns, shard_channels] = self.shared.counts();
        let inbox = &self.shared.inbox;
        f.debug_struct("Subscriber")
            .field("client_id", &self.client_id())
            .field("connected", &self.is_connected())
            .field("channels", &channels)
            .field("patterns", &patterns)
            .field("shard_channels", &shard_channels)
            .field("buffered", &inbox.len())
            .field("capacity", &inbox.capacity())
            .field("overflow", &inbox.policy())
            .field("dropped", &inbox.dropped())
            .finish()
    }
}
