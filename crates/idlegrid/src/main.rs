//! `idlegrid`: one binary for every role — coordinator (`serve`), worker (`worker`), a whole
//! grid on one machine (`local`), the customer's commands (`run`, `jobs`, `job`, `cancel`),
//! benchmarks (`bench`) and the grid simulator (`sim`). This file only parses arguments, sets
//! up logging and maps errors to exit codes; each command lives in its own module.

mod accounts;
mod apps;
mod bench;
mod cli;
mod customer;
mod local;
mod output;
mod paths;
mod serve;
mod settings;
mod shutdown;
mod sim;
mod target;
mod worker_control;
mod worker_install;

use clap::Parser;
use cli::{BenchCommand, Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Err(e) = settings::load(&args) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    init_logging(cli.command.default_log_level());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            // The chain may hold a coordinator's message, which may quote a device.
            eprintln!("error: {}", output::shown(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr: readable lines, coloured only on a terminal (a log file or journal gets
/// plain text, so what a log line holds is all text), or one JSON object per line when
/// `IDLEGRID_LOG_FORMAT=json` (for log collectors). `RUST_LOG` sets the level.
fn init_logging(default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if std::env::var("IDLEGRID_LOG_FORMAT").as_deref() == Ok("json") {
        logs.json().init();
    } else {
        logs.init();
    }
}

/// Runs the parsed command.
async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Worker(args) => serve::worker(args).await,
        Command::Local(args) => local::local(args).await,
        Command::Run(args) => customer::run(args).await,
        Command::Transcode(args) => customer::transcode(*args).await,
        Command::App(command) => apps::app(command).await,
        Command::Jobs(args) => customer::jobs(args).await,
        Command::Job(args) => customer::job(args).await,
        Command::Logs(args) => customer::logs(args).await,
        Command::Cancel(args) => customer::cancel(args).await,
        Command::Balance(args) => customer::balance(args).await,
        Command::Deposit(args) => customer::deposit(args).await,
        Command::Keys(args) => accounts::keys(args).await,
        Command::Devices(args) => accounts::devices(args).await,
        Command::Earnings(args) => accounts::earnings(args).await,
        Command::Payout(args) => accounts::payout(args).await,
        Command::Admin(args) => accounts::admin(args).await,
        Command::Bench(BenchCommand::Dispatch(args)) => bench::dispatch(args).await,
        Command::Bench(BenchCommand::Transcode(args)) => bench::transcode(args).await,
        Command::Bench(BenchCommand::WorkerIdle(args)) => bench::worker_idle(args).await,
        Command::Bench(BenchCommand::TargetQuality(args)) => bench::target_quality(args).await,
        Command::Bench(BenchCommand::Trust(args)) => bench::trust(args).await,
        Command::Sim(args) => sim::sim(args),
    }
}
