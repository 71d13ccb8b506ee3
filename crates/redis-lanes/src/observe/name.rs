//! Operation names for spans: the command's name, never its arguments.
//!
//! A command's first argument is its name; for the commands whose second argument is a
//! subcommand (`CLIENT KILL`, `XGROUP CREATE`), the name is both words, since "CLIENT"
//! alone says nothing. Everything else (keys, values, passwords) stays out. A first
//! argument that does not look like a command name (a caller who put data first by
//! mistake) is reported as `UNKNOWN`, so it cannot carry data into a trace either.

use redis::{Arg, Cmd, Pipeline};

/// The longest name recorded; real command names are far shorter.
const MAX_WORD: usize = 32;

/// Commands whose second argument is a subcommand rather than a key or a value.
const CONTAINERS: &[&str] = &[
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "LATENCY", "MEMORY",
    "MODULE", "OBJECT", "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
];

/// The operation name of one command, upper case: `GET`, `CLIENT UNBLOCK`, or `UNKNOWN`.
pub(crate) fn command(cmd: &Cmd) -> String {
    let mut words = cmd.args_iter().map(|arg| match arg {
        Arg::Simple(bytes) => Some(bytes),
        // A cursor, or whatever a later `redis` release adds: not a name.
        _ => None,
    });
    let Some(first) = words.next().flatten().and_then(word) else {
        return "UNKNOWN".to_owned();
    };
    if !CONTAINERS.contains(&first.as_str()) {
        return first;
    }
    match words.next().flatten().and_then(word) {
        Some(sub) => format!("{first} {sub}"),
        None => first,
    }
}

/// The operation name of a pipeline: `MULTI` for a transaction, `PIPELINE` otherwise, and
/// the command's own name for a pipeline of one (which is not a batch).
pub(crate) fn pipeline(pipe: &Pipeline) -> String {
    let mut cmds = pipe.cmd_iter();
    match (cmds.next(), cmds.next()) {
        (Some(only), None) if !pipe.is_transaction() => command(only),
        _ if pipe.is_transaction() => "MULTI".to_owned(),
        _ => "PIPELINE".to_owned(),
    }
}

/// `bytes` upper-cased if it looks like a command name: ASCII letters, digits, `_`, `-`,
/// `.` and `|` (module commands such as `JSON.GET`), at most [`MAX_WORD`] long.
fn word(bytes: &[u8]) -> Option<String> {
    let plausible = !bytes.is_empty()
        && bytes.len() <= MAX_WORD
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'|'));
    plausible.then(|| {
        bytes
            .iter()
            .map(|b| char::from(b.to_ascii_uppercase()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_command_and_never_an_argument() {
        let cases = [
            (redis::cmd("get").arg("user:1").clone(), "GET"),
            (
                redis::cmd("SET").arg("k").arg("secret-value").clone(),
                "SET",
            ),
            (
                redis::cmd("client").arg("unblock").arg(7).clone(),
                "CLIENT UNBLOCK",
            ),
            (
                redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg("stream")
                    .clone(),
                "XGROUP DELCONSUMER",
            ),
            (
                redis::cmd("AUTH").arg("user").arg("hunter2").clone(),
                "AUTH",
            ),
            (
                redis::cmd("ACL")
                    .arg("SETUSER")
                    .arg("bob")
                    .arg(">pw")
                    .clone(),
                "ACL SETUSER",
            ),
            (redis::cmd("json.get").arg("doc").clone(), "JSON.GET"),
            // Data where the name belongs is not recorded.
            (redis::cmd("user:1 has spaces").clone(), "UNKNOWN"),
            (redis::cmd("CONFIG").arg("not a word").clone(), "CONFIG"),
            (redis::Cmd::new(), "UNKNOWN"),
            (redis::cmd(&"X".repeat(40)).clone(), "UNKNOWN"),
        ];
        for (cmd, expected) in cases {
            assert_eq!(command(&cmd), expected);
        }
    }

    #[test]
    fn pipelines_are_named_by_kind() {
        let mut pipe = redis::pipe();
        pipe.get("a");
        assert_eq!(pipeline(&pipe), "GET");
        pipe.set("b", 1);
        assert_eq!(pipeline(&pipe), "PIPELINE");
        pipe.atomic();
        assert_eq!(pipeline(&pipe), "MULTI");
        let mut one = redis::pipe();
        one.atomic().incr("c", 1);
        assert_eq!(pipeline(&one), "MULTI");
    }
}
