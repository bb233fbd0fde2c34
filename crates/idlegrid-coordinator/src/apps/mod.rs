//! The apps (services) this coordinator offers, and the app-specific parts the coordinator runs
//! for them: partitioners, validators and assemblers, chosen by the names in each manifest.
//!
//! An app is a versioned bundle — manifest plus Python task script. The built-in ones are kept in
//! the repository under `crates/idlegrid-coordinator/apps/<name>/`; for apps whose customers
//! bring their own script (python-map), each job gets a bundle of its own: the app's manifest
//! plus that script. Customers and partners publish apps of their own ([`published`]).

pub mod plugin;
pub mod published;
pub mod steps;
pub mod video;

use bytes::Bytes;
use futures::StreamExt;
use idlegrid_api::Bundle;
use idlegrid_domain::AppManifest;
use idlegrid_storage::StorageError;
use idlegrid_storage::blobs::BlobStore;
use idlegrid_storage::records::{AppVersion, OutputRef, Store};
use plugin::{Assembler, Partitioner, Validator};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Name of the task script file inside a bundle built from a customer's script.
pub const CUSTOMER_SCRIPT_FILE: &str = "task.py";

/// One app: its manifest and the coordinator-side parts it names.
pub struct App {
    /// The manifest.
    pub manifest: AppManifest,
    /// The app's own files (its task script), for apps without a customer script.
    pub files: BTreeMap<String, String>,
    /// Splits inputs.
    pub partitioner: Arc<dyn Partitioner>,
    /// Judges results.
    pub validator: Arc<dyn Validator>,
    /// Merges results.
    pub assembler: Arc<dyn Assembler>,
}

impl App {
    /// The bundle workers run for a job of this app: its manifest plus either the customer's
    /// script (as the entrypoint) or the app's own files. Returns the served bytes and their
    /// SHA-256.
    pub fn bundle(&self, customer_script: Option<&str>) -> (Bytes, String) {
        let mut manifest = self.manifest.clone();
        let files = match customer_script {
            Some(script) => {
                manifest.entrypoint = CUSTOMER_SCRIPT_FILE.to_string();
                BTreeMap::from([(CUSTOMER_SCRIPT_FILE.to_string(), script.to_string())])
            }
            None => self.files.clone(),
        };
        let bundle = Bundle {
            manifest,
            files,
            wheels: Default::default(),
        };
        // Serializing plain data (strings, maps) cannot fail.
        let bytes = Bytes::from(serde_json::to_vec(&bundle).unwrap_or_default());
        let sha = idlegrid_storage::blobs::sha256_hex(&bytes);
        (bytes, sha)
    }

    /// What a job of this app with `params` needs from a device.
    pub fn requirements(&self, params: &serde_json::Value) -> idlegrid_domain::Requirements {
        self.partitioner
            .requirements(params, &self.manifest.requirements)
    }

    /// A job's whole workload from what its partitioner counts: each step of the app that is
    /// its own script (partition, reduce) runs as one more task, billed like the largest chunk.
    pub fn with_steps(&self, mut workload: plugin::Workload) -> plugin::Workload {
        let steps = [self.partitioner.step(), self.assembler.step()];
        for _ in steps.iter().flatten() {
            workload.work_ms += workload.largest_chunk_ms;
            workload.chunks += 1;
        }
        workload
    }

    /// Memory one task may use, in MiB.
    pub fn task_memory_mb(&self) -> u64 {
        self.manifest.requirements.memory_mb.unwrap_or(1024)
    }
}

/// The apps on offer: the built-in ones by name, and the published versions met so far.
pub struct AppRegistry {
    apps: BTreeMap<String, Arc<App>>,
    /// Published app versions read from the records, by name and version (a version never
    /// changes, so what is cached stays true).
    published: std::sync::RwLock<HashMap<(String, String), Arc<App>>>,
}

/// A local file holding the blob: the blob's own file when the store keeps local files (read
/// in place, never written), else a copy made at `copy`.
pub(crate) async fn readable(
    blobs: &dyn BlobStore,
    key: &str,
    copy: &Path,
) -> Result<PathBuf, StorageError> {
    if let Some(file) = blobs.local_path(key) {
        return Ok(file);
    }
    let mut stream = blobs.get(key, None).await?;
    let mut file = tokio::fs::File::create(copy)
        .await
        .map_err(|e| StorageError::Backend(format!("creating {}: {e}", copy.display())))?;
    while let Some(bytes) = stream.next().await {
        file.write_all(&bytes?)
            .await
            .map_err(|e| StorageError::Backend(format!("writing {}: {e}", copy.display())))?;
    }
    file.flush()
        .await
        .map_err(|e| StorageError::Backend(format!("writing {}: {e}", copy.display())))?;
    Ok(copy.to_path_buf())
}

/// A local file holding a result's output (see [`readable`]); inline outputs are written to
/// `copy`.
pub(crate) async fn readable_output(
    blobs: &dyn BlobStore,
    output: &OutputRef,
    copy: &Path,
) -> Result<PathBuf, StorageError> {
    match output {
        OutputRef::Inline(bytes) => {
            tokio::fs::write(copy, bytes)
                .await
                .map_err(|e| StorageError::Backend(format!("writing {}: {e}", copy.display())))?;
            Ok(copy.to_path_buf())
        }
        OutputRef::Blob(key) => readable(blobs, key, copy).await,
    }
}

fn manifest(json: &str) -> AppManifest {
    // The built-in manifests are part of the binary and checked by the tests below.
    serde_json::from_str(json).unwrap_or_else(|e| panic!("built-in app manifest is invalid: {e}"))
}

impl AppRegistry {
    /// The apps built into this coordinator.
    pub fn builtin() -> Self {
        let python_map = App {
            manifest: manifest(include_str!("../../apps/python-map/manifest.json")),
            files: BTreeMap::new(),
            partitioner: Arc::new(steps::lines::Lines { header: false }),
            validator: Arc::new(steps::integrity::Integrity),
            assembler: Arc::new(steps::concat::Concat),
        };
        let files = |entries: &[(&str, &str)]| {
            entries
                .iter()
                .map(|(name, text)| (name.to_string(), text.to_string()))
                .collect()
        };
        let video_transcode = App {
            manifest: manifest(include_str!("../../apps/video-transcode/manifest.json")),
            files: files(&[(
                "task.py",
                include_str!("../../apps/video-transcode/task.py"),
            )]),
            partitioner: Arc::new(video::VideoPartitioner),
            validator: Arc::new(video::VideoValidator::default()),
            assembler: Arc::new(video::VideoAssembler),
        };
        let apps = [python_map, video_transcode]
            .into_iter()
            .map(|app| (app.manifest.name.clone(), Arc::new(app)))
            .collect();
        AppRegistry {
            apps,
            published: Default::default(),
        }
    }

    /// A built-in app by name.
    pub fn get(&self, name: &str) -> Option<Arc<App>> {
        self.apps.get(name).cloned()
    }

    /// The app a job of `name` at `version` runs, as far as this registry has met it: built in
    /// by name, or a published version read before ([`AppRegistry::load`]).
    pub fn of_job(&self, name: &str, version: &str) -> Option<Arc<App>> {
        self.get(name).or_else(|| {
            self.published
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(name.to_string(), version.to_string()))
                .cloned()
        })
    }

    /// The app a job of `name` at `version` runs, reading a published version from the
    /// records the first time; `None` for an app neither built in nor published.
    pub async fn load(
        &self,
        store: &dyn Store,
        name: &str,
        version: &str,
    ) -> Result<Option<Arc<App>>, StorageError> {
        if let Some(app) = self.of_job(name, version) {
            return Ok(Some(app));
        }
        let Some(record) = store
            .app_versions(name)
            .await?
            .into_iter()
            .find(|v| v.version == version)
        else {
            return Ok(None);
        };
        Ok(self.remember(&record))
    }

    /// Keeps the app a published version's record describes; `None` when its manifest does
    /// not read (it was checked when published).
    pub fn remember(&self, record: &AppVersion) -> Option<Arc<App>> {
        let manifest: AppManifest = serde_json::from_str(&record.manifest).ok()?;
        let app = Arc::new(published::app_of(manifest)?);
        self.published
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((record.name.clone(), record.version.clone()), app.clone());
        Some(app)
    }

    /// All apps, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<App>> {
        self.apps.values()
    }

    /// Names of all apps, for error messages.
    pub fn names(&self) -> String {
        self.apps.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_apps_load_and_name_their_parts() {
        let apps = AppRegistry::builtin();
        let python_map = apps.get("python-map").expect("python-map is built in");
        assert_eq!(python_map.manifest.partitioner, "lines");
        assert!(python_map.manifest.customer_script);
        assert!(apps.get("nope").is_none());
        let video = apps
            .get("video-transcode")
            .expect("video-transcode is built in");
        assert!(video.files.contains_key(&video.manifest.entrypoint));
        assert!(video.manifest.requirements.ffmpeg);
    }

    #[test]
    fn customer_bundles_are_content_addressed() {
        let apps = AppRegistry::builtin();
        let app = apps.get("python-map").unwrap();
        let (bytes, sha) = app.bundle(Some("print(1)"));
        let (_, same) = app.bundle(Some("print(1)"));
        let (_, other) = app.bundle(Some("print(2)"));
        assert_eq!(sha, same);
        assert_ne!(sha, other);
        let bundle: Bundle = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(bundle.files[&bundle.manifest.entrypoint], "print(1)");
    }
}
