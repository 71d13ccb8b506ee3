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
    /// The frame is a bulk string of `len` bytes (at least [`DIRECT_MIN`]) whose header
    /// ends at `payload_at` and whose payload has not all arrived. The decoder takes the
    /// header off and collects the payload in a buffer of its own (see `Decoder`).
    Direct { payload_at: usize, len: usize },
}

/// A top-level bulk string at least this long, not yet arrived whole, is collected in a
/// buffer of its exact size rather than in the read buffer: the read buffer would grow
/// by doubling and the payload would then be copied out of it, three times its size at
/// the peak instead of once.
pub(crate) const DIRECT_MIN: usize = 256 * 1024;

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
                        if kind == b'$' && start == 0 && len >= DIRECT_MIN && buf.len() < end {
                            return Ok(Scan::Direct {
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
#[path = "scan_tests.rs"]
mod tests;
