//! Picking a free loopback port.

use std::io;
use std::net::{Ipv4Addr, TcpListener};

/// Asks the kernel for a currently unused port on `127.0.0.1`.
///
/// The listener is closed before the port is handed to `redis-server`, so another process
/// can take it in between; the caller retries with a fresh port when the server reports that
/// its address is in use.
pub(crate) fn free_loopback_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}
