//! The rules both runners of task scripts keep, the native one (`idlegrid-worker`) and the
//! browser's (the coordinator's `web/ui/runner.js` with `runner.py`), written once: in
//! `runner-rules.json` beside the browser's runner, which the coordinator serves to it and this
//! crate embeds.

use std::collections::BTreeMap;
use std::sync::LazyLock;

/// What `runner-rules.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerRules {
    /// Bytes of the script's stderr kept (its end): the task's log, sent with its report, and
    /// what a failure reason is made from.
    pub stderr_tail_bytes: usize,
    /// Longest failure reason a runner reports. The stderr tail in it is shortened from its
    /// start; the coordinator cuts longer reasons at their end, which would lose the most
    /// useful part (the exception).
    pub max_reason_bytes: usize,
    /// Longest stdout line inspected for progress; longer lines are skipped.
    pub max_stdout_line_bytes: usize,
    /// Prefix of a stdout line reporting progress, followed by a fraction in 0..=1.
    pub progress_prefix: String,
    /// Longest name of a bundle's file or a task's chunk, in UTF-8 bytes.
    pub max_file_name_bytes: usize,
    /// The script's environment besides the `IDLEGRID_*` variables, `HOME` and `TMPDIR` (its
    /// scratch directory) and, natively, `PATH`.
    pub script_env: BTreeMap<String, String>,
    /// The speed benchmark hashes a buffer of this many bytes over and over...
    pub benchmark_buffer_bytes: usize,
    /// ...for about this many milliseconds, and reports MB/s.
    pub benchmark_ms: u64,
}

/// The rules, as `runner-rules.json` was when this crate was built.
pub static RULES: LazyLock<RunnerRules> = LazyLock::new(|| {
    serde_json::from_str(include_str!(
        "../../idlegrid-coordinator/web/ui/runner-rules.json"
    ))
    .expect("runner-rules.json holds the runner's rules")
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_file_holds_every_rule() {
        let rules = &*RULES;
        assert_eq!(rules.progress_prefix, "idlegrid:progress ");
        // The log keeps at least what a failure reason shows of stderr.
        assert!(rules.max_reason_bytes > 0 && rules.stderr_tail_bytes >= rules.max_reason_bytes);
        assert!(rules.max_stdout_line_bytes > rules.progress_prefix.len());
        assert!(rules.script_env.keys().all(|k| !k.starts_with("IDLEGRID_")));
    }
}
