//! Reading the end of the server's log files.

use std::fs;
use std::path::Path;

/// Current length of the file at `path`, or 0 if it does not exist yet.
///
/// Used to remember where a launch's output starts, because the files are appended to
/// across restarts and retries.
pub(crate) fn len(path: &Path) -> u64 {
    fs::metadata(path).map(|meta| meta.len()).unwrap_or(0)
}

/// The last `lines` lines of the file at `path`, looking only at bytes from offset `from`.
///
/// Returns an empty string if the file cannot be read: this feeds diagnostics, and a
/// missing log must not hide the error being reported.
pub(crate) fn tail(path: &Path, from: u64, lines: usize) -> String {
    // Test-server logs are a few kilobytes, so reading the whole file is simpler than
    // seeking backwards and costs nothing noticeable.
    let Ok(bytes) = fs::read(path) else {
        return String::new();
    };
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
