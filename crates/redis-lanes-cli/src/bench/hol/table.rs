//! The head-of-line table, one line per client, and its chart panel.

use std::fmt::Write as _;

use super::super::chart::{Bar, Panel};
use super::super::clients::Spec;
use super::super::summary::duration;
use super::measure::{Blpops, Gets, Outcome};
use super::Plan;

/// The markdown table for `rows` of (client, outcome).
pub(crate) fn table(plan: &Plan, rows: &[(Spec, Outcome)]) -> String {
    let mut out = format!(
        "| client | GETs alone (total, max) | GETs behind {} BLPOP {} (total, max, errors) \
         | behind / alone | BLPOPs: ended normally / failed (first failure after) |\n\
         |---|---|---|---:|---|\n",
        plan.blockers, plan.blpop_seconds
    );
    for (spec, outcome) in rows {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            spec.label,
            gets_cell(plan, &outcome.alone, false),
            gets_cell(plan, &outcome.behind, true),
            ratio(&outcome.alone, &outcome.behind),
            blpops_cell(plan, &outcome.blpops),
        );
    }
    out
}

/// The chart's panel: how long the GETs took behind the BLPOPs.
pub(crate) fn panel(plan: &Plan, rows: &[(Spec, Outcome)]) -> Panel {
    let bars = rows
        .iter()
        .map(|(spec, outcome)| {
            let behind = &outcome.behind;
            let mut text = if behind.finished() {
                duration(behind.total)
            } else {
                format!(
                    "cut off at {}, {}/{} done",
                    duration(plan.bound),
                    behind.done,
                    behind.planned
                )
            };
            // Fast GETs are no win if the blocking calls were killed to get them.
            let failed = outcome.blpops.failed();
            if failed > 0 {
                let _ = write!(text, "; {failed}/{} BLPOPs failed", plan.blockers);
            }
            Bar {
                label: spec.short.to_owned(),
                value: behind.total.as_secs_f64(),
                text,
                ours: spec.is_lanes(),
            }
        })
        .collect();
    Panel {
        title: format!(
            "Head-of-line: {} GETs behind {} BLPOP {}, total time (less is better)",
            plan.gets, plan.blockers, plan.blpop_seconds
        ),
        bars,
    }
}

/// `12.3 ms, max 45 µs[, N errors]`, or how far it got when the bound cut it off.
fn gets_cell(plan: &Plan, gets: &Gets, always_errors: bool) -> String {
    let mut cell = if gets.finished() {
        format!("{}, max {}", duration(gets.total), duration(gets.max))
    } else {
        format!(
            "cut off at {}: {} of {} done, max {}",
            duration(plan.bound),
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
fn blpops_cell(plan: &Plan, blpops: &Blpops) -> String {
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
                duration(plan.bound)
            ));
        }
        let _ = write!(cell, " (after {}: {})", duration(first), kinds.join(", "));
    }
    cell
}
