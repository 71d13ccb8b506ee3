use redis::Value;

use super::*;
use crate::cluster::slot::slot;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn node(fields: &[(&str, Value)]) -> Value {
    Value::Array(
        fields
            .iter()
            .flat_map(|(k, v)| [bulk(k), v.clone()])
            .collect(),
    )
}

fn shard(slots: &[i64], nodes: Vec<Value>) -> Value {
    node(&[
        (
            "slots",
            Value::Array(slots.iter().map(|&s| Value::Int(s)).collect()),
        ),
        ("nodes", Value::Array(nodes)),
    ])
}

fn shard_node(endpoint: &str, port: i64, role: &str, health: &str) -> Value {
    node(&[
        ("id", bulk("abc")),
        ("port", Value::Int(port)),
        ("ip", bulk("10.0.0.9")),
        ("endpoint", bulk(endpoint)),
        ("role", bulk(role)),
        ("replication-offset", Value::Int(1)),
        ("health", bulk(health)),
    ])
}

#[test]
fn shards_in_resp2_form() {
    let reply = Value::Array(vec![
        shard(
            &[0, 5460, 10923, 10999],
            vec![
                shard_node("a.example", 7000, "master", "online"),
                shard_node("b.example", 7003, "replica", "online"),
                shard_node("c.example", 7006, "replica", "failed"),
            ],
        ),
        shard(
            &[5461, 10922, 11000, 16383],
            vec![shard_node("?", 7001, "master", "online")],
        ),
        // A master without slots serves nothing and is left out.
        shard(&[], vec![shard_node("d.example", 7002, "master", "online")]),
    ]);
    let map = from_shards(&reply, "seed.example").unwrap();
    assert_eq!(map.uncovered(), 0);
    assert_eq!(map.shards().len(), 2);
    let first = map.shard(0).unwrap();
    assert_eq!(first.master.to_string(), "a.example:7000");
    assert_eq!(first.replicas.len(), 1, "the failed replica is left out");
    assert_eq!(map.master(10923).unwrap().host, "a.example");
    // `?`: the endpoint is unknown; the ip is used.
    assert_eq!(map.master(5461).unwrap().to_string(), "10.0.0.9:7001");
    assert_eq!(map.master(16383).unwrap().port, 7001);
}

#[test]
fn shards_in_resp3_form() {
    let to_map = |v: Value| match v {
        Value::Array(flat) => Value::Map(
            flat.chunks(2)
                .map(|kv| (kv[0].clone(), kv[1].clone()))
                .collect(),
        ),
        other => other,
    };
    let nodes = vec![to_map(shard_node("", 7000, "master", "online"))];
    let one = to_map(shard(&[0, 16383], nodes));
    let map = from_shards(&Value::Array(vec![one]), "seed.example").unwrap();
    // No endpoint: the ip.
    assert_eq!(map.master(100).unwrap().host, "10.0.0.9");
}

#[test]
fn slots_form_groups_ranges_by_master() {
    let node = |host: &str, port: i64| Value::Array(vec![bulk(host), Value::Int(port), bulk("id")]);
    let reply = Value::Array(vec![
        Value::Array(vec![
            Value::Int(0),
            Value::Int(99),
            node("h", 1),
            node("r", 4),
        ]),
        Value::Array(vec![Value::Int(100), Value::Int(16383), node("", 2)]),
        Value::Array(vec![]),
    ]);
    assert!(
        from_slots(&reply, "seed").is_err(),
        "a range without a master"
    );
    let reply = Value::Array(vec![
        Value::Array(vec![
            Value::Int(0),
            Value::Int(99),
            node("h", 1),
            node("r", 4),
        ]),
        Value::Array(vec![Value::Int(100), Value::Int(200), node("", 2)]),
        Value::Array(vec![Value::Int(201), Value::Int(16383), node("h", 1)]),
    ]);
    let map = from_slots(&reply, "seed").unwrap();
    assert_eq!(map.shards().len(), 2);
    assert_eq!(map.master(5000).unwrap().to_string(), "h:1");
    assert_eq!(map.master(150).unwrap().to_string(), "seed:2");
    assert_eq!(map.shard(0).unwrap().replicas[0].to_string(), "r:4");
}

/// One shard served by `host:1`.
fn one_shard(host: &str, start: u16, end: u16) -> Shard {
    Shard {
        slots: vec![(start, end)],
        master: NodeAddr {
            host: host.into(),
            port: 1,
        },
        replicas: vec![],
    }
}

#[test]
fn bad_maps_are_refused() {
    let overlap = vec![one_shard("a", 0, 10), one_shard("b", 10, 20)];
    assert!(SlotMap::new(overlap).is_err());
    assert!(SlotMap::new(vec![one_shard("a", 0, 16384)]).is_err());
    assert!(SlotMap::new(vec![one_shard("a", 0, 16383)]).is_ok());
    assert!(from_shards(&Value::Int(1), "s").is_err());
    assert!(from_slots(&Value::Nil, "s").is_err());
}

/// Against a real local cluster (3 masters, 1 replica each), in both protocols: both
/// commands give the same map, which agrees with the server's own `CLUSTER KEYSLOT` and
/// `MOVED` answers.
#[test]
fn a_real_cluster_reads_the_same_both_ways() {
    let cluster = redis_lanes_testkit::RedisCluster::start(3, 1).expect("cluster");
    let seed = &cluster.nodes()[0];
    for protocol in ["resp2", "resp3"] {
        let url = format!("{}?protocol={protocol}", seed.url());
        let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        let shards: Value = redis::cmd("CLUSTER")
            .arg("SHARDS")
            .query(&mut conn)
            .unwrap();
        let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut conn).unwrap();
        let a = from_shards(&shards, "127.0.0.1").unwrap();
        let b = from_slots(&slots, "127.0.0.1").unwrap();
        assert_eq!(a.uncovered(), 0, "{protocol}");
        assert_eq!(a.shards().len(), 3, "{protocol}");
        // A replica is listed once it is in sync and, for `CLUSTER SLOTS`, once it has
        // received data: at most one each here.
        for shard in a.shards().iter().chain(b.shards()) {
            assert!(shard.replicas.len() <= 1, "{protocol}: {shard:?}");
        }
        for key in ["foo", "bar", "{user1}.a", "zzz", "k:123"] {
            let s = slot(key.as_bytes());
            let keyslot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .query(&mut conn)
                .unwrap();
            assert_eq!(i64::from(s), keyslot, "{key}");
            assert_eq!(a.master(s), b.master(s), "{protocol}: slot {s}");
            // The owner answers GET itself; any other master says MOVED.
            let owner = a.master(s).unwrap();
            let mut there = redis::Client::open(format!("redis://{owner}"))
                .unwrap()
                .get_connection()
                .unwrap();
            let got: redis::RedisResult<Option<String>> =
                redis::cmd("GET").arg(key).query(&mut there);
            assert!(got.is_ok(), "{key} at {owner}: {got:?}");
        }
    }
}
