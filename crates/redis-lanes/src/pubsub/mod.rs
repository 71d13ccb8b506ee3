//! The subscriber: a dedicated pub/sub connection whose messages arrive as a stream.
//!
//! - `subscriber.rs`: [`Subscriber`], the handle users hold (commands, stream, counters).
//! - `driver.rs`: the task that owns the connection, across reconnections.
//! - `conn.rs`: one live connection: writing commands, matching the server's answers.
//! - `frame.rs`: what a frame means, for RESP2 arrays and RESP3 pushes alike.
//! - `inbox.rs`: the bounded buffer between the driver and the stream.
//! - `overflow.rs`: [`OverflowPolicy`], what a full buffer does.
//! - `subs.rs`: the confirmed subscriptions, by kind, and how to restore them.
//! - `state.rs`: the commands and state the handle and the driver share.
//! - `message.rs`: [`Message`].

mod conn;
mod driver;
mod frame;
mod inbox;
mod message;
mod overflow;
mod state;
mod subs;
mod subscriber;

pub(crate) use inbox::Totals;
pub use message::{Message, MessageKind};
pub use overflow::OverflowPolicy;
pub use subscriber::Subscriber;

/// Options of subscribers, set on the [`Builder`].
#[derive(Debug, Clone)]
pub(crate) struct SubscriberOptions {
    /// Messages buffered between the socket and the consumer.
    pub(crate) buffer: usize,
    /// And their bytes.
    pub(crate) buffer_bytes: usize,
    pub(crate) overflow: OverflowPolicy,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        Self {
            buffer: 4096,
            buffer_bytes: 64 << 20,
            overflow: OverflowPolicy::DropNewest,
        }
    }
}
