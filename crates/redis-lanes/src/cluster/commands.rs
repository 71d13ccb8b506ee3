//! Where a command's keys are, and how a keyless command is spread over the cluster,
//! from the server's own `COMMAND` reply: key specifications (Redis 7) and the
//! request/response policy tips. This covers module commands too; the older
//! `first key, last key, step` triple is the fallback where a server has no key specs.

use std::collections::HashMap;

use redis::Value;

use super::value::{bytes, entries as map, list};
use crate::error::Error;

/// How a keyless (or multi-key) command is sent, from its `request_policy` tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestPolicy {
    /// To every master (`DBSIZE`, `KEYS`, `SCRIPT FLUSH` ...).
    AllShards,
    /// To every node, replicas included (`CONFIG SET`, `SCRIPT LOAD` ...).
    AllNodes,
    /// Split by slot, each part to its shard (`MGET`, `DEL` ...).
    MultiShard,
    /// The command's own rules (`SCAN`, `FT.*`): one node.
    Special,
}

/// How the replies of a command sent to several nodes become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponsePolicy {
    OneSucceeded,
    AllSucceeded,
    AggLogicalAnd,
    AggLogicalOr,
    AggMin,
    AggMax,
    AggSum,
    Special,
}

/// Where the keys start.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Begin {
    /// At this argument (0 is the command name).
    Index(usize),
    /// After this keyword, searched from `from` (negative: from the end, backwards).
    Keyword {
        keyword: Vec<u8>,
        from: i64,
    },
    Unknown,
}

/// How many keys follow the start.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Find {
    /// Up to `last` (relative to the start; negative: from the end), every `step`.
    /// With `last == -1`, `limit > 1` keeps only the first `1 / limit` of the rest.
    Range {
        last: i64,
        step: usize,
        limit: usize,
    },
    /// A count at `count_at` (relative), then keys from `first` (relative), every `step`.
    KeyNum {
        count_at: usize,
        first: usize,
        step: usize,
    },
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct KeySpec {
    begin: Begin,
    find: Find,
}

/// One command's routing facts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Command {
    specs: Vec<KeySpec>,
    /// The position of the only key, for the commonest shape (`GET k`, `SET k v`,
    /// `HGET k f`): one spec, one key at a fixed index, not a container of
    /// subcommands. Routing such a command needs no allocation.
    pub(crate) single_key_at: Option<usize>,
    pub(crate) request: Option<RequestPolicy>,
    pub(crate) response: Option<ResponsePolicy>,
    /// `container|sub`, by lower-case subcommand name.
    subcommands: HashMap<Vec<u8>, Command>,
}

/// Every command the server knows, by lower-case name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Commands {
    by_name: HashMap<Vec<u8>, Command>,
}

/// Where a command's keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Keys {
    /// The argument indexes of its keys (none for a keyless command).
    At(Vec<usize>),
    /// The server has no key specification this client can follow, or the command is
    /// unknown: it goes to any node, which answers `MOVED` if it must.
    Unknown,
}

impl Commands {
    /// Reads a `COMMAND` (or `COMMAND INFO ...`) reply.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) when it is not an array.
    pub(crate) fn from_reply(reply: &Value) -> Result<Commands, Error> {
        let Value::Array(items) = reply else {
            return Err(Error::protocol("COMMAND did not answer with an array"));
        };
        let mut by_name = HashMap::new();
        for item in items {
            if let Some((name, command)) = command(item) {
                by_name.insert(name, command);
            }
        }
        Ok(Commands { by_name })
    }

    /// The routing facts of a command by its name alone (not its subcommand's), looked
    /// up without allocating for names of up to 32 bytes.
    pub(crate) fn by_name(&self, name: &[u8]) -> Option<&Command> {
        let mut buf = [0u8; 32];
        match buf.get_mut(..name.len()) {
            Some(lowered) => {
                for (dst, src) in lowered.iter_mut().zip(name) {
                    *dst = src.to_ascii_lowercase();
                }
                self.by_name.get(&*lowered)
            }
            None => self.by_name.get(&lower(name)),
        }
    }

    /// The routing facts of the command `args` starts with (its subcommand's, for a
    /// container such as `XGROUP CREATE`).
    pub(crate) fn lookup(&self, args: &[&[u8]]) -> Option<&Command> {
        let command = self.by_name(args.first()?)?;
        if command.subcommands.is_empty() {
            return Some(command);
        }
        let sub = args.get(1).map(|s| lower(s)).unwrap_or_default();
        Some(command.subcommands.get(&sub).unwrap_or(command))
    }

    /// Where the keys of `args` are.
    #[cfg(test)]
    pub(crate) fn keys(&self, args: &[&[u8]]) -> Keys {
        match self.lookup(args) {
            Some(command) => command.keys(args),
            None => Keys::Unknown,
        }
    }

    /// Whether the server told anything.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl Command {
    /// Where the keys of `args` are, by every key spec of the command.
    pub(crate) fn keys(&self, args: &[&[u8]]) -> Keys {
        let mut at = Vec::new();
        for spec in &self.specs {
            match spec.keys(args) {
                Some(keys) => at.extend(keys),
                None => return Keys::Unknown,
            }
        }
        at.sort_unstable();
        at.dedup();
        Keys::At(at)
    }
}

impl KeySpec {
    fn keys(&self, args: &[&[u8]]) -> Option<Vec<usize>> {
        let len = args.len();
        let start = match &self.begin {
            Begin::Index(i) => *i,
            Begin::Keyword { keyword, from } => {
                let found = if *from >= 0 {
                    let from = usize::try_from(*from).ok()?;
                    (from..len).find(|&i| args[i].eq_ignore_ascii_case(keyword))
                } else {
                    let from = len.checked_sub(usize::try_from(from.unsigned_abs()).ok()?)?;
                    (1..=from)
                        .rev()
                        .find(|&i| args[i].eq_ignore_ascii_case(keyword))
                };
                // No keyword: no keys from this spec (e.g. `XREAD` without `STREAMS` is
                // an error the server reports).
                match found {
                    Some(i) => i + 1,
                    None => return Some(Vec::new()),
                }
            }
            Begin::Unknown => return None,
        };
        if start >= len {
            return Some(Vec::new());
        }
        let (first, last, step) = match &self.find {
            Find::Range { last, step, limit } => {
                let end = if *last >= 0 {
                    start.saturating_add(usize::try_from(*last).ok()?)
                } else if *last == -1 && *limit > 1 {
                    // Empty when fewer arguments remain than `limit`.
                    (start + (len - start) / limit).checked_sub(1)?
                } else {
                    len.checked_sub(usize::try_from(last.unsigned_abs()).ok()?)?
                };
                (start, end.min(len - 1), (*step).max(1))
            }
            Find::KeyNum {
                count_at,
                first,
                step,
            } => {
                let count: usize = std::str::from_utf8(args.get(start + count_at)?)
                    .ok()?
                    .parse()
                    .ok()?;
                if count == 0 {
                    return Some(Vec::new());
                }
                // The count is the caller's argument: huge values must not overflow.
                let first = start.saturating_add(*first);
                let step = (*step).max(1);
                let last = first.saturating_add((count - 1).saturating_mul(step));
                (first, last.min(len.saturating_sub(1)), step)
            }
            Find::Unknown => return None,
        };
        Some((first..=last).step_by(step).collect())
    }
}

/// One entry of `COMMAND`: `[name, arity, flags, first, last, step, acl, tips, specs,
/// subcommands]` (Redis 7; Redis 6 stops after the ACL categories).
fn command(item: &Value) -> Option<(Vec<u8>, Command)> {
    let Value::Array(fields) = item else {
        return None;
    };
    let name = lower(&bytes(fields.first()?)?);
    let mut command = Command::default();
    if let Some(tips) = fields.get(7).and_then(list) {
        for tip in tips.iter().filter_map(bytes) {
            let tip = String::from_utf8_lossy(&tip).to_ascii_lowercase();
            if let Some(policy) = tip.strip_prefix("request_policy:") {
                command.request = request_policy(policy);
            } else if let Some(policy) = tip.strip_prefix("response_policy:") {
                command.response = response_policy(policy);
            }
        }
    }
    match fields.get(8).and_then(list) {
        Some(specs) => command.specs = specs.iter().map(key_spec).collect(),
        // Redis 6: the legacy triple, which covers the keys of most commands.
        _ => {
            let int = |i: usize| match fields.get(i) {
                Some(Value::Int(n)) => Some(*n),
                _ => None,
            };
            if let (Some(first), Some(last), Some(step)) = (int(3), int(4), int(5)) {
                if first > 0 {
                    command.specs.push(KeySpec {
                        begin: Begin::Index(usize::try_from(first).ok()?),
                        find: Find::Range {
                            last: if last < 0 { last } else { last - first },
                            step: usize::try_from(step).ok()?,
                            limit: 0,
                        },
                    });
                }
            }
        }
    }
    if let Some(subs) = fields.get(9).and_then(list) {
        for sub in subs {
            if let Some((full, sub_command)) = command_of(sub) {
                // `xgroup|create` → `create`
                let short = full
                    .iter()
                    .position(|&b| b == b'|')
                    .map_or(full.clone(), |bar| full[bar + 1..].to_vec());
                command.subcommands.insert(short, sub_command);
            }
        }
    }
    if let (
        [KeySpec {
            begin: Begin::Index(at),
            find: Find::Range { last: 0, .. },
        }],
        true,
    ) = (command.specs.as_slice(), command.subcommands.is_empty())
    {
        command.single_key_at = (*at > 0).then_some(*at);
    }
    Some((name, command))
}

fn command_of(item: &Value) -> Option<(Vec<u8>, Command)> {
    command(item)
}

fn key_spec(spec: &Value) -> KeySpec {
    let fields = map(spec).unwrap_or_default();
    let begin = fields
        .iter()
        .find(|(k, _)| k == "begin_search")
        .map_or(Begin::Unknown, |(_, v)| begin(v));
    let find = fields
        .iter()
        .find(|(k, _)| k == "find_keys")
        .map_or(Find::Unknown, |(_, v)| find(v));
    KeySpec { begin, find }
}

fn typed(value: &Value) -> Option<(String, Vec<(String, &Value)>)> {
    let fields = map(value)?;
    let kind = fields
        .iter()
        .find(|(k, _)| k == "type")
        .and_then(|(_, v)| bytes(v))?;
    let spec = fields
        .iter()
        .find(|(k, _)| k == "spec")
        .and_then(|(_, v)| map(v))
        .unwrap_or_default();
    Some((String::from_utf8_lossy(&kind).into_owned(), spec))
}

fn field_int(spec: &[(String, &Value)], name: &str) -> Option<i64> {
    spec.iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| match v {
            Value::Int(n) => Some(*n),
            other => std::str::from_utf8(&bytes(other)?).ok()?.parse().ok(),
        })
}

fn begin(value: &Value) -> Begin {
    let Some((kind, spec)) = typed(value) else {
        return Begin::Unknown;
    };
    match kind.as_str() {
        "index" => field_int(&spec, "index")
            .and_then(|i| usize::try_from(i).ok())
            .map_or(Begin::Unknown, Begin::Index),
        "keyword" => {
            let keyword = spec
                .iter()
                .find(|(k, _)| k == "keyword")
                .and_then(|(_, v)| bytes(v));
            match (keyword, field_int(&spec, "startfrom")) {
                (Some(keyword), Some(from)) => Begin::Keyword { keyword, from },
                _ => Begin::Unknown,
            }
        }
        _ => Begin::Unknown,
    }
}

fn find(value: &Value) -> Find {
    let Some((kind, spec)) = typed(value) else {
        return Find::Unknown;
    };
    let num = |name| field_int(&spec, name);
    let size = |name| num(name).and_then(|n| usize::try_from(n).ok());
    match kind.as_str() {
        "range" => match (num("lastkey"), size("keystep"), size("limit")) {
            (Some(last), Some(step), Some(limit)) => Find::Range { last, step, limit },
            _ => Find::Unknown,
        },
        "keynum" => match (size("keynumidx"), size("firstkey"), size("keystep")) {
            (Some(count_at), Some(first), Some(step)) => Find::KeyNum {
                count_at,
                first,
                step,
            },
            _ => Find::Unknown,
        },
        _ => Find::Unknown,
    }
}

fn request_policy(text: &str) -> Option<RequestPolicy> {
    Some(match text {
        "all_shards" => RequestPolicy::AllShards,
        "all_nodes" => RequestPolicy::AllNodes,
        "multi_shard" => RequestPolicy::MultiShard,
        "special" => RequestPolicy::Special,
        _ => return None,
    })
}

fn response_policy(text: &str) -> Option<ResponsePolicy> {
    Some(match text {
        "one_succeeded" => ResponsePolicy::OneSucceeded,
        "all_succeeded" => ResponsePolicy::AllSucceeded,
        "agg_logical_and" => ResponsePolicy::AggLogicalAnd,
        "agg_logical_or" => ResponsePolicy::AggLogicalOr,
        "agg_min" => ResponsePolicy::AggMin,
        "agg_max" => ResponsePolicy::AggMax,
        "agg_sum" => ResponsePolicy::AggSum,
        "special" => ResponsePolicy::Special,
        _ => return None,
    })
}

fn lower(name: &[u8]) -> Vec<u8> {
    name.to_ascii_lowercase()
}

#[cfg(test)]
#[path = "commands_tests.rs"]
mod tests;
