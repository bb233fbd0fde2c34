//! Apps: what a service is made of, what it needs from a device, and what a device offers.
//!
//! An app is a versioned bundle — this manifest plus its Python task script — that names the
//! partitioner, validator and assembler the coordinator runs for it. Workers only ever see the
//! bundle, so adding an app needs no worker update.

use serde::{Deserialize, Serialize};

/// An app's manifest, shipped inside its bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppManifest {
    /// Service name customers ask for, e.g. `python-map`.
    pub name: String,
    /// Version of the bundle; changes whenever the task script or manifest changes.
    pub version: String,
    /// One line for humans.
    pub description: String,
    /// Python file in the bundle that the worker runs.
    pub entrypoint: String,
    /// File name the chunk gets inside the task's `input/` directory.
    pub input_name: String,
    /// Name of the coordinator-side partitioner that splits the input.
    pub partitioner: String,
    /// Name of the coordinator-side validator that judges each result.
    pub validator: String,
    /// Name of the coordinator-side assembler that merges validated results.
    pub assembler: String,
    /// Whether the customer supplies the task script with the job (python-map does).
    #[serde(default)]
    pub customer_script: bool,
    /// Whether the same chunk and parameters always give the same bytes on any device, so
    /// replicas can be compared by hash. With a customer script, the customer vouches for it
    /// by asking for replication.
    #[serde(default)]
    pub deterministic: bool,
    /// What a device needs to run this app's tasks.
    #[serde(default)]
    pub requirements: Requirements,
    /// The replication a job of this app gets on the open grid when its customer does not
    /// choose one (apps whose results only agreement can check, such as a Monte Carlo sweep,
    /// ask for fixed replication); by default the grid's own choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<crate::replication::Replication>,
    /// A JSON Schema that a job's `params` must satisfy (published apps). The coordinator's
    /// alone: the bundle served to devices leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub parameters: Option<serde_json::Value>,
}

/// How app versions (`MAJOR.MINOR.PATCH`) order: part by part, as numbers (1.10.0 comes after
/// 1.9.0); a part that is not a number counts as 0.
pub fn version_key(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

/// What a task needs from a device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    /// Lowest Python version, as `MAJOR.MINOR`.
    #[serde(default)]
    pub python: Option<String>,
    /// Whether FFmpeg must be installed.
    #[serde(default)]
    pub ffmpeg: bool,
    /// FFmpeg encoders the tasks use (`libx265`, `libopus`...): a device is offered the job
    /// only if it has every one. Set per job by its app from the job's parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encoders: Vec<String>,
    /// Memory one task may use, in MiB; also the task's address-space limit on the worker.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Lowest benchmark score a device must have (the reference device scores 1000).
    #[serde(default)]
    pub min_benchmark: Option<f64>,
    /// Scratch disk one task may use, in MiB.
    #[serde(default)]
    pub disk_mb: Option<u64>,
    /// Where the Python packages the app brings run (`os/arch/python`, `*` for any; see
    /// [`crate::wheel`]): a device is offered the job only on one of them. Set by the
    /// coordinator from the bundle's wheels, never by a manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
}

/// What a device offers, reported when it registers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Capabilities {
    /// Logical CPU cores.
    pub cores: u32,
    /// Physical memory in MiB.
    pub memory_mb: u64,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: String,
    /// Python version, e.g. `3.11.7`, if Python is installed.
    pub python: Option<String>,
    /// FFmpeg version, if installed.
    pub ffmpeg: Option<String>,
    /// FFmpeg encoders the device has, by FFmpeg's names; empty from a device that does not
    /// say (it is taken to have [`BASELINE_ENCODERS`] when it has FFmpeg).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encoders: Vec<String>,
    /// Single-core speed score from the worker's start-up benchmark (higher is faster).
    pub benchmark: f64,
    /// Task slots the device runs at once.
    pub slots: u32,
    /// What the device's owner allows a task to use.
    #[serde(default)]
    pub allows: Allowances,
    /// What runs the task scripts: the native worker, or a browser tab.
    #[serde(default)]
    pub runtime: Runtime,
    /// Whether the runtime can run multi-threaded WebAssembly (a browser whose page is
    /// cross-origin isolated); always false for the native worker.
    #[serde(default)]
    pub wasm_threads: bool,
}

/// What kind of runtime a device runs task scripts in. Tools built for different runtimes give
/// different bytes for the same work (ffmpeg.wasm's x264 is not the native build), so results
/// are compared by hash only within one kind.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    /// `idlegrid worker`: CPython and FFmpeg installed on the device, in a sandbox.
    #[default]
    Native,
    /// The `/contribute` page: Pyodide and ffmpeg.wasm in a browser's Web Worker.
    Browser,
}

impl Runtime {
    /// The name used on the wire and in the records.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Native => "native",
            Runtime::Browser => "browser",
        }
    }

    /// The runtime named `name` in the records; unknown or missing names are the native one
    /// (devices registered before runtimes had kinds).
    pub fn from_name(name: Option<&str>) -> Runtime {
        match name {
            Some("browser") => Runtime::Browser,
            _ => Runtime::Native,
        }
    }
}

/// What a device's owner allows one task to take; a device is never offered a task that needs
/// more. `None` means no limit beyond the device's own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Allowances {
    /// Memory one task may use, in MiB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Scratch disk one task may use, in MiB.
    #[serde(default)]
    pub disk_mb: Option<u64>,
    /// Longest a task may run, in seconds (a phone may take only short tasks).
    #[serde(default)]
    pub task_secs: Option<u64>,
}

/// Parses the leading `MAJOR.MINOR` of a version string such as `3.11.7` or `Python 3.8`.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let digits = version.trim_start_matches(|c: char| !c.is_ascii_digit());
    let mut parts = digits.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Most task slots, cores and benchmark score a device may claim; beyond these a report is not
/// a device but a mistake or an attempt to draw every task (and backup) to itself.
pub const MAX_SLOTS: u32 = 256;
/// See [`MAX_SLOTS`].
pub const MAX_CORES: u32 = 4096;
/// See [`MAX_SLOTS`]: 1000 × the reference device.
pub const MAX_BENCHMARK: f64 = 1_000_000.0;
/// Encoders every device with FFmpeg is taken to have when it does not list them (workers
/// from before encoders were listed, and what every FFmpeg build the grid runs on carries).
pub const BASELINE_ENCODERS: [&str; 2] = ["libx264", "aac"];
/// The encoders the grid's apps ask for, which a worker looks for in its FFmpeg and lists.
pub const GRID_ENCODERS: [&str; 7] = [
    "libx264",
    "libx265",
    "libsvtav1",
    "libvpx-vp9",
    "libaom-av1",
    "aac",
    "libopus",
];
/// Most encoders a device may list, and the longest name of one.
pub const MAX_ENCODERS: usize = 64;
/// See [`MAX_ENCODERS`].
pub const MAX_ENCODER_NAME: usize = 32;
/// Encoders whose output is the same bytes only among devices of one instruction set, with
/// that instruction set: results are compared by hash, and a device whose honest bytes differ
/// from an accepted result's would be blamed, so devices elsewhere are not offered them. x265's
/// AVX2 kernels round differently from its SSE4 ones (the task script pins it to SSE4, which
/// every x86-64 device since 2008 has); SVT-AV1 gave the same bytes with its SSE4.1 and AVX2
/// kernels, but neither it, libvpx nor libopus was compared on ARM. x264 is bit-exact on every
/// platform by its own design.
pub const ENCODERS_PINNED_TO_ARCH: [(&str, &str); 4] = [
    ("libx265", "x86_64"),
    ("libsvtav1", "x86_64"),
    ("libvpx-vp9", "x86_64"),
    ("libopus", "x86_64"),
];
/// Longest text a device may report for its OS, architecture or runtime versions.
pub const MAX_CAPABILITY_TEXT: usize = 100;
/// Most memory a device may report or allow a task, in MiB: 64 TiB, past the largest single
/// machines. Matching compares a task's need with it, so a device claiming `u64::MAX` would
/// be offered every task.
pub const MAX_MEMORY_MB: u64 = 64 * 1024 * 1024;
/// Most scratch disk an owner may allow one task, in MiB: 1 PiB.
pub const MAX_DISK_MB: u64 = 1024 * 1024 * 1024;
/// Longest task time an owner may allow, in seconds: 30 days, the longest a job may run.
pub const MAX_TASK_SECS: u64 = 30 * 24 * 3600;

impl Capabilities {
    /// Checks what a device reports about itself before the coordinator keeps it; the error
    /// names the first value out of range.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_CORES).contains(&self.cores) {
            return Err(format!(
                "cores must be from 1 to {MAX_CORES}, not {}",
                self.cores
            ));
        }
        if !(1..=MAX_SLOTS).contains(&self.slots) {
            return Err(format!(
                "slots must be from 1 to {MAX_SLOTS}, not {}",
                self.slots
            ));
        }
        // 0 is a device whose benchmark failed: it counts as the reference device.
        if !(self.benchmark.is_finite() && (0.0..=MAX_BENCHMARK).contains(&self.benchmark)) {
            return Err(format!(
                "benchmark must be from 0 to {MAX_BENCHMARK}, not {}",
                self.benchmark
            ));
        }
        // 0: a system that does not say (there is no /proc/meminfo on macOS).
        if self.memory_mb > MAX_MEMORY_MB {
            return Err(format!(
                "memory_mb must be from 0 to {MAX_MEMORY_MB} (64 TiB), not {}",
                self.memory_mb
            ));
        }
        let texts = [
            ("os", Some(&self.os)),
            ("arch", Some(&self.arch)),
            ("python", self.python.as_ref()),
            ("ffmpeg", self.ffmpeg.as_ref()),
        ];
        for (name, text) in texts {
            if let Some(text) = text
                && (text.len() > MAX_CAPABILITY_TEXT || text.chars().any(crate::text::is_hidden))
            {
                return Err(format!(
                    "{name} must be at most {MAX_CAPABILITY_TEXT} bytes of printable text"
                ));
            }
        }
        for (name, value, most) in [
            ("allows.memory_mb", self.allows.memory_mb, MAX_MEMORY_MB),
            ("allows.disk_mb", self.allows.disk_mb, MAX_DISK_MB),
            ("allows.task_secs", self.allows.task_secs, MAX_TASK_SECS),
        ] {
            if let Some(value) = value
                && !(1..=most).contains(&value)
            {
                return Err(format!(
                    "{name} must be from 1 to {most} when given, not {value}"
                ));
            }
        }
        if self.encoders.len() > MAX_ENCODERS
            || self.encoders.iter().any(|name| {
                name.is_empty()
                    || name.len() > MAX_ENCODER_NAME
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
        {
            return Err(format!(
                "encoders must be at most {MAX_ENCODERS} FFmpeg encoder names (letters, digits, \
                 '_' and '-', at most {MAX_ENCODER_NAME} bytes each)"
            ));
        }
        if self.wasm_threads && self.runtime == Runtime::Native {
            return Err("wasm_threads is only for the browser runtime".into());
        }
        Ok(())
    }
}

impl Capabilities {
    /// Whether the device has FFmpeg's `encoder`.
    pub fn has_encoder(&self, encoder: &str) -> bool {
        self.ffmpeg.is_some()
            && if self.encoders.is_empty() {
                BASELINE_ENCODERS.contains(&encoder)
            } else {
                self.encoders.iter().any(|e| e == encoder)
            }
    }
}

impl Requirements {
    /// Whether some device could meet these (a manifest's, checked when it is published): a
    /// Python version of the `MAJOR.MINOR` form, a benchmark and a disk no device is refused
    /// for claiming.
    pub fn satisfiable(&self) -> Result<(), String> {
        if let Some(python) = &self.python
            && major_minor(python).is_none()
        {
            return Err(format!(
                "requirements.python {python:?} must be MAJOR.MINOR"
            ));
        }
        if self
            .min_benchmark
            .is_some_and(|b| !(b.is_finite() && (0.0..=MAX_BENCHMARK).contains(&b)))
        {
            return Err(format!(
                "requirements.min_benchmark must be from 0 to {MAX_BENCHMARK}"
            ));
        }
        if self.disk_mb.is_some_and(|mb| mb > MAX_DISK_MB) {
            return Err(format!(
                "requirements.disk_mb must be at most {MAX_DISK_MB}"
            ));
        }
        Ok(())
    }

    /// Checks a device against these requirements; the error names the first thing missing.
    pub fn check(&self, caps: &Capabilities) -> Result<(), String> {
        if let Some(wanted) = &self.python {
            let need = major_minor(wanted)
                .ok_or_else(|| format!("requirement python={wanted:?} is not MAJOR.MINOR"))?;
            match caps.python.as_deref().and_then(major_minor) {
                Some(have) if have >= need => {}
                Some(_) => {
                    return Err(format!(
                        "needs Python {wanted}, device has {}",
                        caps.python.as_deref().unwrap_or_default()
                    ));
                }
                None => return Err(format!("needs Python {wanted}, device has none")),
            }
        }
        if (self.ffmpeg || !self.encoders.is_empty()) && caps.ffmpeg.is_none() {
            return Err("needs FFmpeg, device has none".into());
        }
        for encoder in &self.encoders {
            if !caps.has_encoder(encoder) {
                return Err(format!("needs FFmpeg's {encoder} encoder, device has none"));
            }
            if let Some((_, arch)) = ENCODERS_PINNED_TO_ARCH
                .iter()
                .find(|(name, _)| name == encoder)
                && caps.arch != *arch
            {
                return Err(format!(
                    "needs an {arch} device for {encoder} (its output differs by instruction \
                     set), device is {}",
                    caps.arch
                ));
            }
        }
        if let Some(mb) = self.memory_mb {
            if caps.memory_mb < mb {
                return Err(format!(
                    "needs {mb} MiB of memory, device has {}",
                    caps.memory_mb
                ));
            }
            if let Some(allowed) = caps.allows.memory_mb
                && allowed < mb
            {
                return Err(format!(
                    "needs {mb} MiB of memory, the owner allows {allowed}"
                ));
            }
        }
        if let Some(mb) = self.disk_mb
            && let Some(allowed) = caps.allows.disk_mb
            && allowed < mb
        {
            return Err(format!(
                "needs {mb} MiB of disk, the owner allows {allowed}"
            ));
        }
        if let Some(score) = self.min_benchmark
            && caps.benchmark < score
        {
            return Err(format!(
                "needs a benchmark of at least {score}, device scored {}",
                caps.benchmark
            ));
        }
        if !self.platforms.is_empty()
            && !self
                .platforms
                .iter()
                .filter_map(|p| crate::wheel::Platform::parse(p))
                .any(|p| p.fits(caps))
        {
            return Err(format!(
                "needs a native device of {} for the app's packages, device is {}/{}/{} ({})",
                self.platforms.join(" or "),
                caps.os,
                caps.arch,
                caps.python.as_deref().unwrap_or("no Python"),
                caps.runtime.as_str()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Capabilities {
        Capabilities {
            cores: 4,
            memory_mb: 8192,
            os: "linux".into(),
            arch: "x86_64".into(),
            python: Some("3.11.7".into()),
            ffmpeg: None,
            benchmark: 100.0,
            slots: 4,
            allows: Allowances::default(),
            ..Capabilities::default()
        }
    }

    #[test]
    fn python_versions_compare_numerically() {
        let req = Requirements {
            python: Some("3.8".into()),
            ..Default::default()
        };
        assert!(req.check(&device()).is_ok());
        let req = Requirements {
            python: Some("3.12".into()),
            ..Default::default()
        };
        assert_eq!(
            req.check(&device()),
            Err("needs Python 3.12, device has 3.11.7".into())
        );
        let mut none = device();
        none.python = None;
        assert!(
            Requirements {
                python: Some("3.8".into()),
                ..Default::default()
            }
            .check(&none)
            .is_err()
        );
    }

    #[test]
    fn ffmpeg_and_memory_are_checked() {
        let req = Requirements {
            ffmpeg: true,
            ..Default::default()
        };
        assert_eq!(
            req.check(&device()),
            Err("needs FFmpeg, device has none".into())
        );
        let req = Requirements {
            memory_mb: Some(16384),
            ..Default::default()
        };
        assert!(req.check(&device()).unwrap_err().contains("16384 MiB"));
    }

    #[test]
    fn encoders_are_matched_by_name_and_pinned_ones_by_instruction_set() {
        let mut caps = device();
        caps.ffmpeg = Some("5.1".into());
        let needs = |names: &[&str]| Requirements {
            encoders: names.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        };
        // A device that lists nothing has the baseline only.
        assert!(needs(&["libx264", "aac"]).check(&caps).is_ok());
        assert_eq!(
            needs(&["libsvtav1"]).check(&caps),
            Err("needs FFmpeg's libsvtav1 encoder, device has none".into())
        );
        caps.encoders = vec!["libsvtav1".into(), "libx265".into(), "libopus".into()];
        assert!(needs(&["libsvtav1", "libopus"]).check(&caps).is_ok());
        assert!(
            needs(&["libx264"]).check(&caps).is_err(),
            "listed: no baseline"
        );
        assert!(needs(&["libx265"]).check(&caps).is_ok());
        caps.arch = "aarch64".into();
        assert!(
            needs(&["libx265"])
                .check(&caps)
                .unwrap_err()
                .contains("x86_64 device")
        );
        caps.ffmpeg = None;
        assert!(needs(&["libsvtav1"]).check(&caps).is_err());
        // What a device lists is bounded.
        let mut caps = device();
        caps.encoders = vec!["lib x264".into()];
        assert!(caps.validate().unwrap_err().contains("encoders"));
        caps.encoders = vec!["a".into(); MAX_ENCODERS + 1];
        assert!(caps.validate().unwrap_err().contains("encoders"));
    }

    #[test]
    fn owners_allowances_and_benchmarks_are_checked() {
        let mut caps = device();
        caps.allows.memory_mb = Some(512);
        caps.allows.disk_mb = Some(100);
        let req = Requirements {
            memory_mb: Some(1024),
            ..Default::default()
        };
        assert_eq!(
            req.check(&caps),
            Err("needs 1024 MiB of memory, the owner allows 512".into())
        );
        let req = Requirements {
            disk_mb: Some(200),
            ..Default::default()
        };
        assert!(req.check(&caps).unwrap_err().contains("owner allows 100"));
        let req = Requirements {
            min_benchmark: Some(500.0),
            ..Default::default()
        };
        assert!(req.check(&caps).unwrap_err().contains("at least 500"));
        assert!(Requirements::default().check(&caps).is_ok());
    }

    #[test]
    fn major_minor_parses_common_forms() {
        assert_eq!(major_minor("3.11.7"), Some((3, 11)));
        assert_eq!(major_minor("Python 3.8"), Some((3, 8)));
        assert_eq!(major_minor("3"), None);
    }

    #[test]
    fn what_a_device_reports_is_checked_for_range() {
        assert!(device().validate().is_ok());
        let mut caps = device();
        caps.slots = 0;
        assert!(caps.validate().unwrap_err().contains("slots"));
        let mut caps = device();
        caps.benchmark = 1e12;
        assert!(caps.validate().unwrap_err().contains("benchmark"));
        let mut caps = device();
        caps.benchmark = -1.0;
        assert!(caps.validate().unwrap_err().contains("benchmark"));
        let mut caps = device();
        caps.os = "x".repeat(500);
        assert!(caps.validate().unwrap_err().contains("os must be"));
        let mut caps = device();
        caps.python = Some("3.11\n".into());
        assert!(caps.validate().unwrap_err().contains("python must be"));
        let mut caps = device();
        caps.allows.task_secs = Some(0);
        assert!(caps.validate().unwrap_err().contains("allows.task_secs"));
        let mut caps = device();
        caps.memory_mb = u64::MAX;
        assert!(
            caps.validate()
                .unwrap_err()
                .starts_with("memory_mb must be")
        );
        caps.memory_mb = 0;
        assert!(caps.validate().is_ok(), "0: the system did not say");
        for (name, set) in [
            (
                "allows.memory_mb",
                (|c, v| c.allows.memory_mb = v) as fn(&mut Capabilities, _),
            ),
            ("allows.disk_mb", |c, v| c.allows.disk_mb = v),
            ("allows.task_secs", |c, v| c.allows.task_secs = v),
        ] {
            let mut caps = device();
            set(&mut caps, Some(u64::MAX));
            assert!(caps.validate().unwrap_err().starts_with(name), "{name}");
        }
    }
}
