//! Which commands an exclusive lane takes.
//!
//! A lease is one caller's connection, so the commands refused on the shared lane for
//! the state they keep (`WATCH`, `MULTI`/`EXEC`/`DISCARD`, `SELECT`) are allowed here:
//! that state is exactly what the lease is for, and the lease is reset when it ends.
//! Still refused are the commands that change what the connection *is* (its identity,
//! protocol or lifetime: the library's to manage) and those that turn it into a stream
//! of pushes, which pub/sub has its own API for. Blocking commands block on the lease
//! itself, with the same cancellation contract as on a blocking lane.

use redis::{Arg, Cmd, Pipeline};

use crate::error::{Error, ErrorKind};
use crate::route::{self, Block, BlockingCommands, Route};

const SUBSCRIBE: &str = "subscribing turns a connection into a push-only one; use the \
     pub/sub API, not an exclusive lane";
const MONITOR: &str = "MONITOR turns the connection into an endless stream of events and \
     never gives it back; run it on a connection of its own";
const CLIENT_REPLY: &str = "CLIENT REPLY OFF/SKIP would break the reply order the lane \
     relies on to match replies to commands";
const IDENTITY: &str = "RESET, HELLO and AUTH would change the exclusive lane's identity or \
     protocol, which redis-lanes sets up itself and restores when the lease ends; set them \
     with `Builder::username`/`password`, `Builder::protocol` and `Builder::client_name`";
const QUIT: &str = "QUIT would close the leased connection under the pool; drop the \
     `Exclusive` instead, which resets it for the next lease";

/// Where a command goes on an exclusive lane: in line (`Ok(None)`), in line as a
/// blocking command with the cancellation contract (`Ok(Some(block))`), or nowhere.
///
/// Inside `MULTI` the server queues commands instead of running them, so nothing
/// blocks there: `in_multi` routes blocking commands in line.
pub(super) fn classify_cmd(
    cmd: &Cmd,
    declared: &BlockingCommands,
    in_multi: bool,
) -> Result<Option<Block>, Error> {
    match route::classify_cmd(cmd, declared) {
        Route::Shared => Ok(None),
        Route::Blocking(_) if in_multi => Ok(None),
        Route::Blocking(block) => Ok(Some(block)),
        Route::Refused(shared_reason) => match refusal(cmd, shared_reason) {
            None => Ok(None),
            Some(why) => Err(Error::new(ErrorKind::Refused, why)),
        },
    }
}

/// As [`classify_cmd`] for every command of a pipeline: refused if any is; blocking if any
/// blocks, with the sum of their timeouts (they run one after another) or none if any
/// has none.
pub(super) fn classify_pipeline(
    pipe: &Pipeline,
    declared: &BlockingCommands,
    in_multi: bool,
) -> Result<Option<Block>, Error> {
    // An atomic pipeline's commands are queued by its MULTI: none of them blocks.
    let queued = in_multi || pipe.is_transaction();
    let mut blocking: Option<Block> = None;
    for cmd in pipe.cmd_iter() {
        if let Some(next) = classify_cmd(cmd, declared, queued)? {
            blocking = Some(Block::then(blocking, next));
        }
    }
    Ok(blocking)
}

/// Why `cmd`, refused on the shared lane for `shared_reason`, is refused here too; `None`
/// when an exclusive lane takes it.
fn refusal(cmd: &Cmd, shared_reason: &'static str) -> Option<&'static str> {
    let name = cmd.args_iter().next().and_then(|arg| match arg {
        Arg::Simple(bytes) => Some(bytes.to_ascii_uppercase()),
        _ => None,
    });
    match name.as_deref() {
        Some(b"MULTI" | b"EXEC" | b"DISCARD" | b"WATCH" | b"UNWATCH" | b"SELECT") => None,
        Some(
            b"SUBSCRIBE" | b"PSUBSCRIBE" | b"SSUBSCRIBE" | b"UNSUBSCRIBE" | b"PUNSUBSCRIBE"
            | b"SUNSUBSCRIBE",
        ) => Some(SUBSCRIBE),
        Some(b"MONITOR") => Some(MONITOR),
        Some(b"CLIENT") => Some(CLIENT_REPLY),
        Some(b"RESET" | b"HELLO" | b"AUTH") => Some(IDENTITY),
        Some(b"QUIT") => Some(QUIT),
        // A refusal this module does not know of yet: keep the shared lane's reason
        // rather than let an unknown hazard through.
        _ => Some(shared_reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(words: &[&str]) -> Result<Option<Block>, Error> {
        let mut cmd = redis::cmd(words[0]);
        for word in &words[1..] {
            cmd.arg(*word);
        }
        classify_cmd(&cmd, &BlockingCommands::new(), false)
    }

    #[test]
    fn connection_state_commands_are_allowed() {
        for words in [
            &["WATCH", "k"][..],
            &["unwatch"],
            &["MULTI"],
            &["EXEC"],
            &["DISCARD"],
            &["SELECT", "5"],
            &["CLIENT", "SETNAME", "x"],
            &["GET", "k"],
        ] {
            assert!(matches!(classify(words), Ok(None)), "{words:?}");
        }
    }

    #[test]
    fn identity_pushes_and_reply_order_stay_refused() {
        for words in [
            &["SUBSCRIBE", "c"][..],
            &["psubscribe", "c*"],
            &["MONITOR"],
            &["RESET"],
            &["HELLO", "3"],
            &["AUTH", "pw"],
            &["QUIT"],
            &["CLIENT", "REPLY", "OFF"],
        ] {
            let err = classify(words).expect_err("refused");
            assert!(err.is_refused(), "{words:?}");
        }
    }

    #[test]
    fn blocking_commands_block_except_inside_multi() {
        assert!(matches!(classify(&["BLPOP", "k", "1"]), Ok(Some(_))));
        let mut cmd = redis::cmd("BLPOP");
        cmd.arg("k").arg(1);
        assert!(matches!(
            classify_cmd(&cmd, &BlockingCommands::new(), true),
            Ok(None)
        ));
        let mut atomic = redis::pipe();
        atomic.atomic().cmd("BLPOP").arg("k").arg(1);
        assert!(matches!(
            classify_pipeline(&atomic, &BlockingCommands::new(), false),
            Ok(None)
        ));
        let mut plain = redis::pipe();
        plain.cmd("WATCH").arg("k").cmd("BLPOP").arg("k").arg(1);
        assert!(matches!(
            classify_pipeline(&plain, &BlockingCommands::new(), false),
            Ok(Some(_))
        ));
        let mut refused = redis::pipe();
        refused.cmd("GET").arg("k").cmd("SUBSCRIBE").arg("c");
        assert!(classify_pipeline(&refused, &BlockingCommands::new(), false).is_err());
    }
}
