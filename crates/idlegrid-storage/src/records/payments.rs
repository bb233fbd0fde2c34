//! What a verdict batch pays for the results it accepted, worked out once for the backends that
//! post payments per batch (SQLite; PostgreSQL still pays each result by trigger).
//!
//! Each result is priced as before: its chunk's work at the job's rates, rounded up to a
//! micro-credit; the charge is taken from the job's hold but never past its quote (results in
//! id order, each capped by what the quote has left), the owner earns the full earning, and
//! the platform's fee is the difference. A result earns only when it is the chunk's output, or
//! an agreeing replica of a replicated chunk. The batch then posts one transaction per job and
//! device, `pay:<its first result id>`: each result is accepted exactly once, so the key is
//! unique, and a repeated posting of the same transaction changes nothing.

use idlegrid_domain::{Account, JobId};
use std::collections::BTreeMap;

/// One result the batch accepted, with what pricing it needs.
#[derive(Debug, Clone)]
pub(super) struct Accepted {
    pub result: i64,
    pub worker: i64,
    pub owner: i64,
    pub job: i64,
    pub work_ms: i64,
    /// `valid` (the chunk's output) rather than `redundant` (agreeing with it).
    pub valid: bool,
    pub replicas: i64,
    pub price_per_core_hour: i64,
    pub owner_per_core_hour: i64,
    pub quote: i64,
    /// What the job's results were charged before this batch.
    pub charged: i64,
    /// Whether the job already ended (its hold went back: nothing more is charged).
    pub job_final: bool,
}

/// A journal row to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub txn: String,
    pub account: String,
    pub amount: i64,
    /// The device an owner's earning came from.
    pub worker: Option<i64>,
}

/// The rows to post, and what each job's charge grows by.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Payments {
    pub entries: Vec<Entry>,
    pub charged: BTreeMap<i64, i64>,
}

/// Micro-credits for `work_ms` at `per_core_hour`, rounded up.
fn price(per_core_hour: i64, work_ms: i64) -> i64 {
    let exact = i128::from(per_core_hour.max(0)) * i128::from(work_ms.max(0));
    i64::try_from((exact + 3_599_999) / 3_600_000).unwrap_or(i64::MAX)
}

/// The payments for `accepted` (any order).
pub(super) fn payments(accepted: &[Accepted]) -> Payments {
    let mut sorted: Vec<&Accepted> = accepted
        .iter()
        .filter(|a| a.valid || a.replicas > 1)
        .collect();
    sorted.sort_by_key(|a| a.result);
    // What each job's quote has left, as the batch charges it.
    let mut left: BTreeMap<i64, i64> = BTreeMap::new();
    // (job, worker) → (first result, charge, earning, owner)
    let mut groups: BTreeMap<(i64, i64), (i64, i64, i64, i64)> = BTreeMap::new();
    let mut out = Payments::default();
    for a in sorted {
        let remaining = left.entry(a.job).or_insert(if a.job_final {
            0
        } else {
            (a.quote - a.charged).max(0)
        });
        let charge = price(a.price_per_core_hour, a.work_ms).min(*remaining);
        *remaining -= charge;
        let earning = price(a.owner_per_core_hour, a.work_ms);
        let group = groups
            .entry((a.job, a.worker))
            .or_insert((a.result, 0, 0, a.owner));
        group.1 += charge;
        group.2 += earning;
        *out.charged.entry(a.job).or_default() += charge;
    }
    for ((job, worker), (first, charge, earning, owner)) in groups {
        let txn = format!("pay:{first}");
        let rows = [
            (Account::Job(JobId(job)).to_string(), -charge, None),
            (Account::Owner(owner).to_string(), earning, Some(worker)),
            (Account::PlatformFee.to_string(), charge - earning, None),
        ];
        for (account, amount, worker) in rows {
            if amount != 0 {
                out.entries.push(Entry {
                    txn: txn.clone(),
                    account,
                    amount,
                    worker,
                });
            }
        }
    }
    out.charged.retain(|_, amount| *amount != 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(result: i64, worker: i64, job: i64) -> Accepted {
        Accepted {
            result,
            worker,
            owner: 7,
            job,
            work_ms: 3_600_000,
            valid: true,
            replicas: 1,
            price_per_core_hour: 1_000,
            owner_per_core_hour: 700,
            quote: 10_000,
            charged: 0,
            job_final: false,
        }
    }

    fn sum(p: &Payments, txn: &str) -> i64 {
        p.entries
            .iter()
            .filter(|e| e.txn == txn)
            .map(|e| e.amount)
            .sum()
    }

    #[test]
    fn one_transaction_per_job_and_device_each_summing_to_zero() {
        let p = payments(&[
            accepted(3, 1, 10),
            accepted(1, 1, 10),
            accepted(2, 2, 10),
            accepted(4, 1, 11),
        ]);
        let txns: std::collections::BTreeSet<&str> =
            p.entries.iter().map(|e| e.txn.as_str()).collect();
        assert_eq!(
            txns.into_iter().collect::<Vec<_>>(),
            vec!["pay:1", "pay:2", "pay:4"]
        );
        for txn in ["pay:1", "pay:2", "pay:4"] {
            assert_eq!(sum(&p, txn), 0, "{txn}: {:?}", p.entries);
        }
        let owner_of_1: Vec<&Entry> = p
            .entries
            .iter()
            .filter(|e| e.txn == "pay:1" && e.account == "owner:7")
            .collect();
        assert_eq!(owner_of_1.len(), 1);
        assert_eq!(
            (owner_of_1[0].amount, owner_of_1[0].worker),
            (1_400, Some(1))
        );
        assert_eq!(p.charged, BTreeMap::from([(10, 3_000), (11, 1_000)]));
    }

    #[test]
    fn the_quote_caps_charges_in_result_order_and_owners_earn_in_full() {
        let mut a = accepted(1, 1, 10);
        a.quote = 1_500;
        a.charged = 200;
        let mut b = a.clone();
        b.result = 2;
        b.worker = 2;
        let p = payments(&[b, a]);
        // 1,300 left: result 1 takes 1,000, result 2 the other 300.
        assert_eq!(p.charged, BTreeMap::from([(10, 1_300)]));
        let fee: i64 = p
            .entries
            .iter()
            .filter(|e| e.account == "platform:fee")
            .map(|e| e.amount)
            .sum();
        assert_eq!(fee, 1_300 - 1_400);
        assert_eq!(sum(&p, "pay:2"), 0);
    }

    #[test]
    fn superseded_and_ended_jobs_results_are_not_charged() {
        let mut redundant = accepted(1, 1, 10);
        redundant.valid = false;
        assert_eq!(payments(&[redundant.clone()]), Payments::default());
        redundant.replicas = 2;
        assert_eq!(payments(&[redundant]).charged[&10], 1_000);
        let mut ended = accepted(2, 1, 10);
        ended.job_final = true;
        let p = payments(&[ended]);
        assert!(p.charged.is_empty());
        // The owner is still paid, by the platform.
        assert_eq!(sum(&p, "pay:2"), 0);
        assert!(
            p.entries
                .iter()
                .any(|e| e.account == "owner:7" && e.amount == 700)
        );
    }

    #[test]
    fn prices_round_up_to_a_micro_credit() {
        assert_eq!(price(1_000, 1), 1);
        assert_eq!(price(1_000, 0), 0);
        assert_eq!(price(3_600_000, 1), 1);
        assert_eq!(price(i64::MAX, i64::MAX), i64::MAX);
    }
}
