//! The default scenarios of `idlegrid sim` (10,000 devices, 100 jobs, seed 1; 30% churn and
//! none, each with and without backups), two at a time, printed as its table:
//! `cargo run --release -p idlegrid-sim --example scenarios`.

use idlegrid_sim::{Report, Scenario, report};

fn main() {
    let mut scenarios = Vec::new();
    for churn in [0.3, 0.0] {
        for backups in [true, false] {
            scenarios.push(Scenario {
                churn,
                backups,
                ..Scenario::default()
            });
        }
    }
    let mut reports: Vec<Report> = Vec::new();
    for pair in scenarios.chunks(2) {
        let done: Vec<Report> = std::thread::scope(|s| {
            let handles: Vec<_> = pair
                .iter()
                .map(|scenario| s.spawn(move || idlegrid_sim::run(scenario, &mut |_| {})))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        reports.extend(done);
    }
    print!("{}", report::table(&reports));
}
