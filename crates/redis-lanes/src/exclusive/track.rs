//! What a lease's commands may have changed on its connection.
//!
//! On servers with `RESET` this only steers routing (inside `MULTI` nothing blocks) and
//! `get_db`: `RESET` clears everything anyway. On older servers it decides which
//! commands the step-by-step reset needs. It errs on the side of "changed": a command
//! whose future was dropped may or may not have run, and an unneeded `DISCARD` or
//! `SELECT` costs nothing, while a missing one would hand the next lease a dirty
//! connection.

use redis::{Arg, Cmd, Pipeline};

/// The connection state a lease may have changed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Track {
    /// A `MULTI` may be open: the last of `MULTI`/`EXEC`/`DISCARD` sent was `MULTI`, or
    /// its outcome is unknown.
    pub(super) maybe_in_multi: bool,
    /// A `SELECT` was sent.
    pub(super) db_changed: bool,
    /// A `CLIENT SETNAME` was sent.
    pub(super) name_changed: bool,
    /// The database of the last `SELECT` that was answered, as `get_db` reports it.
    pub(super) db: i64,
}

/// What one command does to the tracked state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Multi,
    EndMulti,
    Select(Option<i64>),
    SetName,
    Other,
}

fn effect(cmd: &Cmd) -> Effect {
    let mut args = cmd.args_iter().map(|arg| match arg {
        Arg::Simple(bytes) => bytes,
        _ => &[],
    });
    let name = args.next().unwrap_or_default();
    if name.eq_ignore_ascii_case(b"MULTI") {
        Effect::Multi
    } else if name.eq_ignore_ascii_case(b"EXEC") || name.eq_ignore_ascii_case(b"DISCARD") {
        Effect::EndMulti
    } else if name.eq_ignore_ascii_case(b"SELECT") {
        let db = args
            .next()
            .and_then(|arg| std::str::from_utf8(arg).ok())
            .and_then(|text| text.parse().ok());
        Effect::Select(db)
    } else if name.eq_ignore_ascii_case(b"CLIENT")
        && args
            .next()
            .is_some_and(|sub| sub.eq_ignore_ascii_case(b"SETNAME"))
    {
        Effect::SetName
    } else {
        Effect::Other
    }
}

impl Track {
    pub(super) fn new(db: i64) -> Self {
        Self {
            maybe_in_multi: false,
            db_changed: false,
            name_changed: false,
            db,
        }
    }

    /// Before `cmds` are sent: assume each did what it asks for, since a dropped future
    /// leaves its outcome unknown. An `EXEC` is not trusted to have ended a `MULTI` until
    /// it is answered.
    pub(super) fn before<'a>(&mut self, cmds: impl IntoIterator<Item = &'a Cmd>) {
        for cmd in cmds {
            match effect(cmd) {
                Effect::Multi => self.maybe_in_multi = true,
                Effect::Select(_) => self.db_changed = true,
                Effect::SetName => self.name_changed = true,
                Effect::EndMulti | Effect::Other => {}
            }
        }
    }

    /// After `cmds` were answered: the last of `MULTI`/`EXEC`/`DISCARD` decides whether
    /// a `MULTI` is open (an `EXEC` or `DISCARD` ends it even when refused, and a nested
    /// `MULTI` leaves it open), and the last `SELECT` sets the database. `atomic` stands
    /// for the `MULTI` ... `EXEC` that `pipe().atomic()` wraps around its commands.
    pub(super) fn after<'a>(
        &mut self,
        cmds: impl IntoIterator<Item = &'a Cmd>,
        atomic: bool,
        select_ok: bool,
    ) {
        for cmd in cmds {
            match effect(cmd) {
                Effect::Multi => self.maybe_in_multi = true,
                Effect::EndMulti => self.maybe_in_multi = false,
                Effect::Select(Some(db)) if select_ok => self.db = db,
                Effect::Select(_) | Effect::SetName | Effect::Other => {}
            }
        }
        if atomic {
            self.maybe_in_multi = false;
        }
    }

    /// [`Track::after`] for a pipeline.
    pub(super) fn after_pipeline(&mut self, pipe: &Pipeline) {
        // A pipeline's replies are not matched to its commands here; a SELECT in it is
        // taken to have worked, which is what a caller that checks its replies expects.
        self.after(pipe.cmd_iter(), pipe.is_transaction(), true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_is_open_until_an_answered_exec() {
        let mut track = Track::new(0);
        let multi = redis::cmd("multi");
        let exec = redis::cmd("EXEC");
        track.before([&multi]);
        assert!(track.maybe_in_multi);
        track.after([&multi], false, true);
        assert!(track.maybe_in_multi);
        track.before([&exec]);
        assert!(track.maybe_in_multi, "EXEC not answered yet");
        track.after([&exec], false, true);
        assert!(!track.maybe_in_multi);
    }

    #[test]
    fn select_and_setname_are_noted() {
        let mut track = Track::new(2);
        let mut select = redis::cmd("SELECT");
        select.arg(5);
        let mut name = redis::cmd("client");
        name.arg("setname").arg("x");
        track.before([&select, &name]);
        assert!(track.db_changed && track.name_changed);
        assert_eq!(track.db, 2);
        track.after([&select], false, false);
        assert_eq!(track.db, 2, "a refused SELECT changes nothing");
        track.after([&select], false, true);
        assert_eq!(track.db, 5);
    }

    #[test]
    fn an_atomic_pipeline_ends_with_exec() {
        let mut track = Track::new(0);
        track.maybe_in_multi = true;
        let mut pipe = redis::pipe();
        pipe.atomic().set("k", 1);
        track.after_pipeline(&pipe);
        assert!(!track.maybe_in_multi);
    }
}
