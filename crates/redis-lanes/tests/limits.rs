//! Options at their extremes and replies over the limits: never a panic, never a reset
//! of the whole connection for one caller's reply.

mod common;

use std::time::Duration;

use redis::AsyncCommands;
use redis_lanes::{Client, ErrorKind};

const GENEROUS: Duration = Duration::from_secs(10);

/// Every duration option at `Duration::MAX`, which no clock can add: connecting, a
/// command, a reconnect with requests waiting, a blocking call with its grace, a
/// lease and a close must all work, and nothing may panic (a panicking driver would
/// leave the lane dead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_max_is_forever_not_a_panic() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .client_name("forever")
        .connect_timeout(Duration::MAX)
        .response_timeout(Some(Duration::MAX))
        .close_timeout(Duration::MAX)
        .disconnected_wait(Duration::MAX)
        .reconnect_backoff(Duration::from_millis(10), Duration::MAX)
        .blocking_grace(Duration::MAX)
        .blocking_idle_timeout(Duration::MAX)
        .blocking_acquire_timeout(Duration::MAX)
        .exclusive_idle_timeout(Duration::MAX)
        .exclusive_acquire_timeout(Duration::MAX)
        .connect()
        .await
        .expect("connect");
    let mut conn = client.clone();
    conn.set::<_, _, ()>("k", "v").await.expect("SET");

    // A reconnect with `disconnected_wait` at MAX: the request waits, then goes out.
    let mut side = common::side(&server).await;
    let id = client.client_id().expect("id");
    assert_eq!(common::kill_client(&mut side, id).await, 1);
    // A command written before the client reads the kill's EOF fails, outcome unknown
    // (that is the contract, tested elsewhere); here the point is the reconnect.
    let back = common::eventually(GENEROUS, || {
        let reconnects = client.stats().reconnects;
        async move { reconnects >= 1 }
    })
    .await;
    assert!(back, "{:?}", client.stats());
    let got: String = tokio::time::timeout(GENEROUS, conn.get("k"))
        .await
        .expect("answered after the reconnect")
        .expect("GET");
    assert_eq!(got, "v");

    // A blocking call whose deadline is its timeout plus MAX of grace.
    let popped: Option<(String, String)> = tokio::time::timeout(GENEROUS, conn.blpop("q", 0.05))
        .await
        .expect("the server's own timeout ends it")
        .expect("BLPOP");
    assert_eq!(popped, None);

    // A lease and its reset.
    let mut lease = client.exclusive().await.expect("lease");
    let _: () = redis::cmd("SELECT")
        .arg(1)
        .query_async(&mut lease)
        .await
        .expect("SELECT");
    drop(lease);

    tokio::time::timeout(GENEROUS, client.close())
        .await
        .expect("close returns");
    assert!(
        common::eventually(GENEROUS, || {
            let mut side = side.clone();
            async move { common::named(&mut side, "forever").await.is_empty() }
        })
        .await,
        "every connection closed"
    );
}

/// With no connect timeout, connecting sets no timer, so it works under a paused
/// clock (which would otherwise fire the timeout while the socket is still opening).
/// The health check is off for the same reason: its timer would fire while a reply is
/// on its way.
#[tokio::test(start_paused = true)]
async fn the_connect_timeout_can_be_turned_off() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .connect_timeout(None)
        .health_check(None)
        .connect()
        .await
        .expect("connect under a paused clock");
    let mut conn = client.clone();
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
}

/// A reply over `max_bulk_len` fails its own caller with `ResponseTooLarge`; the
/// connection stays up and every other caller's reply stays in step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_reply_fails_only_its_caller() {
    let server = common::server();
    let mut side = common::side(&server).await;
    let big = "x".repeat(64 * 1024);
    side.set::<_, _, ()>("big", &big).await.expect("SET");
    for protocol in [redis_lanes::Protocol::Resp2, redis_lanes::Protocol::Resp3] {
        let client = Client::builder(&server.url())
            .protocol(protocol)
            .max_bulk_len(1024)
            .connect()
            .await
            .expect("connect");
        let id = client.client_id();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let mut conn = client.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..100 {
                    if (t + i) % 10 == 0 {
                        let err = conn.get::<_, String>("big").await.expect_err("too large");
                        let err = common::lanes_error(&err);
                        assert_eq!(err.kind(), ErrorKind::ResponseTooLarge, "{err}");
                        assert!(err.is_response_too_large() && !err.is_outcome_unknown());
                        // Inside an aggregate too, with elements on both sides.
                        let err = conn
                            .mget::<_, Vec<Option<String>>>(&["small", "big", "small"])
                            .await
                            .expect_err("too large");
                        assert!(common::lanes_error(&err).is_response_too_large());
                    } else {
                        common::echo_own(&mut conn, format!("{t}-{i}")).await;
                    }
                }
            }));
        }
        common::join_all(tasks).await;
        let stats = client.stats();
        assert_eq!(stats.reconnects, 0, "{stats:?}");
        assert_eq!(stats.connection_errors, 0, "{stats:?}");
        assert_eq!(client.client_id(), id, "the same connection throughout");
        // A pipeline with one oversized reply fails whole, and the next one is fine.
        let mut conn = client.clone();
        let err = redis::pipe()
            .get("big")
            .cmd("ECHO")
            .arg("after")
            .query_async::<(String, String)>(&mut conn)
            .await
            .expect_err("too large");
        assert!(common::lanes_error(&err).is_response_too_large());
        let (a, b): (String, String) = redis::pipe()
            .cmd("ECHO")
            .arg("a")
            .cmd("ECHO")
            .arg("b")
            .query_async(&mut conn)
            .await
            .expect("in step");
        assert_eq!((a.as_str(), b.as_str()), ("a", "b"));
    }
}
