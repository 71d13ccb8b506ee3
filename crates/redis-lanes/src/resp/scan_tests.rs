//! Tests of `scan.rs`.

use bytes::BytesMut;

use super::super::tests::{decode_chunks, decode_whole};
use super::super::{Decoder, Frame, Limits, ProtocolError, Reason};
use super::{parse_i64, parse_len};
use redis::Value;

/// Feeds `bytes` to a fresh decoder: the first error, or `None` if it got none.
fn error_of(bytes: &[u8], limits: Limits) -> Option<ProtocolError> {
    decode_whole(bytes, limits).1
}

fn reason_of(bytes: &[u8], limits: Limits) -> Option<Reason> {
    error_of(bytes, limits).map(|e| e.reason)
}

const LIMITS: Limits = Limits {
    max_bulk_len: 10,
    max_depth: 3,
    max_frame_len: 100,
};

#[test]
fn numbers() {
    assert_eq!(parse_i64(b"123", 0), Ok(123));
    assert_eq!(parse_i64(b"-0", 0), Ok(0));
    assert_eq!(parse_i64(b"-9223372036854775808", 0), Ok(i64::MIN));
    for bad in [&b""[..], b"-", b"+", b"1 ", b" 1", b"0x1", b"--1", b"1-"] {
        assert!(parse_i64(bad, 0).is_err(), "{bad:?}");
    }
    assert_eq!(parse_len(b"-1", 0, true), Ok(None));
    assert!(parse_len(b"-1", 0, false).is_err());
    assert!(parse_len(b"-0", 0, true).is_err());
    assert!(parse_len(b"+1", 0, true).is_err());
    assert_eq!(parse_len(b"007", 0, false), Ok(Some(7)));
    let e = parse_len(b"99999999999999999999", 4, false).unwrap_err();
    assert_eq!(e.reason, Reason::NumberOverflow);
}

#[test]
fn errors_say_what_and_where() {
    let e = error_of(b"+OK\r\nX", Limits::default()).unwrap();
    assert_eq!(e.offset, 0, "offsets count from the frame start");
    assert_eq!(e.reason, Reason::UnknownType(b'X'));
    assert!(e.to_string().contains("0x58"), "{e}");
    let e = error_of(b"*2\r\n:1\r\n\x01", Limits::default()).unwrap();
    assert_eq!((e.offset, e.reason), (8, Reason::UnknownType(1)));
    let e = error_of(b"+OK\n", Limits::default()).unwrap();
    assert_eq!((e.offset, e.reason), (3, Reason::BareLineFeed));
    assert_eq!(
        reason_of(b"+\n", Limits::default()),
        Some(Reason::BareLineFeed)
    );
    assert_eq!(
        reason_of(b"$\r\n", Limits::default()),
        Some(Reason::BadNumber)
    );
    assert_eq!(
        reason_of(b"*x\r\n", Limits::default()),
        Some(Reason::BadNumber)
    );
    assert_eq!(
        reason_of(b"$-2\r\n", Limits::default()),
        Some(Reason::BadLength)
    );
    assert_eq!(
        reason_of(b"*-2\r\n", Limits::default()),
        Some(Reason::BadLength)
    );
}

#[test]
fn missing_crlf_after_bulk_payload() {
    for bytes in [
        &b"$3\r\nfooXY"[..],
        b"$3\r\nfoo\rX",
        b"$3\r\nfoo\n\r",
        b"*1\r\n=5\r\ntxt:a:1\r\n",
    ] {
        let e = error_of(bytes, Limits::default()).unwrap();
        assert_eq!(e.reason, Reason::MissingBulkTerminator, "{bytes:?}");
    }
    assert_eq!(error_of(b"$3\r\nfoo\r\n", Limits::default()), None);
}

#[test]
fn bulk_over_limit_is_skipped_not_buffered() {
    let too_large = |push| Frame::TooLarge {
        push,
        len: 11,
        max: 10,
    };
    // Whole, and byte by byte: the payload never stays in the buffer.
    let bytes = b"$11\r\nhello world\r\n:1\r\n";
    let whole = decode_whole(bytes, LIMITS);
    assert_eq!(
        whole,
        (vec![too_large(false), Frame::Reply(Value::Int(1))], None)
    );
    assert_eq!(decode_chunks(bytes.chunks(1), LIMITS), whole);
    // Nested, with elements on both sides, and in a push.
    let nested = b"*3\r\n:1\r\n!11\r\nERR 1234567\r\n$2\r\nok\r\n>2\r\n$4\r\npush\r\n$11\r\nhello world\r\n+next\r\n";
    let expected = vec![
        too_large(false),
        too_large(true),
        Frame::Reply(Value::SimpleString("next".into())),
    ];
    assert_eq!(decode_whole(nested, LIMITS), (expected.clone(), None));
    for chunk in [1, 2, 3, 7] {
        assert_eq!(
            decode_chunks(nested.chunks(chunk), LIMITS),
            (expected.clone(), None)
        );
    }
    // At the limit is fine.
    assert_eq!(
        decode_whole(b"$10\r\n0123456789\r\n", LIMITS).0,
        vec![Frame::Reply(Value::BulkString(b"0123456789".to_vec()))]
    );
    // A payload not followed by CRLF is still malformed.
    assert_eq!(
        reason_of(b"$11\r\nhello worldXY", LIMITS),
        Some(Reason::MissingBulkTerminator)
    );
    // A length no frame may hold is a broken peer, not a large reply.
    assert!(matches!(
        reason_of(b"$99\r\n", LIMITS),
        Some(Reason::FrameTooLarge { max: 100 })
    ));
    // The skipped bytes are dropped as they arrive: a large header buffers nothing.
    let mut decoder = Decoder::new(Limits::default());
    let mut buf = BytesMut::from(&b"$600000000\r\n"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    buf.extend_from_slice(&[b'x'; 4096]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(buf.len() <= 3, "{} bytes kept", buf.len());
}

#[test]
fn nesting_beyond_max_depth() {
    assert_eq!(error_of(b"*1\r\n*1\r\n*1\r\n:1\r\n", LIMITS), None);
    // Fails on the fourth header, before anything else arrives.
    assert_eq!(
        reason_of(b"*1\r\n*1\r\n*1\r\n*1\r\n", LIMITS),
        Some(Reason::TooDeep { max: 3 })
    );
    assert_eq!(
        reason_of(b"*1\r\n%1\r\n|0\r\n>1\r\n", LIMITS),
        Some(Reason::TooDeep { max: 3 })
    );
    // Empty aggregates are leaves.
    assert_eq!(error_of(b"*1\r\n*1\r\n*1\r\n*0\r\n", LIMITS), None);
    let deep = |n: usize| [b"*1\r\n".repeat(n), b":1\r\n".to_vec()].concat();
    assert_eq!(error_of(&deep(512), Limits::default()), None);
    assert_eq!(
        reason_of(&deep(513), Limits::default()),
        Some(Reason::TooDeep { max: 512 })
    );
    let (frames, _) = decode_whole(&deep(512), Limits::default());
    assert_eq!(frames.len(), 1);
}

#[test]
fn frame_growing_past_max_frame_len_fails_while_incomplete() {
    // Ten 17-byte bulks make a 175-byte frame; it must fail by the 6th, with no end in sight.
    let mut bytes = b"*10\r\n".to_vec();
    for _ in 0..6 {
        bytes.extend_from_slice(b"$10\r\n0123456789\r\n");
    }
    let (frames, err) = decode_chunks(bytes.chunks(7), LIMITS);
    assert!(frames.is_empty());
    assert_eq!(err.unwrap().reason, Reason::FrameTooLarge { max: 100 });
    // A line that never ends.
    let line = [&b"+"[..], &[b'a'; 100]].concat();
    assert_eq!(error_of(&line[..100], LIMITS), None);
    assert_eq!(
        reason_of(&line, LIMITS),
        Some(Reason::FrameTooLarge { max: 100 })
    );
    // A bulk that cannot fit is refused from its header.
    let limits = Limits {
        max_bulk_len: 1000,
        ..LIMITS
    };
    assert_eq!(
        reason_of(b"$95\r\n", limits),
        Some(Reason::FrameTooLarge { max: 100 })
    );
    assert_eq!(error_of(b"$93\r\n", limits), None);
    // Exactly at the limit is accepted.
    let exact = [&b"$93\r\n"[..], &[b'x'; 93], b"\r\n"].concat();
    assert_eq!(exact.len(), 100);
    assert_eq!(decode_whole(&exact, limits).0.len(), 1);
}

#[test]
fn hostile_counts_fail_at_once() {
    for bytes in [
        &b"*999999999999\r\n"[..],
        b"%400000000\r\n",
        b"|200000000\r\n",
        b">999999999999\r\n",
    ] {
        let reason = reason_of(bytes, Limits::default());
        assert!(
            matches!(reason, Some(Reason::CountTooLarge { .. })),
            "{bytes:?}: {reason:?}"
        );
    }
    assert_eq!(
        reason_of(b"*99999999999999999999999\r\n", Limits::default()),
        Some(Reason::NumberOverflow)
    );
    assert_eq!(
        reason_of(b"*34\r\n", LIMITS),
        Some(Reason::CountTooLarge { count: 34 })
    );
    assert_eq!(error_of(b"*31\r\n", LIMITS), None);
}

#[test]
fn numeric_lines_are_capped() {
    let long = [&b":"[..], &[b'1'; 40]].concat();
    assert_eq!(
        reason_of(&long, Limits::default()),
        Some(Reason::LineTooLong)
    );
    let zeros = [&b":"[..], &[b'0'; 31], b"7\r\n"].concat();
    assert_eq!(error_of(&zeros, Limits::default()), None);
    // Text lines are bounded only by the frame limit.
    let text = [&b"+"[..], &[b'a'; 1000], b"\r\n"].concat();
    assert_eq!(error_of(&text, Limits::default()), None);
}

/// Feeds `bytes` in `chunk`-sized pieces and returns how many bytes the line search
/// examined in total.
fn examined_while_feeding(bytes: &[u8], chunk: usize, frames: usize) -> usize {
    let mut decoder = Decoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut decoded = 0;
    for piece in bytes.chunks(chunk) {
        buf.extend_from_slice(piece);
        while decoder.decode(&mut buf).unwrap().is_some() {
            decoded += 1;
        }
    }
    assert_eq!(decoded, frames);
    assert!(buf.is_empty());
    decoder.scanner.examined
}

#[test]
fn big_bulk_in_chunks_is_not_rescanned() {
    let len = 8 << 20;
    let bytes = [format!("${len}\r\n").as_bytes(), &vec![b'\n'; len], b"\r\n"].concat();
    let examined = examined_while_feeding(&bytes, 64 << 10, 1);
    // 129 reads re-reading a 10-byte header, never the payload (made of '\n' on purpose).
    assert!(examined < 4096, "examined {examined} bytes");
}

#[test]
fn long_lines_and_big_arrays_in_chunks_are_scanned_once() {
    let line = [&b"+"[..], &vec![b'a'; 1 << 20], b"\r\n"].concat();
    let examined = examined_while_feeding(&line, 1000, 1);
    assert!(
        examined <= line.len(),
        "examined {examined} of {}",
        line.len()
    );

    let mut array = b"*100000\r\n".to_vec();
    for i in 0..100_000 {
        array.extend_from_slice(format!(":{i}\r\n").as_bytes());
    }
    let examined = examined_while_feeding(&array, 997, 1);
    assert!(
        examined <= array.len(),
        "examined {examined} of {}",
        array.len()
    );
}

#[test]
fn depth_stack_never_exceeds_limit() {
    let mut decoder = Decoder::new(LIMITS);
    let mut buf = BytesMut::from(&b"*1\r\n*1\r\n*1\r\n"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(decoder.scanner.depth(), 3);
    buf.extend_from_slice(b"*1\r\n");
    assert!(decoder.decode(&mut buf).is_err());
    assert_eq!(decoder.scanner.depth(), 3);
}
