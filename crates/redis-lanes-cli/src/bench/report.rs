//! What `--out` writes: `BENCHMARKS.md` (a header saying how the numbers were made, one
//! section per scenario, then the hand-written part kept from the previous file) and
//! the chart next to it.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::chart::{self, Panel};
use super::BoxError;

/// The report's file name inside the `--out` directory.
pub(crate) const REPORT_FILE: &str = "BENCHMARKS.md";
/// The chart's file name inside the `--out` directory.
pub(crate) const CHART_FILE: &str = "benchmarks.svg";

/// Separates the generated part from the hand-written one, which a regenerated file
/// keeps as it was.
const HAND_WRITTEN: &str = "<!-- Written by hand below this line: `redis-lanes bench --out` \
                            keeps it when it regenerates the file above. -->";
/// Where the hand-written part began before the marker existed.
const OLD_HAND_WRITTEN_HEADING: &str = "\n## Reading the table";

/// One scenario's results.
pub(crate) struct Section {
    pub(crate) heading: &'static str,
    /// What the table shows and how it was measured.
    pub(crate) about: String,
    /// The markdown table, also what the bench prints.
    pub(crate) table: String,
    /// The scenario's part of the chart.
    pub(crate) panels: Vec<Panel>,
    /// redis-lanes results that break its guarantees; any fails the run.
    pub(crate) failures: Vec<String>,
}

/// What the file header records about the run.
pub(crate) struct Context {
    pub(crate) server_version: String,
    pub(crate) server_origin: &'static str,
    pub(crate) workers: usize,
}

/// Writes the report and the chart into `dir` (created if missing).
pub(crate) fn write(dir: &Path, context: &Context, sections: &[Section]) -> Result<(), BoxError> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let report = dir.join(REPORT_FILE);
    let previous = match std::fs::read_to_string(&report) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", report.display()).into()),
    };
    let text = document(context, sections, &hand_written(previous.as_deref()));
    std::fs::write(&report, text).map_err(|e| format!("cannot write {}: {e}", report.display()))?;
    let panels: Vec<&Panel> = sections.iter().flat_map(|s| &s.panels).collect();
    let svg = chart::svg(&panels)?;
    let chart_path = dir.join(CHART_FILE);
    std::fs::write(&chart_path, svg)
        .map_err(|e| format!("cannot write {}: {e}", chart_path.display()))?;
    eprintln!("wrote {} and {}", report.display(), chart_path.display());
    Ok(())
}

/// The hand-written tail of a previous report, marker included; a fresh marker and a
/// placeholder when there is none.
fn hand_written(previous: Option<&str>) -> String {
    if let Some(text) = previous {
        if let Some(at) = text.find(HAND_WRITTEN) {
            return text[at..].to_owned();
        }
        if let Some(at) = text.find(OLD_HAND_WRITTEN_HEADING) {
            return format!("{HAND_WRITTEN}\n{}", &text[at..]);
        }
    }
    format!("{HAND_WRITTEN}\n\n## Reading the tables\n\n(Not written yet.)\n")
}

/// The whole file: header, sections, hand-written tail.
fn document(context: &Context, sections: &[Section], tail: &str) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut out = format!(
        "# redis-lanes benchmarks\n\
         \n\
         redis-lanes, redis-rs (`MultiplexedConnection`, `ConnectionManager`), a \
         deadpool-redis pool and fred, measured in the same process and Tokio runtime \
         against the same server.\n\
         \n\
         - Date: {date} (UTC)\n\
         - Command: `{command}`\n\
         - redis-server: {version} ({origin})\n\
         - CPUs: {cpus}; Tokio worker threads: {workers}\n\
         - Clients: redis-lanes {ours}, redis 1.x, deadpool-redis 0.23, fred 10 (exact \
         versions in `Cargo.lock`)\n\
         \n\
         ![The results as bars: redis-lanes first in each panel]({CHART_FILE})\n",
        date = utc_date(),
        command = command_line(),
        version = context.server_version,
        origin = context.server_origin,
        workers = context.workers,
        ours = env!("CARGO_PKG_VERSION"),
    );
    for section in sections {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "\n## {}\n\n{}\n\n{}",
            section.heading, section.about, section.table
        );
    }
    let _ = write!(out, "\n{}", tail.trim_end());
    out.push('\n');
    out
}

/// The command line, with the value of `--url` hidden: it may hold a password.
fn command_line() -> String {
    let mut words = Vec::new();
    let mut hide_next = false;
    for (i, arg) in std::env::args().enumerate() {
        let word = if i == 0 {
            "redis-lanes".to_owned()
        } else if hide_next {
            "<url>".to_owned()
        } else if arg.starts_with("--url=") {
            "--url=<url>".to_owned()
        } else {
            arg
        };
        hide_next = word == "--url";
        words.push(word);
    }
    words.join(" ")
}

/// Today's date, `YYYY-MM-DD`, from the system clock (avoids a date-time dependency).
fn utc_date() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
    }

    #[test]
    fn keeps_the_hand_written_part() {
        let generated = "# redis-lanes benchmarks\n\n## Throughput\n\n| a |\n";
        let marked = format!("{generated}\n{HAND_WRITTEN}\n\n## Reading the table\n\nMine.\n");
        assert_eq!(
            hand_written(Some(&marked)),
            format!("{HAND_WRITTEN}\n\n## Reading the table\n\nMine.\n")
        );
        // A file from before the marker: the hand-written heading starts the tail.
        let old = format!("{generated}\n## Reading the table\n\nMine.\n");
        assert_eq!(
            hand_written(Some(&old)),
            format!("{HAND_WRITTEN}\n\n## Reading the table\n\nMine.\n")
        );
        assert!(hand_written(None).starts_with(HAND_WRITTEN));
        // Regenerating twice keeps the tail exactly once.
        let context = Context {
            server_version: "7".into(),
            server_origin: "test",
            workers: 2,
        };
        let once = document(&context, &[], &hand_written(Some(&marked)));
        let twice = document(&context, &[], &hand_written(Some(&once)));
        assert_eq!(twice.matches(HAND_WRITTEN).count(), 1);
        assert!(twice.ends_with("Mine.\n"));
    }
}
