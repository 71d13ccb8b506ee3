//! What a subscriber does with a message that arrives while its buffer is full.

/// What a [`Subscriber`](crate::Subscriber) does when a message arrives and its buffer
/// ([`Builder::subscriber_buffer`](crate::Builder::subscriber_buffer) messages) is full
/// because the consumer is behind. Set with
/// [`Builder::subscriber_overflow`](crate::Builder::subscriber_overflow).
///
/// Under every policy the subscriber's connection keeps being read at full speed: a
/// message is only ever dropped *after* it reached the client, and the client holds at
/// most the buffer plus the frame it is reading. It never applies backpressure by not
/// reading, because that would move the backlog into the server instead (whose
/// `client-output-buffer-limit pubsub` disconnects a slow subscriber after a few MB, at
/// a moment the client does not choose) and would stall the answers to `subscribe`,
/// `unsubscribe` and `ping`, which travel on the same socket behind the messages.
///
/// Every message dropped is counted in
/// [`Subscriber::dropped`](crate::Subscriber::dropped). New policies may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Drop the arriving message and keep the buffered ones: while the consumer is
    /// behind, it later sees the oldest messages and misses the newest. The default,
    /// because it keeps what was already accepted in order and costs nothing.
    #[default]
    DropNewest,
    /// Drop the oldest buffered message to make room: the consumer always sees the most
    /// recent messages, e.g. for "latest value" feeds.
    DropOldest,
    /// Close the connection: the consumer gets the messages buffered so far, then an
    /// error of kind [`ErrorKind::Overflow`](crate::ErrorKind::Overflow), then the stream
    /// ends. For consumers that must never miss a message silently; call
    /// [`Subscriber::reconnect`](crate::Subscriber::reconnect) to resume. The message that
    /// did not fit (and any read with it) counts as dropped; messages the server had not
    /// delivered yet are lost with the connection and not counted.
    Disconnect,
}
