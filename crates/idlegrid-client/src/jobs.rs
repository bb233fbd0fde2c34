//! Jobs API calls, made with a customer's API key.

use crate::sse::SseParser;
use crate::transfer::{body_to_file, file_body, sha256_file_async, transfer_timeout, with_path};
use crate::{Client, ClientError, decode, send, send_json};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use idlegrid_api::jobs::{
    AppInfo, ChangeApp, CompleteUpload, CreateJob, Job, JobChunks, JobList, OutputLinks,
    UploadPart, UploadParts, WebhookDeliveries,
};
use idlegrid_api::{Bundle, JobId, UploadReceipt, paths};
use reqwest::{Method, header};
use std::collections::VecDeque;
use std::path::Path;
use std::pin::Pin;

impl Client {
    /// `POST /v1/jobs`: creates a job, which then waits for its input and [`Client::run_job`].
    pub async fn create_job(&self, job: &CreateJob) -> Result<Job, ClientError> {
        send_json(self.request(Method::POST, paths::JOBS).json(job)).await
    }

    /// `PUT /v1/jobs/{id}/input` from a file, streamed; the file is hashed first so the
    /// coordinator can verify what it received.
    pub async fn upload_input_file(
        &self,
        job: JobId,
        path: &Path,
    ) -> Result<UploadReceipt, ClientError> {
        let (sha256, _) = sha256_file_async(path).await?;
        let request = self.streaming_request(Method::PUT, &paths::job_input(job));
        send_json(file_body(request, path, &sha256).await?).await
    }

    /// `PUT /v1/jobs/{id}/input` from memory.
    pub async fn upload_input_bytes(
        &self,
        job: JobId,
        bytes: Bytes,
    ) -> Result<UploadReceipt, ClientError> {
        let sha256 = crate::sha256_bytes(&bytes);
        let request = self
            .streaming_request(Method::PUT, &paths::job_input(job))
            .timeout(transfer_timeout(bytes.len() as u64))
            .header(paths::CONTENT_SHA256, sha256)
            .body(bytes);
        send_json(request).await
    }

    /// `PUT /v1/jobs/{id}/input/parts/{part}`: one part of an input uploaded in parts.
    pub async fn upload_part(
        &self,
        job: JobId,
        part: u32,
        bytes: Bytes,
    ) -> Result<UploadPart, ClientError> {
        let sha256 = crate::sha256_bytes(&bytes);
        let request = self
            .streaming_request(Method::PUT, &paths::job_input_part(job, part))
            .timeout(transfer_timeout(bytes.len() as u64))
            .header(paths::CONTENT_SHA256, sha256)
            .body(bytes);
        send_json(request).await
    }

    /// `GET /v1/jobs/{id}/input/parts`: the parts received so far.
    pub async fn upload_parts(&self, job: JobId) -> Result<UploadParts, ClientError> {
        send_json(self.request(Method::GET, &paths::job_input_parts(job))).await
    }

    /// `POST /v1/jobs/{id}/input/complete`: joins parts `0..parts` into the input.
    pub async fn complete_upload(
        &self,
        job: JobId,
        request: &CompleteUpload,
    ) -> Result<UploadReceipt, ClientError> {
        let call = self
            .streaming_request(Method::POST, &paths::job_input_complete(job))
            .json(request);
        send_json(call).await
    }

    /// `GET /v1/jobs/{id}/tasks`: a page of the job's chunks from index `from`.
    pub async fn job_chunks(
        &self,
        job: JobId,
        from: u64,
        limit: u32,
    ) -> Result<JobChunks, ClientError> {
        let path = format!("{}?from={from}&limit={limit}", paths::job_tasks(job));
        send_json(self.request(Method::GET, &path)).await
    }

    /// `GET /v1/jobs/{id}/logs`: a page of the job's logs after the one named `after`, with their
    /// lines at or above `level`.
    pub async fn job_logs(
        &self,
        job: JobId,
        after: Option<&str>,
        level: idlegrid_api::jobs::LogLevel,
    ) -> Result<idlegrid_api::jobs::JobLogs, ClientError> {
        let mut path = format!(
            "{}?level={}&limit=200",
            paths::job_logs(job),
            level.as_str()
        );
        if let Some(after) = after {
            path.push_str("&after=");
            path.push_str(after);
        }
        send_json(self.request(Method::GET, &path)).await
    }

    /// Every log of the job, page after page, with their lines at or above `level`.
    pub async fn all_job_logs(
        &self,
        job: JobId,
        level: idlegrid_api::jobs::LogLevel,
    ) -> Result<Vec<idlegrid_api::jobs::LogEntry>, ClientError> {
        let mut logs = Vec::new();
        let mut after = None;
        loop {
            let page = self.job_logs(job, after.as_deref(), level).await?;
            logs.extend(page.logs);
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(logs),
            }
        }
    }

    /// `POST /v1/jobs/{id}/links`: links to the output that need no credentials.
    pub async fn output_links(&self, job: JobId) -> Result<OutputLinks, ClientError> {
        send_json(self.request(Method::POST, &paths::job_links(job))).await
    }

    /// `POST /v1/jobs/{id}/run`: starts processing an uploaded job.
    pub async fn run_job(&self, job: JobId) -> Result<Job, ClientError> {
        send_json(self.request(Method::POST, &paths::job_run(job))).await
    }

    /// `GET /v1/jobs/{id}`: a job's status.
    pub async fn job(&self, job: JobId) -> Result<Job, ClientError> {
        send_json(self.request(Method::GET, &paths::job(job))).await
    }

    /// `GET /v1/jobs`: a page of at most `limit` jobs, newest first, older than `before` if
    /// given (pass the previous page's `next_before`).
    pub async fn list_jobs(
        &self,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<JobList, ClientError> {
        let mut path = format!("{}?limit={limit}", paths::JOBS);
        if let Some(before) = before {
            path.push_str(&format!("&before={before}"));
        }
        send_json(self.request(Method::GET, &path)).await
    }

    /// `GET /v1/jobs/{id}/webhook/deliveries`: the job's state changes and their delivery to
    /// its webhook, each with its attempts.
    pub async fn webhook_deliveries(&self, job: JobId) -> Result<WebhookDeliveries, ClientError> {
        send_json(self.request(Method::GET, &paths::job_webhook_deliveries(job))).await
    }

    /// `POST /v1/jobs/{id}/cancel`.
    pub async fn cancel_job(&self, job: JobId) -> Result<Job, ClientError> {
        send_json(self.request(Method::POST, &paths::job_cancel(job))).await
    }

    /// `POST /v1/jobs/{id}/clone`: a copy of a job, with its input, waiting for `run`.
    pub async fn clone_job(&self, job: JobId) -> Result<Job, ClientError> {
        send_json(self.request(Method::POST, &format!("{}/clone", paths::job(job)))).await
    }

    /// `DELETE /v1/jobs/{id}`: deletes a job that never ran (an estimate, a draft).
    pub async fn delete_job(&self, job: JobId) -> Result<(), ClientError> {
        crate::send(self.request(Method::DELETE, &paths::job(job)))
            .await
            .map(drop)
    }

    /// `GET /v1/jobs/{id}/output`, streamed into a temporary file next to `path` that replaces
    /// `path` only once its SHA-256 matches `expected_sha256` (from the job's `output`), so a
    /// broken download never leaves a plausible-looking file behind. Returns the size.
    pub async fn download_output(
        &self,
        job: JobId,
        path: &Path,
        expected_sha256: &str,
    ) -> Result<u64, ClientError> {
        let response = send(self.streaming_request(Method::GET, &paths::job_output(job))).await?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".idlegrid-download-")
            .tempfile_in(dir)
            .map_err(|err| with_path(err, "cannot create a temporary file in", dir))?;
        let mut file = tokio::fs::File::from_std(
            temp.as_file()
                .try_clone()
                .map_err(|err| with_path(err, "cannot open", temp.path()))?,
        );
        let (size, actual) = body_to_file(response, &mut file, temp.path()).await?;
        file.sync_all()
            .await
            .map_err(|err| with_path(err, "cannot write", temp.path()))?;
        if !actual.eq_ignore_ascii_case(expected_sha256) {
            return Err(ClientError::Digest {
                expected: expected_sha256.to_string(),
                actual,
            });
        }
        temp.persist(path)
            .map_err(|err| with_path(err.error, "cannot create", path))?;
        Ok(size)
    }

    /// `GET /v1/jobs/{id}/events`: the job's status each time it changes, until the coordinator
    /// closes the stream (after the job ends). Errors of the initial request (unknown job, bad
    /// key) come back at once; a connection lost later ends the stream with an error item.
    pub async fn job_events(
        &self,
        job: JobId,
    ) -> Result<impl Stream<Item = Result<Job, ClientError>> + Send + 'static, ClientError> {
        let request = self
            .streaming_request(Method::GET, &paths::job_events(job))
            .header(header::ACCEPT, "text/event-stream");
        let response = send(request).await?;
        Ok(job_stream(response.bytes_stream()))
    }

    /// `GET /v1/jobs/events`: the customer's newest jobs, then each one again when it changes,
    /// until the coordinator closes the stream. Errors as in [`Client::job_events`].
    pub async fn jobs_events(
        &self,
    ) -> Result<impl Stream<Item = Result<Job, ClientError>> + Send + 'static, ClientError> {
        let request = self
            .streaming_request(Method::GET, paths::JOBS_EVENTS)
            .header(header::ACCEPT, "text/event-stream");
        let response = send(request).await?;
        Ok(job_stream(response.bytes_stream()))
    }

    /// `GET /v1/apps`: the apps this account may run (built in, its own published ones and
    /// the public ones, each at its latest version).
    pub async fn apps(&self) -> Result<Vec<AppInfo>, ClientError> {
        send_json(self.request(Method::GET, paths::APPS)).await
    }

    /// `POST /v1/apps`: publishes a version of an app; `true` with it when it is new, `false`
    /// when it was published already as it is.
    pub async fn publish_app(&self, bundle: &Bundle) -> Result<(AppInfo, bool), ClientError> {
        let response = send(self.request(Method::POST, paths::APPS).json(bundle)).await?;
        let created = response.status() == reqwest::StatusCode::CREATED;
        let bytes = response.bytes().await?;
        Ok((decode(paths::APPS, &bytes)?, created))
    }

    /// `GET /v1/apps/{name}/versions`: a published app's versions, oldest first.
    pub async fn app_versions(&self, name: &str) -> Result<Vec<AppInfo>, ClientError> {
        send_json(self.request(Method::GET, &paths::app_versions(&path_segment(name)))).await
    }

    /// `GET /v1/admin/apps` (operators): every published app at its latest version.
    pub async fn published_apps(&self) -> Result<Vec<AppInfo>, ClientError> {
        send_json(self.request(Method::GET, paths::ADMIN_APPS)).await
    }

    /// `POST /v1/admin/apps/{name}` (operators): makes a published app public or private.
    pub async fn change_app(&self, name: &str, change: &ChangeApp) -> Result<(), ClientError> {
        send(
            self.request(Method::POST, &paths::admin_app(&path_segment(name)))
                .json(change),
        )
        .await
        .map(drop)
    }
}

/// `text` as one URL path segment: every byte but letters, digits, `-`, `_` and `~`
/// percent-encoded (dots too, so `..` stays a name), so a name typed by a person cannot reach
/// another path.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Turns an event-stream body into the `job` events it carries; other event types are skipped
/// so the coordinator can add some without breaking old clients.
fn job_stream<S, E>(bytes: S) -> impl Stream<Item = Result<Job, ClientError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<ClientError>,
{
    struct State<S> {
        bytes: Pin<Box<S>>,
        parser: SseParser,
        ready: VecDeque<Result<Job, ClientError>>,
        done: bool,
    }
    let state = State {
        bytes: Box::pin(bytes),
        parser: SseParser::new(),
        ready: VecDeque::new(),
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.ready.pop_front() {
                return Some((item, state));
            }
            if state.done {
                return None;
            }
            match state.bytes.next().await {
                None => state.done = true,
                Some(Err(err)) => {
                    state.done = true;
                    state.ready.push_back(Err(err.into()));
                }
                Some(Ok(chunk)) => match state.parser.push(&chunk) {
                    Ok(events) => state.ready.extend(
                        events
                            .into_iter()
                            .filter(|event| event.event == "job")
                            .map(|event| decode("job event", event.data.as_bytes())),
                    ),
                    Err(message) => {
                        state.done = true;
                        state.ready.push_back(Err(ClientError::Decode(message)));
                    }
                },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use idlegrid_api::JobState;

    const JOB: &str = r#"{"id":7,"app":"python-map","app_version":"1","state":"running","error":null,"params":{},"preferences":{"priority":0,"max_attempts":3,"task_timeout_secs":600},"verification":{"basis":"private_fleet","summary":"own devices"},"chunks":{"total":4,"created":4,"done":1,"queued":1,"running":2,"running_progress":0.5,"failed":0,"failed_attempts":0},"input":{"size":10,"sha256":"ab"},"output":null,"created_at":"2025-01-01T00:00:00Z","submitted_at":null,"started_at":null,"finished_at":null}"#;

    #[tokio::test]
    async fn job_events_survive_any_chunking() {
        let done = JOB.replace(r#""state":"running""#, r#""state":"completed""#);
        let body = format!(
            ": hi\n\nevent: job\ndata: {JOB}\n\nevent: other\ndata: x\n\nevent: job\r\ndata: {done}\r\n\r\n"
        );
        for size in [1, 2, 7, 64, body.len()] {
            let chunks: Vec<Result<Bytes, ClientError>> = body
                .as_bytes()
                .chunks(size)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let jobs: Vec<Job> = job_stream(futures::stream::iter(chunks))
                .map(|job| job.unwrap())
                .collect()
                .await;
            let states: Vec<JobState> = jobs.iter().map(|job| job.state).collect();
            assert_eq!(
                states,
                [JobState::Running, JobState::Completed],
                "size {size}"
            );
            assert_eq!(jobs[0].id, JobId(7));
        }
    }

    #[tokio::test]
    async fn broken_job_event_is_an_error_item() {
        let chunks: Vec<Result<Bytes, ClientError>> =
            vec![Ok(Bytes::from_static(b"event: job\ndata: {nope\n\n"))];
        let items: Vec<_> = job_stream(futures::stream::iter(chunks)).collect().await;
        assert_eq!(items.len(), 1);
        assert!(matches!(&items[0], Err(ClientError::Decode(m)) if m.starts_with("job event")));
    }
}
