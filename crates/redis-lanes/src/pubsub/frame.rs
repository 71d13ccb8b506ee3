//! What a frame on a pub/sub connection means, for RESP2 and RESP3 alike.
//!
//! In RESP2 messages and subscription confirmations are ordinary arrays whose first
//! element names them (`message`, `subscribe`, ...), and `PING` answers `["pong", ""]`
//! while anything is subscribed. In RESP3 the same information comes as push frames,
//! which the `redis` crate has already split into a [`redis::PushKind`] and its data,
//! and `PING` answers a plain `PONG`. [`classify`] maps both to one [`Event`], so the
//! driver never looks at the protocol.

use redis::{PushKind, ServerError, Value};

use super::message::{Message, MessageKind};
use super::subs::SubKind;
use crate::resp::Frame;

/// One frame's meaning.
#[derive(Debug)]
pub(super) enum Event {
    /// A published message.
    Message(Message),
    /// A subscribe (`on`) or unsubscribe confirmation, one per channel or pattern. The
    /// channel is `None` for an unsubscribe-all when nothing was subscribed. `count` is
    /// what the server reports as still subscribed.
    Confirm {
        kind: SubKind,
        on: bool,
        channel: Option<Vec<u8>>,
        count: i64,
    },
    /// The answer to `PING`.
    Pong,
    /// An error reply: the answer to the oldest command awaiting one.
    Error(ServerError),
    /// Anything else (a push of another kind, a malformed message); reported, not used.
    Other(Value),
    /// A message (or reply) holding a bulk over `max_bulk_len`, skipped unread.
    TooLarge { len: usize, max: usize },
}

/// Decides what `frame` is.
pub(super) fn classify(frame: Frame) -> Event {
    match frame {
        Frame::Push(Value::Push { kind, data }) => classify_kind(kind, data),
        Frame::Push(other) => Event::Other(other),
        Frame::Reply(Value::ServerError(err)) => Event::Error(err),
        Frame::Reply(Value::Array(mut items)) => {
            let Some(name) = items.first().and_then(text) else {
                return Event::Other(Value::Array(items));
            };
            let kind = match name.as_slice() {
                // Sent in RESP2 only while something is subscribed; the argument is
                // whatever PING was given, and this client never gives one.
                b"pong" => return Event::Pong,
                b"message" => PushKind::Message,
                b"pmessage" => PushKind::PMessage,
                b"smessage" => PushKind::SMessage,
                b"subscribe" => PushKind::Subscribe,
                b"psubscribe" => PushKind::PSubscribe,
                b"ssubscribe" => PushKind::SSubscribe,
                b"unsubscribe" => PushKind::Unsubscribe,
                b"punsubscribe" => PushKind::PUnsubscribe,
                b"sunsubscribe" => PushKind::SUnsubscribe,
                _ => return Event::Other(Value::Array(items)),
            };
            let data = items.split_off(1);
            classify_kind(kind, data)
        }
        Frame::Reply(Value::SimpleString(s)) if s.eq_ignore_ascii_case("pong") => Event::Pong,
        Frame::Reply(other) => Event::Other(other),
        Frame::TooLarge { len, max, .. } => Event::TooLarge { len, max },
    }
}

fn classify_kind(kind: PushKind, data: Vec<Value>) -> Event {
    let confirm = |kind: SubKind, on: bool, data: Vec<Value>| {
        let mut data = data.into_iter();
        let channel = data.next();
        match (channel.as_ref().map(text), data.next()) {
            (Some(channel), Some(Value::Int(count))) => Event::Confirm {
                kind,
                on,
                channel,
                count,
            },
            (_, count) => Event::Other(Value::Array(channel.into_iter().chain(count).collect())),
        }
    };
    match kind {
        PushKind::Message => message(MessageKind::Channel, data),
        PushKind::PMessage => message(MessageKind::Pattern, data),
        PushKind::SMessage => message(MessageKind::Shard, data),
        PushKind::Subscribe => confirm(SubKind::Channel, true, data),
        PushKind::PSubscribe => confirm(SubKind::Pattern, true, data),
        PushKind::SSubscribe => confirm(SubKind::Shard, true, data),
        PushKind::Unsubscribe => confirm(SubKind::Channel, false, data),
        PushKind::PUnsubscribe => confirm(SubKind::Pattern, false, data),
        PushKind::SUnsubscribe => confirm(SubKind::Shard, false, data),
        other => Event::Other(Value::Push { kind: other, data }),
    }
}

/// `[channel, payload]`, or `[pattern, channel, payload]` for pattern messages.
fn message(kind: MessageKind, data: Vec<Value>) -> Event {
    let want = if kind == MessageKind::Pattern { 3 } else { 2 };
    let well_formed = data.len() == want
        && data
            .iter()
            .all(|v| matches!(v, Value::BulkString(_) | Value::SimpleString(_)));
    if !well_formed {
        return Event::Other(Value::Array(data));
    }
    let mut parts = data.into_iter().filter_map(into_bytes);
    let pattern = if kind == MessageKind::Pattern {
        parts.next()
    } else {
        None
    };
    let channel = parts.next().unwrap_or_default();
    let payload = parts.next().unwrap_or_default();
    Event::Message(Message::new(kind, channel, pattern, payload))
}

/// The bytes of a string value (bulk or simple), copied: used for short names only.
fn text(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

/// The bytes of a string value, without copying a bulk string.
fn into_bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::{Decoder, Limits};

    fn decode(bytes: &[u8]) -> Frame {
        let mut buf = bytes::BytesMut::from(bytes);
        Decoder::new(Limits::default())
            .decode(&mut buf)
            .unwrap()
            .unwrap()
    }

    fn assert_message(event: Event, kind: MessageKind, channel: &str, pattern: Option<&str>) {
        let Event::Message(m) = event else {
            panic!("not a message: {event:?}")
        };
        assert_eq!(m.kind(), kind);
        assert_eq!(m.channel_str(), Some(channel));
        assert_eq!(m.pattern_str(), pattern);
        assert_eq!(m.payload(), b"hi");
    }

    #[test]
    fn messages_in_both_protocols() {
        let resp2 = decode(b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
        assert_message(classify(resp2), MessageKind::Channel, "ch", None);
        let resp3 = decode(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
        assert_message(classify(resp3), MessageKind::Channel, "ch", None);

        let p2 = decode(b"*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$2\r\nhi\r\n");
        assert_message(classify(p2), MessageKind::Pattern, "ch", Some("c*"));
        let p3 = decode(b">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$2\r\nhi\r\n");
        assert_message(classify(p3), MessageKind::Pattern, "ch", Some("c*"));

        let s3 = decode(b">3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
        assert_message(classify(s3), MessageKind::Shard, "ch", None);
    }

    #[test]
    fn confirmations_in_both_protocols() {
        for bytes in [
            &b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"[..],
            &b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"[..],
        ] {
            match classify(decode(bytes)) {
                Event::Confirm {
                    kind: SubKind::Channel,
                    on: true,
                    channel: Some(c),
                    count: 1,
                } => assert_eq!(c, b"ch"),
                other => panic!("{other:?}"),
            }
        }
        // Unsubscribe-all with nothing subscribed names no channel.
        for bytes in [
            &b"*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n"[..],
            &b">3\r\n$12\r\npunsubscribe\r\n_\r\n:0\r\n"[..],
        ] {
            match classify(decode(bytes)) {
                Event::Confirm {
                    kind: SubKind::Pattern,
                    on: false,
                    channel: None,
                    count: 0,
                } => {}
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn pongs_errors_and_others() {
        assert!(matches!(classify(decode(b"+PONG\r\n")), Event::Pong));
        assert!(matches!(
            classify(decode(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")),
            Event::Pong
        ));
        assert!(matches!(
            classify(decode(b"-NOPERM no\r\n")),
            Event::Error(_)
        ));
        assert!(matches!(
            classify(decode(b">2\r\n$10\r\ninvalidate\r\n*0\r\n")),
            Event::Other(_)
        ));
        // A message with a missing part is not taken for one.
        assert!(matches!(
            classify(decode(b"*2\r\n$7\r\nmessage\r\n$2\r\nch\r\n")),
            Event::Other(_)
        ));
        assert!(matches!(
            classify(decode(b"*3\r\n$7\r\nmessage\r\n:1\r\n$2\r\nhi\r\n")),
            Event::Other(_)
        ));
    }
}
