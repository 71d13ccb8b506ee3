//! Blocking commands run on dedicated lanes: the shared lane never waits behind them.

mod common;

use std::time::{Duration, Instant};

use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use redis_lanes::{Client, ErrorKind};

async fn time_gets(conn: &mut Client, n: usize) -> Duration {
    let started = Instant::now();
    for i in 0..n {
        let _: Option<String> = conn.get(format!("hol:{i}")).await.unwrap();
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_of_line_gets_do_not_wait_behind_64_blpops() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut conn = client.clone();
    let alone = time_gets(&mut conn, 1_000).await;

    let mut blockers = Vec::new();
    for i in 0..64 {
        let mut c = client.clone();
        blockers.push(tokio::spawn(async move {
            c.blpop::<_, Option<(String, String)>>(format!("q:{i}"), 2.0)
                .await
        }));
    }
    let busy = common::eventually(Duration::from_secs(10), || {
        let client = client.clone();
        async move { client.stats().blocking_busy == 64 }
    })
    .await;
    assert!(busy, "{:?}", client.stats());
    let behind = time_gets(&mut conn, 1_000).await;
    assert!(
        behind < alone * 3 + Duration::from_millis(500),
        "1,000 GETs took {behind:?} behind 64 BLPOPs, {alone:?} alone"
    );
    // The GETs finished while the BLPOPs were still blocked.
    assert!(behind < Duration::from_millis(1_500), "{behind:?}");
    for b in blockers {
        assert_eq!(
            b.await.unwrap().unwrap(),
            None,
            "BLPOP q 2 times out with nil"
        );
    }
}

#[tokio::test]
async fn blocking_commands_get_their_data() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut conn = client.clone();
    let mut pusher = client.clone();

    let waiting =
        tokio::spawn(async move { conn.blpop::<_, Option<(String, String)>>("jobs", 0.0).await });
    let blocked = common::eventually(Duration::from_secs(5), || {
        let client = client.clone();
        async move { client.stats().blocking_busy == 1 }
    })
    .await;
    assert!(blocked);
    let _: () = pusher.rpush("jobs", "job-1").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, Some(("jobs".into(), "job-1".into())));

    // XREAD ... BLOCK gets an entry added while it waits.
    let mut side = common::side(&server).await;
    let mut reader = client.clone();
    let read = tokio::spawn(async move {
        let opts = StreamReadOptions::default().block(5_000);
        reader
            .xread_options::<_, _, StreamReadReply>(&["events"], &["$"], &opts)
            .await
    });
    assert!(common::until_blocked(&side, "xread").await);
    let _: String = pusher.xadd("events", "*", &[("f", "v")]).await.unwrap();
    let reply = read.await.unwrap().unwrap();
    assert_eq!(reply.keys.len(), 1);
    assert_eq!(reply.keys[0].ids.len(), 1);

    // Lanes are reused once their reply was read: one blocking lane served both.
    let ids = common::client_ids(&mut side).await;
    assert_eq!(ids.len(), 3, "shared + one blocking lane + side: {ids:?}");
    assert_eq!(client.stats().blocking_idle, 1);
}

#[tokio::test]
async fn a_global_response_timeout_never_cuts_a_blocking_call() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .response_timeout(Some(Duration::from_millis(100)))
        .connect()
        .await
        .unwrap();
    let mut conn = client.clone();
    let started = Instant::now();
    let got: Option<(String, String)> = conn.blpop("empty", 1.0).await.unwrap();
    assert_eq!(got, None);
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn a_pipeline_with_a_blocking_command_runs_whole_on_a_blocking_lane() {
    let server = common::server();
    let side = common::side(&server).await;
    let client = common::client(&server).await;
    let mut conn = client.clone();
    let piped = tokio::spawn(async move {
        redis::pipe()
            .set("before", 1)
            .ignore()
            .blpop("pq", 2.0)
            .query_async::<(Option<(String, String)>,)>(&mut conn)
            .await
    });
    assert!(common::until_blocked(&side, "blpop").await);
    let mut other = client.clone();
    // The shared lane is free while the pipeline blocks.
    let started = Instant::now();
    let v: i64 = other.get("before").await.unwrap();
    assert_eq!(v, 1);
    assert!(started.elapsed() < Duration::from_millis(500));
    let _: () = other.lpush("pq", "x").await.unwrap();
    let (got,) = piped.await.unwrap().unwrap();
    assert_eq!(got, Some(("pq".into(), "x".into())));
}

#[tokio::test]
async fn user_declared_blocking_commands_use_blocking_lanes() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .client_name("declared")
        .blocking_command("echo")
        .connect()
        .await
        .unwrap();
    let mut conn = client.clone();
    let echoed: String = redis::cmd("ECHO")
        .arg("hi")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(echoed, "hi");
    let mut side = common::side(&server).await;
    assert_eq!(
        common::named(&mut side, "declared").await.len(),
        2,
        "shared + blocking lane"
    );

    // Per call, without declaring it.
    let plain = Client::builder(&server.url())
        .client_name("per-call")
        .blocking_grace(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    let mut cmd = redis::cmd("BLPOP");
    cmd.arg("nothing").arg(0);
    let err = plain
        .send_blocking(&cmd, Some(Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(
        common::named(&mut side, "per-call").await.len(),
        2,
        "shared + blocking lane"
    );
}

#[tokio::test]
async fn the_deadline_is_the_commands_timeout_plus_grace() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .client_name("deadline")
        .blocking_grace(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let mut cmd = redis::cmd("BLPOP");
    cmd.arg("never").arg(0);
    let started = Instant::now();
    let err = client
        .send_blocking(&cmd, Some(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Cancelled on the server: the lane is no longer blocked, and it is reused.
    let side = common::side(&server).await;
    let unblocked = common::eventually(Duration::from_secs(5), || {
        let mut side = side.clone();
        async move {
            common::named(&mut side, "deadline")
                .await
                .iter()
                .all(|l| !l.contains("flags=b"))
        }
    })
    .await;
    assert!(unblocked);
    assert_eq!(client.stats().blocking_cancels, 1);
}
