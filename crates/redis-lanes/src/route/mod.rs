//! Which lane a command may run on, decided from its name and arguments.
//!
//! This module is pure: no I/O, no state. Every decision is covered by the table tests in
//! `tests.rs`, false positives as carefully as true ones.
//!
//! Three outcomes: most commands share the connection; a few would corrupt it for every
//! other caller and are refused; and blocking commands, which hold the connection until
//! the server answers, go to a dedicated lane together with their server-side timeout, so
//! the lane can set a deadline that never cuts a legitimate wait short.
//!
//! When a blocking decision is uncertain, this module errs towards `Blocking` with no
//! timeout: a blocking command on the shared lane stalls every caller for as long as it
//! blocks, while a prompt command on a blocking lane costs only a lane checkout.

use std::time::Duration;

use redis::{Arg, Cmd, Pipeline};

use crate::error::{Error, ErrorKind};

mod readonly;
#[cfg(test)]
mod tests;

pub(crate) use readonly::{is_read_only_cmd, is_read_only_pipeline};

/// Where a command goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Safe to share: stateless with respect to the connection, answered promptly.
    Shared,
    /// Would corrupt a shared connection; [`Refusal::reason`] says why and what to use
    /// instead. The variant names the command, so lanes that do take some of these (an
    /// exclusive lease) decide from it without reading the name again.
    Refused(Refusal),
    /// Holds the connection until the server answers: runs on a dedicated blocking lane.
    Blocking(Block),
}

/// How a blocking command blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    /// The command's own server-side timeout; `None` means it may block forever
    /// (`0`), or the timeout argument could not be read (the server will answer with an
    /// error promptly then, so no deadline is needed).
    pub(crate) timeout: Option<Duration>,
    /// Which blocking command this is, for cancellation and recovery of raced replies.
    pub(crate) kind: BlockKind,
}

impl Block {
    /// The block of a pipeline so far (`first`, if any) followed by `next`: they run
    /// one after another, so the timeouts add up; none if either has none. The kind is
    /// the first blocking command's.
    pub(crate) fn then(first: Option<Block>, next: Block) -> Block {
        match first {
            None => next,
            Some(first) => Block {
                // An overflowing sum (beyond 500 billion years) is as good as forever.
                timeout: first
                    .timeout
                    .zip(next.timeout)
                    .and_then(|(a, b)| a.checked_add(b)),
                kind: first.kind,
            },
        }
    }
}

/// Which blocking command a [`Block`] is. Cancellation needs it to put back data that a
/// cancelled command popped anyway (a list pop is undone differently from a move).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockKind {
    /// `BLPOP key [key ...] timeout`
    Blpop,
    /// `BRPOP key [key ...] timeout`
    Brpop,
    /// `BRPOPLPUSH source destination timeout`
    Brpoplpush,
    /// `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout`
    Blmove,
    /// `BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]`
    Blmpop,
    /// `BZPOPMIN key [key ...] timeout`
    Bzpopmin,
    /// `BZPOPMAX key [key ...] timeout`
    Bzpopmax,
    /// `BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]`
    Bzmpop,
    /// `WAIT numreplicas timeout`
    Wait,
    /// `WAITAOF numlocal numreplicas timeout`
    Waitaof,
    /// `XREAD ... BLOCK milliseconds ... STREAMS ...`
    Xread,
    /// `XREADGROUP GROUP group consumer ... BLOCK milliseconds ... STREAMS ...`
    Xreadgroup,
    /// declared by the user
    UserDeclared,
}

/// Names of user-declared blocking commands (module commands), upper-cased.
///
/// Only the command name (the first word) is matched; a user-declared command is routed
/// as blocking with no known timeout. Declarations cannot override this module's own
/// rules: a refused command stays refused, and the built-in blocking commands (and
/// `XREAD`/`XREADGROUP`, which block only with `BLOCK`) keep their argument analysis.
#[derive(Debug, Clone, Default)]
pub(crate) struct BlockingCommands {
    /// A handful of names at most, so a linear scan beats hashing (which would also
    /// need an upper-cased copy of every looked-up name).
    names: Vec<Box<[u8]>>,
}

impl BlockingCommands {
    /// An empty set: no command is declared blocking.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Declares `name` a blocking command. Case-insensitive; inserting a name twice is
    /// harmless.
    pub(crate) fn insert(&mut self, name: &str) {
        if !self.contains(name.as_bytes()) {
            self.names
                .push(name.to_ascii_uppercase().into_bytes().into_boxed_slice());
        }
    }

    /// Whether `name` was declared, ignoring ASCII case.
    pub(crate) fn contains(&self, name: &[u8]) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// A command refused on the shared lane, by what it would do to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `MULTI`: opens a transaction.
    Multi,
    /// `EXEC` or `DISCARD`: ends one.
    EndMulti,
    /// `WATCH` or `UNWATCH`.
    Watch,
    /// `SELECT`, with the database asked for when it could be read.
    Select(Option<i64>),
    /// `SUBSCRIBE` and its relatives: a push-only connection.
    Subscribe,
    /// `MONITOR`: an endless stream of events.
    Monitor,
    /// `CLIENT REPLY`: replies switched off or skipped.
    ClientReply,
    /// `RESET`.
    Reset,
    /// `QUIT`.
    Quit,
    /// `HELLO`: protocol and identity.
    Hello,
    /// `AUTH`: identity.
    Auth,
}

impl Refusal {
    /// Why the shared lane refuses it, and what to use instead.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::Multi | Refusal::EndMulti => TRANSACTION,
            Refusal::Watch => WATCH,
            Refusal::Select(_) => SELECT,
            Refusal::Subscribe => SUBSCRIBE,
            Refusal::Monitor => MONITOR,
            Refusal::ClientReply => CLIENT_REPLY,
            Refusal::Reset => RESET,
            Refusal::Quit => QUIT,
            Refusal::Hello => HELLO,
            Refusal::Auth => AUTH,
        }
    }

    /// A short name for metrics labels.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refusal::Multi | Refusal::EndMulti => "multi",
            Refusal::Watch => "watch",
            Refusal::Select(_) => "select",
            Refusal::Subscribe => "subscribe",
            Refusal::Monitor => "monitor",
            Refusal::ClientReply => "client_reply",
            Refusal::Reset => "reset",
            Refusal::Quit => "quit",
            Refusal::Hello => "hello",
            Refusal::Auth => "auth",
        }
    }

    /// The shared lane's refusal as an error ([`ErrorKind::Refused`]).
    pub(crate) fn error(self) -> Error {
        Error::new(ErrorKind::Refused, self.reason())
    }
}

const TRANSACTION: &str = "a bare MULTI/EXEC/DISCARD would interleave with other callers' \
     commands on the shared connection; use `redis::pipe().atomic()`, which writes \
     MULTI ... EXEC contiguously, or `Client::exclusive()` for a connection of your own";
const WATCH: &str = "WATCH/UNWATCH keep per-connection state that other callers' commands \
     on the shared connection would see and change; use `Client::transaction()` for \
     optimistic transactions, or `Client::exclusive()` for a dedicated connection";
const SELECT: &str = "SELECT would switch the database under every other caller of the \
     shared connection; choose the database in the URL (`redis://host/5`) or with \
     `Builder::db`, or use `Client::exclusive()` for a connection of your own";
const SUBSCRIBE: &str = "subscribing turns a connection into a push-only one; use \
     `Client::subscriber()`, a dedicated subscriber connection";
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

/// Longest command name or option this module needs to recognise, plus room to reject
/// longer ones without allocating.
const NAME_BUF: usize = 24;

/// A short word, upper-cased on the stack.
struct Upper {
    buf: [u8; NAME_BUF],
    len: usize,
}

impl Upper {
    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Upper-cases `word` into a stack buffer. Words longer than any we route on are returned
/// as `None`: as a name, such a command is ordinary unless user-declared.
fn upper(word: &[u8]) -> Option<Upper> {
    if word.len() > NAME_BUF {
        return None;
    }
    let mut buf = [0u8; NAME_BUF];
    for (dst, src) in buf.iter_mut().zip(word) {
        *dst = src.to_ascii_uppercase();
    }
    Some(Upper {
        buf,
        len: word.len(),
    })
}

/// Classifies one command given its arguments, the first being its name.
pub(crate) fn classify<'a>(
    mut args: impl Iterator<Item = &'a [u8]>,
    declared: &BlockingCommands,
) -> Route {
    let Some(name) = args.next() else {
        return Route::Shared;
    };
    if let Some(route) = upper(name).and_then(|up| builtin(up.as_bytes(), args)) {
        return route;
    }
    // Checked on the original bytes: declared names may be longer than `NAME_BUF`
    // (`MYMODULE.BLOCKINGPOP`).
    if declared.contains(name) {
        Route::Blocking(Block {
            timeout: None,
            kind: BlockKind::UserDeclared,
        })
    } else {
        Route::Shared
    }
}

/// The route of a command this module knows by name (`name` upper-cased), reading the
/// arguments that follow it; `None` for any other name.
fn builtin<'a>(name: &[u8], mut args: impl Iterator<Item = &'a [u8]>) -> Option<Route> {
    use BlockKind as K;
    let block = |kind, timeout| Some(Route::Blocking(Block { timeout, kind }));
    let refused = |refusal| Some(Route::Refused(refusal));
    match name {
        b"MULTI" => refused(Refusal::Multi),
        b"EXEC" | b"DISCARD" => refused(Refusal::EndMulti),
        b"WATCH" | b"UNWATCH" => refused(Refusal::Watch),
        b"SELECT" => {
            let db = args.next().and_then(|arg| std::str::from_utf8(arg).ok());
            refused(Refusal::Select(db.and_then(|text| text.parse().ok())))
        }
        b"SUBSCRIBE" | b"PSUBSCRIBE" | b"SSUBSCRIBE" | b"UNSUBSCRIBE" | b"PUNSUBSCRIBE"
        | b"SUNSUBSCRIBE" => refused(Refusal::Subscribe),
        b"MONITOR" => refused(Refusal::Monitor),
        b"RESET" => refused(Refusal::Reset),
        b"QUIT" => refused(Refusal::Quit),
        b"HELLO" => refused(Refusal::Hello),
        b"AUTH" => refused(Refusal::Auth),
        b"CLIENT" => match args.next().and_then(upper) {
            Some(sub) if sub.as_bytes() == b"REPLY" => refused(Refusal::ClientReply),
            _ => None,
        },
        // The timeout is the last argument, in seconds.
        b"BLPOP" => block(K::Blpop, seconds(args.last())),
        b"BRPOP" => block(K::Brpop, seconds(args.last())),
        b"BRPOPLPUSH" => block(K::Brpoplpush, seconds(args.last())),
        b"BLMOVE" => block(K::Blmove, seconds(args.last())),
        b"BZPOPMIN" => block(K::Bzpopmin, seconds(args.last())),
        b"BZPOPMAX" => block(K::Bzpopmax, seconds(args.last())),
        // The timeout comes first, in seconds (the last argument may be a COUNT).
        b"BLMPOP" => block(K::Blmpop, seconds(args.next())),
        b"BZMPOP" => block(K::Bzmpop, seconds(args.next())),
        // Fixed positions, in milliseconds.
        b"WAIT" => block(K::Wait, millis(args.nth(1))),
        b"WAITAOF" => block(K::Waitaof, millis(args.nth(2))),
        b"XREAD" => Some(stream_read(args, K::Xread)),
        b"XREADGROUP" => Some(stream_read(args, K::Xreadgroup)),
        _ => None,
    }
}

/// `XREAD` and `XREADGROUP` block only with a `BLOCK` option, and options end at
/// `STREAMS`: what follows are stream names and IDs, any of which may be spelled `BLOCK`.
/// Options are read the way the server reads them, each with its arity, so a group,
/// consumer or count spelled `BLOCK` is not taken for the option either.
fn stream_read<'a>(mut args: impl Iterator<Item = &'a [u8]>, kind: BlockKind) -> Route {
    // `Some(timeout)` once a BLOCK option has been read; the server keeps the last one.
    let mut block = None;
    while let Some(word) = args.next() {
        match upper(word).as_ref().map(Upper::as_bytes) {
            Some(b"STREAMS") => break,
            Some(b"BLOCK") => block = Some(millis(args.next())),
            Some(b"COUNT" | b"CLAIM" | b"MAXCOUNT" | b"MAXSIZE") => {
                args.next();
            }
            Some(b"GROUP") => {
                args.next();
                args.next();
            }
            Some(b"NOACK") => {}
            // A word the server rejects (it answers with a syntax error at once) or an
            // option newer than this module, as CLAIM (Redis 8.4) and MAXCOUNT/MAXSIZE
            // (8.10) once were. Its arity is unknown, so whether a BLOCK follows cannot
            // be told: route it as blocking with no deadline, which is correct either
            // way, rather than risk a blocking read on the shared connection.
            _ => {
                return Route::Blocking(Block {
                    timeout: None,
                    kind,
                })
            }
        }
    }
    match block {
        Some(timeout) => Route::Blocking(Block { timeout, kind }),
        None => Route::Shared,
    }
}

/// The shortest wait the server does for a positive timeout: it rounds up to whole ms.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// Reads a timeout in seconds, which may be fractional (`0.5`, `1e1`). `None` for `0`
/// (block forever) and for anything else the server would reject at once: missing,
/// negative, not a number, infinite. Forms the server accepts but Rust does not (hex)
/// also give `None`: no deadline, which never cuts a legitimate wait.
fn seconds(arg: Option<&[u8]>) -> Option<Duration> {
    let secs: f64 = std::str::from_utf8(arg?).ok()?.parse().ok()?;
    if secs.is_nan() || secs <= 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(secs)
        .ok()
        .map(|wait| wait.max(MIN_WAIT))
}

/// Reads a timeout in whole milliseconds. `None` for `0` (block forever) and for anything
/// the server would reject at once: missing, negative, fractional, not a number.
fn millis(arg: Option<&[u8]>) -> Option<Duration> {
    let ms: u64 = std::str::from_utf8(arg?).ok()?.parse().ok()?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// A command's arguments as the server will see them, one item per argument.
fn cmd_args(cmd: &Cmd) -> impl Iterator<Item = &[u8]> {
    cmd.args_iter().map(|arg| match arg {
        Arg::Simple(bytes) => bytes,
        // A cursor (`Arg` is non-exhaustive: or any later kind) is filled in when the
        // command is written, so its value is unknown here. It still occupies a
        // position, which matters for positional timeouts (`BLMPOP <timeout> ...`);
        // empty bytes are no name, option or valid timeout.
        _ => &[],
    })
}

/// Classifies a single command.
pub(crate) fn classify_cmd(cmd: &Cmd, declared: &BlockingCommands) -> Route {
    classify(cmd_args(cmd), declared)
}

/// Classifies a pipeline. Refused wins over everything; otherwise `Blocking` if any
/// command blocks, with timeout = the sum of the blocking commands' timeouts (they run
/// one after another), or `None` if any of them is `None`; kind = that of the first
/// blocking command.
///
/// The `MULTI`/`EXEC` that `pipe().atomic()` adds are not among `cmd_iter()`, so an
/// atomic pipeline is routed by its commands like any other; a user-written `MULTI`
/// inside a pipeline is refused. Inside `MULTI` the server does not block at all, so
/// routing an atomic pipeline with a blocking command as blocking is merely cautious.
pub(crate) fn classify_pipeline(pipe: &Pipeline, declared: &BlockingCommands) -> Route {
    let mut blocking: Option<Block> = None;
    for cmd in pipe.cmd_iter() {
        match classify_cmd(cmd, declared) {
            refused @ Route::Refused(_) => return refused,
            Route::Blocking(next) => blocking = Some(Block::then(blocking, next)),
            Route::Shared => {}
        }
    }
    blocking.map_or(Route::Shared, Route::Blocking)
}
