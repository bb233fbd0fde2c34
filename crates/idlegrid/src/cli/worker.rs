//! Arguments of `idlegrid worker`'s controls and of the device owner's worker commands
//! (`pause`, `resume`, `status`, `install`, `uninstall`, `link`).

use clap::{Args, Subcommand, ValueEnum};
use idlegrid_worker::controls::Window;
use std::path::PathBuf;

/// `--hours`: the windows the device may work in.
#[derive(Debug, Clone)]
pub struct Hours(pub Vec<Window>);

fn parse_hours(text: &str) -> Result<Hours, String> {
    Window::parse_list(text).map(Hours)
}

/// What the device's owner allows tasks to take, and when the device may work. Each is also
/// an `IDLEGRID_WORKER_*` setting, so it can live in the `--config` file.
#[derive(Debug, Clone, Args)]
pub struct ControlsArgs {
    /// Most cores to use: caps --slots, and is the core count the coordinator sees.
    #[arg(long, env = "IDLEGRID_WORKER_MAX_CORES", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_cores: Option<u32>,
    /// Share of the CPU a running task may take, 1-100: its processes are stopped and
    /// continued in 1-second cycles (SIGSTOP/SIGCONT, as BOINC does); its timeout is
    /// stretched to match.
    #[arg(long, env = "IDLEGRID_WORKER_CPU_PERCENT", value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub cpu_percent: Option<u8>,
    /// Memory one task may use, in MiB: the coordinator sends no task needing more, and a
    /// task's memory limit is the lower of its job's and this.
    #[arg(long, env = "IDLEGRID_WORKER_MEMORY_MB", value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub memory_mb: Option<u64>,
    /// Scratch disk one task may fill, in MiB: the coordinator sends no task needing more, and
    /// a task writing more is killed and reported failed.
    #[arg(long, env = "IDLEGRID_WORKER_DISK_MB", value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub disk_mb: Option<u64>,
    /// Longest a task may run, in seconds: the coordinator sends no task allowed longer, and
    /// a task's timeout is at most this.
    #[arg(long, env = "IDLEGRID_WORKER_MAX_TASK_SECS", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_task_secs: Option<u64>,
    /// Work only after this many minutes without keyboard, mouse or terminal input (on Linux,
    /// the newest use of /dev/input/event*, /dev/tty* and /dev/pts/*; a device with none of
    /// them counts as idle). Running tasks are handed back when someone uses the device.
    #[arg(long, env = "IDLEGRID_WORKER_IDLE_MINUTES", value_name = "MINUTES")]
    pub idle_minutes: Option<u32>,
    /// Whether to work while the device runs on its battery (/sys/class/power_supply).
    #[arg(long, env = "IDLEGRID_WORKER_ON_BATTERY", value_enum, default_value_t = OnBattery::Allow)]
    pub on_battery: OnBattery,
    /// Work only while the battery, if there is one, holds at least this charge, 0-100.
    #[arg(long, env = "IDLEGRID_WORKER_MIN_BATTERY_PERCENT", value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub min_battery_percent: Option<u8>,
    /// Work only in these local-time windows, e.g. 22:00-07:00,12:00-13:00 (a window may
    /// wrap midnight; 24:00 ends a day). Running tasks are handed back when a window closes.
    #[arg(long, env = "IDLEGRID_WORKER_HOURS", value_name = "WINDOWS", value_parser = parse_hours)]
    pub hours: Option<Hours>,
}

/// `--on-battery`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnBattery {
    /// Work on battery too.
    Allow,
    /// Hand tasks back and wait while the device runs on its battery.
    Deny,
}

/// `idlegrid worker pause | resume | status`.
#[derive(Debug, Subcommand)]
pub enum ControlCommand {
    /// Pause the worker running on this device: it hands its tasks back at once and takes no
    /// more until resumed, also after a restart.
    Pause(ControlArgs),
    /// Let a paused worker work again (as its other controls allow).
    Resume(ControlArgs),
    /// Show what the worker is doing: its state, current tasks, results this session and in
    /// total, earnings, and the controls it runs under.
    Status(StatusArgs),
    /// Set the worker up as a service that starts at login and boot (a systemd user unit on
    /// Linux, a launchd agent on macOS), with these settings in a private file.
    Install(InstallArgs),
    /// Stop the installed worker service and remove its unit and settings file.
    Uninstall(UninstallArgs),
    /// Get a code that links one more device to you without your token on it: open the
    /// printed /contribute link in the device's browser, or type the code there. Works once,
    /// for ten minutes.
    Link(LinkArgs),
}

/// `idlegrid worker link`.
#[derive(Debug, Args)]
pub struct LinkArgs {
    /// Coordinator URL, e.g. http://192.168.1.10:8080.
    #[arg(long, env = "IDLEGRID_URL")]
    pub coordinator: String,
    /// The device owner's enrollment token.
    #[arg(long, env = "IDLEGRID_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which worker to talk to.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The worker's state directory, as given to `idlegrid worker` (default: ~/.idlegrid/worker).
    #[arg(long, env = "IDLEGRID_WORKER_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The worker's settings file (only its IDLEGRID_WORKER_DIR matters here).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `idlegrid worker status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: ControlArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `idlegrid worker install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Coordinator URL, e.g. http://192.168.1.10:8080.
    #[arg(long, env = "IDLEGRID_URL")]
    pub coordinator: String,
    /// The device owner's enrollment token.
    #[arg(long, env = "IDLEGRID_TOKEN")]
    pub token: String,
    /// Where the worker keeps its identity, bundle cache and scratch space (default:
    /// ~/.idlegrid/worker).
    #[arg(long, env = "IDLEGRID_WORKER_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Tasks to run at once (default: the number of cores).
    #[arg(long, env = "IDLEGRID_WORKER_SLOTS")]
    pub slots: Option<usize>,
    /// Name of this device, for its owner (default: the host name).
    #[arg(long, env = "IDLEGRID_WORKER_NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub controls: ControlsArgs,
    /// Write the files only: do not enable or start the service.
    #[arg(long)]
    pub no_start: bool,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `idlegrid worker uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Also delete the state directory named in the settings file (the device's identity:
    /// a later install registers a new device).
    #[arg(long)]
    pub purge: bool,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}
