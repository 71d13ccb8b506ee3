//! One published message, as the subscriber's stream yields it.

use std::fmt;

/// How the message reached the subscriber: which kind of subscription matched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// A channel subscription (`SUBSCRIBE`); the server sent `message`.
    Channel,
    /// A pattern subscription (`PSUBSCRIBE`); the server sent `pmessage`, and
    /// [`Message::pattern`] is the pattern that matched.
    Pattern,
    /// A shard channel subscription (`SSUBSCRIBE`, Redis 7); the server sent `smessage`.
    Shard,
}

/// A message published to a channel the [`Subscriber`](crate::Subscriber) listens to.
///
/// Channel names and payloads are binary-safe in Redis, so they are kept as bytes; the
/// `*_str` accessors borrow them as text when they are valid UTF-8.
///
/// New fields may be added, so a `Message` is only built by redis-lanes.
///
/// # Examples
///
/// ```no_run
/// use futures_util::StreamExt;
/// # async fn run(client: redis_lanes::Client) -> Result<(), redis_lanes::Error> {
/// let mut subscriber = client.subscriber().await?;
/// subscriber.psubscribe("news.*").await?;
/// while let Some(message) = subscriber.next().await {
///     let message = message?;
///     println!(
///         "{} (pattern {:?}): {} bytes",
///         message.channel_str().unwrap_or("<binary>"),
///         message.pattern_str(),
///         message.payload().len(),
///     );
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    kind: MessageKind,
    channel: Vec<u8>,
    pattern: Option<Vec<u8>>,
    payload: Vec<u8>,
}

impl Message {
    pub(crate) fn new(
        kind: MessageKind,
        channel: Vec<u8>,
        pattern: Option<Vec<u8>>,
        payload: Vec<u8>,
    ) -> Self {
        Self {
            kind,
            channel,
            pattern,
            payload,
        }
    }

    /// Which kind of subscription delivered the message.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// The channel the message was published to.
    pub fn channel(&self) -> &[u8] {
        &self.channel
    }

    /// The channel as text; `None` when it is not valid UTF-8.
    pub fn channel_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.channel).ok()
    }

    /// The pattern that matched, for messages of a pattern subscription
    /// ([`MessageKind::Pattern`]); `None` otherwise.
    pub fn pattern(&self) -> Option<&[u8]> {
        self.pattern.as_deref()
    }

    /// The pattern as text; `None` when there is none or it is not valid UTF-8.
    pub fn pattern_str(&self) -> Option<&str> {
        self.pattern
            .as_deref()
            .and_then(|p| std::str::from_utf8(p).ok())
    }

    /// The published payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload as text; `None` when it is not valid UTF-8.
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    /// Takes the payload without copying it.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }
}

/// Shows names and payload as (lossy) text, the payload cut at 64 bytes: payloads can be
/// large and binary, and a log line should stay readable.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        let shown = &self.payload[..self.payload.len().min(SHOWN)];
        let mut d = f.debug_struct("Message");
        d.field("kind", &self.kind)
            .field("channel", &String::from_utf8_lossy(&self.channel));
        if let Some(pattern) = &self.pattern {
            d.field("pattern", &String::from_utf8_lossy(pattern));
        }
        d.field("payload", &String::from_utf8_lossy(shown));
        if self.payload.len() > SHOWN {
            d.field("payload_len", &self.payload.len());
        }
        d.finish()
    }
}
