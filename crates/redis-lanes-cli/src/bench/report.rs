//! The throughput table, and the file `--out` writes: a header, then one section per
//! scenario run.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::throughput::Row;

/// The results table, one line per (op, tasks), medians over the rounds.
pub(crate) fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| op | tasks | redis-lanes ops/s | redis-rs ops/s | fred ops/s | lanes / redis-rs | lanes / fred |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let [lanes, redis_rs, fred] = row.medians();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "| {} | {} | {lanes:.0} | {redis_rs:.0} | {fred:.0} | {} | {} |",
            row.op,
            row.tasks,
            ratio(lanes, redis_rs),
            ratio(lanes, fred),
        );
    }
    out
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "n/a".to_owned()
    }
}

/// What the file header records about the run.
pub(crate) struct Context {
    pub(crate) server_version: String,
    pub(crate) server_origin: &'static str,
    pub(crate) workers: usize,
}

/// One scenario's part of the file: a heading, a paragraph on what the table shows and
/// how it was measured, and the table itself (also what the bench prints).
pub(crate) struct Section {
    pub(crate) heading: &'static str,
    pub(crate) about: String,
    pub(crate) table: String,
}

/// The file `--out` writes: a header saying how the numbers were made, then each
/// section.
pub(crate) fn document(context: &Context, sections: &[Section]) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut out = format!(
        "# redis-lanes benchmarks\n\
         \n\
         redis-lanes, redis-rs and fred measured in the same process and Tokio runtime \
         against the same server.\n\
         \n\
         - Date: {date} (UTC)\n\
         - Command: `{command}`\n\
         - redis-server: {version} ({origin})\n\
         - CPUs: {cpus}; Tokio worker threads: {workers}\n",
        date = utc_date(),
        command = command_line(),
        version = context.server_version,
        origin = context.server_origin,
        workers = context.workers,
    );
    for section in sections {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "\n## {}\n\n{}\n\n{}",
            section.heading, section.about, section.table
        );
    }
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
    use super::civil_from_days;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
    }
}
