//! The device owner's side of `idlegrid worker`: the controls a worker runs under (flags,
//! environment or `--config` file) and `idlegrid worker pause | resume | status`, which talk
//! to the worker running on this device through its control socket.

use clap::{Args, Subcommand, ValueEnum};
use idlegrid_worker::controls::{Controls, Window};
use std::path::PathBuf;
use std::process::ExitCode;

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

/// `--hours`: the windows the device may work in.
#[derive(Debug, Clone)]
pub struct Hours(Vec<Window>);

fn parse_hours(text: &str) -> Result<Hours, String> {
    Window::parse_list(text).map(Hours)
}

impl ControlsArgs {
    /// `--hours` as its setting's text, if given.
    pub fn hours_text(&self) -> Option<String> {
        self.hours.as_ref().map(|h| {
            h.0.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// The worker's controls.
    pub fn controls(&self) -> Controls {
        Controls {
            max_cores: self.max_cores,
            cpu_percent: self.cpu_percent,
            memory_mb: self.memory_mb,
            disk_mb: self.disk_mb,
            max_task_secs: self.max_task_secs,
            idle_minutes: self.idle_minutes,
            on_battery: self.on_battery == OnBattery::Allow,
            min_battery_percent: self.min_battery_percent,
            hours: self.hours.clone().map(|h| h.0).unwrap_or_default(),
        }
    }
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
    Install(crate::worker_install::InstallArgs),
    /// Stop the installed worker service and remove its unit and settings file.
    Uninstall(crate::worker_install::UninstallArgs),
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

/// Asks the coordinator for a link code and says how to use it.
async fn link(args: LinkArgs) -> anyhow::Result<ExitCode> {
    let client = idlegrid_client::Client::new(&args.coordinator, &args.token)?;
    let code = client.create_link_code().await?;
    let url = format!(
        "{}{}",
        args.coordinator.trim_end_matches('/'),
        code.contribute_path
    );
    if args.json {
        println!(
            "{}",
            crate::output::json(&serde_json::json!({
                "code": code.code,
                "expires_in_secs": code.expires_in_secs,
                "url": url,
            }))?
        );
    } else {
        println!("link code: {}", crate::output::shown(&code.code));
        println!("open on the device: {}", crate::output::shown(&url));
        println!(
            "(or open {}{} and type the code; it works once, for {} minutes)",
            args.coordinator.trim_end_matches('/'),
            idlegrid_api::paths::CONTRIBUTE,
            code.expires_in_secs / 60
        );
    }
    Ok(ExitCode::SUCCESS)
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

/// Runs a control command against the worker of its state directory.
pub async fn control(command: ControlCommand) -> anyhow::Result<ExitCode> {
    match command {
        ControlCommand::Install(args) => return crate::worker_install::install(args),
        ControlCommand::Uninstall(args) => return crate::worker_install::uninstall(args),
        ControlCommand::Link(args) => return link(args).await,
        ControlCommand::Pause(args) => {
            let dir = crate::paths::worker_state_dir(args.state_dir)?;
            idlegrid_worker::ipc::pause(&dir).await?;
            println!(
                "paused: the worker handed its tasks back and takes no more until `idlegrid worker resume`"
            );
        }
        ControlCommand::Resume(args) => {
            let dir = crate::paths::worker_state_dir(args.state_dir)?;
            idlegrid_worker::ipc::resume(&dir).await?;
            println!("resumed: the worker takes tasks again when its controls allow");
        }
        ControlCommand::Status(args) => {
            let dir = crate::paths::worker_state_dir(args.target.state_dir)?;
            let status = idlegrid_worker::ipc::status(&dir).await?;
            if args.json {
                println!("{}", crate::output::json(&status)?);
            } else {
                println!("{status}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn worker(args: &[&str]) -> Result<crate::cli::WorkerArgs, clap::Error> {
        let all = ["idlegrid", "worker"].iter().chain(args);
        match Cli::try_parse_from(all)?.command {
            Command::Worker(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn worker_flags_still_run_a_worker_and_subcommands_control_one() {
        let run = worker(&[
            "--coordinator",
            "http://h:8080",
            "--token",
            "t",
            "--slots",
            "2",
            "--cpu-percent",
            "40",
            "--on-battery",
            "deny",
            "--hours",
            "22:00-07:00",
        ])
        .unwrap();
        assert!(run.control.is_none());
        let controls = run.controls.controls();
        assert_eq!(controls.cpu_percent, Some(40));
        assert!(!controls.on_battery);
        assert_eq!(
            controls.describe(),
            ["cpu_percent=40", "on_battery=deny", "hours=22:00-07:00"]
        );

        let status = worker(&["status", "--json", "--state-dir", "/d"]).unwrap();
        assert!(matches!(
            status.control,
            Some(super::ControlCommand::Status(super::StatusArgs {
                json: true,
                ..
            }))
        ));
        assert!(worker(&["pause"]).is_ok());
        // A worker needs its coordinator; flags of the worker do not go with a subcommand.
        assert!(worker(&[]).is_err());
        assert!(worker(&["--state-dir", "/d", "resume"]).is_err());
        for (flag, value) in [
            ("--cpu-percent", "0"),
            ("--max-cores", "0"),
            ("--min-battery-percent", "101"),
            ("--hours", "7-9"),
        ] {
            let err = worker(&["--coordinator", "u", "--token", "t", flag, value])
                .unwrap_err()
                .to_string();
            assert!(err.contains(flag), "{flag} {value}: {err}");
        }
    }
}
