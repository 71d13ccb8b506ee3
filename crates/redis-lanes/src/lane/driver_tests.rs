//! Tests for `driver.rs` that need exact control over when bytes arrive relative to
//! when requests are written: the driver runs on one end of a Unix socket pair and is
//! polled by hand, the test plays the server on the other end.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_util::task::noop_waker_ref;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::LaneDriver;
use crate::connect::{Session, Stream};
use crate::error::ErrorKind;
use crate::lane::state::LaneState;
use crate::lane::Lane;
use crate::resp::{Decoder, Limits};

/// A lane on one end of a socket pair, with `leftover` already in its read buffer (as
/// if read along with the handshake). Returns the handle, the unpolled driver and the
/// server's end.
fn lane(leftover: &[u8]) -> (Lane, LaneDriver, UnixStream) {
    let (client, server) = UnixStream::pair().unwrap();
    let options = crate::Client::builder("redis://127.0.0.1")
        .max_in_flight(16)
        .close_timeout(std::time::Duration::from_secs(1))
        .health_check(None)
        .build()
        .unwrap()
        .lane;
    let shared = Arc::new(LaneState::new(&options, Some(1), Arc::default()));
    let (tx, rx) = mpsc::unbounded_channel();
    let session = Session {
        stream: Stream::Unix(client),
        decoder: Decoder::new(Limits::default()),
        read_buf: BytesMut::from(leftover),
        client_id: Some(1),
    };
    // No reconnect: these tests watch the lane end.
    let driver = LaneDriver::new(
        session,
        rx,
        Arc::clone(&shared),
        None,
        None,
        options.health,
        crate::lane::LaneKind::Shared,
    );
    (Lane::new(tx, shared), driver, server)
}

fn ping() -> redis::Cmd {
    redis::cmd("PING")
}

/// Polls `driver` once, with a waker that does nothing.
fn poll_once(driver: &mut std::pin::Pin<&mut LaneDriver>) -> Poll<()> {
    driver
        .as_mut()
        .poll(&mut Context::from_waker(noop_waker_ref()))
}

#[tokio::test]
async fn a_frame_read_while_the_request_waits_to_be_written_is_a_protocol_error() {
    let (lane, driver, mut server) = lane(b"");
    let mut driver = pin!(driver);
    // The stray frame is on the socket before the request is even queued.
    server.write_all(b"+STRAY\r\n").await.unwrap();
    let caller = tokio::spawn({
        let lane = lane.clone();
        async move { lane.send(&ping()).await }
    });
    while lane.stats().queued == 0 {
        tokio::task::yield_now().await;
    }
    // One poll takes the request and reads the frame before it writes the request.
    assert_eq!(poll_once(&mut driver), Poll::Ready(()));
    let err = caller.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    // Never written, so safe to retry.
    assert!(err.is_retry_safe(), "{err}");
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "the request was not written: {rest:?}");
}

#[tokio::test]
async fn bytes_left_from_the_handshake_are_decoded_before_any_request_is_taken() {
    let (lane, driver, _server) = lane(b"+STRAY\r\n");
    let mut driver = pin!(driver);
    let caller = tokio::spawn({
        let lane = lane.clone();
        async move { lane.send(&ping()).await }
    });
    while lane.stats().queued == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(poll_once(&mut driver), Poll::Ready(()));
    let err = caller.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.is_retry_safe(), "{err}");
}

#[tokio::test]
async fn a_reply_once_the_request_is_written_is_its_reply() {
    // A push left from the handshake is fine: it is not a reply.
    let (lane, driver, mut server) = lane(b">2\r\n$10\r\ninvalidate\r\n*0\r\n");
    let driver = tokio::spawn(driver);
    let caller = tokio::spawn({
        let lane = lane.clone();
        async move { lane.send(&ping()).await }
    });
    let mut request = [0u8; 14];
    server.read_exact(&mut request).await.unwrap();
    assert_eq!(&request, b"*1\r\n$4\r\nPING\r\n");
    server.write_all(b"+PONG\r\n").await.unwrap();
    let reply = caller.await.unwrap().unwrap();
    assert_eq!(reply, redis::Value::SimpleString("PONG".into()));
    assert_eq!(lane.stats().pushes, 1);
    drop(lane);
    driver.await.unwrap();
}
