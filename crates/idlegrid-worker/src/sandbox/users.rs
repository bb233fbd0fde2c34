//! Users of their own for task slots. When the worker runs as root, each running task runs as
//! an unprivileged user (uid = gid, no passwd entry) that no other process on the device has:
//! "every process of this user" is then exactly the task's processes (the supervisor ends
//! them all with one `kill(-1)` as that user), and the kernel's per-user process limit is the
//! task's own, so a fork bomb starves no other task and no other program.
//!
//! Users come from a reserved range and are claimed with an exclusive `flock` on one lock file
//! per uid in a root-only directory, held for the worker's lifetime (and by a task's
//! supervisor until it has ended that task, should the worker die first): two workers on one
//! device never share a user, and the kernel drops a dead worker's claims. A newly claimed
//! user's leftover processes (of a worker killed together with its supervisors) are killed
//! first.

use nix::libc;
use nix::unistd::{Gid, Uid};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The first uid of the range: within the range systemd documents as unused by Linux
/// distributions, systemd and containers (`0x70000000`–`0x7FFDFFFF`).
pub const FIRST_UID: u32 = 0x7800_0000;
/// How many uids the range holds.
pub const UID_COUNT: u32 = 0x1_0000;
/// Where the claims live: root's own, emptied at boot.
const LOCK_DIR: &str = "/run/idlegrid/users";
/// How long a claim waits for a leftover user's processes to die before it tries another uid.
const SWEEP_DEADLINE: Duration = Duration::from_secs(2);
/// Pause between two rounds of killing a leftover user's processes.
const SWEEP_ROUND: Duration = Duration::from_millis(10);

/// The users this worker has claimed, free or running a task.
#[derive(Debug, Clone)]
pub struct SlotUsers(Arc<Pool>);

#[derive(Debug)]
struct Pool {
    /// The lock files' directory.
    dir: PathBuf,
    /// Claimed users running no task.
    free: Mutex<Vec<Claim>>,
    /// Users whose processes would not all die: kept claimed, so no task gets them again.
    retired: Mutex<Vec<Claim>>,
}

/// One claimed uid; the claim lasts as long as the locked file is open.
#[derive(Debug)]
struct Claim {
    uid: u32,
    lock: File,
}

/// A user lent to one task; back to the pool when dropped.
#[derive(Debug)]
pub struct SlotUser {
    claim: Option<Claim>,
    pool: Arc<Pool>,
}

impl SlotUsers {
    /// The pool, claiming in the system's lock directory.
    pub fn open() -> io::Result<SlotUsers> {
        Self::open_in(Path::new(LOCK_DIR))
    }

    fn open_in(dir: &Path) -> io::Result<SlotUsers> {
        std::fs::create_dir_all(dir)?;
        // Anyone who could write there could hold or plant claims.
        let meta = std::fs::symlink_metadata(dir)?;
        if !meta.is_dir() || meta.uid() != 0 || meta.permissions().mode() & 0o022 != 0 {
            return Err(io::Error::other(format!(
                "{} must be a directory only root can write to",
                dir.display()
            )));
        }
        Ok(SlotUsers(Arc::new(Pool {
            dir: dir.to_path_buf(),
            free: Mutex::default(),
            retired: Mutex::default(),
        })))
    }

    /// A user for one task: a free one of this worker's, or a newly claimed one.
    pub fn claim(&self) -> io::Result<SlotUser> {
        let free = lock(&self.0.free).pop();
        let claim = match free {
            Some(claim) => claim,
            None => self.claim_new()?,
        };
        Ok(SlotUser {
            claim: Some(claim),
            pool: self.0.clone(),
        })
    }

    fn claim_new(&self) -> io::Result<Claim> {
        for uid in FIRST_UID..FIRST_UID + UID_COUNT {
            // A real account in the range is someone else's.
            if matches!(nix::unistd::User::from_uid(Uid::from_raw(uid)), Ok(Some(_))) {
                continue;
            }
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(self.0.dir.join(uid.to_string()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(err)) => return Err(err),
            }
            let claim = Claim { uid, lock: file };
            if sweep(uid)? {
                return Ok(claim);
            }
            tracing::warn!(
                uid,
                "processes left by an earlier worker as this user would not die; using another"
            );
            lock(&self.0.retired).push(claim);
        }
        Err(io::Error::other(format!(
            "every uid from {FIRST_UID} to {} is taken by other workers",
            FIRST_UID + UID_COUNT - 1
        )))
    }
}

impl SlotUser {
    /// The user's id.
    pub fn uid(&self) -> Uid {
        Uid::from_raw(self.raw())
    }

    /// Its group's id (the same number).
    pub fn gid(&self) -> Gid {
        Gid::from_raw(self.raw())
    }

    /// The claim's lock file, which a process holding it open keeps claimed, even after this
    /// worker died.
    pub(crate) fn claim_fd(&self) -> Option<RawFd> {
        self.claim.as_ref().map(|claim| claim.lock.as_raw_fd())
    }

    fn raw(&self) -> u32 {
        self.claim.as_ref().map_or(0, |claim| claim.uid)
    }

    /// Keeps the user claimed but out of use: some of its processes may still run.
    pub fn retire(mut self) {
        if let Some(claim) = self.claim.take() {
            tracing::error!(
                uid = claim.uid,
                "some processes of a task could not be ended; its user is retired"
            );
            lock(&self.pool.retired).push(claim);
        }
    }
}

impl Drop for SlotUser {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            lock(&self.pool.free).push(claim);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Kills every process of `uid`; whether none is left within [`SWEEP_DEADLINE`].
fn sweep(uid: u32) -> io::Result<bool> {
    let deadline = Instant::now() + SWEEP_DEADLINE;
    loop {
        if !runs_processes(uid) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        kill_as(uid)?;
        std::thread::sleep(SWEEP_ROUND);
    }
}

/// Whether any live process (not a zombie) has `uid` as its real user.
fn runs_processes(uid: u32) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|entry| {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            return false;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string)
        };
        field("Uid:").and_then(|u| u.parse::<u32>().ok()) == Some(uid)
            && field("State:").is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Sends `SIGKILL` to every process of `uid`, from a child that takes that user for it.
fn kill_as(uid: u32) -> io::Result<()> {
    // SAFETY: the child, single-threaded, makes system calls only (the credential dance of
    // `kill_user`, kill) and leaves with _exit; the parent waits for it.
    unsafe {
        match libc::fork() {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                crate::supervisor::kill_user(uid);
                libc::_exit(0)
            }
            child => {
                let mut status = 0;
                while libc::waitpid(child, &mut status, 0) < 0 {
                    let err = io::Error::last_os_error();
                    if err.kind() != io::ErrorKind::Interrupted {
                        return Err(err);
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The system's pool, as workers use it (a private directory would let a test and a
    /// worker claim the same user).
    fn pool() -> Option<SlotUsers> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: claiming users needs root");
            return None;
        }
        Some(SlotUsers::open().unwrap())
    }

    #[test]
    fn two_pools_never_share_a_user_and_a_free_user_is_reused() {
        let (Some(first), Some(second)) = (pool(), pool()) else {
            return;
        };
        let a = first.claim().unwrap();
        let b = second.claim().unwrap();
        let c = first.claim().unwrap();
        for user in [&a, &b, &c] {
            assert!((FIRST_UID..FIRST_UID + UID_COUNT).contains(&user.uid().as_raw()));
            assert_eq!(user.gid().as_raw(), user.uid().as_raw());
        }
        assert_ne!(a.uid(), b.uid());
        assert_ne!(a.uid(), c.uid());
        assert_ne!(b.uid(), c.uid());
        let uid = a.uid();
        drop(a);
        assert_eq!(first.claim().unwrap().uid(), uid);
        // A retired user is never lent again, by this pool or another.
        let uid = c.uid();
        c.retire();
        assert_ne!(first.claim().unwrap().uid(), uid);
        assert_ne!(second.claim().unwrap().uid(), uid);
    }

    #[test]
    fn a_claim_kills_what_a_dead_worker_left_running_as_that_user() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let Some(dead) = pool() else {
            return;
        };
        let uid = dead.claim().unwrap().uid().as_raw();
        drop(dead);
        let mut leftover = std::process::Command::new("sleep")
            .arg("60")
            .uid(uid)
            .gid(uid)
            .spawn()
            .unwrap();
        // The next worker claims its way up to that user (unless another took it first,
        // which swept it just the same).
        let next = pool().unwrap();
        let mut held = Vec::new();
        loop {
            let user = next.claim().unwrap();
            let reached = user.uid().as_raw() >= uid;
            held.push(user);
            if reached {
                break;
            }
        }
        let status = leftover.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_lock_directory_others_can_write_to_is_refused() {
        if pool().is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = SlotUsers::open_in(&open).unwrap_err();
        assert!(err.to_string().contains("only root"), "{err}");
    }
}
