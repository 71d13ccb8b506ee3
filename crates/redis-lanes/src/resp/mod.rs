//! Incremental RESP2 + RESP3 decoding (and, for its tests, a small encoder).
//!
//! Decoding is split in two linear passes so that a reply arriving in many small reads is
//! never rescanned:
//!
//! 1. [`scan`] finds where the frame at the front of the buffer ends. It is resumable: when the
//!    frame is incomplete it remembers how far it got, and enforces the [`Limits`] as early as
//!    possible (before a huge payload is buffered, not after).
//! 2. [`parse`] turns the now complete frame into a [`redis::Value`] in one pass. It can assume
//!    the structure was checked, but still never panics on odd input.
//!
//! Offsets in [`ProtocolError`] messages count from the first byte of the frame being decoded.

use std::fmt;

use bytes::{Buf, BytesMut};

#[cfg(test)]
mod encode;
pub(crate) mod parse;
pub(crate) mod scan;

#[cfg(test)]
mod soak;
#[cfg(test)]
mod tests;

/// Bounds on what a peer may make the decoder buffer or build.
///
/// They exist so that a misbehaving or hostile server cannot make the client allocate without
/// bound: every limit is checked as soon as the offending header is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Largest accepted payload of a bulk string, blob error or verbatim string.
    pub(crate) max_bulk_len: usize,
    /// Deepest accepted nesting of aggregates (a top-level array alone has depth 1).
    pub(crate) max_depth: usize,
    /// Largest accepted size in bytes of one whole top-level frame, complete or not.
    pub(crate) max_frame_len: usize,
}

impl Default for Limits {
    /// 512 MiB bulks (Redis's own `proto-max-bulk-len` default), 512 levels, 1 GiB frames.
    fn default() -> Self {
        Self {
            max_bulk_len: 512 * 1024 * 1024,
            max_depth: 512,
            max_frame_len: 1024 * 1024 * 1024,
        }
    }
}

/// Why the byte stream is not valid RESP (or exceeds the [`Limits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    UnknownType(u8),
    BareLineFeed,
    BadNumber,
    NumberOverflow,
    BadLength,
    LineTooLong,
    MissingBulkTerminator,
    CountTooLarge {
        count: usize,
    },
    TooDeep {
        max: usize,
    },
    FrameTooLarge {
        max: usize,
    },
    InvalidUtf8,
    BadBoolean,
    BadDouble,
    BadNull,
    Truncated,
    TrailingBytes,
    /// The `redis` crate rejected a sub-frame that was delegated to it.
    Delegated(String),
    /// No memory could be reserved for a bulk string of this length.
    OutOfMemory {
        len: usize,
    },
}

/// A violation of the RESP protocol by the peer; the connection it came from must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtocolError {
    /// Byte offset of the problem, counted from the start of the frame.
    offset: usize,
    reason: Reason,
}

impl ProtocolError {
    fn new(offset: usize, reason: Reason) -> Self {
        Self { offset, reason }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RESP protocol error at byte {} of the frame: ",
            self.offset
        )?;
        match &self.reason {
            Reason::UnknownType(b) => write!(
                f,
                "unknown type byte 0x{b:02x} ('{}')",
                char::from(*b).escape_default()
            ),
            Reason::BareLineFeed => f.write_str("line feed not preceded by a carriage return"),
            Reason::BadNumber => f.write_str("expected a decimal integer"),
            Reason::NumberOverflow => f.write_str("integer out of range"),
            Reason::BadLength => f.write_str("invalid length or count"),
            Reason::LineTooLong => f.write_str("length or number line is too long"),
            Reason::MissingBulkTerminator => f.write_str("bulk payload not followed by CRLF"),
            Reason::CountTooLarge { count } => {
                write!(
                    f,
                    "aggregate of {count} elements cannot fit in the frame size limit"
                )
            }
            Reason::TooDeep { max } => write!(f, "aggregates nested deeper than {max} levels"),
            Reason::FrameTooLarge { max } => {
                write!(f, "frame larger than the limit of {max} bytes")
            }
            Reason::InvalidUtf8 => f.write_str("string is not valid UTF-8"),
            Reason::BadBoolean => f.write_str("boolean must be `t` or `f`"),
            Reason::BadDouble => f.write_str("invalid double"),
            Reason::BadNull => f.write_str("null must have an empty line"),
            Reason::Truncated => f.write_str("frame ends in the middle of a value"),
            Reason::TrailingBytes => f.write_str("bytes after the end of the value"),
            Reason::Delegated(msg) => write!(f, "{msg}"),
            Reason::OutOfMemory { len } => {
                write!(f, "no memory for a bulk string of {len} bytes")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// One decoded top-level frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    /// The reply to a request (anything but a top-level push, including errors as
    /// [`redis::Value::ServerError`]).
    Reply(redis::Value),
    /// An out-of-band RESP3 push (`>`), as [`redis::Value::Push`]; never a reply to a request.
    Push(redis::Value),
    /// A well-formed frame holding a bulk string over `max_bulk_len`. Its bytes were
    /// skipped as they arrived, never buffered whole; the frame still counts as the reply
    /// (or push) it is, so replies after it stay matched to their requests.
    TooLarge {
        /// Whether the frame was a push rather than a reply.
        push: bool,
        /// The length its largest oversized bulk announced.
        len: usize,
        /// The limit it exceeded.
        max: usize,
    },
}

/// What stands in for an oversized bulk while the frame around it is scanned and parsed:
/// a RESP3 null, which is one element in any aggregate.
const PLACEHOLDER: &[u8] = b"_\r\n";

/// The payload of an oversized bulk, being dropped as it arrives.
#[derive(Debug)]
struct Skip {
    /// Where in the buffer the payload bytes land (right after the placeholder).
    at: usize,
    /// Payload bytes still to drop.
    payload: usize,
    /// Bytes of the terminating CRLF still to check and drop (2, 1 or 0).
    crlf: usize,
}

impl Skip {
    /// Drops what has arrived of the payload and its CRLF. `Ok(true)` once all of it is gone.
    fn drain(&mut self, buf: &mut BytesMut) -> Result<bool, ProtocolError> {
        let available = buf.len().saturating_sub(self.at);
        let n = available.min(self.payload);
        remove(buf, self.at, n);
        self.payload -= n;
        if self.payload > 0 {
            return Ok(false);
        }
        while self.crlf > 0 {
            let expected = if self.crlf == 2 { b'\r' } else { b'\n' };
            match buf.get(self.at) {
                None => return Ok(false),
                Some(&b) if b == expected => {
                    remove(buf, self.at, 1);
                    self.crlf -= 1;
                }
                Some(_) => return Err(ProtocolError::new(self.at, Reason::MissingBulkTerminator)),
            }
        }
        Ok(true)
    }
}

/// Removes `n` bytes at `at`, keeping what is before and after.
fn remove(buf: &mut BytesMut, at: usize, n: usize) {
    if n == 0 {
        return;
    }
    if at == 0 {
        buf.advance(n);
        return;
    }
    let len = buf.len();
    buf.copy_within(at + n..len, at);
    buf.truncate(len - n);
}

/// A large top-level bulk string being collected in a buffer of its exact size (see
/// [`scan::DIRECT_MIN`]). Its header is gone from the read buffer; its payload and CRLF
/// go into `payload`, either moved from the read buffer or read straight into it.
#[derive(Debug)]
struct Direct {
    /// Payload and terminating CRLF so far.
    payload: Vec<u8>,
    /// The announced payload length.
    len: usize,
    /// The header's length, for error offsets.
    header: usize,
}

impl Direct {
    fn new(header: usize, len: usize) -> Result<Self, ProtocolError> {
        let mut payload = Vec::new();
        // Reserved fallibly: a length the allocator cannot give fails this connection
        // with an error instead of aborting the process.
        payload
            .try_reserve_exact(len + 2)
            .map_err(|_| ProtocolError::new(0, Reason::OutOfMemory { len }))?;
        Ok(Self {
            payload,
            len,
            header,
        })
    }

    /// Bytes still to come, CRLF included.
    fn wanted(&self) -> usize {
        (self.len + 2).saturating_sub(self.payload.len())
    }

    /// Moves what the read buffer holds of the payload into `payload`.
    fn fill_from(&mut self, buf: &mut BytesMut) {
        let n = buf.len().min(self.wanted());
        self.payload
            .extend_from_slice(buf.get(..n).unwrap_or_default());
        buf.advance(n);
    }

    /// The complete payload, once its CRLF is checked.
    fn finish(mut self) -> Result<Vec<u8>, ProtocolError> {
        if self.payload.get(self.len..) != Some(b"\r\n") {
            let at = self.header + self.len;
            return Err(ProtocolError::new(at, Reason::MissingBulkTerminator));
        }
        self.payload.truncate(self.len);
        Ok(self.payload)
    }
}

/// Incremental RESP decoder for one connection's read buffer.
#[derive(Debug)]
pub(crate) struct Decoder {
    scanner: scan::Scanner,
    stack: parse::ParseStack,
    limits: Limits,
    /// The oversized payload being dropped, if any.
    skip: Option<Skip>,
    /// The largest oversized bulk in the frame being decoded.
    too_large: Option<usize>,
    /// The large bulk string being collected, if any.
    direct: Option<Direct>,
    /// How often `buf` was edited (an oversized element replaced or skipped), so tests
    /// can check that nothing else ever changes it.
    #[cfg(test)]
    pub(crate) edits: usize,
}

impl Decoder {
    /// Creates a decoder that enforces `limits`.
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            scanner: scan::Scanner::new(limits),
            stack: parse::ParseStack::default(),
            limits,
            skip: None,
            too_large: None,
            direct: None,
            #[cfg(test)]
            edits: 0,
        }
    }

    /// Decodes the next complete frame at the front of `buf` and advances `buf` past it.
    ///
    /// Returns `Ok(None)` when the frame is not complete yet. The decoder remembers how far
    /// it got, so the next call (after more bytes were appended) resumes where it stopped;
    /// the caller must therefore only ever append to `buf` between calls. `buf` is left
    /// untouched then, except while a bulk over `max_bulk_len` arrives: its header is
    /// replaced by a placeholder and its payload is dropped as it comes, so it never
    /// occupies memory, and the frame ends as [`Frame::TooLarge`]; and while a large
    /// top-level bulk string arrives: its header is taken off and its payload moved into
    /// a buffer of its own (see [`Decoder::direct_buf`]). After an `Err` the decoder and
    /// the connection are unusable.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        loop {
            if let Some(direct) = self.direct.as_mut() {
                #[cfg(test)]
                {
                    self.edits += 1;
                }
                direct.fill_from(buf);
                if direct.wanted() > 0 {
                    return Ok(None);
                }
                let payload = self.direct.take().map(Direct::finish).transpose()?;
                let value = redis::Value::BulkString(payload.unwrap_or_default());
                return Ok(Some(Frame::Reply(value)));
            }
            if let Some(skip) = self.skip.as_mut() {
                #[cfg(test)]
                {
                    self.edits += 1;
                }
                if !skip.drain(buf)? {
                    return Ok(None);
                }
                self.skip = None;
            }
            match self.scanner.scan(buf)? {
                scan::Scan::Incomplete => return Ok(None),
                scan::Scan::Complete(len) => return self.take_frame(buf, len).map(Some),
                scan::Scan::Direct { payload_at, len } => {
                    #[cfg(test)]
                    {
                        self.edits += 1;
                    }
                    self.direct = Some(Direct::new(payload_at, len)?);
                    buf.advance(payload_at);
                    self.scanner.reset();
                }
                scan::Scan::Oversized {
                    at,
                    payload_at,
                    len,
                } => {
                    // The header ("$<len>\r\n", at least 4 bytes) becomes the placeholder.
                    let header = payload_at.saturating_sub(at);
                    let Some(slot) = buf.get_mut(at..at + PLACEHOLDER.len()) else {
                        return Err(ProtocolError::new(at, Reason::Truncated));
                    };
                    slot.copy_from_slice(PLACEHOLDER);
                    remove(buf, at + PLACEHOLDER.len(), header - PLACEHOLDER.len());
                    self.skip = Some(Skip {
                        at: at + PLACEHOLDER.len(),
                        payload: len,
                        crlf: 2,
                    });
                    self.too_large = Some(self.too_large.map_or(len, |l| l.max(len)));
                }
            }
        }
    }

    /// Where the rest of a large bulk string being collected goes, and how many bytes of
    /// it are still to come: a reader puts them there at once, skipping the read buffer.
    /// `None` when no such bulk is under way.
    pub(crate) fn direct_buf(&mut self) -> Option<(&mut Vec<u8>, usize)> {
        let direct = self.direct.as_mut()?;
        let wanted = direct.wanted();
        Some((&mut direct.payload, wanted))
    }

    fn take_frame(&mut self, buf: &mut BytesMut, len: usize) -> Result<Frame, ProtocolError> {
        let frame = buf
            .get(..len)
            .ok_or_else(|| ProtocolError::new(buf.len(), Reason::Truncated))?;
        let is_push = frame.first() == Some(&b'>');
        let value = parse::parse_frame(frame, self.limits.max_depth, &mut self.stack)?;
        buf.advance(len);
        self.scanner.reset();
        if let Some(len) = self.too_large.take() {
            return Ok(Frame::TooLarge {
                push: is_push,
                len,
                max: self.limits.max_bulk_len,
            });
        }
        Ok(if is_push {
            Frame::Push(value)
        } else {
            Frame::Reply(value)
        })
    }
}
