//! The device owner's side of `idlegrid worker`: the controls a worker runs under (flags,
//! environment or `--config` file) and `idlegrid worker pause | resume | status`, which talk
//! to the worker running on this device through its control socket.

use crate::cli::worker::{ControlCommand, ControlsArgs, LinkArgs, OnBattery};
use idlegrid_worker::controls::Controls;
use std::process::ExitCode;

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
            Some(crate::cli::worker::ControlCommand::Status(
                crate::cli::worker::StatusArgs { json: true, .. }
            ))
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
