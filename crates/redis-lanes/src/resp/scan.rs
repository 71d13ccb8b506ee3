//! Incremental framing: where does the frame at the front of the buffer end?
//!
//! The [`Scanner`] walks element headers and skips payloads without building anything. Its
//! state (`pos`, plus one "children still expected" counter per open aggregate) survives an
//! incomplete buffer, so each byte of a frame is looked at once no matter how many reads it
//! arrives in. All [`Limits`] are enforced here, as soon as the offending header is seen.
//!
//! The module also holds the header-level helpers (line finding, number parsing, element
//! shapes) that [`super::parse`] reuses on complete frames.

use memchr::memchr;

use super::{Limits, ProtocolError, Reason};

/// Longest content accepted on a numeric line (lengths, counts, integers, booleans, nulls).
///
/// An `i64` needs at most 20 characters; the slack tolerates a few leading zeros. Without a cap
/// a peer could make us buffer up to `max_frame_len` bytes of "digits" before failing.
const MAX_NUMBER_LINE: usize = 32;

/// How an element is laid out after its type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// `+ - , (`: free text up to CRLF.
    Text,
    /// `: # _`: a short line.
    Short,
    /// `$ = !`: a length line, that many payload bytes, CRLF. `nil`: `-1` means null.
    Bulk { nil: bool },
    /// `* ~ % > |`: a count line, then `count * per + extra` child elements.
    Aggregate { nil: bool, per: usize, extra: usize },
}

impl Shape {
    /// The shape of elements starting with type byte `kind`, or `None` for an unknown type.
    pub(super) fn of(kind: u8) -> Option<Self> {
        Some(match kind {
            b'+' | b'-' | b',' | b'(' => Self::Text,
            b':' | b'#' | b'_' => Self::Short,
            // RESP2 encodes null as `$-1` / `*-1`; RESP3 sets are arrays, so `~-1` is tolerated.
            b'$' => Self::Bulk { nil: true },
            b'=' | b'!' => Self::Bulk { nil: false },
            b'*' | b'~' => Self::Aggregate {
                nil: true,
                per: 1,
                extra: 0,
            },
            b'>' => Self::Aggregate {
                nil: false,
                per: 1,
                extra: 0,
            },
            b'%' => Self::Aggregate {
                nil: false,
                per: 2,
                extra: 0,
            },
            // An attribute is followed by the value it annotates: counting that value as one more
            // child makes attribute + value a single element of the enclosing aggregate.
            b'|' => Self::Aggregate {
                nil: false,
                per: 2,
                extra: 1,
            },
            _ => return None,
        })
    }

    fn has_short_line(self) -> bool {
        !matches!(self, Self::Text)
    }

    /// Number of child elements an aggregate header with `count` announces.
    fn children(per: usize, extra: usize, count: usize) -> Option<usize> {
        count.checked_mul(per)?.checked_add(extra)
    }
}

/// Finds the first `\n` in `hay`.
///
/// Most lines are short headers (`:1`, `$5`, `*3`, `+OK`); on those a plain loop beats
/// `memchr`'s setup cost, which pays off only on longer text.
#[inline]
fn find_lf(hay: &[u8]) -> Option<usize> {
    const SHORT: usize = 16;
    let head = hay.get(..SHORT).unwrap_or(hay);
    if let Some(i) = head.iter().position(|&b| b == b'\n') {
        return Some(i);
    }
    let rest = hay.get(head.len()..)?;
    memchr(b'\n', rest).map(|i| i + head.len())
}

/// Checks that the `\n` at `lf` ends the line of the element starting at `start` with CRLF, and
/// returns the position of the `\r`.
fn check_crlf(buf: &[u8], start: usize, lf: usize) -> Result<usize, ProtocolError> {
    // The `\r` must lie after the type byte: in `+\n` the byte before `\n` is the type itself.
    match lf.checked_sub(1) {
        Some(cr) if cr > start && buf.get(cr) == Some(&b'\r') => Ok(cr),
        _ => Err(ProtocolError::new(lf, Reason::BareLineFeed)),
    }
}

/// Reads the header line of the complete element starting at `start`: returns its content
/// (between the type byte and CRLF) and the position after the CRLF.
pub(super) fn read_line(buf: &[u8], start: usize) -> Result<(&[u8], usize), ProtocolError> {
    let from = start.saturating_add(1);
    let hay = buf.get(from..).unwrap_or_default();
    let lf = find_lf(hay)
        .map(|i| from + i)
        .ok_or_else(|| ProtocolError::new(buf.len(), Reason::Truncated))?;
    let cr = check_crlf(buf, start, lf)?;
    Ok((buf.get(from..cr).unwrap_or_default(), lf + 1))
}

/// Returns the `len`-byte payload starting at `at` and the position after its trailing CRLF.
pub(super) fn bulk_payload(
    buf: &[u8],
    at: usize,
    len: usize,
) -> Result<(&[u8], usize), ProtocolError> {
    let truncated = || ProtocolError::new(buf.len(), Reason::Truncated);
    let payload_end = at.checked_add(len).ok_or_else(truncated)?;
    let payload = buf.get(at..payload_end).ok_or_else(truncated)?;
    match buf.get(payload_end..payload_end.saturating_add(2)) {
        Some(b"\r\n") => Ok((payload, payload_end + 2)),
        Some(_) => Err(ProtocolError::new(
            payload_end,
            Reason::MissingBulkTerminator,
        )),
        None => Err(truncated()),
    }
}

/// Parses unsigned decimal digits, rejecting empty input, signs and overflow.
fn parse_digits(digits: &[u8], offset: usize) -> Result<u64, ProtocolError> {
    if digits.is_empty() {
        return Err(ProtocolError::new(offset, Reason::BadNumber));
    }
    let mut n: u64 = 0;
    for (i, &b) in digits.iter().enumerate() {
        if !b.is_ascii_digit() {
            return Err(ProtocolError::new(offset + i, Reason::BadNumber));
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| ProtocolError::new(offset, Reason::NumberOverflow))?;
    }
    Ok(n)
}

/// Parses a RESP integer (`[+|-]digits`); `offset` is where `line` starts, for errors.
pub(super) fn parse_i64(line: &[u8], offset: usize) -> Result<i64, ProtocolError> {
    let (negative, digits, at) = match line.split_first() {
        Some((b'-', rest)) => (true, rest, offset + 1),
        Some((b'+', rest)) => (false, rest, offset + 1),
        _ => (false, line, offset),
    };
    let magnitude = parse_digits(digits, at)?;
    let overflow = || ProtocolError::new(offset, Reason::NumberOverflow);
    if negative {
        // i64::MIN's magnitude does not fit in i64, so negate in the unsigned domain.
        if magnitude > i64::MIN.unsigned_abs() {
            return Err(overflow());
        }
        Ok(0u64.wrapping_sub(magnitude) as i64)
    } else {
        i64::try_from(magnitude).map_err(|_| overflow())
    }
}

/// Parses a length or count: `Ok(None)` for `-1` when `nil` allows it, any other negative or
/// malformed value is an error.
pub(super) fn parse_len(
    line: &[u8],
    offset: usize,
    nil: bool,
) -> Result<Option<usize>, ProtocolError> {
    if line.first() == Some(&b'-') {
        return if nil && line == b"-1" {
            Ok(None)
        } else {
            Err(ProtocolError::new(offset, Reason::BadLength))
        };
    }
    let n = parse_digits(line, offset)?;
    usize::try_from(n)
        .map(Some)
        .map_err(|_| ProtocolError::new(offset, Reason::NumberOverflow))
}

/// Returns the position just after the complete element starting at `start`.
///
/// Used on frames the [`Scanner`] already accepted, to cut out the exact sub-slice of an element
/// that is handed to the `redis` crate. It needs no stack: one counter of elements still to skip
/// is enough because only the end matters, not the nesting.
pub(super) fn element_end(buf: &[u8], start: usize) -> Result<usize, ProtocolError> {
    let mut pos = start;
    let mut remaining: usize = 1;
    while remaining > 0 {
        remaining -= 1;
        let kind = *buf
            .get(pos)
            .ok_or_else(|| ProtocolError::new(pos, Reason::Truncated))?;
        let shape =
            Shape::of(kind).ok_or_else(|| ProtocolError::new(pos, Reason::UnknownType(kind)))?;
        let (line, next) = read_line(buf, pos)?;
        pos = match shape {
            Shape::Text | Shape::Short => next,
            Shape::Bulk { nil } => match parse_len(line, pos + 1, nil)? {
                None => next,
                Some(len) => bulk_payload(buf, next, len)?.1,
            },
            Shape::Aggregate { nil, per, extra } => {
                if let Some(count) = parse_len(line, pos + 1, nil)? {
                    remaining = Shape::children(per, extra, count)
                        .and_then(|c| c.checked_add(remaining))
                        .ok_or_else(|| ProtocolError::new(pos, Reason::CountTooLarge { count }))?;
                }
                next
            }
        };
    }
    Ok(pos)
}

/// What a scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The frame at the front of the buffer is this long.
    Complete(usize),
    /// More bytes are needed.
    Incomplete,
    /// The element whose header starts at `at` is a bulk of `len` bytes, over
    /// `max_bulk_len`. Its header ends at `payload_at`, where the payload begins (possibly
    /// not arrived yet). The scanner stays on that element; the decoder replaces it.
    Oversized {
        at: usize,
        payload_at: usize,
        len: usize,
    },
}

/// Resumable frame-boundary finder; see the module docs.
#[derive(Debug)]
pub(crate) struct Scanner {
    limits: Limits,
    /// Offset, from the front of the buffer, of the next element header to read.
    pos: usize,
    /// How far the search for the `\n` ending the header at `pos` already went. Keeps a long
    /// text line arriving in pieces from being searched again from its start on every call.
    searched: usize,
    /// For each open aggregate, innermost last: how many child elements are still expected.
    pending: Vec<usize>,
    /// Bytes examined by line searches, so tests can prove nothing is rescanned.
    #[cfg(test)]
    pub(super) examined: usize,
}

impl Scanner {
    /// Creates a scanner positioned at the start of a frame.
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            pos: 0,
            searched: 0,
            // Small and reused across frames; only hostile nesting grows it (up to max_depth).
            pending: Vec::with_capacity(8),
            #[cfg(test)]
            examined: 0,
        }
    }

    /// Forgets the frame just consumed; the next scan starts at the front of the buffer.
    pub(crate) fn reset(&mut self) {
        self.pos = 0;
        self.searched = 0;
        self.pending.clear();
    }

    /// Current nesting depth (for tests of the depth limit).
    #[cfg(test)]
    pub(super) fn depth(&self) -> usize {
        self.pending.len()
    }

    /// Continues scanning the frame at the front of `buf`.
    ///
    /// Returns the frame's length once it is complete. `buf` must be the same buffer as on
    /// the previous call, possibly with bytes appended, or with an oversized element
    /// replaced as [`Scan::Oversized`] asks.
    pub(crate) fn scan(&mut self, buf: &[u8]) -> Result<Scan, ProtocolError> {
        let max_frame = self.limits.max_frame_len;
        loop {
            let start = self.pos;
            let Some(&kind) = buf.get(start) else {
                return self.incomplete(buf);
            };
            let shape = Shape::of(kind)
                .ok_or_else(|| ProtocolError::new(start, Reason::UnknownType(kind)))?;
            let Some(cr) = self.find_line(buf, start, shape)? else {
                return self.incomplete(buf);
            };
            let line = buf.get(start + 1..cr).unwrap_or_default();
            let next = cr + 2;
            match shape {
                Shape::Text | Shape::Short => self.pos = next,
                Shape::Bulk { nil } => match parse_len(line, start + 1, nil)? {
                    None => self.pos = next,
                    Some(len) => {
                        // A length no frame could hold is a broken or hostile peer: were its
                        // payload skipped, the replies after it would be eaten as payload.
                        let end = next
                            .checked_add(len)
                            .and_then(|e| e.checked_add(2))
                            .filter(|&e| e <= max_frame)
                            .ok_or_else(|| {
                                ProtocolError::new(start, Reason::FrameTooLarge { max: max_frame })
                            })?;
                        if len > self.limits.max_bulk_len {
                            // Well formed, only too large to keep: the decoder skips its
                            // payload as it arrives, so one reply fails, not the connection.
                            self.searched = start;
                            return Ok(Scan::Oversized {
                                at: start,
                                payload_at: next,
                                len,
                            });
                        }
                        if buf.len() < end {
                            // Stay on the header so the payload is never searched; remember where
                            // its line ends so re-reading the header next time is O(1).
                            self.searched = cr;
                            return self.incomplete(buf);
                        }
                        if buf.get(end - 2..end) != Some(b"\r\n") {
                            return Err(ProtocolError::new(end - 2, Reason::MissingBulkTerminator));
                        }
                        self.pos = end;
                    }
                },
                Shape::Aggregate { nil, per, extra } => {
                    if let Some(count) = parse_len(line, start + 1, nil)? {
                        let too_large =
                            || ProtocolError::new(start, Reason::CountTooLarge { count });
                        let children = Shape::children(per, extra, count).ok_or_else(too_large)?;
                        if children > 0 {
                            // Every element takes at least 3 bytes (`_\r\n`), so a count that
                            // cannot fit is rejected now rather than after buffering.
                            let fits = children
                                .checked_mul(3)
                                .and_then(|b| b.checked_add(next))
                                .is_some_and(|min_end| min_end <= max_frame);
                            if !fits {
                                return Err(too_large());
                            }
                            if self.pending.len() >= self.limits.max_depth {
                                let max = self.limits.max_depth;
                                return Err(ProtocolError::new(start, Reason::TooDeep { max }));
                            }
                            self.pending.push(children);
                            self.pos = next;
                            self.searched = next;
                            continue;
                        }
                    }
                    // Empty and null aggregates are complete on their own, like scalars.
                    self.pos = next;
                }
            }
            self.searched = self.pos;
            if self.pos > max_frame {
                return Err(ProtocolError::new(
                    max_frame,
                    Reason::FrameTooLarge { max: max_frame },
                ));
            }
            // One element is complete: count it against its parent, closing every aggregate
            // that this completes in turn.
            loop {
                let Some(left) = self.pending.last_mut() else {
                    return Ok(Scan::Complete(self.pos));
                };
                *left = left.saturating_sub(1);
                if *left > 0 {
                    break;
                }
                self.pending.pop();
            }
        }
    }

    /// Reports an incomplete frame, unless it already exceeds the size limit. Every byte in
    /// `buf` belongs to the current frame at this point, since its end has not been seen.
    fn incomplete(&self, buf: &[u8]) -> Result<Scan, ProtocolError> {
        let max = self.limits.max_frame_len;
        if buf.len() > max {
            Err(ProtocolError::new(max, Reason::FrameTooLarge { max }))
        } else {
            Ok(Scan::Incomplete)
        }
    }

    /// Finds the CRLF ending the header line at `start`, resuming a previous search. Returns
    /// the position of its `\r`, or `None` if the line is not complete yet.
    fn find_line(
        &mut self,
        buf: &[u8],
        start: usize,
        shape: Shape,
    ) -> Result<Option<usize>, ProtocolError> {
        let from = self.searched.max(start + 1);
        let hay = buf.get(from..).unwrap_or_default();
        let found = find_lf(hay);
        #[cfg(test)]
        {
            self.examined += found.map_or(hay.len(), |i| i + 1);
        }
        // Content so far: everything after the type byte, excluding the CRLF once found.
        let content = match found {
            Some(i) => (from + i).saturating_sub(start + 2),
            None => buf.len().saturating_sub(start + 2),
        };
        if shape.has_short_line() && content > MAX_NUMBER_LINE {
            return Err(ProtocolError::new(start + 1, Reason::LineTooLong));
        }
        match found {
            Some(i) => check_crlf(buf, start, from + i).map(Some),
            None => {
                self.searched = buf.len().max(from);
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
