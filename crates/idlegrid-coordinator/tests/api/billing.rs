//! Prices and credit: estimates before anything runs, refusals without credit, and owners paid
//! for validated work.

use crate::harness::*;

fn api_status(error: &ClientError) -> (u16, String, String) {
    match error {
        ClientError::Api { status, body } => {
            (*status, body.error.code.clone(), body.error.message.clone())
        }
        other => panic!("expected an API error, got {other}"),
    }
}

fn estimate_for(bytes: u64, tier: idlegrid_domain::Tier) -> EstimateRequest {
    EstimateRequest {
        app: Some("python-map".into()),
        params: serde_json::json!({}),
        chunk_lines: None,
        chunk_seconds: None,
        chunk_items: None,
        preferences: Preferences {
            tier,
            ..Preferences::default()
        },
        job: None,
        input_bytes: Some(bytes),
        input_lines: None,
        video: None,
    }
}

#[tokio::test]
async fn estimates_price_every_tier_before_anything_runs() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let worker = grid.worker("w1").await;
    // A device asks for work (there is none): it is online, so the grid has capacity.
    worker
        .lease(&LeaseRequest {
            max_tasks: 1,
            wait_ms: 0,
        })
        .await
        .unwrap();
    let estimate = customer
        .estimate(&estimate_for(500 << 20, idlegrid_domain::Tier::Fast))
        .await
        .unwrap();
    assert_eq!(estimate.quote.tier, idlegrid_domain::Tier::Fast);
    let prices: Vec<i64> = estimate.tiers.iter().map(|t| t.price.0).collect();
    assert!(
        prices[0] < prices[1] && prices[1] < prices[2],
        "economy < standard < fast: {prices:?}"
    );
    assert!(estimate.affordable, "{estimate:?}");
    assert!(!estimate.exact);
    assert_eq!(estimate.meets_deadline, None);
    assert_eq!((estimate.devices_online, estimate.slots), (1, 4));
    assert!(estimate.quote.eta_secs.is_some_and(|eta| eta > 0.0));
    // 500 MiB cannot be done in a second by one device: the deadline is said to be missed.
    let hurried = customer
        .estimate(&EstimateRequest {
            preferences: Preferences {
                deadline_secs: Some(1),
                ..Preferences::default()
            },
            ..estimate_for(500 << 20, idlegrid_domain::Tier::Standard)
        })
        .await
        .unwrap();
    assert_eq!(hurried.meets_deadline, Some(false));
    assert!(hurried.problem.unwrap().contains("deadline"));
    // The opening credit is 100 credits.
    assert_eq!(estimate.balance.0, 100_000_000);
    // A video described by its size and length.
    let video = customer
        .estimate(&EstimateRequest {
            app: Some("video-transcode".into()),
            params: serde_json::json!({"preset": "720p"}),
            input_bytes: None,
            input_lines: None,
            video: Some(VideoDescription {
                duration_secs: 60.0,
                width: 1920,
                height: 1080,
                fps: 30.0,
                audio: true,
            }),
            ..estimate_for(0, idlegrid_domain::Tier::Standard)
        })
        .await
        .unwrap();
    assert!(video.quote.price.0 > 0 && video.quote.work_core_seconds > 60.0);
    // An estimate for an uploaded job is exact: the quote `run` holds.
    let job = grid.create(1, Preferences::default()).await;
    customer
        .upload_input_bytes(job.id, "a\nb\nc\n".to_string().into())
        .await
        .unwrap();
    let exact = customer
        .estimate(&EstimateRequest {
            job: Some(job.id),
            app: None,
            input_bytes: None,
            input_lines: None,
            ..estimate_for(0, idlegrid_domain::Tier::Standard)
        })
        .await
        .unwrap();
    assert!(exact.exact);
    customer.run_job(job.id).await.unwrap();
    let held = wait_for(&customer, job.id, JobState::Running).await;
    assert_eq!(held.cost.unwrap().quote, exact.quote.price);
    // Bad requests say what is missing.
    let missing = customer
        .estimate(&EstimateRequest {
            input_bytes: None,
            input_lines: None,
            ..estimate_for(0, idlegrid_domain::Tier::Standard)
        })
        .await
        .unwrap_err();
    let (status, code, _) = api_status(&missing);
    assert_eq!((status, code.as_str()), (422, "missing_input"));
    let video_without_size = customer
        .estimate(&EstimateRequest {
            app: Some("video-transcode".into()),
            ..estimate_for(1000, idlegrid_domain::Tier::Standard)
        })
        .await
        .unwrap_err();
    assert!(api_status(&video_without_size).2.contains("frames"));
    grid.stop().await;
}

#[tokio::test]
async fn a_customer_without_credit_is_refused_before_anything_runs() {
    let grid = TestGrid::start(|c| c.opening_credit = idlegrid_domain::Credits(0)).await;
    let customer = grid.customer();
    let job = grid.create(1, Preferences::default()).await;
    customer
        .upload_input_bytes(job.id, "a\nb\n".to_string().into())
        .await
        .unwrap();
    let refused = customer.run_job(job.id).await.unwrap_err();
    let (status, code, message) = api_status(&refused);
    assert_eq!((status, code.as_str()), (402, "insufficient_balance"));
    assert!(message.contains("balance is 0.000000 credits"), "{message}");
    // Nothing ran: the job still waits, with no chunk made.
    let status = customer.job(job.id).await.unwrap();
    assert_eq!(status.state, JobState::Created);
    assert_eq!(status.chunks.created, 0);
    // An operator deposits credit; a repeated reference posts nothing; then it runs.
    let operator = Client::new(&grid.url, &grid.credentials.operator_key).unwrap();
    let me = customer.whoami().await.unwrap();
    let deposit = Deposit {
        amount: idlegrid_domain::Credits(5_000_000),
        reference: "invoice-1".into(),
    };
    let tenant = idlegrid_api::TenantId(me.id);
    let first = operator.deposit(tenant, &deposit).await.unwrap();
    assert!(first.posted);
    assert_eq!(first.balance.0, 5_000_000);
    let again = operator.deposit(tenant, &deposit).await.unwrap();
    assert!(!again.posted);
    assert_eq!(again.balance.0, 5_000_000);
    // Customers cannot deposit for themselves.
    assert_eq!(
        api_status(&customer.deposit(tenant, &deposit).await.unwrap_err()).0,
        403
    );
    // A max_price below the quote fails the job before it runs, with the reason.
    let capped = grid
        .create(
            1,
            Preferences {
                max_price: Some(idlegrid_domain::Credits(1)),
                ..Preferences::default()
            },
        )
        .await;
    customer
        .upload_input_bytes(capped.id, "a\nb\n".to_string().into())
        .await
        .unwrap();
    let over = customer.run_job(capped.id).await.unwrap_err();
    assert_eq!(api_status(&over).1, "over_max_price");
    customer.run_job(job.id).await.unwrap();
    let balance = customer.balance().await.unwrap();
    assert_eq!(balance.kind, "customer");
    assert!(
        balance
            .entries
            .iter()
            .any(|e| e.txn.starts_with("deposit:"))
    );
    grid.stop().await;
}

#[tokio::test]
async fn validated_work_is_paid_to_the_owner_and_the_books_balance() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    let job = grid.submit("a\nb\nc\nd\n", 1, 3).await;
    let worker = grid.worker("w1").await;
    let mut leases = Vec::new();
    while leases.len() < 4 {
        leases.extend(lease(&worker, 10).await.leases);
    }
    // (A rejected result earns nothing: the records' own test shows it on both backends.)
    for (i, l) in leases.iter().enumerate() {
        report_one(
            &worker,
            l.lease_id,
            l.task_id,
            completed(format!("{i}\n").as_bytes()),
        )
        .await;
    }
    let done = wait_for(&customer, job.id, JobState::Completed).await;
    let cost = done.cost.expect("a completed job has its cost");
    assert!(cost.charged.0 > 0 && cost.charged <= cost.quote, "{cost:?}");
    // The customer paid what was charged; the rest of the hold came back.
    let balance = customer.balance().await.unwrap();
    assert_eq!(balance.balance.0, 100_000_000 - cost.charged.0);
    assert_eq!(balance.held.0, 0);
    // The device earned its owner 70% of it, shown to the owner and the device.
    let owner = Client::new(&grid.url, &grid.credentials.enrollment_token).unwrap();
    let devices = owner.owner_devices().await.unwrap();
    let earned = devices.totals.earned.0;
    assert!(
        earned > 0 && earned <= cost.charged.0 * 7 / 10 + 4,
        "{earned} of {cost:?}"
    );
    assert_eq!(devices.devices[0].earned.0, earned);
    assert_eq!(worker.me().await.unwrap().earned.0, earned);
    assert_eq!(owner.balance().await.unwrap().balance.0, earned);
    let operator = Client::new(&grid.url, &grid.credentials.operator_key).unwrap();
    let books = operator.balance().await.unwrap();
    assert_eq!(books.books_balance, Some(true));
    assert_eq!(books.balance.0, cost.charged.0 - earned);
    let audit = grid.grid.store.audit_ledger().await.unwrap();
    assert_eq!(
        (audit.total.0, audit.unbalanced, audit.over_quote),
        (0, 0, 0)
    );
    grid.stop().await;
}

#[tokio::test]
async fn chunks_of_n_lines_are_priced_by_the_lines_there_are_and_the_hold_is_the_estimate() {
    let grid = TestGrid::start(|_| {}).await;
    let customer = grid.customer();
    // 12 lines without a final line end, 5 lines a chunk: 3 chunks (bounded by bytes it
    // would be 12 or more).
    let input = (1..=12)
        .map(|i| format!("line {i:02}"))
        .collect::<Vec<_>>()
        .join("\n");
    let job = grid.create(5, Default::default()).await;
    customer
        .upload_input_bytes(job.id, input.clone().into_bytes().into())
        .await
        .unwrap();
    let exact = customer
        .estimate(&EstimateRequest::for_job(job.id))
        .await
        .unwrap();
    assert_eq!(exact.quote.chunks, 3, "{exact:?}");
    let described = customer
        .estimate(&EstimateRequest {
            chunk_lines: Some(5),
            input_lines: Some(12),
            ..estimate_for(input.len() as u64, idlegrid_domain::Tier::Standard)
        })
        .await
        .unwrap();
    assert_eq!(described.quote.chunks, 3);
    assert_eq!(described.quote.price, exact.quote.price);
    let bounded = customer
        .estimate(&EstimateRequest {
            chunk_lines: Some(5),
            ..estimate_for(input.len() as u64, idlegrid_domain::Tier::Standard)
        })
        .await
        .unwrap();
    assert!(
        bounded.quote.chunks > 3,
        "without a line count it is a bound"
    );
    customer.run_job(job.id).await.unwrap();
    let held = loop {
        let status = customer.job(job.id).await.unwrap();
        if let Some(cost) = status.cost.filter(|c| c.quote.0 > 0) {
            break cost.quote;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(held, exact.quote.price, "run holds what the estimate said");
    let split = wait_until_split(&customer, job.id).await;
    assert_eq!(split, 3);
    grid.stop().await;
}

async fn wait_until_split(customer: &idlegrid_client::Client, job: JobId) -> u64 {
    for _ in 0..400 {
        let status = customer.job(job).await.unwrap();
        if let Some(total) = status.chunks.total {
            return total;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("job {job} was never split");
}
