//! Accounts on both backends: accounts and their standing, named secrets, devices benched by
//! their owners, quotas' usage, earnings and payouts.

use super::{new_job, principal_of, secret};
use crate::records::{
    AccountFilter, AccountKind, Benched, NewSecret, PayoutAsked, PayoutState, Principal, Quotas,
    Revoked, Settled, Standing, Store,
};
use idlegrid_domain::{Account, Capabilities, Credits, JobState, TenantId};

fn named(hash: [u8; 32], name: &str) -> NewSecret {
    NewSecret {
        name: name.into(),
        ..secret(hash)
    }
}

pub(super) async fn secrets_are_listed_revoked_and_rotated_and_standing_is_enforced(
    store: &dyn Store,
) {
    let acme = store
        .create_account(AccountKind::Customer, "Acme", None, &named([1; 32], "ci"))
        .await
        .unwrap()
        .expect("a new name makes an account");
    let twin = store
        .create_account(AccountKind::Customer, "Acme", None, &secret([2; 32]))
        .await
        .unwrap();
    assert_eq!(twin, None, "names are unique");
    assert_eq!(principal_of(store, [2; 32]).await, None, "nothing was made");
    let customer = Principal::Tenant(TenantId(acme));
    let credential = store.credential([1; 32]).await.unwrap().unwrap();
    assert_eq!(
        (
            credential.principal,
            credential.standing,
            credential.requests_per_sec
        ),
        (customer, Standing::Active, None)
    );

    // Several named keys; the last one cannot be revoked, only rotated.
    store
        .add_secret(customer, &named([3; 32], "laptop"))
        .await
        .unwrap();
    let listed = store.secrets(customer).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["ci", "laptop"]);
    assert_eq!(
        store.revoke_secret(customer, listed[0].id).await.unwrap(),
        Revoked::Revoked
    );
    assert_eq!(principal_of(store, [1; 32]).await, None);
    assert_eq!(
        store.revoke_secret(customer, listed[0].id).await.unwrap(),
        Revoked::NotFound
    );
    assert_eq!(
        store.revoke_secret(customer, listed[1].id).await.unwrap(),
        Revoked::LastKey
    );
    // Another account's secret is not found, whatever its id.
    let other = Principal::Tenant(store.ensure_tenant("other").await.unwrap());
    assert_eq!(
        store.revoke_secret(other, listed[1].id).await.unwrap(),
        Revoked::NotFound
    );
    assert_eq!(
        store
            .rotate_secret(other, listed[1].id, &secret([4; 32]))
            .await
            .unwrap(),
        None
    );
    let rotated = store
        .rotate_secret(customer, listed[1].id, &secret([5; 32]))
        .await
        .unwrap()
        .expect("its own key rotates");
    assert_eq!(
        principal_of(store, [3; 32]).await,
        None,
        "the old key is gone"
    );
    assert_eq!(principal_of(store, [5; 32]).await, Some(customer));
    let listed = store.secrets(customer).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id, listed[0].name.as_str()), (rotated, "laptop"));

    // Sessions expire, and do not count as keys.
    let expired = NewSecret {
        session_expires_at: Some(crate::now_ms() - 1),
        ..secret([6; 32])
    };
    store.add_secret(customer, &expired).await.unwrap();
    assert_eq!(principal_of(store, [6; 32]).await, None);
    let live = NewSecret {
        session_expires_at: Some(crate::now_ms() + 60_000),
        ..secret([7; 32])
    };
    let session = store.add_secret(customer, &live).await.unwrap();
    assert_eq!(store.secrets(customer).await.unwrap().len(), 2);
    assert_eq!(
        store.revoke_secret(customer, session).await.unwrap(),
        Revoked::Revoked
    );
    // A session made from a key ends with it.
    let child = NewSecret {
        session_expires_at: Some(crate::now_ms() + 60_000),
        parent: Some(rotated),
        ..secret([8; 32])
    };
    store.add_secret(customer, &child).await.unwrap();
    assert_eq!(
        store.credential([8; 32]).await.unwrap().unwrap().parent,
        Some(rotated)
    );
    let spare = store.add_secret(customer, &secret([9; 32])).await.unwrap();
    assert_eq!(
        store.revoke_secret(customer, rotated).await.unwrap(),
        Revoked::Revoked
    );
    assert_eq!(
        principal_of(store, [8; 32]).await,
        None,
        "the session went with its key"
    );
    let rotated = spare;
    store.touch_secrets(&[(rotated, 9_000)]).await.unwrap();

    store.touch_secrets(&[(rotated, 8_000)]).await.unwrap();
    let listed = store.secrets(customer).await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(9_000), "never moves back");

    // Quotas, and standing: suspended accounts are found with their standing, and listed by it.
    let quotas = Quotas {
        max_running_jobs: Some(2),
        max_stored_bytes: None,
        requests_per_sec: Some(5),
    };
    assert!(store.set_quotas(TenantId(acme), &quotas).await.unwrap());
    let credential = store.credential([9; 32]).await.unwrap().unwrap();
    assert_eq!(credential.requests_per_sec, Some(5));
    assert!(
        store
            .set_suspended(AccountKind::Customer, acme, true)
            .await
            .unwrap()
    );
    let credential = store.credential([9; 32]).await.unwrap().unwrap();
    assert_eq!(credential.standing, Standing::Suspended);
    let suspended = AccountFilter {
        standing: Some(Standing::Suspended),
        limit: 10,
        ..Default::default()
    };
    let listed = store
        .accounts(AccountKind::Customer, &suspended)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id, listed[0].quotas), (acme, quotas));
    let by_name = AccountFilter {
        name: Some("acm".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        store
            .accounts(AccountKind::Customer, &by_name)
            .await
            .unwrap()
            .len(),
        1,
        "any case, part of the name"
    );
    let wildcard = AccountFilter {
        name: Some("%".into()),
        limit: 10,
        ..Default::default()
    };
    assert!(
        store
            .accounts(AccountKind::Customer, &wildcard)
            .await
            .unwrap()
            .is_empty(),
        "a LIKE wildcard in a filter is plain text"
    );
    assert!(
        store
            .set_suspended(AccountKind::Customer, acme, false)
            .await
            .unwrap()
    );

    // Deleting: the secrets go, the row stays (listed only when asked for).
    assert!(
        store
            .delete_account(AccountKind::Customer, acme)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_account(AccountKind::Customer, acme)
            .await
            .unwrap()
    );
    assert_eq!(principal_of(store, [9; 32]).await, None);
    let all = AccountFilter {
        limit: 10,
        ..Default::default()
    };
    let listed = store.accounts(AccountKind::Customer, &all).await.unwrap();
    assert!(listed.iter().all(|a| a.id != acme));
    let deleted = AccountFilter {
        standing: Some(Standing::Deleted),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        store
            .accounts(AccountKind::Customer, &deleted)
            .await
            .unwrap()[0]
            .id,
        acme
    );
    assert!(
        !store
            .set_suspended(AccountKind::Customer, acme, true)
            .await
            .unwrap()
    );
}

pub(super) async fn owners_bench_devices_and_payouts_never_exceed_the_balance(store: &dyn Store) {
    let alice = store
        .create_account(AccountKind::Owner, "alice", None, &secret([10; 32]))
        .await
        .unwrap()
        .unwrap();
    let bob = store.ensure_owner("bob").await.unwrap();
    let caps = Capabilities::default();
    let laptop = store
        .register_worker(alice, "laptop", &caps, [11; 32])
        .await
        .unwrap();
    assert!(store.benched_workers().await.unwrap().is_empty());
    // Only the owner's own devices change.
    assert!(!store.set_device_paused(bob, laptop, true).await.unwrap());
    assert!(!store.rename_device(bob, laptop, "mine").await.unwrap());
    assert!(!store.remove_device(bob, laptop).await.unwrap());
    assert!(store.set_device_paused(alice, laptop, true).await.unwrap());
    assert_eq!(
        store.benched_workers().await.unwrap(),
        [(laptop, Benched::Paused)]
    );
    assert!(store.owner_devices(alice).await.unwrap()[0].paused);
    assert!(store.set_device_paused(alice, laptop, false).await.unwrap());
    assert!(store.rename_device(alice, laptop, "study").await.unwrap());
    assert_eq!(store.owner_devices(alice).await.unwrap()[0].name, "study");
    // A suspended owner's devices are benched and their tokens stand suspended.
    assert!(
        store
            .set_suspended(AccountKind::Owner, alice, true)
            .await
            .unwrap()
    );
    assert_eq!(
        store.benched_workers().await.unwrap(),
        [(laptop, Benched::OwnerSuspended)]
    );
    assert_eq!(
        store.credential([11; 32]).await.unwrap().unwrap().standing,
        Standing::Suspended
    );
    assert!(
        store
            .set_suspended(AccountKind::Owner, alice, false)
            .await
            .unwrap()
    );
    let (devices, _, _): (Vec<_>, Vec<_>, Vec<_>) = store
        .grid_devices(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(d, o, n)| (d.id, o, n))
        .fold((vec![], vec![], vec![]), |mut acc, (d, o, n)| {
            acc.0.push(d);
            acc.1.push(o);
            acc.2.push(n);
            acc
        });
    assert_eq!(devices, [laptop]);

    // Payouts: never more than the balance less what is already asked for.
    store
        .transfer(
            "grant:alice",
            Account::PlatformGrants,
            Account::Owner(alice),
            Credits(10),
        )
        .await
        .unwrap();
    let PayoutAsked::Asked(first) = store.request_payout(alice, Credits(6)).await.unwrap() else {
        panic!("6 of 10 may be asked for");
    };
    assert_eq!(
        store.request_payout(alice, Credits(5)).await.unwrap(),
        PayoutAsked::Exceeds {
            available: Credits(4)
        }
    );
    assert!(matches!(
        store.request_payout(alice, Credits(0)).await.unwrap(),
        PayoutAsked::Exceeds { .. }
    ));
    let PayoutAsked::Asked(second) = store.request_payout(alice, Credits(4)).await.unwrap() else {
        panic!("4 more may be asked for");
    };
    assert_eq!(store.payouts_requested(alice).await.unwrap(), Credits(10));
    assert_eq!(store.payouts_requested(bob).await.unwrap(), Credits(0));
    let Settled::Done(paid) = store
        .settle_payout(first.id, true, Some("wire 7"), None)
        .await
        .unwrap()
    else {
        panic!("a requested payout settles");
    };
    assert_eq!(
        (
            paid.state,
            paid.reference.as_deref(),
            paid.owner_name.as_str()
        ),
        (PayoutState::Paid, Some("wire 7"), "alice")
    );
    assert!(matches!(
        store
            .settle_payout(first.id, true, None, None)
            .await
            .unwrap(),
        Settled::AlreadySettled(_)
    ));
    assert_eq!(
        store.settle_payout(999, true, None, None).await.unwrap(),
        Settled::NotFound
    );
    assert_eq!(
        store
            .balances(&[Account::Owner(alice), Account::Payouts])
            .await
            .unwrap(),
        [Credits(4), Credits(6)]
    );
    // The balance went elsewhere meanwhile: paying would overdraw it, so nothing moves.
    store
        .transfer(
            "adjust:alice",
            Account::Owner(alice),
            Account::PlatformGrants,
            Credits(3),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .settle_payout(second.id, true, None, None)
            .await
            .unwrap(),
        Settled::Exceeds {
            balance: Credits(1)
        }
    );
    let Settled::Done(refused) = store
        .settle_payout(second.id, false, None, Some("balance changed"))
        .await
        .unwrap()
    else {
        panic!("a requested payout may be refused");
    };
    assert_eq!(refused.state, PayoutState::Refused);
    assert_eq!(
        store.balances(&[Account::Owner(alice)]).await.unwrap(),
        [Credits(1)]
    );
    let requested = store
        .payouts(None, Some(PayoutState::Requested), 10)
        .await
        .unwrap();
    assert!(requested.is_empty());
    assert_eq!(store.payouts(Some(alice), None, 10).await.unwrap().len(), 2);
    let audit = store.audit_ledger().await.unwrap();
    assert_eq!((audit.total, audit.unbalanced), (Credits(0), 0));
    let history = store.earnings(alice, None, 10).await.unwrap();
    let txns: Vec<&str> = history.iter().map(|e| e.txn.as_str()).collect();
    assert_eq!(txns, ["adjust:alice", "payout:1", "grant:alice"]);
    let older = store
        .earnings(alice, Some(history[1].id), 10)
        .await
        .unwrap();
    assert_eq!(older.len(), 1, "pages go back from `before`");

    // Removing a device revokes its token; deleting the owner revokes theirs.
    assert!(store.remove_device(alice, laptop).await.unwrap());
    assert_eq!(
        store.benched_workers().await.unwrap(),
        [(laptop, Benched::Removed)]
    );
    assert_eq!(principal_of(store, [11; 32]).await, None);
    assert!(store.owner_devices(alice).await.unwrap().is_empty());
    assert!(
        store
            .delete_account(AccountKind::Owner, alice)
            .await
            .unwrap()
    );
    assert_eq!(principal_of(store, [10; 32]).await, None);
}

pub(super) async fn usage_counts_jobs_submitted_and_bytes_kept(store: &dyn Store) {
    let tenant = store.ensure_tenant("busy").await.unwrap();
    assert_eq!(store.usage(tenant).await.unwrap().running_jobs, 0);
    let created = store.create_job(&new_job(tenant)).await.unwrap();
    let submitted = store.create_job(&new_job(tenant)).await.unwrap();
    store
        .transition_job(submitted.id, JobState::Submitted, None)
        .await
        .unwrap();
    let usage = store.usage(tenant).await.unwrap();
    assert_eq!(usage.running_jobs, 1, "a job counts once submitted");
    let jobs = store
        .grid_jobs(Some(tenant), Some(JobState::Submitted), None, 10)
        .await
        .unwrap();
    assert_eq!(
        jobs.iter()
            .map(|(j, n)| (j.id, n.as_str()))
            .collect::<Vec<_>>(),
        [(submitted.id, "busy")]
    );
    let all = store.grid_jobs(None, None, None, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|(j, _)| j.id).collect::<Vec<_>>(),
        [submitted.id, created.id]
    );
    store
        .transition_job(submitted.id, JobState::Cancelled, None)
        .await
        .unwrap();
    assert_eq!(store.usage(tenant).await.unwrap().running_jobs, 0);
    // Only jobs that never ran are deleted, and only by their own customer.
    let other = store.ensure_tenant("other").await.unwrap();
    assert!(
        store
            .delete_unrun_job(other, created.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .delete_unrun_job(tenant, submitted.id)
            .await
            .unwrap()
            .is_none()
    );
    let deleted = store.delete_unrun_job(tenant, created.id).await.unwrap();
    assert_eq!(deleted.map(|j| j.id), Some(created.id));
    assert!(store.job(created.id).await.unwrap().is_none());
    assert!(store.webhook_events(created.id).await.unwrap().is_empty());
}
