//! Accounts for a public grid: operators' customers and owners, every account's named keys,
//! suspension and deletion, owners' devices and payouts, customers' quotas, and sign-up.

use crate::harness::*;
use idlegrid_api::accounts::{
    DeviceChange, DeviceStatus, EarningKind, NewOwner, PayoutState, SecretKind, Signup, SignupKind,
};
use idlegrid_api::admin::{AccountChange, AccountState, NewCustomer, Quotas, Settlement};
use idlegrid_api::tasks::LeaseRequest;
use idlegrid_api::{Credits, JobState};
use idlegrid_client::{AccountListing, Client};
use idlegrid_coordinator::config::SignupOpen;

fn operator(grid: &TestGrid) -> Client {
    Client::new(&grid.url, &grid.credentials.operator_key).unwrap()
}

/// A new customer made by the operator, and a client with its key.
async fn new_customer(grid: &TestGrid, name: &str) -> (idlegrid_api::TenantId, Client) {
    let (id, client, _) = new_customer_with_key(grid, name).await;
    (id, client)
}

/// A new customer made by the operator, a client with its key, and the key.
async fn new_customer_with_key(
    grid: &TestGrid,
    name: &str,
) -> (idlegrid_api::TenantId, Client, String) {
    let created = operator(grid)
        .create_customer(&NewCustomer {
            name: name.into(),
            quotas: Quotas::default(),
        })
        .await
        .unwrap();
    let client = Client::new(&grid.url, &created.api_key).unwrap();
    (created.customer.id, client, created.api_key)
}

#[tokio::test]
async fn operators_create_customers_whose_keys_work_and_whose_names_are_unique() {
    let grid = TestGrid::start(|_| {}).await;
    let (id, acme) = new_customer(&grid, "Acme Films").await;
    let me = acme.whoami().await.unwrap();
    assert_eq!((me.id, me.name.as_deref()), (id.0, Some("Acme Films")));
    assert_eq!(
        acme.balance().await.unwrap().balance,
        grid.grid.config.opening_credit,
        "a new customer gets the opening credit"
    );
    let op = operator(&grid);
    let twin = op
        .create_customer(&NewCustomer {
            name: "Acme Films".into(),
            quotas: Quotas::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(api_code(twin), (409, "name_taken".into()));
    for bad in ["", "   ", "bell\u{7}", "rtl\u{202e}txt"] {
        let refused = op
            .create_customer(&NewCustomer {
                name: bad.into(),
                quotas: Quotas::default(),
            })
            .await
            .unwrap_err();
        assert_eq!(api_code(refused), (422, "invalid_name".into()), "{bad:?}");
    }
    // A customer is no operator.
    let refused = acme
        .customers(&AccountListing::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(refused).0, 403);
    let listed = op
        .customers(&AccountListing {
            name: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .customers;
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id, listed[0].state), (id, AccountState::Active));
    let owner = op
        .create_owner_account(&NewOwner {
            name: "Studio fleet".into(),
            customer: Some(id),
        })
        .await
        .unwrap();
    let owners = op.owners(&AccountListing::default()).await.unwrap().owners;
    assert!(
        owners
            .iter()
            .any(|o| o.id == owner.id && o.customer == Some(id))
    );
    grid.stop().await;
}

#[tokio::test]
async fn an_account_makes_lists_revokes_and_rotates_its_keys() {
    let grid = TestGrid::start(|_| {}).await;
    let (_, first) = new_customer(&grid, "keys").await;
    let listed = first.secrets().await.unwrap().secrets;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].current, "the key this request used is marked");
    let made = first.create_secret("ci runner").await.unwrap();
    assert!(made.secret.starts_with(&made.info.prefix));
    assert!(made.secret.starts_with("igk_"));
    let ci = Client::new(&grid.url, &made.secret).unwrap();
    ci.whoami().await.unwrap();
    let listed = first.secrets().await.unwrap();
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains(&made.secret), "a secret is shown once");
    let names: Vec<&str> = listed.secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["first key", "ci runner"]);

    // Revoked: refused on its very next request.
    first.revoke_secret(made.info.id).await.unwrap();
    let refused = ci.whoami().await.unwrap_err();
    assert_eq!(api_code(refused), (401, "invalid_credentials".into()));
    let again = first.revoke_secret(made.info.id).await.unwrap_err();
    assert_eq!(api_code(again), (404, "no_such_secret".into()));
    // The last key cannot be revoked; rotating replaces it in one step.
    let own = first.secrets().await.unwrap().secrets[0].id;
    let last = first.revoke_secret(own).await.unwrap_err();
    assert_eq!(api_code(last), (409, "last_key".into()));
    let rotated = first.rotate_secret(own).await.unwrap();
    assert_eq!(rotated.info.name, "first key");
    assert_eq!(api_code(first.whoami().await.unwrap_err()).0, 401);
    let second = Client::new(&grid.url, &rotated.secret).unwrap();
    second.whoami().await.unwrap();
    // Another account's secrets are out of reach, whatever their ids.
    let default = grid.customer();
    let theirs = second.secrets().await.unwrap().secrets[0].id;
    let refused = default.revoke_secret(theirs).await.unwrap_err();
    assert_eq!(api_code(refused).0, 404);
    let refused = default.rotate_secret(theirs).await.unwrap_err();
    assert_eq!(api_code(refused).0, 404);
    // A worker's token manages no secrets.
    let worker = grid.worker("w").await;
    assert_eq!(api_code(worker.secrets().await.unwrap_err()).0, 403);
    // Dashboard sessions are listed as such and expire.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/sessions", grid.url))
        .bearer_auth(&rotated.secret)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let session: idlegrid_api::accounts::CreatedSecret = response.json().await.unwrap();
    assert!(session.secret.starts_with("igs_"));
    assert_eq!(session.info.kind, SecretKind::Session);
    assert!(session.info.expires_at.is_some());
    Client::new(&grid.url, &session.secret)
        .unwrap()
        .whoami()
        .await
        .unwrap();
    grid.stop().await;
}

#[tokio::test]
async fn suspended_and_deleted_accounts_are_refused_and_a_deleted_customers_jobs_end() {
    let grid = TestGrid::start(|_| {}).await;
    let op = operator(&grid);
    let default_id = grid.customer().whoami().await.unwrap().id;
    let job = grid.submit("a\nb\n", 1, 3).await;
    let suspend = AccountChange {
        suspended: Some(true),
        quotas: None,
    };
    let changed = op
        .change_customer(idlegrid_api::TenantId(default_id), &suspend)
        .await
        .unwrap();
    assert_eq!(changed.state, AccountState::Suspended);
    let refused = grid.customer().job(job.id).await.unwrap_err();
    assert_eq!(api_code(refused), (403, "account_suspended".into()));
    let resume = AccountChange {
        suspended: Some(false),
        quotas: None,
    };
    op.change_customer(idlegrid_api::TenantId(default_id), &resume)
        .await
        .unwrap();
    grid.customer().job(job.id).await.unwrap();

    op.delete_customer(idlegrid_api::TenantId(default_id))
        .await
        .unwrap();
    let refused = grid.customer().job(job.id).await.unwrap_err();
    assert_eq!(api_code(refused).0, 401);
    let record = grid.grid.store.job(job.id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Cancelled);
    let deleted = op
        .customers(&AccountListing {
            state: Some(AccountState::Deleted),
            ..Default::default()
        })
        .await
        .unwrap()
        .customers;
    assert_eq!(deleted.len(), 1);
    let again = op
        .delete_customer(idlegrid_api::TenantId(default_id))
        .await
        .unwrap_err();
    assert_eq!(api_code(again).0, 404);

    // A suspended owner's devices are refused too.
    let token = grid.owner("lender").await;
    let device = grid.device_with(&token, "box").await;
    let lender = Client::new(&grid.url, &token).unwrap();
    let owner_id = lender.whoami().await.unwrap().id;
    op.change_owner(owner_id, &suspend).await.unwrap();
    let refused = device
        .lease(&LeaseRequest {
            max_tasks: 1,
            wait_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(api_code(refused), (403, "account_suspended".into()));
    assert_eq!(api_code(lender.owner_devices().await.unwrap_err()).0, 403);
    let quotas = op
        .change_owner(
            owner_id,
            &AccountChange {
                suspended: None,
                quotas: Some(Quotas::default()),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(quotas), (422, "quotas_for_customers".into()));
    grid.stop().await;
}

#[tokio::test]
async fn owners_rename_pause_resume_and_remove_their_devices() {
    let grid = TestGrid::start(|_| {}).await;
    let token = grid.owner("lender").await;
    let lender = Client::new(&grid.url, &token).unwrap();
    let device = grid.device_with(&token, "box").await;
    let id = device.me().await.unwrap().worker_id;
    let job = grid.submit("a\nb\n", 1, 3).await;
    let pause = DeviceChange {
        name: None,
        paused: Some(true),
    };
    lender.change_device(id, &pause).await.unwrap();
    let listed = lender.owner_devices().await.unwrap().devices;
    assert_eq!(listed[0].status, DeviceStatus::Paused);
    let grant = device
        .lease(&LeaseRequest {
            max_tasks: 2,
            wait_ms: 300,
        })
        .await
        .unwrap();
    assert!(grant.leases.is_empty(), "a paused device gets no work");
    lender
        .change_device(
            id,
            &DeviceChange {
                name: Some("study desk".into()),
                paused: Some(false),
            },
        )
        .await
        .unwrap();
    let listed = lender.owner_devices().await.unwrap().devices;
    assert_eq!(listed[0].name, "study desk");
    let grant = lease(&device, 2).await;
    assert!(
        grant.leases.iter().all(|l| l.job_id == job.id) && !grant.leases.is_empty(),
        "resumed, it works again"
    );
    // Another owner cannot touch it; bad names and empty changes are refused.
    let other = Client::new(&grid.url, &grid.owner("other").await).unwrap();
    let refused = other.change_device(id, &pause).await.unwrap_err();
    assert_eq!(api_code(refused), (404, "no_such_device".into()));
    assert_eq!(api_code(other.remove_device(id).await.unwrap_err()).0, 404);
    let bad = lender
        .change_device(
            id,
            &DeviceChange {
                name: Some("\u{202e}".into()),
                paused: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(bad), (422, "invalid_name".into()));
    let empty = lender
        .change_device(id, &DeviceChange::default())
        .await
        .unwrap_err();
    assert_eq!(api_code(empty), (422, "nothing_to_change".into()));
    // Removed: its token is refused, it leaves the list.
    lender.remove_device(id).await.unwrap();
    let refused = device.me().await.unwrap_err();
    assert_eq!(api_code(refused), (401, "device_removed".into()));
    assert!(lender.owner_devices().await.unwrap().devices.is_empty());
    grid.stop().await;
}

#[tokio::test]
async fn owners_see_earnings_by_job_and_chunk_and_payouts_never_exceed_the_balance() {
    let grid = TestGrid::start(|c| c.earnings_hold = std::time::Duration::ZERO).await;
    // The customer's own fleet: its results need no other party to be accepted.
    let earner = Client::new(&grid.url, &grid.credentials.enrollment_token).unwrap();
    let device = grid.worker("box").await;
    let job = grid.submit("a\nb\n", 1, 3).await;
    let done = upper_case_until_done(&grid, &device, job.id).await;
    assert_eq!(done.state, JobState::Completed);
    // Held earnings mature on the next pass; wait for them rather than sleep a fixed time.
    let mut earnings = earner.earnings(None).await.unwrap();
    for _ in 0..400 {
        if earnings.balance.0 > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        earnings = earner.earnings(None).await.unwrap();
    }
    assert!(earnings.balance.0 > 0, "{earnings:?}");
    let earned: Vec<_> = earnings
        .entries
        .iter()
        .filter(|e| e.kind == EarningKind::Earned)
        .collect();
    assert!(!earned.is_empty(), "{earnings:?}");
    for entry in &earned {
        assert_eq!(entry.job, Some(job.id));
        assert!(entry.chunk_index.is_some_and(|c| c < 2));
        assert_eq!(entry.device.as_deref(), Some("box"));
    }

    let too_much = earner
        .request_payout(Credits(earnings.available.0 + 1))
        .await
        .unwrap_err();
    assert_eq!(api_code(too_much), (422, "payout_exceeds_balance".into()));
    let payout = earner.request_payout(earnings.available).await.unwrap();
    assert_eq!(payout.state, PayoutState::Requested);
    let nothing_left = earner.request_payout(Credits(1)).await.unwrap_err();
    assert_eq!(
        api_code(nothing_left).0,
        422,
        "requested payouts are set aside"
    );

    let op = operator(&grid);
    let requested = op.payouts(Some(PayoutState::Requested)).await.unwrap();
    assert_eq!(requested.payouts.len(), 1);
    let paid = op
        .settle_payout(
            payout.id,
            &Settlement {
                paid: true,
                reference: Some("bank 42".into()),
                note: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(paid.state, PayoutState::Paid);
    let twice = op
        .settle_payout(
            payout.id,
            &Settlement {
                paid: true,
                reference: None,
                note: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(twice), (409, "payout_settled".into()));
    let after = earner.earnings(None).await.unwrap();
    assert_eq!(after.balance.0, earnings.balance.0 - payout.amount.0);
    assert_eq!(after.entries[0].kind, EarningKind::Payout);
    assert_eq!(
        earner.owner_payouts().await.unwrap().payouts[0].state,
        PayoutState::Paid
    );
    assert_eq!(op.balance().await.unwrap().books_balance, Some(true));
    // Owners settle nothing.
    let refused = earner
        .settle_payout(
            payout.id,
            &Settlement {
                paid: true,
                reference: None,
                note: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(refused).0, 403);
    grid.stop().await;
}

#[tokio::test]
async fn quotas_limit_jobs_at_once_bytes_kept_and_requests_a_second() {
    let grid = TestGrid::start(|_| {}).await;
    let op = operator(&grid);
    let customer = grid.customer();
    let id = idlegrid_api::TenantId(customer.whoami().await.unwrap().id);
    let quotas = |jobs, bytes, rps| AccountChange {
        suspended: None,
        quotas: Some(Quotas {
            max_running_jobs: jobs,
            max_stored_bytes: bytes,
            requests_per_sec: rps,
        }),
    };
    op.change_customer(id, &quotas(Some(1), None, None))
        .await
        .unwrap();
    grid.submit("a\n", 1, 3).await;
    let second = grid.create(1, Default::default()).await;
    customer
        .upload_input_bytes(second.id, b"b\n".to_vec().into())
        .await
        .unwrap();
    let refused = customer.run_job(second.id).await.unwrap_err();
    assert_eq!(api_code(refused), (429, "quota_exceeded".into()));

    // Bytes kept: an input that would pass the quota is refused, whichever way it comes.
    op.change_customer(id, &quotas(None, Some(8), None))
        .await
        .unwrap();
    let third = grid.create(1, Default::default()).await;
    let refused = customer
        .upload_input_bytes(third.id, b"0123456789\n".to_vec().into())
        .await
        .unwrap_err();
    assert_eq!(api_code(refused).0, 413);

    // Requests a second over all the customer's keys together.
    op.change_customer(id, &quotas(None, None, Some(1)))
        .await
        .unwrap();
    let other_key = Client::new(
        &grid.url,
        &customer
            .create_secret("second")
            .await
            .unwrap_or_else(|_| panic!("a key is made within the burst"))
            .secret,
    )
    .unwrap();
    let mut limited = None;
    for i in 0..6 {
        let client = if i % 2 == 0 { &customer } else { &other_key };
        if let Err(e) = client.whoami().await {
            limited = Some(api_code(e));
            break;
        }
    }
    assert_eq!(limited, Some((429, "rate_limited".into())));
    let bad = op
        .change_customer(id, &quotas(None, None, Some(0)))
        .await
        .unwrap_err();
    assert_eq!(api_code(bad), (422, "invalid_quotas".into()));
    grid.stop().await;
}

#[tokio::test]
async fn sign_up_is_closed_unless_opened_and_limited_per_address() {
    let closed = TestGrid::start(|_| {}).await;
    let anyone = Client::new(&closed.url, "").unwrap();
    assert!(!anyone.signup_options().await.unwrap().customers);
    let refused = anyone
        .sign_up(&Signup {
            kind: SignupKind::Customer,
            name: "walk-in".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(api_code(refused), (403, "signup_closed".into()));
    closed.stop().await;

    let open = TestGrid::start(|c| {
        c.signup = SignupOpen {
            customers: true,
            owners: false,
        }
    })
    .await;
    let anyone = Client::new(&open.url, "").unwrap();
    let made = anyone
        .sign_up(&Signup {
            kind: SignupKind::Customer,
            name: "walk-in".into(),
        })
        .await
        .unwrap();
    let walk_in = Client::new(&open.url, &made.secret).unwrap();
    assert_eq!(
        walk_in.balance().await.unwrap().balance,
        open.grid.config.opening_credit
    );
    let owner = anyone
        .sign_up(&Signup {
            kind: SignupKind::Owner,
            name: "lender".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(api_code(owner), (403, "signup_closed".into()));
    let taken = anyone
        .sign_up(&Signup {
            kind: SignupKind::Customer,
            name: "walk-in".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(api_code(taken), (409, "name_taken".into()));
    let mut limited = None;
    for i in 0..5 {
        let result = anyone
            .sign_up(&Signup {
                kind: SignupKind::Customer,
                name: format!("farm {i}"),
            })
            .await;
        if let Err(e) = result {
            limited = Some(api_code(e));
            break;
        }
    }
    assert_eq!(limited, Some((429, "rate_limited".into())));
    open.stop().await;
}

#[tokio::test]
async fn operators_list_devices_and_jobs_with_filters() {
    let grid = TestGrid::start(|_| {}).await;
    let token = grid.owner("lender").await;
    let lender = Client::new(&grid.url, &token).unwrap();
    let owner = lender.whoami().await.unwrap().id;
    let device = grid.device_with(&token, "box").await;
    grid.worker("house").await;
    let job = grid.submit("a\n", 1, 3).await;
    let op = operator(&grid);
    let mine = op.grid_devices(Some(owner)).await.unwrap().devices;
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (mine[0].name.as_str(), mine[0].owner_name.as_str()),
        ("box", "lender")
    );
    assert!(op.grid_devices(None).await.unwrap().devices.len() >= 2);
    let id = device.me().await.unwrap().worker_id;
    assert_eq!(mine[0].id, id);
    let customer = grid.customer().whoami().await.unwrap().id;
    let jobs = op
        .grid_jobs(Some(idlegrid_api::TenantId(customer)), None)
        .await
        .unwrap()
        .jobs;
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [job.id]);
    assert_eq!(jobs[0].customer_name, "default");
    // Lists come in pages, each saying where the next begins.
    for name in ["a", "b", "c"] {
        new_customer(&grid, name).await;
    }
    let page = |before: Option<i64>| {
        let mut url = reqwest::Url::parse(&format!("{}/v1/admin/customers", grid.url)).unwrap();
        url.query_pairs_mut().append_pair("limit", "2");
        if let Some(before) = before {
            url.query_pairs_mut()
                .append_pair("before", &before.to_string());
        }
        let key = grid.credentials.operator_key.clone();
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json::<idlegrid_api::admin::Customers>()
                .await
                .unwrap()
        }
    };
    let first = page(None).await;
    assert_eq!(first.customers.len(), 2);
    let second = page(first.next_before).await;
    assert_eq!(
        second.customers.len(),
        2,
        "4 customers in all: default, a, b, c"
    );
    assert_eq!(second.next_before, None);
    let names: Vec<_> = first
        .customers
        .iter()
        .chain(&second.customers)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["c", "b", "a", "default"]);
    let none = op
        .grid_jobs(None, Some(JobState::Completed))
        .await
        .unwrap()
        .jobs;
    assert!(none.is_empty());
    grid.stop().await;
}

#[tokio::test]
async fn a_revoked_key_and_a_suspended_customer_are_refused_at_once_on_every_coordinator() {
    let Some(url) = fresh_postgres() else { return };
    let config = |c: &mut idlegrid_coordinator::config::Config| {
        c.backends.store = Some(url.clone());
        c.backends.queue = Some("memory".into());
    };
    let a = TestGrid::start(config).await;
    let b = TestGrid::start(config).await;
    let on_a = a.customer();
    let made = on_a.create_secret("shared").await.unwrap();
    let on_b = Client::new(&b.url, &made.secret).unwrap();
    on_b.whoami().await.unwrap();
    on_a.revoke_secret(made.info.id).await.unwrap();
    let refused = on_b.whoami().await.unwrap_err();
    assert_eq!(api_code(refused), (401, "invalid_credentials".into()));

    let id = idlegrid_api::TenantId(on_a.whoami().await.unwrap().id);
    operator(&a)
        .change_customer(
            id,
            &AccountChange {
                suspended: Some(true),
                quotas: None,
            },
        )
        .await
        .unwrap();
    let refused = b.customer().whoami().await.unwrap_err();
    assert_eq!(api_code(refused), (403, "account_suspended".into()));
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_link_code_comes_with_a_qr_code_of_the_link_page_for_a_given_origin() {
    let grid = TestGrid::start(|_| {}).await;
    let http = reqwest::Client::new();
    let ask = |origin: &str| {
        let mut url = reqwest::Url::parse(&format!("{}/v1/owner/link-codes", grid.url)).unwrap();
        url.query_pairs_mut().append_pair("origin", origin);
        http.post(url)
            .bearer_auth(&grid.credentials.enrollment_token)
            .send()
    };
    let response = ask("http://192.168.1.10:8080").await.unwrap();
    assert_eq!(response.status(), 201);
    let code: idlegrid_api::tasks::LinkCode = response.json().await.unwrap();
    let svg = code.qr_svg.expect("a QR code for the origin");
    assert!(svg.contains("<svg") && !svg.contains("<script"));
    let refused = ask("javascript:alert(1)").await.unwrap();
    assert_eq!(refused.status(), 422);
    let without = Client::new(&grid.url, &grid.credentials.enrollment_token)
        .unwrap()
        .create_link_code()
        .await
        .unwrap();
    assert_eq!(without.qr_svg, None);
    grid.stop().await;
}

#[tokio::test]
async fn more_keys_buy_no_more_requests() {
    let grid = TestGrid::start(|c| c.customer_requests_per_sec = 5).await;
    let me = grid.customer().whoami().await.unwrap();
    let principal = idlegrid_storage::records::Principal::Tenant(idlegrid_api::TenantId(me.id));
    let mut clients = Vec::new();
    for i in 0..5 {
        let (secret, stored) =
            idlegrid_coordinator::http::auth::make_secret("igk_", &format!("extra {i}"), None);
        grid.grid
            .store
            .add_secret(principal, &stored)
            .await
            .unwrap();
        clients.push(Client::new(&grid.url, &secret).unwrap());
    }
    // Five keys with bursts of ten each would admit fifty; the account admits its own burst.
    let mut admitted = 0;
    let mut limited = None;
    for i in 0..50 {
        match clients[i % clients.len()].whoami().await {
            Ok(_) => admitted += 1,
            Err(e) => {
                limited = Some(api_code(e));
                break;
            }
        }
    }
    assert_eq!(
        limited,
        Some((429, "rate_limited".into())),
        "{admitted} admitted"
    );
    assert!(admitted < 20, "{admitted} admitted");
    grid.stop().await;
}

#[tokio::test]
async fn revoking_or_rotating_a_key_ends_the_sessions_made_from_it() {
    let grid = TestGrid::start(|_| {}).await;
    let (_, first, first_key) = new_customer_with_key(&grid, "sessions").await;
    let key = first.create_secret("laptop").await.unwrap();
    let session_of = |secret: String| {
        let url = grid.url.clone();
        async move {
            let response = reqwest::Client::new()
                .post(format!("{url}/v1/sessions"))
                .bearer_auth(&secret)
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            let made: idlegrid_api::accounts::CreatedSecret = response.json().await.unwrap();
            made.secret
        }
    };
    // A session, and a session made in that session: both hang on the key.
    let session = session_of(key.secret.clone()).await;
    let nested = session_of(session.clone()).await;
    let other = session_of(first_key).await;
    for s in [&session, &nested, &other] {
        Client::new(&grid.url, s).unwrap().whoami().await.unwrap();
    }
    first.revoke_secret(key.info.id).await.unwrap();
    for s in [&session, &nested] {
        let refused = Client::new(&grid.url, s)
            .unwrap()
            .whoami()
            .await
            .unwrap_err();
        assert_eq!(
            api_code(refused).0,
            401,
            "a revoked key's sessions end with it"
        );
    }
    let survivor = Client::new(&grid.url, &other).unwrap();
    survivor.whoami().await.unwrap();
    // Rotating the key behind a session ends it too.
    let own = first.secrets().await.unwrap().secrets[0].id;
    first.rotate_secret(own).await.unwrap();
    assert_eq!(api_code(survivor.whoami().await.unwrap_err()).0, 401);
    grid.stop().await;
}
