//! The on-disk cache of app bundles, keyed by their SHA-256.
//!
//! `bundles/<sha>/manifest.json` holds the manifest and `bundles/<sha>/app/` the app's files.
//! A bundle is written to a temporary directory and renamed into place, so a crash never
//! leaves a half-written bundle that a later task would run.

use idlegrid_api::{AppManifest, Bundle};
use idlegrid_client::{Client, ClientError};
use std::io;
use std::path::{Path, PathBuf};

/// A bundle ready to run.
#[derive(Debug, Clone)]
pub(crate) struct CachedBundle {
    /// The file to run; Python puts its directory (the app's files) on the import path.
    pub entrypoint: PathBuf,
}

/// Why a bundle is not available.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BundleError {
    /// Fetching it failed.
    #[error("cannot fetch the app bundle: {0}")]
    Fetch(#[from] ClientError),
    /// The bundle is unusable; every worker would fail the same way.
    #[error("the app bundle is invalid: {0}")]
    Invalid(String),
    /// The cache directory could not be written or read.
    #[error("the worker cannot store the app bundle: {0}")]
    Io(#[from] io::Error),
}

/// Bundle cache under one directory.
#[derive(Debug)]
pub(crate) struct BundleCache {
    root: PathBuf,
    /// One fetch at a time, so tasks of the same new job do not download the bundle together.
    fetching: tokio::sync::Mutex<()>,
}

impl BundleCache {
    pub(crate) fn new(root: PathBuf) -> Self {
        BundleCache {
            root,
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The bundle with hash `sha256`, fetched with `client` unless cached.
    pub(crate) async fn get(
        &self,
        client: &Client,
        sha256: &str,
        lease: idlegrid_api::LeaseId,
    ) -> Result<CachedBundle, BundleError> {
        if !idlegrid_client::is_sha256_hex(sha256) {
            return Err(BundleError::Invalid(format!(
                "bundle hash {sha256:?} is not a hex SHA-256"
            )));
        }
        let sha256 = sha256.to_ascii_lowercase();
        let dir = self.root.join(&sha256);
        let _guard = self.fetching.lock().await;
        if dir.is_dir() {
            return open(dir).await;
        }
        let bundle = client.bundle(&sha256, lease).await?;
        check(&bundle)?;
        let root = self.root.clone();
        let target = dir.clone();
        tokio::task::spawn_blocking(move || install(&root, &target, &bundle))
            .await
            .map_err(io::Error::other)??;
        open(dir).await
    }
}

/// Refuses bundles whose names would escape the bundle directory or that cannot run.
fn check(bundle: &Bundle) -> Result<(), BundleError> {
    if let Some(bad) = bundle.files.keys().find(|n| !Bundle::is_safe_file_name(n)) {
        return Err(BundleError::Invalid(format!(
            "file name {bad:?} is not a plain file name"
        )));
    }
    let entrypoint = &bundle.manifest.entrypoint;
    if !bundle.files.contains_key(entrypoint) {
        return Err(BundleError::Invalid(format!(
            "entrypoint {entrypoint:?} is not among its files"
        )));
    }
    Ok(())
}

fn install(root: &Path, target: &Path, bundle: &Bundle) -> io::Result<()> {
    let temp = tempfile::Builder::new().prefix(".tmp-").tempdir_in(root)?;
    let manifest = serde_json::to_vec_pretty(&bundle.manifest).map_err(io::Error::other)?;
    std::fs::write(temp.path().join("manifest.json"), manifest)?;
    let app = temp.path().join("app");
    std::fs::create_dir(&app)?;
    for (name, content) in &bundle.files {
        std::fs::write(app.join(name), content)?;
    }
    match std::fs::rename(temp.path(), target) {
        Ok(()) => {
            // Renamed away: nothing left for the TempDir to clean up.
            let _ = temp.keep();
            Ok(())
        }
        // Installed meanwhile by another worker process sharing this cache.
        Err(_) if target.is_dir() => Ok(()),
        Err(err) => Err(err),
    }
}

async fn open(dir: PathBuf) -> Result<CachedBundle, BundleError> {
    let manifest = tokio::fs::read(dir.join("manifest.json")).await?;
    let manifest: AppManifest = serde_json::from_slice(&manifest)
        .map_err(|err| BundleError::Invalid(format!("cached manifest: {err}")))?;
    if !Bundle::is_safe_file_name(&manifest.entrypoint) {
        return Err(BundleError::Invalid(format!(
            "entrypoint {:?} is not a plain file name",
            manifest.entrypoint
        )));
    }
    Ok(CachedBundle {
        entrypoint: dir.join("app").join(&manifest.entrypoint),
    })
}

/// Removes temporary directories a crashed worker left behind.
pub(crate) fn remove_leftovers(root: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(files: &[(&str, &str)]) -> Bundle {
        Bundle {
            manifest: AppManifest {
                name: "python-map".into(),
                version: "1".into(),
                description: "test".into(),
                entrypoint: "main.py".into(),
                input_name: "chunk.txt".into(),
                partitioner: "lines".into(),
                validator: "any".into(),
                assembler: "concat".into(),
                customer_script: false,
                deterministic: false,
                requirements: Default::default(),
                replication: None,
                parameters: None,
            },
            files: files
                .iter()
                .map(|(n, c)| (n.to_string(), c.to_string()))
                .collect(),
        }
    }

    #[test]
    fn unsafe_names_and_missing_entrypoints_are_refused() {
        let err = check(&bundle(&[("main.py", ""), ("../evil.py", "")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the app bundle is invalid: file name \"../evil.py\" is not a plain file name"
        );
        let err = check(&bundle(&[("other.py", "")])).unwrap_err();
        assert!(err.to_string().contains("entrypoint \"main.py\""), "{err}");
        assert!(check(&bundle(&[("main.py", ""), ("lib.py", "")])).is_ok());
    }

    #[tokio::test]
    async fn installed_bundles_open_from_disk() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("ab");
        install(root.path(), &target, &bundle(&[("main.py", "print(1)")])).unwrap();
        // A second install of the same bundle (another process) is not an error.
        install(root.path(), &target, &bundle(&[("main.py", "print(1)")])).unwrap();
        let cached = open(target.clone()).await.unwrap();
        assert_eq!(cached.entrypoint, target.join("app/main.py"));
        assert_eq!(
            std::fs::read_to_string(&cached.entrypoint).unwrap(),
            "print(1)"
        );
        std::fs::create_dir(root.path().join(".tmp-crashed")).unwrap();
        remove_leftovers(root.path()).unwrap();
        let names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["ab"]);
    }
}
