//! A connection's bytes waiting to be written: small requests copied into one buffer,
//! large ones kept in the buffer they were packed in.
//!
//! Copying a request into the write buffer costs nothing worth saving for a `GET`, but
//! for a large `SET` it holds the value in memory one more time until it is written, and
//! copying it takes longer than writing it. A request of at least [`OWN_CHUNK`] bytes is
//! therefore queued as a chunk of its own, and the chunks and the buffer go out together
//! in one vectored write.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;

/// Requests at least this large are not copied into the write buffer.
pub(super) const OWN_CHUNK: usize = 64 * 1024;

/// At most this many pieces go into one vectored write (well under any `IOV_MAX`).
const MAX_SLICES: usize = 64;

/// Bytes waiting to be written, in order: `chunks` first, then `tail`.
#[derive(Debug)]
pub(super) struct Output {
    chunks: VecDeque<Bytes>,
    /// Where small requests are copied; always after every chunk.
    tail: BytesMut,
    /// Bytes in `chunks` and `tail`.
    len: usize,
}

impl Output {
    pub(super) fn new() -> Self {
        Self {
            chunks: VecDeque::new(),
            tail: BytesMut::with_capacity(16 * 1024),
            len: 0,
        }
    }

    /// Bytes waiting to be written.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues one request's bytes after everything already queued.
    pub(super) fn push(&mut self, bytes: Vec<u8>) {
        self.len += bytes.len();
        if bytes.len() < OWN_CHUNK {
            self.tail.extend_from_slice(&bytes);
            return;
        }
        if !self.tail.is_empty() {
            // What was copied before it goes first.
            self.chunks.push_back(self.tail.split().freeze());
        }
        self.chunks.push_back(Bytes::from(bytes));
    }

    /// One write of as much as the socket takes, in order. `Ready(Ok(n))` with the number
    /// of bytes written.
    pub(super) fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let n = if self.chunks.is_empty() {
            // The common case: no large request, one plain write.
            let n = ready!(Pin::new(&mut *writer).poll_write(cx, &self.tail))?;
            self.tail.advance(n.min(self.tail.len()));
            n
        } else {
            let mut slices = Vec::with_capacity(self.chunks.len().min(MAX_SLICES) + 1);
            slices.extend(self.chunks.iter().take(MAX_SLICES).map(|c| IoSlice::new(c)));
            if self.chunks.len() < MAX_SLICES && !self.tail.is_empty() {
                slices.push(IoSlice::new(&self.tail));
            }
            let n = ready!(Pin::new(&mut *writer).poll_write_vectored(cx, &slices))?;
            self.consume(n);
            n
        };
        self.len = self.len.saturating_sub(n);
        Poll::Ready(Ok(n))
    }

    /// Drops the first `n` bytes written by a vectored write.
    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                self.tail.advance(n.min(self.tail.len()));
                return;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.chunks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `max` bytes per write, vectored or not, and records them.
    struct Trickle {
        written: Vec<u8>,
        max: usize,
        vectored: bool,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.max);
            self.written.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            if !self.vectored {
                let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
                return self.poll_write(cx, first);
            }
            let mut total = 0;
            for buf in bufs {
                let n = buf.len().min(self.max - total);
                self.written.extend_from_slice(&buf[..n]);
                total += n;
                if total == self.max {
                    break;
                }
            }
            Poll::Ready(Ok(total))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn small_and_large_requests_go_out_in_order_through_partial_writes() {
        let requests: Vec<Vec<u8>> = [10, OWN_CHUNK, 3, 7, OWN_CHUNK * 2 + 5, 1, OWN_CHUNK]
            .iter()
            .enumerate()
            .map(|(i, &len)| (0..len).map(|j| (i * 31 + j) as u8).collect())
            .collect();
        let expected: Vec<u8> = requests.concat();
        for (max, vectored) in [(1, true), (4096, true), (100_000, true), (7000, false)] {
            let mut output = Output::new();
            let mut sink = Trickle {
                written: Vec::new(),
                max,
                vectored,
            };
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            for (i, request) in requests.iter().enumerate() {
                output.push(request.clone());
                // Write a little between pushes too, so chunks are cut mid-way.
                if i % 2 == 1 {
                    let Poll::Ready(Ok(_)) = output.poll_write(&mut sink, &mut cx) else {
                        panic!("the sink is always ready");
                    };
                }
            }
            while !output.is_empty() {
                let before = output.len();
                let Poll::Ready(Ok(n)) = output.poll_write(&mut sink, &mut cx) else {
                    panic!("the sink is always ready");
                };
                assert!(n > 0);
                assert_eq!(output.len(), before - n);
            }
            assert!(sink.written == expected, "max {max}, vectored {vectored}");
        }
    }

    #[test]
    fn a_large_request_is_not_copied() {
        let mut output = Output::new();
        let request = vec![7u8; OWN_CHUNK];
        let at = request.as_ptr();
        output.push(request);
        assert_eq!(output.chunks.front().map(|c| c.as_ptr()), Some(at));
        assert!(output.tail.is_empty());
    }
}
