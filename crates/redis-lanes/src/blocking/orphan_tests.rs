//! Tests for `orphan.rs`: table tests of every rule on hand-built RESP2 and RESP3 reply
//! shapes, then (in `orphan_server_tests.rs`) round trips against a real server in both
//! protocols, where the replies come from the server itself and the restore is checked by
//! reading the data back.
//!
//! Commands are written as space-separated words to keep the tables one case a line.

use redis::{Arg, Value};

use super::{outcome_of, plan, OrphanOutcome, RestorePlan, UNDO_MOVE};

fn b(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

fn arr(items: Vec<Value>) -> Value {
    Value::Array(items)
}

/// The plan for `command` (its kind as the router finds it; user-declared when the
/// router does not know it as blocking).
fn plan_of(command: &str, reply: &Value) -> RestorePlan {
    let args: Vec<&[u8]> = command.split_whitespace().map(str::as_bytes).collect();
    plan(kind_of(&args), &args, reply)
}

pub(super) fn kind_of(args: &[&[u8]]) -> crate::route::BlockKind {
    use crate::route::{classify, BlockKind, BlockingCommands, Route};
    match classify(args.iter().copied(), &BlockingCommands::new()) {
        Route::Blocking(block) => block.kind,
        _ => BlockKind::UserDeclared,
    }
}

/// The restore command as space-separated words (the `BLMOVE` script shown as `UNDO`),
/// and whether it is conditional; panics on any other plan.
fn restore_of(command: &str, reply: &Value) -> (String, bool) {
    let RestorePlan::Restore { cmd, conditional } = plan_of(command, reply) else {
        panic!("{command} {reply:?}: expected a restore");
    };
    let words: Vec<String> = cmd
        .args_iter()
        .map(|arg| match arg {
            Arg::Simple(bytes) if bytes == UNDO_MOVE.as_bytes() => "UNDO".to_owned(),
            Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            _ => "<cursor>".to_owned(),
        })
        .collect();
    (words.join(" "), conditional)
}

fn kind(plan: &RestorePlan) -> &'static str {
    match plan {
        RestorePlan::Nothing => "nothing",
        RestorePlan::Restore { .. } => "restore",
        RestorePlan::Report => "report",
    }
}

fn server_error() -> Value {
    let value = redis::parse_redis_value(b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n");
    let value = value.unwrap();
    assert!(matches!(value, Value::ServerError(_)), "{value:?}");
    value
}

const ALL_COMMANDS: [&str; 12] = [
    "BLPOP l 0",
    "BRPOP l 0",
    "BLMPOP 0 1 l LEFT COUNT 2",
    "BZPOPMIN z 0",
    "BZPOPMAX z 0",
    "BZMPOP 0 1 z MIN COUNT 2",
    "BLMOVE s d LEFT RIGHT 0",
    "BRPOPLPUSH s d 0",
    "XREADGROUP GROUP g c BLOCK 0 STREAMS s >",
    "XREAD BLOCK 0 STREAMS s $",
    "WAIT 1 0",
    "MODULE.BPOP k 0",
];

#[test]
fn list_pops_push_back_to_the_end_they_came_from() {
    let one = arr(vec![b("l"), b("e1")]);
    let three = arr(vec![b("l"), arr(vec![b("e1"), b("e2"), b("e3")])]);
    let cases = [
        ("BLPOP l 0", &one, "LPUSH l e1"),
        ("blpop other l 1.5", &one, "LPUSH l e1"),
        ("BRPOP l 0", &one, "RPUSH l e1"),
        ("bRpOp l 0", &one, "RPUSH l e1"),
        // e1 was popped first, so it goes back last.
        ("BLMPOP 0 1 l LEFT COUNT 3", &three, "LPUSH l e3 e2 e1"),
        ("BLMPOP 0 1 l RIGHT COUNT 3", &three, "RPUSH l e3 e2 e1"),
        ("blmpop 0 1 l left count 3", &three, "LPUSH l e3 e2 e1"),
        // Keys named like directions: `numkeys` decides, not the words.
        ("BLMPOP 0 2 LEFT l RIGHT", &three, "RPUSH l e3 e2 e1"),
    ];
    for (command, reply, expected) in cases {
        assert_eq!(
            restore_of(command, reply),
            (expected.into(), false),
            "{command}"
        );
    }
}

#[test]
fn zset_pops_add_back_with_the_exact_score_and_nx() {
    let pop = |score: Value| arr(vec![b("z"), b("m"), score]);
    let cases = [
        // RESP2 sends the score as text: passed on untouched.
        (pop(b("0.10000000000000001")), "0.10000000000000001"),
        (pop(b("inf")), "inf"),
        (pop(b("-inf")), "-inf"),
        (pop(b("3")), "3"),
        // RESP3 sends a double: shortest exact text.
        (pop(Value::Double(0.1)), "1e-1"),
        (pop(Value::Double(2.5)), "2.5e0"),
        (pop(Value::Double(-0.0)), "-0e0"),
        (pop(Value::Double(1e300)), "1e300"),
        (pop(Value::Double(f64::INFINITY)), "inf"),
        (pop(Value::Double(f64::NEG_INFINITY)), "-inf"),
    ];
    for (reply, score) in &cases {
        for name in ["BZPOPMIN", "BZPOPMAX", "bzpopmin"] {
            let expected = format!("ZADD z NX {score} m");
            assert_eq!(
                restore_of(&format!("{name} y z 0"), reply),
                (expected, false)
            );
        }
    }
    let pairs = |a: Value, b_: Value| {
        arr(vec![
            b("z"),
            arr(vec![arr(vec![b("a"), a]), arr(vec![b("b"), b_])]),
        ])
    };
    let resp2 = pairs(b("1"), b("-inf"));
    let resp3 = pairs(Value::Double(1.0), Value::Double(f64::NEG_INFINITY));
    let cases = [
        ("BZMPOP 0 2 y z MIN COUNT 2", &resp2, "ZADD z NX 1 a -inf b"),
        (
            "BZMPOP 0 2 y z MIN COUNT 2",
            &resp3,
            "ZADD z NX 1e0 a -inf b",
        ),
        ("bzmpop 0 1 z max", &resp3, "ZADD z NX 1e0 a -inf b"),
    ];
    for (command, reply, expected) in cases {
        assert_eq!(
            restore_of(command, reply),
            (expected.into(), false),
            "{command}"
        );
    }
}

#[test]
fn moves_are_reversed_by_the_conditional_script() {
    let cases = [
        (
            "BLMOVE src dst LEFT RIGHT 0",
            "EVAL UNDO 2 src dst elem LEFT RIGHT",
        ),
        (
            "blmove src dst right left 0",
            "EVAL UNDO 2 src dst elem RIGHT LEFT",
        ),
        (
            "BRPOPLPUSH src dst 0",
            "EVAL UNDO 2 src dst elem RIGHT LEFT",
        ),
        (
            "brpoplpush src src 0",
            "EVAL UNDO 2 src src elem RIGHT LEFT",
        ),
    ];
    for (command, expected) in cases {
        assert_eq!(
            restore_of(command, &b("elem")),
            (expected.into(), true),
            "{command}"
        );
    }
}

#[test]
fn stream_group_reads_are_reported_unless_empty() {
    let entry = arr(vec![b("1-0"), arr(vec![b("f"), b("v")])]);
    let deleted = arr(vec![b("2-0"), Value::Nil]);
    let map = |entries: Vec<Value>| Value::Map(vec![(b("s"), arr(entries))]);
    let nested = |entries: Vec<Value>| arr(vec![arr(vec![b("s"), arr(entries)])]);
    let cases = [
        (nested(vec![entry.clone()]), "report"),
        (map(vec![entry.clone()]), "report"),
        (nested(vec![deleted.clone()]), "report"),
        (map(vec![deleted]), "report"),
        (Value::Nil, "nothing"),
        (nested(vec![]), "nothing"),
        (map(vec![]), "nothing"),
        (Value::Map(vec![]), "nothing"),
        (arr(vec![b("s")]), "report"),
        (Value::Map(vec![(b("s"), Value::Int(1))]), "report"),
        (b("1-0"), "report"),
    ];
    for (reply, expected) in cases {
        for command in [
            "XREADGROUP GROUP g c BLOCK 0 STREAMS s >",
            "xreadgroup GROUP g c NOACK BLOCK 0 STREAMS s >",
        ] {
            assert_eq!(
                kind(&plan_of(command, &reply)),
                expected,
                "{command} {reply:?}"
            );
        }
    }
}

#[test]
fn commands_without_side_effects_need_nothing() {
    let entries = arr(vec![arr(vec![
        b("s"),
        arr(vec![arr(vec![b("1-0"), arr(vec![])])]),
    ])]);
    let cases = [
        ("XREAD BLOCK 0 STREAMS s $", entries),
        (
            "xread BLOCK 0 STREAMS s $",
            Value::Map(vec![(b("s"), arr(vec![]))]),
        ),
        ("WAIT 1 0", Value::Int(0)),
        ("WAITAOF 1 0 0", arr(vec![Value::Int(1), Value::Int(0)])),
    ];
    for (command, reply) in cases {
        assert_eq!(kind(&plan_of(command, &reply)), "nothing", "{command}");
    }
}

#[test]
fn unknown_commands_report_data_and_ignore_nil() {
    let cases = [
        (b("x"), "report"),
        (Value::Okay, "report"),
        (Value::Int(3), "report"),
        (arr(vec![b("k"), b("v")]), "report"),
        (Value::Nil, "nothing"),
        (arr(vec![]), "nothing"),
        (server_error(), "nothing"),
    ];
    for (reply, expected) in cases {
        for command in ["MODULE.BPOP k 0", ""] {
            assert_eq!(
                kind(&plan_of(command, &reply)),
                expected,
                "{command:?} {reply:?}"
            );
        }
    }
}

#[test]
fn empty_and_error_replies_are_nothing_for_every_command() {
    let nothing = [
        Value::Nil,
        arr(vec![]),
        Value::Set(vec![]),
        Value::Map(vec![]),
        server_error(),
    ];
    for reply in nothing {
        for command in ALL_COMMANDS {
            assert_eq!(
                kind(&plan_of(command, &reply)),
                "nothing",
                "{command} {reply:?}"
            );
        }
    }
}

#[test]
fn attributes_are_looked_through() {
    let attributed = |data: Value| Value::Attribute {
        data: Box::new(data),
        attributes: vec![(b("ttl"), Value::Int(1))],
    };
    let reply = attributed(arr(vec![attributed(b("l")), b("e")]));
    assert_eq!(restore_of("BLPOP l 0", &reply), ("LPUSH l e".into(), false));
    assert_eq!(
        kind(&plan_of("BLPOP l 0", &attributed(Value::Nil))),
        "nothing"
    );
    let restored = outcome_of(true, &attributed(Value::Int(1)));
    assert_eq!(restored, OrphanOutcome::Restored);
}

#[test]
fn malformed_replies_and_arguments_are_reported() {
    let list = arr(vec![b("l"), b("e")]);
    let many = arr(vec![b("l"), arr(vec![b("e")])]);
    let zset = arr(vec![b("z"), b("m"), b("1")]);
    let zsets = arr(vec![b("z"), arr(vec![arr(vec![b("m"), b("1")])])]);
    let cases = [
        // The reply names a key the command did not.
        ("BLPOP other 0", list.clone()),
        ("BLMPOP 0 1 other LEFT", many.clone()),
        ("BZPOPMIN other 0", zset.clone()),
        ("BZMPOP 0 1 other MIN", zsets.clone()),
        // Wrong reply shapes.
        ("BLPOP l 0", arr(vec![b("l")])),
        ("BLPOP l 0", arr(vec![b("l"), b("e"), b("x")])),
        ("BLPOP l 0", arr(vec![b("l"), Value::Int(1)])),
        (
            "BLPOP l 0",
            arr(vec![Value::SimpleString("l".into()), b("e")]),
        ),
        ("BRPOP l 0", b("e")),
        ("BRPOP l 0", Value::Map(vec![(b("l"), b("e"))])),
        ("BLMPOP 0 1 l LEFT", list.clone()),
        ("BLMPOP 0 1 l LEFT", arr(vec![b("l"), arr(vec![])])),
        (
            "BLMPOP 0 1 l LEFT",
            arr(vec![b("l"), arr(vec![b("e"), Value::Nil])]),
        ),
        ("BZPOPMIN z 0", arr(vec![b("z"), b("m")])),
        (
            "BZPOPMIN z 0",
            arr(vec![b("z"), b("m"), Value::Double(f64::NAN)]),
        ),
        ("BZPOPMIN z 0", arr(vec![b("z"), b("m"), Value::Int(1)])),
        ("BZPOPMIN z 0", arr(vec![b("z"), b("m"), b("")])),
        ("BZPOPMAX z 0", arr(vec![b("z"), b("1"), b("m"), b("2")])),
        ("BZMPOP 0 1 z MIN", zset.clone()),
        ("BZMPOP 0 1 z MIN", arr(vec![b("z"), arr(vec![])])),
        (
            "BZMPOP 0 1 z MIN",
            arr(vec![b("z"), arr(vec![arr(vec![b("m")])])]),
        ),
        (
            "BZMPOP 0 1 z MIN",
            arr(vec![b("z"), arr(vec![b("m"), b("1")])]),
        ),
        ("BLMOVE s d LEFT RIGHT 0", list.clone()),
        ("BLMOVE s d LEFT RIGHT 0", Value::Int(1)),
        ("BRPOPLPUSH s d 0", Value::Okay),
        // Malformed arguments.
        ("BLPOP", list.clone()),
        ("BLPOP l", list),
        ("BLMPOP 0 x l LEFT", many.clone()),
        ("BLMPOP 0 0 l LEFT", many.clone()),
        ("BLMPOP 0 -1 l LEFT", many.clone()),
        ("BLMPOP 0 2 l LEFT", many.clone()),
        ("BLMPOP 0 18446744073709551615 l LEFT", many.clone()),
        ("BLMPOP 0 1 l UP", many.clone()),
        ("BLMPOP 0 1 l", many.clone()),
        ("BLMPOP 0", many),
        ("BZMPOP 0 1 z LEFT", zsets.clone()),
        ("BZMPOP 0 1 z", zsets),
        ("BZPOPMIN", zset),
        ("BLMOVE s d UP LEFT 0", b("e")),
        ("BLMOVE s d LEFT", b("e")),
        ("BLMOVE s", b("e")),
        ("BRPOPLPUSH", b("e")),
    ];
    for (command, reply) in cases {
        assert_eq!(
            kind(&plan_of(command, &reply)),
            "report",
            "{command} {reply:?}"
        );
    }
}

/// Every known command, cut short at every length, against replies of every odd shape.
#[test]
fn no_input_panics() {
    let nil = || Value::Nil;
    let replies = [
        nil(),
        Value::Int(-1),
        b(""),
        b("e"),
        Value::Double(f64::NAN),
        Value::Boolean(true),
        Value::Okay,
        arr(vec![nil()]),
        arr(vec![nil(), nil()]),
        arr(vec![nil(), nil(), nil()]),
        arr(vec![b("k"), arr(vec![nil(), arr(vec![])])]),
        arr(vec![arr(vec![]), arr(vec![arr(vec![])])]),
        Value::Map(vec![(nil(), nil())]),
        Value::Set(vec![b("k")]),
        Value::Push {
            kind: redis::PushKind::Message,
            data: vec![b("k")],
        },
    ];
    for command in ALL_COMMANDS {
        let words: Vec<&str> = command.split(' ').collect();
        for len in 0..=words.len() {
            for reply in &replies {
                let _ = plan_of(&words[..len].join(" "), reply);
            }
        }
    }
    for reply in &replies {
        let _ = (outcome_of(true, reply), outcome_of(false, reply));
    }
}

#[test]
fn restore_outcomes() {
    use OrphanOutcome::{Reported, Restored};
    let cases = [
        (true, Value::Int(1), Restored),
        (true, Value::Int(0), Reported),
        (true, Value::Int(2), Reported),
        (true, Value::Nil, Reported),
        (true, server_error(), Reported),
        (false, Value::Int(3), Restored),
        // ZADD NX found every member re-added meanwhile: the set is as if never popped.
        (false, Value::Int(0), Restored),
        (false, server_error(), Reported),
        (false, Value::Okay, Reported),
        (false, Value::Nil, Reported),
    ];
    for (conditional, reply, expected) in cases {
        assert_eq!(
            outcome_of(conditional, &reply),
            expected,
            "{conditional} {reply:?}"
        );
    }
}

#[test]
fn double_scores_round_trip_bit_for_bit() {
    let values = [
        0.1,
        1.0 / 3.0,
        -2.0 / 3.0,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        -0.0,
        0.0,
        1e16,
        123_456_789.123_456_79,
        9_007_199_254_740_993.0,
    ];
    for value in values {
        let reply = arr(vec![b("z"), b("m"), Value::Double(value)]);
        let (cmd, _) = restore_of("BZPOPMIN z 0", &reply);
        let text = cmd.split(' ').nth(3).unwrap();
        let parsed: f64 = text.parse().unwrap();
        assert_eq!(parsed.to_bits(), value.to_bits(), "{value:?} as {text}");
    }
}

#[path = "orphan_server_tests.rs"]
mod server;
