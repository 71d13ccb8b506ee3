//! Which commands an exclusive lane takes.
//!
//! A lease is one caller's connection, so the commands refused on the shared lane for
//! the state they keep (`WATCH`, `MULTI`/`EXEC`/`DISCARD`, `SELECT`) are allowed here:
//! that state is exactly what the lease is for, and the lease is reset when it ends.
//! Still refused are the commands that change what the connection *is* (its identity,
//! protocol or lifetime: the library's to manage) and those that turn it into a stream
//! of pushes, which pub/sub has its own API for. Blocking commands block on the lease
//! itself, with the same cancellation contract as on a blocking lane.

use redis::{Cmd, Pipeline};

use crate::error::{Error, ErrorKind};
use crate::route::{self, Block, BlockingCommands, Refusal, Route};

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

/// What a command changes on the leased connection that the lease must track: the router
/// names these commands (the shared lane refuses them), so nothing here reads a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// `MULTI`.
    Multi,
    /// `EXEC` or `DISCARD`.
    EndMulti,
    /// `SELECT`, with its database when it could be read.
    Select(Option<i64>),
}

/// Where one command goes on an exclusive lane, and what it changes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Routed {
    /// `Some` for a blocking command, which runs in line with the cancellation contract.
    pub(super) block: Option<Block>,
    /// The connection state it changes, if any the lease tracks.
    pub(super) change: Option<Change>,
}

/// Routes a command on an exclusive lane, or refuses it.
///
/// Inside `MULTI` the server queues commands instead of running them, so nothing
/// blocks there: `in_multi` routes blocking commands in line.
pub(super) fn classify_cmd(
    cmd: &Cmd,
    declared: &BlockingCommands,
    in_multi: bool,
) -> Result<Routed, Error> {
    let (block, change) = match route::classify_cmd(cmd, declared) {
        Route::Shared => (None, None),
        Route::Blocking(_) if in_multi => (None, None),
        Route::Blocking(block) => (Some(block), None),
        Route::Refused(refusal) => (None, allowed(refusal)?),
    };
    Ok(Routed { block, change })
}

/// As [`classify_cmd`] for every command of a pipeline: refused if any is; blocking if any
/// blocks, with the sum of their timeouts (they run one after another) or none if any
/// has none. The changes come in the pipeline's order; most pipelines have none, and
/// then nothing is allocated.
pub(super) fn classify_pipeline(
    pipe: &Pipeline,
    declared: &BlockingCommands,
    in_multi: bool,
) -> Result<(Option<Block>, Vec<Change>), Error> {
    // An atomic pipeline's commands are queued by its MULTI: none of them blocks.
    let queued = in_multi || pipe.is_transaction();
    let mut blocking: Option<Block> = None;
    let mut changes = Vec::new();
    for cmd in pipe.cmd_iter() {
        let routed = classify_cmd(cmd, declared, queued)?;
        if let Some(next) = routed.block {
            blocking = Some(Block::then(blocking, next));
        }
        changes.extend(routed.change);
    }
    Ok((blocking, changes))
}

/// What a command the shared lane refuses does on an exclusive lane: the connection
/// state a lease exists for is allowed (and tracked, where the reset or `get_db` needs
/// it); what would change the connection itself stays refused.
fn allowed(refusal: Refusal) -> Result<Option<Change>, Error> {
    let why = match refusal {
        Refusal::Multi => return Ok(Some(Change::Multi)),
        Refusal::EndMulti => return Ok(Some(Change::EndMulti)),
        Refusal::Select(db) => return Ok(Some(Change::Select(db))),
        // The reset drops watches whatever the lease did (UNWATCH or RESET).
        Refusal::Watch => return Ok(None),
        Refusal::Subscribe => SUBSCRIBE,
        Refusal::Monitor => MONITOR,
        Refusal::ClientReply => CLIENT_REPLY,
        Refusal::Reset | Refusal::Hello | Refusal::Auth => IDENTITY,
        Refusal::Quit => QUIT,
    };
    Err(Error::new(ErrorKind::Refused, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(words: &[&str]) -> Result<Routed, Error> {
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
            assert!(
                matches!(classify(words), Ok(Routed { block: None, .. })),
                "{words:?}"
            );
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
        assert!(classify(&["BLPOP", "k", "1"]).is_ok_and(|r| r.block.is_some()));
        let mut cmd = redis::cmd("BLPOP");
        cmd.arg("k").arg(1);
        assert!(classify_cmd(&cmd, &BlockingCommands::new(), true).is_ok_and(|r| r.block.is_none()));
        let mut atomic = redis::pipe();
        atomic.atomic().cmd("BLPOP").arg("k").arg(1);
        assert!(matches!(
            classify_pipeline(&atomic, &BlockingCommands::new(), false),
            Ok((None, _))
        ));
        let mut plain = redis::pipe();
        plain.cmd("WATCH").arg("k").cmd("BLPOP").arg("k").arg(1);
        assert!(matches!(
            classify_pipeline(&plain, &BlockingCommands::new(), false),
            Ok((Some(_), _))
        ));
        let mut refused = redis::pipe();
        refused.cmd("GET").arg("k").cmd("SUBSCRIBE").arg("c");
        assert!(classify_pipeline(&refused, &BlockingCommands::new(), false).is_err());
    }

    #[test]
    fn state_changes_come_from_the_router() {
        let change = |words: &[&str]| classify(words).map(|r| r.change).ok().flatten();
        assert_eq!(change(&["multi"]), Some(Change::Multi));
        assert_eq!(change(&["EXEC"]), Some(Change::EndMulti));
        assert_eq!(change(&["discard"]), Some(Change::EndMulti));
        assert_eq!(change(&["SELECT", "7"]), Some(Change::Select(Some(7))));
        assert_eq!(change(&["SELECT", "x"]), Some(Change::Select(None)));
        assert_eq!(change(&["GET", "SELECT"]), None);
        let mut pipe = redis::pipe();
        pipe.cmd("SELECT").arg(3).get("k").cmd("MULTI").cmd("EXEC");
        let (_, changes) =
            classify_pipeline(&pipe, &BlockingCommands::new(), false).expect("allowed");
        assert_eq!(
            changes,
            [Change::Select(Some(3)), Change::Multi, Change::EndMulti]
        );
    }
}
