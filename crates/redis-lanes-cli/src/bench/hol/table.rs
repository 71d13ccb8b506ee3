//! The head-of-line table, one line per client.

use std::fmt::Write as _;
use std::time::Duration;

use super::measure::{Blpops, Gets, Outcome, BLPOP_SECONDS, BOUND};

/// The markdown table for `rows` of (client label, outcome).
pub(crate) fn table(blockers: usize, rows: &[(&str, Outcome)]) -> String {
    let mut out = format!(
        "| client | GETs alone (total, max) | GETs behind {blockers} BLPOP {BLPOP_SECONDS} \
         (total, max, errors) | behind / alone | BLPOPs: ended normally / failed (first \
         failure after) |\n\
         |---|---|---|---:|---|\n"
    );
    for (label, outcome) in rows {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} |",
            gets_cell(&outcome.alone, false),
            gets_cell(&outcome.behind, true),
            ratio(&outcome.alone, &outcome.behind),
            blpops_cell(&outcome.blpops),
        );
    }
    out
}

/// `12.3 ms, max 45 µs[, N errors]`, or how far it got when the bound cut it off.
fn gets_cell(gets: &Gets, always_errors: bool) -> String {
    let mut cell = if gets.finished() {
        format!("{}, max {}", duration(gets.total), duration(gets.max))
    } else {
        format!(
            "cut off at {}: {} of {} done, max {}",
            duration(BOUND),
            gets.done,
            gets.planned,
            duration(gets.max)
        )
    };
    if always_errors || gets.errors > 0 {
        let _ = write!(cell, ", {} errors", gets.errors);
    }
    cell
}

/// Total time behind the BLPOPs over total time alone; a lower bound when the GETs
/// behind were cut off.
fn ratio(alone: &Gets, behind: &Gets) -> String {
    let alone_secs = alone.total.as_secs_f64();
    if !alone.finished() || alone_secs <= 0.0 {
        return "n/a".to_owned();
    }
    let ratio = behind.total.as_secs_f64() / alone_secs;
    if behind.finished() {
        format!("{ratio:.2}")
    } else {
        format!("> {ratio:.0}")
    }
}

/// `64 / 0`, or `0 / 64 (after 0.50 s: 64 errors)`.
fn blpops_cell(blpops: &Blpops) -> String {
    let mut cell = format!("{} / {}", blpops.normal, blpops.failed());
    if let Some(first) = blpops.first_failure {
        let mut kinds = Vec::new();
        if blpops.errors > 0 {
            kinds.push(format!("{} errors", blpops.errors));
        }
        if blpops.late > 0 {
            kinds.push(format!("{} nil but late", blpops.late));
        }
        if blpops.unfinished > 0 {
            kinds.push(format!(
                "{} still waiting at {}",
                blpops.unfinished,
                duration(BOUND)
            ));
        }
        let _ = write!(cell, " (after {}: {})", duration(first), kinds.join(", "));
    }
    cell
}

/// A duration in the unit that keeps it short: `850 µs`, `12.3 ms`, `2.01 s`.
pub(crate) fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.2} s")
    } else if secs >= 1e-3 {
        format!("{:.1} ms", secs * 1e3)
    } else {
        format!("{:.0} µs", secs * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(duration(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(duration(Duration::from_millis(2_010)), "2.01 s");
    }
}
