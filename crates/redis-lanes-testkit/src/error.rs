//! The crate's error type.

use std::fmt;
use std::io;

/// The broad category of an [`Error`], for tests that want to react to one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The `redis-server` executable could not be found.
    MissingBinary,
    /// An operating-system call failed: creating the temporary directory, spawning the
    /// process, or talking to the server over a socket.
    Io,
    /// The server exited before it answered, or did not answer within the startup timeout.
    Startup,
    /// The server answered [`RedisServer::command`](crate::RedisServer::command) with an
    /// error reply; the error's message is the server's text without the leading `-`.
    ServerReply,
    /// [`RedisServer::command`](crate::RedisServer::command) was called without arguments, or
    /// the server sent a reply that helper does not understand.
    Protocol,
    /// The TLS test certificates could not be generated.
    Certificate,
}

/// Everything that can go wrong while starting or talking to a test server.
///
/// The message is written for a human reading a failed test: startup failures include the
/// tail of the server's log and of its stdout/stderr.
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<io::Error>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self {
            kind: ErrorKind::Io,
            message: context.into(),
            source: Some(source),
        }
    }

    pub(crate) fn with_source(mut self, source: io::Error) -> Self {
        self.source = Some(source);
        self
    }

    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether this error means the `redis-server` executable could not be found, so a test
    /// suite can skip instead of fail on machines without Redis if it chooses to.
    pub fn is_missing_binary(&self) -> bool {
        self.kind == ErrorKind::MissingBinary
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The I/O cause is left to `source()`, so error reporters do not print it twice.
        f.write_str(&self.message)
    }
}

// Written by hand rather than derived: `unwrap()` and `fn test() -> Result<..>` print the
// `Debug` form, and a derived one would escape the newlines of the embedded log tail into
// one unreadable line. It also appends the cause, which `Display` leaves to `source()`.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)?;
        if let Some(source) = &self.source {
            write!(f, "\ncaused by: {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}
