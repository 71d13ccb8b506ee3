//! The server's view, through the admin client: bounded set-up and clean-up commands,
//! and `CLIENT LIST`, which shows whether a client's connections are still there and
//! whether one is blocked.

use std::collections::HashSet;
use std::time::Duration;

use redis::FromRedisValue;
use tokio::time::Instant;

use super::{BoxError, ADMIN_TIMEOUT};

/// One admin command, bounded by [`ADMIN_TIMEOUT`].
pub(crate) async fn query<T: FromRedisValue>(
    admin: &redis_lanes::Client,
    cmd: &redis::Cmd,
) -> Result<T, BoxError> {
    let mut conn = admin.clone();
    tokio::time::timeout(ADMIN_TIMEOUT, cmd.query_async::<T>(&mut conn))
        .await
        .map_err(|_| "admin command: no reply")?
        .map_err(Into::into)
}

/// One admin pipeline, bounded by [`ADMIN_TIMEOUT`].
pub(crate) async fn pipe(
    admin: &redis_lanes::Client,
    pipe: &redis::Pipeline,
) -> Result<(), BoxError> {
    let mut conn = admin.clone();
    tokio::time::timeout(ADMIN_TIMEOUT, pipe.query_async::<()>(&mut conn))
        .await
        .map_err(|_| "admin pipeline: no reply")??;
    Ok(())
}

/// One connection as `CLIENT LIST` shows it: the fields the scenarios look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conn {
    pub(crate) id: i64,
    /// `b` among them: blocked in a blocking command.
    pub(crate) flags: String,
    /// The last command, lower case (`blpop`, `xreadgroup`, ...).
    pub(crate) cmd: String,
}

impl Conn {
    pub(crate) fn is_blocked(&self) -> bool {
        self.flags.contains('b')
    }
}

/// Every normal (not replica, not pub/sub) connection the server has.
pub(crate) async fn connections(admin: &redis_lanes::Client) -> Result<Vec<Conn>, BoxError> {
    let list: String = query(
        admin,
        redis::cmd("CLIENT").arg("LIST").arg("TYPE").arg("normal"),
    )
    .await?;
    Ok(list.lines().filter_map(parse_line).collect())
}

/// The ids of every normal connection: taken before a client connects, so the ones it
/// opens are those not in it.
pub(crate) async fn ids(admin: &redis_lanes::Client) -> Result<HashSet<i64>, BoxError> {
    Ok(connections(admin)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect())
}

/// Closes connections by id (`CLIENT KILL ID`), for clients that keep theirs open after
/// the scenario is done with them. Ids already gone are skipped by the server.
pub(crate) async fn kill(admin: &redis_lanes::Client, ids: &[i64]) -> Result<(), BoxError> {
    for id in ids {
        let _: i64 = query(admin, redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id)).await?;
    }
    Ok(())
}

/// Polls until a connection not in `before` (one the client under test opened) is
/// blocked in `cmd`; `false` if none is after `limit`.
pub(crate) async fn wait_blocked(
    admin: &redis_lanes::Client,
    before: &HashSet<i64>,
    cmd: &str,
    limit: Duration,
) -> Result<bool, BoxError> {
    let give_up = Instant::now() + limit;
    loop {
        let blocked = connections(admin)
            .await?
            .iter()
            .any(|c| !before.contains(&c.id) && c.is_blocked() && c.cmd == cmd);
        if blocked {
            return Ok(true);
        }
        if Instant::now() >= give_up {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Polls until no connection outside `before` is blocked; returns the time since
/// `since` at the first poll that found none, or `None` if one still was at `since +
/// limit`. Polls back to back for the first 50 ms (each poll is a round trip, well
/// under a millisecond here), then every millisecond.
pub(crate) async fn wait_unblocked(
    admin: &redis_lanes::Client,
    before: &HashSet<i64>,
    since: Instant,
    limit: Duration,
) -> Result<Option<Duration>, BoxError> {
    loop {
        let blocked = connections(admin)
            .await?
            .iter()
            .any(|c| !before.contains(&c.id) && c.is_blocked());
        let elapsed = since.elapsed();
        if !blocked {
            return Ok(Some(elapsed));
        }
        if elapsed >= limit {
            return Ok(None);
        }
        if elapsed >= Duration::from_millis(50) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// `id=7 addr=... flags=N ... cmd=client|list ...` → the fields of [`Conn`].
fn parse_line(line: &str) -> Option<Conn> {
    let mut id = None;
    let mut flags = String::new();
    let mut cmd = String::new();
    for field in line.split_ascii_whitespace() {
        match field.split_once('=') {
            Some(("id", v)) => id = v.parse().ok(),
            Some(("flags", v)) => flags = v.to_owned(),
            Some(("cmd", v)) => cmd = v.to_owned(),
            _ => {}
        }
    }
    Some(Conn {
        id: id?,
        flags,
        cmd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_list_lines() {
        let line = "id=12 addr=127.0.0.1:50000 laddr=127.0.0.1:6379 fd=9 name= age=3 idle=0 \
                    flags=b db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 cmd=blpop user=default";
        let conn = parse_line(line).unwrap_or_else(|| panic!("no id in {line}"));
        assert_eq!(conn.id, 12);
        assert!(conn.is_blocked());
        assert_eq!(conn.cmd, "blpop");
        assert!(parse_line("garbage").is_none());
    }
}
