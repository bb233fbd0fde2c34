//! Deciding a chunk from all its results: turns the app validator's judgments into verdicts
//! with the rules in [`idlegrid_domain::replication`], and queues the copies those verdicts
//! ask for.
//!
//! - A result the app's validator **rejected** is disputed, not blamed: the chunk goes to a
//!   party independent of its results. If an independent result is accepted, the disputed
//!   ones become invalid (and their owners are distrusted). If an independent party returns
//!   the same rejected bytes and one of the two has earned trust, the job's settings are at
//!   fault: the chunk fails with the reason and nobody is blamed. Two untrusted parties
//!   agreeing prove nothing (new owners are cheap, and colluders agree), so they stay
//!   disputed while the chunk goes on to other parties; a chunk no party gives an acceptable
//!   result for fails when its attempts are spent (at least `max_replicas` for disputes),
//!   blaming nobody.
//! - A result that **passed**, suspect or not, counts towards the quorum (one voice per party:
//!   an owner on the open grid, a device in a private fleet).
//!
//! A task is decided inside one records transaction that holds it ([`Store::settle_replicas`]),
//! so validators deciding at once — in one coordinator or several — never decide it on stale
//! state. Results arriving meanwhile are only added, and are judged on their own turn.
//!
//! [`Store::settle_replicas`]: idlegrid_storage::records::Store::settle_replicas

use crate::apps::plugin::Judgment;
use crate::grid::Grid;
use idlegrid_domain::replication::{Candidate, Decision, decide};
use idlegrid_domain::{Replication, ResultId, TaskId, TaskState};
use idlegrid_storage::StorageError;
use idlegrid_storage::records::{
    ReplicaResult, ReplicaStage, ReplicaState, Replicate, Verdict, VerdictsApplied,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A result judged by its app's validator that needs deciding with its chunk's other results:
/// it is replicated, suspect or rejected.
#[derive(Debug, Clone)]
pub struct Judged {
    /// The result.
    pub result: ResultId,
    /// Its task.
    pub task: TaskId,
    /// Its job's policy.
    pub policy: Replication,
    /// Whether the app's tasks run FFmpeg: results are then compared only between devices
    /// that report the same FFmpeg version.
    pub uses_ffmpeg: bool,
    /// What the app's validator made of it.
    pub judgment: Judgment,
}

/// How a task's results are judged, besides the records: the job's policy and tools.
#[derive(Debug, Clone, Copy)]
struct Rules {
    policy: Replication,
    uses_ffmpeg: bool,
    /// Devices registered after this (Unix ms) are too new to be trusted.
    trusted_before_ms: i64,
}

/// Records the verdicts for judged results, each task decided on its state as of the decision,
/// in the same transaction.
pub async fn settle(grid: &Grid, judged: &[Judged]) -> Result<VerdictsApplied, StorageError> {
    let trusted_before_ms =
        idlegrid_storage::now_ms() - grid.config.trust_min_age.as_millis() as i64;
    let mut by_task: BTreeMap<TaskId, (Rules, HashMap<ResultId, Judgment>)> = BTreeMap::new();
    for j in judged {
        by_task
            .entry(j.task)
            .or_insert_with(|| {
                (
                    Rules {
                        policy: j.policy,
                        uses_ffmpeg: j.uses_ffmpeg,
                        trusted_before_ms,
                    },
                    HashMap::new(),
                )
            })
            .1
            .insert(j.result, j.judgment.clone());
    }
    let tasks: Vec<TaskId> = by_task.keys().copied().collect();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    let decide = move |state: &ReplicaState| -> Vec<Verdict> {
        let verdicts = match by_task.get(&state.task) {
            Some((rules, new)) => task_verdicts(rules, state, new, rand::random()),
            None => Vec::new(),
        };
        let valid = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Valid(_)))
            .count();
        counted.fetch_add(valid, Ordering::Relaxed);
        verdicts
    };
    let applied = grid.store.settle_replicas(&tasks, &decide).await?;
    grid.stats.accepted(accepted.load(Ordering::Relaxed));
    Ok(applied)
}

/// What the quorum rule compares: a result's hash within its kind of runtime, and for apps
/// that run FFmpeg within its FFmpeg version. Tools built differently give different bytes for
/// the same work (ffmpeg.wasm's x264 is not the native build), so results of two kinds
/// neither agree nor disagree.
fn output_key(r: &ReplicaResult, uses_ffmpeg: bool) -> String {
    let tools = if uses_ffmpeg {
        r.ffmpeg.as_deref().unwrap_or("-")
    } else {
        ""
    };
    format!("{}:{tools}:{}", r.runtime.as_str(), r.sha256)
}

/// The verdict a result whose app judgment is `judgment` gets while it waits for agreement.
fn waiting(r: &ReplicaResult, judgment: Option<&Judgment>) -> Option<Verdict> {
    match judgment {
        Some(Judgment::Suspect(reason)) => Some(Verdict::Suspect(r.id, reason.clone())),
        Some(Judgment::Accept) => Some(Verdict::Passed(r.id)),
        _ => None,
    }
}

/// The verdicts for one task; `u` is a uniform sample in `[0, 1)` for the spot check.
fn task_verdicts(
    rules: &Rules,
    state: &ReplicaState,
    new: &HashMap<ResultId, Judgment>,
    u: f64,
) -> Vec<Verdict> {
    let key = |r: &ReplicaResult| output_key(r, rules.uses_ffmpeg);
    let party = |r: &ReplicaResult| state.placement.party(r.worker.0, r.owner);
    let judgment = |r: &ReplicaResult| new.get(&r.id);
    let rejected = |r: &ReplicaResult| match judgment(r) {
        Some(Judgment::Reject(reason)) => Some(reason.clone()),
        _ => None,
    };
    match state.state {
        TaskState::Failed => Vec::new(),
        // Late results of a decided task: they agree with the accepted output or are wrong;
        // those of another kind of tools cannot be compared, and are void.
        TaskState::Done => {
            let Some(accepted) = &state.accepted else {
                return Vec::new();
            };
            state
                .results
                .iter()
                .filter(|r| new.contains_key(&r.id))
                .map(|r| {
                    if key(r) == key(accepted) {
                        Verdict::Valid(r.id)
                    } else if r.runtime != accepted.runtime
                        || (rules.uses_ffmpeg && r.ffmpeg != accepted.ffmpeg)
                    {
                        Verdict::Void(
                            r.id,
                            "made with other tools than the accepted output: not compared".into(),
                        )
                    } else {
                        Verdict::Invalid(
                            r.id,
                            match rejected(r) {
                                Some(reason) => format!("result rejected: {reason}"),
                                None => {
                                    "its output differs from the one accepted for this chunk".into()
                                }
                            },
                        )
                    }
                })
                .collect()
        }
        TaskState::Pending | TaskState::Validating => {
            let mut verdicts = Vec::new();
            // Rejections first: disputed until an independent party speaks.
            let trusted = |r: &ReplicaResult| {
                r.registered_at_ms <= rules.trusted_before_ms
                    && r.streak >= u64::from(rules.policy.trust_after)
            };
            let mut disputed: Vec<&ReplicaResult> = state
                .results
                .iter()
                .filter(|r| r.stage == ReplicaStage::Disputed)
                .collect();
            for r in state.results.iter().filter(|r| rejected(r).is_some()) {
                let reason = rejected(r).unwrap_or_default();
                // In a private fleet every device is the customer's own: no stranger is there
                // to forge or to collude with, so two of its devices' outputs rejected are the
                // app's or the job's fault, whatever their bytes (else a job whose every
                // output is rejected, each a little different, would wait for ever for a
                // third device).
                let own = state.placement == idlegrid_domain::Placement::Own;
                if let Some(twin) = disputed.iter().find(|d| {
                    party(d) != party(r)
                        && (own || (key(d) == key(r) && (trusted(d) || trusted(r))))
                }) {
                    // Independent parties, one of them trusted, returned the same bytes and
                    // they were rejected: the job asks for what cannot be given.
                    let why = "the job was at fault: independent devices' outputs were rejected";
                    verdicts.push(Verdict::Void(r.id, why.into()));
                    verdicts.push(Verdict::Void(twin.id, why.into()));
                    verdicts.push(Verdict::FailTask(
                        state.task,
                        if own {
                            format!(
                                "two of your own devices' outputs for it were rejected: \
                                 {reason}. The app or the job's settings cannot give an \
                                 acceptable output; no device is at fault"
                            )
                        } else {
                            format!(
                                "devices of different owners returned the same output for it, \
                                 and it was rejected: {reason}. The job's settings cannot give \
                                 an acceptable output; no device is at fault"
                            )
                        },
                    ));
                    return verdicts;
                }
                verdicts.push(Verdict::Disputed(r.id, reason));
                disputed.push(r);
            }
            let candidates: Vec<&ReplicaResult> = state
                .results
                .iter()
                .filter(|r| {
                    r.stage == ReplicaStage::Passed
                        || matches!(judgment(r), Some(Judgment::Accept | Judgment::Suspect(_)))
                })
                .collect();
            if candidates.is_empty() {
                return verdicts;
            }
            let suspect =
                |r: &ReplicaResult| r.suspect || matches!(judgment(r), Some(Judgment::Suspect(_)));
            let keys: Vec<String> = candidates.iter().map(|r| key(r)).collect();
            let votes: Vec<Candidate> = candidates
                .iter()
                .zip(&keys)
                .map(|(r, key)| Candidate {
                    key,
                    party: party(r),
                    suspect: suspect(r),
                })
                .collect();
            let lone_trusted = match candidates.as_slice() {
                [only] => {
                    only.registered_at_ms <= rules.trusted_before_ms
                        && !rules.policy.needs_check(only.streak, u)
                }
                _ => false,
            };
            let keep_waiting = candidates.iter().filter_map(|r| waiting(r, judgment(r)));
            match decide(&rules.policy, state.wanted, &votes, lone_trusted) {
                Decision::Accept(accepted_key) => {
                    let winner = candidates
                        .iter()
                        .zip(&keys)
                        .find(|(_, k)| **k == accepted_key)
                        .map(|(r, _)| *r);
                    let agreeing = votes
                        .iter()
                        .filter(|v| v.key == accepted_key)
                        .map(|v| v.party)
                        .collect::<std::collections::BTreeSet<_>>()
                        .len();
                    // Outvoted only by a quorum of two parties or more; a clean lone result
                    // of an unreplicated job outweighs a suspect one without shaming it.
                    let outvoted = agreeing >= 2;
                    let (agree, other): (Vec<_>, Vec<_>) = candidates
                        .iter()
                        .zip(&keys)
                        .partition(|(_, k)| **k == accepted_key);
                    verdicts.extend(agree.iter().map(|(r, _)| Verdict::Valid(r.id)));
                    verdicts.extend(other.iter().map(|(r, _)| {
                        let comparable = winner.is_some_and(|w| {
                            w.runtime == r.runtime && (!rules.uses_ffmpeg || w.ffmpeg == r.ffmpeg)
                        });
                        if comparable && outvoted {
                            Verdict::Invalid(
                                r.id,
                                format!(
                                    "its output differs from the one devices of {agreeing} \
                                     other parties agreed on"
                                ),
                            )
                        } else if comparable {
                            Verdict::Void(r.id, "outweighed by another device's result".into())
                        } else {
                            Verdict::Void(
                                r.id,
                                "made with other tools than the accepted output: not compared"
                                    .into(),
                            )
                        }
                    }));
                    verdicts
                }
                Decision::Wait => verdicts.into_iter().chain(keep_waiting).collect(),
                Decision::More(copies) => verdicts
                    .into_iter()
                    .chain(keep_waiting)
                    .chain([Verdict::MoreReplicas(state.task, copies)])
                    .collect(),
                Decision::Fail(reason) => verdicts
                    .into_iter()
                    .chain(keep_waiting)
                    .chain([Verdict::FailTask(state.task, reason)])
                    .collect(),
            }
        }
    }
}

/// Queues the copies that recorded verdicts asked for, before the chunk's other tasks, kept
/// from the parties that already sent a result for it.
pub async fn queue_replicas(grid: &Grid, replicate: &[Replicate]) -> Result<(), StorageError> {
    for r in replicate {
        if grid.schedule.get(r.job).is_some() {
            grid.queues
                .enqueue_replicas(r.job, r.task, r.copies, &r.exclude, true)
                .await?;
            tracing::debug!(job = %r.job, task = %r.task, copies = r.copies, "replicas queued");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use idlegrid_domain::{JobId, Placement, ReplicationMode, Runtime, WorkerId};

    /// A result of device `id`, owned by owner `id`, registered long ago.
    fn result(id: i64, sha: &str, stage: ReplicaStage, streak: u64) -> ReplicaResult {
        ReplicaResult {
            id: ResultId(id),
            worker: WorkerId(id),
            owner: id,
            sha256: sha.into(),
            stage,
            suspect: false,
            reason: None,
            streak,
            registered_at_ms: 0,
            runtime: Runtime::Native,
            ffmpeg: Some("5.1".into()),
        }
    }

    fn new(id: i64, sha: &str) -> ReplicaResult {
        result(id, sha, ReplicaStage::Pending, 0)
    }

    fn passed(id: i64, sha: &str) -> ReplicaResult {
        result(id, sha, ReplicaStage::Passed, 0)
    }

    fn in_browser(mut r: ReplicaResult) -> ReplicaResult {
        r.runtime = Runtime::Browser;
        r.ffmpeg = None;
        r
    }

    fn state(wanted: u32, results: Vec<ReplicaResult>) -> ReplicaState {
        ReplicaState {
            task: TaskId(1),
            job: JobId(1),
            state: TaskState::Validating,
            wanted,
            placement: Placement::Any,
            accepted: None,
            results,
        }
    }

    fn rules(policy: Replication) -> Rules {
        Rules {
            policy,
            uses_ffmpeg: true,
            trusted_before_ms: 1_000,
        }
    }

    fn accepting(ids: &[i64]) -> HashMap<ResultId, Judgment> {
        ids.iter()
            .map(|&i| (ResultId(i), Judgment::Accept))
            .collect()
    }

    const ADAPTIVE: Replication = Replication::ADAPTIVE;

    const FIXED_2: Replication = Replication {
        mode: ReplicationMode::Fixed,
        replicas: 2,
        quorum: 2,
        max_replicas: 4,
        ..Replication::NONE
    };

    #[test]
    fn a_lone_result_of_a_new_device_asks_for_a_check() {
        let s = state(1, vec![new(7, "a")]);
        let v = task_verdicts(&rules(ADAPTIVE), &s, &accepting(&[7]), 0.99);
        assert!(matches!(
            v[..],
            [
                Verdict::Passed(ResultId(7)),
                Verdict::MoreReplicas(TaskId(1), 1)
            ]
        ));
        // A trusted device's result is accepted alone unless sampled.
        let s = state(1, vec![result(7, "a", ReplicaStage::Pending, 1000)]);
        let v = task_verdicts(&rules(ADAPTIVE), &s, &accepting(&[7]), 0.99);
        assert!(matches!(v[..], [Verdict::Valid(ResultId(7))]));
        let v = task_verdicts(&rules(ADAPTIVE), &s, &accepting(&[7]), 0.0);
        assert!(matches!(
            v[..],
            [Verdict::Passed(_), Verdict::MoreReplicas(_, 1)]
        ));
        // However long its streak, a device registered too recently is not trusted yet.
        let mut young = result(7, "a", ReplicaStage::Pending, 1000);
        young.registered_at_ms = 5_000;
        let v = task_verdicts(
            &rules(ADAPTIVE),
            &state(1, vec![young]),
            &accepting(&[7]),
            0.99,
        );
        assert!(matches!(
            v[..],
            [Verdict::Passed(_), Verdict::MoreReplicas(_, 1)]
        ));
    }

    #[test]
    fn the_quorum_accepts_agreeing_results_and_rejects_the_odd_one() {
        let s = state(3, vec![passed(1, "a"), passed(2, "b"), new(3, "a")]);
        let v = task_verdicts(&rules(ADAPTIVE), &s, &accepting(&[3]), 0.5);
        assert!(matches!(
            v[..],
            [
                Verdict::Valid(ResultId(1)),
                Verdict::Valid(ResultId(3)),
                Verdict::Invalid(ResultId(2), _)
            ]
        ));
    }

    #[test]
    fn devices_of_one_owner_never_make_a_quorum() {
        // Two devices of owner 9 agree on forged bytes; an honest owner disagrees.
        let mut sybil_a = passed(1, "forged");
        let mut sybil_b = new(2, "forged");
        sybil_a.owner = 9;
        sybil_b.owner = 9;
        let s = state(2, vec![sybil_a.clone(), sybil_b.clone()]);
        let v = task_verdicts(&rules(FIXED_2), &s, &accepting(&[2]), 0.5);
        assert!(
            matches!(v[..], [Verdict::Passed(_), Verdict::MoreReplicas(_, 1)]),
            "{v:?}"
        );
        sybil_b.stage = ReplicaStage::Passed;
        let s = state(3, vec![sybil_a, sybil_b, new(3, "honest")]);
        let v = task_verdicts(&rules(FIXED_2), &s, &accepting(&[3]), 0.5);
        assert!(
            matches!(v.last(), Some(Verdict::MoreReplicas(_, 1))),
            "{v:?}"
        );
        // In a private fleet each device is its own party.
        let mut own = state(2, vec![passed(1, "x"), new(2, "x")]);
        own.results[0].owner = 9;
        own.results[1].owner = 9;
        own.placement = Placement::Own;
        let v = task_verdicts(&rules(FIXED_2), &own, &accepting(&[2]), 0.5);
        assert!(
            matches!(v[..], [Verdict::Valid(_), Verdict::Valid(_)]),
            "{v:?}"
        );
    }

    #[test]
    fn a_rejected_result_is_disputed_until_an_independent_party_speaks() {
        let none = rules(Replication::NONE);
        let rejected = |id: i64| HashMap::from([(ResultId(id), Judgment::Reject("blank".into()))]);
        // First rejection: disputed, not invalid.
        let s = state(1, vec![new(1, "bad")]);
        let v = task_verdicts(&none, &s, &rejected(1), 0.5);
        assert!(matches!(&v[..], [Verdict::Disputed(ResultId(1), why)] if why == "blank"));
        // Another owner returns the same bytes, also rejected: colluders would, so that proves
        // nothing either. Disputed too; the chunk goes on to other parties.
        let s = state(
            1,
            vec![result(1, "bad", ReplicaStage::Disputed, 0), new(2, "bad")],
        );
        let v = task_verdicts(&none, &s, &rejected(2), 0.5);
        assert!(
            matches!(&v[..], [Verdict::Disputed(ResultId(2), why)] if why == "blank"),
            "{v:?}"
        );
        // If one of them has earned trust, the job is at fault: the chunk fails, nobody blamed.
        let s = state(
            1,
            vec![result(1, "bad", ReplicaStage::Disputed, 10), new(2, "bad")],
        );
        let v = task_verdicts(&none, &s, &rejected(2), 0.5);
        assert!(
            matches!(
                &v[..],
                [Verdict::Void(ResultId(2), _), Verdict::Void(ResultId(1), _), Verdict::FailTask(_, why)]
                    if why.contains("no device is at fault") && why.contains("blank")
            ),
            "{v:?}"
        );
        // Not if the trusted one is too new to be trusted.
        let mut young = rules(Replication::NONE);
        young.trusted_before_ms = -1;
        let v = task_verdicts(&young, &s, &rejected(2), 0.5);
        assert!(matches!(&v[..], [Verdict::Disputed(..)]), "{v:?}");
        // In a private fleet, two of the customer's own devices agreeing is enough.
        let mut fleet = state(
            1,
            vec![result(1, "bad", ReplicaStage::Disputed, 0), new(2, "bad")],
        );
        fleet.placement = Placement::Own;
        let v = task_verdicts(&young, &fleet, &rejected(2), 0.5);
        assert!(matches!(&v[..], [.., Verdict::FailTask(..)]), "{v:?}");
        // ... and so are two of them whose outputs differ, each rejected (a script that writes
        // something a little different every time, all of it wrong).
        let mut differing = state(
            1,
            vec![result(1, "bad", ReplicaStage::Disputed, 0), new(2, "worse")],
        );
        differing.placement = Placement::Own;
        let v = task_verdicts(&young, &differing, &rejected(2), 0.5);
        assert!(
            matches!(&v[..], [.., Verdict::FailTask(_, why)] if why.contains("your own devices")),
            "{v:?}"
        );
        // On the open grid, differing rejected outputs prove nothing: disputed.
        differing.placement = Placement::Any;
        let v = task_verdicts(&none, &differing, &rejected(2), 0.5);
        assert!(matches!(&v[..], [Verdict::Disputed(..)]), "{v:?}");
        // The same device (or owner) repeating itself proves nothing: disputed again.
        let mut again = new(3, "bad");
        again.owner = 1;
        let s = state(1, vec![result(1, "bad", ReplicaStage::Disputed, 0), again]);
        let v = task_verdicts(&none, &s, &rejected(3), 0.5);
        assert!(
            matches!(&v[..], [Verdict::Disputed(ResultId(3), _)]),
            "{v:?}"
        );
        // An independent accepted result settles the dispute (in the records, when the task is
        // done): here it is simply accepted.
        let s = state(
            1,
            vec![result(1, "bad", ReplicaStage::Disputed, 0), new(2, "good")],
        );
        let v = task_verdicts(&none, &s, &accepting(&[2]), 0.5);
        assert!(matches!(v[..], [Verdict::Valid(ResultId(2))]), "{v:?}");
    }

    #[test]
    fn a_suspect_result_needs_another_party_even_unreplicated() {
        let none = rules(Replication::NONE);
        let suspect = HashMap::from([(ResultId(1), Judgment::Suspect("blurred".into()))]);
        let s = state(1, vec![new(1, "small")]);
        let v = task_verdicts(&none, &s, &suspect, 0.5);
        assert!(
            matches!(&v[..], [Verdict::Suspect(ResultId(1), why), Verdict::MoreReplicas(_, 1)] if why == "blurred"),
            "{v:?}"
        );
        // An independent clean result with other bytes wins; the suspect one is void, not
        // invalid (nothing outvoted it).
        let mut first = passed(1, "small");
        first.suspect = true;
        let s = state(2, vec![first.clone(), new(2, "sharp")]);
        let v = task_verdicts(&none, &s, &accepting(&[2]), 0.5);
        assert!(
            matches!(
                v[..],
                [Verdict::Valid(ResultId(2)), Verdict::Void(ResultId(1), _)]
            ),
            "{v:?}"
        );
        // The same bytes from another party: the suspect result was honest after all.
        let s = state(2, vec![first, new(2, "small")]);
        let v = task_verdicts(&none, &s, &accepting(&[2]), 0.5);
        assert!(
            matches!(v[..], [Verdict::Valid(_), Verdict::Valid(_)]),
            "{v:?}"
        );
        // A trusted device's suspect result is checked too.
        let s = state(1, vec![result(1, "small", ReplicaStage::Pending, 1000)]);
        let v = task_verdicts(&rules(ADAPTIVE), &s, &suspect, 0.99);
        assert!(
            matches!(v[..], [Verdict::Suspect(..), Verdict::MoreReplicas(_, 1)]),
            "{v:?}"
        );
    }

    #[test]
    fn late_replicas_are_compared_with_the_accepted_output() {
        let mut s = state(2, vec![new(4, "a"), new(5, "x")]);
        s.state = TaskState::Done;
        s.accepted = Some(result(3, "a", ReplicaStage::Accepted, 0));
        let v = task_verdicts(&rules(ADAPTIVE), &s, &accepting(&[4, 5]), 0.5);
        assert!(matches!(
            v[..],
            [
                Verdict::Valid(ResultId(4)),
                Verdict::Invalid(ResultId(5), _)
            ]
        ));
    }

    #[test]
    fn results_of_other_tools_are_never_compared_by_hash() {
        // A native and a browser result, different bytes: no quorum, one more replica, and
        // neither is called wrong.
        let s = state(2, vec![passed(1, "n"), in_browser(new(2, "b"))]);
        let v = task_verdicts(&rules(FIXED_2), &s, &accepting(&[2]), 0.5);
        assert!(
            matches!(
                v[..],
                [Verdict::Passed(ResultId(2)), Verdict::MoreReplicas(_, 1)]
            ),
            "{v:?}"
        );
        // A second browser result agrees with the first: accepted; the native one is void
        // (not compared, not paid).
        let s = state(
            3,
            vec![
                passed(1, "n"),
                in_browser(passed(2, "b")),
                in_browser(new(3, "b")),
            ],
        );
        let v = task_verdicts(&rules(FIXED_2), &s, &accepting(&[3]), 0.5);
        assert!(
            matches!(
                v[..],
                [
                    Verdict::Valid(ResultId(2)),
                    Verdict::Valid(ResultId(3)),
                    Verdict::Void(ResultId(1), _)
                ]
            ),
            "{v:?}"
        );
        // The same bytes from another FFmpeg version are not a quorum either.
        let mut other = new(2, "x");
        other.ffmpeg = Some("7.1".into());
        let s = state(2, vec![passed(1, "x"), other]);
        let v = task_verdicts(&rules(FIXED_2), &s, &accepting(&[2]), 0.5);
        assert!(
            matches!(v[..], [Verdict::Passed(_), Verdict::MoreReplicas(_, 1)]),
            "{v:?}"
        );
        // Unless the app runs no FFmpeg.
        let python = Rules {
            uses_ffmpeg: false,
            ..rules(FIXED_2)
        };
        let v = task_verdicts(&python, &s, &accepting(&[2]), 0.5);
        assert!(
            matches!(v[..], [Verdict::Valid(_), Verdict::Valid(_)]),
            "{v:?}"
        );
    }
}
