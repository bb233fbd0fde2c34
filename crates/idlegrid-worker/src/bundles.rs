//! The on-disk cache of app bundles, keyed by their SHA-256.
//!
//! `bundles/<sha>/manifest.json` holds the manifest and `bundles/<sha>/app/` the app's files,
//! with the Python packages it brings unpacked beside them (of each, the wheel built for this
//! device), so its script imports them as its own modules, offline. A bundle is written to a
//! temporary directory and renamed into place, so a crash never leaves a half-written bundle
//! that a later task would run. Tasks run from a copy of `app/`: none can change the cache.

use base64::Engine;
use idlegrid_api::{AppManifest, Bundle, Capabilities};
use idlegrid_client::{Client, ClientError};
use std::io;
use std::path::{Path, PathBuf};

/// A bundle ready to run.
#[derive(Debug, Clone)]
pub(crate) struct CachedBundle {
    /// The file to run; Python puts its directory (the app's files) on the import path.
    pub entrypoint: PathBuf,
}

impl CachedBundle {
    /// The file a lease runs: its `script` (a step of the app, such as its reduce), a Python
    /// file of the bundle, or else the entrypoint.
    pub fn script(&self, script: Option<&str>) -> Result<PathBuf, String> {
        let Some(name) = script else {
            return Ok(self.entrypoint.clone());
        };
        let path = self.entrypoint.with_file_name(name);
        if !Bundle::is_safe_file_name(name) || !name.ends_with(".py") || !path.is_file() {
            return Err(format!(
                "the lease's script {name:?} is not a Python file of the app's bundle"
            ));
        }
        Ok(path)
    }
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

/// Most bytes the wheels of one bundle unpack to.
const MAX_UNPACKED_BYTES: u64 = 1 << 30;
/// Most files they unpack to.
const MAX_UNPACKED_FILES: usize = 100_000;

/// Bundle cache under one directory.
#[derive(Debug)]
pub(crate) struct BundleCache {
    root: PathBuf,
    /// This device, to pick the wheels built for it.
    device: Capabilities,
    /// One fetch at a time, so tasks of the same new job do not download the bundle together.
    fetching: tokio::sync::Mutex<()>,
}

impl BundleCache {
    pub(crate) fn new(root: PathBuf, device: Capabilities) -> Self {
        BundleCache {
            root,
            device,
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
        let wheels = pick_wheels(&bundle, &self.device)?;
        let root = self.root.clone();
        let target = dir.clone();
        tokio::task::spawn_blocking(move || install(&root, &target, &bundle, &wheels))
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

/// Of the bundle's wheels, the bytes of the one of each package built for `device`.
fn pick_wheels(
    bundle: &Bundle,
    device: &Capabilities,
) -> Result<Vec<(String, Vec<u8>)>, BundleError> {
    if bundle.wheels.is_empty() {
        return Ok(Vec::new());
    }
    let chosen = idlegrid_domain::wheel::pick(bundle.wheels.keys().map(String::as_str), device)
        .ok_or_else(|| {
            BundleError::Invalid(format!(
                "it has no wheel of every package for this device ({}/{}/{})",
                device.os,
                device.arch,
                device.python.as_deref().unwrap_or("no Python")
            ))
        })?;
    chosen
        .into_iter()
        .map(|name| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&bundle.wheels[name])
                .map_err(|_| BundleError::Invalid(format!("wheel {name:?} is not base64")))?;
            Ok((name.to_string(), bytes))
        })
        .collect()
}

/// Where a wheel's entry goes in the app's directory: its path, or that under a
/// `.data/purelib/` or `.data/platlib/` folder; `None` for the other `.data` parts (scripts,
/// headers), which a task has no use for.
fn wheel_entry(name: &str) -> Option<&str> {
    let Some((top, rest)) = name.split_once('/') else {
        return Some(name);
    };
    if !top.ends_with(".data") {
        return Some(name);
    }
    rest.strip_prefix("purelib/")
        .or_else(|| rest.strip_prefix("platlib/"))
}

/// Unpacks a wheel into `app`, refusing names that leave it or overwrite the app's own files.
fn unpack_wheel(
    name: &str,
    bytes: &[u8],
    app: &Path,
    own: &Bundle,
    budget: &mut (u64, usize),
) -> io::Result<()> {
    let invalid =
        |why: String| io::Error::new(io::ErrorKind::InvalidData, format!("wheel {name:?}: {why}"));
    let mut zip =
        zip::ZipArchive::new(io::Cursor::new(bytes)).map_err(|e| invalid(e.to_string()))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| invalid(e.to_string()))?;
        if entry.is_dir() {
            continue;
        }
        if entry.is_symlink() {
            return Err(invalid("it holds a link".into()));
        }
        let path = idlegrid_domain::text::relative_path(entry.name_raw(), "a file name", 1024)
            .map_err(invalid)?;
        let Some(path) = wheel_entry(&path) else {
            continue;
        };
        let top = path.split('/').next().unwrap_or(path);
        if own.files.contains_key(top) {
            return Err(invalid(format!("it would overwrite the app's {top:?}")));
        }
        budget.0 = budget.0.saturating_add(entry.size());
        budget.1 += 1;
        if budget.0 > MAX_UNPACKED_BYTES || budget.1 > MAX_UNPACKED_FILES {
            return Err(invalid("the app's wheels unpack to too much".into()));
        }
        let target = app.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&target)?;
        let size = entry.size();
        let copied = io::copy(&mut io::Read::take(&mut entry, size + 1), &mut file)?;
        if copied != size {
            return Err(invalid(format!("{path:?} is not the size it declares")));
        }
    }
    Ok(())
}

fn install(
    root: &Path,
    target: &Path,
    bundle: &Bundle,
    wheels: &[(String, Vec<u8>)],
) -> io::Result<()> {
    let temp = tempfile::Builder::new().prefix(".tmp-").tempdir_in(root)?;
    let manifest = serde_json::to_vec_pretty(&bundle.manifest).map_err(io::Error::other)?;
    std::fs::write(temp.path().join("manifest.json"), manifest)?;
    let app = temp.path().join("app");
    std::fs::create_dir(&app)?;
    for (name, content) in &bundle.files {
        std::fs::write(app.join(name), content)?;
    }
    let mut budget = (0u64, 0usize);
    for (name, bytes) in wheels {
        unpack_wheel(name, bytes, &app, bundle, &mut budget)?;
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
            wheels: Default::default(),
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
        install(
            root.path(),
            &target,
            &bundle(&[("main.py", "print(1)")]),
            &[],
        )
        .unwrap();
        // A second install of the same bundle (another process) is not an error.
        install(
            root.path(),
            &target,
            &bundle(&[("main.py", "print(1)")]),
            &[],
        )
        .unwrap();
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

    /// A wheel holding `files`.
    fn wheel(files: &[(&str, &str)]) -> String {
        let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, text) in files {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            io::Write::write_all(&mut zip, text.as_bytes()).unwrap();
        }
        base64::engine::general_purpose::STANDARD.encode(zip.finish().unwrap().into_inner())
    }

    fn linux_x86() -> Capabilities {
        Capabilities {
            os: "linux".into(),
            arch: "x86_64".into(),
            python: Some("3.11.4".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_wheel_built_for_the_device_is_unpacked_beside_the_app() {
        let mut b = bundle(&[("main.py", "import fast")]);
        b.wheels.insert(
            "fast-1.0-cp311-cp311-manylinux2014_x86_64.whl".into(),
            wheel(&[
                ("fast/__init__.py", "X86 = 1"),
                ("fast-1.0.data/purelib/extra.py", "E = 1"),
                ("fast-1.0.data/scripts/run", "#!/bin/sh"),
            ]),
        );
        b.wheels.insert(
            "fast-1.0-cp311-cp311-manylinux2014_aarch64.whl".into(),
            wheel(&[("fast/__init__.py", "ARM = 1")]),
        );
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("b");
        let chosen = pick_wheels(&b, &linux_x86()).unwrap();
        assert_eq!(chosen.len(), 1);
        install(root.path(), &target, &b, &chosen).unwrap();
        let app = target.join("app");
        assert_eq!(
            std::fs::read_to_string(app.join("fast/__init__.py")).unwrap(),
            "X86 = 1"
        );
        assert!(app.join("extra.py").is_file());
        assert!(!app.join("run").exists());
        // No wheel for this device: refused, not run without its packages.
        let mut arm_only = b.clone();
        arm_only
            .wheels
            .remove("fast-1.0-cp311-cp311-manylinux2014_x86_64.whl");
        let err = pick_wheels(&arm_only, &linux_x86()).unwrap_err();
        assert!(err.to_string().contains("linux/x86_64/3.11.4"), "{err}");
    }

    #[test]
    fn a_wheel_cannot_write_outside_the_app_or_over_its_files() {
        let root = tempfile::tempdir().unwrap();
        for (files, says) in [
            (vec![("../../escape.py", "x")], ".. parts"),
            (
                vec![("main.py", "print('mine')")],
                "overwrite the app's \"main.py\"",
            ),
        ] {
            let mut b = bundle(&[("main.py", "print(1)")]);
            b.wheels
                .insert("evil-1.0-py3-none-any.whl".into(), wheel(&files));
            let chosen = pick_wheels(&b, &linux_x86()).unwrap();
            let target = root.path().join(format!("b{}", says.len()));
            let err = install(root.path(), &target, &b, &chosen)
                .err()
                .unwrap_or_else(|| panic!("{says}: installed"));
            assert!(err.to_string().contains(says), "{says}: {err}");
            assert!(!target.exists());
            assert!(!root.path().parent().unwrap().join("escape.py").exists());
        }
    }
}
