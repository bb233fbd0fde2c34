//! What devices send is data, never control: kept as given, shown and sent on escaped.

use crate::harness::*;
use crate::webhooks::{Receiver, deliveries_when, hooked_job, webhook_grid};

/// A failure reason as a forging device sends it: ESC, CSI, OSC, BEL and line breaks before a
/// line that would pass for the coordinator's own.
const ATTACK: &str = "boom\x1b[2J\x1b]0;pwned\x07\r\njob 1 completed";
/// The same, shown.
const SHOWN: &str = "boom\\x1b[2J\\x1b]0;pwned\\x07\\r\\njob 1 completed";

#[tokio::test]
async fn a_failure_reason_goes_to_the_webhook_escaped_and_is_kept_as_given() {
    let receiver = Receiver::start(0).await;
    let grid = webhook_grid().await;
    let customer = grid.customer();
    let mut request = hooked_job(&receiver.url);
    request.preferences.max_attempts = 1;
    let job = customer.create_job(&request).await.unwrap();
    customer
        .upload_input_bytes(job.id, "x\n".to_string().into())
        .await
        .unwrap();
    customer.run_job(job.id).await.unwrap();
    let worker = grid.worker("w").await;
    let l = lease(&worker, 1).await.leases.remove(0);
    let failed = ReportOutcome::Failed {
        reason: ATTACK.into(),
    };
    report_one(&worker, l.lease_id, l.task_id, failed).await;
    let kept = wait_for(&customer, job.id, JobState::Failed).await;
    assert!(kept.error.unwrap().ends_with(ATTACK), "stored as given");
    deliveries_when(&customer, job.id, |d| {
        d.events
            .iter()
            .any(|e| e.state == JobState::Failed && e.delivered_at.is_some())
    })
    .await;
    let body = receiver
        .bodies()
        .into_iter()
        .find(|b| b["state"] == "failed")
        .unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.ends_with(SHOWN), "{error}");
    assert!(
        !error.chars().any(idlegrid_domain::text::is_hidden),
        "{error:?}"
    );
    grid.stop().await;
}

#[tokio::test]
async fn a_device_name_with_control_characters_is_refused() {
    let grid = TestGrid::start(|_| {}).await;
    for name in ["\x1b[2Jlaptop", "pc\u{202e}gnp.exe", "two\nlines"] {
        let err = Client::register(
            &grid.url,
            &grid.credentials.enrollment_token,
            &RegisterWorker {
                name: name.into(),
                capabilities: device_caps(),
            },
        )
        .await
        .unwrap_err();
        assert_eq!(api_code(err), (422, "invalid_name".into()), "{name:?}");
    }
    let owner = Client::new(&grid.url, &grid.credentials.enrollment_token).unwrap();
    assert!(owner.owner_devices().await.unwrap().devices.is_empty());
    grid.stop().await;
}
