//! Faults a real server produces, under mixed load (shared, blocking and exclusive
//! work): every call returns within its deadline, no reply reaches the wrong caller, no
//! write runs twice, and the client works again afterwards.

mod common;

use std::time::{Duration, Instant};

use common::load::{self, Load};
use redis::AsyncCommands;
use redis_lanes::{Client, ErrorKind};
use redis_lanes_testkit::RedisServer;

const GENEROUS: Duration = Duration::from_secs(10);

/// A server whose acknowledged writes survive `kill -9`, so counters can be checked
/// across a restart.
fn durable_server() -> RedisServer {
    common::server_with(&["--appendonly", "yes", "--appendfsync", "always"])
}

async fn ping_until_ok(client: &Client) -> Duration {
    let started = Instant::now();
    let ok = common::eventually(GENEROUS, || {
        let mut conn = client.clone();
        async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .is_ok()
        }
    })
    .await;
    assert!(ok, "the client did not work again: {:?}", client.stats());
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_mixed_load_then_restart() {
    let mut server = durable_server();
    let url = server.url();
    let client = load::client(&url).await;
    let running = Load::start(&client, 4, 4, 4, 2);
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    server.stop(); // SIGKILL
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart().unwrap();
    let back = ping_until_ok(&client).await;
    // The backoff is capped at 500 ms; add connect time and scheduling, generously.
    assert!(back < Duration::from_secs(3), "took {back:?} to come back");
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let tally = running.finish().await;
    eprintln!("{tally:?}");
    load::check(&url, &tally).await;
    assert!(
        tally.errors.values().sum::<u64>() > 0,
        "the kill went unnoticed: {tally:?}"
    );
    assert!(tally.ok > 100, "{tally:?}");
    let stats = client.stats();
    assert!(stats.reconnects >= 1, "{stats:?}");
    // Every kind of lane works again.
    let mut conn = client.clone();
    conn.rpush::<_, _, ()>("after", 1).await.unwrap();
    let popped: Option<(String, i64)> = conn.blpop("after", 1.0).await.unwrap();
    assert_eq!(popped, Some(("after".to_owned(), 1)));
    let mut ex = client.exclusive().await.unwrap();
    let n: i64 = ex.incr("after-ex", 1).await.unwrap();
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_type_normal_under_mixed_load() {
    let server = common::server();
    let url = server.url();
    let client = load::client(&url).await;
    let running = Load::start(&client, 4, 4, 4, 2);
    let mut side = common::side(&server).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        // Every normal connection but the side one: shared, blocking and exclusive lanes.
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .query_async(&mut side)
            .await
            .unwrap();
        assert!(killed >= 1);
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let tally = running.finish().await;
    load::check(&url, &tally).await;
    assert!(tally.ok > 100, "{tally:?}");
    ping_until_ok(&client).await;
    assert!(client.stats().reconnects >= 3, "{:?}", client.stats());
}

#[tokio::test]
async fn client_pause_delays_commands_without_losing_or_mixing_them() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut side = common::side(&server).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(500)
        .arg("ALL")
        .query_async(&mut side)
        .await
        .unwrap();
    let started = Instant::now();
    let mut calls = Vec::new();
    for i in 0..50 {
        let mut conn = client.clone();
        calls.push(tokio::spawn(async move {
            conn.set::<_, _, ()>(format!("k{i}"), i).await?;
            conn.get::<_, i64>(format!("k{i}")).await
        }));
    }
    for (i, call) in calls.into_iter().enumerate() {
        let value = tokio::time::timeout(GENEROUS, call)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(value, i as i64);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the pause held them"
    );
    let stats = client.stats();
    assert_eq!(
        (stats.connection_errors, stats.reconnects),
        (0, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn debug_sleep_trips_the_response_timeout_and_the_lane_stays_in_step() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .response_timeout(Some(Duration::from_millis(200)))
        .connect()
        .await
        .unwrap();
    let mut conn = client.clone();
    conn.set::<_, _, ()>("k", "v").await.unwrap();
    // Connected first: while the server sleeps, a new connection's handshake waits too.
    let watcher = common::side(&server).await;
    // A side connection without a response timeout of its own.
    let mut side = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_response_timeout(None),
        )
        .await
        .unwrap();
    let sleeper = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(1)
            .query_async::<()>(&mut side)
            .await
    });
    assert!(common::until_server_busy(&watcher).await);
    let err = conn.get::<_, String>("k").await.unwrap_err();
    let err = common::lanes_error(&err);
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_outcome_unknown(), "{err:?}");
    sleeper.await.unwrap().unwrap();
    // The late reply was read and discarded: every later caller gets its own.
    let mut calls = Vec::new();
    for i in 0..20 {
        let mut conn = client.clone();
        calls.push(tokio::spawn(async move {
            redis::cmd("ECHO")
                .arg(i)
                .query_async::<i64>(&mut conn)
                .await
        }));
    }
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), i as i64);
    }
    let stats = client.stats();
    assert_eq!(stats.timeouts, 1, "{stats:?}");
    assert_eq!(stats.reconnects, 0, "a timeout does not reset the lane");
}

async fn set_maxclients(conn: &mut redis::aio::MultiplexedConnection, n: u32) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(n)
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn maxclients_reached_is_a_clear_connect_error_and_not_fatal() {
    let server = common::server_with(&["--maxclients", "2"]);
    // Fail fast: otherwise the blocking call would wait (retrying) for a free slot.
    let client = Client::builder(&server.url())
        .fail_fast()
        .connect()
        .await
        .unwrap(); // connection 1
    let mut side = common::side(&server).await; // connection 2
                                                // A blocking call needs a third connection.
    let mut conn = client.clone();
    let err = conn
        .blpop::<_, Option<(String, String)>>("q", 0.1)
        .await
        .unwrap_err();
    let err = common::lanes_error(&err);
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(err.to_string().contains("max number of clients"), "{err}");
    assert!(err.is_retry_safe(), "{err:?}");
    // The shared lane is unaffected.
    conn.set::<_, _, ()>("k", 1).await.unwrap();
    // With room again, the blocking call works.
    set_maxclients(&mut side, 10).await;
    let popped: Option<(String, String)> = conn.blpop("q", 0.1).await.unwrap();
    assert_eq!(popped, None);

    // A reconnect refused for maxclients keeps trying (it is not a final refusal).
    set_maxclients(&mut side, 2).await;
    // The idle blocking lane and the side connection fill both slots, so the shared
    // lane's reconnect is refused until there is room.
    let id = client.client_id().unwrap();
    let killed = common::kill_client(&mut side, id).await;
    assert_eq!(killed, 1);
    let noticed = common::eventually(Duration::from_secs(10), || {
        let connected = client.stats().connected;
        async move { !connected }
    })
    .await;
    assert!(noticed, "the kill went unnoticed");
    assert!(!client.is_closed(), "maxclients must not end the client");
    set_maxclients(&mut side, 10).await;
    ping_until_ok(&client).await;
}
