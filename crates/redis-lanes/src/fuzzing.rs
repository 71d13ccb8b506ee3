//! The RESP decoder, exposed for fuzzing only (the `fuzzing` cargo feature).
//!
//! The decoder is crate-private; fuzz targets live in their own crate (`fuzz/`), so they
//! reach it through this thin wrapper. It is `#[doc(hidden)]`, absent without the
//! feature, and carries no stability promise.

use bytes::BytesMut;

use crate::resp::{self, Frame, Limits};

/// An incremental decoder for one connection's read buffer; see `resp::Decoder`.
#[derive(Debug)]
pub struct Decoder(resp::Decoder);

/// One decoded top-level frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A reply to a request.
    Reply(redis::Value),
    /// An out-of-band RESP3 push.
    Push(redis::Value),
    /// A frame holding a bulk over the length limit, skipped without being buffered.
    TooLarge {
        /// Whether it was a push.
        push: bool,
    },
}

impl Decoder {
    /// A decoder with the limits a client gets by default (512 MiB bulks, 512 levels,
    /// 1 GiB frames).
    pub fn with_default_limits() -> Self {
        Self(resp::Decoder::new(Limits::default()))
    }

    /// A decoder with the given limits (bulk length, nesting depth, frame size).
    pub fn with_limits(max_bulk_len: usize, max_depth: usize, max_frame_len: usize) -> Self {
        Self(resp::Decoder::new(Limits {
            max_bulk_len,
            max_depth,
            max_frame_len,
        }))
    }

    /// Decodes the next complete frame at the front of `buf`, as the lane's driver does:
    /// `Ok(None)` leaves `buf` untouched until more bytes are appended (except that the
    /// payload of a bulk over the length limit is dropped as it arrives); after an `Err`
    /// (the protocol error's message) the decoder must not be used again.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, String> {
        match self.0.decode(buf) {
            Ok(Some(Frame::Reply(value))) => Ok(Some(Decoded::Reply(value))),
            Ok(Some(Frame::Push(value))) => Ok(Some(Decoded::Push(value))),
            Ok(Some(Frame::TooLarge { push, .. })) => Ok(Some(Decoded::TooLarge { push })),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}
