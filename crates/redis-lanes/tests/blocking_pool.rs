//! The blocking-lane pool: bounded, FIFO, idle lanes closed, and every lane tied to the
//! client's lifetime.

mod common;

use std::time::Duration;

use redis::AsyncCommands;
use redis_lanes::{Client, ErrorKind};

async fn count_named(side: &mut redis::aio::MultiplexedConnection, name: &str) -> usize {
    common::named(side, name).await.len()
}

async fn wait_busy(client: &Client, n: u64) {
    let ok = common::eventually(Duration::from_secs(10), || {
        let client = client.clone();
        async move { client.stats().blocking_busy == n }
    })
    .await;
    assert!(ok, "{:?}", client.stats());
}

#[tokio::test]
async fn exhaustion_gives_the_acquire_timeout_error_naming_the_limit() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .max_blocking_lanes(2)
        .blocking_acquire_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let mut held = Vec::new();
    for i in 0..2 {
        let mut c = client.clone();
        held.push(tokio::spawn(async move {
            c.blpop::<_, Option<(String, String)>>(format!("held:{i}"), 0.0)
                .await
        }));
    }
    wait_busy(&client, 2).await;
    let mut conn = client.clone();
    let err = conn
        .blpop::<_, Option<(String, String)>>("third", 0.0)
        .await
        .unwrap_err();
    let err = common::lanes_error(&err);
    assert_eq!(err.kind(), ErrorKind::PoolTimeout);
    assert!(err.to_string().contains("max_blocking_lanes"), "{err}");
    assert!(err.is_retry_safe());
    // A waiter that gives up is no longer counted.
    let mut impatient = client.clone();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        impatient.blpop::<_, Option<(String, String)>>("fourth", 0.0),
    )
    .await;
    assert!(gave_up.is_err());
    assert_eq!(client.stats().blocking_waiters, 0);
    // Ordinary commands are unaffected.
    let _: () = conn.set("fine", 1).await.unwrap();
    for h in &held {
        h.abort();
    }
}

#[tokio::test]
async fn waiters_are_served_in_order_when_lanes_free_up() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .max_blocking_lanes(1)
        .connect()
        .await
        .unwrap();
    let mut first = client.clone();
    let holder = tokio::spawn(async move {
        first
            .blpop::<_, Option<(String, String)>>("fifo:hold", 0.0)
            .await
    });
    wait_busy(&client, 1).await;
    let (tx, mut order) = tokio::sync::mpsc::unbounded_channel();
    let mut waiters = Vec::new();
    for i in 0..3 {
        let mut c = client.clone();
        let tx = tx.clone();
        waiters.push(tokio::spawn(async move {
            let r = c
                .blpop::<_, Option<(String, String)>>("fifo:empty", 0.05)
                .await;
            let _ = tx.send(i);
            r
        }));
        // Each waiter starts waiting before the next.
        let queued = common::eventually(Duration::from_secs(5), || {
            let client = client.clone();
            async move { client.stats().blocking_waiters == i + 1 }
        })
        .await;
        assert!(queued, "{:?}", client.stats());
    }
    let mut side = common::side(&server).await;
    let _: () = side.rpush("fifo:hold", "go").await.unwrap();
    holder.await.unwrap().unwrap();
    for w in waiters {
        w.await.unwrap().unwrap();
    }
    let got: Vec<u64> = (0..3).filter_map(|_| order.try_recv().ok()).collect();
    assert_eq!(got, vec![0, 1, 2]);
}

#[tokio::test]
async fn idle_lanes_close_after_the_idle_timeout() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .client_name("idle-test")
        .blocking_idle_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let mut conn = client.clone();
    let _: Option<(String, String)> = conn.blpop("idle:q", 0.05).await.unwrap();
    let mut side = common::side(&server).await;
    assert_eq!(count_named(&mut side, "idle-test").await, 2);
    let closed = common::eventually(Duration::from_secs(10), || {
        let mut side = side.clone();
        async move { count_named(&mut side, "idle-test").await == 1 }
    })
    .await;
    assert!(closed, "the idle blocking lane stayed open");
    assert_eq!(client.stats().blocking_idle, 0);
    // A new blocking call opens a fresh lane.
    let _: Option<(String, String)> = conn.blpop("idle:q", 0.05).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_client_with_blocking_calls_in_flight_closes_every_lane() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .client_name("drop-test")
        .connect()
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut c = client.clone();
        tasks.push(tokio::spawn(async move {
            c.blpop::<_, Option<(String, String)>>(format!("drop:{i}"), 0.0)
                .await
        }));
    }
    wait_busy(&client, 8).await;
    let mut side = common::side(&server).await;
    assert_eq!(count_named(&mut side, "drop-test").await, 9);
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    drop(client);
    let gone = common::eventually(Duration::from_secs(10), || {
        let mut side = side.clone();
        async move { count_named(&mut side, "drop-test").await == 0 }
    })
    .await;
    assert!(gone, "connections left after the last handle was dropped");
}

#[tokio::test]
async fn close_cancels_blocking_calls_with_closed() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .client_name("close-test")
        .connect()
        .await
        .unwrap();
    let mut c = client.clone();
    let call =
        tokio::spawn(async move { c.blpop::<_, Option<(String, String)>>("close:q", 0.0).await });
    wait_busy(&client, 1).await;
    tokio::time::timeout(Duration::from_secs(10), client.close())
        .await
        .expect("close does not wait out a blocking call");
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(common::lanes_error(&err).kind(), ErrorKind::Closed);
    let side = common::side(&server).await;
    let gone = common::eventually(Duration::from_secs(10), || {
        let mut side = side.clone();
        async move { count_named(&mut side, "close-test").await == 0 }
    })
    .await;
    assert!(gone);
    let stats = client.stats();
    assert_eq!(stats.blocking_cancels, 1);
    // Cancelled through the contract (CLIENT UNBLOCK), not by closing the socket.
    assert_eq!(stats.unblock_fallbacks, 0, "{stats:?}");
    assert_eq!(stats.orphans_unrecoverable, 0, "{stats:?}");
}

#[tokio::test]
async fn without_client_unblock_permission_the_lane_is_closed_instead() {
    let server = common::server();
    let admin = common::client(&server).await;
    let _: redis::Value = admin
        .send(
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg("worker")
                .arg("on")
                .arg(">pw")
                .arg("~*")
                .arg("&*")
                .arg("+@all")
                .arg("-@admin"),
        )
        .await
        .unwrap();
    let client = Client::builder(&format!("redis://worker:pw@127.0.0.1:{}", server.port()))
        .client_name("no-admin")
        .connect()
        .await
        .unwrap();
    let mut conn = client.clone();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        conn.blpop::<_, Option<(String, String)>>("noadmin:q", 0.0),
    )
    .await;
    assert!(cancelled.is_err());
    let fell_back = common::eventually(Duration::from_secs(10), || {
        let client = client.clone();
        async move { client.stats().unblock_fallbacks == 1 }
    })
    .await;
    assert!(fell_back, "{:?}", client.stats());
    assert_eq!(client.stats().orphans_unrecoverable, 1);
    let side = common::side(&server).await;
    let closed = common::eventually(Duration::from_secs(10), || {
        let mut side = side.clone();
        async move { count_named(&mut side, "no-admin").await == 1 }
    })
    .await;
    assert!(closed, "the blocked lane was not closed");
    // The client still works, blocking calls included.
    let _: () = conn.rpush("noadmin:q", "x").await.unwrap();
    let got: Option<(String, String)> = conn.blpop("noadmin:q", 1.0).await.unwrap();
    assert_eq!(got, Some(("noadmin:q".into(), "x".into())));
}
