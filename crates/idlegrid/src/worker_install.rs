//! `idlegrid worker install | uninstall`: the worker as a service that starts at login and
//! boot, under the owner's account.
//!
//! `install` writes the worker's settings (coordinator, enrollment token, state directory,
//! the owner's controls) to a private file of `IDLEGRID_*=value` lines, the same file
//! `idlegrid worker --config` reads, and a unit that runs `idlegrid worker --config FILE`:
//! a systemd user unit on Linux (enabled and started with `systemctl --user`), a launchd agent
//! on macOS (written and loaded with `launchctl`; not tested here, no Mac to test on).
//! `uninstall` stops and removes both; the state directory (the device's identity) stays
//! unless `--purge`.

use crate::cli::worker::{InstallArgs, OnBattery, UninstallArgs};
use anyhow::{Context, bail};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Name of the systemd user unit.
pub const UNIT: &str = "idlegrid-worker.service";
/// Label of the launchd agent.
pub const LAUNCHD_LABEL: &str = "dev.idlegrid.worker";

/// What `install` or `uninstall` did.
#[derive(Debug, Serialize)]
pub struct Installed {
    /// `systemd`, `launchd`, or `none` (files only).
    pub manager: String,
    /// The settings file.
    pub config: PathBuf,
    /// The unit or agent file.
    pub unit: PathBuf,
    /// The worker's state directory.
    pub state_dir: Option<PathBuf>,
    /// Whether the service was enabled and started (install) or stopped (uninstall).
    pub started: bool,
    /// What to run by hand when the service manager could not be reached.
    pub next: Option<String>,
}

/// `$XDG_CONFIG_HOME`, or `~/.config`.
fn config_home() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".config"))
}

/// Where the settings file goes.
pub fn config_path() -> anyhow::Result<PathBuf> {
    Ok(config_home()?.join("idlegrid").join("worker.env"))
}

fn macos() -> bool {
    std::env::consts::OS == "macos"
}

/// Where the unit (Linux) or agent (macOS) file goes.
pub fn unit_path() -> anyhow::Result<PathBuf> {
    if macos() {
        let home = std::env::var_os("HOME").context("HOME is not set")?;
        return Ok(PathBuf::from(home)
            .join("Library/LaunchAgents")
            .join(format!("{LAUNCHD_LABEL}.plist")));
    }
    Ok(config_home()?.join("systemd/user").join(UNIT))
}

/// A settings value on one line: no line breaks, so a value cannot smuggle in a setting.
fn line_value(name: &str, value: &str) -> anyhow::Result<String> {
    if value.contains(['\n', '\r']) {
        bail!("{name} may not contain a line break");
    }
    Ok(value.to_string())
}

/// The settings file's lines.
pub fn settings(args: &InstallArgs, state_dir: &Path) -> anyhow::Result<String> {
    let c = &args.controls;
    let mut pairs: Vec<(&str, Option<String>)> = vec![
        ("IDLEGRID_URL", Some(args.coordinator.clone())),
        ("IDLEGRID_TOKEN", Some(args.token.clone())),
        (
            "IDLEGRID_WORKER_DIR",
            Some(
                state_dir
                    .to_str()
                    .context("the state directory's path is not UTF-8")?
                    .to_string(),
            ),
        ),
        ("IDLEGRID_WORKER_SLOTS", args.slots.map(|v| v.to_string())),
        ("IDLEGRID_WORKER_NAME", args.name.clone()),
        (
            "IDLEGRID_WORKER_MAX_CORES",
            c.max_cores.map(|v| v.to_string()),
        ),
        (
            "IDLEGRID_WORKER_CPU_PERCENT",
            c.cpu_percent.map(|v| v.to_string()),
        ),
        (
            "IDLEGRID_WORKER_MEMORY_MB",
            c.memory_mb.map(|v| v.to_string()),
        ),
        ("IDLEGRID_WORKER_DISK_MB", c.disk_mb.map(|v| v.to_string())),
        (
            "IDLEGRID_WORKER_MAX_TASK_SECS",
            c.max_task_secs.map(|v| v.to_string()),
        ),
        (
            "IDLEGRID_WORKER_IDLE_MINUTES",
            c.idle_minutes.map(|v| v.to_string()),
        ),
        (
            "IDLEGRID_WORKER_MIN_BATTERY_PERCENT",
            c.min_battery_percent.map(|v| v.to_string()),
        ),
        ("IDLEGRID_WORKER_HOURS", c.hours_text()),
    ];
    if c.on_battery == OnBattery::Deny {
        pairs.push(("IDLEGRID_WORKER_ON_BATTERY", Some("deny".into())));
    }
    let mut text = String::from(
        "# idlegrid worker settings, written by `idlegrid worker install`.\n\
         # Each line is the environment variable of an `idlegrid worker` flag; edit, then restart\n\
         # the service (systemctl --user restart idlegrid-worker) to change them.\n",
    );
    for (name, value) in pairs {
        if let Some(value) = value {
            text.push_str(&format!("{name}={}\n", line_value(name, &value)?));
        }
    }
    Ok(text)
}

/// One argument of a systemd `ExecStart=` line: `%` and `$` escaped, quoted when it holds
/// spaces, quotes or backslashes.
fn systemd_arg(arg: &str) -> String {
    let escaped = arg.replace('%', "%%").replace('$', "$$");
    if escaped.contains([' ', '\t', '"', '\'', '\\']) {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

/// The systemd user unit that runs `exe worker --config config`.
pub fn systemd_unit(exe: &Path, config: &Path) -> anyhow::Result<String> {
    let path = |p: &Path| {
        p.to_str()
            .map(systemd_arg)
            .with_context(|| format!("{} is not UTF-8", p.display()))
    };
    Ok(format!(
        "[Unit]\n\
         Description=idlegrid worker: lends this device's idle time to a grid\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={} worker --config {}\n\
         # SIGTERM lets running tasks finish for up to 30 s, then hands them back. It goes to\n\
         # the worker alone (KillMode=mixed): the worker stops its tasks itself, and what is\n\
         # left when the time is up is killed.\n\
         KillSignal=SIGTERM\n\
         KillMode=mixed\n\
         TimeoutStopSec=45\n\
         # cgroup v2: the worker may make a cgroup per task below its own.\n\
         Delegate=yes\n\
         Restart=on-failure\n\
         RestartSec=10\n\
         # Work in the background: the owner's own programs come first.\n\
         Nice=19\n\
         IOSchedulingClass=idle\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        path(exe)?,
        path(config)?
    ))
}

/// XML text escaping.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The launchd agent that runs `exe worker --config config` at login.
pub fn launchd_plist(exe: &Path, config: &Path, log: &Path) -> String {
    let s = |p: &Path| xml(&p.to_string_lossy());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n<dict>\n\
         \x20 <key>Label</key><string>{LAUNCHD_LABEL}</string>\n\
         \x20 <key>ProgramArguments</key>\n  <array>\n\
         \x20   <string>{}</string>\n    <string>worker</string>\n\
         \x20   <string>--config</string>\n    <string>{}</string>\n  </array>\n\
         \x20 <key>RunAtLoad</key><true/>\n\
         \x20 <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>\n\
         \x20 <key>ProcessType</key><string>Background</string>\n\
         \x20 <key>LowPriorityIO</key><true/>\n\
         \x20 <key>Nice</key><integer>19</integer>\n\
         \x20 <key>StandardErrorPath</key><string>{}</string>\n\
         </dict>\n</plist>\n",
        s(exe),
        s(config),
        s(log)
    )
}

/// Writes `text` to `path` readable by the owner only, atomically.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().context("a file path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // NamedTempFile is created with mode 0600, and the rename keeps it.
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Runs a service-manager command; `Err` holds what it said, for the person.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    match std::process::Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run {program}: {e}")),
    }
}

fn print(done: &Installed, json: bool, what: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(done)?);
        return Ok(());
    }
    println!("{what}");
    println!("  settings  {}", done.config.display());
    println!("  {:<9} {}", done.manager, done.unit.display());
    if let Some(dir) = &done.state_dir {
        println!("  state     {}", dir.display());
    }
    if let Some(next) = &done.next {
        println!("{next}");
    }
    Ok(())
}

/// `idlegrid worker install`.
pub fn install(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let url = args.coordinator.trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("--coordinator must be an http:// or https:// URL, not {url:?}");
    }
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .context("cannot tell where this idlegrid program is")?;
    let state_dir = crate::paths::worker_state_dir(args.state_dir.clone())?;
    let state_dir = if state_dir.is_absolute() {
        state_dir
    } else {
        std::env::current_dir()?.join(state_dir)
    };
    let config = config_path()?;
    let unit = unit_path()?;
    write_private(&config, &settings(&args, &state_dir)?)?;
    let (manager, text) = if macos() {
        let log = state_dir.join("worker.log");
        ("launchd", launchd_plist(&exe, &config, &log))
    } else {
        ("systemd", systemd_unit(&exe, &config)?)
    };
    write_private(&unit, &text)?;
    let mut done = Installed {
        manager: manager.into(),
        config,
        unit: unit.clone(),
        state_dir: Some(state_dir),
        started: false,
        next: None,
    };
    if args.no_start {
        done.next = Some(if macos() {
            format!("start it with: launchctl load -w {}", unit.display())
        } else {
            format!(
                "start it with: systemctl --user daemon-reload && systemctl --user enable --now {UNIT}"
            )
        });
        print(&done, args.json, "installed (not started)")?;
        return Ok(ExitCode::SUCCESS);
    }
    let unit_text = unit.to_string_lossy().into_owned();
    let started = if macos() {
        run("launchctl", &["load", "-w", &unit_text])
    } else {
        run("systemctl", &["--user", "daemon-reload"])
            .and_then(|()| run("systemctl", &["--user", "enable", "--now", UNIT]))
    };
    match started {
        Ok(()) => {
            done.started = true;
            print(&done, args.json, "installed and started")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            done.next = Some(format!(
                "the files are written, but the service could not be started: {why}\n\
                 (a user service manager needs a login session; on a server, `loginctl enable-linger` lets it run without one)"
            ));
            print(&done, args.json, "installed, not started")?;
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `idlegrid worker uninstall`.
pub fn uninstall(args: UninstallArgs) -> anyhow::Result<ExitCode> {
    let config = config_path()?;
    let unit = unit_path()?;
    let state_dir = std::fs::read_to_string(&config).ok().and_then(|text| {
        crate::settings::parse(&text, &config)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "IDLEGRID_WORKER_DIR")
            .map(|(_, v)| PathBuf::from(v))
    });
    if !config.exists() && !unit.exists() {
        bail!(
            "no installed worker: neither {} nor {} exists",
            config.display(),
            unit.display()
        );
    }
    let unit_text = unit.to_string_lossy().into_owned();
    // Stopping may fail where no service manager runs; the files go either way.
    let stopped = if macos() {
        run("launchctl", &["unload", "-w", &unit_text])
    } else {
        run("systemctl", &["--user", "disable", "--now", UNIT])
    };
    for path in [&unit, &config] {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
    if !macos() {
        let _ = run("systemctl", &["--user", "daemon-reload"]);
    }
    if args.purge
        && let Some(dir) = &state_dir
        && dir.exists()
    {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    let done = Installed {
        manager: if macos() { "launchd" } else { "systemd" }.into(),
        config,
        unit,
        state_dir: if args.purge { None } else { state_dir },
        started: stopped.is_ok(),
        next: stopped
            .err()
            .map(|why| format!("the service was not running or could not be stopped: {why}")),
    };
    let what = if args.purge {
        "uninstalled; the state directory is deleted"
    } else {
        "uninstalled; the state directory (the device's identity) is kept"
    };
    print(&done, args.json, what)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_arguments_are_escaped_for_systemd() {
        assert_eq!(systemd_arg("/usr/bin/idlegrid"), "/usr/bin/idlegrid");
        assert_eq!(systemd_arg("/home/a b/x"), "\"/home/a b/x\"");
        assert_eq!(systemd_arg("/a/100%/$HOME"), "/a/100%%/$$HOME");
        assert_eq!(systemd_arg("/a\"b"), "\"/a\\\"b\"");
        let unit =
            systemd_unit(Path::new("/opt/ig/idlegrid"), Path::new("/h/.config/w.env")).unwrap();
        assert!(unit.contains("ExecStart=/opt/ig/idlegrid worker --config /h/.config/w.env\n"));
        assert!(unit.contains("WantedBy=default.target"));
        // The drain is the worker's: systemd must not SIGTERM every task script at once.
        assert!(unit.contains("\nKillMode=mixed\n") && unit.contains("\nDelegate=yes\n"));
    }

    #[test]
    fn the_launchd_agent_names_the_program_and_its_settings() {
        let plist = launchd_plist(
            Path::new("/Applications/idle grid/idlegrid"),
            Path::new("/Users/a/.config/idlegrid/worker.env"),
            Path::new("/Users/a/.idlegrid/worker/worker.log"),
        );
        assert!(plist.contains("<string>/Applications/idle grid/idlegrid</string>"));
        assert!(plist.contains("<string>/Users/a/.config/idlegrid/worker.env</string>"));
        assert!(plist.contains("<key>RunAtLoad</key><true/>"));
        assert!(xml("a<b&\"").contains("&lt;") && xml("&").eq("&amp;"));
    }
}
