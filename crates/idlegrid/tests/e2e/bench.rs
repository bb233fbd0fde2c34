//! The `bench` subcommands, run small.

use crate::harness::*;

/// `idlegrid bench dispatch` runs end to end and reports sane figures (not a timing test).
#[test]
fn bench_dispatch_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = idlegrid(dir.path());
    cmd.args(["bench", "dispatch", "--tasks", "3000", "--workers", "4"])
        .args(["--batch", "50", "--json"]);
    let bench = run_bounded(cmd, dir.path(), "bench", Duration::from_secs(120));
    assert!(bench.status.success(), "{}", bench.describe());
    let figures: serde_json::Value = serde_json::from_str(&bench.stdout)
        .unwrap_or_else(|e| panic!("bench printed no JSON ({e}): {}", bench.describe()));
    let number = |pointer: &str| {
        figures
            .pointer(pointer)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or_else(|| panic!("no number at {pointer} in {figures:#}"))
    };
    assert_eq!(number("/tasks"), 3000.0, "{figures:#}");
    assert_eq!(figures["output_verified"], true, "{figures:#}");
    for pointer in [
        "/lifecycles_per_sec",
        "/lease_latency_ms/p50",
        "/lease_latency_ms/p99",
        "/lease_latency_ms/max",
        "/coordinator_rss_queued_mib",
        "/coordinator_peak_rss_mib",
    ] {
        let value = number(pointer);
        assert!(
            value.is_finite() && value > 0.0,
            "{pointer} = {value}: {figures:#}"
        );
    }
    let (p50, p99, max) = (
        number("/lease_latency_ms/p50"),
        number("/lease_latency_ms/p99"),
        number("/lease_latency_ms/max"),
    );
    assert!(p50 <= p99 && p99 <= max, "latency order: {figures:#}");
    assert!(
        number("/coordinator_peak_rss_mib") >= number("/coordinator_rss_queued_mib"),
        "peak RSS below the queued RSS: {figures:#}"
    );
}

/// `idlegrid bench worker-idle` runs a real coordinator and worker and reads the worker's
/// memory and CPU from /proc; a short run prints figures that make sense (the figures
/// themselves are for `docs/BENCHMARKS.md`, not asserted against the target here).
/// The trust bench at its smallest: both runs complete, and the figures it reports are the
/// ones the goals are read from.
#[test]
fn bench_trust_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = idlegrid(dir.path());
    cmd.args(["bench", "trust", "--honest", "2", "--majority", "2"])
        .args(["--seconds", "2", "--jobs", "1", "--lines", "4"])
        .args(["--warm-up", "2", "--json"]);
    // About 70 s on this 2-core machine; a stalled run fails well before a retry would be late.
    let bench = run_bounded(cmd, dir.path(), "bench", Duration::from_secs(300));
    assert!(bench.status.success(), "{}", bench.describe());
    let figures: serde_json::Value = serde_json::from_str(&bench.stdout)
        .unwrap_or_else(|e| panic!("bench printed no JSON ({e}): {}", bench.describe()));
    for run in ["attacked", "mostly_honest"] {
        let f = &figures[run];
        let number = |name: &str| {
            f[name]
                .as_f64()
                .unwrap_or_else(|| panic!("no {run}.{name} in {figures:#}"))
        };
        assert_eq!(number("jobs"), 2.0, "{figures:#}");
        assert_eq!(number("completed"), 2.0, "{figures:#}");
        assert_eq!(number("forged_in_outputs"), 0.0, "{figures:#}");
        assert_eq!(number("honest_quarantined"), 0.0, "{figures:#}");
        // Every chunk of a job on devices not yet trusted is confirmed by a second result.
        assert!(number("extra_work") > 0.0, "{figures:#}");
    }
    assert_eq!(figures["attacked"]["cheaters"], 6, "{figures:#}");
    let sent = figures["attacked"]["forged_sent"].as_u64().unwrap_or(0);
    assert!(sent > 0, "the cheaters sent nothing: {figures:#}");
}

#[test]
fn bench_worker_idle_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = idlegrid(dir.path());
    cmd.args([
        "bench",
        "worker-idle",
        "--secs",
        "2",
        "--settle-secs",
        "1",
        "--json",
    ]);
    let bench = run_bounded(cmd, dir.path(), "bench", Duration::from_secs(120));
    assert!(bench.status.success(), "{}", bench.describe());
    let figures: serde_json::Value = serde_json::from_str(&bench.stdout)
        .unwrap_or_else(|e| panic!("bench printed no JSON ({e}): {}", bench.describe()));
    let number = |name: &str| {
        figures[name]
            .as_f64()
            .unwrap_or_else(|| panic!("no number {name} in {figures:#}"))
    };
    assert_eq!(figures["worker_alive"], true, "{figures:#}");
    assert!(number("secs") >= 2.0, "{figures:#}");
    let (now, most, peak) = (
        number("rss_mib"),
        number("max_sampled_rss_mib"),
        number("peak_rss_mib"),
    );
    assert!(0.0 < now && now <= most && most <= peak, "{figures:#}");
    let cpu = number("cpu_percent");
    assert!((0.0..=100.0).contains(&cpu), "{figures:#}");
}
