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
//!
//! Results agree only across **parties**: on the open grid a party is a device's owner, so one
//! owner's many devices (Sybils) count once towards a quorum; in a private fleet, where every
//! device is the customer's own ([`Placement::Own`]), a party is a device. A result the app's
//! validator found *suspect* (worse than the settings give) is never accepted on its own, in
//! any mode: it needs a second party to return the same bytes.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Which devices may run a job's chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Any device on the grid, whoever owns it.
    #[default]
    Any,
    /// Only devices whose owner belongs to the job's customer (a private fleet).
    Own,
}

impl Placement {
    /// The name used on the wire and in the records.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Any => "any",
            Placement::Own => "own",
        }
    }

    /// The placement named `name` in the records (`any` for anything else).
    pub fn from_name(name: &str) -> Placement {
        match name {
            "own" => Placement::Own,
            _ => Placement::Any,
        }
    }

    /// Who counts as one voice in a quorum: the device's owner on the open grid, the device
    /// itself in a private fleet.
    pub fn party(self, worker: i64, owner: i64) -> Party {
        match self {
            Placement::Any => Party::Owner(owner),
            Placement::Own => Party::Device(worker),
        }
    }
}

/// One voice in a quorum: results from the same party never confirm each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    /// Every device of this owner.
    Owner(i64),
    /// This device alone.
    Device(i64),
}

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
    /// default 8.
    pub max_replicas: u32,
    /// Adaptive: consecutive valid results after which a device is trusted. 1..=10000,
    /// default 10 (BOINC's).
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
        // Room for disagreement: a chunk fails only when eight parties' results never reach
        // the quorum (and a rejected result's chunk only after eight attempts), so a few
        // owners returning garbage for every copy of a chunk cannot fail its job.
        max_replicas: 8,
        trust_after: 10,
        spot_check: 0.05,
    };

    /// What a job gets when its customer does not choose: every result checked by adaptive
    /// replication with spot checks where devices of other owners may run it; none where
    /// every device that may is the customer's own.
    pub fn default_for(placement: Placement) -> Replication {
        match placement {
            Placement::Own => Replication::NONE,
            Placement::Any => Replication::ADAPTIVE,
        }
    }

    /// What a task of an app's own step (its reduce script) gets, in a job of `policy` placed
    /// at `placement`: nothing built in can judge what a step returns, so on the open grid it
    /// needs the same bytes from two parties, whatever the job's own policy (a fixed policy
    /// asking for more keeps its numbers). In a private fleet the customer's own devices run
    /// it under the job's policy.
    pub fn for_step(policy: Replication, placement: Placement) -> Replication {
        match placement {
            Placement::Own => policy,
            Placement::Any if policy.mode == ReplicationMode::Fixed => policy,
            Placement::Any => Replication {
                mode: ReplicationMode::Fixed,
                ..Replication::NONE
            },
        }
    }

    /// Adaptive replication with the default numbers.
    pub const ADAPTIVE: Replication = Replication {
        mode: ReplicationMode::Adaptive,
        ..Replication::NONE
    };

    /// Whether results are compared across devices at all.
    pub fn is_replicated(&self) -> bool {
        self.mode != ReplicationMode::None
    }

    /// Results that must agree to accept one: the policy's quorum, or two for a suspect result
    /// of a job that is not replicated.
    fn needed(&self) -> u32 {
        if self.is_replicated() { self.quorum } else { 2 }
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

/// One result of a chunk, as the quorum rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// What is compared: the output's hash within its kind of runtime.
    pub key: &'a str,
    /// Who returned it.
    pub party: Party,
    /// Whether the app's validator found it worse than the settings give.
    pub suspect: bool,
}

/// The quorum rule. `wanted` is how many results the chunk was sent out for so far,
/// `candidates` its results that passed the app's validator and are not yet decided, and
/// `lone_trusted` says, for a chunk sent out once (adaptive), whether its device is trusted
/// and was not picked for a spot check. Agreeing results count once per party.
pub fn decide(
    policy: &Replication,
    wanted: u32,
    candidates: &[Candidate],
    lone_trusted: bool,
) -> Decision {
    if candidates.is_empty() {
        return Decision::Wait;
    }
    let mut groups: BTreeMap<&str, BTreeSet<Party>> = BTreeMap::new();
    for c in candidates {
        groups.entry(c.key).or_default().insert(c.party);
    }
    // The group with the most parties; ties broken by hash so the rule is deterministic.
    let (best, agreeing) = groups
        .iter()
        .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
        .map(|(key, parties)| (*key, parties.len() as u32))
        .unwrap_or(("", 0));
    let needed = policy.needed();
    if agreeing >= needed {
        return Decision::Accept(best.to_string());
    }
    match policy.mode {
        // Not replicated: a result that is not suspect stands alone.
        ReplicationMode::None => {
            if let Some(clean) = candidates.iter().find(|c| !c.suspect) {
                return Decision::Accept(clean.key.to_string());
            }
        }
        ReplicationMode::Adaptive
            if wanted <= 1 && candidates.len() == 1 && lone_trusted && !candidates[0].suspect =>
        {
            return Decision::Accept(best.to_string());
        }
        _ => {}
    }
    let in_hand = candidates.len() as u32;
    if in_hand < wanted {
        return Decision::Wait;
    }
    let short = needed - agreeing;
    if in_hand + short <= policy.max_replicas {
        Decision::More(short)
    } else {
        Decision::Fail(format!(
            "replicas disagree: {in_hand} results from different devices gave {} different \
             outputs and none reached the quorum of {needed} within {} replicas",
            groups.len(),
            policy.max_replicas
        ))
    }
}

/// Valid results in a row after which a device's probation ends (the default `trust_after`).
pub const PROBATION_RUN: u64 = 10;

/// How many tasks a device may hold now, of its `slots`, given its run of valid results
/// (`streak`) and how many of its results are in doubt (awaiting another party's agreement or
/// result). On probation a device may have one result in doubt, and one more for each valid
/// result of its run: a new identity that forges costs the honest grid one check before it is
/// caught, not as many as it could run meanwhile, while an honest device is soon at full speed.
pub fn probation_slots(streak: u64, in_doubt: u64, slots: usize) -> usize {
    if streak >= PROBATION_RUN {
        return slots;
    }
    let allowed = (1 + streak).saturating_sub(in_doubt);
    usize::try_from(allowed).unwrap_or(usize::MAX).min(slots)
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

    /// Results with these hashes, each from an owner of its own.
    fn from_owners<'a>(keys: &[&'a str]) -> Vec<Candidate<'a>> {
        keys.iter()
            .enumerate()
            .map(|(i, key)| Candidate {
                key,
                party: Party::Owner(i as i64),
                suspect: false,
            })
            .collect()
    }

    #[test]
    fn a_step_needs_two_parties_on_the_open_grid_whatever_the_jobs_policy() {
        for policy in [Replication::NONE, Replication::ADAPTIVE] {
            let step = Replication::for_step(policy, Placement::Any);
            assert_eq!(step.mode, ReplicationMode::Fixed);
            assert_eq!((step.replicas, step.quorum), (2, 2));
            assert_eq!(step.initial_replicas(), 2);
            assert!(step.check().is_ok());
        }
        // A fixed policy asking for more keeps it.
        let more = fixed(3, 3, 8);
        assert_eq!(Replication::for_step(more, Placement::Any), more);
        // The customer's own fleet runs it as the job says.
        assert_eq!(
            Replication::for_step(Replication::NONE, Placement::Own),
            Replication::NONE
        );
    }

    #[test]
    fn a_quorum_of_equal_hashes_is_accepted() {
        let p = fixed(2, 2, 4);
        assert_eq!(decide(&p, 2, &from_owners(&["a"]), false), Decision::Wait);
        assert_eq!(
            decide(&p, 2, &from_owners(&["a", "a"]), false),
            Decision::Accept("a".into())
        );
        let p = fixed(3, 2, 5);
        // Two of three agreeing is enough before the third arrives.
        assert_eq!(
            decide(&p, 3, &from_owners(&["b", "b"]), false),
            Decision::Accept("b".into())
        );
        assert_eq!(
            decide(&p, 3, &from_owners(&["a", "b"]), false),
            Decision::Wait
        );
        assert_eq!(
            decide(&p, 3, &from_owners(&["a", "b", "a"]), false),
            Decision::Accept("a".into())
        );
    }

    #[test]
    fn one_owners_devices_are_one_voice() {
        let p = fixed(2, 2, 4);
        let sybils = [
            Candidate {
                key: "forged",
                party: Party::Owner(7),
                suspect: false,
            },
            Candidate {
                key: "forged",
                party: Party::Owner(7),
                suspect: false,
            },
        ];
        // Two devices of one owner agreeing are one vote: one more party is needed.
        assert_eq!(decide(&p, 2, &sybils, false), Decision::More(1));
        // In a private fleet every device is a party of its own.
        assert_eq!(Placement::Own.party(3, 7), Party::Device(3));
        assert_eq!(Placement::Any.party(3, 7), Party::Owner(7));
    }

    #[test]
    fn disagreement_sends_more_replicas_up_to_the_bound_then_fails() {
        let p = fixed(2, 2, 4);
        assert_eq!(
            decide(&p, 2, &from_owners(&["a", "b"]), false),
            Decision::More(1)
        );
        assert_eq!(
            decide(&p, 3, &from_owners(&["a", "b", "c"]), false),
            Decision::More(1)
        );
        let Decision::Fail(reason) = decide(&p, 4, &from_owners(&["a", "b", "c", "d"]), false)
        else {
            panic!("four different outputs with at most four replicas must fail");
        };
        assert!(reason.contains("4 different outputs"), "{reason}");
        assert!(reason.contains("quorum of 2"), "{reason}");
        // Three-way quorum: two short after a split.
        let p = fixed(3, 3, 6);
        assert_eq!(
            decide(&p, 3, &from_owners(&["a", "a", "b"]), false),
            Decision::More(1)
        );
    }

    #[test]
    fn adaptive_checks_lone_results_of_untrusted_devices() {
        let p = Replication::ADAPTIVE;
        assert_eq!(p.initial_replicas(), 1);
        assert_eq!(
            decide(&p, 1, &from_owners(&["a"]), false),
            Decision::More(1)
        );
        assert_eq!(
            decide(&p, 1, &from_owners(&["a"]), true),
            Decision::Accept("a".into())
        );
        assert_eq!(
            decide(&p, 2, &from_owners(&["a", "a"]), false),
            Decision::Accept("a".into())
        );
    }

    #[test]
    fn a_suspect_result_stands_only_with_another_party_behind_it() {
        let suspect = |key, owner| Candidate {
            key,
            party: Party::Owner(owner),
            suspect: true,
        };
        // Unreplicated: a clean result is accepted alone, a suspect one is checked.
        let none = Replication::NONE;
        assert_eq!(
            decide(&none, 1, &from_owners(&["a"]), false),
            Decision::Accept("a".into())
        );
        assert_eq!(
            decide(&none, 1, &[suspect("a", 1)], false),
            Decision::More(1)
        );
        assert_eq!(
            decide(&none, 2, &[suspect("a", 1), suspect("a", 2)], false),
            Decision::Accept("a".into())
        );
        // A clean result from another party beside a suspect one wins.
        let clean = Candidate {
            key: "b",
            party: Party::Owner(2),
            suspect: false,
        };
        assert_eq!(
            decide(&none, 2, &[suspect("a", 1), clean], false),
            Decision::Accept("b".into())
        );
        // Adaptive: a trusted device's suspect result is still checked.
        assert_eq!(
            decide(&Replication::ADAPTIVE, 1, &[suspect("a", 1)], true),
            Decision::More(1)
        );
    }

    #[test]
    fn defaults_verify_the_open_grid_and_trust_a_private_fleet() {
        assert_eq!(
            Replication::default_for(Placement::Any).mode,
            ReplicationMode::Adaptive
        );
        assert_eq!(
            Replication::default_for(Placement::Own).mode,
            ReplicationMode::None
        );
        assert!(Replication::default_for(Placement::Any).check().is_ok());
        assert_eq!(
            Placement::from_name(Placement::Own.as_str()),
            Placement::Own
        );
    }

    #[test]
    fn probation_allows_one_result_in_doubt_and_one_more_per_valid_result() {
        // New: one task, none once its result waits for a check.
        assert_eq!(probation_slots(0, 0, 4), 1);
        assert_eq!(probation_slots(0, 1, 4), 0);
        // Three valid in a row: four in doubt at most, never past its slots.
        assert_eq!(probation_slots(3, 1, 4), 3);
        assert_eq!(probation_slots(3, 0, 2), 2);
        assert_eq!(probation_slots(3, 9, 4), 0);
        // Trusted: its slots, whatever is in doubt.
        assert_eq!(probation_slots(PROBATION_RUN, 9, 4), 4);
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
