//! Progress bars for the scenarios (indicatif, on stderr).
//!
//! indicatif hides a bar when stderr is not a terminal (CI logs); the per-row lines go
//! through [`note`], which prints either way, so a log still shows what was measured.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps named `scenario`; the message says what runs now.
pub(crate) fn bar(scenario: &str, len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    // The template is a constant; should it ever fail to parse, the default style is
    // still a working bar.
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>13} [{bar:24}] {pos}/{len} {elapsed:>4} {wide_msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(scenario.to_owned());
    bar
}

/// Prints `line` on stderr above the bar, without tearing it.
pub(crate) fn note(bar: &ProgressBar, line: &str) {
    bar.suspend(|| eprintln!("{line}"));
}
