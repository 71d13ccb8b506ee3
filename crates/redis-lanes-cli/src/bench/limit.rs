//! The physical limit of the server on this machine, measured in the same run:
//! `redis-benchmark` pipelining 16 deep on one connection (`-c 1 -P 16`), which is what
//! one shared connection could do at best, and on 50 (`-c 50 -P 16`). The throughput
//! table reports each client's peak as a fraction of both.

use std::process::Command;

use super::{BoxError, Op};

/// `redis-benchmark`'s rates for one op, in requests per second.
pub(crate) struct Limit {
    pub(crate) one_connection: f64,
    pub(crate) fifty_connections: f64,
}

/// Runs `redis-benchmark` against `url` for `op`; `Ok(None)` (with a note on stderr)
/// when it is not installed, since the rest of the bench does not need it.
pub(crate) fn measure(url: &str, op: Op, quick: bool) -> Result<Option<Limit>, BoxError> {
    let requests = if quick { "200000" } else { "2000000" };
    let mut rates = Vec::new();
    for clients in ["1", "50"] {
        let test = match op {
            Op::Set => "set",
            Op::Get => "get",
        };
        let output = match Command::new("redis-benchmark")
            .args(["-u", url, "-c", clients, "-P", "16", "-n", requests])
            .args(["-d", "16", "-t", test, "--csv"])
            .output()
        {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("redis-benchmark not found (Debian package redis-tools): no limit row");
                return Ok(None);
            }
            Err(e) => return Err(format!("redis-benchmark: {e}").into()),
        };
        if !output.status.success() {
            return Err(format!(
                "redis-benchmark failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )
            .into());
        }
        rates.push(parse_rps(&String::from_utf8_lossy(&output.stdout))?);
    }
    Ok(Some(Limit {
        one_connection: rates[0],
        fifty_connections: rates[1],
    }))
}

/// The `rps` column of `redis-benchmark --csv`: a header line, then
/// `"GET","612745.12",...`.
fn parse_rps(csv: &str) -> Result<f64, BoxError> {
    csv.lines()
        .filter(|line| !line.starts_with("\"test\""))
        .find_map(|line| {
            let field = line.split(',').nth(1)?;
            field.trim_matches('"').parse::<f64>().ok()
        })
        .ok_or_else(|| format!("no rate in redis-benchmark's output: {csv:?}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rate_column() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\"\n\"GET\",\"612745.12\",\"1.1\"\n";
        assert_eq!(parse_rps(csv).unwrap(), 612_745.12);
        assert!(parse_rps("\"test\",\"rps\"\n").is_err());
    }
}
