//! When the connection dies: every caller is answered, nothing hangs, nothing runs twice.
//! (A peer that lies is played by the fake server in `hostile.rs`.)

mod common;

use std::time::Duration;

use redis::AsyncCommands;
use redis_lanes::ErrorKind;

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

#[tokio::test]
async fn a_server_that_dies_mid_command_is_an_error_not_a_hang() {
    let mut server = common::server();
    let client = common::client(&server).await;
    let mut conn = client.clone();
    let side = common::side(&server).await;
    let written = client.stats().written_requests;
    let pending = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(2)
            .query_async::<()>(&mut conn)
            .await
    });
    assert!(common::until_written(|| client.stats(), written).await);
    assert!(common::until_server_busy(&side).await);
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
