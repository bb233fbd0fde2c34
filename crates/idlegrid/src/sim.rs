//! `idlegrid sim`: the grid simulator (`idlegrid-sim`) with and without backup copies, with
//! and without churn, as a table or as JSON.

use crate::cli::bench::SimArgs;
use idlegrid_sim::{Report, Scenario};
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// A run longer than this shows a progress bar.
const QUIET_FOR: Duration = Duration::from_secs(2);

/// Runs the scenarios, two at a time, and prints them.
pub fn sim(args: SimArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.churn) || !(0.0..=1.0).contains(&args.stragglers) {
        anyhow::bail!("--churn and --stragglers are fractions between 0 and 1");
    }
    let mut scenarios = Vec::new();
    let churns = if args.churn > 0.0 {
        vec![args.churn, 0.0]
    } else {
        vec![0.0]
    };
    for churn in churns {
        for backups in [true, false] {
            if backups && args.no_backups {
                continue;
            }
            scenarios.push(Scenario {
                devices: args.devices,
                jobs: args.jobs,
                churn,
                backups,
                seed: args.seed,
                stragglers: args.stragglers,
                ..Scenario::default()
            });
        }
    }
    let reports = run_all(&scenarios);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print!("{}", idlegrid_sim::report::table(&reports));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs every scenario on its own thread, two at a time, with a progress bar once it takes a
/// while.
fn run_all(scenarios: &[Scenario]) -> Vec<Report> {
    let started = Instant::now();
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template("simulating {wide_bar} {percent:>3}%  {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_length(1000 * scenarios.len() as u64);
    let mut reports = Vec::new();
    for pair in scenarios.chunks(2) {
        let done = std::sync::Mutex::new(vec![0u64; pair.len()]);
        let before = 1000 * reports.len() as u64;
        let finished: Vec<Report> = std::thread::scope(|s| {
            let handles: Vec<_> = pair
                .iter()
                .enumerate()
                .map(|(i, scenario)| {
                    let (bar, done) = (&bar, &done);
                    s.spawn(move || {
                        idlegrid_sim::run(scenario, &mut |fraction| {
                            if bar.is_hidden() && started.elapsed() > QUIET_FOR {
                                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                            }
                            let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
                            done[i] = (fraction * 1000.0) as u64;
                            bar.set_position(before + done.iter().sum::<u64>());
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        reports.extend(finished);
    }
    bar.finish_and_clear();
    reports
}
