//! Decoder-level tests: split points, round trips through [`encode`], hostile input.
//!
//! Per-type expectations live in `parse.rs`, limit and rescan checks in `scan.rs`; the helpers
//! here are shared with them.

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use redis::{PushKind, Value, VerbatimFormat};

use super::encode::encode;
use super::{Decoder, Frame, Limits, ProtocolError};

/// Decodes every complete frame in `bytes` fed at once; stops at the first error.
pub(super) fn decode_whole(bytes: &[u8], limits: Limits) -> (Vec<Frame>, Option<ProtocolError>) {
    decode_chunks(std::iter::once(bytes), limits)
}

/// Feeds `chunks` one after the other, decoding all it can after each.
pub(super) fn decode_chunks<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    limits: Limits,
) -> (Vec<Frame>, Option<ProtocolError>) {
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.clone();
            let edits = decoder.edits;
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => {
                    // Only an oversized element is replaced and dropped while it arrives.
                    if decoder.edits == edits {
                        assert_eq!(
                            buf, before,
                            "an incomplete decode must leave the buffer alone"
                        );
                    }
                    break;
                }
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

/// Decodes `bytes`, which must hold exactly one complete frame.
pub(super) fn decode_one(bytes: &[u8]) -> Result<Frame, ProtocolError> {
    let mut decoder = Decoder::new(Limits::default());
    let mut buf = BytesMut::from(bytes);
    match decoder.decode(&mut buf)? {
        Some(frame) => {
            assert!(buf.is_empty(), "bytes left over after {bytes:?}");
            Ok(frame)
        }
        None => panic!("incomplete frame {bytes:?}"),
    }
}

/// Replies of every type, RESP2 and RESP3, one complete frame each.
pub(super) const SAMPLES: &[&[u8]] = &[
    b"+OK\r\n",
    b"+hello world\r\n",
    b"-ERR unknown command 'foo'\r\n",
    b"-NOSCRIPT No matching script. Please use EVAL.\r\n",
    b":0\r\n",
    b":-9223372036854775808\r\n",
    b"$5\r\nhello\r\n",
    b"$0\r\n\r\n",
    b"$8\r\na\r\nb\r\n\0\xff\r\n",
    b"$-1\r\n",
    b"*-1\r\n",
    b"*0\r\n",
    b"_\r\n",
    b"*3\r\n:1\r\n$3\r\nfoo\r\n*2\r\n+a\r\n_\r\n",
    b"%2\r\n+k\r\n:1\r\n$1\r\nx\r\n~2\r\n#t\r\n#f\r\n",
    b"%0\r\n",
    b"|1\r\n+ttl\r\n:3600\r\n$3\r\nval\r\n",
    b"*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n",
    b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
    b",3.25\r\n",
    b",-inf\r\n",
    b"=15\r\ntxt:Some string\r\n",
    b"(3492890328409238509324850943850943825024385\r\n",
    b"!21\r\nSYNTAX invalid syntax\r\n",
    b"*4\r\n-MOVED 3999 127.0.0.1:6381\r\n(-12\r\n=6\r\nmkd:**\r\n>2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n",
];

#[test]
fn every_sample_decodes_alone_and_back_to_back() {
    let mut all = Vec::new();
    let mut expected = Vec::new();
    for sample in SAMPLES {
        let frame = decode_one(sample).unwrap_or_else(|e| panic!("{sample:?}: {e}"));
        expected.push(frame);
        all.extend_from_slice(sample);
    }
    let (frames, err) = decode_whole(&all, Limits::default());
    assert_eq!(err, None);
    assert_eq!(frames, expected);
}

#[test]
fn every_split_point_gives_the_same_frames() {
    let mut streams: Vec<Vec<u8>> = SAMPLES.iter().map(|s| s.to_vec()).collect();
    streams.push(SAMPLES.concat());
    for stream in &streams {
        let (expected, err) = decode_whole(stream, Limits::default());
        assert_eq!(err, None);
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            let (frames, err) = decode_chunks([a, b], Limits::default());
            assert_eq!(err, None, "split at {split} of {stream:?}");
            assert_eq!(frames, expected, "split at {split} of {stream:?}");
        }
        let (frames, err) = decode_chunks(stream.chunks(1), Limits::default());
        assert_eq!(err, None);
        assert_eq!(frames, expected, "byte by byte: {stream:?}");
    }
}

#[test]
fn push_frames_are_told_apart_from_replies() {
    let (frames, _) = decode_whole(
        b">2\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
        Limits::default(),
    );
    let expected_push = Value::Push {
        kind: PushKind::Subscribe,
        data: vec![Value::BulkString(b"ch".to_vec())],
    };
    assert_eq!(
        frames,
        vec![Frame::Push(expected_push), Frame::Reply(Value::Int(1))]
    );
    // A push nested in a reply is part of that reply.
    let frame = decode_one(b"*1\r\n>1\r\n$7\r\nmessage\r\n").unwrap();
    assert!(matches!(frame, Frame::Reply(Value::Array(_))));
}

// ---- round trip ----------------------------------------------------------------------------

fn server_error(code: String, detail: Option<String>) -> Value {
    // `ServerError` has no public constructor: let the redis crate build it from a blob error.
    let text = match detail {
        Some(d) => format!("{code} {d}"),
        None => code,
    };
    let wire = format!("!{}\r\n{text}\r\n", text.len());
    redis::parse_redis_value(wire.as_bytes()).unwrap()
}

fn push_kind() -> impl Strategy<Value = PushKind> {
    prop_oneof![
        select(vec![
            PushKind::Invalidate,
            PushKind::Message,
            PushKind::PMessage,
            PushKind::SMessage,
            PushKind::Subscribe,
            PushKind::PSubscribe,
            PushKind::SSubscribe,
            PushKind::Unsubscribe,
            PushKind::PUnsubscribe,
            PushKind::SUnsubscribe,
        ]),
        // Names the redis crate maps to a known kind would not come back as `Other`.
        "[a-z]{0,8}"
            .prop_filter("known kind", |k| {
                let wire = format!(">1\r\n+{k}\r\n");
                matches!(redis::parse_redis_value(wire.as_bytes()),
                    Ok(Value::Push { kind: PushKind::Other(ref other), .. }) if other == k)
            })
            .prop_map(PushKind::Other),
    ]
}

/// Values that decode back to themselves (see the exclusions inline).
pub(super) fn value_strategy() -> impl Strategy<Value = Value> {
    let verbatim_format = prop_oneof![
        Just(VerbatimFormat::Text),
        Just(VerbatimFormat::Markdown),
        // No ':' (it ends the format) and not the names that map to the known formats.
        "[a-z]{3}"
            .prop_filter("known format", |f| f != "txt" && f != "mkd")
            .prop_map(VerbatimFormat::Unknown),
    ];
    let leaf = prop_oneof![
        Just(Value::Nil),
        Just(Value::Okay),
        any::<i64>().prop_map(Value::Int),
        vec(any::<u8>(), 0..40).prop_map(Value::BulkString),
        // "OK" decodes as `Okay`; CR and LF cannot appear in a simple string.
        "[^\r\n]{0,20}"
            .prop_filter("OK is Okay", |s| s != "OK")
            .prop_map(Value::SimpleString),
        // NaN never equals itself.
        any::<f64>()
            .prop_filter("NaN", |d| !d.is_nan())
            .prop_map(Value::Double),
        select(vec![f64::INFINITY, f64::NEG_INFINITY, 0.0, -1.5e-300]).prop_map(Value::Double),
        any::<bool>().prop_map(Value::Boolean),
        (verbatim_format, "(?s).{0,20}")
            .prop_map(|(format, text)| Value::VerbatimString { format, text }),
        "-?[1-9][0-9]{0,40}".prop_map(|digits| {
            redis::parse_redis_value(format!("({digits}\r\n").as_bytes()).unwrap()
        }),
        ("[A-Z]{1,10}", option::of("(?s).{0,20}")).prop_map(|(c, d)| server_error(c, d)),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec(inner.clone(), 0..5).prop_map(Value::Set),
            vec((inner.clone(), inner.clone()), 0..4).prop_map(Value::Map),
            (inner.clone(), vec((inner.clone(), inner.clone()), 0..3)).prop_map(
                |(data, attributes)| Value::Attribute {
                    data: Box::new(data),
                    attributes,
                }
            ),
            (push_kind(), vec(inner, 0..4)).prop_map(|(kind, data)| Value::Push { kind, data }),
        ]
    })
}

/// Nesting as the scanner counts it: one level per aggregate that has children on the wire.
fn depth(value: &Value) -> usize {
    let deepest = |items: &mut dyn Iterator<Item = &Value>| items.map(depth).max().unwrap_or(0);
    match value {
        Value::Array(v) | Value::Set(v) if !v.is_empty() => 1 + deepest(&mut v.iter()),
        Value::Map(p) if !p.is_empty() => 1 + deepest(&mut p.iter().flat_map(|(k, v)| [k, v])),
        Value::Attribute { data, attributes } => {
            1 + deepest(&mut attributes.iter().flat_map(|(k, v)| [k, v]).chain([&**data]))
        }
        Value::Push { data, .. } => 1 + deepest(&mut data.iter()),
        _ => 0,
    }
}

/// Asserts that nothing in `value` exceeds `limits`.
pub(super) fn assert_within(value: &Value, limits: Limits) {
    assert!(
        depth(value) <= limits.max_depth,
        "{value:?} deeper than {limits:?}"
    );
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::BulkString(b) => assert!(b.len() <= limits.max_bulk_len),
            Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => {
                assert!(items.capacity() <= items.len().max(1024));
                stack.extend(items);
            }
            Value::Map(pairs) => {
                assert!(pairs.capacity() <= pairs.len().max(1024));
                stack.extend(pairs.iter().flat_map(|(k, v)| [k, v]));
            }
            Value::Attribute { data, attributes } => {
                stack.push(data);
                stack.extend(attributes.iter().flat_map(|(k, v)| [k, v]));
            }
            _ => {}
        }
    }
}

pub(super) const SMALL: Limits = Limits {
    max_bulk_len: 16,
    max_depth: 3,
    max_frame_len: 128,
};

/// Bytes that make up RESP, so random input gets past the first header more often.
const ALPHABET: &[u8] = b"+-:$*%~>|_#,!=(\r\n\r\n0123456789-tfOKinx ";

proptest! {
    #[test]
    fn encode_then_decode_round_trips(value in value_strategy(), chunk in 1usize..64) {
        let mut bytes = Vec::new();
        encode(&value, &mut bytes);
        let expected = match &value {
            Value::Push { .. } => Frame::Push(value.clone()),
            _ => Frame::Reply(value.clone()),
        };
        prop_assert_eq!(decode_one(&bytes), Ok(expected.clone()));
        // Several frames back to back, arriving in chunks.
        let stream = bytes.repeat(3);
        let (frames, err) = decode_chunks(stream.chunks(chunk), Limits::default());
        prop_assert_eq!(err, None);
        prop_assert_eq!(frames, vec![expected; 3]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop_oneof![vec(any::<u8>(), 0..200), vec(select(ALPHABET), 0..200)],
        chunks in vec(1usize..24, 1..16),
    ) {
        check_hostile(&bytes, &chunks);
    }

    #[test]
    fn mutated_replies_never_panic(
        value in value_strategy(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
        chunks in vec(1usize..24, 1..16),
    ) {
        let mut bytes = Vec::new();
        encode(&value, &mut bytes);
        for (at, byte, op) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => bytes.truncate(i),
            }
        }
        check_hostile(&bytes, &chunks);
    }
}

/// Decodes `bytes` whole and in the given chunk sizes, under default and small limits: both
/// ways must agree, and nothing decoded may exceed the limits.
fn check_hostile(bytes: &[u8], chunk_sizes: &[usize]) {
    for limits in [Limits::default(), SMALL] {
        let whole = decode_whole(bytes, limits);
        let mut chunks = Vec::new();
        let mut rest = bytes;
        for &size in chunk_sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            chunks.push(chunk);
            rest = tail;
        }
        let chunked = decode_chunks(chunks, limits);
        // The same frames either way; an error too, though it may be caught at another point
        // (e.g. the size limit trips while a chunk is incomplete, before a later bad byte).
        assert_eq!(
            format!("{:?}", whole.0),
            format!("{:?}", chunked.0),
            "{bytes:?}"
        );
        assert_eq!(
            whole.1.is_some(),
            chunked.1.is_some(),
            "{bytes:?}: {whole:?} / {chunked:?}"
        );
        for frame in &whole.0 {
            if let Frame::Reply(value) | Frame::Push(value) = frame {
                assert_within(value, limits);
            }
        }
        if let Some(e) = &whole.1 {
            assert!(e.to_string().starts_with("RESP protocol error at byte "));
        }
    }
}

// ---- hostile headers and nesting -----------------------------------------------------------

#[test]
fn gigabyte_headers_fail_without_reserving_what_they_claim() {
    for header in [
        &b"$4000000000\r\n"[..],
        b"*4000000000\r\n",
        b"~4000000000\r\n",
        b"%4000000000\r\n",
        b">4000000000\r\n",
        b"|4000000000\r\n",
        b"=4000000000\r\n",
        b"!4000000000\r\n",
        b"*1\r\n$4000000000\r\n",
        b"*2\r\n:1\r\n*4000000000\r\n",
    ] {
        let mut decoder = Decoder::new(Limits::default());
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(header);
        let capacity = buf.capacity();
        let err = decoder
            .decode(&mut buf)
            .expect_err("a gigabyte header is refused");
        assert!(err.to_string().contains("limit"), "{header:?}: {err}");
        assert_eq!(buf.capacity(), capacity, "{header:?}: the buffer was grown");
        assert!(
            decoder.scanner.depth() <= 2,
            "{header:?}: nothing was pushed for the claimed elements"
        );
    }
}

#[test]
fn nesting_100_000_deep_fails_at_the_depth_limit() {
    let deep = [b"*1\r\n".repeat(100_000), b":1\r\n".to_vec()].concat();
    for chunk in [deep.len(), 4096, 3] {
        let (frames, err) = decode_chunks(deep.chunks(chunk), Limits::default());
        assert!(frames.is_empty());
        let err = err.expect("too deep");
        assert!(err.to_string().contains("nested deeper than 512"), "{err}");
    }
}

/// Push frames are parsed by the `redis` crate, which recurses per level (up to its own
/// limit of 100). On a thread with the stack of a Tokio worker (2 MiB), nesting at and
/// around that limit, and up to ours, must decode or fail, never overflow the stack.
#[test]
fn deep_pushes_do_not_overflow_a_worker_stack() {
    let run = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            for levels in [1, 50, 98, 99, 100, 101, 200, 511] {
                let push = [
                    &b">2\r\n$7\r\nmessage\r\n"[..],
                    &b"*1\r\n".repeat(levels),
                    b":1\r\n",
                ]
                .concat();
                let (frames, err) = decode_whole(&push, Limits::default());
                assert_eq!(frames.len() + usize::from(err.is_some()), 1, "{levels}");
                // The same nesting under an array is parsed here, without recursion.
                let array = [&b"*1\r\n"[..], &push[..]].concat();
                let (frames, err) = decode_whole(&array, Limits::default());
                assert_eq!(frames.len() + usize::from(err.is_some()), 1, "{levels}");
            }
        })
        .unwrap();
    run.join().expect("no stack overflow");
}

// ---- large bulk strings, collected in a buffer of their own ---------------------------------

/// A reply holding a bulk string of `len` bytes, then `+OK`.
fn large_bulk_then_ok(len: usize) -> (Vec<u8>, Vec<u8>) {
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut bytes = format!("${len}\r\n").into_bytes();
    bytes.extend_from_slice(&payload);
    bytes.extend_from_slice(b"\r\n+OK\r\n");
    (payload, bytes)
}

#[test]
fn a_large_bulk_arriving_in_pieces_never_accumulates_in_the_read_buffer() {
    let len = super::scan::DIRECT_MIN * 3 + 7;
    let (payload, bytes) = large_bulk_then_ok(len);
    let mut decoder = Decoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in bytes.chunks(60_000) {
        buf.extend_from_slice(chunk);
        while let Some(frame) = decoder.decode(&mut buf).expect("valid") {
            frames.push(frame);
        }
        // Whatever arrived of the payload left the read buffer at once.
        assert!(
            buf.len() < 60_000,
            "{} bytes stayed in the read buffer",
            buf.len()
        );
    }
    assert_eq!(
        frames,
        vec![
            Frame::Reply(Value::BulkString(payload)),
            Frame::Reply(Value::Okay)
        ]
    );
    assert!(buf.is_empty());
}

#[test]
fn a_large_bulk_read_straight_into_its_buffer_is_handed_over_whole() {
    let len = super::scan::DIRECT_MIN + 1;
    let (payload, bytes) = large_bulk_then_ok(len);
    let mut decoder = Decoder::new(Limits::default());
    // The header and the first bytes come through the read buffer.
    let mut buf = BytesMut::from(&bytes[..100]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(buf.is_empty());
    let mut at = 100;
    // The rest is read straight into the payload's buffer, never past its CRLF.
    loop {
        let (target, wanted) = decoder.direct_buf().expect("the bulk is under way");
        if wanted == 0 {
            break;
        }
        let n = wanted.min(70_000);
        target.extend_from_slice(&bytes[at..at + n]);
        at += n;
    }
    let header = format!("${len}\r\n").len();
    assert_eq!(at, header + len + 2, "read exactly to the CRLF");
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(Some(Frame::Reply(Value::BulkString(payload))))
    );
    assert!(decoder.direct_buf().is_none());
    buf.extend_from_slice(&bytes[at..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(Some(Frame::Reply(Value::Okay)))
    );
}

#[test]
fn a_large_bulk_without_its_crlf_is_a_protocol_error() {
    let len = super::scan::DIRECT_MIN;
    let (_, mut bytes) = large_bulk_then_ok(len);
    let crlf = bytes.len() - b"\r\n+OK\r\n".len();
    bytes[crlf] = b'x';
    let (frames, err) = decode_chunks(bytes.chunks(4096), Limits::default());
    assert!(frames.is_empty());
    let err = err.expect("refused");
    assert!(err.to_string().contains("CRLF"), "{err}");
    // Whole or in pieces, the same verdict.
    check_hostile(&bytes, &[4096, 1, 100_000]);
}
