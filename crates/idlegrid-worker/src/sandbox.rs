//! The seam where a task script's process is confined before it starts.
//!
//! [`RlimitSandbox`] only puts the script in its own process group (so the runner can kill
//! everything it spawned) and sets resource limits. Kernel-level confinement (landlock,
//! seccomp) will be further implementations of [`Sandbox`].

use idlegrid_api::tasks::TaskLimits;
use nix::sys::resource::{Resource, setrlimit};

/// CPU seconds a script may use beyond its wall-clock timeout before the kernel stops it; the
/// wall-clock kill normally comes first, this catches scripts that burn several cores.
pub const CPU_GRACE_SECS: u64 = 5;

/// Confines a task script's process.
pub trait Sandbox: Send + Sync {
    /// Short name for logs, e.g. `rlimit`.
    fn name(&self) -> &str;

    /// Configures `command` before it is spawned. It must leave the child in a new process
    /// group whose id is the child's pid: the runner kills that group when the script ends,
    /// times out or is cancelled.
    fn prepare(&self, command: &mut tokio::process::Command, limits: &TaskLimits);
}

/// Own process group plus `setrlimit`: address space (`memory_mb`), CPU time (timeout plus
/// [`CPU_GRACE_SECS`]), file size (`max_output_bytes` + 1), and no core dumps. Soft and hard limits
/// are equal (bar CPU, where the soft limit sends `SIGXCPU` first), so the script cannot raise
/// them.
#[derive(Debug, Clone, Copy, Default)]
pub struct RlimitSandbox;

impl Sandbox for RlimitSandbox {
    fn name(&self) -> &str {
        "rlimit"
    }

    fn prepare(&self, command: &mut tokio::process::Command, limits: &TaskLimits) {
        let memory = limits.memory_mb.saturating_mul(1024 * 1024);
        let cpu = limits.timeout_secs.saturating_add(CPU_GRACE_SECS);
        // One byte more than allowed: a write cut short by the limit then leaves a file the
        // runner recognises as too big, instead of a silently truncated one that fits.
        let file_size = limits.max_output_bytes.saturating_add(1);
        command.process_group(0);
        let set_limits = move || -> std::io::Result<()> {
            let limit = |resource, soft, hard| {
                setrlimit(resource, soft, hard)
                    .map_err(|errno| std::io::Error::from_raw_os_error(errno as i32))
            };
            limit(Resource::RLIMIT_AS, memory, memory)?;
            limit(
                Resource::RLIMIT_CPU,
                cpu,
                cpu.saturating_add(CPU_GRACE_SECS),
            )?;
            limit(Resource::RLIMIT_FSIZE, file_size, file_size)?;
            limit(Resource::RLIMIT_CORE, 0, 0)?;
            // No transparent huge pages: encoders ask for them, and on a device that is busy
            // with its owner's work, faulting them in means the kernel compacting memory on
            // the script's behalf (measured: twice the system time of an x264 encode, 1-3 %
            // slower). Inherited by everything the script starts.
            #[cfg(target_os = "linux")]
            nix::sys::prctl::set_thp_disable(true)
                .map_err(|errno| std::io::Error::from_raw_os_error(errno as i32))?;
            Ok(())
        };
        // SAFETY: the closure runs between fork and exec, where only async-signal-safe calls
        // are allowed; it only makes setrlimit and prctl system calls on values computed beforehand and
        // builds io::Errors from raw codes, neither of which allocates or takes locks.
        unsafe {
            command.pre_exec(set_limits);
        }
    }
}
