//! Watching a dedicated lane that is busy, from the shared lane.
//!
//! A lane waiting in `BLPOP k 0` cannot send `PING`: its socket belongs to the blocking
//! command. So while a caller waits on it, the shared lane asks the server every
//! health-check interval whether the lane's connection still exists there
//! (`CLIENT LIST ID <id>`). Listed: the wait is legitimate, however long. Not listed
//! (the server dropped it, or restarted): the lane is dead. No answer within the
//! health-check timeout (the path to the server is black, the shared lane included):
//! the lane is declared dead too, since nothing shows it is alive.
//!
//! What this cannot see is a path that is dead for the busy lane alone while the server
//! still lists it (a NAT entry dropped for one connection). TCP keepalive and
//! `TCP_USER_TIMEOUT`, set on every socket, cover that case (see `connect/socket.rs`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use redis::Value;

use crate::error::{Error, ErrorKind};
use crate::lane::{HealthOptions, Lane};

/// Pause between attempts while the shared lane is reconnecting.
const RETRY: Duration = Duration::from_millis(100);

/// Counters of the watches of one pool.
#[derive(Debug, Default)]
pub(crate) struct WatchCounters {
    pub(crate) checks: AtomicU64,
    pub(crate) deaths: crate::stats::Deaths,
    /// Set once the server refused `CLIENT LIST` (an ACL): logged once, then the
    /// watches rely on TCP alone.
    refused: AtomicBool,
}

/// Never completes. Closes `lane` when it is declared dead, so that its caller's reply
/// fails with [`ErrorKind::ConnectionLost`] (outcome unknown); after that, and when the
/// check is off, the lane's id is unknown or the server refuses to list clients, it
/// only waits.
pub(crate) async fn watch(
    shared: &Lane,
    lane: &Lane,
    health: HealthOptions,
    counters: &WatchCounters,
) {
    let (Some(every), Some(id)) = (health.interval, lane.client_id()) else {
        return std::future::pending().await;
    };
    // The last sign of life: the call began, or the server listed the lane.
    let mut alive = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        counters.checks.fetch_add(1, Relaxed);
        let why = match tokio::time::timeout(health.timeout, listed(shared, id)).await {
            Ok(Some(true)) => {
                alive = tokio::time::Instant::now();
                continue;
            }
            Ok(None) => {
                if !counters.refused.swap(true, Relaxed) {
                    tracing::info!(
                        "the server refused CLIENT LIST; busy blocking lanes are watched by \
                         TCP keepalive alone"
                    );
                }
                return std::future::pending().await;
            }
            Ok(Some(false)) => "the server no longer lists its connection".to_owned(),
            Err(_) => format!(
                "the server did not confirm its connection within {:?} (health check \
                 from the shared lane)",
                health.timeout
            ),
        };
        counters.deaths.record(alive.elapsed());
        let err = Error::new(
            ErrorKind::ConnectionLost,
            format!("a busy dedicated lane was declared dead: {why}"),
        );
        tracing::warn!(client_id = id, "{err}");
        lane.kill(err);
        return std::future::pending().await;
    }
}

/// Whether the server lists client `id`; `None` when it refuses to say. Retries while
/// the shared lane has no connection; the caller bounds the time.
async fn listed(shared: &Lane, id: i64) -> Option<bool> {
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("LIST").arg("ID").arg(id);
    loop {
        match shared.send_unrouted(&cmd).await {
            Ok(Value::BulkString(text)) => return Some(lists(&text, id)),
            Ok(Value::VerbatimString { text, .. }) => return Some(lists(text.as_bytes(), id)),
            Ok(_) => return None,
            Err(err) if err.kind() == ErrorKind::Closed => {
                // The client is closing; its close() takes care of the lane.
                return std::future::pending().await;
            }
            Err(_) => tokio::time::sleep(RETRY).await,
        }
    }
}

/// Whether a `CLIENT LIST` reply has a line for client `id`.
fn lists(text: &[u8], id: i64) -> bool {
    let field = format!("id={id} ");
    text.split(|&b| b == b'\n')
        .any(|line| line.starts_with(field.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::lists;

    #[test]
    fn finds_the_client_line() {
        let text = b"id=12 addr=127.0.0.1:1 laddr=x fd=8 name= age=0 cmd=blpop\nid=120 addr=y\n";
        assert!(lists(text, 12));
        assert!(lists(text, 120));
        assert!(!lists(text, 1));
        assert!(!lists(b"", 12));
    }
}
