//! The subscriber against real servers: delivery, overflow policies, unsubscribing,
//! reconnection, and the connection's lifetime, in RESP2 and RESP3.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis_lanes::{Client, ErrorKind, Message, MessageKind, OverflowPolicy, Protocol, Subscriber};
use redis_lanes_testkit::RedisServer;

const PROTOCOLS: [Protocol; 2] = [Protocol::Resp2, Protocol::Resp3];

async fn client_with(
    server: &RedisServer,
    protocol: Protocol,
    buffer: usize,
    overflow: OverflowPolicy,
) -> Client {
    // These tests drive reconnection by hand, with `reconnect()`; automatic
    // reconnection has its own tests in `pubsub_reconnect.rs`.
    Client::builder(&server.url())
        .protocol(protocol)
        .subscriber_buffer(buffer)
        .subscriber_overflow(overflow)
        .reconnect(false)
        .connect()
        .await
        .expect("connect")
}

async fn subscriber(server: &RedisServer, protocol: Protocol) -> Subscriber {
    client_with(server, protocol, 4096, OverflowPolicy::default())
        .await
        .subscriber()
        .await
        .expect("subscriber")
}

/// The next item, which must be a message and arrive within a few seconds.
async fn next_message(sub: &mut Subscriber) -> Message {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a message in time")
        .expect("the stream is open")
        .expect("a message, not an error")
}

/// Nothing arrives for a while.
async fn quiet(sub: &mut Subscriber) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
        panic!("expected nothing, got {item:?}");
    }
}

/// `PUBLISH` (or `SPUBLISH`) from another connection; returns the receiver count.
async fn publish(side: &mut MultiplexedConnection, cmd: &str, channel: &str, payload: &str) -> i64 {
    redis::cmd(cmd)
        .arg(channel)
        .arg(payload)
        .query_async(side)
        .await
        .expect("publish")
}

fn payloads(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.payload_str().expect("utf-8").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_arrive_complete_and_in_order() {
    const TOTAL: usize = 10_000;
    let server = common::server();
    for protocol in PROTOCOLS {
        // Large enough that nothing may be dropped: this test is about delivery.
        let client = client_with(&server, protocol, 16_384, OverflowPolicy::DropNewest).await;
        let mut sub = client.subscriber().await.unwrap();
        sub.subscribe(&["ch0", "ch1", "ch2", "ch3"]).await.unwrap();
        sub.psubscribe("pat.*").await.unwrap();

        let consumer = tokio::spawn(async move {
            let mut got = Vec::with_capacity(TOTAL);
            while got.len() < TOTAL {
                got.push(next_message(&mut sub).await);
            }
            quiet(&mut sub).await;
            (got, sub)
        });

        // Every fifth message goes to a pattern channel; the others rotate over ch0..ch3.
        let channel = |i: usize| match i % 5 {
            4 => format!("pat.{}", i % 3),
            n => format!("ch{n}"),
        };
        let mut side = common::side(&server).await;
        for chunk in (0..TOTAL).collect::<Vec<_>>().chunks(500) {
            let mut pipe = redis::pipe();
            for &i in chunk {
                pipe.cmd("PUBLISH").arg(channel(i)).arg(i);
            }
            let receivers: Vec<i64> = pipe.query_async(&mut side).await.unwrap();
            assert!(receivers.iter().all(|&n| n == 1), "{protocol:?}");
        }

        let (got, sub) = tokio::time::timeout(Duration::from_secs(60), consumer)
            .await
            .expect("all messages in time")
            .unwrap();
        assert_eq!(sub.dropped(), 0, "{protocol:?}");
        assert_eq!(sub.received(), TOTAL as u64, "{protocol:?}");
        let mut per_channel: HashMap<String, Vec<usize>> = HashMap::new();
        for m in &got {
            let i: usize = m.payload_str().unwrap().parse().unwrap();
            let name = m.channel_str().unwrap().to_owned();
            assert_eq!(name, channel(i), "{protocol:?}");
            if name.starts_with("pat.") {
                assert_eq!(m.kind(), MessageKind::Pattern);
                assert_eq!(m.pattern(), Some(&b"pat.*"[..]));
            } else {
                assert_eq!(m.kind(), MessageKind::Channel);
                assert_eq!(m.pattern(), None);
            }
            per_channel.entry(name).or_default().push(i);
        }
        let mut seen = 0;
        for (name, sequence) in &per_channel {
            let expected: Vec<usize> = (0..TOTAL).filter(|&i| &channel(i) == name).collect();
            assert_eq!(
                sequence, &expected,
                "{protocol:?} {name}: complete and in order"
            );
            seen += sequence.len();
        }
        assert_eq!(seen, TOTAL);
    }
}

/// A subscriber to `c` with a buffer of 10, and 50 messages published to `c` while
/// nobody reads. Returns how many receivers each `PUBLISH` reached, and the
/// subscriber's `CLIENT ID` from before.
async fn overflowing(
    protocol: Protocol,
    overflow: OverflowPolicy,
) -> (RedisServer, Subscriber, Vec<i64>, i64) {
    let server = common::server();
    let client = client_with(&server, protocol, 10, overflow).await;
    let sub = client.subscriber().await.unwrap();
    sub.subscribe("c").await.unwrap();
    let id = sub.client_id().expect("CLIENT ID");
    let mut side = common::side(&server).await;
    let mut receivers = Vec::new();
    for i in 0..50 {
        receivers.push(publish(&mut side, "PUBLISH", "c", &i.to_string()).await);
    }
    (server, sub, receivers, id)
}

#[tokio::test]
async fn drop_newest_keeps_the_oldest_and_counts_the_rest() {
    for protocol in PROTOCOLS {
        let (server, mut sub, receivers, _) =
            overflowing(protocol, OverflowPolicy::DropNewest).await;
        assert!(receivers.iter().all(|&n| n == 1));
        // The connection never stalled: commands still flow while the buffer is full.
        sub.ping().await.unwrap();
        assert_eq!(sub.received(), 50);
        assert_eq!(sub.dropped(), 40);
        assert_eq!(sub.backlog(), 10);
        let mut got = Vec::new();
        for _ in 0..10 {
            got.push(next_message(&mut sub).await);
        }
        let expected: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        assert_eq!(payloads(&got), expected, "{protocol:?}");
        quiet(&mut sub).await;
        // With room again, new messages arrive.
        let mut side = common::side(&server).await;
        publish(&mut side, "PUBLISH", "c", "later").await;
        assert_eq!(next_message(&mut sub).await.payload(), b"later");
        assert_eq!(sub.dropped(), 40);
    }
}

#[tokio::test]
async fn drops_are_counted_in_the_clients_stats() {
    let server = common::server();
    let client = client_with(&server, Protocol::Resp2, 10, OverflowPolicy::DropNewest).await;
    let sub = client.subscriber().await.unwrap();
    sub.subscribe("c").await.unwrap();
    let mut side = common::side(&server).await;
    for i in 0..50 {
        publish(&mut side, "PUBLISH", "c", &i.to_string()).await;
    }
    // The PING's answer comes after every message published before it.
    sub.ping().await.unwrap();
    let stats = client.stats();
    assert_eq!(stats.subscriber_messages, 50, "{stats:?}");
    assert_eq!(stats.subscriber_dropped, 40, "{stats:?}");
}

#[tokio::test]
async fn drop_oldest_keeps_the_newest() {
    for protocol in PROTOCOLS {
        let (_server, mut sub, receivers, _) =
            overflowing(protocol, OverflowPolicy::DropOldest).await;
        assert!(receivers.iter().all(|&n| n == 1));
        sub.ping().await.unwrap();
        assert_eq!(sub.dropped(), 40);
        let mut got = Vec::new();
        for _ in 0..10 {
            got.push(next_message(&mut sub).await);
        }
        let expected: Vec<String> = (40..50).map(|i| i.to_string()).collect();
        assert_eq!(payloads(&got), expected, "{protocol:?}");
        quiet(&mut sub).await;
    }
}

#[tokio::test]
async fn disconnect_ends_the_stream_with_an_overflow_error() {
    for protocol in PROTOCOLS {
        let (server, mut sub, receivers, id) =
            overflowing(protocol, OverflowPolicy::Disconnect).await;
        // Delivered to the subscriber until it disconnected, then to nobody.
        assert!(receivers[..11].iter().all(|&n| n == 1), "{receivers:?}");
        // The connection closed on the 11th message; a ping fails one way or another.
        let err = sub.ping().await.unwrap_err();
        assert!(err.is_connection(), "{err}");
        assert!(!sub.is_connected());
        assert!(sub.dropped() >= 1);

        let mut got = Vec::new();
        for _ in 0..10 {
            got.push(next_message(&mut sub).await);
        }
        let expected: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        assert_eq!(payloads(&got), expected, "{protocol:?}");
        let err = sub.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Overflow, "{err}");
        assert!(sub.next().await.is_none(), "the stream ends");

        let mut side = common::side(&server).await;
        assert!(
            common::eventually(Duration::from_secs(5), || {
                let mut side = side.clone();
                async move { !common::client_ids(&mut side).await.contains(&id) }
            })
            .await,
            "the overflowing connection is closed on the server"
        );

        // reconnect() resumes, subscriptions included.
        sub.reconnect().await.unwrap();
        assert_eq!(publish(&mut side, "PUBLISH", "c", "again").await, 1);
        assert_eq!(next_message(&mut sub).await.payload(), b"again");
    }
}

#[tokio::test]
async fn unsubscribing_stops_delivery() {
    let server = common::server();
    let mut side = common::side(&server).await;
    for protocol in PROTOCOLS {
        let mut sub = subscriber(&server, protocol).await;
        sub.subscribe(&["a", "b"]).await.unwrap();
        sub.psubscribe(vec!["p.*".to_owned(), "q.*".to_owned()])
            .await
            .unwrap();

        sub.unsubscribe("a").await.unwrap();
        assert_eq!(publish(&mut side, "PUBLISH", "a", "x").await, 0);
        assert_eq!(publish(&mut side, "PUBLISH", "b", "1").await, 1);
        sub.punsubscribe("p.*").await.unwrap();
        assert_eq!(publish(&mut side, "PUBLISH", "p.1", "x").await, 0);
        assert_eq!(publish(&mut side, "PUBLISH", "q.1", "2").await, 1);
        // Only what is still subscribed arrives, in order.
        assert_eq!(next_message(&mut sub).await.channel(), b"b");
        let q = next_message(&mut sub).await;
        assert_eq!((q.channel(), q.pattern()), (&b"q.1"[..], Some(&b"q.*"[..])));
        quiet(&mut sub).await;

        // An empty list changes nothing; the `_all` forms drop one kind each.
        sub.unsubscribe(&[] as &[&str]).await.unwrap();
        assert_eq!(publish(&mut side, "PUBLISH", "b", "3").await, 1);
        assert_eq!(next_message(&mut sub).await.payload(), b"3");
        sub.unsubscribe_all().await.unwrap();
        assert_eq!(publish(&mut side, "PUBLISH", "b", "x").await, 0);
        assert_eq!(publish(&mut side, "PUBLISH", "q.2", "4").await, 1);
        assert_eq!(next_message(&mut sub).await.payload(), b"4");
        sub.punsubscribe_all().await.unwrap();
        assert_eq!(publish(&mut side, "PUBLISH", "q.2", "x").await, 0);
        // With nothing left, the server names no channel; that completes too.
        sub.unsubscribe_all().await.unwrap();
        sub.punsubscribe_all().await.unwrap();
        quiet(&mut sub).await;
        assert_eq!(sub.dropped(), 0);
    }
}

#[tokio::test]
async fn unsubscribe_all_waits_for_every_channel_with_patterns_left() {
    // The server's count includes patterns, so it never reaches 0 here; completion must
    // still come once every channel is confirmed gone.
    let server = common::server();
    let mut side = common::side(&server).await;
    for protocol in PROTOCOLS {
        let sub = subscriber(&server, protocol).await;
        sub.subscribe(&["a", "b", "c"]).await.unwrap();
        sub.psubscribe("p.*").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), sub.unsubscribe_all())
            .await
            .expect("completes")
            .unwrap();
        for channel in ["a", "b", "c"] {
            assert_eq!(publish(&mut side, "PUBLISH", channel, "x").await, 0);
        }
        assert_eq!(publish(&mut side, "PUBLISH", "p.1", "x").await, 1);
        sub.ping().await.unwrap();
    }
}

#[tokio::test]
async fn sharded_channels_work_on_a_standalone_server() {
    let server = common::server();
    let mut side = common::side(&server).await;
    for protocol in PROTOCOLS {
        let mut sub = subscriber(&server, protocol).await;
        sub.ssubscribe(&["s1", "s2"]).await.unwrap();
        assert_eq!(publish(&mut side, "SPUBLISH", "s1", "hello").await, 1);
        let m = next_message(&mut sub).await;
        assert_eq!(m.kind(), MessageKind::Shard);
        assert_eq!((m.channel(), m.payload()), (&b"s1"[..], &b"hello"[..]));
        sub.sunsubscribe("s1").await.unwrap();
        assert_eq!(publish(&mut side, "SPUBLISH", "s1", "x").await, 0);
        assert_eq!(publish(&mut side, "SPUBLISH", "s2", "y").await, 1);
        assert_eq!(next_message(&mut sub).await.channel(), b"s2");
        sub.sunsubscribe_all().await.unwrap();
        assert_eq!(publish(&mut side, "SPUBLISH", "s2", "x").await, 0);
        quiet(&mut sub).await;
    }
}

#[tokio::test]
async fn dropping_the_subscriber_closes_its_connection() {
    let server = common::server();
    let mut side = common::side(&server).await;
    for protocol in PROTOCOLS {
        let client = Client::builder(&server.url())
            .protocol(protocol)
            .client_name("listener")
            .connect()
            .await
            .unwrap();
        let sub = client.subscriber().await.unwrap();
        sub.subscribe("c").await.unwrap();
        let id = sub.client_id().expect("CLIENT ID");
        assert_ne!(Some(id), client.client_id(), "its own connection");
        let info: String = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("ID")
            .arg(id)
            .query_async(&mut side)
            .await
            .unwrap();
        assert!(
            info.contains("name=listener"),
            "the client's settings: {info}"
        );
        assert!(format!("{sub:?}").contains(&id.to_string()));

        drop(sub);
        assert!(
            common::eventually(Duration::from_secs(5), || {
                let mut side = side.clone();
                async move { !common::client_ids(&mut side).await.contains(&id) }
            })
            .await,
            "{protocol:?}: the connection is gone from CLIENT LIST"
        );
        assert_eq!(publish(&mut side, "PUBLISH", "c", "x").await, 0);
        // The client itself is unaffected.
        assert!(!client.is_closed());
    }
}

async fn kill(side: &mut MultiplexedConnection, id: i64) {
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(side)
        .await
        .unwrap();
    assert_eq!(killed, 1);
}

#[tokio::test]
async fn reconnect_restores_every_subscription_after_a_kill() {
    let server = common::server();
    let mut side = common::side(&server).await;
    for protocol in PROTOCOLS {
        let mut sub = subscriber(&server, protocol).await;
        sub.subscribe(&["c1", "c2"]).await.unwrap();
        sub.psubscribe("p.*").await.unwrap();
        sub.ssubscribe("s1").await.unwrap();
        let old = sub.client_id().unwrap();
        kill(&mut side, old).await;

        // The stream reports the loss once, then ends.
        let err = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("the loss is reported")
            .expect("as an item")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
        assert!(sub.next().await.is_none());
        assert!(!sub.is_connected());
        assert_eq!(sub.client_id(), None);
        let err = sub.subscribe("x").await.unwrap_err();
        assert!(err.is_connection() && err.is_retry_safe(), "{err}");

        sub.reconnect().await.unwrap();
        assert!(sub.is_connected());
        let new = sub.client_id().unwrap();
        assert_ne!(new, old);
        assert_eq!(publish(&mut side, "PUBLISH", "c1", "1").await, 1);
        assert_eq!(publish(&mut side, "PUBLISH", "c2", "2").await, 1);
        assert_eq!(publish(&mut side, "PUBLISH", "p.z", "3").await, 1);
        assert_eq!(publish(&mut side, "SPUBLISH", "s1", "4").await, 1);
        assert_eq!(
            publish(&mut side, "PUBLISH", "x", "-").await,
            0,
            "never confirmed"
        );
        let got: Vec<Message> = vec![
            next_message(&mut sub).await,
            next_message(&mut sub).await,
            next_message(&mut sub).await,
            next_message(&mut sub).await,
        ];
        assert_eq!(payloads(&got), ["1", "2", "3", "4"], "{protocol:?}");
        assert_eq!(got[2].pattern(), Some(&b"p.*"[..]));
        assert_eq!(got[3].kind(), MessageKind::Shard);
        quiet(&mut sub).await;

        // Again, through a second loss.
        kill(&mut side, new).await;
        assert!(sub.next().await.unwrap().is_err());
        assert!(sub.next().await.is_none());
        sub.reconnect().await.unwrap();
        assert_eq!(publish(&mut side, "PUBLISH", "c2", "5").await, 1);
        assert_eq!(next_message(&mut sub).await.payload(), b"5");
    }
}

#[tokio::test]
async fn reconnect_survives_a_server_restart() {
    let mut server = common::server();
    let mut sub = subscriber(&server, Protocol::Resp3).await;
    sub.subscribe("c").await.unwrap();
    sub.psubscribe("p.*").await.unwrap();
    server.restart().unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.is_connection(), "{err}");
    sub.reconnect().await.unwrap();
    let mut side = common::side(&server).await;
    assert_eq!(publish(&mut side, "PUBLISH", "c", "1").await, 1);
    assert_eq!(publish(&mut side, "PUBLISH", "p.1", "2").await, 1);
    assert_eq!(next_message(&mut sub).await.payload(), b"1");
    assert_eq!(next_message(&mut sub).await.payload(), b"2");
}

#[tokio::test]
async fn reconnect_on_a_live_connection_replaces_it_without_duplicates() {
    let server = common::server();
    let mut side = common::side(&server).await;
    for protocol in PROTOCOLS {
        let mut sub = subscriber(&server, protocol).await;
        sub.subscribe("c").await.unwrap();
        let old = sub.client_id().unwrap();
        sub.reconnect().await.unwrap();
        let new = sub.client_id().unwrap();
        assert_ne!(old, new);
        assert!(
            common::eventually(Duration::from_secs(5), || {
                let mut side = side.clone();
                async move { !common::client_ids(&mut side).await.contains(&old) }
            })
            .await
        );
        assert_eq!(publish(&mut side, "PUBLISH", "c", "once").await, 1);
        assert_eq!(next_message(&mut sub).await.payload(), b"once");
        quiet(&mut sub).await;
    }
}

#[tokio::test]
async fn ping_works_subscribed_or_not_and_payloads_are_binary() {
    let server = common::server();
    let mut side = common::side(&server).await;
    for protocol in PROTOCOLS {
        let mut sub = subscriber(&server, protocol).await;
        sub.ping().await.unwrap();
        let channel: &[u8] = b"bin\xff\x00";
        sub.subscribe(channel).await.unwrap();
        sub.ping().await.unwrap();
        let payload: &[u8] = b"\x00\x01\xfe";
        let n: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut side)
            .await
            .unwrap();
        assert_eq!(n, 1);
        let m = next_message(&mut sub).await;
        assert_eq!((m.channel(), m.payload()), (channel, payload));
        assert_eq!((m.channel_str(), m.payload_str()), (None, None));
        sub.unsubscribe_all().await.unwrap();
        sub.ping().await.unwrap();
    }
}

#[tokio::test]
async fn the_clients_own_connection_can_publish() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut sub = client.subscriber().await.unwrap();
    sub.subscribe("news").await.unwrap();
    let mut publisher = client.clone();
    let n: i64 = redis::cmd("PUBLISH")
        .arg("news")
        .arg("hi")
        .query_async(&mut publisher)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(next_message(&mut sub).await.payload_str(), Some("hi"));
}

#[tokio::test]
async fn server_refusals_are_errors_and_restoring_is_all_or_nothing() {
    let server = common::server();
    let mut side = common::side(&server).await;
    let acl = |rules: &[&str]| {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg("limited").arg(rules);
        cmd
    };
    let _: () = acl(&["on", ">pw", "~*", "+@all", "resetchannels", "&ok.*"])
        .query_async(&mut side)
        .await
        .unwrap();
    let url = format!("redis://limited:pw@127.0.0.1:{}", server.port());
    for protocol in PROTOCOLS {
        let client = Client::builder(&url)
            .protocol(protocol)
            .connect()
            .await
            .unwrap();
        let mut sub = client.subscriber().await.unwrap();
        let err = sub.subscribe(&["ok.1", "secret"]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Server, "{err}");
        let source = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<redis::ServerError>())
            .expect("the server's error is the source");
        assert_eq!(source.code(), "NOPERM");
        // Nothing was subscribed, and the connection is fine.
        assert_eq!(publish(&mut side, "PUBLISH", "ok.1", "x").await, 0);
        sub.subscribe("ok.1").await.unwrap();
        assert_eq!(publish(&mut side, "PUBLISH", "ok.1", "1").await, 1);
        assert_eq!(next_message(&mut sub).await.payload(), b"1");

        // Taking the permission away disconnects the subscriber (Redis 7) ...
        let _: () = acl(&["resetchannels", "&other.*"])
            .query_async(&mut side)
            .await
            .unwrap();
        let err = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(err.is_connection(), "{err}");
        // ... and restoring is refused, leaving it disconnected with its subscriptions.
        let err = sub.reconnect().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Server, "{err}");
        assert!(!sub.is_connected());
        assert!(sub.next().await.is_none());

        let _: () = acl(&["resetchannels", "&ok.*"])
            .query_async(&mut side)
            .await
            .unwrap();
        sub.reconnect().await.unwrap();
        assert_eq!(publish(&mut side, "PUBLISH", "ok.1", "2").await, 1);
        assert_eq!(next_message(&mut sub).await.payload(), b"2");
    }
}

#[tokio::test]
async fn bad_options_and_closed_clients_are_refused() {
    let server = common::server();
    let client = client_with(&server, Protocol::Resp2, 0, OverflowPolicy::DropNewest).await;
    let err = client.subscriber().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");

    let client = common::client(&server).await;
    client.close().await;
    let err = client.subscriber().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
}

#[tokio::test]
async fn a_response_timeout_leaves_the_connection_in_step() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .response_timeout(Some(Duration::from_millis(200)))
        .connect()
        .await
        .unwrap();
    let mut sub = client.subscriber().await.unwrap();
    let mut side = common::side(&server).await;
    // Connected first: while the server sleeps, a new connection's handshake waits too.
    let watcher = common::side(&server).await;
    // Holds the server busy; sent from a client without a response timeout.
    let sleeper = common::client(&server).await;
    let sleep = tokio::spawn(async move {
        sleeper
            .send(redis::cmd("DEBUG").arg("SLEEP").arg(1))
            .await
            .unwrap();
    });
    assert!(common::until_server_busy(&watcher).await);
    let err = sub.subscribe("c").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    sleep.await.unwrap();
    // The late confirmation went to the abandoned command, not to this ping.
    sub.ping().await.unwrap();
    assert_eq!(publish(&mut side, "PUBLISH", "c", "1").await, 1);
    assert_eq!(next_message(&mut sub).await.payload(), b"1");
}
