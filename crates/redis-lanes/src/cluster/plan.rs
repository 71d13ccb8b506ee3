//! Where a command goes in a cluster: decided once per request from its keys' slots and
//! the server's request policy, before anything is sent.

use redis::{Arg, Cmd};

use super::commands::{Commands, Keys, RequestPolicy, ResponsePolicy};
use super::slot::slot;
use crate::error::{Error, ErrorKind};

/// How one command is sent.
#[derive(Debug)]
pub(crate) enum Plan {
    /// To the master of this slot.
    Slot(u16),
    /// To any master: a keyless command with no policy (`PING`, `INFO`), or one whose
    /// keys cannot be told (it is redirected if it must).
    Any,
    /// To every master, or every node, with the replies combined as `response` says.
    Fanout {
        all_nodes: bool,
        response: Option<ResponsePolicy>,
    },
    /// A multi-key command over several slots, split into one command per slot.
    Split(Split),
}

/// A multi-key command split by slot.
#[derive(Debug)]
pub(crate) struct Split {
    /// One command per slot, with the indexes (in the caller's key order) of its keys.
    pub(crate) parts: Vec<(u16, Cmd, Vec<usize>)>,
    /// How many keys there were.
    pub(crate) keys: usize,
    pub(crate) response: Option<ResponsePolicy>,
}

/// The error for keys in several slots that cannot be split.
pub(crate) fn cross_slot(name: &str) -> Error {
    Error::new(
        ErrorKind::Refused,
        format!(
            "CROSSSLOT: the keys of {name} map to different hash slots, and {name} cannot be \
             split; give them a common hash tag (`{{user1}}:a`, `{{user1}}:b`)"
        ),
    )
}

/// The arguments of `cmd`, as the server will see them.
pub(crate) fn args(cmd: &Cmd) -> Vec<&[u8]> {
    cmd.args_iter()
        .map(|arg| match arg {
            Arg::Simple(bytes) => bytes,
            _ => &[],
        })
        .collect()
}

/// Decides how `cmd` is sent.
///
/// # Errors
///
/// [`ErrorKind::Refused`] (`CROSSSLOT`) for keys in several slots of a command that is
/// not split by slot.
pub(crate) fn plan(cmd: &Cmd, commands: &Commands) -> Result<Plan, Error> {
    // The common case first, without collecting the arguments: one key at a fixed place.
    let mut iter = cmd.args_iter();
    if let Some(Arg::Simple(name)) = iter.next() {
        if let Some(command) = commands.by_name(name) {
            if let Some(at) = command.single_key_at {
                // `at` counts the name, which `iter` is past.
                return Ok(match iter.nth(at - 1) {
                    Some(Arg::Simple(key)) => Plan::Slot(slot(key)),
                    _ => Plan::Any,
                });
            }
        }
    }
    let args = args(cmd);
    let Some(command) = commands.lookup(&args) else {
        return Ok(Plan::Any);
    };
    let keys = match command.keys(&args) {
        Keys::At(keys) => keys,
        Keys::Unknown => return Ok(Plan::Any),
    };
    let slots: Vec<u16> = keys
        .iter()
        .filter_map(|&i| args.get(i))
        .map(|key| slot(key))
        .collect();
    let Some(&first) = slots.first() else {
        return Ok(match command.request {
            Some(RequestPolicy::AllShards) => Plan::Fanout {
                all_nodes: false,
                response: command.response,
            },
            Some(RequestPolicy::AllNodes) => Plan::Fanout {
                all_nodes: true,
                response: command.response,
            },
            _ => Plan::Any,
        });
    };
    if slots.iter().all(|&s| s == first) {
        return Ok(Plan::Slot(first));
    }
    let name = String::from_utf8_lossy(args.first().copied().unwrap_or_default()).to_uppercase();
    if command.request != Some(RequestPolicy::MultiShard) {
        return Err(cross_slot(&name));
    }
    split(&args, &keys, &slots, command.response)
        .map(Plan::Split)
        .ok_or_else(|| cross_slot(&name))
}

/// Splits a multi-shard command whose keys each lead a fixed group of arguments (`MGET
/// k1 k2`, `MSET k1 v1 k2 v2`, `DEL k1 k2`): one command per slot, same name, same
/// groups. `None` for any other shape (arguments outside the key groups).
fn split(
    args: &[&[u8]],
    keys: &[usize],
    slots: &[u16],
    response: Option<ResponsePolicy>,
) -> Option<Split> {
    let first = *keys.first()?;
    let step = match keys {
        [_, second, ..] => second - first,
        _ => 1,
    };
    // Keys evenly spaced from `first` to the end, each followed by `step - 1` values.
    let regular = first == 1
        && keys.windows(2).all(|w| w[1] - w[0] == step)
        && keys.last().is_some_and(|&last| last + step == args.len());
    if !regular {
        return None;
    }
    let mut parts: Vec<(u16, Cmd, Vec<usize>)> = Vec::new();
    for (n, (&at, &s)) in keys.iter().zip(slots).enumerate() {
        let index = match parts.iter().position(|(slot, _, _)| *slot == s) {
            Some(index) => index,
            None => {
                let mut cmd = Cmd::new();
                cmd.arg(args[0]);
                parts.push((s, cmd, Vec::new()));
                parts.len() - 1
            }
        };
        let (_, cmd, members) = &mut parts[index];
        for arg in &args[at..at + step] {
            cmd.arg(*arg);
        }
        members.push(n);
    }
    Some(Split {
        parts,
        keys: keys.len(),
        response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands() -> Commands {
        let server = redis_lanes_testkit::RedisServer::start().expect("server");
        let mut conn = redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let reply: redis::Value = redis::cmd("COMMAND").query(&mut conn).unwrap();
        Commands::from_reply(&reply).unwrap()
    }

    fn cmd(words: &[&str]) -> Cmd {
        let mut cmd = Cmd::new();
        for word in words {
            cmd.arg(*word);
        }
        cmd
    }

    #[test]
    fn plans() {
        let commands = commands();
        let plan = |words: &[&str]| plan(&cmd(words), &commands);
        assert!(matches!(plan(&["GET", "{t}a"]), Ok(Plan::Slot(s)) if s == slot(b"t")));
        assert!(matches!(plan(&["MGET", "{t}a", "{t}b"]), Ok(Plan::Slot(_))));
        // PING's tips ask for every shard, all of which must answer.
        assert!(matches!(
            plan(&["PING"]),
            Ok(Plan::Fanout {
                all_nodes: false,
                response: Some(ResponsePolicy::AllSucceeded)
            })
        ));
        assert!(matches!(plan(&["TIME"]), Ok(Plan::Any)));
        assert!(matches!(plan(&["SET", "k"]), Ok(Plan::Slot(_))));
        // The fast path with its key missing: any node, which answers the error.
        assert!(matches!(plan(&["GET"]), Ok(Plan::Any)));
        assert!(matches!(plan(&["NO.SUCH", "x"]), Ok(Plan::Any)));
        assert!(matches!(
            plan(&["DBSIZE"]),
            Ok(Plan::Fanout {
                all_nodes: false,
                response: Some(ResponsePolicy::AggSum)
            })
        ));
        let err = plan(&["RENAME", "a", "b"]).expect_err("cross-slot");
        assert!(
            err.is_refused() && err.to_string().contains("CROSSSLOT"),
            "{err}"
        );
        // A multi-shard command whose keys are not in regular groups is not split.
        assert!(plan(&["ZUNIONSTORE", "d", "2", "a", "b"]).is_err());

        let Ok(Plan::Split(split)) = plan(&["MSET", "a", "1", "b", "2", "{a}x", "3"]) else {
            panic!("MSET over slots is split");
        };
        assert_eq!(split.keys, 3);
        assert_eq!(split.parts.len(), 2);
        let (s, part, members) = &split.parts[0];
        assert_eq!(*s, slot(b"a"));
        assert_eq!(members, &[0, 2]);
        assert_eq!(args(part), [&b"MSET"[..], b"a", b"1", b"{a}x", b"3"]);
        let (_, part, members) = &split.parts[1];
        assert_eq!(members, &[1]);
        assert_eq!(args(part), [&b"MSET"[..], b"b", b"2"]);

        let Ok(Plan::Split(split)) = plan(&["DEL", "a", "b", "c"]) else {
            panic!("DEL over slots is split");
        };
        assert_eq!(split.response, Some(ResponsePolicy::AggSum));
    }
}
