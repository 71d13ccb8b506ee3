//! Slots moving under load: the client follows `ASK` during the migration and `MOVED`
//! after it, and callers see no error and no wrong reply. Has its own cluster: it changes
//! the topology.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use redis_lanes::ClusterClient;
use redis_lanes_testkit::RedisCluster;

const TAGS: usize = 16;
const TASKS: usize = 8;

/// The slot of `{tag<n>}`, asked of the server, so the test does not depend on the
/// client's own hashing.
fn slot_of_tag(url: &str, tag: usize) -> u16 {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(format!("{{tag{tag}}}"))
        .query(&mut conn)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_under_load_is_invisible_to_callers() {
    let cluster = RedisCluster::start(3, 0).expect("cluster");
    let urls = cluster.urls();
    let slots: Vec<u16> = (0..TAGS).map(|tag| slot_of_tag(&urls[0], tag)).collect();
    let client = ClusterClient::connect(&[urls[0].as_str()])
        .await
        .expect("connect");

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let mut conn = client.clone();
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut last = vec![None::<String>; TAGS];
            let (mut calls, mut errors) = (0u64, Vec::new());
            let mut n = 0u64;
            while !stop.load(SeqCst) && n < 1_000_000 {
                n += 1;
                let tag = (n as usize + task) % TAGS;
                let key = format!("{{tag{tag}}}:task{task}");
                let value = format!("{task}-{n}");
                calls += 2;
                match conn.set::<_, _, ()>(&key, &value).await {
                    Ok(()) => last[tag] = Some(value.clone()),
                    Err(e) => errors.push(format!("SET {key}: {e}")),
                }
                match conn.get::<_, Option<String>>(&key).await {
                    Ok(seen) => assert_eq!(seen, last[tag], "{key}: a wrong reply"),
                    Err(e) => errors.push(format!("GET {key}: {e}")),
                }
            }
            (task, last, calls, errors)
        }));
    }
    // Load first, then move every slot one master along, in steps: half the keys, a
    // pause under load (the ASK phase), the rest, then the new owner everywhere (MOVED).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let masters = cluster.masters().expect("masters");
    let cluster = Arc::new(cluster);
    for &slot in &slots {
        let cluster = Arc::clone(&cluster);
        let masters = masters.clone();
        tokio::task::spawn_blocking(move || {
            let owner = cluster.owner(slot).expect("owner");
            let position = masters.iter().position(|&m| m == owner).expect("a master");
            let to = masters[(position + 1) % masters.len()];
            let migration = cluster.start_migration(slot, to).expect("start");
            migration.move_keys(&cluster, 3).expect("move some");
            std::thread::sleep(Duration::from_millis(50));
            migration.finish(&cluster).expect("finish");
        })
        .await
        .expect("migration");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, SeqCst);
    let mut side = client.clone();
    let mut total_calls = 0;
    for (task, last, calls, errors) in common::join_all(tasks).await {
        total_calls += calls;
        assert!(
            errors.is_empty(),
            "task {task}: {} errors: {errors:?}",
            errors.len()
        );
        for (tag, value) in last.iter().enumerate() {
            let key = format!("{{tag{tag}}}:task{task}");
            let stored: Option<String> = side.get(&key).await.expect("GET");
            assert_eq!(&stored, value, "{key} intact");
        }
    }
    assert!(total_calls > 1000, "too little load: {total_calls}");
    let stats = client.stats();
    assert!(stats.moved_redirects > 0, "no MOVED followed: {stats:?}");
    assert!(stats.ask_redirects > 0, "no ASK followed: {stats:?}");
    for &slot in &slots {
        let owner = cluster.owner(slot).expect("owner");
        assert!(masters.contains(&owner));
    }
}
