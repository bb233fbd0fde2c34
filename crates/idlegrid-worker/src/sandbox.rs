//! Where a task script's process is confined before it starts.
//!
//! Task scripts are customers' code on a stranger's device: the device must be protected from
//! the script, and tasks from each other. Every sandbox sets resource limits
//! ([`RlimitSandbox`]); the supervisor (`crate::supervisor`) gives the script a process group
//! of its own and ends every process of the task with it. On Linux, [`LinuxSandbox`] adds, in
//! the child between `fork` and `exec`:
//!
//! - when the worker runs as root, a user of the task's own ([`users`]): no other process on
//!   the device runs as it, so the per-user process limit is the task's, and the supervisor
//!   can end every process of that user; and, where the worker can create them, a cgroup of
//!   the task's own ([`cgroups`]) capping the memory and number of all its processes together;
//! - Landlock: read-only access to what the runtime needs (system libraries, Python, FFmpeg),
//!   read-write access to the task's scratch directory only, no TCP bind or connect, and no
//!   signals or abstract Unix sockets reaching outside the sandbox;
//! - a seccomp filter: no sockets but Unix ones, and no `connect` or addressed datagrams even
//!   for those (so no Unix socket bound to a path is reachable either), no `ptrace`, no mounts,
//!   no namespaces, no kernel keyrings, modules, BPF or `io_uring`; `no_new_privs`.
//!
//! What a sandbox really enforces on this kernel is checked at start-up by running a probe
//! script in it (`crate::selftest`). macOS and Windows get only [`RlimitSandbox`]'s limits
//! (on macOS) and a process group: see `docs/SANDBOX.md`.

use idlegrid_api::tasks::TaskLimits;
use nix::sys::resource::{Resource, setrlimit};
use std::io;
use std::path::Path;

#[cfg(target_os = "linux")]
pub mod cgroups;
#[cfg(target_os = "linux")]
pub mod users;

/// CPU seconds a script may use beyond its wall-clock timeout before the kernel stops it; the
/// wall-clock kill normally comes first, this catches scripts that burn several cores.
pub const CPU_GRACE_SECS: u64 = 5;
/// Files a script may have open at once.
pub const MAX_OPEN_FILES: u64 = 256;
/// Processes and threads a script may run at once (as its own user; see [`LinuxSandbox`]).
pub const MAX_PROCESSES: u64 = 256;

/// Confines a task script's process.
pub trait Sandbox: Send + Sync {
    /// Short name for logs, e.g. `rlimit`.
    fn name(&self) -> &str;

    /// What keeps this sandbox's tasks apart from each other, beyond their limits.
    fn separation(&self) -> Separation {
        Separation::default()
    }

    /// Prepares one run of a script in `workdir` (the task's scratch directory) under
    /// `limits`: what its process does between `fork` and `exec`, and what the task gets of
    /// its own (a user, a cgroup).
    fn prepare(&self, limits: &TaskLimits, workdir: &Path) -> io::Result<Confinement>;
}

/// What keeps a sandbox's tasks apart from each other and from the device's other programs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Separation {
    /// Each task runs as a user of its own: its process limit is its own, and every process
    /// of that user is the task's.
    pub own_users: bool,
    /// Each task runs in a cgroup of its own (`v1` or `v2`), capping the memory and number of
    /// all its processes together.
    pub cgroups: Option<&'static str>,
}

/// One run of a script, prepared by a [`Sandbox`] for the supervisor.
pub struct Confinement {
    /// Runs in the script's process between `fork` and `exec`: system calls only, on values
    /// prepared beforehand.
    pub(crate) confine: Box<dyn FnMut() -> io::Result<()> + Send + Sync>,
    /// The task's own user, back to its pool once every process of the task is gone.
    #[cfg(target_os = "linux")]
    pub(crate) user: Option<users::SlotUser>,
    /// The task's own cgroup, removed by the supervisor.
    #[cfg(target_os = "linux")]
    pub(crate) cgroup: Option<cgroups::TaskCgroup>,
}

/// The resource limits of a task, as (resource, soft, hard).
fn rlimits(limits: &TaskLimits, processes: Option<u64>) -> Vec<(Resource, u64, u64)> {
    let memory = limits.memory_mb.saturating_mul(1024 * 1024);
    let cpu = limits.timeout_secs.saturating_add(CPU_GRACE_SECS);
    // One byte more than allowed: a write cut short by the limit then leaves a file the
    // runner recognises as too big, instead of a silently truncated one that fits.
    let file_size = limits.max_output_bytes.saturating_add(1);
    let mut all = vec![
        (Resource::RLIMIT_AS, memory, memory),
        (
            Resource::RLIMIT_CPU,
            cpu,
            cpu.saturating_add(CPU_GRACE_SECS),
        ),
        (Resource::RLIMIT_FSIZE, file_size, file_size),
        (Resource::RLIMIT_CORE, 0, 0),
        (Resource::RLIMIT_NOFILE, MAX_OPEN_FILES, MAX_OPEN_FILES),
    ];
    if let Some(processes) = processes {
        all.push((Resource::RLIMIT_NPROC, processes, processes));
    }
    all
}

/// Sets `limits` in the child. Soft and hard limits are equal (bar CPU, where the soft limit
/// sends `SIGXCPU` first), so the script cannot raise them. Only system calls on values
/// computed beforehand: safe between `fork` and `exec`.
fn apply_rlimits(limits: &[(Resource, u64, u64)]) -> io::Result<()> {
    for &(resource, soft, hard) in limits {
        setrlimit(resource, soft, hard).map_err(errno)?;
    }
    // No transparent huge pages: encoders ask for them, and on a device that is busy with its
    // owner's work, faulting them in means the kernel compacting memory on the script's
    // behalf (measured: twice the system time of an x264 encode, 1-3 % slower). Inherited by
    // everything the script starts.
    #[cfg(target_os = "linux")]
    nix::sys::prctl::set_thp_disable(true).map_err(errno)?;
    Ok(())
}

fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// `setrlimit`: address space (`memory_mb`), CPU time (timeout plus [`CPU_GRACE_SECS`]), file
/// size (`max_output_bytes` + 1), open files, and no core dumps. The weak sandbox: what is
/// left where the kernel offers nothing more, or when the worker is started with
/// `--weak-sandbox`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RlimitSandbox;

impl Sandbox for RlimitSandbox {
    fn name(&self) -> &str {
        "rlimit (weak)"
    }

    fn prepare(&self, limits: &TaskLimits, _workdir: &Path) -> io::Result<Confinement> {
        let limits = rlimits(limits, None);
        Ok(Confinement {
            confine: Box::new(move || apply_rlimits(&limits)),
            #[cfg(target_os = "linux")]
            user: None,
            #[cfg(target_os = "linux")]
            cgroup: None,
        })
    }
}

#[cfg(target_os = "linux")]
pub use linux::LinuxSandbox;

#[cfg(target_os = "linux")]
mod linux {
    use super::cgroups::Cgroups;
    use super::users::SlotUsers;
    use super::{Confinement, MAX_PROCESSES, Sandbox, Separation, apply_rlimits, errno, rlimits};
    use idlegrid_api::tasks::TaskLimits;
    use landlock::{
        ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
        RulesetCreated, RulesetCreatedAttr, Scope, path_beneath_rules,
    };
    use nix::unistd::{Gid, Uid};
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    use std::collections::BTreeMap;
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    /// The Landlock ABI whose rights are asked for; older kernels enforce what they know (the
    /// start-up self-test says what that is).
    const LANDLOCK_ABI: ABI = ABI::V6;

    /// System directories and files the runtime reads: libraries, interpreters, tools, the
    /// dynamic loader's cache, time zones.
    const SYSTEM_READ: &[&str] = &[
        "/usr",
        "/lib",
        "/lib32",
        "/lib64",
        "/bin",
        "/sbin",
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/etc/localtime",
        "/etc/alternatives",
        "/proc/cpuinfo",
        "/sys/devices/system/cpu",
    ];
    /// Device files a script may read and write.
    const DEVICES: &[&str] = &[
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
    ];

    /// Landlock, seccomp, rlimits, and when the worker runs as root, a user and (where it can
    /// make one) a cgroup of each task's own.
    #[derive(Clone)]
    pub struct LinuxSandbox {
        /// Extra read-only paths: the interpreter's installation, where FFmpeg lives.
        read_only: Vec<PathBuf>,
        /// The users tasks run as, when the worker runs as root.
        users: Option<SlotUsers>,
        /// Where tasks' cgroups go, when the worker can make them.
        cgroups: Option<Cgroups>,
        /// The seccomp filters, applied in order (all of them hold).
        filters: Arc<Vec<BpfProgram>>,
    }

    impl std::fmt::Debug for LinuxSandbox {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("LinuxSandbox")
                .field("read_only", &self.read_only)
                .field("users", &self.users)
                .field("cgroups", &self.cgroups)
                .finish_non_exhaustive()
        }
    }

    impl LinuxSandbox {
        /// A sandbox whose scripts may also read `read_only` (the interpreter's prefix,
        /// FFmpeg's directory). As root, scripts run as users of their own, and in cgroups of
        /// their own where this process can make them (else it says why in the log).
        pub fn new(read_only: Vec<PathBuf>) -> Result<Self, String> {
            let (users, cgroups) = if nix::unistd::geteuid().is_root() {
                let users = SlotUsers::open()
                    .map_err(|e| format!("scripts cannot get users of their own: {e}"))?;
                let cgroups = match Cgroups::detect() {
                    Ok(cgroups) => Some(cgroups),
                    Err(why) => {
                        tracing::warn!(
                            %why,
                            "tasks get no cgroups of their own: memory is limited per process, not per task"
                        );
                        None
                    }
                };
                (Some(users), cgroups)
            } else {
                (None, None)
            };
            Ok(LinuxSandbox {
                read_only,
                users,
                cgroups,
                filters: Arc::new(seccomp_filters()?),
            })
        }

        fn ruleset(&self, workdir: &Path) -> Result<RulesetCreated, landlock::RulesetError> {
            let abi = LANDLOCK_ABI;
            let files = AccessFs::ReadFile | AccessFs::WriteFile;
            Ruleset::default()
                .set_compatibility(CompatLevel::BestEffort)
                .handle_access(AccessFs::from_all(abi))?
                .handle_access(AccessNet::from_all(abi))?
                .scope(Scope::from_all(abi))?
                .create()?
                .add_rules(path_beneath_rules(SYSTEM_READ, AccessFs::from_read(abi)))?
                .add_rules(path_beneath_rules(
                    &self.read_only,
                    AccessFs::from_read(abi),
                ))?
                .add_rules(path_beneath_rules(DEVICES, files))?
                .add_rules(path_beneath_rules([workdir], AccessFs::from_all(abi)))
        }
    }

    /// Gives `path` and everything under it to `uid`:`gid`.
    fn chown_tree(path: &Path, uid: Uid, gid: Gid) -> std::io::Result<()> {
        std::os::unix::fs::lchown(path, Some(uid.as_raw()), Some(gid.as_raw()))?;
        if std::fs::symlink_metadata(path)?.is_dir() {
            for entry in std::fs::read_dir(path)? {
                chown_tree(&entry?.path(), uid, gid)?;
            }
        }
        Ok(())
    }

    impl Sandbox for LinuxSandbox {
        fn name(&self) -> &str {
            "landlock+seccomp"
        }

        fn separation(&self) -> Separation {
            Separation {
                own_users: self.users.is_some(),
                cgroups: self.cgroups.as_ref().map(Cgroups::version),
            }
        }

        fn prepare(&self, limits: &TaskLimits, workdir: &Path) -> io::Result<Confinement> {
            let user = self.users.as_ref().map(SlotUsers::claim).transpose()?;
            // Process counts are per user. A script with a user of its own gets its share;
            // one running as the worker's user may add its share to what that user already
            // runs (a limit of 256 would stop a desktop user's script from forking at all).
            let processes = match user {
                Some(_) => MAX_PROCESSES,
                None => threads_of_user(nix::unistd::getuid().as_raw()) + MAX_PROCESSES,
            };
            let rlimits = rlimits(limits, Some(processes));
            let ids = user.as_ref().map(|user| (user.uid(), user.gid()));
            if let Some((uid, gid)) = ids {
                chown_tree(workdir, uid, gid)?;
            }
            let mut ruleset = Some(
                self.ruleset(workdir)
                    .map_err(|e| io::Error::other(format!("building the Landlock rules: {e}")))?,
            );
            let cgroup = match (&self.cgroups, &user) {
                (Some(cgroups), Some(user)) => {
                    Some(cgroups.create(&format!("idlegrid-{}", user.uid()), limits)?)
                }
                _ => None,
            };
            let filters = self.filters.clone();
            let confine = move || -> io::Result<()> {
                apply_rlimits(&rlimits)?;
                if let Some((uid, gid)) = ids {
                    nix::unistd::setgroups(&[]).map_err(errno)?;
                    nix::unistd::setgid(gid).map_err(errno)?;
                    nix::unistd::setuid(uid).map_err(errno)?;
                }
                if let Some(ruleset) = ruleset.take() {
                    // Also sets no_new_privs.
                    ruleset
                        .restrict_self()
                        .map_err(|_| io::Error::from_raw_os_error(libc_eperm()))?;
                }
                for filter in filters.iter() {
                    seccompiler::apply_filter(filter)
                        .map_err(|_| io::Error::from_raw_os_error(libc_eperm()))?;
                }
                Ok(())
            };
            // The closure runs between fork and exec. Everything it needs was built above
            // (limits, the Landlock ruleset's descriptor, the compiled seccomp programs); it
            // makes system calls only (setrlimit, prctl, setgroups, setgid, setuid,
            // landlock_restrict_self, seccomp) and builds io::Errors from raw codes.
            Ok(Confinement {
                confine: Box::new(confine),
                user,
                cgroup,
            })
        }
    }

    fn libc_eperm() -> i32 {
        nix::errno::Errno::EPERM as i32
    }

    /// System calls refused outright (`EACCES`), whatever their arguments.
    const DENIED: &[i64] = &[
        // Unix sockets bound to a path (a desktop bus, a container engine, an SSH agent, the
        // system log) are reached by connect or by a datagram's address, which neither
        // Landlock nor a filter's view of the arguments can tell apart from harmless ones:
        // scripts may not connect at all, nor address datagrams (socketpair still works).
        libc_sys::SYS_connect,
        libc_sys::SYS_sendmsg,
        libc_sys::SYS_sendmmsg,
        libc_sys::SYS_ptrace,
        libc_sys::SYS_process_vm_readv,
        libc_sys::SYS_process_vm_writev,
        libc_sys::SYS_mount,
        libc_sys::SYS_umount2,
        libc_sys::SYS_pivot_root,
        libc_sys::SYS_chroot,
        libc_sys::SYS_unshare,
        libc_sys::SYS_setns,
        libc_sys::SYS_bpf,
        libc_sys::SYS_perf_event_open,
        libc_sys::SYS_keyctl,
        libc_sys::SYS_add_key,
        libc_sys::SYS_request_key,
        libc_sys::SYS_init_module,
        libc_sys::SYS_finit_module,
        libc_sys::SYS_delete_module,
        libc_sys::SYS_kexec_load,
        libc_sys::SYS_kexec_file_load,
        libc_sys::SYS_reboot,
        libc_sys::SYS_swapon,
        libc_sys::SYS_swapoff,
        libc_sys::SYS_acct,
        libc_sys::SYS_io_uring_setup,
        libc_sys::SYS_io_uring_enter,
        libc_sys::SYS_io_uring_register,
        libc_sys::SYS_userfaultfd,
        libc_sys::SYS_open_by_handle_at,
        libc_sys::SYS_name_to_handle_at,
        libc_sys::SYS_quotactl,
        libc_sys::SYS_fanotify_init,
        libc_sys::SYS_mount_setattr,
        libc_sys::SYS_move_mount,
        libc_sys::SYS_open_tree,
        libc_sys::SYS_fsopen,
        libc_sys::SYS_fsmount,
        libc_sys::SYS_fsconfig,
        libc_sys::SYS_fspick,
    ];

    /// Namespace flags of `clone`.
    const NAMESPACE_FLAGS: &[u64] = &[
        0x0002_0000, // CLONE_NEWNS
        0x0200_0000, // CLONE_NEWCGROUP
        0x0400_0000, // CLONE_NEWUTS
        0x0800_0000, // CLONE_NEWIPC
        0x1000_0000, // CLONE_NEWUSER
        0x2000_0000, // CLONE_NEWPID
        0x4000_0000, // CLONE_NEWNET
    ];

    const AF_UNIX: u64 = 1;

    /// Threads (what `RLIMIT_NPROC` counts) of the processes whose real user is `uid`.
    pub(super) fn threads_of_user(uid: u32) -> u64 {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return 0;
        };
        let mut threads = 0u64;
        for entry in procs.flatten() {
            if !entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
            {
                continue;
            }
            let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
                continue;
            };
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
            };
            if field("Uid:") == Some(u64::from(uid)) {
                threads += field("Threads:").unwrap_or(1);
            }
        }
        threads
    }

    fn seccomp_filters() -> Result<Vec<BpfProgram>, String> {
        let arch = TargetArch::try_from(std::env::consts::ARCH)
            .map_err(|e| format!("no seccomp filter for this architecture: {e}"))?;
        let rule = |conditions: Vec<SeccompCondition>| {
            SeccompRule::new(conditions).map_err(|e| format!("seccomp rule: {e}"))
        };
        let cond = |arg: u8, op: SeccompCmpOp, value: u64| {
            SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)
                .map_err(|e| format!("seccomp condition: {e}"))
        };
        let mut denied: BTreeMap<i64, Vec<SeccompRule>> =
            DENIED.iter().map(|&call| (call, Vec::new())).collect();
        // Sockets of any family but AF_UNIX: no network at all, whatever the protocol.
        for call in [libc_sys::SYS_socket, libc_sys::SYS_socketpair] {
            denied.insert(call, vec![rule(vec![cond(0, SeccompCmpOp::Ne, AF_UNIX)?])?]);
        }
        // Datagrams with a destination address (sendto's fifth argument).
        denied.insert(
            libc_sys::SYS_sendto,
            vec![rule(vec![cond(4, SeccompCmpOp::Ne, 0)?])?],
        );
        // New namespaces through clone's flags.
        let mut clone_rules = Vec::new();
        for &flag in NAMESPACE_FLAGS {
            clone_rules.push(rule(vec![cond(0, SeccompCmpOp::MaskedEq(flag), flag)?])?);
        }
        denied.insert(libc_sys::SYS_clone, clone_rules);
        // Resource limits of other processes.
        denied.insert(
            libc_sys::SYS_prlimit64,
            vec![rule(vec![cond(0, SeccompCmpOp::Ne, 0)?])?],
        );
        let eacces = nix::errno::Errno::EACCES as u32;
        let main = SeccompFilter::new(
            denied,
            SeccompAction::Allow,
            SeccompAction::Errno(eacces),
            arch,
        )
        .map_err(|e| format!("seccomp filter: {e}"))?;
        // clone3 passes its flags in memory a filter cannot read: refuse it as unknown, and
        // the C library falls back to clone, whose flags are checked above.
        let enosys = nix::errno::Errno::ENOSYS as u32;
        let clone3 = SeccompFilter::new(
            BTreeMap::from([(libc_sys::SYS_clone3, Vec::new())]),
            SeccompAction::Allow,
            SeccompAction::Errno(enosys),
            arch,
        )
        .map_err(|e| format!("seccomp filter: {e}"))?;
        let compile = |filter: SeccompFilter| {
            BpfProgram::try_from(filter).map_err(|e| format!("compiling the seccomp filter: {e}"))
        };
        Ok(vec![compile(main)?, compile(clone3)?])
    }

    /// System call numbers of this architecture.
    mod libc_sys {
        pub use nix::libc::*;
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn threads_of_a_user_include_this_process() {
        let uid = nix::unistd::getuid().as_raw();
        let threads = super::linux::threads_of_user(uid);
        // At least this test's own thread and its main thread.
        assert!(threads >= 2, "{threads}");
        assert_eq!(super::linux::threads_of_user(u32::MAX - 7), 0);
    }
}
