//! One test suite, two backends: every behaviour test below runs against [`MemoryQueues`], and
//! against [`RedisQueues`] when `IDLEGRID_TEST_REDIS` names a server
//! (`redis://127.0.0.1:56379`), each run under its own key prefix. The Redis-only tests at the
//! end race two connections on the same keys.

use super::{Copies, Item, JobDepth, Lease, MemoryQueues, Queues, RedisQueues, Stage};
use crate::now_ms;
use idlegrid_domain::{JobId, LeaseId, TaskId, WorkerId};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const W1: WorkerId = WorkerId(1);
const W2: WorkerId = WorkerId(2);
const W3: WorkerId = WorkerId(3);
const J: JobId = JobId(7);
const MINUTE: Duration = Duration::from_secs(60);
/// A worker allowed any number of leases.
const UNBOUNDED: usize = usize::MAX;

fn tasks_of(leases: &[Lease]) -> Vec<TaskId> {
    leases.iter().map(|l| l.task).collect()
}

fn task_ids(ids: impl IntoIterator<Item = i64>) -> Vec<TaskId> {
    ids.into_iter().map(TaskId).collect()
}

/// A Redis for one test: a fresh key prefix, and its keys deleted afterwards, even after a
/// failure.
struct TestRedis {
    url: String,
    prefix: String,
    queues: RedisQueues,
}

impl TestRedis {
    /// `None` (with a note) when no server is configured, unless services are required.
    async fn start() -> Option<Self> {
        let Ok(url) = std::env::var("IDLEGRID_TEST_REDIS") else {
            assert!(
                std::env::var("IDLEGRID_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "IDLEGRID_TEST_REDIS is not set: start the services with \
                 `eval \"$(scripts/services.sh start)\"`, or run \
                 `redis-server --port 56379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes` \
                 and set IDLEGRID_TEST_REDIS=redis://127.0.0.1:56379"
            );
            eprintln!("IDLEGRID_TEST_REDIS is not set: Redis queue tests skipped");
            return None;
        };
        let prefix = format!("idlegrid-test:{:016x}:", rand::random::<u64>());
        let queues = RedisQueues::connect(&url, &prefix)
            .await
            .unwrap_or_else(|e| panic!("cannot reach Redis at {url}: {e}"));
        Some(TestRedis {
            url,
            prefix,
            queues,
        })
    }

    /// Another connection to the same keys, as a second coordinator would have.
    async fn another(&self) -> Arc<RedisQueues> {
        Arc::new(RedisQueues::connect(&self.url, &self.prefix).await.unwrap())
    }

    /// Every key under the test's prefix.
    fn keys(&self) -> ::redis::RedisResult<Vec<String>> {
        let mut con = ::redis::Client::open(self.url.as_str())?.get_connection()?;
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query(&mut con)?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                return Ok(keys);
            }
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // Best effort, and blocking: this runs at the end of a test, or while it unwinds.
        let Ok(keys) = self.keys() else { return };
        if keys.is_empty() {
            return;
        }
        if let Ok(mut con) =
            ::redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        {
            for chunk in keys.chunks(500) {
                let _: ::redis::RedisResult<()> = ::redis::cmd("DEL").arg(chunk).query(&mut con);
            }
        }
    }
}

/// Runs each named test against both backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&super::MemoryQueues::new()).await;
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(redis) = super::TestRedis::start().await else { return };
                    super::$name(&redis.queues).await;
                }
            )*
        }
    };
}

on_both_backends!(
    stage_queue_is_fifo_and_pop_waits,
    pop_takes_at_most_max_from_its_own_stage,
    leases_are_exclusive_and_settle_once,
    settle_answers_each_pair_of_a_batch,
    a_retried_task_is_kept_from_the_worker_that_failed_it_for_a_while,
    a_worker_never_gets_two_copies_of_a_replicated_task,
    a_revoked_worker_loses_its_leases_and_may_take_a_copy_again,
    expired_leases_are_taken_back_in_deadline_order,
    take_expired_takes_at_most_max,
    renewal_never_shortens_a_lease_and_ignores_bad_progress,
    retries_go_to_the_front_and_dropped_jobs_vanish,
    tasks_put_at_the_front_keep_their_order,
    every_copy_of_a_replicated_task_is_queued,
    dropping_a_job_leaves_other_jobs_alone,
    lease_ids_are_distinct_53_bit_numbers,
    wait_for_tasks_returns_on_enqueue_or_after_the_wait,
    a_jobs_leases_and_each_workers_count_are_listed,
    a_worker_never_holds_more_leases_than_it_may,
    confirming_leases_take_only_copies_that_confirm_another_workers,
);

async fn confirming_leases_take_only_copies_that_confirm_another_workers(q: &dyn Queues) {
    q.enqueue_tasks(J, &task_ids([1, 2]), false).await.unwrap();
    q.enqueue_replicas(J, TaskId(3), 1, &[W1], false)
        .await
        .unwrap();
    q.enqueue_replicas(J, TaskId(4), 1, &[W2], false)
        .await
        .unwrap();
    // Two copies nobody has held yet: neither confirms anything until one is taken.
    q.enqueue_replicas(J, TaskId(5), 2, &[], false)
        .await
        .unwrap();
    // W1 sent task 3's result: task 4's copy is the only confirmation it may take; the other
    // tasks stay queued, in their order.
    let a = q
        .lease(J, W1, 10, UNBOUNDED, MINUTE, Copies::Confirming)
        .await
        .unwrap();
    assert_eq!(tasks_of(&a), task_ids([4]));
    let b = q.lease_tasks(J, W3, 10, 3, MINUTE).await.unwrap();
    assert_eq!(tasks_of(&b), task_ids([1, 2, 3]));
    assert!(
        q.lease(J, W3, 10, UNBOUNDED, MINUTE, Copies::Confirming)
            .await
            .unwrap()
            .is_empty()
    );
    // W3 takes a copy of task 5 (holding its slots' worth, it gets nothing more); then the
    // other copy confirms W3's and W2 may take it.
    let c = q.lease_tasks(J, W3, 10, 4, MINUTE).await.unwrap();
    assert_eq!(tasks_of(&c), task_ids([5]));
    assert!(
        q.lease_tasks(J, W3, 10, 4, MINUTE)
            .await
            .unwrap()
            .is_empty()
    );
    // It counts against the worker's slots like any lease.
    assert!(
        q.lease(J, W2, 10, 0, MINUTE, Copies::Confirming)
            .await
            .unwrap()
            .is_empty()
    );
    let d = q
        .lease(J, W2, 10, 1, MINUTE, Copies::Confirming)
        .await
        .unwrap();
    assert_eq!(tasks_of(&d), task_ids([5]));
}

async fn a_worker_never_holds_more_leases_than_it_may(q: &dyn Queues) {
    let other = JobId(8);
    q.enqueue_tasks(J, &task_ids([1, 2, 3, 4, 5]), false)
        .await
        .unwrap();
    q.enqueue_tasks(other, &task_ids([9]), false).await.unwrap();
    let two = q.lease_tasks(J, W1, 3, 2, MINUTE).await.unwrap();
    assert_eq!(tasks_of(&two), task_ids([1, 2]), "asked for 3, may hold 2");
    // Leases of every job count.
    assert!(
        q.lease_tasks(other, W1, 1, 2, MINUTE)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(q.lease_tasks(J, W1, 1, 0, MINUTE).await.unwrap().is_empty());
    // Another worker is not held back by W1's leases.
    assert_eq!(q.lease_tasks(J, W2, 1, 1, MINUTE).await.unwrap().len(), 1);
    assert_eq!(q.leases_held(&[W1, W2]).await.unwrap(), [2, 1]);
    // A lease ended frees its place, whichever way it ended.
    q.settle(&[(two[0].id, W1)]).await.unwrap();
    assert_eq!(
        tasks_of(&q.lease_tasks(other, W1, 5, 2, MINUTE).await.unwrap()),
        task_ids([9])
    );
    q.drop_job(other).await.unwrap();
    assert_eq!(q.leases_held(&[W1]).await.unwrap(), [1]);
    assert_eq!(q.lease_tasks(J, W1, 5, 2, MINUTE).await.unwrap().len(), 1);
    assert_eq!(q.revoke(W1).await.unwrap().len(), 2);
    assert_eq!(q.leases_held(&[W1]).await.unwrap(), [0]);
}

async fn a_jobs_leases_and_each_workers_count_are_listed(q: &dyn Queues) {
    let other = JobId(8);
    q.enqueue_tasks(J, &task_ids([1, 2, 3]), false)
        .await
        .unwrap();
    q.enqueue_tasks(other, &task_ids([9]), false).await.unwrap();
    let a = q.lease_tasks(J, W1, 2, UNBOUNDED, MINUTE).await.unwrap();
    let b = q
        .lease_tasks(other, W2, 1, UNBOUNDED, MINUTE)
        .await
        .unwrap();
    q.renew(a[1].id, W1, MINUTE, Some(0.5)).await.unwrap();
    let mut listed = q.job_leases(J).await.unwrap();
    listed.sort_by_key(|l| l.task);
    assert_eq!(tasks_of(&listed), task_ids([1, 2]));
    assert!(listed.iter().all(|l| l.worker == W1 && l.job == J));
    assert_eq!(listed[1].progress, 0.5);
    assert_eq!(q.job_leases(JobId(99)).await.unwrap(), []);
    assert_eq!(q.leases_held(&[W1, W2, W3]).await.unwrap(), [2, 1, 0]);
    assert_eq!(q.leases_held(&[]).await.unwrap(), Vec::<u64>::new());
    q.settle(&[(a[0].id, W1), (b[0].id, W2)]).await.unwrap();
    assert_eq!(tasks_of(&q.job_leases(J).await.unwrap()), task_ids([2]));
    assert_eq!(q.leases_held(&[W1, W2]).await.unwrap(), [1, 0]);
}

async fn stage_queue_is_fifo_and_pop_waits(q: &dyn Queues) {
    let empty = q
        .pop(Stage::Feed, 10, Duration::from_millis(10))
        .await
        .unwrap();
    assert!(empty.is_empty());
    let items: Vec<Item> = (1..=3).map(|id| Item { job: J, id }).collect();
    let started = Instant::now();
    let (popped, pushed) = tokio::join!(q.pop(Stage::Feed, 10, Duration::from_secs(5)), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.push(Stage::Feed, &items).await
    });
    pushed.unwrap();
    assert_eq!(popped.unwrap(), items);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "woken by the push"
    );
    assert_eq!(q.stage_len(Stage::Feed).await.unwrap(), 0);
}

async fn pop_takes_at_most_max_from_its_own_stage(q: &dyn Queues) {
    let items: Vec<Item> = (1..=5).map(|id| Item { job: J, id }).collect();
    q.push(Stage::Validate, &items).await.unwrap();
    q.push(Stage::Assemble, &items[..1]).await.unwrap();
    assert_eq!(q.stage_len(Stage::Validate).await.unwrap(), 5);
    assert_eq!(q.stage_len(Stage::Assemble).await.unwrap(), 1);
    assert_eq!(q.stage_len(Stage::Partition).await.unwrap(), 0);
    let first = q.pop(Stage::Validate, 2, Duration::ZERO).await.unwrap();
    assert_eq!(first, items[..2]);
    let rest = q.pop(Stage::Validate, 10, Duration::ZERO).await.unwrap();
    assert_eq!(rest, items[2..]);
    assert_eq!(q.stage_len(Stage::Validate).await.unwrap(), 0);
    assert_eq!(q.stage_len(Stage::Assemble).await.unwrap(), 1);
}

async fn leases_are_exclusive_and_settle_once(q: &dyn Queues) {
    q.enqueue_tasks(J, &task_ids([1, 2, 3]), false)
        .await
        .unwrap();
    let a = q.lease_tasks(J, W1, 2, UNBOUNDED, MINUTE).await.unwrap();
    let b = q.lease_tasks(J, W2, 5, UNBOUNDED, MINUTE).await.unwrap();
    assert_eq!(tasks_of(&a), task_ids([1, 2]));
    assert_eq!(tasks_of(&b), task_ids([3]));
    assert!(
        a.iter()
            .all(|l| l.job == J && l.worker == W1 && l.progress == 0.0)
    );
    let depth = q.job_depth(J).await.unwrap();
    assert_eq!((depth.queued, depth.leased), (0, 3));
    // Progress reported in renewals adds up per job, clamped to 0..=1, and leaves with the
    // lease.
    q.renew(a[0].id, W1, MINUTE, Some(0.5)).await.unwrap();
    q.renew(a[1].id, W1, MINUTE, Some(0.25)).await.unwrap();
    q.renew(a[1].id, W1, MINUTE, Some(7.0)).await.unwrap();
    assert_eq!(q.job_depth(J).await.unwrap().leased_progress, 1.5);
    // The wrong worker can neither renew nor settle.
    assert!(
        q.renew(a[0].id, W2, Duration::from_secs(1), None)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(q.settle(&[(a[0].id, W2)]).await.unwrap(), [None]);
    let settled = q.settle(&[(a[0].id, W1)]).await.unwrap();
    assert_eq!(settled[0].map(|l| (l.id, l.progress)), Some((a[0].id, 0.5)));
    assert_eq!(q.settle(&[(a[0].id, W1)]).await.unwrap(), [None]);
    let depth = q.job_depth(J).await.unwrap();
    assert_eq!((depth.leased, depth.leased_progress), (2, 1.0));
}

async fn settle_answers_each_pair_of_a_batch(q: &dyn Queues) {
    q.enqueue_tasks(J, &task_ids([1, 2, 3]), false)
        .await
        .unwrap();
    let a = q.lease_tasks(J, W1, 2, UNBOUNDED, MINUTE).await.unwrap();
    let b = q.lease_tasks(J, W2, 1, UNBOUNDED, MINUTE).await.unwrap();
    let settled = q
        .settle(&[
            (a[0].id, W1),
            (b[0].id, W1), // not W1's
            (a[0].id, W1), // already ended, earlier in this batch
            (LeaseId(12345), W1),
            (b[0].id, W2),
        ])
        .await
        .unwrap();
    assert_eq!(settled, [Some(a[0]), None, None, None, Some(b[0])]);
    assert!(q.held(a[0].id, W1).await.unwrap().is_none());
    assert_eq!(q.held(a[1].id, W1).await.unwrap(), Some(a[1]));
    assert_eq!(q.held(a[1].id, W2).await.unwrap(), None);
    assert_eq!(q.job_depth(J).await.unwrap().leased, 1);
    assert!(q.settle(&[]).await.unwrap().is_empty());
}

async fn a_retried_task_is_kept_from_the_worker_that_failed_it_for_a_while(q: &dyn Queues) {
    q.enqueue_tasks(J, &task_ids([1, 2]), false).await.unwrap();
    q.enqueue_retry(J, TaskId(9), W1, MINUTE).await.unwrap();
    let first = q.lease_tasks(J, W1, 1, UNBOUNDED, MINUTE).await.unwrap();
    assert_eq!(first[0].task, TaskId(1), "W1 skips the task it failed");
    let second = q.lease_tasks(J, W2, 1, UNBOUNDED, MINUTE).await.unwrap();
    assert_eq!(second[0].task, TaskId(9), "another worker gets it first");
    // Once the avoidance runs out, the same worker may take a retry.
    q.enqueue_retry(J, TaskId(8), W1, Duration::ZERO)
        .await
        .unwrap();
    let third = q.lease_tasks(J, W1, 5, UNBOUNDED, MINUTE).await.unwrap();
    assert_eq!(tasks_of(&third), task_ids([8, 2]));
}

async fn a_worker_never_gets_two_copies_of_a_replicated_task(q: &dyn Queues) {
    q.enqueue_replicas(J, TaskId(1), 2, &[], false)
        .await
        .unwrap();
    q.enqueue_tasks(J, &[TaskId(2)], false).await.unwrap();
    q.enqueue_replicas(J, TaskId(3), 1, &[W1], false)
        .await
        .unwrap();
    // No copies: nothing queued, nobody excluded.
    q.enqueue_replicas(J, TaskId(4), 0, &[W1], false)
        .await
        .unwrap();
    let a = q.lease_tasks(J, W1, 10, UNBOUNDED, MINUTE).await.unwrap();
    assert_eq!(tasks_of(&a), task_ids([1, 2]), "one copy, and not task 3");
    let b = q
        .lease_tasks(J, W2, 10, UNBOUNDED, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(tasks_of(&b), task_ids([1, 3]));
    // W2's attempts are lost: task 1's copy goes back, and W1, which holds the other copy,
    // still may not take it; a third worker may.
    let expired = q.take_expired(now_ms() + 1, 10).await.unwrap();
    assert_eq!(expired.len(), 2);
    q.enqueue_retry(J, TaskId(1), W2, MINUTE).await.unwrap();
    assert!(
        q.lease_tasks(J, W1, 10, UNBOUNDED, MINUTE)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        q.lease_tasks(J, W2, 10, UNBOUNDED, MINUTE)
            .await
            .unwrap()
            .is_empty()
    );
    let c = q.lease_tasks(J, W3, 10, UNBOUNDED, MINUTE).await.unwrap();
    assert_eq!(tasks_of(&c), task_ids([1]));
    // Settling does not free a holder: W1 sent its result and must not get another copy.
    q.settle(&[(a[0].id, W1)]).await.unwrap();
    q.enqueue_replicas(J, TaskId(1), 1, &[], true)
        .await
        .unwrap();
    assert!(
        q.lease_tasks(J, W1, 10, UNBOUNDED, MINUTE)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(q.job_depth(J).await.unwrap().queued, 1);
    // Unless its result came too late to count: then it holds no copy and may take one.
    q.release_holders(&[(J, TaskId(1), W1)]).await.unwrap();
    let d = q.lease_tasks(J, W1, 10, UNBOUNDED, MINUTE).await.unwrap();
    assert_eq!(tasks_of(&d), task_ids([1]));
}

async fn a_revoked_worker_loses_its_leases_and_may_take_a_copy_again(q: &dyn Queues) {
    const OTHER: JobId = JobId(8);
    q.enqueue_replicas(J, TaskId(1), 2, &[], false)
        .await
        .unwrap();
    q.enqueue_tasks(OTHER, &task_ids([5, 6]), false)
        .await
        .unwrap();
    let mut held = q.lease_tasks(J, W1, 10, UNBOUNDED, MINUTE).await.unwrap();
    held.extend(
        q.lease_tasks(OTHER, W1, 1, UNBOUNDED, MINUTE)
            .await
            .unwrap(),
    );
    let kept = q
        .lease_tasks(OTHER, W2, 1, UNBOUNDED, MINUTE)
        .await
        .unwrap();
    q.renew(held[1].id, W1, MINUTE, Some(0.5)).await.unwrap();
    let mut revoked = q.revoke(W1).await.unwrap();
    revoked.sort_by_key(|l| l.task);
    assert_eq!(tasks_of(&revoked), task_ids([1, 5]));
    assert_eq!(revoked[1].progress, 0.5);
    for lease in &held {
        assert!(q.held(lease.id, W1).await.unwrap().is_none());
    }
    assert_eq!(q.held(kept[0].id, W2).await.unwrap(), Some(kept[0]));
    assert_eq!(q.job_depth(J).await.unwrap().leased, 0);
    let other = q.job_depth(OTHER).await.unwrap();
    assert_eq!((other.leased, other.leased_progress), (1, 0.0));
    assert!(q.revoke(W1).await.unwrap().is_empty());
    // Its attempt at task 1 ended, so it may take the copy still queued.
    let again = q.lease_tasks(J, W1, 10, UNBOUNDED, MINUTE).await.unwrap();
    assert_eq!(tasks_of(&again), task_ids([1]));
}

async fn expired_leases_are_taken_back_in_deadline_order(q: &dyn Queues) {
    q.enqueue_tasks(J, &task_ids([1, 2]), false).await.unwrap();
    let short = q
        .lease_tasks(J, W1, 1, UNBOUNDED, Duration::from_millis(0))
        .await
        .unwrap();
    let long = q.lease_tasks(J, W1, 1, UNBOUNDED, MINUTE).await.unwrap();
    let expired = q.take_expired(now_ms() + 1, 10).await.unwrap();
    assert_eq!(expired, short);
    assert!(q.held(long[0].id, W1).await.unwrap().is_some());
    // Renewal moves the deadline forward.
    let renewed = q
        .renew(long[0].id, W1, Duration::from_secs(120), None)
        .await
        .unwrap()
        .unwrap();
    assert!(renewed.expires_at_ms > long[0].expires_at_ms);
    assert!(
        q.take_expired(now_ms() + 61_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn take_expired_takes_at_most_max(q: &dyn Queues) {
    q.enqueue_tasks(J, &task_ids(1..=5), false).await.unwrap();
    let mut leased = Vec::new();
    for ttl in [40, 10, 30, 0, 20] {
        leased.extend(
            q.lease_tasks(J, W1, 1, UNBOUNDED, Duration::from_millis(ttl))
                .await
                .unwrap(),
        );
    }
    let mut by_deadline = leased.clone();
    by_deadline.sort_by_key(|l| (l.expires_at_ms, l.id));
    let later = now_ms() + 1_000;
    assert!(q.take_expired(later, 0).await.unwrap().is_empty());
    let first = q.take_expired(later, 2).await.unwrap();
    assert_eq!(first, by_deadline[..2]);
    let rest = q.take_expired(later, 10).await.unwrap();
    assert_eq!(rest, by_deadline[2..]);
    assert!(q.take_expired(later, 10).await.unwrap().is_empty());
    assert_eq!(q.job_depth(J).await.unwrap(), JobDepth::default());
}

async fn renewal_never_shortens_a_lease_and_ignores_bad_progress(q: &dyn Queues) {
    q.enqueue_tasks(J, &task_ids([1]), false).await.unwrap();
    let lease = q.lease_tasks(J, W1, 1, UNBOUNDED, MINUTE).await.unwrap()[0];
    let renewed = q
        .renew(lease.id, W1, Duration::from_secs(1), Some(0.25))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renewed.expires_at_ms, lease.expires_at_ms);
    assert_eq!(renewed.progress, 0.25);
    let renewed = q
        .renew(lease.id, W1, MINUTE, Some(f32::NAN))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renewed.progress, 0.25);
    let renewed = q
        .renew(lease.id, W1, MINUTE, Some(-3.0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renewed.progress, 0.0);
    assert_eq!(q.held(lease.id, W1).await.unwrap(), Some(renewed));
    assert_eq!(q.job_depth(J).await.unwrap().leased_progress, 0.0);
    // A lease that ended cannot be renewed.
    q.settle(&[(lease.id, W1)]).await.unwrap();
    assert!(q.renew(lease.id, W1, MINUTE, None).await.unwrap().is_none());
}

async fn retries_go_to_the_front_and_dropped_jobs_vanish(q: &dyn Queues) {
    q.enqueue_tasks(J, &task_ids([1, 2]), false).await.unwrap();
    q.enqueue_tasks(J, &[TaskId(9)], true).await.unwrap();
    let leases = q.lease_tasks(J, W1, 1, UNBOUNDED, MINUTE).await.unwrap();
    assert_eq!(leases[0].task, TaskId(9));
    q.drop_job(J).await.unwrap();
    assert!(q.held(leases[0].id, W1).await.unwrap().is_none());
    assert_eq!(q.job_depth(J).await.unwrap(), JobDepth::default());
    assert!(
        q.lease_tasks(J, W1, 10, UNBOUNDED, MINUTE)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn tasks_put_at_the_front_keep_their_order(q: &dyn Queues) {
    q.enqueue_tasks(J, &task_ids([1, 2]), false).await.unwrap();
    q.enqueue_tasks(J, &task_ids([8, 9]), true).await.unwrap();
    q.enqueue_replicas(J, TaskId(5), 2, &[], true)
        .await
        .unwrap();
    q.enqueue_tasks(J, &[], true).await.unwrap();
    assert_eq!(q.job_depth(J).await.unwrap().queued, 6);
    let first = q.lease_tasks(J, W1, 10, UNBOUNDED, MINUTE).await.unwrap();
    assert_eq!(tasks_of(&first), task_ids([5, 8, 9, 1, 2]));
    let second = q.lease_tasks(J, W2, 10, UNBOUNDED, MINUTE).await.unwrap();
    assert_eq!(tasks_of(&second), task_ids([5]));
}

async fn every_copy_of_a_replicated_task_is_queued(q: &dyn Queues) {
    q.enqueue_replicas(J, TaskId(1), 2500, &[W1], false)
        .await
        .unwrap();
    assert_eq!(q.job_depth(J).await.unwrap().queued, 2500);
    assert!(
        q.lease_tasks(J, W1, 10, UNBOUNDED, MINUTE)
            .await
            .unwrap()
            .is_empty()
    );
    let one = q.lease_tasks(J, W2, 10, UNBOUNDED, MINUTE).await.unwrap();
    assert_eq!(tasks_of(&one), task_ids([1]));
    assert_eq!(q.job_depth(J).await.unwrap().queued, 2499);
}

async fn dropping_a_job_leaves_other_jobs_alone(q: &dyn Queues) {
    const OTHER: JobId = JobId(8);
    q.enqueue_tasks(J, &task_ids([1, 2]), false).await.unwrap();
    q.enqueue_tasks(OTHER, &task_ids([3, 4]), false)
        .await
        .unwrap();
    let mine = q.lease_tasks(J, W1, 1, UNBOUNDED, MINUTE).await.unwrap();
    let theirs = q
        .lease_tasks(OTHER, W1, 1, UNBOUNDED, MINUTE)
        .await
        .unwrap();
    q.drop_job(J).await.unwrap();
    assert!(q.held(mine[0].id, W1).await.unwrap().is_none());
    assert_eq!(q.held(theirs[0].id, W1).await.unwrap(), Some(theirs[0]));
    let depth = q.job_depth(OTHER).await.unwrap();
    assert_eq!((depth.queued, depth.leased), (1, 1));
    assert_eq!(q.revoke(W1).await.unwrap(), theirs);
    // A dropped job's lease is no longer due.
    assert!(
        q.take_expired(now_ms() + 3_600_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn lease_ids_are_distinct_53_bit_numbers(q: &dyn Queues) {
    q.enqueue_tasks(J, &task_ids(1..=300), false).await.unwrap();
    let mut ids = HashSet::new();
    for worker in [W1, W2, W3] {
        let leases = q
            .lease_tasks(J, worker, 100, UNBOUNDED, MINUTE)
            .await
            .unwrap();
        assert_eq!(leases.len(), 100);
        for lease in leases {
            assert!(lease.id.0 < 1 << 53);
            assert!(ids.insert(lease.id));
        }
    }
}

async fn wait_for_tasks_returns_on_enqueue_or_after_the_wait(q: &dyn Queues) {
    let started = Instant::now();
    q.wait_for_tasks(Duration::from_millis(50)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(40));
    let started = Instant::now();
    let (waited, enqueued) = tokio::join!(q.wait_for_tasks(Duration::from_secs(5)), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.enqueue_tasks(J, &[TaskId(1)], false).await
    });
    waited.unwrap();
    enqueued.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "woken by the enqueue"
    );
}

// ----- Redis only: several coordinators on the same keys -----

/// A job of `n` queued tasks.
async fn queue_tasks(q: &dyn Queues, n: i64) {
    q.enqueue_tasks(J, &task_ids(1..=n), false).await.unwrap();
}

#[tokio::test]
async fn redis_wakes_waiters_in_other_processes() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let other = redis.another().await;
    let started = Instant::now();
    let (popped, pushed) = tokio::join!(
        other.pop(Stage::Assemble, 10, Duration::from_secs(5)),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            redis
                .queues
                .push(Stage::Assemble, &[Item { job: J, id: 1 }])
                .await
        }
    );
    pushed.unwrap();
    assert_eq!(popped.unwrap(), [Item { job: J, id: 1 }]);
    assert!(started.elapsed() < Duration::from_secs(2));
    let started = Instant::now();
    let (waited, enqueued) = tokio::join!(other.wait_for_tasks(Duration::from_secs(5)), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        redis.queues.enqueue_retry(J, TaskId(1), W1, MINUTE).await
    });
    waited.unwrap();
    enqueued.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_racing_take_expired_never_hands_a_lease_out_twice() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    queue_tasks(&redis.queues, 1000).await;
    let mut leased = HashSet::new();
    for _ in 0..10 {
        for lease in redis
            .queues
            .lease_tasks(J, W1, 100, UNBOUNDED, Duration::ZERO)
            .await
            .unwrap()
        {
            leased.insert(lease.id);
        }
    }
    assert_eq!(leased.len(), 1000);
    let later = now_ms() + 1;
    let reapers: Vec<_> = [redis.another().await, redis.another().await]
        .into_iter()
        .map(|q| {
            tokio::spawn(async move {
                let mut taken = Vec::new();
                loop {
                    let batch = q.take_expired(later, 37).await.unwrap();
                    if batch.is_empty() {
                        return taken;
                    }
                    taken.extend(batch.into_iter().map(|l| l.id));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut counts = Vec::new();
    for reaper in reapers {
        let taken = reaper.await.unwrap();
        counts.push(taken.len());
        for id in taken {
            assert!(seen.insert(id), "lease {id} taken twice");
        }
    }
    assert_eq!(seen, leased);
    eprintln!("take_expired race: {counts:?}");
    assert_eq!(
        redis.queues.job_depth(J).await.unwrap(),
        JobDepth::default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_racing_settles_let_exactly_one_report_win() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    queue_tasks(&redis.queues, 500).await;
    let mut pairs = Vec::new();
    for _ in 0..5 {
        let leases = redis
            .queues
            .lease_tasks(J, W1, 100, UNBOUNDED, MINUTE)
            .await
            .unwrap();
        pairs.extend(leases.iter().map(|l| (l.id, l.worker)));
    }
    let reporters: Vec<_> = [redis.another().await, redis.another().await]
        .into_iter()
        .enumerate()
        .map(|(i, q)| {
            let mut pairs = pairs.clone();
            if i == 1 {
                pairs.reverse();
            }
            tokio::spawn(async move {
                let mut won = Vec::new();
                for batch in pairs.chunks(25) {
                    let settled = q.settle(batch).await.unwrap();
                    won.extend(settled.into_iter().flatten().map(|l| l.id));
                }
                won
            })
        })
        .collect();
    let mut winners = HashSet::new();
    for reporter in reporters {
        for id in reporter.await.unwrap() {
            assert!(winners.insert(id), "lease {id} settled twice");
        }
    }
    assert_eq!(winners.len(), 500);
    assert_eq!(redis.queues.job_depth(J).await.unwrap().leased, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_racing_lease_requests_never_hand_a_task_out_twice() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    queue_tasks(&redis.queues, 3000).await;
    let coordinators = [redis.another().await, redis.another().await];
    let mut requests = Vec::new();
    for (c, q) in coordinators.iter().enumerate() {
        for w in 0..2 {
            let q = q.clone();
            let worker = WorkerId(10 + 2 * c as i64 + w);
            requests.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let leases = q
                        .lease_tasks(J, worker, 100, UNBOUNDED, MINUTE)
                        .await
                        .unwrap();
                    if leases.is_empty() {
                        return got;
                    }
                    got.extend(leases);
                }
            }));
        }
    }
    let mut tasks = HashSet::new();
    let mut ids = HashSet::new();
    for request in requests {
        for lease in request.await.unwrap() {
            assert!(tasks.insert(lease.task), "task {} leased twice", lease.task);
            assert!(ids.insert(lease.id), "lease id {} reused", lease.id);
        }
    }
    assert_eq!(tasks.len(), 3000);
    assert_eq!(redis.queues.job_depth(J).await.unwrap().leased, 3000);

    // Replicated tasks: one worker asking through both coordinators at once still gets one
    // copy of each.
    const R: JobId = JobId(9);
    for task in 1..=200 {
        redis
            .queues
            .enqueue_replicas(R, TaskId(task), 3, &[], false)
            .await
            .unwrap();
    }
    let requests: Vec<_> = coordinators
        .iter()
        .map(|q| {
            let q = q.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let leases = q.lease_tasks(R, W1, 100, UNBOUNDED, MINUTE).await.unwrap();
                    if leases.is_empty() {
                        return got;
                    }
                    got.extend(leases);
                }
            })
        })
        .collect();
    let mut tasks = HashSet::new();
    for request in requests {
        for lease in request.await.unwrap() {
            assert!(
                tasks.insert(lease.task),
                "W1 got two copies of {}",
                lease.task
            );
        }
    }
    assert_eq!(tasks.len(), 200);
    assert_eq!(redis.queues.job_depth(R).await.unwrap().queued, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_racing_requests_of_one_worker_never_pass_its_slots() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    queue_tasks(&redis.queues, 100).await;
    let coordinators = [redis.another().await, redis.another().await];
    let requests: Vec<_> = (0..8)
        .map(|i| {
            let q = coordinators[i % 2].clone();
            tokio::spawn(async move { q.lease_tasks(J, W1, 3, 3, MINUTE).await.unwrap() })
        })
        .collect();
    let mut leased = 0;
    for request in requests {
        leased += request.await.unwrap().len();
    }
    assert_eq!(leased, 3, "eight requests at once, three slots");
    assert_eq!(redis.queues.leases_held(&[W1]).await.unwrap(), [3]);
}

#[tokio::test]
async fn redis_leaves_no_lease_keys_behind() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let q = &redis.queues;
    q.enqueue_tasks(J, &task_ids(1..=4), false).await.unwrap();
    q.enqueue_replicas(J, TaskId(5), 2, &[W3], false)
        .await
        .unwrap();
    let a = q.lease_tasks(J, W1, 2, UNBOUNDED, MINUTE).await.unwrap();
    let mut b = q
        .lease_tasks(J, W2, 2, UNBOUNDED, Duration::ZERO)
        .await
        .unwrap();
    // Equal deadlines come back in lease id order.
    b.sort_by_key(|l| l.id);
    let c = q.lease_tasks(J, W3, 10, UNBOUNDED, MINUTE).await.unwrap();
    q.renew(a[0].id, W1, MINUTE, Some(0.3)).await.unwrap();
    q.settle(&[(a[0].id, W1), (a[1].id, W1)]).await.unwrap();
    assert_eq!(q.take_expired(now_ms() + 1, 10).await.unwrap(), b);
    assert_eq!(q.revoke(W3).await.unwrap(), Vec::<Lease>::new());
    let d = q.lease_tasks(J, W1, 10, UNBOUNDED, MINUTE).await.unwrap();
    assert_eq!(tasks_of(&d), task_ids([5]));
    assert!(
        c.is_empty(),
        "W3 was excluded from task 5 and nothing else is left"
    );
    q.enqueue_retry(J, TaskId(1), W1, MINUTE).await.unwrap();
    q.drop_job(J).await.unwrap();
    assert_eq!(redis.keys().unwrap(), Vec::<String>::new());
}

/// Dispatch throughput of two coordinators sharing one Redis: lease 100, settle them, queue
/// them again; on a plain job, on one where a replicated task makes every lease request look at
/// each queued task, and on a plain job checking each lease with `held` first, as reports do.
/// Run with
/// `cargo test -p idlegrid-storage --release redis_throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn redis_throughput() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    const PLAIN: JobId = JobId(1);
    const REPLICATED: JobId = JobId(2);
    let coordinators = [redis.another().await, redis.another().await];
    const CHECKED: JobId = JobId(3);
    for job in [PLAIN, REPLICATED, CHECKED] {
        redis
            .queues
            .enqueue_tasks(job, &task_ids(1..=20_000), false)
            .await
            .unwrap();
        if job == REPLICATED {
            redis
                .queues
                .enqueue_replicas(job, TaskId(0), 1, &[WorkerId(0)], false)
                .await
                .unwrap();
        }
        let run_for = Duration::from_secs(5);
        let started = Instant::now();
        let mut loops = Vec::new();
        for (c, q) in coordinators.iter().enumerate() {
            for w in 0..8 {
                let q = q.clone();
                let worker = WorkerId(100 + 10 * c as i64 + w);
                loops.push(tokio::spawn(async move {
                    let mut done = 0u64;
                    while started.elapsed() < run_for {
                        let leases = q
                            .lease_tasks(job, worker, 100, UNBOUNDED, MINUTE)
                            .await
                            .unwrap();
                        if job == CHECKED {
                            for lease in &leases {
                                assert!(q.held(lease.id, worker).await.unwrap().is_some());
                            }
                        }
                        let pairs: Vec<_> = leases.iter().map(|l| (l.id, l.worker)).collect();
                        let settled = q.settle(&pairs).await.unwrap();
                        assert!(settled.iter().all(Option::is_some));
                        q.enqueue_tasks(job, &tasks_of(&leases), false)
                            .await
                            .unwrap();
                        done += leases.len() as u64;
                    }
                    done
                }));
            }
        }
        let mut total = 0;
        for l in loops {
            total += l.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let kind = match job {
            PLAIN => "plain job",
            REPLICATED => "replicated job",
            _ => "plain job, held() per task",
        };
        eprintln!(
            "redis queues, {kind}: {total} task lifecycles in {secs:.1} s = {:.0}/s \
             (2 coordinators, 16 loops, batches of 100)",
            total as f64 / secs
        );
    }
}
