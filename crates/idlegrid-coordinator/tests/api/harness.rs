//! What every test of the APIs shares: a coordinator served in-process on a loopback port
//! ([`TestGrid`]), its customers and devices, and the steps a device takes.

pub use base64::Engine;
pub use futures::StreamExt;
pub use idlegrid_api::accounts::{AccountKind, DeviceStatus};
pub use idlegrid_api::jobs::{
    BucketObject, ChunkState, ChunkView, CompleteUpload, CreateJob, Deposit, EstimateRequest,
    InputSource, Job, Preferences, VideoDescription, WebhookDeliveries, WebhookSpec,
};
pub use idlegrid_api::tasks::{
    Heartbeat, HeartbeatItem, LeaseGrant, LeaseRequest, RegisterWorker, Report, ReportItem,
    ReportOutcome,
};
pub use idlegrid_api::{Capabilities, JobId, JobState};
pub use idlegrid_client::{Client, ClientError, sha256_bytes};
pub use idlegrid_coordinator::{Config, Credentials, Grid};
pub use idlegrid_domain::Account;
pub use idlegrid_testkit::{
    completed, files_under, job_once_ended, python_map_job, transcode_job, unique_name,
};
pub use std::sync::Arc;
pub use std::time::Duration;
pub use tokio_util::sync::CancellationToken;

/// What the test's devices report: a 4-core Linux box with Python and no FFmpeg, a task per core.
pub fn device_caps() -> Capabilities {
    Capabilities {
        cores: 4,
        memory_mb: 4096,
        os: "linux".into(),
        arch: "x86_64".into(),
        python: Some("3.11.7".into()),
        ffmpeg: None,
        benchmark: 100.0,
        slots: 4,
        allows: Default::default(),
        ..Default::default()
    }
}

pub struct TestGrid {
    pub url: String,
    pub credentials: Credentials,
    pub grid: Arc<Grid>,
    pub stop: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub dir: tempfile::TempDir,
}

impl TestGrid {
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestGrid {
        Self::start_in(tempfile::tempdir().unwrap(), tweak).await
    }

    pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestGrid {
        let mut config = Config::new(dir.path());
        tweak(&mut config);
        let (grid, credentials) = Grid::open(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let server = tokio::spawn(idlegrid_coordinator::serve(
            listener,
            grid.clone(),
            stop.clone(),
        ));
        TestGrid {
            url,
            credentials,
            grid,
            stop,
            server,
            dir,
        }
    }

    pub async fn stop(self) -> tempfile::TempDir {
        self.stop.cancel();
        self.server.await.unwrap().unwrap();
        self.dir
    }

    pub fn customer(&self) -> Client {
        Client::new(&self.url, &self.credentials.api_key).unwrap()
    }

    pub async fn worker(&self, name: &str) -> Client {
        self.device_with(&self.credentials.enrollment_token, name)
            .await
    }

    /// A new device owner of its own (made with the operator key), and its enrollment token.
    pub async fn owner(&self, name: &str) -> String {
        idlegrid_testkit::new_owner(&self.url, &self.credentials.operator_key, name).await
    }

    /// A device registered with enrollment token `token`.
    pub async fn device_with(&self, token: &str, name: &str) -> Client {
        idlegrid_testkit::register_device(&self.url, token, name, device_caps()).await
    }

    /// A device of an owner of its own, named after it.
    pub async fn stranger(&self, name: &str) -> Client {
        let token = self.owner(name).await;
        self.device_with(&token, name).await
    }

    /// Creates, uploads and runs a python-map job over `input`.
    pub async fn submit(&self, input: &str, chunk_lines: u64, max_attempts: u32) -> Job {
        let preferences = Preferences {
            max_attempts,
            ..Preferences::default()
        };
        self.submit_with(input, chunk_lines, preferences).await
    }

    /// Creates, uploads and runs a python-map job over `input`, run as `preferences` say.
    pub async fn submit_with(
        &self,
        input: &str,
        chunk_lines: u64,
        preferences: Preferences,
    ) -> Job {
        let customer = self.customer();
        let job = self.create(chunk_lines, preferences).await;
        customer
            .upload_input_bytes(job.id, input.to_string().into())
            .await
            .unwrap();
        customer.run_job(job.id).await.unwrap()
    }

    /// A running fast-tier job of one chunk, `only`.
    pub async fn submit_one_fast_chunk(&self) -> Job {
        let fast = Preferences {
            tier: idlegrid_domain::Tier::Fast,
            ..Preferences::default()
        };
        self.submit_with("only\n", 1, fast).await
    }
}

impl TestGrid {
    /// A client of a second customer, `other`.
    pub async fn other_customer(&self) -> Client {
        let other = self.grid.store.ensure_tenant("other").await.unwrap();
        let secret = idlegrid_storage::records::NewSecret {
            hash: idlegrid_coordinator::http::auth::hash_secret("igk_other"),
            prefix: "igk_other".into(),
            name: "test".into(),
            session_expires_at: None,
            parent: None,
        };
        self.grid
            .store
            .add_secret(idlegrid_storage::records::Principal::Tenant(other), &secret)
            .await
            .unwrap();
        Client::new(&self.url, "igk_other").unwrap()
    }

    /// Creates a python-map job of `chunk_lines` lines per chunk, waiting for its input.
    pub async fn create(&self, chunk_lines: u64, preferences: Preferences) -> Job {
        self.customer()
            .create_job(&CreateJob {
                preferences,
                ..python_map_job(
                    "print('hi')\n",
                    Some(chunk_lines),
                    serde_json::json!({"n": 1}),
                )
            })
            .await
            .unwrap()
    }
}

pub async fn lease(worker: &Client, max: u32) -> LeaseGrant {
    worker
        .lease(&LeaseRequest {
            max_tasks: max,
            wait_ms: 5000,
        })
        .await
        .unwrap()
}

/// Reports one lease's outcome; the reply says whether it was taken.
pub async fn report_one(
    worker: &Client,
    lease_id: idlegrid_api::LeaseId,
    task_id: idlegrid_api::TaskId,
    outcome: ReportOutcome,
) -> idlegrid_api::tasks::ReportReply {
    worker
        .report(&Report {
            reports: vec![ReportItem {
                lease_id,
                task_id,
                outcome,
                log: None,
            }],
        })
        .await
        .unwrap()
}

pub async fn wait_for(customer: &Client, job: JobId, state: JobState) -> Job {
    for _ in 0..200 {
        let status = customer.job(job).await.unwrap();
        if status.state == state {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "job {job} never became {state}: {:?}",
        customer.job(job).await.unwrap()
    );
}

pub fn api_code(e: ClientError) -> (u16, String) {
    (
        e.status().unwrap_or(0),
        e.code().unwrap_or_default().to_string(),
    )
}

/// Plays a device that upper-cases every chunk it leases, until `job` is completed or failed.
pub async fn upper_case_until_done(grid: &TestGrid, worker: &Client, job: JobId) -> Job {
    let customer = grid.customer();
    for _ in 0..400 {
        let status = customer.job(job).await.unwrap();
        if status.state.is_terminal() {
            return status;
        }
        let grant = worker
            .lease(&LeaseRequest {
                max_tasks: 10,
                wait_ms: 50,
            })
            .await
            .unwrap();
        for l in grant.leases {
            let path = grid.dir.path().join(format!("chunk-{}", l.lease_id));
            worker
                .download_lease_input(l.lease_id, &path)
                .await
                .unwrap();
            let text = std::fs::read_to_string(&path).unwrap().to_uppercase();
            report_one(worker, l.lease_id, l.task_id, completed(text.as_bytes())).await;
        }
    }
    panic!("job {job} never ended");
}

/// Serves `body` to every request on a loopback port, as a customer's web server would.
pub async fn serve_file(body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/input.txt", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
        }
    });
    url
}

/// A python-map job of one-line chunks that prints 1.
pub fn print_one_job() -> CreateJob {
    python_map_job("print(1)\n", Some(1), serde_json::json!({}))
}

pub fn create_from(input_from: InputSource, output_to: Option<BucketObject>) -> CreateJob {
    CreateJob {
        input_from: Some(input_from),
        output_to,
        ..print_one_job()
    }
}

/// A fresh database on the PostgreSQL `scripts/services.sh` started (`IDLEGRID_TEST_POSTGRES`);
/// `None`, with a note, when it is not set (unless the services are required).
pub fn fresh_postgres() -> Option<String> {
    idlegrid_testkit::fresh_postgres("api_")
}

/// The customer's own bucket on the S3 server `scripts/services.sh` started
/// (`IDLEGRID_TEST_S3`, `s3://bucket?endpoint=http://127.0.0.1:PORT`), with the customer's keys.
pub struct CustomerBucket {
    /// The bucket, as the test reaches it.
    pub store: idlegrid_storage::blobs::ObjectBlobStore,
    /// Its name.
    pub bucket: String,
    endpoint: String,
}

impl CustomerBucket {
    /// The bucket; `None`, with a note that `what` is skipped, when `IDLEGRID_TEST_S3` is not
    /// set (unless the services are required).
    pub fn open(what: &str) -> Option<CustomerBucket> {
        let s3 = idlegrid_testkit::service("IDLEGRID_TEST_S3", what)?;
        let (bucket, query) = s3.trim_start_matches("s3://").split_once('?').unwrap();
        let endpoint = query.trim_start_matches("endpoint=").to_string();
        let store = idlegrid_storage::blobs::ObjectBlobStore::customer_bucket(
            bucket,
            Some(&endpoint),
            None,
            Some(("customer-key", "customer-secret")),
        )
        .unwrap();
        Some(CustomerBucket {
            store,
            bucket: bucket.to_string(),
            endpoint,
        })
    }

    /// How a job names the object `key` of the bucket, with the customer's keys.
    pub fn object(&self, key: &str) -> BucketObject {
        BucketObject {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            endpoint: Some(self.endpoint.clone()),
            region: None,
            access_key_id: Some("customer-key".into()),
            secret_access_key: Some("customer-secret".into()),
        }
    }
}
