//! What this device offers, detected once at start-up and sent when the worker registers.

use idlegrid_api::Capabilities;
use idlegrid_api::runner::RULES;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a probe (`python3 --version`, `ffmpeg -version`) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Capabilities plus the interpreter to run scripts with.
#[derive(Debug, Clone)]
pub struct Detected {
    /// What the device offers.
    pub capabilities: Capabilities,
    /// The Python executable itself. A launcher such as a pyenv shim needs environment variables
    /// the script's empty environment lacks, so it is resolved once here.
    pub python: PathBuf,
}

/// Probes the device. Missing Python or FFmpeg is reported as `None`, not an error: the
/// coordinator then sends no tasks that need them.
pub async fn detect(python: &Path, slots: usize) -> Detected {
    let (python_version, python_executable, ffmpeg, encoders, benchmark) = tokio::join!(
        probe(python, &["--version"]),
        probe(python, &["-c", "import sys; print(sys.executable)"]),
        probe(Path::new("ffmpeg"), &["-version"]),
        probe(Path::new("ffmpeg"), &["-hide_banner", "-encoders"]),
        tokio::task::spawn_blocking(benchmark),
    );
    let capabilities = Capabilities {
        cores: std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
        memory_mb: std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| mem_total_mb(&text))
            .unwrap_or(0),
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        python: python_version.as_deref().and_then(parse_python_version),
        ffmpeg: ffmpeg.as_deref().and_then(parse_ffmpeg_version),
        encoders: encoders.as_deref().map(grid_encoders).unwrap_or_default(),
        benchmark: benchmark.unwrap_or(0.0),
        slots: u32::try_from(slots).unwrap_or(u32::MAX),
        allows: Default::default(),
        ..Default::default()
    };
    let python = python_executable
        .map(|out| PathBuf::from(out.trim()))
        .filter(|path| path.is_absolute())
        .unwrap_or_else(|| python.to_path_buf());
    Detected {
        capabilities,
        python,
    }
}

/// Runs a program and returns its stdout followed by its stderr (old Pythons print their
/// version on stderr), or `None` if it cannot run or fails.
async fn probe(program: &Path, args: &[&str]) -> Option<String> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PROBE_TIMEOUT, output)
        .await
        .ok()?
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Some(text)
}

/// `Python 3.11.7` → `3.11.7`.
fn parse_python_version(text: &str) -> Option<String> {
    let version = text.lines().next()?.trim().strip_prefix("Python ")?.trim();
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| version.to_string())
}

/// `ffmpeg version 6.1.1-3ubuntu5 Copyright (c) ...` → `6.1.1-3ubuntu5`.
fn parse_ffmpeg_version(text: &str) -> Option<String> {
    let mut words = text.lines().next()?.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("ffmpeg"), Some("version"), Some(version)) => Some(version.to_string()),
        _ => None,
    }
}

/// The encoders the grid asks for ([`idlegrid_domain::GRID_ENCODERS`]) among those
/// `ffmpeg -encoders` lists (` V....D libx265   libx265 H.265 / HEVC (codec hevc)`).
fn grid_encoders(text: &str) -> Vec<String> {
    let listed: Vec<&str> = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let flags = words.next()?;
            (flags.len() == 6 && flags.starts_with(['V', 'A'])).then_some(())?;
            words.next()
        })
        .collect();
    idlegrid_domain::GRID_ENCODERS
        .iter()
        .filter(|name| listed.contains(name))
        .map(|name| name.to_string())
        .collect()
}

/// `MemTotal:       16318112 kB` → 15935.
fn mem_total_mb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Single-core speed: MB/s of SHA-256 over an in-memory buffer, for about
/// `RULES.benchmark_ms` (as the browser's runner measures it).
fn benchmark() -> f64 {
    let buffer = vec![0x5au8; RULES.benchmark_buffer_bytes];
    let time = Duration::from_millis(RULES.benchmark_ms);
    let started = Instant::now();
    let mut hashed = 0usize;
    let mut hasher = Sha256::new();
    while started.elapsed() < time {
        hasher.update(&buffer);
        hashed += buffer.len();
    }
    std::hint::black_box(hasher.finalize());
    let mb_per_sec = hashed as f64 / 1e6 / started.elapsed().as_secs_f64();
    (mb_per_sec * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_parsed() {
        assert_eq!(
            parse_python_version("Python 3.11.7\n").as_deref(),
            Some("3.11.7")
        );
        assert_eq!(parse_python_version("python: not found"), None);
        assert_eq!(
            parse_ffmpeg_version(
                "ffmpeg version 6.1.1-3ubuntu5 Copyright (c) 2000-2023\nbuilt with gcc"
            )
            .as_deref(),
            Some("6.1.1-3ubuntu5")
        );
        assert_eq!(parse_ffmpeg_version("bash: ffmpeg: not found"), None);
        assert_eq!(
            grid_encoders(
                "Encoders:\n V..... = Video\n ------\n V....D libx264   libx264 H.264\n \
                 V....D libx265   libx265 H.265\n V..... h264_vaapi  H.264 (VAAPI)\n \
                 A..... aac       AAC\n A..X.. opus  Opus\n"
            ),
            ["libx264", "libx265", "aac"]
        );
        assert_eq!(
            mem_total_mb("MemTotal:       16318112 kB\nMemFree: 1 kB\n"),
            Some(15935)
        );
    }

    #[tokio::test]
    async fn detects_this_machine() {
        let detected = detect(Path::new("python3"), 2).await;
        let caps = &detected.capabilities;
        assert!(caps.cores >= 1);
        assert_eq!(caps.slots, 2);
        assert!(caps.benchmark > 0.0);
        assert!(caps.python.is_some(), "these tests need python3");
        assert!(detected.python.is_absolute());
    }
}
