//! Helpers the binary's test files share: running FFmpeg, making test clips, and starting the
//! real `idlegrid` coordinator and workers as processes that are killed when dropped.
// Each test file uses its own share of these.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// A child process, killed and reaped when dropped.
pub struct Child(pub std::process::Child);

impl Child {
    /// SIGKILLs it now and returns how it ended.
    pub fn kill_hard(&mut self) -> std::process::ExitStatus {
        let _ = self.0.kill();
        self.0.wait().unwrap()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

/// `idlegrid serve` on a free loopback port, with what it printed when ready.
pub struct Coordinator {
    /// The process.
    pub process: Child,
    /// Its URL.
    pub url: String,
    /// The bootstrap customer's API key.
    pub api_key: String,
    /// The bootstrap owner's enrollment token.
    pub enrollment_token: String,
    /// The operator key.
    pub operator_key: String,
}

impl Coordinator {
    /// Starts `idlegrid serve` keeping its data in `dir/data` and its log in `dir/serve.log`,
    /// with `extra` flags.
    pub fn start(dir: &Path, extra: &[&str]) -> Coordinator {
        let log = std::fs::File::create(dir.join("serve.log")).unwrap();
        let mut command = idlegrid(&dir.join("home"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--json", "--data-dir"])
            .arg(dir.join("data"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(log);
        let mut process = Child(command.spawn().unwrap());
        let mut line = String::new();
        std::io::BufReader::new(process.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("serve printed {line:?}: {e}"));
        let field = |name: &str| ready[name].as_str().unwrap().to_string();
        Coordinator {
            process,
            url: field("url"),
            api_key: field("api_key"),
            enrollment_token: field("enrollment_token"),
            operator_key: field("operator_key"),
        }
    }

    /// The bootstrap customer's client.
    pub fn customer(&self) -> idlegrid_client::Client {
        idlegrid_client::Client::new(&self.url, &self.api_key).unwrap()
    }

    /// A new device owner of its own, and its enrollment token.
    pub async fn owner(&self, name: &str) -> String {
        idlegrid_client::Client::new(&self.url, &self.operator_key)
            .unwrap()
            .create_owner(&idlegrid_api::accounts::NewOwner {
                name: name.into(),
                customer: None,
            })
            .await
            .unwrap()
            .enrollment_token
    }

    /// `idlegrid worker` with `token`, named `name`, with `slots` task slots, keeping its state
    /// and log under `dir`.
    pub fn worker(&self, dir: &Path, token: &str, name: &str, slots: usize) -> Child {
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        Child(
            idlegrid(&dir.join("home"))
                .args(["worker", "--coordinator", &self.url, "--token", token])
                .args(["--name", name, "--slots", &slots.to_string(), "--state-dir"])
                .arg(dir.join(name))
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }
}
