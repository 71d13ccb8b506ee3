//! The server an example or a demo talks to: the one the user names, or a throw-away one.

use crate::{Error, RedisServer};

/// A server to talk to: the URL in an environment variable, or a fresh [`RedisServer`]
/// that lives as long as this value.
#[derive(Debug)]
pub struct Target {
    url: String,
    /// Kept only so that the server lives as long as the target.
    _server: Option<RedisServer>,
}

impl Target {
    /// The URL in the environment variable `var` (e.g. `REDIS_URL`) when it is set and
    /// not empty; otherwise a server started with [`RedisServer::start`].
    ///
    /// # Errors
    ///
    /// As [`RedisServer::start`], when no URL is given and no server can be started.
    pub fn from_env_or_start(var: &str) -> Result<Target, Error> {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => Ok(Target { url, _server: None }),
            _ => {
                let server = RedisServer::start()?;
                Ok(Target {
                    url: server.url(),
                    _server: Some(server),
                })
            }
        }
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the server was started here (no URL was given).
    pub fn is_started(&self) -> bool {
        self._server.is_some()
    }
}
