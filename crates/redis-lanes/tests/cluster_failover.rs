//! A master killed with `kill -9` under load: its replica is promoted, the client finds
//! the new master on its own, every task succeeds again soon after, and no call hangs.
//! The old master, restarted, rejoins as a replica, and takes over again with a
//! coordinated `CLUSTER FAILOVER`. Has its own cluster.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands;
use redis_lanes::ClusterClient;
use redis_lanes_testkit::RedisCluster;
use tokio::time::Instant;

const TASKS: usize = 8;

/// When each task last succeeded.
type LastOk = Arc<Mutex<Vec<Option<Instant>>>>;

/// Waits until every task has succeeded after `since`; whether it did within 10 s.
async fn all_back_after(last_ok: &LastOk, since: Instant) -> bool {
    common::eventually(Duration::from_secs(10), || {
        let all = last_ok
            .lock()
            .unwrap()
            .iter()
            .all(|t| t.is_some_and(|t| t > since));
        async move { all }
    })
    .await
}
/// No call may take longer than this: the dead master's in-flight requests fail at
/// once, new ones wait for the promotion (about 1.5–3 s with a node timeout of 1 s).
const CALL_BOUND: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_replaced_without_user_action() {
    let mut cluster = RedisCluster::start(3, 1).expect("cluster");
    let urls = cluster.urls();
    let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
    let client = ClusterClient::connect(&seeds).await.expect("connect");
    let stop = Arc::new(AtomicBool::new(false));
    let last_ok: LastOk = Arc::new(Mutex::new(vec![None; TASKS]));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let mut conn = client.clone();
        let stop = Arc::clone(&stop);
        let last_ok = Arc::clone(&last_ok);
        tasks.push(tokio::spawn(async move {
            let (mut slowest, mut errors, mut n) = (Duration::ZERO, 0u64, 0u64);
            while !stop.load(SeqCst) && n < 1_000_000 {
                n += 1;
                let key = format!("fo:{task}:{}", n % 50);
                let started = Instant::now();
                let set = conn.set::<_, _, ()>(&key, n).await;
                let get = conn.get::<_, Option<u64>>(&key).await;
                slowest = slowest.max(started.elapsed());
                match (&set, &get) {
                    (Ok(()), Ok(value)) => {
                        assert_eq!(*value, Some(n), "{key}: a wrong reply");
                        last_ok.lock().unwrap()[task] = Some(Instant::now());
                    }
                    _ => {
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            (slowest, errors)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let masters = cluster.masters().expect("masters");
    let victim = masters[0];
    let replica = cluster.replica_of(victim).expect("replica");
    cluster.node_mut(victim).stop(); // SIGKILL
    let killed = Instant::now();
    // The replica takes over (node timeout 1 s, then an election).
    let promoted = loop {
        if cluster.is_master(replica) {
            break Instant::now();
        }
        assert!(killed.elapsed() < Duration::from_secs(30), "no promotion");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Every task succeeds again after the promotion.
    let recovered = all_back_after(&last_ok, promoted).await;
    let after = promoted.elapsed();
    assert!(
        recovered,
        "not every task succeeded within 10 s of the promotion"
    );

    // The old master comes back as a replica; the client keeps going.
    cluster.node_mut(victim).restart().expect("restart");
    cluster
        .wait_until_formed(Duration::from_secs(30))
        .expect("the cluster settles");
    assert!(
        !cluster.is_master(victim),
        "the old master rejoined as a replica"
    );
    let resumed = Instant::now();
    assert!(all_back_after(&last_ok, resumed).await);
    // A coordinated failover back: the old master takes over again.
    let handed = Instant::now();
    cluster
        .failover(victim, Duration::from_secs(20))
        .expect("CLUSTER FAILOVER");
    assert!(
        all_back_after(&last_ok, handed).await,
        "not every task succeeded after the coordinated failover"
    );
    stop.store(true, SeqCst);
    for (slowest, _errors) in common::join_all(tasks).await {
        assert!(slowest <= CALL_BOUND, "a call took {slowest:?}");
    }
    eprintln!(
        "promotion {:?} after the kill; every task back within {after:?} after it",
        promoted - killed
    );
}
