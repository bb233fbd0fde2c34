//! Change notifications: stages announce "job N changed" after committing, and the Jobs API's
//! event streams re-read the job from the records. The records stay the only source of truth; a
//! missed notification only delays an event until the stream's periodic re-read.

use idlegrid_domain::JobId;
use tokio::sync::broadcast;

/// Broadcasts ids of jobs whose records changed.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<JobId>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl EventBus {
    /// Announces that a job changed.
    pub fn job_changed(&self, job: JobId) {
        // No receiver is fine: nobody is watching.
        let _ = self.tx.send(job);
    }

    /// Subscribes to change announcements.
    pub fn subscribe(&self) -> broadcast::Receiver<JobId> {
        self.tx.subscribe()
    }
}
