//! The payment rules, worked out here once for both backends: what a verdict batch pays for the
//! results it accepted, what a revoked result gives back, and when held earnings mature.
//!
//! Each result is priced: its chunk's work at the job's rates, rounded up to a micro-credit;
//! the charge is taken from the job's hold but never past its quote (results in id order, each
//! capped by what the quote has left), the owner earns the full earning, and the platform's fee
//! is the difference. A result earns only when it is the chunk's output, or an agreeing replica
//! of a replicated chunk. A result accepted without an independent party's agreement (on the
//! open grid) earns into its owner's held account, not their balance: held earnings mature
//! after the grid's hold period and are forfeited if the owner is caught forging first. The
//! batch posts one transaction per job, device and kind of earning, `pay:<its first result
//! id>`: each result is accepted exactly once, so the key is unique, and a repeated posting of
//! the same transaction changes nothing.

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
    /// Whether another party returned the same bytes (or the job runs on its customer's own
    /// devices): otherwise its earning is held.
    pub verified: bool,
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

impl Payments {
    /// Adds transaction `txn`'s rows (account, amount, device), leaving out those of nothing.
    fn post(&mut self, txn: &str, rows: [(String, i64, Option<i64>); 3]) {
        for (account, amount, worker) in rows {
            if amount != 0 {
                self.entries.push(Entry {
                    txn: txn.to_string(),
                    account,
                    amount,
                    worker,
                });
            }
        }
    }
}

/// Micro-credits for `work_ms` at `per_core_hour`, rounded up.
pub(super) fn price(per_core_hour: i64, work_ms: i64) -> i64 {
    let exact = i128::from(per_core_hour.max(0)) * i128::from(work_ms.max(0));
    i64::try_from((exact + 3_599_999) / 3_600_000).unwrap_or(i64::MAX)
}

/// One transaction of a batch: a job, a device, and whether its results were verified.
type Group = (i64, i64, bool);
/// A transaction's first result, charge, earning and owner.
type Sums = (i64, i64, i64, i64);

/// The payments for `accepted` (any order).
pub(super) fn payments(accepted: &[Accepted]) -> Payments {
    let mut sorted: Vec<&Accepted> = accepted
        .iter()
        .filter(|a| a.valid || a.replicas > 1)
        .collect();
    sorted.sort_by_key(|a| a.result);
    // What each job's quote has left, as the batch charges it.
    let mut left: BTreeMap<i64, i64> = BTreeMap::new();
    let mut groups: BTreeMap<Group, Sums> = BTreeMap::new();
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
            .entry((a.job, a.worker, a.verified))
            .or_insert((a.result, 0, 0, a.owner));
        group.1 += charge;
        group.2 += earning;
        *out.charged.entry(a.job).or_default() += charge;
    }
    for ((job, worker, verified), (first, charge, earning, owner)) in groups {
        let txn = format!("pay:{first}");
        let earns = if verified {
            Account::Owner(owner)
        } else {
            Account::Held(owner)
        };
        out.post(
            &txn,
            [
                (Account::Job(JobId(job)).to_string(), -charge, None),
                (earns.to_string(), earning, Some(worker)),
                (Account::PlatformFee.to_string(), charge - earning, None),
            ],
        );
    }
    out.charged.retain(|_, amount| *amount != 0);
    out
}

/// A result accepted without verification whose owner was caught forging: the chunk runs
/// again, so what the result was charged goes back to its job (never more than the job was
/// charged) and its earning leaves the owner's held account. Rates are `None` for a job that
/// was never priced (nothing was paid).
#[derive(Debug, Clone)]
pub(super) struct Revoked {
    pub result: i64,
    pub worker: i64,
    pub owner: i64,
    pub job: i64,
    pub work_ms: i64,
    pub price_per_core_hour: Option<i64>,
    pub owner_per_core_hour: Option<i64>,
    /// What the job's results were charged before.
    pub charged: i64,
}

/// The transactions giving back what `revoked` results were paid, `revoked:<result id>`
/// each, and what each job's charge drops by.
pub(super) fn reversals(revoked: &[Revoked]) -> Payments {
    let mut out = Payments::default();
    let mut left: BTreeMap<i64, i64> = BTreeMap::new();
    for r in revoked {
        let (Some(rate), Some(owner_rate)) = (r.price_per_core_hour, r.owner_per_core_hour) else {
            continue;
        };
        let charged = left.entry(r.job).or_insert(r.charged);
        let charge = price(rate, r.work_ms).min(*charged);
        *charged -= charge;
        let earning = price(owner_rate, r.work_ms);
        let txn = format!("revoked:{}", r.result);
        out.post(
            &txn,
            [
                (Account::Job(JobId(r.job)).to_string(), charge, None),
                (Account::Held(r.owner).to_string(), -earning, Some(r.worker)),
                (Account::PlatformFee.to_string(), earning - charge, None),
            ],
        );
        *out.charged.entry(r.job).or_default() -= charge;
    }
    out.charged.retain(|_, amount| *amount != 0);
    out
}

/// Held earnings of one device: what was credited since the last maturing, up to the cut-off,
/// and what its held account holds now.
#[derive(Debug, Clone)]
pub(super) struct Holding {
    pub owner: i64,
    pub worker: i64,
    pub credited: i64,
    pub balance: i64,
}

/// The transactions moving matured held earnings to their owners' balances: what was credited
/// before the cut-off, but never more than is still held (a forfeit took it), one transaction
/// per device, `matured:<upto>:<worker>` (`upto` being the last journal row the cut-off
/// covers, so a repeated maturing posts nothing twice).
pub(super) fn maturing(upto: i64, holdings: &[Holding]) -> Vec<Entry> {
    let mut out = Vec::new();
    for h in holdings {
        let amount = h.credited.min(h.balance);
        if amount <= 0 {
            continue;
        }
        let txn = format!("matured:{upto}:{}", h.worker);
        out.push(Entry {
            txn: txn.clone(),
            account: Account::Held(h.owner).to_string(),
            amount: -amount,
            worker: Some(h.worker),
        });
        out.push(Entry {
            txn,
            account: Account::Owner(h.owner).to_string(),
            amount,
            worker: Some(h.worker),
        });
    }
    out
}

/// The transaction taking what an owner's devices still hold (`balances`: worker, held
/// amount) to the platform, `forfeit:<owner>:<at>`.
pub(super) fn forfeits(owner: i64, at: i64, balances: &[(i64, i64)]) -> Vec<Entry> {
    let txn = format!("forfeit:{owner}:{at}");
    let mut out: Vec<Entry> = balances
        .iter()
        .filter(|(_, amount)| *amount > 0)
        .map(|&(worker, amount)| Entry {
            txn: txn.clone(),
            account: Account::Held(owner).to_string(),
            amount: -amount,
            worker: Some(worker),
        })
        .collect();
    let total: i64 = out.iter().map(|e| -e.amount).sum();
    if total > 0 {
        out.push(Entry {
            txn,
            account: Account::PlatformForfeits.to_string(),
            amount: total,
            worker: None,
        });
    }
    out
}

/// What `entries` credit in all (the sum of their positive rows).
pub(super) fn credited(entries: &[Entry]) -> i64 {
    entries.iter().map(|e| e.amount.max(0)).sum()
}

/// What distrusting an owner did: its reopened chunks (`tasks`: task, job), each to be queued
/// kept from the owner's `devices`, and what `forfeits` took.
pub(super) fn distrusted(
    tasks: &[(i64, i64)],
    devices: &[i64],
    forfeits: &[Entry],
) -> super::Distrusted {
    let exclude: Vec<idlegrid_domain::WorkerId> = devices
        .iter()
        .map(|&w| idlegrid_domain::WorkerId(w))
        .collect();
    super::Distrusted {
        reopened: tasks
            .iter()
            .map(|&(task, job)| super::Replicate {
                task: idlegrid_domain::TaskId(task),
                job: JobId(job),
                copies: 1,
                exclude: exclude.clone(),
            })
            .collect(),
        forfeited: idlegrid_domain::Credits(
            forfeits
                .iter()
                .filter(|e| e.account == Account::PlatformForfeits.to_string())
                .map(|e| e.amount)
                .sum(),
        ),
    }
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
            verified: true,
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
    fn unverified_earnings_are_held_and_mature_or_go() {
        let mut alone = accepted(5, 3, 10);
        alone.verified = false;
        let p = payments(&[alone, accepted(6, 3, 10)]);
        // Two transactions for one device and job: its held and its paid earnings.
        let held: Vec<&Entry> = p.entries.iter().filter(|e| e.account == "held:7").collect();
        assert_eq!(
            (held.len(), held[0].amount, &held[0].txn[..]),
            (1, 700, "pay:5")
        );
        assert!(
            p.entries
                .iter()
                .any(|e| e.account == "owner:7" && e.txn == "pay:6")
        );
        assert_eq!(sum(&p, "pay:5") + sum(&p, "pay:6"), 0);
        // Maturing: no more than is still held.
        let m = maturing(
            42,
            &[
                Holding {
                    owner: 7,
                    worker: 3,
                    credited: 700,
                    balance: 300,
                },
                Holding {
                    owner: 7,
                    worker: 4,
                    credited: 500,
                    balance: 0,
                },
            ],
        );
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].amount, m[1].amount, &m[1].account[..]),
            (-300, 300, "owner:7")
        );
        // Forfeits take what is held, to the platform.
        let f = forfeits(7, 99, &[(3, 300), (4, 0)]);
        assert_eq!(f.len(), 2);
        assert_eq!(f.iter().map(|e| e.amount).sum::<i64>(), 0);
        assert_eq!(f[1].account, "platform:forfeits");
    }

    #[test]
    fn a_revoked_result_gives_back_its_charge_and_earning() {
        let r = Revoked {
            result: 9,
            worker: 3,
            owner: 7,
            job: 10,
            work_ms: 3_600_000,
            price_per_core_hour: Some(1_000),
            owner_per_core_hour: Some(700),
            charged: 1_500,
        };
        let p = reversals(&[r.clone(), Revoked { result: 10, ..r }]);
        assert_eq!(sum(&p, "revoked:9"), 0);
        // The second gives back only what is left of the job's charge.
        assert_eq!(p.charged, BTreeMap::from([(10, -1_500)]));
        let job: i64 = p
            .entries
            .iter()
            .filter(|e| e.account == "job:10")
            .map(|e| e.amount)
            .sum();
        assert_eq!(job, 1_500);
    }

    #[test]
    fn prices_round_up_to_a_micro_credit() {
        assert_eq!(price(1_000, 1), 1);
        assert_eq!(price(1_000, 0), 0);
        assert_eq!(price(3_600_000, 1), 1);
        assert_eq!(price(i64::MAX, i64::MAX), i64::MAX);
    }
}
