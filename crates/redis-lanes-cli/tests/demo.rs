//! The README's main job, run as users run it: the `redis-lanes demo` binary against a
//! redis-server it starts itself, cut down to a couple of seconds.

use std::process::{Command, Output};

fn demo(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_redis-lanes"))
        .arg("demo")
        .args(args)
        .output();
    match output {
        Ok(output) => output,
        Err(e) => panic!("cannot run redis-lanes demo: {e}"),
    }
}

#[test]
fn a_short_demo_passes_every_verdict_and_leaves_nothing_behind() {
    let output = demo(&["--duration", "2", "--tasks", "8"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed\n{stdout}\n{stderr}");
    for check in [
        "deleted consumers re-created",
        "stream entries orphaned",
        "list elements lost",
        "our connections left on the server after close()",
    ] {
        let row = stdout
            .lines()
            .find(|line| line.starts_with(&format!("| {check} |")));
        assert_eq!(
            row,
            Some(format!("| {check} | 0 | ok |").as_str()),
            "{stdout}"
        );
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // stdout is not a terminal here, so the live view prints its lines instead of a bar.
    assert!(
        stdout.contains(" ops/s p99 "),
        "no live progress line:\n{stdout}"
    );
}

#[test]
fn bad_options_and_unreachable_servers_are_clear_errors() {
    let output = demo(&["--duration", "0"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--duration must be"), "{stderr}");

    let output = demo(&["--url", "http://localhost"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown scheme \"http\""), "{stderr}");
}
