//! Choosing the `redis-server` executable and explaining when it is missing.

use std::env;
use std::io;
use std::path::PathBuf;

use crate::error::{Error, ErrorKind};

/// Environment variable naming the `redis-server` executable to run.
const BINARY_ENV: &str = "REDIS_SERVER_BIN";
const INSTALL_HINT: &str =
    "install it with `apt-get install redis-server` (Debian package `redis-server`)";

/// The executable to run and where that choice came from, for the error message.
#[derive(Debug)]
pub(crate) struct Binary {
    pub(crate) path: PathBuf,
    origin: Origin,
}

#[derive(Debug, Clone, Copy)]
enum Origin {
    Builder,
    Env,
    Path,
}

impl Binary {
    /// Decided once per server so a restart runs the same executable even if the
    /// environment changes in between.
    pub(crate) fn resolve(configured: Option<PathBuf>) -> Self {
        if let Some(path) = configured {
            return Self {
                path,
                origin: Origin::Builder,
            };
        }
        match env::var_os(BINARY_ENV).filter(|value| !value.is_empty()) {
            Some(value) => Self {
                path: value.into(),
                origin: Origin::Env,
            },
            None => Self {
                path: "redis-server".into(),
                origin: Origin::Path,
            },
        }
    }

    /// Turns a spawn failure into an error; "not found" becomes a missing-binary error.
    pub(crate) fn spawn_error(&self, error: io::Error) -> Error {
        if error.kind() != io::ErrorKind::NotFound {
            return Error::io(
                format!("could not run redis-server `{}`", self.path.display()),
                error,
            );
        }
        let message = match self.origin {
            Origin::Path => {
                format!("redis-server not found on PATH (or {BINARY_ENV}): {INSTALL_HINT}")
            }
            Origin::Env => format!(
                "redis-server not found at `{}` (from {BINARY_ENV}): {INSTALL_HINT}",
                self.path.display()
            ),
            Origin::Builder => format!(
                "redis-server not found at `{}` (set with ServerBuilder::binary): {INSTALL_HINT}",
                self.path.display()
            ),
        };
        Error::new(ErrorKind::MissingBinary, message).with_source(error)
    }
}
