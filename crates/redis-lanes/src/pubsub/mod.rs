//! The subscriber: a dedicated pub/sub connection whose messages arrive as a stream.
//!
//! - `subscriber.rs`: [`Subscriber`], the handle users hold (commands, stream, counters).
//! - `driver.rs`: the task that owns the connection, across reconnections.
//! - `conn.rs`: one live connection: writing commands, matching the server's answers.
//! - `frame.rs`: what a frame means, for RESP2 arrays and RESP3 pushes alike.
//! - `inbox.rs`: the bounded buffer between the driver and the stream.
//! - `overflow.rs`: [`OverflowPolicy`], what a full buffer does.
//! - `subs.rs`: the confirmed subscriptions, by kind, and how to restore them.
//! - `shared.rs`: the commands and state the handle and the driver share.
//! - `connect.rs`: opening a connection with the client's settings.
//! - `message.rs`: [`Message`].

mod conn;
mod connect;
mod driver;
mod frame;
mod inbox;
mod message;
mod overflow;
mod shared;
mod subs;
mod subscriber;

pub(crate) use inbox::Totals;
pub use message::{Message, MessageKind};
pub use overflow::OverflowPolicy;
pub use subscriber::Subscriber;

use std::sync::Arc;

use crate::client::Client;
use crate::config::Builder;
use crate::error::Error;

/// Options of subscribers, set on the [`Builder`].
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Messages buffered between the socket and the consumer.
    pub(crate) buffer: usize,
    pub(crate) overflow: OverflowPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            buffer: 4096,
            overflow: OverflowPolicy::DropNewest,
        }
    }
}

impl Builder {
    /// How many messages a [`Subscriber`] buffers for a consumer that is behind, before
    /// its [`OverflowPolicy`] applies. Must be at least 1
    /// ([`Client::subscriber`] fails with [`ErrorKind::InvalidConfig`] otherwise).
    /// Default: 4096.
    ///
    /// The bound is in messages; their size is bounded by
    /// [`Builder::max_bulk_len`].
    ///
    /// [`ErrorKind::InvalidConfig`]: crate::ErrorKind::InvalidConfig
    pub fn subscriber_buffer(mut self, messages: usize) -> Self {
        self.pubsub.buffer = messages;
        self
    }

    /// What a [`Subscriber`] does with a message that arrives while its buffer is full.
    /// Default: [`OverflowPolicy::DropNewest`].
    pub fn subscriber_overflow(mut self, policy: OverflowPolicy) -> Self {
        self.pubsub.overflow = policy;
        self
    }
}

impl Client {
    /// Opens a [`Subscriber`]: a dedicated pub/sub connection with the client's URL,
    /// credentials, database, name and protocol, bounded by the connect timeout.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// use redis_lanes::{Client, OverflowPolicy};
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = Client::builder("redis://127.0.0.1:6379")
    ///     .subscriber_buffer(1024)
    ///     .subscriber_overflow(OverflowPolicy::DropOldest)
    ///     .connect()
    ///     .await?;
    /// let mut subscriber = client.subscriber().await?;
    /// subscriber.subscribe("news").await?;
    /// let mut publisher = client.clone();
    /// redis::cmd("PUBLISH").arg("news").arg("hello").query_async::<i64>(&mut publisher).await?;
    /// if let Some(message) = subscriber.next().await {
    ///     assert_eq!(message?.payload(), b"hello");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Closed`] after [`Client::close`]; [`ErrorKind::InvalidConfig`] for a
    /// `subscriber_buffer` of 0; otherwise as for [`Client::connect`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes closes the connection being opened.
    ///
    /// [`ErrorKind::Closed`]: crate::ErrorKind::Closed
    /// [`ErrorKind::InvalidConfig`]: crate::ErrorKind::InvalidConfig
    pub async fn subscriber(&self) -> Result<Subscriber, Error> {
        self.check_open()?;
        Subscriber::open(
            Arc::clone(self.lane_config()),
            Arc::clone(self.pubsub_totals()),
        )
        .await
    }
}
