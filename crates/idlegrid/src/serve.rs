//! `idlegrid serve` (a coordinator) and `idlegrid worker` (a worker agent, or with a
//! subcommand, a control command for the one running here: `crate::worker_control`).

use crate::cli::{CoordinatorArgs, ServeArgs, WorkerArgs};
use crate::shutdown;
use idlegrid_coordinator::{Config, Grid};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Coordinator settings from the command line.
pub fn config(data_dir: &Path, args: &CoordinatorArgs) -> Config {
    let mut config = Config::new(data_dir);
    config.lease_ttl = Duration::from_secs(args.lease_secs);
    config.max_upload_bytes = args.max_upload_bytes;
    config.abandoned_upload_after = Duration::from_secs(args.abandoned_upload_secs);
    config.customer_requests_per_sec = args.customer_rps;
    config.worker_requests_per_sec = args.worker_rps;
    config.sweep_interval = Duration::from_secs(args.sweep_secs);
    config.allow_private_sources = args.allow_private_sources;
    config.trust_min_age = Duration::from_secs(args.trust_min_age_secs);
    config.earnings_hold = Duration::from_secs(args.earnings_hold_secs);
    config.secrets_key = args.secrets_key.clone();
    config.backends = idlegrid_storage::Backends {
        store: args.store.clone(),
        queue: args.queue.clone(),
        blobs: args.blobs.clone(),
    };
    config.browser_runtimes = args
        .browser_runtimes
        .clone()
        .or_else(default_browser_runtimes);
    config.signup = args.signup.unwrap_or_default();
    config.opening_credit = args.opening_credit;
    config.credit_display = idlegrid_api::jobs::CreditDisplay {
        currency: args.credit_currency.trim().to_string(),
        per_credit: args.credit_value,
    };
    config
}

/// What to tell at start-up when browsers cannot join: the runtimes are missing.
pub fn no_browser_runtimes_warning() -> &'static str {
    "warning: browsers cannot join this grid: the browser runtimes (Pyodide, ffmpeg.wasm) are missing; run scripts/browser-runtimes.sh or pass --browser-runtimes DIR"
}

/// `browser-runtimes` beside the directory of this binary (`target/browser-runtimes` for
/// `target/debug/idlegrid`, `/opt/idlegrid/browser-runtimes` for `/opt/idlegrid/bin/idlegrid`),
/// when it holds runtimes.
fn default_browser_runtimes() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.join("browser-runtimes");
    dir.join("runtimes.json").is_file().then_some(dir)
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let shutdown = shutdown::on_signal();
    let config = config(&args.data_dir, &args.coordinator);
    let runtimes = config.browser_runtimes.clone();
    let (grid, credentials) = Grid::open(config).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "url": url,
                "api_key": credentials.api_key,
                "enrollment_token": credentials.enrollment_token,
                "operator_key": credentials.operator_key,
                "dashboard": format!("{url}/"),
                "contribute": runtimes.as_ref().map(|_| format!("{url}/contribute")),
                "browser_runtimes": runtimes,
                "data_dir": args.data_dir,
            })
        );
    } else {
        println!("idlegrid coordinator listening on {url}");
        println!("  data:             {}", args.data_dir.display());
        println!("  customer API key: {}", credentials.api_key);
        println!("  enrollment token: {}", credentials.enrollment_token);
        println!("  operator key:     {}", credentials.operator_key);
        println!("  dashboard:        {url}/  (sign in with any of these secrets)");
        match &runtimes {
            Some(dir) => println!(
                "  browsers join at: {url}/contribute  (runtimes from {})",
                dir.display()
            ),
            None => eprintln!("{}", no_browser_runtimes_warning()),
        }
        println!(
            "add a worker:  idlegrid worker --coordinator {url} --token {}",
            credentials.enrollment_token
        );
    }
    idlegrid_coordinator::serve(listener, grid, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    if let Some(command) = args.control {
        return crate::worker_control::control(command).await;
    }
    // clap requires both unless a control subcommand is given.
    let (Some(coordinator), Some(token)) = (args.coordinator, args.token) else {
        anyhow::bail!("--coordinator and --token are required to run a worker");
    };
    let shutdown = shutdown::on_signal();
    let config = idlegrid_worker::WorkerConfig {
        coordinator: coordinator.trim_end_matches('/').to_string(),
        enrollment_token: token,
        state_dir: crate::paths::worker_state_dir(args.state_dir)?,
        name: args.name.unwrap_or_else(default_device_name),
        slots: args
            .slots
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        python: args.python,
        drain_timeout: Duration::from_secs(args.drain_secs),
        weak_sandbox: args.weak_sandbox,
        controls: args.controls.controls(),
    };
    let summary = idlegrid_worker::run(config, shutdown).await?;
    tracing::info!(?summary, "worker stopped");
    Ok(ExitCode::SUCCESS)
}

/// The machine's host name, for naming a device.
pub fn default_device_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "device".to_string())
}
