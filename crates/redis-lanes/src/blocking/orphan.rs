//! Recovery plans for the late replies of cancelled blocking commands.
//!
//! When a caller drops the future of a blocking command, the lane sends `CLIENT UNBLOCK`
//! for it. The command may already have been served by then: its reply is on the wire,
//! and if the command *removed* data (a pop, a move) that data now belongs to nobody.
//! This module decides, from the command as sent and the reply that arrived, how to give
//! the data back without ever inventing or duplicating any.
//!
//! The module is pure: no I/O, no state. [`plan`] says what to do, the lane runs the
//! restore command on the shared connection, and [`outcome_of`] reads its reply.
//!
//! The rules, and why:
//!
//! - **List pops** (`BLPOP`, `BRPOP`, `BLMPOP`) push the elements back to the end they
//!   came from, in reverse pop order, so the list reads as it did before the pop and the
//!   next consumer gets the same element first.
//! - **Sorted-set pops** (`BZPOPMIN`, `BZPOPMAX`, `BZMPOP`) add the members back with
//!   `ZADD ... NX` and the exact score text. `NX` matters: if a producer re-added a member
//!   meanwhile, its newer score wins, exactly as if our pop had never happened.
//! - **Moves** (`BLMOVE`, `BRPOPLPUSH`) are reversed by a script that only moves the
//!   element back if it is still where the move put it. Otherwise a consumer of the
//!   destination may already own it, and moving "it" back would duplicate it.
//! - **Stream group reads** (`XREADGROUP`) are never undone: the entries stay in the
//!   consumer's pending list, which is Redis's own recovery path (`XAUTOCLAIM`). Entries
//!   read with `NOACK` are reported too, but by the server's design they are not pending
//!   and are lost to the group.
//! - **Reads without side effects** (`XREAD`, `WAIT`, `WAITAOF`) need nothing.
//! - Anything else with data, and any reply whose shape is not the documented one, is
//!   reported and never guessed at: a wrong restore is worse than none.

use redis::{Cmd, Value};

use crate::route::BlockKind;

/// What happened to the reply of a blocking command that was cancelled too late, after
/// the server had already served it.
///
/// Blocking commands are cancelled on the server with `CLIENT UNBLOCK` when their future
/// is dropped. If the command had already removed data (for example `BLPOP` popped an
/// element), that data would be lost with the reply nobody reads; redis-lanes tries to put
/// it back and tells you how that went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrphanOutcome {
    /// The data was put back where it came from: popped list elements at the end they
    /// were popped from and in their original order, sorted-set members with their exact
    /// scores (a member that was re-added meanwhile keeps its newer score), a moved
    /// element back at its source.
    Restored,
    /// The data could not be put back safely and is only reported. This covers
    /// `XREADGROUP` entries, which stay in the consumer's pending list (claim them with
    /// `XAUTOCLAIM`/`XCLAIM`; entries read with `NOACK` are not pending and are lost to the
    /// group, which is the server's design for `NOACK`); a `BLMOVE` whose element was
    /// already moved on from the destination; replies of unrecognised commands; replies
    /// of an unexpected shape; and restores that the server refused (for example because
    /// the key now holds another type).
    Reported,
    /// The reply could not be inspected at all because the connection had to be closed
    /// before it arrived; whether the command removed data is unknown.
    Unrecoverable,
}

/// The plan for one late reply of a cancelled blocking command.
#[derive(Debug)]
pub(crate) enum RestorePlan {
    /// The reply carries no data (nil, timeout, error, an empty reply, or a command that
    /// removes nothing such as `XREAD` or `WAIT`): nothing to do.
    Nothing,
    /// Run `cmd` on the shared connection to put the data back, then pass its reply to
    /// [`outcome_of`] with `conditional`. A conditional restore is a script that returns 1
    /// if it moved the element back and 0 if the element had already moved on.
    Restore { cmd: Cmd, conditional: bool },
    /// The reply carries data that we must not or cannot restore; report it.
    Report,
}

/// Undoes one `BLMOVE source destination wherefrom whereto`, atomically and only if the
/// element is still at the `whereto` end of `destination`.
///
/// KEYS: source, destination. ARGV: element, wherefrom, whereto (upper-case).
///
/// Both types are checked before anything is popped because a script is not rolled back
/// on error: a failing push after a successful pop would lose the element. Equal elements
/// cannot be told apart, so if ours was consumed and an equal one pushed in its place, the
/// equal one moves back; no element is lost or duplicated by that, it only changes list.
const UNDO_MOVE: &str = "\
if redis.call('TYPE', KEYS[2]).ok ~= 'list' then return 0 end
local source_type = redis.call('TYPE', KEYS[1]).ok
if source_type ~= 'list' and source_type ~= 'none' then return 0 end
local at = 0
if ARGV[3] == 'RIGHT' then at = -1 end
if redis.call('LINDEX', KEYS[2], at) ~= ARGV[1] then return 0 end
if ARGV[3] == 'RIGHT' then redis.call('RPOP', KEYS[2]) else redis.call('LPOP', KEYS[2]) end
if ARGV[2] == 'RIGHT' then redis.call('RPUSH', KEYS[1], ARGV[1]) else redis.call('LPUSH', KEYS[1], ARGV[1]) end
return 1
";

/// Decides what to do with the late `reply` of the blocking command `args` (its name
/// first, then its arguments, as sent), of the `kind` the router found it to be.
///
/// User-declared blocking commands are planned as [`RestorePlan::Report`] when the reply is
/// non-nil (we cannot know what they removed) and [`RestorePlan::Nothing`] otherwise. A nil,
/// error or empty reply is [`RestorePlan::Nothing`] for every command. Never panics.
pub(crate) fn plan(kind: BlockKind, args: &[&[u8]], reply: &Value) -> RestorePlan {
    let reply = bare(reply);
    if carries_nothing(reply) {
        return RestorePlan::Nothing;
    }
    use BlockKind as K;
    let restore = match kind {
        K::Blpop => list_pop(args, reply, "LPUSH"),
        K::Brpop => list_pop(args, reply, "RPUSH"),
        K::Blmpop => list_multi_pop(args, reply),
        K::Bzpopmin | K::Bzpopmax => zset_pop(args, reply),
        K::Bzmpop => zset_multi_pop(args, reply),
        K::Blmove => move_back(args, args.get(3).copied(), args.get(4).copied(), reply),
        // BRPOPLPUSH is BLMOVE source destination RIGHT LEFT.
        K::Brpoplpush => move_back(args, Some(b"RIGHT"), Some(b"LEFT"), reply),
        K::Xreadgroup => return stream_group_read(reply),
        K::Xread | K::Wait | K::Waitaof => return RestorePlan::Nothing,
        K::UserDeclared => return RestorePlan::Report,
    };
    restore.unwrap_or(RestorePlan::Report)
}

/// Reads the reply of a [`RestorePlan::Restore`] command.
///
/// A conditional restore (the `BLMOVE` reversal) is [`OrphanOutcome::Restored`] only if
/// it returned 1. An unconditional one (a push or `ZADD NX`) is restored when it returned
/// an integer: `ZADD NX` returning 0 means every member is present with a newer score,
/// which is the state the set would have without our pop. Errors, and any other reply,
/// are [`OrphanOutcome::Reported`]: we only claim a restore the server confirmed.
pub(crate) fn outcome_of(plan_was_conditional: bool, restore_reply: &Value) -> OrphanOutcome {
    match (plan_was_conditional, bare(restore_reply)) {
        (true, Value::Int(1)) | (false, Value::Int(_)) => OrphanOutcome::Restored,
        _ => OrphanOutcome::Reported,
    }
}

/// Looks through RESP3 attributes, which annotate a reply without changing it.
fn bare(mut value: &Value) -> &Value {
    while let Value::Attribute { data, .. } = value {
        value = data;
    }
    value
}

/// Whether a reply carries no data for any command: the server never pops and then
/// answers nil, an error or an empty aggregate.
fn carries_nothing(reply: &Value) -> bool {
    match reply {
        Value::Nil | Value::ServerError(_) => true,
        Value::Array(items) | Value::Set(items) => items.is_empty(),
        Value::Map(pairs) => pairs.is_empty(),
        _ => false,
    }
}

/// The bytes of a bulk string; every key, element and member arrives as one.
fn bulk(value: &Value) -> Option<&[u8]> {
    match bare(value) {
        Value::BulkString(bytes) => Some(bytes),
        _ => None,
    }
}

/// The elements of an array reply.
fn array(value: &Value) -> Option<&[Value]> {
    match bare(value) {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

fn is_word(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// The keys of `NAME timeout numkeys key... ...` (BLMPOP, BZMPOP) and the argument after
/// them. `numkeys` is honoured rather than searching for a direction word, since a key may
/// well be called `LEFT`.
fn counted_keys<'a>(args: &'a [&'a [u8]]) -> Option<(&'a [&'a [u8]], &'a [u8])> {
    let numkeys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
    if numkeys == 0 {
        return None;
    }
    let end = numkeys.checked_add(3)?;
    Some((args.get(3..end)?, args.get(end)?))
}

/// `key` only if it is one the command named: a reply naming another key is not one
/// this command produced, and restoring into it would be a guess.
fn named_key<'a>(keys: &[&[u8]], reply_key: &'a Value) -> Option<&'a [u8]> {
    let key = bulk(reply_key)?;
    keys.contains(&key).then_some(key)
}

/// A score as `ZADD` accepts it, without losing a bit.
///
/// RESP2 sends scores as text, which we pass on untouched. RESP3 sends doubles, which the
/// `redis` crate has parsed; Rust's shortest round-trip formatting gives the same double
/// back, and the exponent form keeps huge and tiny values short (`1e300`, not 301 digits).
/// Infinities are spelled the way Redis reads them. NaN is never a score, so it marks a
/// malformed reply.
fn score(value: &Value) -> Option<Vec<u8>> {
    match bare(value) {
        Value::BulkString(text) if !text.is_empty() => Some(text.clone()),
        Value::Double(d) if d.is_infinite() => Some(if *d > 0.0 { "inf" } else { "-inf" }.into()),
        Value::Double(d) if d.is_finite() => Some(format!("{d:e}").into_bytes()),
        _ => None,
    }
}

/// `BLPOP key... timeout` / `BRPOP key... timeout` reply `[key, element]`.
fn list_pop(args: &[&[u8]], reply: &Value, push: &str) -> Option<RestorePlan> {
    let keys = args.get(1..args.len().checked_sub(1)?)?;
    let [key, element] = array(reply)? else {
        return None;
    };
    let key = named_key(keys, key)?;
    let mut cmd = redis::cmd(push);
    cmd.arg(key).arg(bulk(element)?);
    Some(restore(cmd))
}

/// `BLMPOP timeout numkeys key... LEFT|RIGHT [COUNT n]` reply `[key, [e1, e2, ...]]`.
fn list_multi_pop(args: &[&[u8]], reply: &Value) -> Option<RestorePlan> {
    let (keys, direction) = counted_keys(args)?;
    let push = if is_word(direction, "LEFT") {
        "LPUSH"
    } else if is_word(direction, "RIGHT") {
        "RPUSH"
    } else {
        return None;
    };
    let [key, elements] = array(reply)? else {
        return None;
    };
    let key = named_key(keys, key)?;
    let elements = array(elements)?;
    if elements.is_empty() {
        return None;
    }
    let mut cmd = redis::cmd(push);
    cmd.arg(key);
    // e1 left the list first, so it goes back last and ends up at the end it came from.
    for element in elements.iter().rev() {
        cmd.arg(bulk(element)?);
    }
    Some(restore(cmd))
}

/// `BZPOPMIN|BZPOPMAX key... timeout` reply `[key, member, score]`.
fn zset_pop(args: &[&[u8]], reply: &Value) -> Option<RestorePlan> {
    let keys = args.get(1..args.len().checked_sub(1)?)?;
    let [key, member, popped_score] = array(reply)? else {
        return None;
    };
    let key = named_key(keys, key)?;
    let mut cmd = redis::cmd("ZADD");
    cmd.arg(key)
        .arg("NX")
        .arg(score(popped_score)?)
        .arg(bulk(member)?);
    Some(restore(cmd))
}

/// `BZMPOP timeout numkeys key... MIN|MAX [COUNT n]` reply `[key, [[member, score], ...]]`.
fn zset_multi_pop(args: &[&[u8]], reply: &Value) -> Option<RestorePlan> {
    let (keys, which) = counted_keys(args)?;
    if !is_word(which, "MIN") && !is_word(which, "MAX") {
        return None;
    }
    let [key, pairs] = array(reply)? else {
        return None;
    };
    let key = named_key(keys, key)?;
    let pairs = array(pairs)?;
    if pairs.is_empty() {
        return None;
    }
    let mut cmd = redis::cmd("ZADD");
    cmd.arg(key).arg("NX");
    for pair in pairs {
        let [member, popped_score] = array(pair)? else {
            return None;
        };
        cmd.arg(score(popped_score)?).arg(bulk(member)?);
    }
    Some(restore(cmd))
}

/// `BLMOVE source destination wherefrom whereto timeout` (and `BRPOPLPUSH`, with the
/// directions given) reply `element`.
fn move_back(
    args: &[&[u8]],
    wherefrom: Option<&[u8]>,
    whereto: Option<&[u8]>,
    reply: &Value,
) -> Option<RestorePlan> {
    let (source, destination) = (args.get(1)?, args.get(2)?);
    let element = bulk(reply)?;
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(UNDO_MOVE)
        .arg(2)
        .arg(source)
        .arg(destination)
        .arg(element)
        .arg(direction(wherefrom?)?)
        .arg(direction(whereto?)?);
    Some(RestorePlan::Restore {
        cmd,
        conditional: true,
    })
}

/// `LEFT`/`RIGHT` in any case, upper-cased because the script compares exactly.
fn direction(word: &[u8]) -> Option<&'static str> {
    if is_word(word, "LEFT") {
        Some("LEFT")
    } else if is_word(word, "RIGHT") {
        Some("RIGHT")
    } else {
        None
    }
}

fn restore(cmd: Cmd) -> RestorePlan {
    RestorePlan::Restore {
        cmd,
        conditional: false,
    }
}

/// `XREADGROUP` replies one entry list per stream: `[[stream, entries], ...]` in RESP2,
/// `{stream: entries}` in RESP3. Entries delivered to a group stay pending for the
/// consumer until acknowledged, so the server already keeps them; acknowledging or
/// re-adding them ourselves would break the group's at-least-once contract. Only a reply
/// whose every entry list is empty (re-reading an empty history) carries nothing.
fn stream_group_read(reply: &Value) -> RestorePlan {
    let all_empty = match reply {
        Value::Array(streams) => streams.iter().all(|stream| {
            matches!(array(stream), Some([name, entries])
                if bulk(name).is_some() && array(entries).is_some_and(<[Value]>::is_empty))
        }),
        Value::Map(streams) => streams.iter().all(|(name, entries)| {
            bulk(name).is_some() && array(entries).is_some_and(<[Value]>::is_empty)
        }),
        _ => false,
    };
    if all_empty {
        RestorePlan::Nothing
    } else {
        RestorePlan::Report
    }
}

#[cfg(test)]
#[path = "orphan_tests.rs"]
mod tests;
