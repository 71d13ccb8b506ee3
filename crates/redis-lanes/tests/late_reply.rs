//! A cancelled blocking command whose reply the server has announced (`CLIENT UNBLOCK`
//! answered 1) but that arrives late, as a large reply on a slow link does. A real
//! server cannot be made that slow, so a fake one holds the reply back.

mod support;

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_lanes::Client;
use support::{FakeServer, Fault, Script};

/// The recovery waits for a reply the server said is coming, however late, and puts
/// its data back; it never gives up and closes the lane while the client lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_reply_the_server_announced_is_waited_for_and_restored() {
    const LATE: Duration = Duration::from_secs(3);
    let popped = support::aggregate(
        b'*',
        &[support::bulk(b"jobs"), support::bulk(b"popped:jobs")],
    );
    let server = FakeServer::start(vec![
        // The shared lane: its first command is the CLIENT UNBLOCK, which finds the
        // BLPOP blocked (1), so its reply is certain.
        Script::normal().on(1, Fault::Instead(b":1\r\n".to_vec())),
        // The blocking lane: the BLPOP's reply comes `LATE` after the handshake.
        Script::normal()
            .on(1, Fault::Instead(Vec::new()))
            .later(LATE, &popped),
    ])
    .await;
    let client = Client::connect(&server.url("")).await.expect("connect");
    let mut conn = client.clone();
    let started = Instant::now();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(200),
        conn.blpop::<_, Option<(String, String)>>("jobs", 0.0),
    )
    .await;
    assert!(cancelled.is_err(), "the BLPOP should still be waiting");
    let settled = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let stats = client.stats();
            if stats.orphans_restored + stats.orphans_reported + stats.orphans_unrecoverable > 0 {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the recovery ended");
    assert!(
        started.elapsed() >= LATE,
        "the reply cannot have come earlier"
    );
    assert_eq!(settled.orphans_unrecoverable, 0, "{settled:?}");
    // The fake server answers the restoring LPUSH with +OK rather than a length, so the
    // outcome is counted as reported rather than restored; either way it was handled.
    assert_eq!(
        settled.orphans_restored + settled.orphans_reported,
        1,
        "{settled:?}"
    );
    // The popped element went back, on the shared lane, after the unblock.
    let restored = server
        .wait_for(Duration::from_secs(5), |conns| {
            conns.first().is_some_and(|log| {
                log.commands
                    .iter()
                    .any(|c| c.first().is_some_and(|n| n.eq_ignore_ascii_case(b"LPUSH")))
            })
        })
        .await;
    assert!(
        restored,
        "no LPUSH put the element back: {:?}",
        server.log(0)
    );
    // The blocking lane was read clean and kept, not closed.
    let closed = server
        .wait_for(Duration::from_millis(200), |conns| {
            conns.get(1).is_some_and(|c| c.closed_by_client)
        })
        .await;
    assert!(!closed, "the blocking lane was closed");
}
