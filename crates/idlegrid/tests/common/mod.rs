//! Helpers the binary's test files share: running FFmpeg and making test clips, and starting the
//! real `idlegrid` binary (coordinators, workers, any command) as processes that are SIGKILLed
//! when dropped, with bounded waits whose failures show the logs.
// Each test file uses its own share of these.
#![allow(dead_code)]

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs a program to its end, failing the test if it fails.
pub fn sh(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is FFmpeg installed?): {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Makes a test clip: `video` and `audio` are lavfi source descriptions, `codec` the encoder
/// arguments.
pub fn clip(dir: &Path, name: &str, video: &str, audio: Option<&str>, codec: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec!["-v", "error", "-f", "lavfi", "-i", video];
    if let Some(audio) = audio {
        args.extend(["-f", "lavfi", "-i", audio]);
    }
    args.extend(codec);
    if audio.is_some() {
        args.push("-shortest");
    }
    let out = path.to_string_lossy().into_owned();
    args.push(&out);
    sh("ffmpeg", &args);
    path
}

/// How long a coordinator may take to print its ready line.
pub const STARTUP: Duration = Duration::from_secs(30);

/// The `idlegrid` binary with an environment that cannot reach the user's grid or settings:
/// no `IDLEGRID_*` variables, its home directory `home`.
pub fn idlegrid(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_idlegrid"));
    for (var, _) in std::env::vars() {
        if var.starts_with("IDLEGRID_") || var == "RUST_LOG" {
            command.env_remove(var);
        }
    }
    command.env("IDLEGRID_HOME", home).stdin(Stdio::null());
    command
}

/// A file to append a process's output to (appending, so a restarted process keeps its
/// predecessor's log).
pub fn log_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A child process that is SIGKILLed (and reaped) when dropped, unless it already ended.
pub struct Proc {
    pub name: String,
    pub child: Child,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd`, whose stdio the caller has set up; `log` is where its stderr goes.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal)
            .unwrap_or_else(|e| panic!("cannot send {signal} to {}: {e}", self.name));
    }

    /// Waits for the process to end, at most `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill_hard(&mut self) -> ExitStatus {
        self.signal(Signal::SIGKILL);
        self.wait_timeout(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{} survived SIGKILL for 10 s", self.name))
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// What a finished command printed.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn describe(&self) -> String {
        format!(
            "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs a command to its end, at most `timeout` (then it is killed and the test fails). Its
/// output is kept in `dir/<name>.stdout` and `.stderr`.
pub fn run_bounded(mut cmd: Command, dir: &Path, name: &str, timeout: Duration) -> Finished {
    let out = dir.join(format!("{name}.stdout"));
    let err = dir.join(format!("{name}.stderr"));
    cmd.stdout(log_file(&out)).stderr(log_file(&err));
    let mut proc = Proc::spawn(name, cmd, &err);
    let Some(status) = proc.wait_timeout(timeout) else {
        panic!(
            "`{name}` did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            tail(&out, 40),
            tail(&err, 40)
        );
    };
    Finished {
        status,
        stdout: String::from_utf8_lossy(&std::fs::read(&out).unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&std::fs::read(&err).unwrap_or_default()).into_owned(),
    }
}

/// What `idlegrid serve --json` prints when it is ready.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    /// Its URL.
    pub url: String,
    /// The bootstrap customer's API key.
    pub api_key: String,
    /// The bootstrap owner's enrollment token.
    pub enrollment_token: String,
    /// The operator key.
    pub operator_key: String,
}

impl Ready {
    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {}", self.url))
    }

    /// The bootstrap customer's client.
    pub fn customer(&self) -> idlegrid_client::Client {
        idlegrid_client::Client::new(&self.url, &self.api_key).expect("client")
    }

    /// A new device owner of its own, and its enrollment token.
    pub async fn owner(&self, name: &str) -> String {
        idlegrid_testkit::new_owner(&self.url, &self.operator_key, name).await
    }
}

/// Starts `idlegrid serve --json --listen <listen>` with the `extra` arguments, its home
/// `dir/home`, its data in `data` and its stderr appended to `log`; returns once it printed its
/// ready line. Its stdout is drained by a thread so the pipe never fills.
pub fn serve(dir: &Path, listen: &str, data: &Path, log: &Path, extra: &[&str]) -> (Proc, Ready) {
    let mut cmd = idlegrid(&dir.join("home"));
    cmd.args(["serve", "--listen", listen, "--json"])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(log_file(log));
    let mut proc = Proc::spawn("coordinator", cmd, log);
    let stdout = proc.child.stdout.take().expect("coordinator stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let line = match rx.recv_timeout(STARTUP) {
        Ok(line) => line,
        Err(e) => {
            let status = proc.wait_timeout(Duration::ZERO);
            panic!(
                "the coordinator printed no ready line ({e}; exit status {status:?})\n--- log ---\n{}",
                tail(log, 60)
            );
        }
    };
    let value: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("coordinator ready line {line:?} is not JSON: {e}"));
    let field = |name: &str| {
        value[name]
            .as_str()
            .unwrap_or_else(|| panic!("ready line {line:?} lacks {name}"))
            .to_string()
    };
    let ready = Ready {
        url: field("url"),
        api_key: field("api_key"),
        enrollment_token: field("enrollment_token"),
        operator_key: field("operator_key"),
    };
    assert!(
        ready.url.starts_with("http://127.0.0.1:"),
        "unexpected url in {line:?}"
    );
    (proc, ready)
}

/// `idlegrid worker` for the coordinator at `url` with enrollment token `token`, named `name`,
/// with `slots` task slots and more `flags` (such as the owner's controls); its home is
/// `dir/home`, its state (and so its identity) `dir/<name>`, its output appended to
/// `dir/<name>.log`.
pub fn worker(
    dir: &Path,
    url: &str,
    token: &str,
    name: &str,
    slots: usize,
    flags: &[&str],
) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let mut cmd = idlegrid(&dir.join("home"));
    cmd.args(["worker", "--coordinator", url])
        .args(flags)
        .args(["--token", token])
        .args(["--slots", &slots.to_string(), "--name", name])
        .arg("--state-dir")
        .arg(dir.join(name))
        .stdout(log_file(&log))
        .stderr(log_file(&log));
    Proc::spawn(name, cmd, &log)
}

/// `idlegrid serve` on a free loopback port, keeping its data in `dir/data` and its log in
/// `dir/serve.log`.
pub struct Coordinator {
    /// The process.
    pub process: Proc,
    /// What it printed when ready.
    pub ready: Ready,
}

impl Coordinator {
    /// Starts it with `extra` flags.
    pub fn start(dir: &Path, extra: &[&str]) -> Coordinator {
        let (process, ready) = serve(
            dir,
            "127.0.0.1:0",
            &dir.join("data"),
            &dir.join("serve.log"),
            extra,
        );
        Coordinator { process, ready }
    }

    /// `idlegrid worker` with `token`, named `name`, with `slots` task slots, keeping its state
    /// and log under `dir`.
    pub fn worker(&self, dir: &Path, token: &str, name: &str, slots: usize) -> Proc {
        worker(dir, &self.ready.url, token, name, slots, &[])
    }
}

/// Luma PSNR of the part of the JPEG `jpeg` that `part` (a filter; `null` for all of it) cuts
/// out, against frame `frame` (by number) of `source` made into it by `shape`.
pub fn tile_psnr(jpeg: &Path, part: &str, source: &Path, frame: u64, shape: &str) -> f64 {
    let graph = format!(
        "[0:v]{part},format=yuv420p,extractplanes=y[a];\
         [1:v]select='eq(n\\,{frame})',{shape},format=yuv420p,extractplanes=y[b];[a][b]psnr"
    );
    let out = sh(
        "ffmpeg",
        &[
            "-nostdin",
            "-f",
            "jpeg_pipe",
            "-i",
            &jpeg.to_string_lossy(),
            "-i",
            &source.to_string_lossy(),
            "-lavfi",
            &graph,
            "-frames:v",
            "1",
            "-f",
            "null",
            "-",
        ],
    );
    psnr_figure(&String::from_utf8_lossy(&out.stderr), "average:")
}

/// The figure `field` (`y:`, `average:`) of the PSNR summary in an FFmpeg log; 100 for
/// identical pictures.
pub fn psnr_figure(log: &str, field: &str) -> f64 {
    let value = log
        .split_whitespace()
        .find_map(|w| w.strip_prefix(field))
        .unwrap_or_else(|| panic!("no PSNR in {log}"));
    if value == "inf" {
        100.0
    } else {
        value.parse().unwrap()
    }
}
