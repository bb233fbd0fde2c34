//! Webhooks: every state change of a job that names a webhook is POSTed to it as JSON, signed
//! with the webhook's secret, and retried with exponential backoff until the receiver answers
//! 2xx or [`MAX_ATTEMPTS`] attempts failed.
//!
//! The records write each state change as an event (a trigger on `jobs`, in the same
//! transaction as the change), so no stage has to remember to; this stage only claims due
//! events ([`Store::claim_webhook_events`]: of each job its oldest undelivered one, so a job's
//! events arrive in order), POSTs them, several jobs at once, and records each attempt.
//! Delivery is **at least once**: a coordinator that dies after the receiver answered but
//! before the attempt was recorded leaves the claim to run out, and the event goes again;
//! receivers tell repeats apart by the event id (`x-idlegrid-delivery`).
//!
//! The URL is checked like a customer's input source (`https://` to a public address unless
//! the coordinator allows private sources) when the job is created and again before every
//! attempt, since its name may resolve elsewhere by then; the request goes to the address that
//! was checked, and redirects are not followed.
//!
//! [`Store::claim_webhook_events`]: idlegrid_storage::records::Store::claim_webhook_events

use crate::external::checked_address;
use crate::grid::Grid;
use crate::secrets::SecretBox;
use hmac::{Hmac, Mac};
use idlegrid_api::jobs::{WebhookAttemptView, WebhookDelivery, WebhookSpec, WebhookView};
use idlegrid_api::timestamp;
use idlegrid_storage::now_ms;
use idlegrid_storage::records::{
    DueWebhook, JobRecord, WebhookAttempt, WebhookEvent, WebhookHistory, WebhookNext,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Attempts at delivering one event before it is given up.
pub const MAX_ATTEMPTS: u32 = 12;
/// Longest pause between two attempts at one event.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How long one attempt may take, connecting included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed event stays this coordinator's: well over an attempt, so only the
/// events of a coordinator that stopped or died are taken over.
const CLAIM: Duration = Duration::from_secs(30);
/// Deliveries under way at once (of different jobs: a job has one at a time).
const PARALLEL: usize = 32;
/// Longest wait between two looks for due events, whatever the announcements say.
const POLL: Duration = Duration::from_secs(1);
/// Shortest time between two looks for due events prompted by announcements: jobs are
/// announced as changed at every batch of results, thousands of times a second on a busy
/// grid, and a look is a records write.
const MIN_GAP: Duration = Duration::from_millis(250);
/// Prefix of webhook secrets.
const SECRET_PREFIX: &str = "whsec_";

/// A job's webhook as its record keeps it (`jobs.webhook`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// Where the events go.
    url: String,
    /// The signing secret, sealed with the grid's secrets key.
    secret: String,
}

impl Webhook {
    /// Checks the webhook a customer asked for and makes its secret: returns the webhook to
    /// record and the secret in the clear, to be shown once.
    pub async fn create(
        spec: &WebhookSpec,
        allow_private: bool,
        secrets: Option<&SecretBox>,
    ) -> Result<(Webhook, String), String> {
        let secrets = secrets.ok_or(
            "this grid cannot keep the webhook's signing secret: its operator has to give the \
             coordinators a secrets key (--secrets-key)",
        )?;
        let url = reqwest::Url::parse(&spec.url)
            .map_err(|e| format!("webhook.url {:?} is not a URL: {e}", spec.url))?;
        checked_address(&url, allow_private)
            .await
            .map_err(|e| format!("webhook.url: {e}"))?;
        let secret = crate::state::credentials::new_secret(SECRET_PREFIX);
        let webhook = Webhook {
            url: spec.url.clone(),
            secret: secrets.seal(&secret),
        };
        Ok((webhook, secret))
    }

    /// A job's webhook, from its record.
    pub fn of(job: &JobRecord) -> Option<Webhook> {
        job.spec
            .webhook
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// For the record.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// As the API shows it after the job's creation: without the secret.
    pub fn view(&self) -> WebhookView {
        WebhookView {
            url: self.url.clone(),
            secret: None,
        }
    }
}

/// An event and its attempts as the API shows them.
pub fn delivery_view(history: &WebhookHistory) -> WebhookDelivery {
    let event = &history.event;
    WebhookDelivery {
        id: event.id,
        state: event.state,
        at: timestamp(event.at_ms),
        delivered_at: event.delivered_at_ms.map(timestamp),
        gave_up: event.gave_up,
        next_attempt_at: event.next_attempt_at_ms.map(timestamp),
        attempts: history
            .attempts
            .iter()
            .map(|a| WebhookAttemptView {
                at: timestamp(a.at_ms),
                status: a.status,
                error: a.error.clone(),
                duration_ms: a.duration_ms,
            })
            .collect(),
    }
}

/// The `x-idlegrid-signature` value: `sha256=` and the hex HMAC-SHA256, under `secret`, of
/// `"<timestamp>.<body>"` (the timestamp signed along, so an old delivery cannot be replayed
/// as a new one).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The pause after the `attempt`-th failed attempt: `base`, doubled for every attempt before
/// it, at most [`MAX_BACKOFF`].
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(30);
    base.saturating_mul(1u32 << doublings).min(MAX_BACKOFF)
}

/// The JSON body of an event's delivery. The error may quote a device (a script's stderr):
/// it goes with its control characters escaped, as text a receiver can log or show as it is.
fn body(event: &WebhookEvent) -> String {
    serde_json::json!({
        "id": event.id,
        "type": format!("job.{}", event.state),
        "job_id": event.job,
        "state": event.state,
        "error": event.error.as_deref().map(idlegrid_domain::text::shown),
        "at": timestamp(event.at_ms).to_string(),
    })
    .to_string()
}

/// Delivers due events until `stop`: looks for them whenever a job changes, when a delivery
/// ends, when a retry falls due, and at least every second.
pub async fn run(grid: Arc<Grid>, stop: CancellationToken) {
    let mut changes = grid.events.subscribe();
    let mut running: JoinSet<WebhookNext> = JoinSet::new();
    // The earliest retry this coordinator scheduled and has not looked for yet.
    let mut soonest: Option<i64> = None;
    loop {
        let looked = tokio::time::Instant::now();
        let room = PARALLEL - running.len();
        if room > 0 {
            let claimed = grid
                .store
                .claim_webhook_events(now_ms(), CLAIM.as_millis() as i64, room as u32)
                .await;
            match claimed {
                Ok(due) => {
                    for event in due {
                        let grid = grid.clone();
                        running.spawn(async move { deliver(&grid, &event).await });
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot claim webhook events"),
            }
        }
        let now = now_ms();
        if soonest.is_some_and(|at| at <= now) {
            soonest = None;
        }
        let wait = soonest.map_or(POLL, |at| {
            Duration::from_millis((at - now) as u64).min(POLL)
        });
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(done) = running.join_next() => {
                if let Ok(WebhookNext::RetryAt(at)) = done {
                    soonest = Some(soonest.map_or(at, |s| s.min(at)));
                }
            }
            _ = changes.recv() => {
                // One look covers every change announced until it is made.
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep_until(looked + MIN_GAP) => {}
                }
                while changes.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
    // Deliveries cut short are made again once their claims run out (at least once).
    running.abort_all();
    while running.join_next().await.is_some() {}
}

/// Makes one attempt at delivering a claimed event and records it; returns what follows.
async fn deliver(grid: &Grid, due: &DueWebhook) -> WebhookNext {
    let event = &due.event;
    let number = event.attempts + 1;
    let at_ms = now_ms();
    let started = Instant::now();
    let (status, error) = match post(grid, due).await {
        Ok(status) if status.is_success() => (Some(status.as_u16()), None),
        Ok(status) if status.is_redirection() => (
            Some(status.as_u16()),
            Some(format!(
                "the receiver answered {status}; redirects are not followed"
            )),
        ),
        Ok(status) => (
            Some(status.as_u16()),
            Some(format!("the receiver answered {status}")),
        ),
        Err(reason) => (None, Some(reason)),
    };
    let attempt = WebhookAttempt {
        attempt: number,
        at_ms,
        status,
        error,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    let next = match &attempt.error {
        None => WebhookNext::Delivered,
        Some(_) if number >= MAX_ATTEMPTS => WebhookNext::GiveUp,
        Some(_) => WebhookNext::RetryAt(
            now_ms() + backoff(grid.config.webhook_retry_base, number).as_millis() as i64,
        ),
    };
    match &attempt.error {
        None => tracing::debug!(job = %event.job, event = event.id, "webhook delivered"),
        Some(reason) => tracing::info!(
            job = %event.job, event = event.id, attempt = number, ?next, reason,
            "webhook delivery failed"
        ),
    }
    if let Err(e) = grid
        .store
        .record_webhook_attempt(event.id, &attempt, next)
        .await
    {
        // The claim runs out and the event goes again.
        tracing::error!(job = %event.job, event = event.id, error = %e, "cannot record a webhook attempt");
    }
    next
}

/// POSTs a claimed event to its job's webhook; the receiver's status, or why there was none.
async fn post(grid: &Grid, due: &DueWebhook) -> Result<reqwest::StatusCode, String> {
    let webhook: Webhook = serde_json::from_value(due.webhook.clone())
        .map_err(|e| format!("the job's webhook record is damaged: {e}"))?;
    let secret = grid
        .secrets
        .as_ref()
        .ok_or("this coordinator has no secrets key to open the webhook's secret")?
        .open(&webhook.secret)?;
    let url = reqwest::Url::parse(&webhook.url)
        .map_err(|e| format!("{:?} is not a URL: {e}", webhook.url))?;
    let addr = checked_address(&url, grid.config.allow_private_sources).await?;
    let host = url.host_str().unwrap_or_default().to_string();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, addr)
        .timeout(ATTEMPT_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let event = &due.event;
    let body = body(event);
    let sent_at = now_ms() / 1000;
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("x-idlegrid-event", format!("job.{}", event.state))
        .header("x-idlegrid-delivery", event.id.to_string())
        .header("x-idlegrid-timestamp", sent_at.to_string())
        .header("x-idlegrid-signature", signature(&secret, sent_at, &body))
        .body(body)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    Ok(response.status())
}

/// An error with its causes, which name what actually went wrong ("Connection refused").
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_backoff_doubles_up_to_ten_minutes() {
        let base = Duration::from_secs(1);
        let pauses: Vec<u64> = (1..=5).map(|n| backoff(base, n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16]);
        assert_eq!(backoff(base, 11), Duration::from_secs(600));
        assert_eq!(backoff(base, u32::MAX), Duration::from_secs(600));
    }

    #[test]
    fn webhook_signatures_cover_the_timestamp_and_the_body() {
        // The expected value was computed with Python's hmac module, not with this code.
        let signed = signature("whsec_x", 1700000000, r#"{"id":1}"#);
        assert_eq!(
            signed,
            "sha256=830effa15a2837a1255e71d7e6536f8d8dca8d76c9690f37bf648306d998dfb3"
        );
        assert_ne!(signed, signature("whsec_x", 1700000001, r#"{"id":1}"#));
        assert_ne!(signed, signature("whsec_x", 1700000000, r#"{"id":2}"#));
        assert_ne!(signed, signature("whsec_y", 1700000000, r#"{"id":1}"#));
    }
}
