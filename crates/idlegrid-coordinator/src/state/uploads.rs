//! Leases whose output is being uploaded to this coordinator right now, so a device cannot
//! run two uploads for one lease at once.

use idlegrid_domain::LeaseId;

/// Leases whose output is being uploaded to this coordinator right now.
#[derive(Debug, Default)]
pub struct OutputUploads(std::sync::Mutex<std::collections::HashSet<LeaseId>>);

/// A lease's place in [`OutputUploads`], given up when the upload ends (or its request is
/// dropped).
pub struct Uploading<'a>(&'a OutputUploads, LeaseId);

impl OutputUploads {
    fn set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<LeaseId>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lease's place, unless one of its uploads is under way already.
    pub fn start(&self, lease: LeaseId) -> Option<Uploading<'_>> {
        self.set().insert(lease).then_some(Uploading(self, lease))
    }
}

impl Drop for Uploading<'_> {
    fn drop(&mut self) {
        self.0.set().remove(&self.1);
    }
}
