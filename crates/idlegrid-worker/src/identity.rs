//! The worker's identity: registration with an enrollment token, and the credentials kept in
//! `state_dir/credentials.json` so a restarted worker is the same worker.

use crate::backoff::Backoff;
use anyhow::Context;
use idlegrid_api::tasks::{RegisterWorker, Registered};
use idlegrid_api::{Capabilities, WorkerId};
use idlegrid_client::{Client, ClientError};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the credentials inside the state directory.
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// What `credentials.json` holds. The heartbeat period is kept too because the coordinator
/// states it only at registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Credentials {
    coordinator: String,
    worker_id: WorkerId,
    token: String,
    heartbeat_secs: u64,
}

/// A registered worker, ready to call the Tasks API.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// Client authenticated with the worker token.
    pub client: Client,
    /// The worker's id, for logs.
    pub worker_id: WorkerId,
    /// How often to heartbeat.
    pub heartbeat: Duration,
}

/// Where registration happens and with what.
pub(crate) struct Enrollment<'a> {
    pub coordinator: &'a str,
    pub enrollment_token: &'a str,
    pub name: &'a str,
    pub capabilities: &'a Capabilities,
    pub state_dir: &'a Path,
}

impl Enrollment<'_> {
    fn credentials_path(&self) -> PathBuf {
        self.state_dir.join(CREDENTIALS_FILE)
    }

    fn coordinator(&self) -> &str {
        self.coordinator.trim_end_matches('/')
    }

    /// Reuses saved credentials for this coordinator (telling it what the device offers now),
    /// or registers.
    pub(crate) async fn load_or_register(&self) -> anyhow::Result<Identity> {
        if let Some(saved) = self.saved()? {
            tracing::info!(worker_id = %saved.worker_id, "reusing saved worker credentials");
            let identity = identity(&saved)?;
            match self.report_capabilities(&identity).await {
                Ok(()) => return Ok(identity),
                Err(err) if err.status() == Some(401) => tracing::warn!(
                    "the coordinator refused the saved worker token ({err}); registering anew"
                ),
                Err(err) => {
                    return Err(err).context("the coordinator refused this device's capabilities");
                }
            }
        }
        self.register().await
    }

    /// The saved credentials, if there are any for this coordinator.
    fn saved(&self) -> anyhow::Result<Option<Credentials>> {
        let path = self.credentials_path();
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Credentials>(&bytes) {
                Ok(saved) if saved.coordinator == self.coordinator() => return Ok(Some(saved)),
                Ok(saved) => tracing::info!(
                    saved = %saved.coordinator,
                    "saved credentials are for another coordinator; registering anew"
                ),
                Err(err) => tracing::warn!(
                    path = %path.display(),
                    "ignoring unreadable credentials ({err}); registering anew"
                ),
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot read {}", path.display()));
            }
        }
        Ok(None)
    }

    /// Tells the coordinator what this device offers now (its owner may have changed the
    /// allowances since it registered, and the benchmark moves), retrying while the
    /// coordinator is unreachable.
    async fn report_capabilities(&self, identity: &Identity) -> Result<(), ClientError> {
        let mut backoff = Backoff::new();
        loop {
            match identity.client.update_capabilities(self.capabilities).await {
                Ok(()) => return Ok(()),
                Err(err) if err.is_retryable() => {
                    let delay = backoff.next_delay();
                    tracing::warn!("cannot report capabilities yet ({err}); retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Registers as a new worker and saves the credentials, retrying while the coordinator is
    /// unreachable. A refused enrollment token is an error.
    pub(crate) async fn register(&self) -> anyhow::Result<Identity> {
        let request = RegisterWorker {
            name: self.name.to_string(),
            capabilities: self.capabilities.clone(),
        };
        let mut backoff = Backoff::new();
        let registered: Registered = loop {
            match Client::register(self.coordinator(), self.enrollment_token, &request).await {
                Ok(registered) => break registered,
                Err(err) if err.is_retryable() => {
                    let delay = backoff.next_delay();
                    tracing::warn!("cannot register yet ({err}); retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                Err(err) => {
                    return Err(err).with_context(|| {
                        format!(
                            "the coordinator at {} refused to register this worker",
                            self.coordinator()
                        )
                    });
                }
            }
        };
        tracing::info!(worker_id = %registered.worker_id, "registered as a new worker");
        let credentials = Credentials {
            coordinator: self.coordinator().to_string(),
            worker_id: registered.worker_id,
            token: registered.token,
            heartbeat_secs: registered.heartbeat_secs,
        };
        save(&self.credentials_path(), &credentials)?;
        identity(&credentials)
    }
}

fn identity(credentials: &Credentials) -> anyhow::Result<Identity> {
    let client = Client::new(&credentials.coordinator, &credentials.token)
        .context("cannot set up the HTTP client")?;
    Ok(Identity {
        client,
        worker_id: credentials.worker_id,
        heartbeat: Duration::from_secs(credentials.heartbeat_secs.max(1)),
    })
}

/// Writes the credentials readable by the owner only, atomically, so a crash never leaves a
/// half-written token.
fn save(path: &Path, credentials: &Credentials) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // NamedTempFile is created with mode 0600, and the rename keeps it.
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    serde_json::to_writer_pretty(&mut file, credentials)?;
    file.write_all(b"\n")?;
    file.as_file().sync_all()?;
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn saved_credentials_are_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = Credentials {
            coordinator: "http://127.0.0.1:9".into(),
            worker_id: WorkerId(5),
            token: "secret".into(),
            heartbeat_secs: 7,
        };
        save(&dir.path().join(CREDENTIALS_FILE), &credentials).unwrap();
        let mode = std::fs::metadata(dir.path().join(CREDENTIALS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let capabilities = Capabilities::default();
        let enrollment = Enrollment {
            coordinator: "http://127.0.0.1:9/",
            enrollment_token: "unused",
            name: "test",
            capabilities: &capabilities,
            state_dir: dir.path(),
        };
        let saved = enrollment
            .saved()
            .unwrap()
            .expect("credentials for this coordinator");
        let identity = identity(&saved).unwrap();
        assert_eq!(identity.worker_id, WorkerId(5));
        assert_eq!(identity.heartbeat, Duration::from_secs(7));
        let elsewhere = Enrollment {
            coordinator: "http://127.0.0.1:10",
            ..enrollment
        };
        assert!(elsewhere.saved().unwrap().is_none());
    }
}
