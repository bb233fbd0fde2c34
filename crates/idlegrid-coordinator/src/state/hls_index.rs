//! Indexes of HLS output archives: where each file of an archive is, so the files of an HLS
//! output are served by ranged reads of its one stored tar.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Where each file of an HLS output's tar archive is: path → (offset, size).
pub type TarIndex = HashMap<String, (u64, u64)>;

/// Indexes of HLS archives read so far, by blob key (outputs never change once stored).
#[derive(Debug, Default)]
pub struct HlsIndexes {
    indexes: Mutex<HashMap<String, Arc<TarIndex>>>,
}

/// Indexes kept; past that the cache starts afresh.
const MAX_INDEXES: usize = 64;

impl HlsIndexes {
    /// The index of the archive at `key`, read with `read` the first time.
    pub async fn get<E, F>(&self, key: &str, read: impl FnOnce() -> F) -> Result<Arc<TarIndex>, E>
    where
        F: Future<Output = Result<TarIndex, E>>,
    {
        if let Some(index) = self.lock().get(key) {
            return Ok(index.clone());
        }
        let index = Arc::new(read().await?);
        let mut indexes = self.lock();
        if indexes.len() >= MAX_INDEXES {
            indexes.clear();
        }
        indexes.insert(key.to_string(), index.clone());
        Ok(index)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TarIndex>>> {
        self.indexes.lock().unwrap_or_else(|e| e.into_inner())
    }
}
