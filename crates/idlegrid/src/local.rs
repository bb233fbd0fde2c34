//! A whole grid on this machine: a coordinator and N worker agents in one process.
//! `idlegrid local` runs one until stopped and records where it is in `~/.idlegrid/local.json`
//! so the client commands find it; `idlegrid run` starts a throw-away one when no coordinator
//! is configured.

use crate::cli::{CoordinatorArgs, LocalArgs};
use crate::{serve, shutdown};
use anyhow::Context;
use idlegrid_coordinator::{Credentials, Grid};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where a running `idlegrid local` says how to reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalGridFile {
    /// Coordinator URL.
    pub url: String,
    /// Customer API key.
    pub api_key: String,
    /// The device owner's enrollment token (absent in files of older versions).
    #[serde(default)]
    pub enrollment_token: String,
    /// The operator key (absent in files of older versions).
    #[serde(default)]
    pub operator_key: String,
    /// Process id of `idlegrid local`.
    pub pid: u32,
}

/// Path of the local grid file.
pub fn local_grid_file() -> anyhow::Result<PathBuf> {
    Ok(crate::paths::home()?.join("local.json"))
}

/// A coordinator and its workers running in this process.
pub struct LocalGrid {
    /// Coordinator URL.
    pub url: String,
    /// Its credentials.
    pub credentials: Credentials,
    /// Where browsers' runtimes are served from (`None`: browsers cannot join).
    pub browser_runtimes: Option<PathBuf>,
    /// Stops the coordinator.
    stop_server: CancellationToken,
    /// Stops the workers.
    stop_workers: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
    workers: Vec<JoinHandle<anyhow::Result<idlegrid_worker::WorkerSummary>>>,
}

impl LocalGrid {
    /// Starts a coordinator on 127.0.0.1:`port` keeping its data in `data_dir`, and `workers`
    /// worker agents with one task slot each.
    pub async fn start(
        data_dir: &Path,
        port: u16,
        workers: usize,
        args: &CoordinatorArgs,
    ) -> anyhow::Result<LocalGrid> {
        let config = serve::config(data_dir, args);
        let browser_runtimes = config.browser_runtimes.clone();
        let (grid, credentials) = Grid::open(config).await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        let url = format!("http://{}", listener.local_addr()?);
        let stop_server = CancellationToken::new();
        let stop_workers = CancellationToken::new();
        let server = tokio::spawn(idlegrid_coordinator::serve(
            listener,
            grid,
            stop_server.clone(),
        ));
        let workers = (0..workers)
            .map(|i| {
                let config = idlegrid_worker::WorkerConfig {
                    coordinator: url.clone(),
                    enrollment_token: credentials.enrollment_token.clone(),
                    state_dir: data_dir.join("workers").join(i.to_string()),
                    name: format!("{}-local-{i}", serve::default_device_name()),
                    slots: 1,
                    python: PathBuf::from("python3"),
                    drain_timeout: Duration::from_secs(10),
                    // The customer's own scripts on their own machine: where the kernel offers
                    // no sandbox (macOS, Windows), run them anyway.
                    weak_sandbox: !cfg!(target_os = "linux"),
                    controls: idlegrid_worker::controls::Controls::default(),
                };
                tokio::spawn(idlegrid_worker::run(config, stop_workers.child_token()))
            })
            .collect();
        Ok(LocalGrid {
            url,
            credentials,
            browser_runtimes,
            stop_server,
            stop_workers,
            server,
            workers,
        })
    }

    /// Stops the workers (running tasks finish and report, or are handed back after the drain
    /// timeout), then the coordinator, which must still be up to take their reports.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop_workers.cancel();
        for worker in self.workers {
            match worker.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "worker stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "worker task failed"),
            }
        }
        self.stop_server.cancel();
        self.server.await??;
        Ok(())
    }
}

pub async fn local(args: LocalArgs) -> anyhow::Result<ExitCode> {
    let shutdown = shutdown::on_signal();
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => crate::paths::home()?.join("local"),
    };
    let grid = LocalGrid::start(&data_dir, args.port, args.workers, &args.coordinator).await?;
    let file = local_grid_file()?;
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let record = LocalGridFile {
        url: grid.url.clone(),
        api_key: grid.credentials.api_key.clone(),
        enrollment_token: grid.credentials.enrollment_token.clone(),
        operator_key: grid.credentials.operator_key.clone(),
        pid: std::process::id(),
    };
    write_private(&file, &serde_json::to_vec_pretty(&record)?)?;
    println!(
        "idlegrid local grid: coordinator {} with {} workers",
        grid.url, args.workers
    );
    println!("  data:             {}", data_dir.display());
    println!("  customer API key: {}", grid.credentials.api_key);
    println!("  enrollment token: {}", grid.credentials.enrollment_token);
    println!("  operator key:     {}", grid.credentials.operator_key);
    println!(
        "  dashboard:        {}/  (sign in with any of these secrets)",
        grid.url
    );
    if grid.browser_runtimes.is_none() {
        eprintln!("{}", serve::no_browser_runtimes_warning());
    }
    println!("other idlegrid commands in this account now use this grid; Ctrl-C stops it");
    shutdown.cancelled().await;
    let _ = std::fs::remove_file(&file);
    grid.stop().await?;
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    std::fs::rename(tmp, path)
}
