//! Replication: how many devices run each chunk, and when their results are believed.
//!
//! Workers are strangers' devices, and an app's validator can only check that a result is
//! plausible (it decodes, it has the right shape). For deterministic apps the stronger check is
//! agreement: the same chunk run on different devices must give the same bytes, so results are
//! compared by hash and one is accepted only when a quorum of devices agree on it.
//!
//! - **Fixed** replication runs every chunk on `replicas` devices and accepts the output that
//!   `quorum` of them agree on.
//! - **Adaptive** replication runs every chunk once. A result from a device that has not earned
//!   trust (fewer than `trust_after` consecutive valid results) is checked by `replicas - 1` more
//!   devices; a trusted device's result is still checked with a probability that falls as its
//!   streak grows, but never below `spot_check` (random spot checks). Any invalid result resets
//!   the streak.
//!
//! When the results in hand disagree and no output has its quorum, more replicas are sent, up
//! to `max_replicas` results per chunk; then the chunk fails with the reason.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How a job's chunks are replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReplicationMode {
    /// Each chunk runs once; its result is checked by the app's validator only.
    #[default]
    None,
    /// Each chunk runs on `replicas` devices.
    Fixed,
    /// Each chunk runs once; results from devices without trust, and a falling fraction of the
    /// others, are checked by more devices.
    Adaptive,
}

/// A job's replication policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Replication {
    /// `none` (default), `fixed` or `adaptive`.
    pub mode: ReplicationMode,
    /// Devices that run a chunk (fixed), or that check a result needing it (adaptive, counting
    /// the first). 2..=10, default 2.
    pub replicas: u32,
    /// Results with the same hash needed to accept one. 2..=`replicas`, default 2.
    pub quorum: u32,
    /// Most results a chunk may get when they disagree; then it fails. `replicas`..=16,
    /// default 4.
    pub max_replicas: u32,
    /// Adaptive: consecutive valid results after which a device is trusted. 1..=10000,
    /// default 20.
    pub trust_after: u32,
    /// Adaptive: fraction of a trusted device's results still checked by another device
    /// (random spot checks). 0..=1, default 0.05.
    pub spot_check: f64,
}

impl Default for Replication {
    fn default() -> Self {
        Replication::NONE
    }
}

impl Replication {
    /// No replication (the default); the other numbers are the defaults a customer who
    /// turns replication on gets.
    pub const NONE: Replication = Replication {
        mode: ReplicationMode::None,
        replicas: 2,
        quorum: 2,
        max_replicas: 4,
        trust_after: 20,
        spot_check: 0.05,
    };

    /// Whether results are compared across devices at all.
    pub fn is_replicated(&self) -> bool {
        self.mode != ReplicationMode::None
    }

    /// Results a new chunk is sent out for.
    pub fn initial_replicas(&self) -> u32 {
        match self.mode {
            ReplicationMode::Fixed => self.replicas,
            ReplicationMode::None | ReplicationMode::Adaptive => 1,
        }
    }

    /// Results per chunk a quote covers: one, or every replica the customer asked for (with
    /// adaptive replication, as if every result were checked). Replicas beyond these, asked
    /// for when results disagree, are the platform's cost.
    pub fn billed_copies(&self) -> u32 {
        match self.mode {
            ReplicationMode::None => 1,
            ReplicationMode::Fixed | ReplicationMode::Adaptive => self.replicas,
        }
    }

    /// Checks the policy's numbers; the message names the field at fault.
    pub fn check(&self) -> Result<(), String> {
        if !self.is_replicated() {
            return Ok(());
        }
        if !(2..=10).contains(&self.replicas) {
            return Err(format!(
                "replication.replicas must be from 2 to 10, got {}",
                self.replicas
            ));
        }
        if !(2..=self.replicas).contains(&self.quorum) {
            return Err(format!(
                "replication.quorum must be from 2 to replicas ({}), got {}",
                self.replicas, self.quorum
            ));
        }
        if !(self.replicas..=16).contains(&self.max_replicas) {
            return Err(format!(
                "replication.max_replicas must be from replicas ({}) to 16, got {}",
                self.replicas, self.max_replicas
            ));
        }
        if !(1..=10_000).contains(&self.trust_after) {
            return Err(format!(
                "replication.trust_after must be from 1 to 10000, got {}",
                self.trust_after
            ));
        }
        if !(0.0..=1.0).contains(&self.spot_check) {
            return Err(format!(
                "replication.spot_check must be from 0 to 1, got {}",
                self.spot_check
            ));
        }
        Ok(())
    }

    /// Probability that a result from a device with `streak` consecutive valid results is
    /// checked by other devices (adaptive mode): 1 until it is trusted, then falling as the
    /// streak grows, never below the spot-check rate.
    pub fn check_probability(&self, streak: u64) -> f64 {
        if streak < u64::from(self.trust_after) {
            return 1.0;
        }
        (f64::from(self.trust_after) / (streak as f64 + 1.0)).max(self.spot_check)
    }

    /// Whether a lone result from a device with `streak` needs checking, given a uniform
    /// sample `u` in `[0, 1)`.
    pub fn needs_check(&self, streak: u64, u: f64) -> bool {
        u < self.check_probability(streak)
    }
}

/// What to do with a replicated chunk, given the results that passed the app's validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The output with this hash is the chunk's result; results with another hash are wrong.
    Accept(String),
    /// Results are still coming.
    Wait,
    /// Send this many more replicas.
    More(u32),
    /// Give up on the chunk.
    Fail(String),
}

/// The quorum rule. `wanted` is how many results the chunk was sent out for so far, `passed`
/// the hashes of its results that passed the app's validator and are not yet decided, and
/// `lone_trusted` says, for a chunk sent out once (adaptive), whether its device is trusted
/// and was not picked for a spot check.
pub fn decide(policy: &Replication, wanted: u32, passed: &[&str], lone_trusted: bool) -> Decision {
    if passed.is_empty() {
        return Decision::Wait;
    }
    if !policy.is_replicated() {
        return Decision::Accept(passed[0].to_string());
    }
    if wanted <= 1 && passed.len() == 1 {
        return if lone_trusted {
            Decision::Accept(passed[0].to_string())
        } else {
            Decision::More(policy.replicas.saturating_sub(1).max(1))
        };
    }
    let mut groups: HashMap<&str, u32> = HashMap::new();
    for sha in passed {
        *groups.entry(sha).or_default() += 1;
    }
    // The largest group; ties broken by hash so the rule is deterministic.
    let (best, agreeing) = groups
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(sha, n)| (*sha, *n))
        .unwrap_or(("", 0));
    if agreeing >= policy.quorum {
        return Decision::Accept(best.to_string());
    }
    let in_hand = passed.len() as u32;
    if in_hand < wanted {
        return Decision::Wait;
    }
    let short = policy.quorum - agreeing;
    if in_hand + short <= policy.max_replicas {
        Decision::More(short)
    } else {
        Decision::Fail(format!(
            "replicas disagree: {in_hand} results from different devices gave {} different \
             outputs and none reached the quorum of {} within {} replicas",
            groups.len(),
            policy.quorum,
            policy.max_replicas
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(replicas: u32, quorum: u32, max: u32) -> Replication {
        Replication {
            mode: ReplicationMode::Fixed,
            replicas,
            quorum,
            max_replicas: max,
            ..Replication::default()
        }
    }

    #[test]
    fn a_quorum_of_equal_hashes_is_accepted() {
        let p = fixed(2, 2, 4);
        assert_eq!(decide(&p, 2, &["a"], false), Decision::Wait);
        assert_eq!(
            decide(&p, 2, &["a", "a"], false),
            Decision::Accept("a".into())
        );
        let p = fixed(3, 2, 5);
        // Two of three agreeing is enough before the third arrives.
        assert_eq!(
            decide(&p, 3, &["b", "b"], false),
            Decision::Accept("b".into())
        );
        assert_eq!(decide(&p, 3, &["a", "b"], false), Decision::Wait);
        assert_eq!(
            decide(&p, 3, &["a", "b", "a"], false),
            Decision::Accept("a".into())
        );
    }

    #[test]
    fn disagreement_sends_more_replicas_up_to_the_bound_then_fails() {
        let p = fixed(2, 2, 4);
        assert_eq!(decide(&p, 2, &["a", "b"], false), Decision::More(1));
        assert_eq!(decide(&p, 3, &["a", "b", "c"], false), Decision::More(1));
        let Decision::Fail(reason) = decide(&p, 4, &["a", "b", "c", "d"], false) else {
            panic!("four different outputs with at most four replicas must fail");
        };
        assert!(reason.contains("4 different outputs"), "{reason}");
        assert!(reason.contains("quorum of 2"), "{reason}");
        // Three-way quorum: two short after a split.
        let p = fixed(3, 3, 6);
        assert_eq!(decide(&p, 3, &["a", "a", "b"], false), Decision::More(1));
    }

    #[test]
    fn adaptive_checks_lone_results_of_untrusted_devices() {
        let p = Replication {
            mode: ReplicationMode::Adaptive,
            ..Replication::default()
        };
        assert_eq!(p.initial_replicas(), 1);
        assert_eq!(decide(&p, 1, &["a"], false), Decision::More(1));
        assert_eq!(decide(&p, 1, &["a"], true), Decision::Accept("a".into()));
        assert_eq!(
            decide(&p, 2, &["a", "a"], false),
            Decision::Accept("a".into())
        );
    }

    #[test]
    fn trust_is_earned_and_checks_fall_to_the_spot_check_rate() {
        let p = Replication {
            mode: ReplicationMode::Adaptive,
            trust_after: 10,
            spot_check: 0.05,
            ..Replication::default()
        };
        assert_eq!(p.check_probability(0), 1.0);
        assert_eq!(p.check_probability(9), 1.0);
        let at = |s| p.check_probability(s);
        assert!(at(10) < 1.0 && at(20) < at(10) && at(100) < at(20));
        assert_eq!(at(1_000_000), 0.05);
        assert!(p.needs_check(5, 0.999));
        assert!(!p.needs_check(1_000, 0.5));
    }

    #[test]
    fn bad_policies_name_the_field() {
        assert!(Replication::NONE.check().is_ok());
        assert!(fixed(1, 1, 1).check().unwrap_err().contains("replicas"));
        assert!(fixed(2, 3, 4).check().unwrap_err().contains("quorum"));
        assert!(fixed(3, 2, 2).check().unwrap_err().contains("max_replicas"));
        let p = Replication {
            mode: ReplicationMode::Adaptive,
            spot_check: 1.5,
            ..Replication::default()
        };
        assert!(p.check().unwrap_err().contains("spot_check"));
    }
}
