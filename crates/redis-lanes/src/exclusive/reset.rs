//! When a lease ends: reset the connection's state, check that it worked, and only then
//! return the connection to the pool; close it on any doubt.
//!
//! `Drop` cannot wait, so it queues the reset on the lane at once (behind anything still
//! in flight, which the driver answers first) and a tracked task awaits the replies.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio::sync::oneshot;

use super::track::Track;
use super::{Exclusive, Exclusives, RESET_YES};
use crate::connect::{self, Step};
use crate::error::Error;
use crate::lane::LaneOptions;
use crate::lane::{Lane, Reply};
use crate::pool::Lease;

/// How the reply of one reset command is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// `RESET` answers `+RESET`.
    Reset,
    /// A handshake step, re-run after `RESET`.
    Step(Step),
    /// `DISCARD` sent in case a `MULTI` is open: "without MULTI" is fine too.
    Discard,
    /// Must answer `+OK` (`UNWATCH`, `SELECT`, `CLIENT SETNAME`).
    Ok,
}

/// The reset commands, packed, with how to check each reply.
struct ResetPlan {
    bytes: Vec<u8>,
    checks: Vec<Check>,
}

/// Leaves the bytes out: after `RESET` they replay the handshake, `AUTH` and password
/// included.
impl std::fmt::Debug for ResetPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetPlan")
            .field("bytes", &self.bytes.len())
            .field("checks", &self.checks)
            .finish()
    }
}

/// `RESET` and the handshake again where the server has it; otherwise what an older
/// server allows: leave `MULTI`, drop watches, restore database and name. `DISCARD` comes
/// first because inside `MULTI` every other command would only be queued.
fn plan(config: &LaneOptions, has_reset: bool, track: &Track) -> ResetPlan {
    let mut cmds = Vec::new();
    if has_reset {
        // RESET also drops authentication, protocol, database and name: the lane's own
        // handshake puts them back, exactly as when it connected.
        cmds.push((Check::Reset, redis::cmd("RESET")));
        for (step, cmd) in connect::steps(&config.connect.info) {
            cmds.push((Check::Step(step), cmd));
        }
    } else {
        if track.maybe_in_multi {
            cmds.push((Check::Discard, redis::cmd("DISCARD")));
        }
        cmds.push((Check::Ok, redis::cmd("UNWATCH")));
        if track.db_changed {
            let mut select = redis::cmd("SELECT");
            select.arg(config.connect.info.db);
            cmds.push((Check::Ok, select));
        }
        // The name is not tracked (`CLIENT SETNAME` is shared-lane safe, so the router
        // does not single it out): restore it always, which costs one command on servers
        // older than 6.2 only. An empty name removes one the lease set when none is
        // configured.
        let mut setname = redis::cmd("CLIENT");
        setname
            .arg("SETNAME")
            .arg(config.connect.info.client_name.as_deref().unwrap_or(""));
        cmds.push((Check::Ok, setname));
    }
    let mut bytes = Vec::with_capacity(64 * cmds.len());
    for (_, cmd) in &cmds {
        cmd.write_packed_command(&mut bytes);
    }
    ResetPlan {
        bytes,
        checks: cmds.into_iter().map(|(check, _)| check).collect(),
    }
}

/// Checks every reply of the reset; `Err` says which one was wrong. `client_id` is the
/// lane's: a `CLIENT ID` answered with another would mean the replies are out of step.
fn verify(checks: &[Check], values: &[Value], client_id: Option<i64>) -> Result<(), String> {
    if values.len() != checks.len() {
        return Err(format!(
            "{} replies to {} reset commands",
            values.len(),
            checks.len()
        ));
    }
    for (check, value) in checks.iter().zip(values) {
        let fine = match (check, value) {
            (Check::Reset, Value::SimpleString(text)) => text.eq_ignore_ascii_case("RESET"),
            (Check::Discard, Value::Okay | Value::ServerError(_)) => true,
            (Check::Ok | Check::Step(Step::Auth | Step::SetName | Step::Select), Value::Okay) => {
                true
            }
            (Check::Step(Step::Hello), Value::Map(_) | Value::Array(_)) => true,
            (Check::Step(Step::ClientId), Value::Int(id)) => client_id.is_none_or(|own| own == *id),
            // The handshake tolerates an ACL that denies CLIENT ID; so does its replay.
            (Check::Step(Step::ClientId), Value::ServerError(_)) => client_id.is_none(),
            _ => false,
        };
        if !fine {
            return Err(format!("{check:?} was answered with {value:?}"));
        }
    }
    Ok(())
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let state = Arc::clone(self.core.exclusives());
        if self.core.check_open().is_err() {
            // The client is closing: the pool takes nothing back. But a blocking command
            // cancelled by the close may have a recovery reading its late reply from this
            // lane; closing the lane first would lose data that raced the cancel.
            match self.recovering.take() {
                None => lease.discard(),
                Some(recovering) => {
                    let blocking = self.core.blocking();
                    let task = async move {
                        let _ = recovering.await;
                        lease.discard();
                    };
                    drop(
                        blocking
                            .runtime
                            .spawn(blocking.recoveries.track_future(task)),
                    );
                }
            }
            return;
        }
        if self.lane.is_closed() {
            state.discards.fetch_add(1, Relaxed);
            lease.discard();
            return;
        }
        let config = &self.core.config().lane;
        let has_reset = state.reset.load(Relaxed) == RESET_YES;
        let plan = plan(config, has_reset, &self.track);
        let frames = plan.checks.len();
        // Ordered after everything the lease sent, so its replies come after theirs.
        let reply = match self.lane.submit(plan.bytes, frames, 0, None) {
            Ok(reply) => reply,
            Err(_) => {
                state.discards.fetch_add(1, Relaxed);
                lease.discard();
                return;
            }
        };
        let task = finish(Finish {
            lease,
            lane: self.lane.clone(),
            reply,
            recovering: self.recovering.take(),
            checks: plan.checks,
            limit: config.close_timeout,
            state,
        });
        let blocking = self.core.blocking();
        // Tracked with the blocking recoveries, so `close()` waits for it. On a runtime
        // that is shutting down the task is dropped, and the lease with it, which closes
        // the connection: nothing dirty is ever returned.
        drop(
            blocking
                .runtime
                .spawn(blocking.recoveries.track_future(task)),
        );
    }
}

/// What the reset task needs from the dropped lease.
struct Finish {
    lease: Lease,
    lane: Lane,
    reply: oneshot::Receiver<Result<Reply, Error>>,
    recovering: Option<oneshot::Receiver<()>>,
    checks: Vec<Check>,
    /// How long outstanding replies may take: the client's `close_timeout`.
    limit: Duration,
    state: Arc<Exclusives>,
}

async fn finish(job: Finish) {
    let Finish {
        lease,
        lane,
        reply,
        recovering,
        checks,
        limit,
        state,
    } = job;
    let answered = tokio::time::timeout(limit, async {
        // A cancelled blocking command's recovery may still be sending CLIENT UNBLOCK
        // for this lane; the next lessee must never receive one.
        if let Some(recovering) = recovering {
            let _ = recovering.await;
        }
        lane.await_reply(reply).await
    })
    .await;
    let verdict = match answered {
        Err(_) => Err(format!("no reply within {limit:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(reply)) => verify(&checks, &reply.into_list(), lane.client_id()),
    };
    match verdict {
        Ok(()) => lease.release(),
        Err(why) => {
            state.discards.fetch_add(1, Relaxed);
            tracing::warn!(
                client_id = ?lane.client_id(),
                reason = %why,
                "an exclusive lane could not be reset after its lease; closing it"
            );
            lease.discard();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_by_step_discards_first_and_restores_what_changed_and_the_name() {
        let config = crate::Client::builder("redis://127.0.0.1/4")
            .client_name("app")
            .build()
            .unwrap()
            .lane;
        let mut track = Track::new(4);
        let plain = plan(&config, false, &track);
        assert_eq!(plain.checks, [Check::Ok, Check::Ok]);
        let text = String::from_utf8_lossy(&plain.bytes).into_owned();
        assert!(text.starts_with("*1\r\n$7\r\nUNWATCH"), "{text:?}");
        assert!(text.contains("SETNAME\r\n$3\r\napp"), "{text:?}");
        track.maybe_in_multi = true;
        track.db_changed = true;
        let full = plan(&config, false, &track);
        assert_eq!(
            full.checks,
            [Check::Discard, Check::Ok, Check::Ok, Check::Ok]
        );
        let text = String::from_utf8_lossy(&full.bytes).into_owned();
        let discard = text.find("DISCARD").unwrap();
        assert!(discard < text.find("UNWATCH").unwrap());
        assert!(text.contains("SELECT\r\n$1\r\n4"), "{text:?}");
        assert!(text.contains("SETNAME\r\n$3\r\napp"), "{text:?}");
    }

    #[test]
    fn reset_replays_the_handshake() {
        let config = crate::Client::builder("redis://:pw@127.0.0.1/2")
            .build()
            .unwrap()
            .lane;
        let plan = plan(&config, true, &Track::new(2));
        assert_eq!(
            plan.checks,
            [
                Check::Reset,
                Check::Step(Step::Auth),
                Check::Step(Step::Select),
                Check::Step(Step::ClientId)
            ]
        );
    }

    #[test]
    fn verify_is_strict() {
        let checks = [Check::Reset, Check::Step(Step::ClientId)];
        let good = [Value::SimpleString("RESET".into()), Value::Int(7)];
        assert!(verify(&checks, &good, Some(7)).is_ok());
        let other_client = [Value::SimpleString("RESET".into()), Value::Int(8)];
        assert!(verify(&checks, &other_client, Some(7)).is_err());
        let queued = [Value::SimpleString("QUEUED".into()), Value::Int(7)];
        assert!(verify(&checks, &queued, Some(7)).is_err());
        assert!(verify(&checks, &good[..1], Some(7)).is_err());
        let discard = [Check::Discard, Check::Ok];
        let not_in_multi = redis::parse_redis_value(b"-ERR DISCARD without MULTI\r\n").unwrap();
        assert!(verify(&discard, &[not_in_multi, Value::Okay], None).is_ok());
        assert!(verify(&discard, &[Value::Okay, Value::Okay], None).is_ok());
        assert!(verify(
            &discard,
            &[Value::Okay, Value::SimpleString("QUEUED".into())],
            None
        )
        .is_err());
    }
}
