//! A server that goes silent without closing anything, through the test kit's proxy:
//! every call returns within its bound, the dead connection is found and replaced, and
//! legitimate long waits are left alone.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis_lanes::{Builder, Client, ErrorKind};
use redis_lanes_testkit::Proxy;
use tokio::time::Instant;

/// Health check every 300 ms, dead after 700 ms more of silence: found within 1.3 s.
const INTERVAL: Duration = Duration::from_millis(300);
const PROBE: Duration = Duration::from_millis(700);
/// The most a call may take behind a black hole: found dead (1.3 s), then waiting for a
/// connection while the proxy stays black (`disconnected_wait`, 1 s), with room for a
/// loaded machine.
const CALL_BOUND: Duration = Duration::from_secs(6);

fn builder(url: &str) -> Builder {
    Client::builder(url)
        .health_check(INTERVAL)
        .health_check_timeout(PROBE)
        .connect_timeout(Duration::from_millis(500))
        .disconnected_wait(Duration::from_secs(1))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(100))
}

/// Eight tasks doing SET/GET and INCR through a proxy that goes black for a while:
/// every call returns within its bound, the connection is declared dead within the
/// health check's limit, every task succeeds again once the proxy forwards, no reply
/// reaches the wrong task, and no INCR is applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_mid_load() {
    let server = common::server();
    let proxy = Proxy::start(server.addr()).expect("proxy");
    let client = builder(&proxy.url()).connect().await.expect("connect");
    let stop = Arc::new(AtomicBool::new(false));
    let resumed_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let successes = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for task in 0..8 {
        let mut conn = client.clone();
        let stop = Arc::clone(&stop);
        let resumed_at = Arc::clone(&resumed_at);
        let successes = Arc::clone(&successes);
        tasks.push(tokio::spawn(async move {
            let key = format!("silent:{task}");
            let counter = format!("silent:n:{task}");
            let (mut acked, mut unknown, mut slowest) = (0u64, 0u64, Duration::ZERO);
            let mut ok_after_resume = false;
            let mut n = 0u64;
            while !stop.load(SeqCst) && n < 200_000 {
                n += 1;
                let started = Instant::now();
                let value = format!("{task}-{n}");
                let set: Result<(), _> = conn.set(&key, &value).await;
                let get: Result<Option<String>, _> = conn.get(&key).await;
                let incr: Result<u64, _> = conn.incr(&counter, 1).await;
                slowest = slowest.max(started.elapsed());
                if let Ok(Some(seen)) = &get {
                    assert!(
                        seen.starts_with(&format!("{task}-")),
                        "task {task} read another task's value {seen:?}"
                    );
                    if set.is_ok() {
                        assert_eq!(seen, &value, "task {task} read a stale or wrong reply");
                    }
                }
                match incr {
                    Ok(_) => acked += 1,
                    Err(err) => {
                        let err = common::lanes_error(&err);
                        if !err.is_retry_safe() {
                            unknown += 1;
                        }
                    }
                }
                if set.is_ok() && get.is_ok() {
                    successes.fetch_add(1, SeqCst);
                    let resumed = *resumed_at.lock().unwrap();
                    if resumed.is_some_and(|at| started > at) {
                        ok_after_resume = true;
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            (counter, acked, unknown, slowest, ok_after_resume)
        }));
    }
    assert!(
        common::eventually(Duration::from_secs(10), || {
            let n = successes.load(SeqCst);
            async move { n > 200 }
        })
        .await,
        "no load before the black hole"
    );
    let before = client.stats();
    proxy.blackhole();
    let blacked = Instant::now();
    assert!(
        common::eventually(Duration::from_secs(10), || {
            let dead = client.stats().dead_connections;
            async move { dead > before.dead_connections }
        })
        .await,
        "the silent connection was never declared dead"
    );
    let detected = blacked.elapsed();
    assert!(
        detected <= 2 * INTERVAL + PROBE + Duration::from_secs(2),
        "declared dead after {detected:?}"
    );
    let noticed = client.stats().max_detect_time;
    assert!(
        noticed >= PROBE && noticed <= 2 * INTERVAL + PROBE + Duration::from_secs(2),
        "time to detect: {noticed:?}"
    );
    // Black for a while longer: callers keep getting errors, none hangs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.forward();
    *resumed_at.lock().unwrap() = Some(Instant::now());
    let resumed = successes.load(SeqCst);
    assert!(
        common::eventually(Duration::from_secs(10), || {
            let n = successes.load(SeqCst);
            async move { n > resumed + 200 }
        })
        .await,
        "the client did not recover once the proxy forwarded again"
    );
    stop.store(true, SeqCst);
    let mut side = common::side(&server).await;
    for (counter, acked, unknown, slowest, ok_after_resume) in common::join_all(tasks).await {
        assert!(
            ok_after_resume,
            "{counter}: no success after forwarding resumed"
        );
        assert!(slowest <= CALL_BOUND, "{counter}: a call took {slowest:?}");
        let applied: u64 = side.get(&counter).await.expect("GET");
        assert!(
            applied >= acked && applied <= acked + unknown,
            "{counter}: {applied} applied, {acked} acknowledged, {unknown} unknown: \
             an INCR was re-sent"
        );
    }
    assert!(client.stats().reconnects > before.reconnects);
    tokio::time::timeout(Duration::from_secs(15), client.close())
        .await
        .expect("close() returns");
}

/// `BLPOP k 0` on a blocking lane, then the path goes black (the shared lane's too):
/// nothing confirms the blocking lane is alive, so the caller gets an error in bounded
/// time instead of waiting forever.
#[tokio::test]
async fn a_blocking_call_behind_a_blackhole_fails_in_bounded_time() {
    let server = common::server();
    let proxy = Proxy::start(server.addr()).expect("proxy");
    let client = builder(&proxy.url()).connect().await.expect("connect");
    let side = common::side(&server).await;
    let mut conn = client.clone();
    let call = tokio::spawn(async move {
        let popped: Result<Option<(String, String)>, _> = conn.blpop("silent:list", 0.0).await;
        popped
    });
    assert!(common::until_blocked(&side, "blpop").await);
    proxy.blackhole();
    let blacked = Instant::now();
    let popped = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the blocking call returned")
        .expect("task");
    let err = common::lanes_error(&popped.expect_err("an error, not data"));
    assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
    assert!(!err.is_retry_safe(), "the BLPOP was sent: outcome unknown");
    assert!(blacked.elapsed() <= CALL_BOUND, "{:?}", blacked.elapsed());
    assert!(client.stats().blocking_dead_connections >= 1);
}

/// A subscriber behind a black hole reports the gap, then reconnects and resubscribes
/// once the proxy forwards again.
#[tokio::test]
async fn a_silent_subscriber_reports_the_gap_and_resubscribes() {
    let server = common::server();
    let proxy = Proxy::start(server.addr()).expect("proxy");
    let client = builder(&proxy.url()).connect().await.expect("connect");
    let mut sub = client.subscriber().await.expect("subscriber");
    sub.subscribe("silent:ch").await.expect("subscribe");
    proxy.blackhole();
    let gap = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("the gap is reported")
        .expect("the stream goes on");
    let err = gap.expect_err("a gap, not a message");
    assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
    assert_eq!(client.stats().subscriber_dead_connections, 1);
    proxy.forward();
    let mut side = common::side(&server).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _: i64 = side.publish("silent:ch", "back").await.expect("PUBLISH");
        match tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
            Ok(Some(Ok(message))) => {
                assert_eq!(message.payload(), b"back");
                break;
            }
            Ok(Some(Err(err))) => panic!("a second gap: {err}"),
            Ok(None) => panic!("the stream ended"),
            Err(_) => assert!(Instant::now() < deadline, "never resubscribed"),
        }
    }
}

/// The health check never cuts a legitimate wait: `BLPOP k 2` with checks every 300 ms
/// runs its two seconds and returns nothing, and no connection is declared dead.
#[tokio::test]
async fn long_legitimate_blocks_are_left_alone() {
    let server = common::server();
    let client = builder(&server.url()).connect().await.expect("connect");
    let mut conn = client.clone();
    let started = Instant::now();
    let popped: Option<(String, String)> = conn.blpop("silent:none", 2.0).await.expect("BLPOP");
    assert_eq!(popped, None);
    assert!(started.elapsed() >= Duration::from_secs(2));
    let stats = client.stats();
    assert!(
        stats.health_checks >= 3,
        "the blocking lane was never checked: {stats:?}"
    );
    assert_eq!(stats.dead_connections, 0, "{stats:?}");
    // And an idle shared lane is probed without being declared dead.
    tokio::time::sleep(4 * INTERVAL).await;
    assert_eq!(client.stats().dead_connections, 0);
}

/// Pauses every client of the server for `ms` milliseconds.
async fn pause(side: &mut redis::aio::MultiplexedConnection, ms: u64) {
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(ms)
        .arg("ALL")
        .query_async(side)
        .await
        .expect("CLIENT PAUSE");
}

/// With the server paused, callers past `max_in_flight` (or `max_in_flight_bytes`) wait
/// no longer than `max_in_flight_wait` and fail with `Backpressure`, unsent; the
/// requests already queued complete once the pause ends.
#[tokio::test]
async fn the_in_flight_bounds_fail_fast_behind_a_paused_server() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .health_check(None)
        .max_in_flight(4)
        .max_in_flight_bytes(4096)
        .max_in_flight_wait(Duration::from_millis(300))
        .connect()
        .await
        .expect("connect");
    let mut side = common::side(&server).await;
    pause(&mut side, 2000).await;
    let mut held = Vec::new();
    for n in 0..4 {
        let mut conn = client.clone();
        held.push(tokio::spawn(async move {
            conn.set::<_, _, ()>(format!("paused:{n}"), n).await
        }));
    }
    assert!(
        common::eventually(Duration::from_secs(5), || {
            let in_flight = client.stats().in_flight;
            async move { in_flight == 4 }
        })
        .await
    );
    let mut conn = client.clone();
    let started = Instant::now();
    let err = conn
        .get::<_, Option<String>>("paused:0")
        .await
        .expect_err("no room");
    let err = common::lanes_error(&err);
    assert_eq!(err.kind(), ErrorKind::Backpressure, "{err}");
    assert!(err.is_retry_safe(), "nothing was sent");
    assert!(started.elapsed() < Duration::from_millis(1500));
    let stats = client.stats();
    assert!(stats.in_flight + stats.queued <= 4, "{stats:?}");
    assert_eq!(stats.backpressure, 1);
    for result in common::join_all(held).await {
        result.expect("the queued SETs complete after the pause");
    }

    // In bytes: one 3000-byte value in flight leaves no room for a second.
    pause(&mut side, 1500).await;
    let big = "x".repeat(3000);
    let first = {
        let mut conn = client.clone();
        let big = big.clone();
        tokio::spawn(async move { conn.set::<_, _, ()>("paused:big1", big).await })
    };
    assert!(common::until_written(|| client.stats(), stats.written_requests).await);
    let err = conn
        .set::<_, _, ()>("paused:big2", &big)
        .await
        .expect_err("no room in bytes");
    assert_eq!(common::lanes_error(&err).kind(), ErrorKind::Backpressure);
    first.await.expect("task").expect("the first SET completes");
    let stored: Option<String> = side.get("paused:big2").await.expect("GET");
    assert_eq!(stored, None, "the refused SET was never sent");
}

/// A request that times out gives its in-flight slot back at once: behind a paused
/// server, later callers time out on their own deadline instead of finding the lane
/// full of requests nobody waits for.
#[tokio::test]
async fn a_timed_out_request_gives_its_slot_back() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .health_check(None)
        .max_in_flight(2)
        .max_in_flight_wait(Duration::from_secs(5))
        .response_timeout(Some(Duration::from_millis(100)))
        .connect()
        .await
        .expect("connect");
    let mut side = common::side(&server).await;
    pause(&mut side, 1500).await;
    let mut conn = client.clone();
    for n in 0..6 {
        let started = Instant::now();
        let err = conn
            .get::<_, Option<String>>(format!("timed:{n}"))
            .await
            .expect_err("paused");
        let err = common::lanes_error(&err);
        assert_eq!(err.kind(), ErrorKind::Timeout, "call {n}: {err}");
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "call {n} waited {:?} for a slot",
            started.elapsed()
        );
    }
    // Once the pause ends, the late replies are read and dropped; the lane is in step.
    let mut conn = client.clone();
    assert!(
        common::eventually(Duration::from_secs(10), || {
            let mut conn = conn.clone();
            async move { conn.get::<_, Option<String>>("timed:0").await.is_ok() }
        })
        .await,
        "the pause never ended for this client"
    );
    for n in 0..20 {
        common::echo_own(&mut conn, format!("after-{n}")).await;
    }
}

/// The subscriber's buffer is bounded in bytes as well as in messages.
#[tokio::test]
async fn the_subscriber_buffer_is_bounded_in_bytes() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .subscriber_buffer_bytes(10_000)
        .connect()
        .await
        .expect("connect");
    let sub = client.subscriber().await.expect("subscriber");
    sub.subscribe("bytes:ch").await.expect("subscribe");
    let mut side = common::side(&server).await;
    let payload = "y".repeat(4000);
    for _ in 0..10 {
        let _: i64 = side.publish("bytes:ch", &payload).await.expect("PUBLISH");
    }
    assert!(
        common::eventually(Duration::from_secs(10), || {
            let seen = sub.received();
            async move { seen == 10 }
        })
        .await
    );
    assert_eq!(sub.backlog(), 2, "two 4 kB messages fit in 10 kB");
    assert_eq!(sub.dropped(), 8);
}
