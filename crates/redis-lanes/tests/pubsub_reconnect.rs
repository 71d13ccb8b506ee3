//! Subscribers reconnect on their own (the default): the stream reports the gap once,
//! then carries on with every subscription restored.

mod common;

use std::time::Duration;

use futures_util::StreamExt;
use redis_lanes::{Client, ErrorKind, Protocol, Subscriber};
use redis_lanes_testkit::RedisServer;

const GENEROUS: Duration = Duration::from_secs(10);

async fn subscriber(server: &RedisServer, protocol: Protocol) -> Subscriber {
    Client::builder(&server.url())
        .protocol(protocol)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .connect()
        .await
        .expect("connect")
        .subscriber()
        .await
        .expect("subscriber")
}

/// Publishes until the subscriber receives `payload` (a message published while the
/// subscription is being restored is missed, by pub/sub's rules).
async fn publish_until_received(
    server: &RedisServer,
    sub: &mut Subscriber,
    channel: &str,
    payload: &str,
) {
    let mut side = common::side(server).await;
    let deadline = tokio::time::Instant::now() + GENEROUS;
    loop {
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut side)
            .await
            .unwrap();
        if receivers == 1 {
            let item = tokio::time::timeout(GENEROUS, sub.next())
                .await
                .expect("a message in time")
                .expect("the stream goes on");
            let message = item.expect("a message, not an error");
            assert_eq!(message.payload(), payload.as_bytes());
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "never resubscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_killed_subscriber_resubscribes_on_its_own() {
    let server = common::server();
    let mut side = common::side(&server).await;
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        let mut sub = subscriber(&server, protocol).await;
        sub.subscribe("c").await.unwrap();
        sub.psubscribe("p.*").await.unwrap();
        let old = sub.client_id().unwrap();
        let killed = common::kill_client(&mut side, old).await;
        assert_eq!(killed, 1);

        // The gap is reported once, and the stream does not end.
        let err = tokio::time::timeout(GENEROUS, sub.next())
            .await
            .expect("the loss is reported")
            .expect("as an item, not the end")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
        publish_until_received(&server, &mut sub, "c", "after").await;
        publish_until_received(&server, &mut sub, "p.x", "pattern").await;
        assert!(sub.is_connected());
        assert_ne!(sub.client_id(), Some(old));
    }
}

#[tokio::test]
async fn a_subscriber_comes_back_after_a_server_restart() {
    let mut server = common::server();
    let mut sub = subscriber(&server, Protocol::Resp3).await;
    sub.subscribe("c").await.unwrap();
    server.stop();
    let err = tokio::time::timeout(GENEROUS, sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.is_connection(), "{err}");
    // A subscription asked for while the server is down waits for it.
    let restart = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.restart().unwrap();
    };
    let (subscribed, ()) =
        tokio::join!(tokio::time::timeout(GENEROUS, sub.subscribe("d")), restart);
    subscribed.expect("no hang").unwrap();
    publish_until_received(&server, &mut sub, "c", "1").await;
    publish_until_received(&server, &mut sub, "d", "2").await;
}

#[tokio::test]
async fn a_subscriber_gives_up_after_max_attempts_and_its_stream_ends() {
    let mut server = common::server();
    let mut sub = Client::builder(&server.url())
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(20))
        .reconnect_max_attempts(Some(2))
        .connect()
        .await
        .unwrap()
        .subscriber()
        .await
        .unwrap();
    sub.subscribe("c").await.unwrap();
    server.stop();
    let err = tokio::time::timeout(GENEROUS, sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.is_connection(), "{err}");
    let end = tokio::time::timeout(GENEROUS, sub.next())
        .await
        .expect("the stream ends once reconnecting gave up");
    assert!(end.is_none());
    assert!(!sub.is_connected());
    // By hand, it still comes back once the server does.
    server.restart().unwrap();
    sub.reconnect().await.unwrap();
    publish_until_received(&server, &mut sub, "c", "back").await;
}
