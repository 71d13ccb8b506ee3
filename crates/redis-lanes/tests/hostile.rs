//! A hostile or broken server, played by the fake server in `support/`: garbage, a frame
//! cut off by a close, length headers claiming gigabytes, nesting 100,000 deep, and
//! replies nobody asked for. Each must fail the callers it affects with
//! `ErrorKind::Protocol` (`ConnectionLost` where the bytes simply stop), close the
//! connection (a lane reset, which the fake server sees), and never panic, allocate what
//! a header claims, or hand a reply to the wrong caller.
//!
//! The faults are injected in the middle of a load of concurrent callers whose every
//! request is unique and whose every reply is derived from its request, so a reply that
//! reached the wrong caller shows.
//!
//! After the reset the lane reconnects: the fake server's later connections behave
//! normally, and the tests check that the client (and the subscriber, with its
//! subscriptions) works again on a new connection.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use redis::{AsyncCommands, Value};
use redis_lanes::{Client, ErrorKind};
use support::{FakeServer, Fault, Script};

const GENEROUS: Duration = Duration::from_secs(10);

/// The command, counted from 1 after the handshake, whose reply the fault replaces.
const FAULT_AT: usize = 300;
const TASKS: usize = 32;
const PER_TASK: usize = 40;

fn lanes_error(err: &redis::RedisError) -> redis_lanes::Error {
    redis_lanes::Error::from_redis(err)
        .unwrap_or_else(|| panic!("not a redis-lanes error: {err:?}"))
}

/// `n` levels of single-element arrays around an integer.
fn deep_nesting(n: usize) -> Vec<u8> {
    [b"*1\r\n".repeat(n), b":1\r\n".to_vec()].concat()
}

/// The process's peak virtual memory, in KiB (Linux only).
fn vm_peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmPeak:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reserving what a gigabyte header claims would raise the peak by gigabytes. Other
/// tests of this binary run alongside and their threads reserve stacks and malloc
/// arenas (up to ~1 GiB of address space in all), so only a larger jump counts.
fn assert_no_huge_reservation(before: Option<u64>) {
    if let (Some(before), Some(after)) = (before, vm_peak_kib()) {
        let grown_mib = after.saturating_sub(before) / 1024;
        assert!(
            grown_mib < 2048,
            "peak virtual memory grew by {grown_mib} MiB: a header's claim was reserved"
        );
    }
}

/// What a load of concurrent callers saw.
#[derive(Debug, Default)]
struct Outcome {
    /// Replies that arrived, each checked against its own request.
    ok: usize,
    /// The error that stopped each caller that got one.
    errors: Vec<redis_lanes::Error>,
}

/// `TASKS` callers, each sending `PER_TASK` unique requests in turn (alternating
/// `ECHO <unique>` and `GET <unique>`) and checking each reply against its request.
/// A caller stops at its first error.
async fn run_load(client: &Client) -> Outcome {
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let mut conn = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for i in 0..PER_TASK {
                let unique = format!("{t}-{i}");
                let (cmd, expected) = if i % 2 == 0 {
                    (redis::cmd("ECHO").arg(&unique).clone(), unique.clone())
                } else {
                    (
                        redis::cmd("GET").arg(&unique).clone(),
                        format!("v:{unique}"),
                    )
                };
                match cmd.query_async::<Value>(&mut conn).await {
                    Ok(Value::BulkString(got)) => {
                        assert_eq!(
                            String::from_utf8_lossy(&got),
                            expected,
                            "a reply reached the wrong caller"
                        );
                        ok += 1;
                    }
                    Ok(other) => panic!("request {unique} got a reply of another shape: {other:?}"),
                    Err(e) => return (ok, Some(lanes_error(&e))),
                }
            }
            (ok, None)
        }));
    }
    let mut outcome = Outcome::default();
    for task in tasks {
        let (ok, err) = tokio::time::timeout(GENEROUS, task)
            .await
            .expect("a caller hung after the fault")
            .expect("a caller panicked");
        outcome.ok += ok;
        outcome.errors.extend(err);
    }
    outcome
}

/// Injects `fault` as the reply to command `FAULT_AT` under load and checks the reset.
async fn fault_under_load(fault: Fault, expected: ErrorKind, query: &str) {
    let closes = matches!(fault, Fault::InsteadThenClose(_) | Fault::AfterThenClose(_));
    let server = FakeServer::start(vec![Script::normal().on(FAULT_AT, fault)]).await;
    let client = Client::connect(&server.url(query)).await.expect("connect");
    let outcome = run_load(&client).await;

    // Every reply sent before the fault reached its caller.
    assert!(
        outcome.ok >= FAULT_AT - 1,
        "only {} replies arrived, {} were sent before the fault",
        outcome.ok,
        FAULT_AT - 1
    );
    // The callers whose requests were written get the fault's kind: at least the one
    // whose reply the fault replaced.
    let written: Vec<_> = outcome
        .errors
        .iter()
        .filter(|e| !e.is_retry_safe())
        .collect();
    assert!(!written.is_empty(), "nobody in flight failed: {outcome:?}");
    for err in &written {
        assert_eq!(err.kind(), expected, "{err}");
    }
    // Callers whose requests were still queued learn that nothing was sent. (Today they
    // get the same cause; a lane that reconnects may report the reconnection instead.)
    for err in outcome.errors.iter().filter(|e| e.is_retry_safe()) {
        assert!(
            err.kind() == expected || err.is_connection(),
            "queued caller: {err}"
        );
    }
    // The lane was reset: the client closed the socket it no longer trusts.
    if closes {
        assert!(server.closed_by_server(0, GENEROUS).await);
    } else {
        assert!(
            server.closed_by_client(0, GENEROUS).await,
            "the client kept the broken connection open"
        );
    }
    assert!(server.log(0).commands.len() >= FAULT_AT);

    // ... and reconnected: the next request is answered on a new connection.
    let mut conn = client.clone();
    let echoed: String = tokio::time::timeout(
        GENEROUS,
        redis::cmd("ECHO").arg("after").query_async(&mut conn),
    )
    .await
    .expect("no hang after the reset")
    .expect("the lane reconnected");
    assert_eq!(echoed, "after");
    assert!(server.accepted() >= 2);
    assert!(client.stats().reconnects >= 1, "{:?}", client.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_lane_garbage_under_load() {
    fault_under_load(
        Fault::Instead(b"?this is not RESP\r\n".to_vec()),
        ErrorKind::Protocol,
        "",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_lane_garbage_under_load_resp3() {
    fault_under_load(
        Fault::Instead(b"\x00\x01\x02garbage".to_vec()),
        ErrorKind::Protocol,
        "?protocol=resp3",
    )
    .await;
}

/// The bytes simply stop: indistinguishable from a network failure in the middle of a
/// reply, so it is `ConnectionLost` (retry logic keyed on `is_connection()` applies),
/// not `Protocol` (nothing invalid was received).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_lane_frame_cut_by_a_close_under_load() {
    fault_under_load(
        Fault::InsteadThenClose(b"*3\r\n$3\r\nabc\r\n$10\r\nabc".to_vec()),
        ErrorKind::ConnectionLost,
        "",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_lane_gigabyte_bulk_header_under_load() {
    let before = vm_peak_kib();
    fault_under_load(
        Fault::Instead(b"$4000000000\r\n".to_vec()),
        ErrorKind::Protocol,
        "",
    )
    .await;
    assert_no_huge_reservation(before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_lane_gigabyte_array_header_under_load() {
    let before = vm_peak_kib();
    fault_under_load(
        Fault::Instead(b"*4000000000\r\n".to_vec()),
        ErrorKind::Protocol,
        "?protocol=resp3",
    )
    .await;
    assert_no_huge_reservation(before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_lane_deep_nesting_under_load() {
    // 100,000 levels: a recursive decoder would overflow the runtime thread's stack.
    fault_under_load(
        Fault::Instead(deep_nesting(100_000)),
        ErrorKind::Protocol,
        "",
    )
    .await;
}

/// A reply while nothing is in flight cannot belong to anyone. The fake server sends
/// it behind the last reply of a wave of concurrent callers, who wait for each other
/// before the next wave: no request can be in flight when it arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_lane_reply_nobody_asked_for_between_waves() {
    const WAVE: usize = 16;
    let stray = b"$5\r\nSTRAY\r\n".to_vec();
    let server = FakeServer::start(vec![Script::normal().on(WAVE, Fault::After(stray))]).await;
    let client = Client::connect(&server.url("")).await.expect("connect");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(WAVE));
    let mut tasks = Vec::new();
    for t in 0..WAVE {
        let mut conn = client.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut replies = Vec::new();
            for wave in 0..2 {
                let unique = format!("{t}-{wave}");
                let reply = redis::cmd("ECHO")
                    .arg(&unique)
                    .query_async::<String>(&mut conn)
                    .await
                    .map_err(|e| lanes_error(&e));
                replies.push((unique, reply));
                barrier.wait().await;
            }
            replies
        }));
    }
    let mut later_errors = 0;
    for task in tasks {
        let replies = tokio::time::timeout(GENEROUS, task)
            .await
            .expect("a caller hung")
            .expect("a caller panicked");
        for (wave, (unique, reply)) in replies.into_iter().enumerate() {
            match reply {
                Ok(got) => assert_eq!(got, unique, "a reply reached the wrong caller"),
                Err(err) => {
                    assert_eq!(
                        wave, 1,
                        "the first wave was answered before the stray: {err}"
                    );
                    assert!(err.is_protocol() || err.is_connection(), "{err}");
                    later_errors += 1;
                }
            }
        }
    }
    assert!(
        server.closed_by_client(0, GENEROUS).await,
        "the stray reply did not reset the lane"
    );
    // Today the dead lane fails the second wave; a reconnecting lane may answer it.
    let reconnected = server.accepted() > 1;
    assert!(
        later_errors == WAVE || reconnected,
        "{later_errors} of {WAVE}"
    );
}

/// Bytes that arrive together with the handshake's last reply are in the driver's buffer
/// before any request is written: they cannot be anyone's reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_behind_the_handshake_are_not_the_first_reply() {
    let server = FakeServer::start(vec![Script::normal().greet(b"$5\r\nSTRAY\r\n")]).await;
    let client = Client::connect(&server.url("")).await.expect("connect");
    let mut conn = client.clone();
    let reply = tokio::time::timeout(
        GENEROUS,
        redis::cmd("ECHO")
            .arg("mine")
            .query_async::<String>(&mut conn),
    )
    .await
    .expect("no hang");
    match reply {
        Ok(got) => assert_eq!(got, "mine", "the stray bytes were taken for the reply"),
        Err(e) => {
            let err = lanes_error(&e);
            assert!(err.is_protocol() || err.is_connection(), "{err}");
        }
    }
    assert!(server.closed_by_client(0, GENEROUS).await);
}

/// A frame that is in the driver's hands before a request's bytes went out cannot be
/// that request's reply. The driver is polled by hand here, so the order is exact: the
/// stray frame waits on the socket, a request is queued, then the driver runs (taking
/// the request, deferring its write by one scheduler pass, and reading the frame).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_read_before_the_request_is_written_is_not_its_reply() {
    let server = FakeServer::start(vec![
        Script::normal().later(Duration::ZERO, b"$5\r\nSTRAY\r\n")
    ])
    .await;
    // Without reconnect, so the driver's end can be awaited.
    let (lane, driver) = Client::builder(&server.url(""))
        .reconnect(false)
        .pair()
        .await
        .expect("connect");
    assert!(server.wait_for(GENEROUS, |c| c[0].sent_later).await);
    tokio::time::sleep(Duration::from_millis(50)).await; // into the client's socket buffer
    let caller = {
        let lane = lane.clone();
        tokio::spawn(async move { lane.send(redis::cmd("ECHO").arg("mine")).await })
    };
    while lane.stats().queued == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let driver = tokio::spawn(driver);
    let reply = tokio::time::timeout(GENEROUS, caller)
        .await
        .expect("no hang")
        .expect("no panic");
    match reply {
        Ok(value) => panic!("the stray frame was taken for the reply: {value:?}"),
        Err(err) => assert_eq!(err.kind(), ErrorKind::Protocol, "{err}"),
    }
    tokio::time::timeout(GENEROUS, driver)
        .await
        .expect("the driver ended")
        .expect("the driver did not panic");
    assert!(server.closed_by_client(0, GENEROUS).await);
}

// ---- blocking lanes ---------------------------------------------------------------------

/// Concurrent `BLPOP`s, one per key; the first blocking lane opened (the server's second
/// connection) answers with `fault`. Exactly its caller fails; the others, and the
/// shared lane, are untouched.
async fn fault_on_a_blocking_lane(fault: Fault, expected: ErrorKind) {
    const CALLS: usize = 8;
    let closes = matches!(fault, Fault::InsteadThenClose(_) | Fault::AfterThenClose(_));
    let server = FakeServer::start(vec![Script::normal(), Script::normal().on(1, fault)]).await;
    let client = Client::connect(&server.url("")).await.expect("connect");
    let mut tasks = Vec::new();
    for i in 0..CALLS {
        let mut conn = client.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("queue-{i}");
            let popped = conn.blpop::<_, Option<(String, String)>>(&key, 1.0).await;
            (key, popped)
        }));
    }
    let mut errors = Vec::new();
    for task in tasks {
        let (key, popped) = tokio::time::timeout(GENEROUS, task)
            .await
            .expect("a blocking caller hung")
            .expect("a blocking caller panicked");
        match popped {
            Ok(popped) => assert_eq!(
                popped,
                Some((key.clone(), format!("popped:{key}"))),
                "a reply reached the wrong caller"
            ),
            Err(e) => errors.push(lanes_error(&e)),
        }
    }
    assert_eq!(
        errors.len(),
        1,
        "only the faulty lane's caller fails: {errors:?}"
    );
    assert_eq!(errors[0].kind(), expected, "{}", errors[0]);
    assert!(!errors[0].is_retry_safe(), "the BLPOP was written");
    if closes {
        assert!(server.closed_by_server(1, GENEROUS).await);
    } else {
        assert!(
            server.closed_by_client(1, GENEROUS).await,
            "the client kept the broken blocking lane open"
        );
    }
    // The shared lane never saw the fault.
    let mut conn = client.clone();
    let echoed: String = redis::cmd("ECHO")
        .arg("still here")
        .query_async(&mut conn)
        .await
        .expect("the shared lane is unaffected");
    assert_eq!(echoed, "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_lane_garbage() {
    fault_on_a_blocking_lane(Fault::Instead(b"!!\r\n".to_vec()), ErrorKind::Protocol).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_lane_frame_cut_by_a_close() {
    fault_on_a_blocking_lane(
        Fault::InsteadThenClose(b"*2\r\n$7\r\nqueue-".to_vec()),
        ErrorKind::ConnectionLost,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_lane_gigabyte_headers() {
    let before = vm_peak_kib();
    fault_on_a_blocking_lane(
        Fault::Instead(b"$4000000000\r\n".to_vec()),
        ErrorKind::Protocol,
    )
    .await;
    fault_on_a_blocking_lane(
        Fault::Instead(b"*4000000000\r\n".to_vec()),
        ErrorKind::Protocol,
    )
    .await;
    assert_no_huge_reservation(before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_lane_deep_nesting() {
    fault_on_a_blocking_lane(Fault::Instead(deep_nesting(100_000)), ErrorKind::Protocol).await;
}

/// A stray reply behind a `BLPOP`'s reply arrives on a lane that is back in the pool
/// with nothing in flight: the lane is closed, and the pool never hands it out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_lane_reply_nobody_asked_for() {
    let stray = b"*2\r\n$7\r\nqueue-x\r\n$5\r\nSTRAY\r\n".to_vec();
    let server = FakeServer::start(vec![
        Script::normal(),
        Script::normal().on(1, Fault::After(stray)),
    ])
    .await;
    let client = Client::connect(&server.url("")).await.expect("connect");
    let mut conn = client.clone();
    let first: Option<(String, String)> = conn.blpop("queue-1", 1.0).await.expect("first BLPOP");
    assert_eq!(first, Some(("queue-1".into(), "popped:queue-1".into())));
    assert!(
        server.closed_by_client(1, GENEROUS).await,
        "the stray reply did not close the blocking lane"
    );
    let second: Option<(String, String)> = conn.blpop("queue-2", 1.0).await.expect("second BLPOP");
    assert_eq!(second, Some(("queue-2".into(), "popped:queue-2".into())));
    assert_eq!(server.log(2).commands.len(), 1, "ran on a new lane");
}

// ---- the subscriber ----------------------------------------------------------------------

const MESSAGES: usize = 10;

/// Subscribes (the subscriber is the server's second connection), receives `MESSAGES`
/// messages and then `fault`'s bytes; the messages arrive in order, then one error of the
/// expected kind, then the stream ends.
async fn fault_on_a_subscriber(fault: &[u8], close: bool, expected: ErrorKind, query: &str) {
    let resp3 = query.contains("resp3");
    let mut after = Vec::new();
    for i in 0..MESSAGES {
        after.extend_from_slice(&support::message(
            resp3,
            b"news",
            format!("m{i}").as_bytes(),
        ));
    }
    after.extend_from_slice(fault);
    let fault = if close {
        Fault::AfterThenClose(after)
    } else {
        Fault::After(after)
    };
    let server = FakeServer::start(vec![Script::normal(), Script::normal().on(1, fault)]).await;
    let client = Client::connect(&server.url(query)).await.expect("connect");
    let mut sub = client.subscriber().await.expect("subscriber");
    sub.subscribe("news").await.expect("subscribe");
    for i in 0..MESSAGES {
        let message = tokio::time::timeout(GENEROUS, sub.next())
            .await
            .expect("no hang")
            .expect("a message")
            .expect("messages before the fault are delivered");
        assert_eq!(message.payload(), format!("m{i}").as_bytes());
    }
    let err = tokio::time::timeout(GENEROUS, sub.next())
        .await
        .expect("no hang")
        .expect("the fault is reported")
        .expect_err("the fault is an error");
    assert_eq!(err.kind(), expected, "{err}");
    if close {
        assert!(server.closed_by_server(1, GENEROUS).await);
    } else {
        assert!(
            server.closed_by_client(1, GENEROUS).await,
            "the subscriber kept the broken connection open"
        );
    }
    // The subscriber reconnects on its own and subscribes again on the new connection.
    let resubscribed = server
        .wait_for(GENEROUS, |conns| {
            conns.get(2).is_some_and(|c| {
                c.commands.iter().any(|cmd| {
                    cmd.first()
                        .is_some_and(|n| n.eq_ignore_ascii_case(b"SUBSCRIBE"))
                })
            })
        })
        .await;
    assert!(resubscribed, "no new connection subscribed again");
    let connected = tokio::time::timeout(GENEROUS, async {
        while !sub.is_connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(connected.is_ok(), "the subscriber did not come back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_garbage() {
    fault_on_a_subscriber(b"hello?\r\n", false, ErrorKind::Protocol, "").await;
    fault_on_a_subscriber(b"hello?\r\n", false, ErrorKind::Protocol, "?protocol=resp3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_frame_cut_by_a_close() {
    let cut = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$100\r\nsho";
    fault_on_a_subscriber(cut, true, ErrorKind::ConnectionLost, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_gigabyte_headers() {
    let before = vm_peak_kib();
    let bulk = b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$4000000000\r\n";
    fault_on_a_subscriber(bulk, false, ErrorKind::Protocol, "?protocol=resp3").await;
    fault_on_a_subscriber(b"*4000000000\r\n", false, ErrorKind::Protocol, "").await;
    assert_no_huge_reservation(before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_deep_nesting() {
    fault_on_a_subscriber(&deep_nesting(100_000), false, ErrorKind::Protocol, "").await;
    // Inside a push frame, which the decoder hands to the `redis` crate's parser.
    let push = [&b">2\r\n$7\r\nmessage\r\n"[..], &deep_nesting(100_000)].concat();
    fault_on_a_subscriber(&push, false, ErrorKind::Protocol, "?protocol=resp3").await;
}

/// A subscriber's command waiting for its confirmation when the garbage arrives fails.
/// Its error is `ConnectionLost` naming the cause: the subscriber reports every lost
/// connection to its callers that way, so `is_connection()` is the one check that says
/// "call reconnect()"; the stream reports the cause with its own kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_command_in_flight_during_garbage() {
    let server = FakeServer::start(vec![
        Script::normal(),
        Script::normal().on(2, Fault::Instead(b"?garbage\r\n".to_vec())),
    ])
    .await;
    let client = Client::connect(&server.url("")).await.expect("connect");
    let mut sub = client.subscriber().await.expect("subscriber");
    sub.subscribe("first").await.expect("subscribe");
    let err = tokio::time::timeout(GENEROUS, sub.subscribe("second"))
        .await
        .expect("no hang")
        .expect_err("the confirmation never came");
    assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
    assert!(err.to_string().contains("protocol error"), "{err}");
    let cause = tokio::time::timeout(GENEROUS, sub.next())
        .await
        .expect("no hang")
        .expect("the loss is reported")
        .expect_err("an error");
    assert_eq!(cause.kind(), ErrorKind::Protocol, "{cause}");
    assert!(server.closed_by_client(1, GENEROUS).await);
}

/// Every handshake step the client can send (`HELLO 3` with `AUTH` and `SETNAME`, or
/// `AUTH`, `CLIENT SETNAME`, `SELECT` and `CLIENT ID` one by one) is answered, and a
/// fault after it is handled the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_handshake_then_garbage() {
    for protocol in [redis_lanes::Protocol::Resp2, redis_lanes::Protocol::Resp3] {
        let garbage = Fault::Instead(b"#maybe\r\n".to_vec());
        let server = FakeServer::start(vec![Script::normal().on(2, garbage)]).await;
        let client = Client::builder(&server.url(""))
            .protocol(protocol)
            .username("app")
            .password("secret")
            .client_name("hostile")
            .db(3)
            .connect()
            .await
            .expect("connect");
        assert_eq!(client.client_id(), Some(1000));
        let mut conn = client.clone();
        let echoed: String = redis::cmd("ECHO")
            .arg("one")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(echoed, "one");
        let err = redis::cmd("ECHO")
            .arg("two")
            .query_async::<String>(&mut conn)
            .await
            .unwrap_err();
        assert_eq!(
            lanes_error(&err).kind(),
            ErrorKind::Protocol,
            "{protocol:?}"
        );
        assert!(server.closed_by_client(0, GENEROUS).await, "{protocol:?}");
    }
}

/// A subscribed connection is not request/reply: messages and (in a cluster) server-side
/// unsubscribes arrive unprompted, so a frame nobody asked for is not an error there.
/// It must not be taken for the answer to the command that is waiting, though.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_frames_nobody_asked_for() {
    for query in ["", "?protocol=resp3"] {
        let resp3 = !query.is_empty();
        let kind = if resp3 { b'>' } else { b'*' };
        // Behind the confirmation of `SUBSCRIBE first`: odd replies, then a confirmation of
        // a channel nobody subscribed to, then a message.
        let stray = [
            &b":42\r\n+OK\r\n-ERR nobody asked\r\n"[..],
            &support::aggregate(
                kind,
                &[
                    support::bulk(b"subscribe"),
                    support::bulk(b"stray"),
                    support::int(2),
                ],
            ),
            &support::message(resp3, b"first", b"hello"),
        ]
        .concat();
        let server = FakeServer::start(vec![
            Script::normal(),
            Script::normal().on(1, Fault::After(stray)),
        ])
        .await;
        let client = Client::connect(&server.url(query)).await.expect("connect");
        let mut sub = client.subscriber().await.expect("subscriber");
        sub.subscribe("first").await.expect("subscribe");
        let message = tokio::time::timeout(GENEROUS, sub.next())
            .await
            .expect("no hang")
            .expect("a message")
            .expect("not an error");
        assert_eq!(message.payload(), b"hello", "{query}");
        sub.ping().await.expect("the connection is still in step");
        assert_eq!(server.log(1).commands.len(), 2, "{query}");
        assert!(!server.log(1).closed_by_client, "{query}");
    }
}

/// A confirmation for a channel the waiting command did not name is not its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_confirmation_of_another_channel_is_not_the_answer() {
    let other = support::aggregate(
        b'*',
        &[
            support::bulk(b"subscribe"),
            support::bulk(b"stray"),
            support::int(2),
        ],
    );
    let server = FakeServer::start(vec![
        Script::normal(),
        Script::normal().on(2, Fault::Instead(other)),
    ])
    .await;
    let client = Client::connect(&server.url("")).await.expect("connect");
    let sub = client.subscriber().await.expect("subscriber");
    sub.subscribe("first").await.expect("subscribe");
    let waiting = tokio::time::timeout(Duration::from_millis(300), sub.subscribe("second")).await;
    assert!(
        waiting.is_err(),
        "completed by another channel's confirmation: {waiting:?}"
    );
}
