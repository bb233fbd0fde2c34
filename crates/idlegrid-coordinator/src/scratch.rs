//! Scratch directories for the coordinator's own work on files (FFmpeg probing, splitting,
//! checking and joining videos), and what a killed coordinator left of them.
//!
//! A scratch directory is removed when its work ends, but not when the process is killed
//! first (SIGKILL, a crash, a power cut): a chunk or a rendition of a customer's video would
//! stay on the disk. So every coordinator process keeps its scratch directories in one
//! directory of its own, `$TMPDIR/idlegrid-coordinator-<uid>/<instance>/`, and holds a lock
//! on `<instance>/lock` as long as it lives; the system drops the lock when the process dies,
//! however it dies. Each coordinator clears, when it starts, every instance directory whose
//! lock it can take: its process is gone. It never touches one whose lock is held, so
//! coordinators sharing a machine (or a process, as tests do) leave each other's work alone.
//!
//! The parent directory is the user's own (mode 0700): a directory of that name made by
//! someone else, or a link, is refused rather than cleared.

use idlegrid_storage::StorageError;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// File in each instance directory whose lock says its process lives.
const LOCK: &str = "lock";
/// Instance directories are made under this prefix and renamed into place with their lock
/// held, so a directory without it is never half made.
const NEW: &str = ".new-";
/// A directory still under [`NEW`] after this long was left by a process killed while making
/// it.
const NEW_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// This process' instance directory and the lock that holds it.
#[derive(Debug)]
struct Instance {
    dir: PathBuf,
    _lock: File,
}

/// This process' instance, made at the first use.
static INSTANCE: OnceLock<Result<Instance, String>> = OnceLock::new();

/// The directory holding every coordinator's instance directory, for this user.
pub fn parent() -> PathBuf {
    std::env::temp_dir().join(format!("idlegrid-coordinator-{}", nix::unistd::geteuid()))
}

/// A fresh scratch directory named `<prefix>…`, removed when dropped.
pub fn dir(prefix: &str) -> Result<tempfile::TempDir, StorageError> {
    let instance = INSTANCE
        .get_or_init(|| make_instance(&parent()))
        .as_ref()
        .map_err(|e| StorageError::Backend(format!("no scratch directory: {e}")))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&instance.dir)
        .map_err(|e| StorageError::Backend(format!("creating a scratch directory: {e}")))
}

/// Removes the scratch of coordinators that are gone, and makes this process' own instance
/// directory if it has none yet, so that a problem with it shows at once; called at start-up.
pub fn clear_abandoned() {
    let parent = parent();
    let mut made = false;
    let instance = INSTANCE.get_or_init(|| {
        made = true;
        make_instance(&parent)
    });
    // Making it cleared them; later starts in the same process look again.
    let cleared = match instance {
        Ok(_) if made => Ok(()),
        Ok(_) => owned(&parent).map(|()| {
            clear(&parent);
        }),
        Err(e) => Err(e.clone()),
    };
    if let Err(e) = cleared {
        tracing::warn!(error = %e, "scratch directories cannot be cleared or made: video jobs will fail");
    }
}

/// Checks that `parent` is a directory of this user's that only they can enter, making it if
/// it is missing.
fn owned(parent: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(parent) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("creating {}: {e}", parent.display())),
    }
    let meta = std::fs::symlink_metadata(parent)
        .map_err(|e| format!("reading {}: {e}", parent.display()))?;
    let mine = meta.uid() == nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || !mine || meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} is not a directory of this user's that only they can enter; remove it",
            parent.display()
        ));
    }
    Ok(())
}

/// Clears what dead coordinators left in `parent` and makes this process' instance there.
fn make_instance(parent: &Path) -> Result<Instance, String> {
    owned(parent)?;
    clear(parent);
    let staging = tempfile::Builder::new()
        .prefix(NEW)
        .tempdir_in(parent)
        .map_err(|e| format!("creating a directory in {}: {e}", parent.display()))?;
    let lock = File::create(staging.path().join(LOCK))
        .map_err(|e| format!("creating a lock in {}: {e}", staging.path().display()))?;
    lock.try_lock()
        .map_err(|e| format!("locking {}: {e}", staging.path().display()))?;
    let name = staging
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(NEW))
        .unwrap_or_default()
        .to_string();
    let dir = parent.join(name);
    std::fs::rename(staging.keep(), &dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(Instance { dir, _lock: lock })
}

/// The instance directories in `parent`, finished or not.
fn instance_dirs(parent: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// Removes the instance directories in `parent` whose process is gone; returns them.
fn clear(parent: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for dir in instance_dirs(parent) {
        let staging = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(NEW));
        if staging {
            let young = std::fs::metadata(&dir)
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().unwrap_or_default() < NEW_FOR);
            if young {
                continue;
            }
        }
        // A finished instance directory always has its lock: it was renamed into place with
        // it. The lock is taken before removing, so its process cannot be alive.
        let lock = match File::open(dir.join(LOCK)) {
            Ok(lock) => lock,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && staging => {
                remove(&dir, &mut removed);
                continue;
            }
            Err(_) => continue,
        };
        if lock.try_lock().is_ok() {
            remove(&dir, &mut removed);
        }
    }
    removed
}

fn remove(dir: &Path, removed: &mut Vec<PathBuf>) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {
            tracing::info!(dir = %dir.display(), "removed the scratch of a coordinator that is gone");
            removed.push(dir.to_path_buf());
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the scratch of a coordinator that is gone")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instance directory as a coordinator process makes it, in `parent`.
    fn instance_in(parent: &Path) -> Instance {
        make_instance(parent).unwrap()
    }

    #[test]
    fn the_scratch_of_dead_processes_goes_and_the_living_keep_theirs() {
        let root = tempfile::tempdir().unwrap();
        let parent = root.path().join("scratch");
        let alive = instance_in(&parent);
        let dead = instance_in(&parent);
        std::fs::write(dead.dir.join("rendition.mp4"), vec![0u8; 1024]).unwrap();
        let dead_dir = dead.dir.clone();
        // Its process dies: the lock goes with it.
        drop(dead);
        let next = instance_in(&parent);
        assert!(!dead_dir.exists(), "a dead process' scratch is removed");
        assert!(alive.dir.join(LOCK).exists(), "a living one keeps its own");
        assert!(next.dir.exists());
        assert_eq!(clear(&parent), Vec::<PathBuf>::new());
    }

    #[test]
    fn a_parent_of_someone_else_or_open_to_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let parent = root.path().join("scratch");
        std::fs::create_dir(&parent).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(make_instance(&parent).unwrap_err().contains("remove it"));
        let link = root.path().join("link");
        std::os::unix::fs::symlink(root.path(), &link).unwrap();
        assert!(make_instance(&link).unwrap_err().contains("remove it"));
    }
}
