//! Throw-away `redis-server` processes for tests.
//!
//! [`RedisServer::start`] launches `redis-server` on a free port of `127.0.0.1`, in a fresh
//! temporary directory and with persistence turned off, and returns once the server answers
//! `PING`. Dropping the [`RedisServer`] kills that process and deletes the directory, so
//! every test can have its own server and nothing is left behind.
//!
//! The executable is `redis-server` from `PATH`, or the path in the `REDIS_SERVER_BIN`
//! environment variable, or one set with [`ServerBuilder::binary`]. If none is found,
//! starting fails with an error for which [`Error::is_missing_binary`] is true and whose
//! message says how to install it (`apt-get install redis-server` on Debian).
//!
//! [`Proxy`] sits between a client and a server and can stop forwarding without closing
//! anything, to test what a client does when its server goes silent.
//!
//! The kit depends only on `std`, `tempfile`, `rcgen` (for TLS test certificates) and
//! `socket2` (for the proxy's reset):
//! the readiness probe and the small [`RedisServer::command`] helper speak just enough
//! RESP over [`std::net::TcpStream`].
//!
//! # Examples
//!
//! ```
//! use redis_lanes_testkit::RedisServer;
//!
//! # fn main() -> Result<(), redis_lanes_testkit::Error> {
//! let server = RedisServer::start()?;
//! // Point the client under test at `server.url()`, e.g. "redis://127.0.0.1:40123",
//! // and use the side channel to check what it did.
//! assert!(server.url().starts_with("redis://127.0.0.1:"));
//! assert_eq!(server.command(&["PING"])?, "PONG");
//! # Ok(())
//! # }
//! ```
//!
//! Extra server arguments, a Unix socket, and a restart on the same port:
//!
//! ```
//! use redis_lanes_testkit::{ErrorKind, RedisServer};
//!
//! # fn main() -> Result<(), redis_lanes_testkit::Error> {
//! let mut server = RedisServer::builder()
//!     .args(["--requirepass", "secret"])
//!     .unix_socket(true)
//!     .start()?;
//! let unauthenticated = server.command(&["GET", "key"]).unwrap_err();
//! assert_eq!(unauthenticated.kind(), ErrorKind::ServerReply);
//! assert!(server.unix_url().is_some_and(|url| url.starts_with("redis+unix:///")));
//!
//! let (port, pid) = (server.port(), server.pid());
//! server.restart()?;
//! assert_eq!(server.port(), port);
//! assert_ne!(server.pid(), pid);
//! # Ok(())
//! # }
//! ```
//!
//! A TLS listener with certificates made for this server (a CA, a server certificate for
//! `localhost` and `127.0.0.1`, a client certificate), requiring client certificates:
//!
//! ```
//! use redis_lanes_testkit::{ClientAuth, RedisServer};
//!
//! # fn main() -> Result<(), redis_lanes_testkit::Error> {
//! let server = RedisServer::builder()
//!     .tls_auth_clients(ClientAuth::Yes)
//!     .start()?;
//! let url = server.tls_url().expect("a TLS server has a TLS URL");
//! assert!(url.starts_with("rediss://127.0.0.1:"));
//! let certs = server.tls_certs().expect("and certificates");
//! assert!(certs.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! assert!(certs.client_key_path().exists());
//! // The plain port stays open as the kit's side channel.
//! assert_eq!(server.command(&["PING"])?, "PONG");
//! # Ok(())
//! # }
//! ```

mod binary;
mod builder;
mod cluster;
mod error;
mod log;
mod port;
mod proxy;
mod resp;
mod server;
mod target;
mod tls;

pub use builder::ServerBuilder;
pub use cluster::{RedisCluster, SlotMigration};
pub use error::{Error, ErrorKind};
pub use proxy::{Proxy, ProxyMode};
pub use server::RedisServer;
pub use target::Target;
pub use tls::{ClientAuth, TlsCerts};
