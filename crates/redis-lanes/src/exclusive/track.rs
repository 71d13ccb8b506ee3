//! What a lease's commands may have changed on its connection.
//!
//! On servers with `RESET` this only steers routing (inside `MULTI` nothing blocks) and
//! `get_db`: `RESET` clears everything anyway. On older servers it decides which
//! commands the step-by-step reset needs. It errs on the side of "changed": a command
//! whose future was dropped may or may not have run, and an unneeded `DISCARD` or
//! `SELECT` costs nothing, while a missing one would hand the next lease a dirty
//! connection.

use super::route::Change;

/// The connection state a lease may have changed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Track {
    /// A `MULTI` may be open: the last of `MULTI`/`EXEC`/`DISCARD` sent was `MULTI`, or
    /// its outcome is unknown.
    pub(super) maybe_in_multi: bool,
    /// A `SELECT` was sent.
    pub(super) db_changed: bool,
    /// The database of the last `SELECT` that was answered, as `get_db` reports it.
    pub(super) db: i64,
}

impl Track {
    pub(super) fn new(db: i64) -> Self {
        Self {
            maybe_in_multi: false,
            db_changed: false,
            db,
        }
    }

    /// Before commands with these `changes` are sent: assume each did what it asks for,
    /// since a dropped future leaves its outcome unknown. An `EXEC` is not trusted to
    /// have ended a `MULTI` until it is answered.
    pub(super) fn before(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Multi => self.maybe_in_multi = true,
                Change::Select(_) => self.db_changed = true,
                Change::EndMulti => {}
            }
        }
    }

    /// After commands with these `changes` were answered: the last of
    /// `MULTI`/`EXEC`/`DISCARD` decides whether a `MULTI` is open (an `EXEC` or `DISCARD`
    /// ends it even when refused, and a nested `MULTI` leaves it open), and the last
    /// `SELECT` sets the database if `select_ok`. `atomic` stands for the `MULTI` ...
    /// `EXEC` that `pipe().atomic()` wraps around its commands.
    ///
    /// A pipeline's replies are not matched to its commands here; a `SELECT` in it is
    /// taken to have worked, which is what a caller that checks its replies expects.
    pub(super) fn after(&mut self, changes: &[Change], atomic: bool, select_ok: bool) {
        for change in changes {
            match change {
                Change::Multi => self.maybe_in_multi = true,
                Change::EndMulti => self.maybe_in_multi = false,
                Change::Select(Some(db)) if select_ok => self.db = *db,
                Change::Select(_) => {}
            }
        }
        if atomic {
            self.maybe_in_multi = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_is_open_until_an_answered_exec() {
        let mut track = Track::new(0);
        track.before(&[Change::Multi]);
        assert!(track.maybe_in_multi);
        track.after(&[Change::Multi], false, true);
        assert!(track.maybe_in_multi);
        track.before(&[Change::EndMulti]);
        assert!(track.maybe_in_multi, "EXEC not answered yet");
        track.after(&[Change::EndMulti], false, true);
        assert!(!track.maybe_in_multi);
    }

    #[test]
    fn select_is_noted_and_applied_when_answered() {
        let mut track = Track::new(2);
        let select = [Change::Select(Some(5))];
        track.before(&select);
        assert!(track.db_changed);
        assert_eq!(track.db, 2);
        track.after(&select, false, false);
        assert_eq!(track.db, 2, "a refused SELECT changes nothing");
        track.after(&select, false, true);
        assert_eq!(track.db, 5);
    }

    #[test]
    fn an_atomic_pipeline_ends_with_exec() {
        let mut track = Track::new(0);
        track.maybe_in_multi = true;
        track.after(&[], true, true);
        assert!(!track.maybe_in_multi);
    }
}
