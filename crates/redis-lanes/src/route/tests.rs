use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::*;

fn route(words: &[&str]) -> Route {
    route_with(words, &BlockingCommands::new())
}

fn route_with(words: &[&str], declared: &BlockingCommands) -> Route {
    classify(words.iter().map(|w| w.as_bytes()), declared)
}

fn blocks(kind: BlockKind, timeout: Option<Duration>) -> Route {
    Route::Blocking(Block { timeout, kind })
}

const fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

/// Blocks forever, or the timeout is unreadable: no deadline either way.
const NONE: Option<Duration> = None;

#[test]
fn table() {
    let shared: &[&[&str]] = &[
        &["GET", "k"],
        &["set", "k", "v"],
        &["CLIENT", "ID"],
        &["client", "setname", "x"],
        &["CLIENT"],
        // Names that merely contain or resemble refused ones.
        &["MULTIPLY"],
        &["EXECUTE"],
        &["WATCHDOG"],
        &["SELECTED"],
        // Refused words as keys or values are just data.
        &["SET", "MULTI", "EXEC"],
        &["GET", "WATCH"],
        &["PUBLISH", "SUBSCRIBE", "x"],
        &["XADD", "s", "*", "QUIT", "RESET"],
        &["A_COMMAND_NAME_LONGER_THAN_SIXTEEN_BYTES"],
        &[""],
        &[],
    ];
    for words in shared {
        assert_eq!(route(words), Route::Shared, "{words:?}");
    }
    let refused: &[(&[&str], &str)] = &[
        (&["MULTI"], "atomic"),
        (&["exec"], "atomic"),
        (&["Discard"], "atomic"),
        (&["WATCH", "k"], "dedicated"),
        (&["unwatch"], "dedicated"),
        (&["SELECT", "5"], "Builder::db"),
        (&["SUBSCRIBE", "c"], "subscriber"),
        (&["psubscribe", "c*"], "subscriber"),
        (&["SSUBSCRIBE", "c"], "subscriber"),
        (&["UNSUBSCRIBE"], "subscriber"),
        (&["PUNSUBSCRIBE"], "subscriber"),
        (&["sunsubscribe"], "subscriber"),
        (&["MONITOR"], "MONITOR"),
        (&["CLIENT", "REPLY", "OFF"], "reply order"),
        (&["client", "reply", "skip"], "reply order"),
        (&["RESET"], "close"),
        (&["QUIT"], "close"),
        (&["HELLO", "3"], "Builder::protocol"),
        (&["AUTH", "pw"], "username"),
    ];
    for (words, hint) in refused {
        match route(words) {
            Route::Refused(why) => assert!(why.reason().contains(hint), "{words:?}: {why:?}"),
            other => panic!("{words:?} routed {other:?}"),
        }
    }
}

#[test]
fn blocking_table() {
    use BlockKind::*;
    let table: &[(&[&str], Route)] = &[
        // Timeout last, in seconds; fractional; 0 = forever; any case.
        (&["BLPOP", "k", "0"], blocks(Blpop, NONE)),
        (&["blpop", "a", "b", "1.5"], blocks(Blpop, ms(1500))),
        (&["BlPoP", "k", "0.5"], blocks(Blpop, ms(500))),
        (&["BRPOP", "k", "2"], blocks(Brpop, ms(2000))),
        (&["brpop", "a", "b", "0.0"], blocks(Brpop, NONE)),
        (&["BRPOPLPUSH", "s", "d", "0"], blocks(Brpoplpush, NONE)),
        (&["brpoplpush", "s", "d", "3"], blocks(Brpoplpush, ms(3000))),
        (
            &["BLMOVE", "s", "d", "LEFT", "RIGHT", "0.25"],
            blocks(Blmove, ms(250)),
        ),
        (
            &["blmove", "s", "d", "left", "left", "0"],
            blocks(Blmove, NONE),
        ),
        (&["BZPOPMIN", "z", "0.1"], blocks(Bzpopmin, ms(100))),
        (&["bzpopmin", "a", "b", "0"], blocks(Bzpopmin, NONE)),
        (&["BZPOPMAX", "z", "4"], blocks(Bzpopmax, ms(4000))),
        (&["BzPopMax", "a", "b", "0"], blocks(Bzpopmax, NONE)),
        (&["BLPOP", "k", "1e1"], blocks(Blpop, ms(10_000))),
        // The server rounds up to whole milliseconds.
        (&["BLPOP", "k", "0.0000001"], blocks(Blpop, ms(1))),
        // Timeout first: the trailing COUNT is not it.
        (
            &["BLMPOP", "1", "2", "a", "b", "LEFT", "COUNT", "3"],
            blocks(Blmpop, ms(1000)),
        ),
        (&["blmpop", "0", "1", "a", "RIGHT"], blocks(Blmpop, NONE)),
        (
            &["BZMPOP", "2.5", "1", "z", "MIN"],
            blocks(Bzmpop, ms(2500)),
        ),
        (
            &["bzmpop", "0", "1", "z", "max", "count", "9"],
            blocks(Bzmpop, NONE),
        ),
        // Milliseconds.
        (&["WAIT", "1", "0"], blocks(Wait, NONE)),
        (&["wait", "1", "100"], blocks(Wait, ms(100))),
        (&["WAITAOF", "1", "0", "250"], blocks(Waitaof, ms(250))),
        (&["waitaof", "0", "1", "0"], blocks(Waitaof, NONE)),
        // Streams: BLOCK before STREAMS.
        (
            &["XREAD", "BLOCK", "2000", "STREAMS", "s", "$"],
            blocks(Xread, ms(2000)),
        ),
        (
            &["XREAD", "COUNT", "10", "BLOCK", "0", "STREAMS", "s", "0"],
            blocks(Xread, NONE),
        ),
        (
            &["xread", "block", "5", "streams", "s", "0"],
            blocks(Xread, ms(5)),
        ),
        (
            &["XRead", "Block", "7", "Streams", "s", "0"],
            blocks(Xread, ms(7)),
        ),
        (
            &[
                "XREAD", "MAXCOUNT", "5", "MAXSIZE", "100", "BLOCK", "20", "STREAMS", "s", "0",
            ],
            blocks(Xread, ms(20)),
        ),
        // The server keeps the last BLOCK.
        (
            &["XREAD", "BLOCK", "1", "BLOCK", "2", "STREAMS", "s", "0"],
            blocks(Xread, ms(2)),
        ),
        (
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "0",
                "STREAMS",
                "s",
                ">",
            ],
            blocks(Xreadgroup, NONE),
        ),
        (
            &[
                "xreadgroup",
                "group",
                "g",
                "c",
                "count",
                "1",
                "block",
                "100",
                "noack",
                "streams",
                "s",
                ">",
            ],
            blocks(Xreadgroup, ms(100)),
        ),
        (
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "CLAIM",
                "5000",
                "BLOCK",
                "10",
                "STREAMS",
                "s",
                ">",
            ],
            blocks(Xreadgroup, ms(10)),
        ),
        // A group named STREAMS does not end the options.
        (
            &[
                "XREADGROUP",
                "GROUP",
                "STREAMS",
                "c",
                "BLOCK",
                "3",
                "STREAMS",
                "s",
                ">",
            ],
            blocks(Xreadgroup, ms(3)),
        ),
        // Unknown option words: the server rejects them at once, or they are newer than
        // this module and a BLOCK may follow. Blocking, with no deadline.
        (&["XREAD", "NOPE", "STREAMS", "s", "0"], blocks(Xread, NONE)),
        (
            &["XREAD", "FUTURE", "1", "BLOCK", "5", "STREAMS", "s", "0"],
            blocks(Xread, NONE),
        ),
        // Unreadable timeouts: still blocking (the server answers with an error at once).
        (&["BLPOP", "k", "-1"], blocks(Blpop, NONE)),
        (&["BLPOP", "k", "-0"], blocks(Blpop, NONE)),
        (&["BLPOP", "k", "abc"], blocks(Blpop, NONE)),
        (&["BLPOP", "k", "nan"], blocks(Blpop, NONE)),
        (&["BLPOP", "k", "inf"], blocks(Blpop, NONE)),
        (&["BLPOP", "k", "1e400"], blocks(Blpop, NONE)),
        (&["BLPOP", "k"], blocks(Blpop, NONE)),
        (&["BLPOP"], blocks(Blpop, NONE)),
        (&["BLMPOP"], blocks(Blmpop, NONE)),
        (&["WAIT", "1", "-5"], blocks(Wait, NONE)),
        (&["WAIT", "1", "1.5"], blocks(Wait, NONE)),
        (&["WAIT", "1"], blocks(Wait, NONE)),
        (&["WAITAOF", "1", "1"], blocks(Waitaof, NONE)),
        (
            &["XREAD", "BLOCK", "-1", "STREAMS", "s", "0"],
            blocks(Xread, NONE),
        ),
        (
            &["XREAD", "BLOCK", "x", "STREAMS", "s", "0"],
            blocks(Xread, NONE),
        ),
        (&["XREAD", "BLOCK"], blocks(Xread, NONE)),
    ];
    for (words, expected) in table {
        assert_eq!(route(words), *expected, "{words:?}");
    }
}

#[test]
fn not_blocking() {
    let shared: &[&[&str]] = &[
        // Blocking names as keys or values.
        &["GET", "BLPOP"],
        &["LPUSH", "BLOCK", "x"],
        &["SET", "WAIT", "0"],
        &["XADD", "BLOCK", "*", "BLOCK", "0"],
        // Names that merely resemble blocking ones.
        &["BLPOPX", "k", "0"],
        &["BLPO", "k", "0"],
        &["B"],
        &["WAITING"],
        &["XREADX", "BLOCK", "0", "STREAMS", "s", "0"],
        &["XRANGE", "BLOCK", "-", "+"],
        &["CLIENT", "UNBLOCK", "5"],
        // XREAD without BLOCK.
        &["XREAD", "STREAMS", "s", "0"],
        &["XREAD", "COUNT", "5", "STREAMS", "s", "0"],
        &["XREAD"],
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"],
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "NOACK",
            "CLAIM",
            "10",
            "STREAMS",
            "s",
            ">",
        ],
        // A stream named BLOCK (after STREAMS) is a key, not an option.
        &["XREAD", "STREAMS", "BLOCK", "0"],
        &["XREAD", "COUNT", "5", "STREAMS", "BLOCK", "0"],
        &["xread", "streams", "block", "0"],
        &["XREAD", "STREAMS", "s", "BLOCK", "0", "0"],
        // A group or consumer named BLOCK is not an option.
        &["XREADGROUP", "GROUP", "BLOCK", "c", "STREAMS", "s", ">"],
        &["XREADGROUP", "GROUP", "g", "BLOCK", "STREAMS", "s", ">"],
        &[
            "XREADGROUP",
            "GROUP",
            "BLOCK",
            "BLOCK",
            "STREAMS",
            "BLOCK",
            ">",
        ],
        // Nor is an option's value (the server rejects this COUNT at once).
        &["XREAD", "COUNT", "BLOCK", "STREAMS", "s", "0"],
    ];
    for words in shared {
        assert_eq!(route(words), Route::Shared, "{words:?}");
    }
}

#[test]
fn user_declared() {
    let mut declared = BlockingCommands::new();
    declared.insert("mymodule.blockingpop");
    declared.insert("MyMod.Wait");
    declared.insert("MYMOD.WAIT");
    declared.insert("GET");
    declared.insert("MULTI");
    declared.insert("BLPOP");
    assert!(declared.contains(b"MYMODULE.BLOCKINGPOP"));
    assert!(declared.contains(b"mymod.wait"));
    assert!(!declared.contains(b"mymod.wai"));
    assert_eq!(declared.names.len(), 5, "duplicates are not stored twice");

    let user = blocks(BlockKind::UserDeclared, NONE);
    let table: &[(&[&str], Route)] = &[
        // Longer than the name buffer, any case.
        (&["MYMODULE.BLOCKINGPOP", "k"], user),
        (&["MyModule.BlockingPop", "k", "5"], user),
        (&["mymod.wait"], user),
        // The user opted in, even for a command that is ordinarily shared.
        (&["get", "k"], user),
        (&["MYMODULE.BLOCKINGPOPX", "k"], Route::Shared),
        (&["MYMODULE.BLOCKINGPO", "k"], Route::Shared),
        (&["HGET", "MYMODULE.BLOCKINGPOP", "f"], Route::Shared),
        (&["SET", "mymod.wait", "1"], Route::Shared),
        // Built-in rules win over declarations.
        (&["MULTI"], Route::Refused(Refusal::Multi)),
        (&["BLPOP", "k", "2"], blocks(BlockKind::Blpop, ms(2000))),
        (&["XREAD", "STREAMS", "s", "0"], Route::Shared),
    ];
    for (words, expected) in table {
        assert_eq!(route_with(words, &declared), *expected, "{words:?}");
    }
    // Nothing is user-declared by default.
    assert_eq!(route(&["MYMODULE.BLOCKINGPOP"]), Route::Shared);
}

#[test]
fn pipelines() {
    let none = BlockingCommands::new();
    let mut pipe = redis::pipe();
    pipe.get("a").set("b", 1);
    assert_eq!(classify_pipeline(&pipe, &none), Route::Shared);
    pipe.atomic();
    assert_eq!(classify_pipeline(&pipe, &none), Route::Shared);
    assert_eq!(classify_pipeline(&redis::pipe(), &none), Route::Shared);

    let mut bad = redis::pipe();
    bad.cmd("MULTI").get("a").cmd("EXEC");
    assert_eq!(
        classify_pipeline(&bad, &none),
        Route::Refused(Refusal::Multi)
    );
    let mut bad = redis::pipe();
    bad.get("a").cmd("SELECT").arg(2);
    assert_eq!(
        classify_pipeline(&bad, &none),
        Route::Refused(Refusal::Select(Some(2)))
    );

    // Refused wins over blocking, wherever it is.
    let mut bad = redis::pipe();
    bad.cmd("BLPOP").arg("k").arg(0).cmd("SELECT").arg(2);
    assert_eq!(
        classify_pipeline(&bad, &none),
        Route::Refused(Refusal::Select(Some(2)))
    );
    let mut bad = redis::pipe();
    bad.cmd("WATCH").arg("k").cmd("BLPOP").arg("k").arg(1);
    assert_eq!(
        classify_pipeline(&bad, &none),
        Route::Refused(Refusal::Watch)
    );

    // Blocking commands run one after another: their timeouts add up; the kind is the
    // first one's.
    let mut sum = redis::pipe();
    sum.get("a")
        .cmd("BZPOPMIN")
        .arg("z")
        .arg(0.5)
        .cmd("BLPOP")
        .arg("k")
        .arg(1)
        .cmd("WAIT")
        .arg(1)
        .arg(250);
    assert_eq!(
        classify_pipeline(&sum, &none),
        blocks(BlockKind::Bzpopmin, ms(1750))
    );
    // The same, atomic: routed the same way.
    sum.atomic();
    assert_eq!(
        classify_pipeline(&sum, &none),
        blocks(BlockKind::Bzpopmin, ms(1750))
    );

    // Any command that may block forever makes the whole pipeline do so.
    let mut forever = redis::pipe();
    forever
        .cmd("BLPOP")
        .arg("k")
        .arg(1)
        .cmd("XREAD")
        .arg("BLOCK")
        .arg(0)
        .arg("STREAMS")
        .arg("s")
        .arg("$")
        .cmd("BRPOP")
        .arg("k")
        .arg(2);
    assert_eq!(
        classify_pipeline(&forever, &none),
        blocks(BlockKind::Blpop, NONE)
    );

    // A stream named BLOCK keeps a pipeline shared; a declared command does not.
    let mut streams = redis::pipe();
    streams
        .cmd("XREAD")
        .arg("STREAMS")
        .arg("BLOCK")
        .arg(0)
        .cmd("MYMOD.POP")
        .arg("k");
    assert_eq!(classify_pipeline(&streams, &none), Route::Shared);
    let mut declared = BlockingCommands::new();
    declared.insert("mymod.pop");
    assert_eq!(
        classify_pipeline(&streams, &declared),
        blocks(BlockKind::UserDeclared, NONE)
    );
}

#[test]
fn commands_built_with_the_redis_api() {
    let none = BlockingCommands::new();
    assert_eq!(
        classify_cmd(&redis::cmd("GET").arg("k").clone(), &none),
        Route::Shared
    );
    let mut watch = redis::cmd("watch");
    watch.arg("k");
    assert!(matches!(classify_cmd(&watch, &none), Route::Refused(_)));
    let mut blpop = redis::cmd("blpop");
    blpop.arg("a").arg("b").arg(1.5);
    assert_eq!(
        classify_cmd(&blpop, &none),
        blocks(BlockKind::Blpop, ms(1500))
    );
    // A cursor's value is unknown until the command is written: it holds BLMPOP's
    // timeout position, but no timeout is guessed from the arguments after it.
    let mut cursor = redis::cmd("BLMPOP");
    cursor.cursor_arg(0).arg(1).arg("k").arg("LEFT");
    assert_eq!(
        classify_cmd(&cursor, &none),
        blocks(BlockKind::Blmpop, NONE)
    );
}

proptest! {
    /// No input panics, and only a blocking or declared name can route as blocking,
    /// whatever its arguments.
    #[test]
    fn never_panics_nor_blocks_by_accident(
        words in vec(
            prop_oneof![
                select(vec![
                    "BLPOP", "bzmpop", "WAIT", "WAITAOF", "XREAD", "xreadgroup", "GROUP",
                    "BLOCK", "block", "STREAMS", "COUNT", "NOACK", "CLAIM", "MAXSIZE", "0",
                    "-1", "0.5", "1e400", "nan", "GET", "MULTI", "CLIENT", "REPLY",
                    "MYMOD.BLOCKINGPOP",
                ])
                .prop_map(|w| w.as_bytes().to_vec()),
                vec(any::<u8>(), 0..20),
            ],
            0..12,
        )
    ) {
        let mut declared = BlockingCommands::new();
        declared.insert("mymod.blockingpop");
        let routed = classify(words.iter().map(Vec::as_slice), &declared);
        if let Route::Blocking(_) = routed {
            let name = words.first().map(|w| w.to_ascii_uppercase()).unwrap_or_default();
            prop_assert!(
                [
                    &b"BLPOP"[..], b"BZMPOP", b"WAIT", b"WAITAOF", b"XREAD", b"XREADGROUP",
                    b"MYMOD.BLOCKINGPOP",
                ]
                .contains(&name.as_slice()),
                "{words:?}"
            );
        }
    }
}
