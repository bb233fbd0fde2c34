//! Hostile task scripts, each its own test, run in the sandbox the worker chooses at start-up
//! (on this Linux machine: Landlock + seccomp + rlimits under a supervisor, and when the tests
//! run as root, a user and a cgroup of each task's own). Each attempt must be contained, the
//! task must fail with a reason that says what happened (or, for a process that tries to
//! outlive its task, be gone with it), and the next task must still run.
#![cfg(target_os = "linux")]

use idlegrid_api::TaskId;
use idlegrid_api::tasks::TaskLimits;
use idlegrid_worker::runner::{self, OwnerLimits, Progress, Script};
use idlegrid_worker::selftest::{self, Chosen};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A worker's surroundings: a state directory holding a token file and an SSH key beside it,
/// and a scratch root.
struct Device {
    dir: tempfile::TempDir,
    scratch_root: PathBuf,
    chosen: Chosen,
}

impl Device {
    async fn new() -> Device {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("credentials.json"), r#"{"token":"igw_secret"}"#).unwrap();
        std::fs::create_dir_all(dir.path().join("home/.ssh")).unwrap();
        std::fs::write(dir.path().join("home/.ssh/id_ed25519"), "PRIVATE KEY").unwrap();
        let scratch_root = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch_root).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            // Reachable by the unprivileged user scripts run as.
            for d in [dir.path(), scratch_root.as_path()] {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).unwrap();
            }
        }
        let chosen = selftest::choose(Path::new("python3"), &state, &scratch_root, false)
            .await
            .expect("the sandbox holds on this machine");
        Device {
            dir,
            scratch_root,
            chosen,
        }
    }

    /// Runs `source` as a task script with `limits`; `Ok` is the output's size, `Err` the
    /// failure reason.
    async fn run(&self, source: &str, limits: &TaskLimits) -> Result<u64, String> {
        let task = self.task(source);
        self.run_task(&task, limits, &CancellationToken::new())
            .await
    }

    /// A task script in a scratch directory of its own, not started yet.
    fn task(&self, source: &str) -> Task {
        let scratch = tempfile::Builder::new()
            .prefix("lease-")
            .tempdir_in(&self.scratch_root)
            .unwrap();
        std::fs::create_dir(scratch.path().join("output")).unwrap();
        std::fs::write(scratch.path().join("task.py"), source).unwrap();
        Task { scratch }
    }

    /// Runs `task` until it ends or `cancel` fires; `Ok` is the output's size, `Err` the
    /// failure reason.
    async fn run_task(
        &self,
        task: &Task,
        limits: &TaskLimits,
        cancel: &CancellationToken,
    ) -> Result<u64, String> {
        let entrypoint = task.path().join("task.py");
        let params = serde_json::json!({
            "state": self.dir.path().join("state"),
            "home": self.dir.path().join("home"),
            "outside": self.dir.path(),
            "worker_pid": std::process::id(),
        });
        let script = Script {
            python: &self.chosen.python,
            entrypoint: &entrypoint,
            workdir: task.path(),
            params: &params,
            task_params: &params,
            task_id: TaskId(1),
            chunk_index: 0,
            limits,
            owner: &OwnerLimits::default(),
        };
        let finished = runner::run(
            &script,
            self.chosen.sandbox.as_ref(),
            &Progress::default(),
            cancel,
        )
        .await
        .map_err(|e| e.to_string())?;
        runner::judge(&finished, &task.path().join("output"), limits).map(|o| o.size)
    }

    /// Runs `source` and expects it to fail with a reason containing `reason`; then checks
    /// the device still runs an honest task.
    async fn contained(&self, source: &str, limits: &TaskLimits, reason: &str) {
        let err = self
            .run(source, limits)
            .await
            .expect_err("the hostile script must fail");
        eprintln!("contained: {err}");
        assert!(err.contains(reason), "expected {reason:?} in: {err}");
        self.still_serves().await;
    }

    /// Checks that an honest task still runs and nothing changed outside the scratch
    /// directories.
    async fn still_serves(&self) {
        let honest = "open('output/out.txt', 'w').write('ok')\n";
        assert_eq!(self.run(honest, &limits_default()).await, Ok(2));
        assert!(
            !self.dir.path().join("pwned").exists(),
            "a file was written outside"
        );
        assert_eq!(
            std::fs::read_to_string(self.dir.path().join("state/credentials.json")).unwrap(),
            r#"{"token":"igw_secret"}"#
        );
    }
}

/// A task's scratch directory, removed when dropped.
struct Task {
    scratch: tempfile::TempDir,
}

impl Task {
    fn path(&self) -> &Path {
        self.scratch.path()
    }

    /// Waits until the script created `name` in its scratch directory (at most 20 s).
    async fn wait_for(&self, name: &str) {
        let path = self.path().join(name);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !path.exists() {
            assert!(Instant::now() < deadline, "the script never made {name}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The pid the script wrote to `name`.
    fn pid(&self, name: &str) -> i32 {
        std::fs::read_to_string(self.path().join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

fn limits_default() -> TaskLimits {
    TaskLimits {
        timeout_secs: 20,
        memory_mb: 512,
        max_output_bytes: 4 * 1024 * 1024,
    }
}

/// Python prelude: the test's paths.
const PRELUDE: &str = "import json, os, sys\nP = json.loads(os.environ['IDLEGRID_PARAMS'])\n";

fn script(body: &str) -> String {
    format!("{PRELUDE}{body}")
}

#[tokio::test]
async fn reading_etc_shadow_is_refused() {
    let device = Device::new().await;
    device
        .contained(
            &script("print(open('/etc/shadow').read())\n"),
            &limits_default(),
            "PermissionError",
        )
        .await;
}

#[tokio::test]
async fn reading_ssh_keys_is_refused() {
    let device = Device::new().await;
    device
        .contained(
            &script("print(open(os.path.join(P['home'], '.ssh', 'id_ed25519')).read())\n"),
            &limits_default(),
            "PermissionError",
        )
        .await;
}

#[tokio::test]
async fn reading_the_worker_token_is_refused() {
    let device = Device::new().await;
    device
        .contained(
            &script("print(open(os.path.join(P['state'], 'credentials.json')).read())\n"),
            &limits_default(),
            "PermissionError",
        )
        .await;
}

#[tokio::test]
async fn writing_outside_the_scratch_directory_is_refused() {
    let device = Device::new().await;
    device
        .contained(
            &script("open(os.path.join(P['outside'], 'pwned'), 'w').write('x')\n"),
            &limits_default(),
            "PermissionError",
        )
        .await;
    let err = device
        .run(
            &script("open('/tmp/pwned-by-task', 'w').write('x')\n"),
            &limits_default(),
        )
        .await
        .unwrap_err();
    assert!(err.contains("PermissionError"), "{err}");
    assert!(!Path::new("/tmp/pwned-by-task").exists());
}

#[tokio::test]
async fn tcp_connections_are_refused() {
    let device = Device::new().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    device
        .contained(
            &script(&format!(
                "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            )),
            &limits_default(),
            "PermissionError",
        )
        .await;
}

#[tokio::test]
async fn unix_sockets_bound_to_a_path_are_unreachable() {
    use std::os::unix::fs::PermissionsExt;
    let device = Device::new().await;
    // A socket anyone could connect to, as a desktop bus or the system log would be.
    let dir = tempfile::Builder::new()
        .prefix("idlegrid-hostile-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let stream = dir.path().join("bus.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&stream).unwrap();
    let log = dir.path().join("log.sock");
    let _log = std::os::unix::net::UnixDatagram::bind(&log).unwrap();
    for path in [&stream, &log] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    device
        .contained(
            &script(&format!(
                "import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\ns.connect({:?})\n",
                stream.display().to_string()
            )),
            &limits_default(),
            "PermissionError",
        )
        .await;
    device
        .contained(
            &script(&format!(
                "import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.sendto(b'x', {:?})\n",
                log.display().to_string()
            )),
            &limits_default(),
            "PermissionError",
        )
        .await;
    // Unix socket pairs, which the runtime itself uses, still work.
    device
        .run(
            &script(
                "import socket\na, b = socket.socketpair()\na.sendall(b'ok')\nassert b.recv(2) == b'ok'\nopen('output/out.txt', 'w').write('ok')\n",
            ),
            &limits_default(),
        )
        .await
        .expect("a socket pair works in the sandbox");
}

#[tokio::test]
async fn udp_is_refused() {
    let device = Device::new().await;
    device
        .contained(
            &script(
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'x', ('127.0.0.1', 9))\n",
            ),
            &limits_default(),
            "PermissionError",
        )
        .await;
}

#[tokio::test]
async fn dns_lookups_fail() {
    let device = Device::new().await;
    device
        .contained(
            &script("import socket\nprint(socket.getaddrinfo('example.com', 80))\n"),
            &limits_default(),
            "gaierror",
        )
        .await;
}

#[tokio::test]
async fn a_fork_bomb_is_contained() {
    let device = Device::new().await;
    let limits = TaskLimits {
        timeout_secs: 10,
        ..limits_default()
    };
    device
        .contained(
            &script("while True:\n    os.fork()\n"),
            &limits,
            "Resource temporarily unavailable",
        )
        .await;
}

#[tokio::test]
async fn a_memory_bomb_is_contained() {
    let device = Device::new().await;
    device
        .contained(
            &script("x = []\nwhile True:\n    x.append(bytearray(64 * 1024 * 1024))\n"),
            &limits_default(),
            "MemoryError",
        )
        .await;
}

#[tokio::test]
async fn filling_the_disk_is_stopped_at_the_file_size_limit() {
    let device = Device::new().await;
    let limits = TaskLimits {
        max_output_bytes: 1024 * 1024,
        ..limits_default()
    };
    device
        .contained(
            &script(
                "with open('output/big', 'wb') as f:\n    while True:\n        f.write(b'x' * 65536)\n",
            ),
            &limits,
            "File too large",
        )
        .await;
}

#[tokio::test]
async fn filling_the_disk_with_many_files_is_stopped_at_the_scratch_quota() {
    let device = Device::new().await;
    let limits = TaskLimits {
        max_output_bytes: 1024 * 1024,
        ..limits_default()
    };
    device
        .contained(
            &script(
                "import time\ni = 0\nwhile True:\n    open('f%d' % i, 'wb').write(os.urandom(512 * 1024))\n    i += 1\n    time.sleep(0.01)\n",
            ),
            &limits,
            "bytes to its scratch directory",
        )
        .await;
}

#[tokio::test]
async fn filling_the_disk_with_empty_files_is_stopped_at_the_scratch_quota() {
    let device = Device::new().await;
    let limits = TaskLimits {
        max_output_bytes: 1024 * 1024,
        ..limits_default()
    };
    // Empty files hold no bytes but use inodes; each counts as a block.
    device
        .contained(
            &script("i = 0\nwhile True:\n    open('e%d' % i, 'wb').close()\n    i += 1\n"),
            &limits,
            "bytes to its scratch directory",
        )
        .await;
}

#[tokio::test]
async fn spinning_forever_is_killed_at_the_timeout() {
    let device = Device::new().await;
    let limits = TaskLimits {
        timeout_secs: 2,
        ..limits_default()
    };
    device
        .contained(&script("while True:\n    pass\n"), &limits, "timed out")
        .await;
}

#[tokio::test]
async fn signalling_the_worker_is_refused() {
    let device = Device::new().await;
    device
        .contained(
            &script("import signal\nos.kill(P['worker_pid'], signal.SIGKILL)\n"),
            &limits_default(),
            "PermissionError",
        )
        .await;
}

#[tokio::test]
async fn ptrace_is_refused() {
    let device = Device::new().await;
    device
        .contained(
            &script(
                "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nif libc.ptrace(16, P['worker_pid'], 0, 0) != 0:\n    sys.exit('ptrace refused: errno %d' % ctypes.get_errno())\n",
            ),
            &limits_default(),
            "ptrace refused",
        )
        .await;
}

#[tokio::test]
async fn raising_its_own_limits_is_refused() {
    let device = Device::new().await;
    device
        .contained(
            &script(
                "import resource\nresource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n",
            ),
            &limits_default(),
            "ValueError",
        )
        .await;
}

#[tokio::test]
async fn new_namespaces_are_refused() {
    let device = Device::new().await;
    device
        .contained(
            &script("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nif libc.unshare(0x10000000) != 0:\n    sys.exit('unshare refused: errno %d' % ctypes.get_errno())\n"),
            &limits_default(),
            "unshare refused",
        )
        .await;
}

#[tokio::test]
async fn an_output_symlink_out_of_the_scratch_directory_is_refused() {
    let device = Device::new().await;
    device
        .contained(
            &script("os.symlink(os.path.join(P['state'], 'credentials.json'), 'output/out.txt')\n"),
            &limits_default(),
            "is a symbolic link",
        )
        .await;
}

/// Whether `pid` still runs code (a zombie does not).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
    })
}

/// Fails the test if `pid` still runs, killing it first so the failure leaves nothing behind.
fn assert_gone(pid: i32, what: &str) {
    if running(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        panic!("{what} (pid {pid}) outlived its task");
    }
}

/// A child that leaves the script's session and process group and is orphaned at once (a
/// double fork), writing its pid to `escapee.pid` and living on for a minute.
const ESCAPE: &str = "import time\n\
def escape():\n\
\x20   if os.fork() == 0:\n\
\x20       os.setsid()\n\
\x20       if os.fork() == 0:\n\
\x20           open('escapee.tmp', 'w').write(str(os.getpid()))\n\
\x20           os.rename('escapee.tmp', 'escapee.pid')\n\
\x20           end = time.time() + 60\n\
\x20           while time.time() < end:\n\
\x20               time.sleep(0.05)\n\
\x20       os._exit(0)\n\
\x20   os.wait()\n\
\x20   while not os.path.exists('escapee.pid'):\n\
\x20       time.sleep(0.01)\n\
escape()\n";

/// Whether the sandbox gives each task a user of its own (when the worker runs as root).
fn own_users(device: &Device) -> bool {
    let own = device.chosen.sandbox.separation().own_users;
    if !own {
        eprintln!("skipped: scripts get users of their own only when the worker runs as root");
    }
    own
}

/// Whether the sandbox gives each task a cgroup of its own (as root, where it can make one).
fn own_cgroups(device: &Device) -> bool {
    let own = device.chosen.sandbox.separation().cgroups.is_some();
    if !own {
        eprintln!("skipped: tasks get cgroups of their own only where a root worker can make them");
    }
    own
}

#[tokio::test]
async fn a_child_escaping_to_its_own_session_ends_with_its_task() {
    let device = Device::new().await;
    let task = device.task(&script(&format!(
        "{ESCAPE}open('output/out.txt', 'w').write('ok')\n"
    )));
    let result = device
        .run_task(&task, &limits_default(), &CancellationToken::new())
        .await;
    let escapee = task.pid("escapee.pid");
    assert_gone(escapee, "the escaped child of a finished task");
    assert_eq!(result, Ok(2));
    device.still_serves().await;
}

#[tokio::test]
async fn a_child_escaping_to_its_own_session_ends_with_its_timed_out_or_cancelled_task() {
    let device = Device::new().await;
    let spin = script(&format!("{ESCAPE}while True:\n    time.sleep(1)\n"));
    let limits = TaskLimits {
        timeout_secs: 2,
        ..limits_default()
    };
    let task = device.task(&spin);
    let result = device
        .run_task(&task, &limits, &CancellationToken::new())
        .await;
    assert_gone(
        task.pid("escapee.pid"),
        "the escaped child of a timed-out task",
    );
    let err = result.unwrap_err();
    assert!(err.contains("timed out after 2 s"), "{err}");

    let task = device.task(&spin);
    let cancel = CancellationToken::new();
    let limits = limits_default();
    let (result, ()) = tokio::join!(device.run_task(&task, &limits, &cancel), async {
        task.wait_for("escapee.pid").await;
        cancel.cancel();
    });
    assert_gone(
        task.pid("escapee.pid"),
        "the escaped child of a cancelled task",
    );
    assert_eq!(result, Err("script was stopped before it finished".into()));
    device.still_serves().await;
}

#[tokio::test]
async fn a_fork_bomb_in_one_slot_does_not_starve_the_other() {
    let device = Device::new().await;
    if !own_users(&device) {
        return;
    }
    // Forks sleepers until the kernel refuses, says so, and waits for the test's word.
    let bomb = device.task(&script(
        "import time\n\
         try:\n\
         \x20   while True:\n\
         \x20       if os.fork() == 0:\n\
         \x20           time.sleep(60)\n\
         \x20           os._exit(0)\n\
         except OSError:\n\
         \x20   open('saturated', 'w').close()\n\
         \x20   end = time.time() + 20\n\
         \x20   while not os.path.exists('release') and time.time() < end:\n\
         \x20       time.sleep(0.05)\n\
         \x20   raise\n",
    ));
    let limits = limits_default();
    let never = CancellationToken::new();
    let (bombed, honest) = tokio::join!(device.run_task(&bomb, &limits, &never), async {
        bomb.wait_for("saturated").await;
        // Like most tasks, the neighbour starts a program of its own.
        let honest = device
            .run(
                &script(
                    "import subprocess\n\
                         subprocess.run([sys.executable, '-c', 'pass'], check=True)\n\
                         open('output/out.txt', 'w').write('ok')\n",
                ),
                &limits,
            )
            .await;
        std::fs::write(bomb.path().join("release"), "").unwrap();
        honest
    });
    assert_eq!(honest, Ok(2), "the honest neighbour failed");
    let err = bombed.unwrap_err();
    eprintln!("contained: {err}");
    assert!(
        err.contains("Resource temporarily unavailable")
            && err.contains("at most 256 processes and threads"),
        "{err}"
    );
    device.still_serves().await;
}

#[tokio::test]
async fn a_memory_balloon_fails_alone_and_its_neighbour_succeeds() {
    let device = Device::new().await;
    if !own_cgroups(&device) {
        return;
    }
    // Six children of 300 MiB each: every one is within the per-process limit, together
    // they are over three times the task's 512 MiB.
    let balloon = script(
        "import time\n\
         kids = []\n\
         for _ in range(6):\n\
         \x20   pid = os.fork()\n\
         \x20   if pid == 0:\n\
         \x20       x = b'x' * (300 << 20)\n\
         \x20       time.sleep(2)\n\
         \x20       os._exit(0)\n\
         \x20   kids.append(pid)\n\
         failed = sum(os.waitpid(pid, 0)[1] != 0 for pid in kids)\n\
         if failed:\n\
         \x20   sys.exit('%d children died' % failed)\n\
         open('output/out.txt', 'w').write('ok')\n",
    );
    let honest = script(
        "x = b'y' * (200 << 20)\n\
         open('output/out.txt', 'w').write('ok')\n",
    );
    let limits = limits_default();
    let (ballooned, honest) =
        tokio::join!(device.run(&balloon, &limits), device.run(&honest, &limits));
    assert_eq!(honest, Ok(2), "the honest neighbour failed");
    let err = ballooned.unwrap_err();
    eprintln!("contained: {err}");
    assert!(err.contains("more than 512 MiB of memory"), "{err}");
    device.still_serves().await;
}
