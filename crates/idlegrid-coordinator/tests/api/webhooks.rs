//! Webhooks: every state change delivered to the customer's receiver, signed and retried.

use crate::harness::*;

/// What a webhook receiver was sent.
#[derive(Clone)]
pub struct Delivered {
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

/// A customer's webhook receiver on a loopback port: keeps every delivery and answers 500 to
/// the first `failures` of them, 204 after.
pub struct Receiver {
    pub url: String,
    pub got: Arc<std::sync::Mutex<Vec<Delivered>>>,
}

impl Receiver {
    pub async fn start(failures: usize) -> Receiver {
        use axum::http::StatusCode;
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let kept = kept.clone();
                async move {
                    let mut got = kept.lock().unwrap();
                    got.push(Delivered { headers, body });
                    if got.len() <= failures {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, got }
    }

    /// The deliveries received so far.
    pub fn received(&self) -> Vec<Delivered> {
        self.got.lock().unwrap().clone()
    }

    /// The bodies received so far, parsed.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.received()
            .iter()
            .map(|d| serde_json::from_str(&d.body).unwrap())
            .collect()
    }
}

/// A grid that may reach the loopback receivers, retrying deliveries quickly.
pub async fn webhook_grid() -> TestGrid {
    TestGrid::start(|c| {
        c.allow_private_sources = true;
        c.webhook_retry_base = Duration::from_millis(50);
    })
    .await
}

pub fn hooked_job(url: &str) -> CreateJob {
    CreateJob {
        webhook: Some(WebhookSpec { url: url.into() }),
        ..print_one_job()
    }
}

/// The job's deliveries once `done` holds for them.
pub async fn deliveries_when(
    customer: &Client,
    job: JobId,
    done: impl Fn(&WebhookDeliveries) -> bool,
) -> WebhookDeliveries {
    for _ in 0..200 {
        let deliveries = customer.webhook_deliveries(job).await.unwrap();
        if done(&deliveries) {
            return deliveries;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "job {job}'s deliveries never got there: {:?}",
        customer.webhook_deliveries(job).await.unwrap()
    );
}

/// The hex HMAC-SHA256 a receiver computes to check a delivery.
fn expected_signature(secret: &str, timestamp: &str, body: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_webhook_receives_every_state_change_in_order_signed() {
    let receiver = Receiver::start(0).await;
    let grid = webhook_grid().await;
    let customer = grid.customer();
    let job = customer
        .create_job(&hooked_job(&receiver.url))
        .await
        .unwrap();
    let shown = job.webhook.clone().unwrap();
    assert_eq!(shown.url, receiver.url);
    let secret = shown.secret.unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    // The secret is shown once: not in the job's status, not in the list, not in the records.
    let status = customer.job(job.id).await.unwrap();
    assert_eq!(status.webhook.as_ref().unwrap().secret, None);
    assert_eq!(status.webhook.unwrap().url, receiver.url);
    let listed = serde_json::to_string(&customer.list_jobs(None, 10).await.unwrap()).unwrap();
    let raw = reqwest::Client::new()
        .get(format!("{}/v1/jobs/{}", grid.url, job.id))
        .bearer_auth(&grid.credentials.api_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stored = grid.grid.store.job(job.id).await.unwrap().unwrap();
    let stored = stored.spec.webhook.unwrap().to_string();
    for text in [&listed, &raw, &stored] {
        assert!(
            !text.contains(&secret) && !text.contains("\"secret\":\"whsec"),
            "{text}"
        );
    }
    assert!(stored.contains("sealed1:"), "{stored}");

    customer
        .upload_input_bytes(job.id, "a\nb\n".to_string().into())
        .await
        .unwrap();
    customer.run_job(job.id).await.unwrap();
    let worker = grid.worker("w").await;
    let done = upper_case_until_done(&grid, &worker, job.id).await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    let deliveries = deliveries_when(&customer, job.id, |d| {
        d.events
            .last()
            .is_some_and(|e| e.state == JobState::Completed)
            && d.events.iter().all(|e| e.delivered_at.is_some())
    })
    .await;

    // Every state, in order, each once; the deliveries API agrees with what arrived.
    let states: Vec<String> = receiver
        .bodies()
        .iter()
        .map(|b| b["state"].as_str().unwrap().to_string())
        .collect();
    let recorded: Vec<String> = deliveries
        .events
        .iter()
        .map(|e| e.state.to_string())
        .collect();
    assert_eq!(states, recorded);
    assert_eq!(&states[..3], ["created", "submitted", "partitioning"]);
    assert_eq!(&states[states.len() - 2..], ["assembling", "completed"]);
    assert!(states.len() == 5 || states[3] == "running", "{states:?}");
    for event in &deliveries.events {
        assert!(!event.gave_up && event.next_attempt_at.is_none());
        assert_eq!(event.attempts.len(), 1);
        assert_eq!(
            (event.attempts[0].status, &event.attempts[0].error),
            (Some(204), &None)
        );
    }

    let got = receiver.received();
    for (delivery, event) in got.iter().zip(&deliveries.events) {
        let header = |name: &str| delivery.headers[name].to_str().unwrap().to_string();
        let body: serde_json::Value = serde_json::from_str(&delivery.body).unwrap();
        let kind = format!("job.{}", event.state);
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("x-idlegrid-event"), kind);
        assert_eq!(header("x-idlegrid-delivery"), event.id.to_string());
        assert_eq!(body["id"], event.id);
        assert_eq!(body["type"], kind.as_str());
        assert_eq!(body["job_id"], job.id.0);
        assert_eq!(body["error"], serde_json::Value::Null);
        let at: jiff::Timestamp = body["at"].as_str().unwrap().parse().unwrap();
        assert_eq!(at, event.at);
        let timestamp = header("x-idlegrid-timestamp");
        let sent: i64 = timestamp.parse().unwrap();
        assert!((sent - jiff::Timestamp::now().as_second()).abs() < 60);
        // The signature verifies with the secret from the create answer, and only with it, over
        // this very timestamp and body.
        let signature = header("x-idlegrid-signature");
        assert_eq!(
            signature,
            expected_signature(&secret, &timestamp, &delivery.body)
        );
        let forged = expected_signature("whsec_guessed", &timestamp, &delivery.body);
        assert_ne!(signature, forged);
        let later = (sent + 1).to_string();
        assert_ne!(
            signature,
            expected_signature(&secret, &later, &delivery.body)
        );
        let tampered = delivery.body.replace("job.", "job.x");
        assert_ne!(
            signature,
            expected_signature(&secret, &timestamp, &tampered)
        );
    }
    grid.stop().await;
}

#[tokio::test]
async fn a_webhook_receiver_failing_twice_gets_the_event_on_the_third_attempt() {
    let receiver = Receiver::start(2).await;
    let grid = webhook_grid().await;
    let customer = grid.customer();
    let job = customer
        .create_job(&hooked_job(&receiver.url))
        .await
        .unwrap();
    let deliveries = deliveries_when(&customer, job.id, |d| {
        d.events.first().is_some_and(|e| e.delivered_at.is_some())
    })
    .await;
    let created = &deliveries.events[0];
    assert_eq!(created.state, JobState::Created);
    let statuses: Vec<Option<u16>> = created.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(204)]);
    for failed in &created.attempts[..2] {
        let error = failed.error.as_deref().unwrap();
        assert!(error.contains("500"), "{error}");
    }
    assert_eq!(created.attempts[2].error, None);
    assert!(created.attempts.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(!created.gave_up && created.next_attempt_at.is_none());
    // The same event three times: receivers tell repeats apart by its id.
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    for delivery in got.iter() {
        assert_eq!(
            delivery.headers["x-idlegrid-delivery"],
            created.id.to_string().as_str()
        );
    }
    grid.stop().await;
}

#[tokio::test]
async fn a_webhook_receiver_that_is_down_shows_the_connection_error() {
    // A port nobody listens on: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    let grid = webhook_grid().await;
    let customer = grid.customer();
    let job = customer.create_job(&hooked_job(&url)).await.unwrap();
    let deliveries = deliveries_when(&customer, job.id, |d| {
        d.events.first().is_some_and(|e| e.attempts.len() >= 2)
    })
    .await;
    let created = &deliveries.events[0];
    assert!(created.delivered_at.is_none() && !created.gave_up);
    assert!(created.next_attempt_at.is_some());
    for attempt in &created.attempts {
        assert_eq!(attempt.status, None);
        let error = attempt.error.as_deref().unwrap();
        assert!(
            error.to_lowercase().contains("connection refused"),
            "{error}"
        );
    }
    grid.stop().await;
}

#[tokio::test]
async fn webhook_urls_must_be_public_https_unless_private_sources_are_allowed() {
    let strict = TestGrid::start(|_| {}).await;
    let customer = strict.customer();
    for (url, says) in [
        ("http://127.0.0.1:9/hook", "only https://"),
        ("https://127.0.0.1:9/hook", "private or local"),
        ("https://[::1]:9/hook", "private or local"),
        ("ftp://example.com/hook", "ftp://"),
        ("not a url", "not a URL"),
    ] {
        let err = customer.create_job(&hooked_job(url)).await.unwrap_err();
        let message = err.to_string();
        assert_eq!(api_code(err), (422, "invalid_webhook".into()), "{url}");
        assert!(message.contains(says), "{url}: {message}");
    }
    // A job without a webhook has no deliveries to show; another tenant's job is not found.
    let plain = customer
        .create_job(&CreateJob {
            webhook: None,
            ..hooked_job("")
        })
        .await
        .unwrap();
    assert!(plain.webhook.is_none());
    let err = customer.webhook_deliveries(plain.id).await.unwrap_err();
    assert_eq!(api_code(err), (404, "no_webhook".into()));
    let err = customer
        .webhook_deliveries(JobId(999_999))
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (404, "job_not_found".into()));
    strict.stop().await;

    // Allowing private sources opens plain HTTP and loopback, not other schemes.
    let open = webhook_grid().await;
    let customer = open.customer();
    let receiver = Receiver::start(0).await;
    customer
        .create_job(&hooked_job(&receiver.url))
        .await
        .unwrap();
    let err = customer
        .create_job(&hooked_job("ftp://127.0.0.1/hook"))
        .await
        .unwrap_err();
    assert_eq!(api_code(err), (422, "invalid_webhook".into()));
    open.stop().await;

    // Without a secrets key there is nowhere to keep the signing secret.
    let Some(url) = fresh_postgres() else { return };
    let keyless = TestGrid::start(|c| {
        c.backends.store = Some(url);
        c.allow_private_sources = true;
    })
    .await;
    let err = keyless
        .customer()
        .create_job(&hooked_job(&receiver.url))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert_eq!(api_code(err), (422, "invalid_webhook".into()));
    assert!(message.contains("secrets key"), "{message}");
    keyless.stop().await;
}
