//! Replicated chunks: turns the app validator's acceptances of replicated jobs' results into
//! quorum verdicts with the rule in [`idlegrid_domain::replication`], and queues the replicas
//! those verdicts ask for.
//!
//! A task is decided inside one records transaction that holds it ([`Store::settle_replicas`]),
//! so validators deciding at once — in one coordinator or several — never decide it on stale
//! state. Results arriving meanwhile are only added, and are judged on their own turn.
//!
//! [`Store::settle_replicas`]: idlegrid_storage::records::Store::settle_replicas

use crate::grid::Grid;
use idlegrid_domain::replication::{Decision, decide};
use idlegrid_domain::{Replication, ResultId, TaskId, TaskState};
use idlegrid_storage::StorageError;
use idlegrid_storage::records::{ReplicaResult, ReplicaState, Replicate, Verdict, VerdictsApplied};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A result of a replicated job that passed its app's validator.
#[derive(Debug, Clone, Copy)]
pub struct Passed {
    /// The result.
    pub result: ResultId,
    /// Its task.
    pub task: TaskId,
    /// Its job's policy.
    pub policy: Replication,
}

/// Records the verdicts for results that passed their app's validator: accepted by quorum,
/// rejected for disagreeing with it, or kept waiting for replicas (with more replicas asked
/// for, or the task failed, when the replicas cannot agree). Each task is decided on its state
/// as of the decision, in the same transaction.
pub async fn settle(grid: &Grid, passed: &[Passed]) -> Result<VerdictsApplied, StorageError> {
    let mut by_task: BTreeMap<TaskId, (Replication, Vec<ResultId>)> = BTreeMap::new();
    for p in passed {
        by_task
            .entry(p.task)
            .or_insert_with(|| (p.policy, Vec::new()))
            .1
            .push(p.result);
    }
    let tasks: Vec<TaskId> = by_task.keys().copied().collect();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    let decide = move |state: &ReplicaState| -> Vec<Verdict> {
        let verdicts = match by_task.get(&state.task) {
            Some((policy, new)) => task_verdicts(policy, state, new, rand::random()),
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

/// What the quorum rule compares: a result's hash within its kind of runtime. Tools built for
/// different runtimes give different bytes for the same work (ffmpeg.wasm's x264 is not the
/// native build), so results of two kinds neither agree nor disagree.
fn output_key(r: &ReplicaResult) -> String {
    format!("{}:{}", r.runtime.as_str(), r.sha256)
}

/// The verdicts for one task; `u` is a uniform sample in `[0, 1)` for the spot check.
///
/// A result of another kind of runtime than the accepted output's cannot be judged by its
/// hash; it passed the app's validator, so it is accepted as an agreeing replica (after the
/// output, which stays the first listed).
fn task_verdicts(
    policy: &Replication,
    state: &ReplicaState,
    new: &[ResultId],
    u: f64,
) -> Vec<Verdict> {
    let is_new = |r: &&ReplicaResult| new.contains(&r.id);
    match state.state {
        // Late replicas of a decided task: they agree with the accepted output or are wrong.
        TaskState::Done => state
            .results
            .iter()
            .filter(is_new)
            .map(|r| {
                if r.runtime != state.accepted_runtime
                    || Some(&r.sha256) == state.accepted_sha256.as_ref()
                {
                    Verdict::Valid(r.id)
                } else {
                    Verdict::Invalid(
                        r.id,
                        "its output differs from the one accepted for this chunk".into(),
                    )
                }
            })
            .collect(),
        TaskState::Failed => Vec::new(),
        TaskState::Pending | TaskState::Validating => {
            let passed: Vec<&ReplicaResult> = state
                .results
                .iter()
                .filter(|r| r.passed || new.contains(&r.id))
                .collect();
            let keys: Vec<String> = passed.iter().map(|r| output_key(r)).collect();
            let hashes: Vec<&str> = keys.iter().map(String::as_str).collect();
            let lone_trusted = match passed.as_slice() {
                [only] => !policy.needs_check(only.streak, u),
                _ => false,
            };
            let keep_waiting = || {
                state
                    .results
                    .iter()
                    .filter(is_new)
                    .map(|r| Verdict::Passed(r.id))
            };
            match decide(policy, state.wanted, &hashes, lone_trusted) {
                Decision::Accept(key) => {
                    let (agree, other): (Vec<&ReplicaResult>, Vec<&ReplicaResult>) =
                        passed.iter().copied().partition(|r| output_key(r) == key);
                    let runtime = agree.first().map(|r| r.runtime);
                    let agreeing = agree.len();
                    let other = other.into_iter().map(|r| {
                        if Some(r.runtime) == runtime {
                            Verdict::Invalid(
                                r.id,
                                format!(
                                    "its output differs from the one {agreeing} other \
                                     devices agreed on"
                                ),
                            )
                        } else {
                            Verdict::Valid(r.id)
                        }
                    });
                    agree
                        .iter()
                        .map(|r| Verdict::Valid(r.id))
                        .chain(other)
                        .collect()
                }
                Decision::Wait => keep_waiting().collect(),
                Decision::More(copies) => keep_waiting()
                    .chain([Verdict::MoreReplicas(state.task, copies)])
                    .collect(),
                Decision::Fail(reason) => keep_waiting()
                    .chain([Verdict::FailTask(state.task, reason)])
                    .collect(),
            }
        }
    }
}

/// Queues the replicas that recorded verdicts asked for, before the chunk's other tasks.
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
    use idlegrid_domain::{JobId, ReplicationMode, Runtime, WorkerId};

    fn result(id: i64, sha: &str, passed: bool, streak: u64) -> ReplicaResult {
        ReplicaResult {
            id: ResultId(id),
            worker: WorkerId(id),
            sha256: sha.into(),
            passed,
            streak,
            runtime: Runtime::Native,
        }
    }

    fn in_browser(mut r: ReplicaResult) -> ReplicaResult {
        r.runtime = Runtime::Browser;
        r
    }

    fn state(wanted: u32, results: Vec<ReplicaResult>) -> ReplicaState {
        ReplicaState {
            task: TaskId(1),
            job: JobId(1),
            state: TaskState::Validating,
            wanted,
            accepted_sha256: None,
            accepted_runtime: Runtime::Native,
            results,
        }
    }

    const ADAPTIVE: Replication = Replication {
        mode: ReplicationMode::Adaptive,
        ..Replication::NONE
    };

    #[test]
    fn a_lone_result_of_a_new_device_asks_for_a_check() {
        let s = state(1, vec![result(7, "a", false, 0)]);
        let v = task_verdicts(&ADAPTIVE, &s, &[ResultId(7)], 0.99);
        assert!(matches!(
            v[..],
            [
                Verdict::Passed(ResultId(7)),
                Verdict::MoreReplicas(TaskId(1), 1)
            ]
        ));
        // A trusted device's result is accepted alone unless sampled.
        let s = state(1, vec![result(7, "a", false, 1000)]);
        let v = task_verdicts(&ADAPTIVE, &s, &[ResultId(7)], 0.99);
        assert!(matches!(v[..], [Verdict::Valid(ResultId(7))]));
        let v = task_verdicts(&ADAPTIVE, &s, &[ResultId(7)], 0.0);
        assert!(matches!(
            v[..],
            [Verdict::Passed(_), Verdict::MoreReplicas(_, 1)]
        ));
    }

    #[test]
    fn the_quorum_accepts_agreeing_results_and_rejects_the_odd_one() {
        let s = state(
            3,
            vec![
                result(1, "a", true, 0),
                result(2, "b", true, 0),
                result(3, "a", false, 0),
            ],
        );
        let v = task_verdicts(&ADAPTIVE, &s, &[ResultId(3)], 0.5);
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
    fn late_replicas_are_compared_with_the_accepted_output() {
        let mut s = state(2, vec![result(4, "a", false, 0), result(5, "x", false, 0)]);
        s.state = TaskState::Done;
        s.accepted_sha256 = Some("a".into());
        let v = task_verdicts(&ADAPTIVE, &s, &[ResultId(4), ResultId(5)], 0.5);
        assert!(matches!(
            v[..],
            [
                Verdict::Valid(ResultId(4)),
                Verdict::Invalid(ResultId(5), _)
            ]
        ));
    }

    const FIXED_2_OF_3: Replication = Replication {
        mode: ReplicationMode::Fixed,
        replicas: 2,
        quorum: 2,
        max_replicas: 4,
        ..Replication::NONE
    };

    #[test]
    fn results_of_different_runtimes_are_never_compared_by_hash() {
        // A native and a browser result, different bytes: no quorum, one more replica, and
        // neither is called wrong.
        let s = state(
            2,
            vec![
                result(1, "n", true, 0),
                in_browser(result(2, "b", false, 0)),
            ],
        );
        let v = task_verdicts(&FIXED_2_OF_3, &s, &[ResultId(2)], 0.5);
        assert!(
            matches!(
                v[..],
                [Verdict::Passed(ResultId(2)), Verdict::MoreReplicas(_, 1)]
            ),
            "{v:?}"
        );
        // A second browser result agrees with the first: accepted, the native one kept as an
        // agreeing replica after the output (which is listed first).
        let s = state(
            3,
            vec![
                result(1, "n", true, 0),
                in_browser(result(2, "b", true, 0)),
                in_browser(result(3, "b", false, 0)),
            ],
        );
        let v = task_verdicts(&FIXED_2_OF_3, &s, &[ResultId(3)], 0.5);
        assert!(
            matches!(
                v[..],
                [
                    Verdict::Valid(ResultId(2)),
                    Verdict::Valid(ResultId(3)),
                    Verdict::Valid(ResultId(1))
                ]
            ),
            "{v:?}"
        );
        // Two browser results with the same bytes as a native one's are still not a quorum
        // with it: the hash is compared within a runtime.
        let s = state(
            2,
            vec![
                result(1, "x", true, 0),
                in_browser(result(2, "x", false, 0)),
            ],
        );
        let v = task_verdicts(&FIXED_2_OF_3, &s, &[ResultId(2)], 0.5);
        assert!(matches!(
            v[..],
            [Verdict::Passed(_), Verdict::MoreReplicas(_, 1)]
        ));
    }

    #[test]
    fn a_wrong_result_is_still_wrong_within_its_runtime() {
        let s = state(
            3,
            vec![
                in_browser(result(1, "b", true, 0)),
                in_browser(result(2, "bad", true, 0)),
                in_browser(result(3, "b", false, 0)),
            ],
        );
        let v = task_verdicts(&FIXED_2_OF_3, &s, &[ResultId(3)], 0.5);
        assert!(matches!(
            v[..],
            [
                Verdict::Valid(ResultId(1)),
                Verdict::Valid(ResultId(3)),
                Verdict::Invalid(ResultId(2), _)
            ]
        ));
        // Late: a browser result after a native output is not compared; a native one is.
        let mut s = state(
            2,
            vec![
                in_browser(result(4, "b", false, 0)),
                result(5, "y", false, 0),
            ],
        );
        s.state = TaskState::Done;
        s.accepted_sha256 = Some("a".into());
        let v = task_verdicts(&FIXED_2_OF_3, &s, &[ResultId(4), ResultId(5)], 0.5);
        assert!(matches!(
            v[..],
            [
                Verdict::Valid(ResultId(4)),
                Verdict::Invalid(ResultId(5), _)
            ]
        ));
    }
}
