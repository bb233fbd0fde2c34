//! A cgroup per task, where the worker can create them (as root; on cgroup v2 when its cgroup
//! can hand the memory and pids controllers to children, on v1 when both hierarchies are
//! mounted). The task's cgroup, under the worker's own, caps the memory of all the task's
//! processes together (the job's `memory_mb`, no swap) and their number, and counts what the
//! kernel refused (processes killed for memory, forks refused), so a failure can name its
//! reason. The supervisor reads the counters and removes the cgroup when the task is over.

use super::MAX_PROCESSES;
use idlegrid_api::tasks::TaskLimits;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The leaf a worker moves itself into on cgroup v2, so that its own cgroup holds no process
/// and may hand controllers to the tasks' cgroups beside it.
const WORKER_LEAF: &str = "idlegrid-worker";

/// Where tasks' cgroups are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    /// cgroup v1: one directory in the memory hierarchy, one in the pids hierarchy.
    V1 {
        /// The worker's cgroup in the memory hierarchy.
        memory: PathBuf,
        /// The worker's cgroup in the pids hierarchy.
        pids: PathBuf,
    },
    /// cgroup v2: the worker's cgroup, handing memory and pids to its children.
    V2 {
        /// That cgroup's directory.
        parent: PathBuf,
    },
}

/// One task's cgroup, ready for its script to join.
#[derive(Debug)]
pub struct TaskCgroup {
    /// Its directories (two on v1).
    dirs: Vec<PathBuf>,
    /// Its `cgroup.procs` files, open for writing.
    join: Vec<OwnedFd>,
    /// Its memory events (`oom_kill N`), open for reading.
    memory_events: OwnedFd,
    /// Its process events (`max N`), open for reading.
    pids_events: OwnedFd,
}

impl Cgroups {
    /// Where this process can make tasks' cgroups, or why it cannot.
    pub fn detect() -> Result<Cgroups, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let membership = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let mounts = parse_mounts(&mountinfo);
        let v2 = v2(&mounts, &membership);
        if let Ok(parent) = v2 {
            return Ok(Cgroups::V2 { parent });
        }
        match v1(&mounts, &membership) {
            Ok((memory, pids)) => Ok(Cgroups::V1 { memory, pids }),
            Err(v1) => Err(format!(
                "cgroup v2: {}; cgroup v1: {v1}",
                v2.err().unwrap_or_default()
            )),
        }
    }

    /// `v1` or `v2`, for the logs.
    pub fn version(&self) -> &'static str {
        match self {
            Cgroups::V1 { .. } => "v1",
            Cgroups::V2 { .. } => "v2",
        }
    }

    /// A new cgroup `name` with the task's limits.
    pub fn create(&self, name: &str, limits: &TaskLimits) -> io::Result<TaskCgroup> {
        let memory = limits.memory_mb.saturating_mul(1024 * 1024).to_string();
        let processes = MAX_PROCESSES.to_string();
        let mut dirs = Vec::new();
        let made = (|| -> io::Result<TaskCgroup> {
            match self {
                Cgroups::V1 {
                    memory: memory_root,
                    pids: pids_root,
                } => {
                    let memory_dir = fresh(&memory_root.join(name), &mut dirs)?;
                    let pids_dir = fresh(&pids_root.join(name), &mut dirs)?;
                    write(&memory_dir.join("memory.limit_in_bytes"), &memory)?;
                    // With swap accounting, memory and swap together: no swapping past the limit.
                    let both = memory_dir.join("memory.memsw.limit_in_bytes");
                    if both.exists() {
                        write(&both, &memory)?;
                    }
                    write(&pids_dir.join("pids.max"), &processes)?;
                    Ok(TaskCgroup {
                        join: vec![
                            open_write(&memory_dir.join("cgroup.procs"))?,
                            open_write(&pids_dir.join("cgroup.procs"))?,
                        ],
                        memory_events: open_read(&memory_dir.join("memory.oom_control"))?,
                        pids_events: open_read(&pids_dir.join("pids.events"))?,
                        dirs: Vec::new(),
                    })
                }
                Cgroups::V2 { parent } => {
                    let dir = fresh(&parent.join(name), &mut dirs)?;
                    write(&dir.join("memory.max"), &memory)?;
                    let swap = dir.join("memory.swap.max");
                    if swap.exists() {
                        write(&swap, "0")?;
                    }
                    write(&dir.join("pids.max"), &processes)?;
                    Ok(TaskCgroup {
                        join: vec![open_write(&dir.join("cgroup.procs"))?],
                        memory_events: open_read(&dir.join("memory.events"))?,
                        pids_events: open_read(&dir.join("pids.events"))?,
                        dirs: Vec::new(),
                    })
                }
            }
        })();
        match made {
            Ok(cgroup) => Ok(TaskCgroup { dirs, ..cgroup }),
            Err(err) => {
                for dir in &dirs {
                    let _ = std::fs::remove_dir(dir);
                }
                Err(err)
            }
        }
    }
}

impl TaskCgroup {
    /// The `cgroup.procs` files the script writes itself into.
    pub(crate) fn join_fds(&self) -> Vec<RawFd> {
        self.join.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// The memory-event and process-event counters.
    pub(crate) fn counter_fds(&self) -> (RawFd, RawFd) {
        (self.memory_events.as_raw_fd(), self.pids_events.as_raw_fd())
    }

    /// The directories, for the supervisor to remove.
    pub(crate) fn dir_names(&self) -> Vec<CString> {
        self.dirs
            .iter()
            .filter_map(|dir| CString::new(dir.as_os_str().as_bytes()).ok())
            .collect()
    }

    /// Removes the cgroup of a task that never started.
    pub(crate) fn remove(self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Makes `dir`, first removing one left by a worker that died with its supervisor (the
/// processes in it, of the same user, were killed when that user was claimed again).
fn fresh(dir: &Path, made: &mut Vec<PathBuf>) -> io::Result<PathBuf> {
    if let Err(err) = std::fs::create_dir(dir) {
        if err.kind() != io::ErrorKind::AlreadyExists {
            return Err(err);
        }
        std::fs::remove_dir(dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot remove the leftover cgroup {}: {e}", dir.display()),
            )
        })?;
        std::fs::create_dir(dir)?;
    }
    made.push(dir.to_path_buf());
    Ok(dir.to_path_buf())
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))
}

fn open_write(path: &Path) -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    Ok(file.into())
}

fn open_read(path: &Path) -> io::Result<OwnedFd> {
    let file = std::fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    Ok(file.into())
}

/// A mounted file system, from `/proc/self/mountinfo`.
#[derive(Debug, PartialEq, Eq)]
struct Mount {
    /// The directory of the file system mounted there.
    root: PathBuf,
    /// Where it is mounted.
    point: PathBuf,
    /// Its type, e.g. `cgroup2`.
    kind: String,
    /// Its super-block options (a v1 hierarchy's controllers are among them).
    options: Vec<String>,
}

fn parse_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let kind = right.next()?.to_string();
            let _source = right.next()?;
            let options = right.next()?.split(',').map(str::to_string).collect();
            Some(Mount {
                root: PathBuf::from(unescape(left.get(3)?)),
                point: PathBuf::from(unescape(left.get(4)?)),
                kind,
                options,
            })
        })
        .collect()
}

/// Undoes mountinfo's octal escapes of spaces, tabs, newlines and backslashes.
fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The directory of this process's cgroup in `mount`, whose path in the hierarchy is `path`.
fn dir_in(mount: &Mount, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path).strip_prefix(&mount.root).ok()?;
    Some(mount.point.join(relative))
}

/// The v2 cgroup tasks' cgroups go under, handing them memory and pids.
fn v2(mounts: &[Mount], membership: &str) -> Result<PathBuf, String> {
    let mount = mounts
        .iter()
        .find(|m| m.kind == "cgroup2")
        .ok_or("not mounted")?;
    let path = membership
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("this process is in no v2 cgroup")?;
    let mut dir = dir_in(mount, path).ok_or("this process's cgroup is outside the mount")?;
    // Moved to its leaf already (by another sandbox of this process): beside it.
    if dir.file_name().is_some_and(|name| name == WORKER_LEAF) {
        dir.pop();
    }
    let lists = |file: &str| {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        let words: Vec<&str> = text.split_whitespace().collect();
        words.contains(&"memory") && words.contains(&"pids")
    };
    if !lists("cgroup.controllers") {
        return Err(format!(
            "the memory and pids controllers are not available in {}",
            dir.display()
        ));
    }
    if lists("cgroup.subtree_control") {
        return Ok(dir);
    }
    let enable = dir.join("cgroup.subtree_control");
    if std::fs::write(&enable, "+memory +pids").is_ok() {
        return Ok(dir);
    }
    // Only a cgroup without processes of its own hands controllers to children: move this
    // worker into a leaf, if nothing else runs in its cgroup (a systemd service with
    // `Delegate=yes`, say).
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    if procs.split_whitespace().collect::<Vec<_>>() != [std::process::id().to_string()] {
        return Err(format!(
            "{} holds other processes than this worker, and does not hand memory and pids to its children",
            dir.display()
        ));
    }
    let leaf = dir.join(WORKER_LEAF);
    match std::fs::create_dir(&leaf) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(format!("cannot create {}: {e}", leaf.display()));
        }
        _ => {}
    }
    std::fs::write(leaf.join("cgroup.procs"), "0")
        .map_err(|e| format!("cannot move the worker into {}: {e}", leaf.display()))?;
    std::fs::write(&enable, "+memory +pids")
        .map_err(|e| format!("cannot write {}: {e}", enable.display()))?;
    Ok(dir)
}

/// This process's cgroups in the v1 memory and pids hierarchies.
fn v1(mounts: &[Mount], membership: &str) -> Result<(PathBuf, PathBuf), String> {
    let dir = |controller: &str| -> Result<PathBuf, String> {
        let mount = mounts
            .iter()
            .find(|m| m.kind == "cgroup" && m.options.iter().any(|o| o == controller))
            .ok_or(format!("no {controller} hierarchy is mounted"))?;
        let path = membership
            .lines()
            .filter_map(|line| {
                let mut fields = line.splitn(3, ':').skip(1);
                Some((fields.next()?, fields.next()?))
            })
            .find(|(controllers, _)| controllers.split(',').any(|c| c == controller))
            .map(|(_, path)| path)
            .ok_or(format!("this process is in no {controller} cgroup"))?;
        let dir = dir_in(mount, path).ok_or(format!(
            "this process's {controller} cgroup is outside the mount"
        ))?;
        dir.is_dir()
            .then_some(dir)
            .ok_or(format!("this process's {controller} cgroup is not visible"))
    };
    Ok((dir("memory")?, dir("pids")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
29 1 0:26 / / rw,relatime - ext4 /dev/vda rw
35 29 0:30 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
40 35 0:35 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
41 35 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
42 35 0:37 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn mountinfo_lines_give_roots_points_types_and_controllers() {
        let mounts = parse_mounts(
            "50 35 0:40 /docker/abc /sys/fs/cgroup/my\\040pids rw shared:3 - cgroup cgroup rw,pids\n",
        );
        assert_eq!(
            mounts,
            vec![Mount {
                root: "/docker/abc".into(),
                point: "/sys/fs/cgroup/my pids".into(),
                kind: "cgroup".into(),
                options: vec!["rw".into(), "pids".into()],
            }]
        );
        // A cgroup namespace's view or a bind mount of a subtree: paths are below its root.
        assert_eq!(
            dir_in(&mounts[0], "/docker/abc/worker"),
            Some("/sys/fs/cgroup/my pids/worker".into())
        );
        assert_eq!(dir_in(&mounts[0], "/elsewhere"), None);
    }

    #[test]
    fn v1_finds_the_memory_and_pids_cgroups_of_this_process() {
        let mounts = parse_mounts(HYBRID);
        let membership = "8:pids:/\n4:memory:/\n2:cpu,cpuacct:/\n0::/\n";
        // Only directories that exist count; the root of each hierarchy does when mounted.
        let found = v1(&mounts, membership);
        if Path::new("/sys/fs/cgroup/memory").is_dir() && Path::new("/sys/fs/cgroup/pids").is_dir()
        {
            assert_eq!(
                found,
                Ok((
                    PathBuf::from("/sys/fs/cgroup/memory/"),
                    PathBuf::from("/sys/fs/cgroup/pids/")
                ))
            );
        }
        assert_eq!(
            v1(&mounts[..3], membership),
            Err("no memory hierarchy is mounted".to_string())
        );
        assert_eq!(
            v1(&mounts, "0::/\n"),
            Err("this process is in no memory cgroup".to_string())
        );
    }

    #[test]
    fn v2_needs_the_memory_and_pids_controllers() {
        let mounts = parse_mounts(HYBRID);
        assert_eq!(v2(&mounts[..2], "0::/\n"), Err("not mounted".to_string()));
        assert_eq!(
            v2(&mounts, "4:memory:/\n"),
            Err("this process is in no v2 cgroup".to_string())
        );
    }

    /// A real cgroup on this machine, where the tests run as root: limits written, joined by
    /// a child, its memory counter read, removed.
    #[test]
    fn a_task_cgroup_limits_and_counts_what_joins_it() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: creating cgroups needs root");
            return;
        }
        let cgroups = match Cgroups::detect() {
            Ok(cgroups) => cgroups,
            Err(why) => {
                eprintln!("skipped: no cgroups here ({why})");
                return;
            }
        };
        let limits = TaskLimits {
            timeout_secs: 10,
            memory_mb: 64,
            max_output_bytes: 1024,
        };
        let name = format!("idlegrid-test-{}", std::process::id());
        let cgroup = cgroups.create(&name, &limits).unwrap();
        let dirs = cgroup.dirs.clone();
        assert!(!dirs.is_empty() && dirs.iter().all(|d| d.is_dir()));
        let limit_file = match &cgroups {
            Cgroups::V1 { .. } => dirs[0].join("memory.limit_in_bytes"),
            Cgroups::V2 { .. } => dirs[0].join("memory.max"),
        };
        assert_eq!(
            std::fs::read_to_string(limit_file).unwrap().trim(),
            (64u64 << 20).to_string()
        );
        let pids_dir = dirs.last().unwrap();
        assert_eq!(
            std::fs::read_to_string(pids_dir.join("pids.max"))
                .unwrap()
                .trim(),
            MAX_PROCESSES.to_string()
        );
        // A child that joins and allocates past the limit is killed by the kernel.
        let join = cgroup.join_fds();
        let mut child = std::process::Command::new("python3");
        child.args(["-c", "x = b'x' * (256 << 20)"]);
        // SAFETY: writes to descriptors opened beforehand.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut child, move || {
                for &fd in &join {
                    if nix::libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let status = child.status().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(nix::libc::SIGKILL));
        let events = match &cgroups {
            Cgroups::V1 { .. } => dirs[0].join("memory.oom_control"),
            Cgroups::V2 { .. } => dirs[0].join("memory.events"),
        };
        let events = std::fs::read_to_string(events).unwrap();
        assert!(events.contains("oom_kill 1"), "{events}");
        cgroup.remove();
        assert!(dirs.iter().all(|d| !d.exists()));
    }
}
