//! The handle report handlers write through: each request's checked reports go to the one
//! recorder task (in the pipeline), which commits what arrived together as one
//! batch, and the request waits until its reports are written.

use idlegrid_storage::StorageError;
use idlegrid_storage::records::{NewFailure, NewResult};
use std::sync::Mutex;
use tokio::sync::{mpsc, oneshot};

/// Checked reports of one request whose leases were already claimed.
#[derive(Debug, Default)]
pub struct Batch {
    /// Completed tasks.
    pub results: Vec<NewResult>,
    /// Failed attempts, and hand-backs (outcome `abandoned`, not charged); either way the
    /// task goes back to its queue.
    pub failures: Vec<NewFailure>,
}

/// A request's reports waiting for the recorder, and where to say whether they were written.
pub struct Waiting {
    /// The reports.
    pub batch: Batch,
    /// Told the outcome once the batch they went into is written (or failed).
    pub done: oneshot::Sender<Result<(), String>>,
}

/// The handle report handlers write through.
pub struct Recorder {
    tx: mpsc::UnboundedSender<Waiting>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Waiting>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Recorder {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Recorder {
    /// Records a request's reports; returns once they are committed and queued for validation.
    pub async fn record(&self, batch: Batch) -> Result<(), StorageError> {
        if batch.results.is_empty() && batch.failures.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Waiting { batch, done })
            .map_err(|_| StorageError::Backend("the coordinator is shutting down".into()))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StorageError::Backend(e)),
            Err(_) => Err(StorageError::Backend(
                "the coordinator is shutting down".into(),
            )),
        }
    }

    /// The receiving end, for the recorder task; `None` once taken.
    pub fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<Waiting>> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
