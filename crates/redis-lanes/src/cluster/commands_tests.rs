use super::*;

fn words(text: &str) -> Vec<Vec<u8>> {
    text.split(' ').map(|w| w.as_bytes().to_vec()).collect()
}

fn keys_of(commands: &Commands, text: &str) -> Keys {
    let args = words(text);
    let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    commands.keys(&args)
}

fn at(indexes: &[usize]) -> Keys {
    Keys::At(indexes.to_vec())
}

/// The key positions of real commands, from a real server's `COMMAND` reply, in both
/// protocols.
#[test]
fn key_positions_from_the_server() {
    let server = redis_lanes_testkit::RedisServer::start().expect("server");
    for protocol in ["resp2", "resp3"] {
        let url = format!("{}?protocol={protocol}", server.url());
        let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        let reply: Value = redis::cmd("COMMAND").query(&mut conn).unwrap();
        let commands = Commands::from_reply(&reply).unwrap();
        assert!(!commands.is_empty());
        let table: &[(&str, Keys)] = &[
            ("GET k", at(&[1])),
            ("get k", at(&[1])),
            ("SET k v EX 10", at(&[1])),
            ("MGET a b c", at(&[1, 2, 3])),
            ("MSET a 1 b 2", at(&[1, 3])),
            ("DEL a b", at(&[1, 2])),
            ("RENAME a b", at(&[1, 2])),
            ("XREAD COUNT 1 STREAMS s1 s2 0 0", at(&[4, 5])),
            ("XREADGROUP GROUP g c BLOCK 0 STREAMS s >", at(&[7])),
            ("EVAL return 2 k1 k2 arg", at(&[3, 4])),
            ("EVALSHA abc 0 arg", at(&[])),
            ("ZUNIONSTORE dest 2 a b WEIGHTS 1 2", at(&[1, 3, 4])),
            ("BLMPOP 0 2 a b LEFT", at(&[3, 4])),
            ("LMOVE a b LEFT RIGHT", at(&[1, 2])),
            ("XGROUP CREATE s g $", at(&[2])),
            ("xgroup destroy s g", at(&[2])),
            ("OBJECT ENCODING k", at(&[2])),
            ("PING", at(&[])),
            ("DBSIZE", at(&[])),
            ("NO.SUCH.COMMAND a b", Keys::Unknown),
        ];
        for (text, expected) in table {
            assert_eq!(&keys_of(&commands, text), expected, "{protocol}: {text}");
        }
        let policy = |text: &str| {
            let args = words(text);
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let command = commands.lookup(&args).expect("known");
            (command.request, command.response)
        };
        assert_eq!(
            policy("DBSIZE"),
            (Some(RequestPolicy::AllShards), Some(ResponsePolicy::AggSum))
        );
        assert_eq!(policy("KEYS *").0, Some(RequestPolicy::AllShards));
        assert_eq!(policy("MGET a b").0, Some(RequestPolicy::MultiShard));
        assert_eq!(
            policy("SCRIPT FLUSH"),
            (
                Some(RequestPolicy::AllNodes),
                Some(ResponsePolicy::AllSucceeded)
            )
        );
        assert_eq!(policy("GET k"), (None, None));
    }
}

/// A module-style command described only by its key specs: keys found by keyword and by
/// a count, as a module's `COMMAND` entry would give them.
#[test]
fn a_module_command_by_its_key_specs() {
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    let flat = |pairs: Vec<(&str, Value)>| {
        Value::Array(pairs.into_iter().flat_map(|(k, v)| [bulk(k), v]).collect())
    };
    let spec = |begin: Value, find: Value| flat(vec![("begin_search", begin), ("find_keys", find)]);
    let keyword = flat(vec![
        ("type", bulk("keyword")),
        (
            "spec",
            flat(vec![
                ("keyword", bulk("KEYS")),
                ("startfrom", Value::Int(1)),
            ]),
        ),
    ]);
    let keynum = flat(vec![
        ("type", bulk("keynum")),
        (
            "spec",
            flat(vec![
                ("keynumidx", Value::Int(0)),
                ("firstkey", Value::Int(1)),
                ("keystep", Value::Int(1)),
            ]),
        ),
    ]);
    let entry = Value::Array(vec![
        bulk("mod.join"),
        Value::Int(-3),
        Value::Array(vec![]),
        Value::Int(0),
        Value::Int(0),
        Value::Int(0),
        Value::Array(vec![]),
        Value::Array(vec![bulk("request_policy:multi_shard")]),
        Value::Array(vec![spec(keyword, keynum)]),
        Value::Array(vec![]),
    ]);
    let commands = Commands::from_reply(&Value::Array(vec![entry])).unwrap();
    assert_eq!(
        keys_of(&commands, "MOD.JOIN x KEYS 2 a b tail"),
        at(&[4, 5])
    );
    assert_eq!(keys_of(&commands, "mod.join x KEYS 0"), at(&[]));
    assert_eq!(
        keys_of(&commands, "mod.join x"),
        at(&[]),
        "no keyword: no keys"
    );
    // A count far beyond the arguments: the keys that are there, no overflow.
    assert_eq!(
        keys_of(&commands, "mod.join x KEYS 18446744073709551615 a b"),
        at(&[4, 5])
    );
    // An unreadable count: the keys cannot be told.
    assert_eq!(keys_of(&commands, "mod.join KEYS many a"), Keys::Unknown);
}

/// A Redis 6 entry (no key specs): the legacy first/last/step triple.
#[test]
fn the_legacy_triple() {
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    let entry = |name: &str, first: i64, last: i64, step: i64| {
        Value::Array(vec![
            bulk(name),
            Value::Int(-2),
            Value::Array(vec![]),
            Value::Int(first),
            Value::Int(last),
            Value::Int(step),
            Value::Array(vec![]),
        ])
    };
    let commands = Commands::from_reply(&Value::Array(vec![
        entry("mset", 1, -1, 2),
        entry("get", 1, 1, 1),
        entry("ping", 0, 0, 0),
    ]))
    .unwrap();
    assert_eq!(keys_of(&commands, "MSET a 1 b 2"), at(&[1, 3]));
    assert_eq!(keys_of(&commands, "GET a"), at(&[1]));
    assert_eq!(keys_of(&commands, "PING"), at(&[]));
}
