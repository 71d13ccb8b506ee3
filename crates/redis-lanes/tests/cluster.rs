//! A `ClusterClient` against a real local cluster (3 masters, 1 replica each). The
//! scenarios that leave the topology alone share one cluster, run one after another in
//! one test (a cluster takes seconds to form).

mod common;

use std::time::Duration;

use redis::AsyncCommands;
use redis_lanes::{ClusterClient, ErrorKind};
use redis_lanes_testkit::RedisCluster;

/// A plain connection to every node, to look at the cluster from outside.
fn sides(cluster: &RedisCluster) -> Vec<redis::Connection> {
    cluster
        .urls()
        .iter()
        .map(|url| {
            redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_shared_cluster() {
    let cluster = RedisCluster::start(3, 1).expect("cluster");
    let urls = cluster.urls();
    let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
    let client = ClusterClient::builder(&seeds[..1])
        .configure(|b| b.client_name("lanes-cluster-test"))
        .connect()
        .await
        .expect("connect");

    keys_everywhere(&client).await;
    multi_key_commands_are_split_and_merged(&client).await;
    keyless_commands_go_everywhere(&client, &cluster).await;
    cross_slot_commands_are_refused(&client).await;
    pipelines_keep_their_order(&client).await;
    transactions_stay_in_one_slot(&client).await;
    blocking_commands_block_only_their_lane(&client).await;
    close_is_graceful_and_final(&seeds).await;
    drop_closes_every_connection(client, &cluster).await;
}

async fn close_is_graceful_and_final(seeds: &[&str]) {
    let client = ClusterClient::connect(seeds).await.expect("connect");
    let mut conn = client.clone();
    for n in 0..30 {
        conn.set::<_, _, ()>(format!("close:{n}"), n)
            .await
            .expect("SET");
    }
    let mut waiter = client.clone();
    let blocked = tokio::spawn(async move {
        waiter
            .blpop::<_, Option<(String, String)>>("close:list", 0.0)
            .await
    });
    assert!(
        common::eventually(Duration::from_secs(10), || {
            let busy = client.stats().blocking_busy;
            async move { busy == 1 }
        })
        .await
    );
    tokio::time::timeout(Duration::from_secs(10), client.close())
        .await
        .expect("close() returns, cancelling the blocked BLPOP");
    assert!(client.is_closed());
    let err = blocked
        .await
        .expect("task")
        .expect_err("cancelled by close()");
    assert_eq!(common::lanes_error(&err).kind(), ErrorKind::Closed);
    let err = conn
        .get::<_, Option<i64>>("close:1")
        .await
        .expect_err("closed");
    assert_eq!(common::lanes_error(&err).kind(), ErrorKind::Closed);
}

async fn keys_everywhere(client: &ClusterClient) {
    let mut conn = client.clone();
    for n in 0..300 {
        conn.set::<_, _, ()>(format!("key:{n}"), n)
            .await
            .expect("SET");
    }
    for n in 0..300 {
        let v: i64 = conn.get(format!("key:{n}")).await.expect("GET");
        assert_eq!(v, n);
    }
    let stats = client.node_stats();
    assert!(stats.len() >= 3, "every master used: {stats:?}");
    assert_eq!(client.stats().server_errors, 0, "no MOVED seen");
}

async fn multi_key_commands_are_split_and_merged(client: &ClusterClient) {
    let mut conn = client.clone();
    let pairs: Vec<(String, String)> = (0..20)
        .map(|n| (format!("m:{n}"), format!("v{n}")))
        .collect();
    let _: () = conn.mset(&pairs).await.expect("MSET over slots");
    let keys: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
    let mut asked = keys.clone();
    asked.push("m:missing".into());
    let values: Vec<Option<String>> = conn.mget(&asked).await.expect("MGET over slots");
    let mut expected: Vec<Option<String>> = pairs.iter().map(|(_, v)| Some(v.clone())).collect();
    expected.push(None);
    assert_eq!(values, expected, "merged in the caller's order");
    let exists: i64 = conn.exists(&asked).await.expect("EXISTS");
    assert_eq!(exists, 20);
    let deleted: i64 = conn.del(&keys).await.expect("DEL over slots");
    assert_eq!(deleted, 20);
    // With a hash tag, one slot: sent whole.
    let _: () = conn
        .mset(&[("{t}a", "1"), ("{t}b", "2")])
        .await
        .expect("MSET in one slot");
    let both: Vec<String> = conn.mget(&["{t}a", "{t}b"]).await.expect("MGET");
    assert_eq!(both, ["1", "2"]);
}

async fn keyless_commands_go_everywhere(client: &ClusterClient, cluster: &RedisCluster) {
    let mut conn = client.clone();
    let total: i64 = redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE");
    let mut by_node = 0;
    for (side, node) in sides(cluster).iter_mut().zip(cluster.nodes()) {
        let role = node.command(&["INFO", "replication"]).expect("INFO");
        if role.contains("role:master") {
            let n: i64 = redis::cmd("DBSIZE").query(side).expect("DBSIZE");
            by_node += n;
        }
    }
    assert_eq!(total, by_node, "DBSIZE summed over the masters");
    let keys: Vec<String> = conn.keys("key:1*").await.expect("KEYS");
    assert_eq!(keys.len(), 111, "KEYS merged from every master");
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
}

async fn cross_slot_commands_are_refused(client: &ClusterClient) {
    let mut conn = client.clone();
    let _: () = conn.set("x:a", 1).await.unwrap();
    let err = conn
        .rename::<_, _, ()>("x:a", "x:b")
        .await
        .expect_err("RENAME over two slots");
    let err = common::lanes_error(&err);
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.to_string().contains("CROSSSLOT"), "{err}");
    assert!(!err.is_outcome_unknown(), "nothing was sent");
    let still: i64 = conn.get("x:a").await.unwrap();
    assert_eq!(still, 1);
}

async fn pipelines_keep_their_order(client: &ClusterClient) {
    let mut conn = client.clone();
    let mut pipe = redis::pipe();
    for n in 0..50 {
        pipe.set(format!("p:{n}"), n).ignore();
    }
    pipe.set("p:text", "abc").ignore();
    for n in 0..50 {
        pipe.get(format!("p:{n}"));
    }
    let values: Vec<i64> = pipe.query_async(&mut conn).await.expect("pipeline");
    assert_eq!(values, (0..50).collect::<Vec<_>>());
    // A server error stays in its place (read raw: the `redis` API fails a pipeline with
    // any error in it, naming its index).
    let mut pipe = redis::pipe();
    pipe.get("p:1").incr("p:text", 1).get("p:2");
    let replies = redis::aio::ConnectionLike::req_packed_commands(&mut conn, &pipe, 0, 3)
        .await
        .expect("pipeline");
    assert_eq!(replies.len(), 3);
    assert!(
        matches!(replies[1], redis::Value::ServerError(_)),
        "{replies:?}"
    );
    assert_eq!(replies[0], redis::Value::BulkString(b"1".to_vec()));
    assert_eq!(replies[2], redis::Value::BulkString(b"2".to_vec()));
}

async fn transactions_stay_in_one_slot(client: &ClusterClient) {
    let mut conn = client.clone();
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .incr("{acct}:a", 1)
        .incr("{acct}:b", 2)
        .query_async(&mut conn)
        .await
        .expect("MULTI/EXEC in one slot");
    assert_eq!((a, b), (1, 2));
    let err = redis::pipe()
        .atomic()
        .incr("tx:a", 1)
        .incr("tx:b", 1)
        .query_async::<(i64, i64)>(&mut conn)
        .await
        .expect_err("MULTI/EXEC over two slots");
    assert_eq!(common::lanes_error(&err).kind(), ErrorKind::Refused);
}

async fn blocking_commands_block_only_their_lane(client: &ClusterClient) {
    let mut waiter = client.clone();
    let blocked = tokio::spawn(async move {
        let popped: Option<(String, String)> = waiter.blpop("{q}list", 5.0).await.expect("BLPOP");
        popped
    });
    // GETs on the same node go on while the BLPOP waits.
    let mut conn = client.clone();
    let started = tokio::time::Instant::now();
    for _ in 0..100 {
        let _: Option<String> = conn.get("{q}other").await.expect("GET");
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let _: i64 = conn.rpush("{q}list", "job").await.expect("RPUSH");
    let popped = tokio::time::timeout(Duration::from_secs(10), blocked)
        .await
        .expect("BLPOP returns")
        .expect("task");
    assert_eq!(popped, Some(("{q}list".to_owned(), "job".to_owned())));
    assert!(
        client.stats().blocking_idle >= 1,
        "it ran on a blocking lane"
    );
}

async fn drop_closes_every_connection(client: ClusterClient, cluster: &RedisCluster) {
    let ours = |cluster: &RedisCluster| {
        cluster
            .nodes()
            .iter()
            .map(|node| {
                node.command(&["CLIENT", "LIST"])
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains("name=lanes-cluster-test"))
                    .count()
            })
            .sum::<usize>()
    };
    assert!(ours(cluster) >= 3);
    drop(client);
    assert!(
        common::eventually(Duration::from_secs(10), || {
            let left = ours(cluster);
            async move { left == 0 }
        })
        .await,
        "connections left: {}",
        ours(cluster)
    );
}
