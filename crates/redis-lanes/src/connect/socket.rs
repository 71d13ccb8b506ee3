//! How a TCP socket notices a peer that went away without closing: keepalive probes
//! while it is quiet, and `TCP_USER_TIMEOUT` while it has data the peer never
//! acknowledges.
//!
//! Without these a connection behind a dropped NAT entry or a pulled cable stays open
//! for as long as the operating system's defaults allow: keepalive off, and about 15
//! minutes of retransmissions. Both are kernel mechanisms, so they also watch a blocking
//! lane whose socket is busy with `BLPOP k 0`, where no command can be sent to check.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

/// The kernel-level liveness settings of every TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpOptions {
    /// Idle time before the first keepalive probe; `None` turns keepalive off. Probes
    /// then follow every `idle / 2` (at least 1 s), and [`KEEPALIVE_PROBES`] unanswered
    /// ones close the connection.
    pub(crate) keepalive: Option<Duration>,
    /// How long written data may stay unacknowledged before the connection is closed
    /// (Linux `TCP_USER_TIMEOUT`); `None` leaves the system's retransmission limit.
    pub(crate) user_timeout: Option<Duration>,
}

/// Unanswered keepalive probes after which the kernel closes the connection.
pub(crate) const KEEPALIVE_PROBES: u32 = 3;

impl Default for TcpOptions {
    /// A quiet dead peer is found within 10 s + 3 × 5 s = 25 s, one that stops
    /// acknowledging data within 20 s.
    fn default() -> Self {
        Self {
            keepalive: Some(Duration::from_secs(10)),
            user_timeout: Some(Duration::from_secs(20)),
        }
    }
}

impl TcpOptions {
    /// Applies the options to a connected socket.
    ///
    /// # Errors
    ///
    /// The operating system's, when it refuses an option.
    pub(crate) fn apply(&self, tcp: &TcpStream) -> std::io::Result<()> {
        let socket = SockRef::from(tcp);
        if let Some(idle) = self.keepalive {
            socket.set_tcp_keepalive(&keepalive(idle))?;
        }
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
        if let Some(limit) = self.user_timeout {
            socket.set_tcp_user_timeout(Some(limit))?;
        }
        Ok(())
    }
}

fn keepalive(idle: Duration) -> TcpKeepalive {
    // The kernel counts in whole seconds; 0 would be refused.
    let idle = idle.max(Duration::from_secs(1));
    let keepalive = TcpKeepalive::new().with_time(idle);
    // The probe interval and count, where the platform has them (all the ones Redis
    // clients run on, Windows without the count); elsewhere its defaults stay.
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "netbsd",
    ))]
    let keepalive = keepalive
        .with_interval((idle / 2).max(Duration::from_secs(1)))
        .with_retries(KEEPALIVE_PROBES);
    #[cfg(target_os = "windows")]
    let keepalive = keepalive.with_interval((idle / 2).max(Duration::from_secs(1)));
    keepalive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_options_reach_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let options = TcpOptions {
            keepalive: Some(Duration::from_secs(8)),
            user_timeout: Some(Duration::from_secs(7)),
        };
        options.apply(&tcp).unwrap();
        let socket = SockRef::from(&tcp);
        assert!(socket.keepalive().unwrap());
        #[cfg(target_os = "linux")]
        {
            assert_eq!(socket.tcp_keepalive_time().unwrap(), Duration::from_secs(8));
            assert_eq!(
                socket.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(4)
            );
            assert_eq!(socket.tcp_keepalive_retries().unwrap(), KEEPALIVE_PROBES);
            assert_eq!(
                socket.tcp_user_timeout().unwrap(),
                Some(Duration::from_secs(7))
            );
        }

        let off = TcpStream::connect(addr).await.unwrap();
        TcpOptions {
            keepalive: None,
            user_timeout: None,
        }
        .apply(&off)
        .unwrap();
        assert!(!SockRef::from(&off).keepalive().unwrap());
    }
}
