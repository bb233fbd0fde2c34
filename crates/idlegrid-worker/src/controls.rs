//! The device owner's controls: how much of the device a task may take (cores, CPU share,
//! memory, disk, run time) and when the device may work at all (after N idle minutes, on
//! battery or not, above a charge, within time windows).
//!
//! The limits are advertised to the coordinator ([`Controls::allowances`]), which never offers
//! a task needing more, and applied to every task ([`Controls::cap`]). The conditions are a
//! rule ([`Controls::decide`]) over what the device observes through [`Sources`]; the agent
//! asks it every [`POLICY_PERIOD`] and, when it says no, stops leasing and hands its running
//! tasks back. [`SystemSources`] reads the real device; tests give the rule their own.

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How often the agent asks the policy whether the device may work.
pub const POLICY_PERIOD: Duration = Duration::from_secs(5);

/// What the device's owner allows. The default allows everything, at any time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Controls {
    /// Most cores used: caps the task slots and the cores advertised.
    pub max_cores: Option<u32>,
    /// Share of the CPU a running task may take, 1–100 (see [`crate::throttle`]).
    pub cpu_percent: Option<u8>,
    /// Memory one task may use, in MiB (also the task's memory limit when the job's is higher).
    pub memory_mb: Option<u64>,
    /// Scratch disk one task may fill, in MiB.
    pub disk_mb: Option<u64>,
    /// Longest a task may run, in seconds.
    pub max_task_secs: Option<u64>,
    /// Work only after this many minutes without keyboard, mouse or terminal input.
    pub idle_minutes: Option<u32>,
    /// Whether the device may work while it runs on its battery.
    pub on_battery: bool,
    /// Work only while the battery (if there is one) holds at least this much charge, in percent.
    pub min_battery_percent: Option<u8>,
    /// Local times of day the device may work in; empty means at any time.
    pub hours: Vec<Window>,
}

impl Default for Controls {
    fn default() -> Self {
        Controls {
            max_cores: None,
            cpu_percent: None,
            memory_mb: None,
            disk_mb: None,
            max_task_secs: None,
            idle_minutes: None,
            on_battery: true,
            min_battery_percent: None,
            hours: Vec::new(),
        }
    }
}

/// Whether the device may work now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    /// It may.
    Allowed,
    /// Its owner paused it (`idlegrid worker pause`).
    Paused,
    /// One of the owner's conditions does not hold.
    NotAllowed {
        /// Which one, for the owner.
        reason: String,
    },
}

impl Permission {
    /// Whether tasks may run.
    pub fn allows(&self) -> bool {
        *self == Permission::Allowed
    }
}

/// A device's battery, as [`Sources::battery`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Battery {
    /// Whether the device runs on it (no charger, or one that does not keep up).
    pub discharging: bool,
    /// Its charge in percent, when known.
    pub percent: Option<u8>,
}

/// What the policy observes. Each is asked only when a control needs it.
pub trait Sources: Send + Sync {
    /// Minutes since local midnight, 0–1439.
    fn local_minute(&self) -> u16;
    /// Time since the last user input, or `None` when the device cannot tell.
    fn idle(&self) -> Option<Duration>;
    /// The battery, or `None` when the device has none.
    fn battery(&self) -> Option<Battery>;
}

impl Controls {
    /// Checks the values, naming the option and the fix of the first one that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_cores == Some(0) {
            return Err("max_cores must be at least 1 (leave it unset to use every core)".into());
        }
        if let Some(percent) = self.cpu_percent
            && !(1..=100).contains(&percent)
        {
            return Err(format!(
                "cpu_percent must be between 1 and 100, not {percent} (100 or unset: no throttling)"
            ));
        }
        for (name, value) in [
            ("memory_mb", self.memory_mb),
            ("disk_mb", self.disk_mb),
            ("max_task_secs", self.max_task_secs),
        ] {
            if value == Some(0) {
                return Err(format!(
                    "{name} must be at least 1 (leave it unset for no limit)"
                ));
            }
        }
        if let Some(percent) = self.min_battery_percent
            && percent > 100
        {
            return Err(format!(
                "min_battery_percent must be between 0 and 100, not {percent}"
            ));
        }
        Ok(())
    }

    /// What a task may take, as the coordinator's matching reads it.
    pub fn allowances(&self) -> idlegrid_domain::Allowances {
        idlegrid_domain::Allowances {
            memory_mb: self.memory_mb,
            disk_mb: self.disk_mb,
            task_secs: self.max_task_secs,
        }
    }

    /// Task slots for a device asked to run `slots` at once: at most `max_cores`.
    pub fn slots(&self, slots: usize) -> usize {
        match self.max_cores {
            Some(cores) => slots.min(usize::try_from(cores).unwrap_or(usize::MAX)),
            None => slots,
        }
    }

    /// A job's limits for one task, lowered to what the owner allows: memory and run time.
    pub fn cap(&self, limits: &idlegrid_api::tasks::TaskLimits) -> idlegrid_api::tasks::TaskLimits {
        let mut capped = limits.clone();
        if let Some(memory_mb) = self.memory_mb {
            capped.memory_mb = capped.memory_mb.min(memory_mb);
        }
        if let Some(secs) = self.max_task_secs {
            capped.timeout_secs = capped.timeout_secs.min(secs);
        }
        capped
    }

    /// Scratch bytes one task may add, when the owner limits them.
    pub fn disk_bytes(&self) -> Option<u64> {
        self.disk_mb.map(|mb| mb.saturating_mul(1024 * 1024))
    }

    /// Whether the device may work now; the error says which condition fails. A device that
    /// cannot tell when it was last used counts as idle (a server has no keyboard); the agent
    /// says so at start-up.
    pub fn decide(&self, sources: &dyn Sources) -> Result<(), String> {
        if !self.hours.is_empty() {
            let now = sources.local_minute();
            if !self.hours.iter().any(|w| w.contains(now)) {
                return Err(format!(
                    "outside the allowed hours ({}; now {})",
                    Window::list(&self.hours),
                    clock(now)
                ));
            }
        }
        if let Some(minutes) = self.idle_minutes {
            let wanted = Duration::from_secs(u64::from(minutes) * 60);
            if let Some(idle) = sources.idle()
                && idle < wanted
            {
                return Err(format!(
                    "the device is in use (last input {} min ago; works after {minutes} idle min)",
                    idle.as_secs() / 60
                ));
            }
        }
        if (!self.on_battery || self.min_battery_percent.is_some())
            && let Some(battery) = sources.battery()
        {
            if !self.on_battery && battery.discharging {
                return Err("the device runs on its battery".into());
            }
            if let (Some(min), Some(percent)) = (self.min_battery_percent, battery.percent)
                && percent < min
            {
                return Err(format!("the battery is at {percent}% (works from {min}%)"));
            }
        }
        Ok(())
    }

    /// The controls that are set, as `name=value` words; empty when none is.
    pub fn describe(&self) -> Vec<String> {
        let mut words = Vec::new();
        let mut set = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                words.push(format!("{name}={value}"));
            }
        };
        set("max_cores", self.max_cores.map(|v| v.to_string()));
        set("cpu_percent", self.cpu_percent.map(|v| v.to_string()));
        set("memory_mb", self.memory_mb.map(|v| v.to_string()));
        set("disk_mb", self.disk_mb.map(|v| v.to_string()));
        set("max_task_secs", self.max_task_secs.map(|v| v.to_string()));
        set("idle_minutes", self.idle_minutes.map(|v| v.to_string()));
        set("on_battery", (!self.on_battery).then(|| "deny".to_string()));
        set(
            "min_battery_percent",
            self.min_battery_percent.map(|v| v.to_string()),
        );
        set(
            "hours",
            (!self.hours.is_empty()).then(|| Window::list(&self.hours)),
        );
        words
    }
}

/// `HH:MM` of a minute of the day.
fn clock(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// A daily time window in local time, `start` included, `end` excluded; it wraps midnight when
/// `end` is not after `start` (`22:00-07:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Window {
    /// First minute of the day inside, 0–1439.
    start: u16,
    /// First minute after it, 1–1440 (1440 is `24:00`).
    end: u16,
}

impl Window {
    /// Parses `HH:MM-HH:MM[,HH:MM-HH:MM...]`.
    pub fn parse_list(text: &str) -> Result<Vec<Window>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(Window::parse)
            .collect()
    }

    fn parse(text: &str) -> Result<Window, String> {
        let bad = |why: &str| {
            format!("hours: {text:?} is not a window ({why}); write e.g. 22:00-07:00,12:00-13:00")
        };
        let (start, end) = text.split_once('-').ok_or_else(|| bad("no '-'"))?;
        let minute = |t: &str| -> Result<u16, String> {
            let (h, m) = t
                .trim()
                .split_once(':')
                .ok_or_else(|| bad("times are HH:MM"))?;
            let (h, m): (u16, u16) = (
                h.parse().map_err(|_| bad("times are HH:MM"))?,
                m.parse().map_err(|_| bad("times are HH:MM"))?,
            );
            if m > 59 || h > 24 || (h == 24 && m != 0) {
                return Err(bad("hours go from 00:00 to 24:00"));
            }
            Ok(h * 60 + m)
        };
        let (start, end) = (minute(start)?, minute(end)?);
        if start == 1440 {
            return Err(bad("a window cannot start at 24:00; use 00:00"));
        }
        if start == end {
            return Err(bad("it is empty; for all day leave hours unset"));
        }
        Ok(Window { start, end })
    }

    /// Whether `minute` (since midnight) is inside.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }

    fn list(windows: &[Window]) -> String {
        windows
            .iter()
            .map(Window::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", clock(self.start), clock(self.end))
    }
}

impl From<Window> for String {
    fn from(window: Window) -> String {
        window.to_string()
    }
}

impl TryFrom<String> for Window {
    type Error = String;

    fn try_from(text: String) -> Result<Window, String> {
        Window::parse(&text)
    }
}

/// The real device: the local clock, input devices' timestamps, `/sys/class/power_supply`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemSources;

impl Sources for SystemSources {
    fn local_minute(&self) -> u16 {
        let now = jiff::Zoned::now();
        u16::try_from(i32::from(now.hour()) * 60 + i32::from(now.minute())).unwrap_or(0)
    }

    /// Like `w`: the newest input on `/dev/input/event*` (read or written) and on terminals
    /// (`/dev/tty*`, `/dev/pts/*`: last read only, since output such as the worker's own logs
    /// changes their modification time). The kernel updates these times at most every few
    /// seconds.
    fn idle(&self) -> Option<Duration> {
        let newest = last_input(Path::new("/dev"))?;
        Some(SystemTime::now().duration_since(newest).unwrap_or_default())
    }

    fn battery(&self) -> Option<Battery> {
        battery_in(Path::new("/sys/class/power_supply"))
    }
}

/// The newest input time among the input devices and terminals under `dev`.
fn last_input(dev: &Path) -> Option<SystemTime> {
    let mut newest: Option<SystemTime> = None;
    let mut consider = |time: std::io::Result<SystemTime>| {
        if let Ok(time) = time {
            newest = Some(newest.map_or(time, |n| n.max(time)));
        }
    };
    let entries = |dir: &Path| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .collect::<Vec<_>>()
    };
    for entry in entries(&dev.join("input")) {
        if entry.file_name().to_string_lossy().starts_with("event")
            && let Ok(meta) = entry.metadata()
        {
            consider(meta.accessed());
            consider(meta.modified());
        }
    }
    let terminals = entries(dev)
        .into_iter()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tty"))
        .chain(entries(&dev.join("pts")));
    for entry in terminals {
        if let Ok(meta) = entry.metadata() {
            consider(meta.accessed());
        }
    }
    newest
}

/// The device's batteries under `power_supply`, as one: discharging when any is, the mean charge.
fn battery_in(power_supply: &Path) -> Option<Battery> {
    let read = |dir: &Path, name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut found = false;
    let mut discharging = false;
    let mut charges = Vec::new();
    for entry in std::fs::read_dir(power_supply).ok()?.flatten() {
        let dir = entry.path();
        if read(&dir, "type").as_deref() != Some("Battery") {
            continue;
        }
        found = true;
        discharging |= read(&dir, "status").as_deref() == Some("Discharging");
        if let Some(percent) = read(&dir, "capacity").and_then(|c| c.parse::<u32>().ok()) {
            charges.push(percent.min(100));
        }
    }
    let percent = (!charges.is_empty()).then(|| {
        let mean = charges.iter().sum::<u32>() / u32::try_from(charges.len()).unwrap_or(1);
        u8::try_from(mean).unwrap_or(100)
    });
    found.then_some(Battery {
        discharging,
        percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device whose clock, idle time and battery the test sets.
    struct Fixed {
        minute: u16,
        idle: Option<Duration>,
        battery: Option<Battery>,
    }

    impl Sources for Fixed {
        fn local_minute(&self) -> u16 {
            self.minute
        }
        fn idle(&self) -> Option<Duration> {
            self.idle
        }
        fn battery(&self) -> Option<Battery> {
            self.battery
        }
    }

    const NOON: Fixed = Fixed {
        minute: 12 * 60,
        idle: None,
        battery: None,
    };

    fn at(hh: u16, mm: u16) -> Fixed {
        Fixed {
            minute: hh * 60 + mm,
            ..NOON
        }
    }

    #[test]
    fn windows_parse_and_wrap_midnight() {
        let windows = Window::parse_list("22:00-07:00, 12:00-13:00").unwrap();
        assert_eq!(Window::list(&windows), "22:00-07:00,12:00-13:00");
        let night = windows[0];
        for (minute, inside) in [
            (22 * 60, true),
            (23 * 60 + 59, true),
            (0, true),
            (6 * 60 + 59, true),
            (7 * 60, false),
            (21 * 60 + 59, false),
            (12 * 60, false),
        ] {
            assert_eq!(night.contains(minute), inside, "{}", clock(minute));
        }
        let all_evening = Window::parse_list("18:00-24:00").unwrap()[0];
        assert!(all_evening.contains(23 * 60 + 59) && !all_evening.contains(0));
        for bad in [
            "22:00",
            "25:00-01:00",
            "10:60-11:00",
            "24:00-01:00",
            "9-10",
            "08:00-08:00",
        ] {
            let err = Window::parse_list(bad).unwrap_err();
            assert!(
                err.starts_with("hours:") && err.contains("e.g."),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn hours_allow_only_inside_their_windows() {
        let controls = Controls {
            hours: Window::parse_list("22:00-07:00,12:00-13:00").unwrap(),
            ..Controls::default()
        };
        assert!(controls.decide(&at(23, 30)).is_ok());
        assert!(controls.decide(&at(3, 0)).is_ok());
        assert!(controls.decide(&at(12, 30)).is_ok());
        let err = controls.decide(&at(13, 0)).unwrap_err();
        assert_eq!(
            err,
            "outside the allowed hours (22:00-07:00,12:00-13:00; now 13:00)"
        );
        assert!(Controls::default().decide(&at(13, 0)).is_ok());
    }

    #[test]
    fn idle_minutes_wait_for_the_owner_to_leave() {
        let controls = Controls {
            idle_minutes: Some(10),
            ..Controls::default()
        };
        let idle = |secs| Fixed {
            idle: Some(Duration::from_secs(secs)),
            ..NOON
        };
        let err = controls.decide(&idle(9 * 60 + 59)).unwrap_err();
        assert!(err.contains("in use") && err.contains("9 min ago"), "{err}");
        assert!(controls.decide(&idle(10 * 60)).is_ok());
        // A device that cannot tell (no terminal, no input device) counts as idle.
        assert!(controls.decide(&NOON).is_ok());
    }

    #[test]
    fn battery_rules() {
        let battery = |discharging, percent| Fixed {
            battery: Some(Battery {
                discharging,
                percent: Some(percent),
            }),
            ..NOON
        };
        let no_battery = Controls {
            on_battery: false,
            ..Controls::default()
        };
        assert_eq!(
            no_battery.decide(&battery(true, 90)).unwrap_err(),
            "the device runs on its battery"
        );
        assert!(no_battery.decide(&battery(false, 90)).is_ok());
        assert!(no_battery.decide(&NOON).is_ok(), "a desktop has no battery");
        let charged = Controls {
            min_battery_percent: Some(50),
            ..Controls::default()
        };
        assert!(charged.decide(&battery(true, 50)).is_ok());
        assert_eq!(
            charged.decide(&battery(false, 49)).unwrap_err(),
            "the battery is at 49% (works from 50%)"
        );
        assert!(Controls::default().decide(&battery(true, 5)).is_ok());
    }

    #[test]
    fn limits_are_advertised_capped_and_validated() {
        let controls = Controls {
            max_cores: Some(2),
            memory_mb: Some(512),
            disk_mb: Some(100),
            max_task_secs: Some(60),
            ..Controls::default()
        };
        assert_eq!(controls.validate(), Ok(()));
        assert_eq!(controls.slots(8), 2);
        assert_eq!(controls.slots(1), 1);
        let allows = controls.allowances();
        assert_eq!(
            (allows.memory_mb, allows.disk_mb, allows.task_secs),
            (Some(512), Some(100), Some(60))
        );
        let job = idlegrid_api::tasks::TaskLimits {
            timeout_secs: 600,
            memory_mb: 256,
            max_output_bytes: 1,
        };
        let capped = controls.cap(&job);
        assert_eq!((capped.timeout_secs, capped.memory_mb), (60, 256));
        assert_eq!(controls.disk_bytes(), Some(100 << 20));
        for (wrong, option) in [
            (
                Controls {
                    cpu_percent: Some(0),
                    ..Controls::default()
                },
                "cpu_percent",
            ),
            (
                Controls {
                    max_cores: Some(0),
                    ..Controls::default()
                },
                "max_cores",
            ),
            (
                Controls {
                    disk_mb: Some(0),
                    ..Controls::default()
                },
                "disk_mb",
            ),
        ] {
            assert!(wrong.validate().unwrap_err().starts_with(option));
        }
        assert_eq!(
            controls.describe(),
            [
                "max_cores=2",
                "memory_mb=512",
                "disk_mb=100",
                "max_task_secs=60"
            ]
        );
    }

    #[test]
    fn batteries_and_input_times_are_read_from_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let supply = dir.path().join("power_supply");
        for (name, kind, status, capacity) in [
            ("AC", "Mains", "", ""),
            ("BAT0", "Battery", "Discharging", "40"),
            ("BAT1", "Battery", "Full", "100"),
        ] {
            let d = supply.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
            if !status.is_empty() {
                std::fs::write(d.join("status"), status).unwrap();
                std::fs::write(d.join("capacity"), capacity).unwrap();
            }
        }
        assert_eq!(
            battery_in(&supply),
            Some(Battery {
                discharging: true,
                percent: Some(70)
            })
        );
        assert_eq!(battery_in(&dir.path().join("none")), None);

        let dev = dir.path().join("dev");
        assert_eq!(last_input(&dev), None);
        std::fs::create_dir_all(dev.join("pts")).unwrap();
        std::fs::write(dev.join("pts").join("0"), "").unwrap();
        let seen = last_input(&dev).expect("a terminal");
        assert!(SystemTime::now().duration_since(seen).unwrap() < Duration::from_secs(60));
    }
}
