//! When the connection dies or the peer lies: every caller is answered, nothing hangs,
//! nothing panics.

mod common;

use std::time::Duration;

use redis::AsyncCommands;
use redis_lanes::{Client, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const GENEROUS: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_mid_load_loses_nothing_and_duplicates_nothing() {
    let server = common::server();
    let client = common::client(&server).await;
    let id = client.client_id().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut conn = client.clone();
        tasks.push(tokio::spawn(async move {
            // (acknowledged, outcome unknown, not sent)
            let mut tally = (0u64, 0u64, 0u64);
            for _ in 0..2_000 {
                match conn.incr::<_, _, i64>("counter", 1).await {
                    Ok(_) => tally.0 += 1,
                    Err(e) => {
                        let err = common::lanes_error(&e);
                        assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err:?}");
                        if err.is_outcome_unknown() {
                            tally.1 += 1;
                        } else {
                            assert!(err.is_retry_safe(), "{err:?}");
                            tally.2 += 1;
                        }
                    }
                }
            }
            tally
        }));
    }
    // Let the load get going, then kill the lane from another connection.
    let mut side = common::side(&server).await;
    let started = common::eventually(GENEROUS, || {
        let client = client.clone();
        async move { client.stats().replies > 1_000 }
    })
    .await;
    assert!(started);
    let killed = common::kill_client(&mut side, id).await;
    assert_eq!(killed, 1);
    let (mut acked, mut unknown, mut not_sent) = (0, 0, 0);
    for task in tasks {
        let (a, u, n) = tokio::time::timeout(GENEROUS * 3, task)
            .await
            .expect("a caller hung after the connection was killed")
            .unwrap();
        acked += a;
        unknown += u;
        not_sent += n;
    }
    let counter: u64 = side.get("counter").await.unwrap();
    assert!(
        counter >= acked && counter <= acked + unknown,
        "counter {counter}, acknowledged {acked}, unknown {unknown}, not sent {not_sent}"
    );
    assert_eq!(acked + unknown + not_sent, 16 * 2_000);
    let stats = client.stats();
    assert_eq!(
        (stats.connection_errors, stats.reconnects),
        (1, 1),
        "{stats:?}"
    );
    assert!(stats.connected);
    assert!(!client.is_closed());
}

/// A fake server: completes the handshake (`CLIENT ID`), then for each later command
/// answers with `script`'s next chunk of raw bytes. Only for faults a real server
/// cannot produce.
async fn fake_server(after_handshake: Vec<u8>, close_after: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut buf = vec![0u8; 4096];
        // Handshake: CLIENT ID.
        let _ = socket.read(&mut buf).await;
        let _ = socket.write_all(b":7\r\n").await;
        // First command.
        let _ = socket.read(&mut buf).await;
        let _ = socket.write_all(&after_handshake).await;
        if close_after {
            return;
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    format!("redis://{addr}")
}

async fn error_for(reply: &[u8], close_after: bool) -> redis_lanes::Error {
    let url = fake_server(reply.to_vec(), close_after).await;
    // Without reconnect, so the lane's end can be observed.
    let mut client = Client::builder(&url)
        .reconnect(false)
        .connect()
        .await
        .unwrap();
    let err = tokio::time::timeout(GENEROUS, client.get::<_, Option<String>>("k"))
        .await
        .expect("no hang")
        .unwrap_err();
    let err = common::lanes_error(&err);
    assert!(client.is_closed());
    err
}

#[tokio::test]
async fn garbage_bytes_are_a_protocol_error() {
    let err = error_for(b"?what\r\n", false).await;
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
}

#[tokio::test]
async fn an_oversized_bulk_header_is_refused_before_its_payload() {
    let err = error_for(b"$99999999999\r\n", false).await;
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
}

#[tokio::test]
async fn a_half_written_frame_then_close_is_a_lost_connection() {
    let err = error_for(b"$10\r\nabc", true).await;
    assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
    assert!(
        !err.is_retry_safe(),
        "the command was in flight: outcome unknown"
    );
}

#[tokio::test]
async fn a_reply_nobody_asked_for_is_a_protocol_error() {
    // The first reply answers GET; the extra one has no request.
    let url = fake_server(b"+OK\r\n+EXTRA\r\n".to_vec(), false).await;
    let client = Client::builder(&url)
        .reconnect(false)
        .connect()
        .await
        .unwrap();
    let mut conn = client.clone();
    let first: redis::Value = redis::cmd("GET")
        .arg("k")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(first, redis::Value::Okay);
    let gone = common::eventually(GENEROUS, || {
        let client = client.clone();
        async move { client.is_closed() }
    })
    .await;
    assert!(gone, "the stray reply did not close the lane");
    let err = conn.get::<_, Option<String>>("k").await.unwrap_err();
    assert_eq!(common::lanes_error(&err).kind(), ErrorKind::Protocol);
}

#[tokio::test]
async fn a_server_that_dies_mid_command_is_an_error_not_a_hang() {
    let mut server = common::server();
    let client = common::client(&server).await;
    let mut conn = client.clone();
    let pending = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(2)
            .query_async::<()>(&mut conn)
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop();
    let err = tokio::time::timeout(GENEROUS, pending)
        .await
        .expect("no hang")
        .unwrap()
        .unwrap_err();
    let err = common::lanes_error(&err);
    assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err:?}");
    assert!(!err.is_retry_safe());
}
