//! Which lane a command may run on, decided from its name and arguments.
//!
//! This module is pure: no I/O, no state. Every decision is covered by the table test
//! at the bottom, false positives as carefully as true ones.

use redis::{Arg, Cmd, Pipeline};

/// Where a command goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Safe to share: stateless with respect to the connection, answered promptly.
    Shared,
    /// Would corrupt a shared connection. The text says why and what to use instead.
    Refused(&'static str),
}

const TRANSACTION: &str = "a bare MULTI/EXEC/DISCARD would interleave with other callers' \
     commands on the shared connection; use `redis::pipe().atomic()`, which writes \
     MULTI ... EXEC contiguously";
const WATCH: &str = "WATCH/UNWATCH keep per-connection state that other callers' commands \
     on the shared connection would see and change; optimistic transactions need a \
     dedicated connection";
const SELECT: &str = "SELECT would switch the database under every other caller of the \
     shared connection; choose the database in the URL (`redis://host/5`) or with \
     `Builder::db`";
const SUBSCRIBE: &str = "subscribing turns a connection into a push-only one; pub/sub needs \
     a dedicated subscriber connection, never the shared one";
const MONITOR: &str = "MONITOR turns the connection into an endless stream of events; run \
     it on a connection of its own";
const CLIENT_REPLY: &str = "CLIENT REPLY OFF/SKIP would break the reply order every caller \
     of the shared connection relies on";
const RESET: &str = "RESET would drop the shared connection's state (database, name, \
     protocol) under every caller; use `Client::close` and connect again";
const QUIT: &str = "QUIT would close the shared connection under every caller; use \
     `Client::close`, which finishes in-flight commands first";
const HELLO: &str = "HELLO would change the protocol or identity of the shared connection; \
     set them with `Builder::protocol`, `Builder::username`/`password` and \
     `Builder::client_name`";
const AUTH: &str = "AUTH would change the identity of the shared connection under every \
     caller; give credentials in the URL or with `Builder::username`/`password`";

/// Longest command name this module needs to recognise, plus room to reject longer ones
/// without allocating.
const NAME_BUF: usize = 16;

/// Upper-cases `name` into a stack buffer. Names longer than any we route are returned
/// as `None`: they are ordinary commands.
fn upper(name: &[u8]) -> Option<([u8; NAME_BUF], usize)> {
    if name.len() > NAME_BUF {
        return None;
    }
    let mut buf = [0u8; NAME_BUF];
    for (dst, src) in buf.iter_mut().zip(name) {
        *dst = src.to_ascii_uppercase();
    }
    Some((buf, name.len()))
}

/// Classifies one command given its arguments, the first being its name.
pub(crate) fn classify<'a>(mut args: impl Iterator<Item = &'a [u8]>) -> Route {
    let Some((buf, len)) = args.next().and_then(upper) else {
        return Route::Shared;
    };
    match &buf[..len] {
        b"MULTI" | b"EXEC" | b"DISCARD" => Route::Refused(TRANSACTION),
        b"WATCH" | b"UNWATCH" => Route::Refused(WATCH),
        b"SELECT" => Route::Refused(SELECT),
        b"SUBSCRIBE" | b"PSUBSCRIBE" | b"SSUBSCRIBE" | b"UNSUBSCRIBE" | b"PUNSUBSCRIBE"
        | b"SUNSUBSCRIBE" => Route::Refused(SUBSCRIBE),
        b"MONITOR" => Route::Refused(MONITOR),
        b"RESET" => Route::Refused(RESET),
        b"QUIT" => Route::Refused(QUIT),
        b"HELLO" => Route::Refused(HELLO),
        b"AUTH" => Route::Refused(AUTH),
        b"CLIENT" => match args.next().and_then(upper) {
            Some((sub, n)) if &sub[..n] == b"REPLY" => Route::Refused(CLIENT_REPLY),
            _ => Route::Shared,
        },
        _ => Route::Shared,
    }
}

fn cmd_args(cmd: &Cmd) -> impl Iterator<Item = &[u8]> {
    cmd.args_iter().filter_map(|arg| match arg {
        Arg::Simple(bytes) => Some(bytes),
        // A cursor argument is never a command name or a subcommand we route on.
        _ => None,
    })
}

/// Classifies a single command.
pub(crate) fn classify_cmd(cmd: &Cmd) -> Route {
    classify(cmd_args(cmd))
}

/// Classifies a pipeline: the most restrictive route of its commands wins. The
/// `MULTI`/`EXEC` that `pipe().atomic()` adds are not among `cmd_iter()`, so an atomic
/// pipeline is shared; a user-written `MULTI` inside a pipeline is refused.
pub(crate) fn classify_pipeline(pipe: &Pipeline) -> Route {
    for cmd in pipe.cmd_iter() {
        if let refused @ Route::Refused(_) = classify_cmd(cmd) {
            return refused;
        }
    }
    Route::Shared
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(words: &[&str]) -> Route {
        classify(words.iter().map(|w| w.as_bytes()))
    }

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
                Route::Refused(why) => assert!(why.contains(hint), "{words:?}: {why}"),
                other => panic!("{words:?} routed {other:?}"),
            }
        }
    }

    #[test]
    fn pipelines() {
        let mut pipe = redis::pipe();
        pipe.get("a").set("b", 1);
        assert_eq!(classify_pipeline(&pipe), Route::Shared);
        pipe.atomic();
        assert_eq!(classify_pipeline(&pipe), Route::Shared);

        let mut bad = redis::pipe();
        bad.cmd("MULTI").get("a").cmd("EXEC");
        assert!(matches!(classify_pipeline(&bad), Route::Refused(_)));
        let mut bad = redis::pipe();
        bad.get("a").cmd("SELECT").arg(2);
        assert!(matches!(classify_pipeline(&bad), Route::Refused(_)));
    }

    #[test]
    fn commands_built_with_the_redis_api() {
        assert_eq!(
            classify_cmd(&redis::cmd("GET").arg("k").clone()),
            Route::Shared
        );
        let mut watch = redis::cmd("watch");
        watch.arg("k");
        assert!(matches!(classify_cmd(&watch), Route::Refused(_)));
    }
}
