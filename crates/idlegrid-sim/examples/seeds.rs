//! The default scenario of `idlegrid sim` (30% churn, backups) over several seeds, two at a
//! time, one line per seed: `cargo run --release -p idlegrid-sim --example seeds -- 1 2 3`
//! (seeds 1 to 10 when none are given). Shows whether a policy change holds beyond one draw.

use idlegrid_sim::Scenario;

fn main() {
    let mut seeds: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("seeds are whole numbers"))
        .collect();
    if seeds.is_empty() {
        seeds = (1..=10).collect();
    }
    println!("seed  makespan ÷ lower bound  ÷ requirement bound  utilisation  extra work: backups");
    let mut all = Vec::new();
    for pair in seeds.chunks(2) {
        let reports: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = pair
                .iter()
                .map(|&seed| {
                    s.spawn(move || {
                        let scenario = Scenario {
                            seed,
                            ..Scenario::default()
                        };
                        idlegrid_sim::run(&scenario, &mut |_| {})
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for report in &reports {
            println!(
                "{:>4}  {:>22.3}  {:>19.3}  {:>10.1}%  {:>18.1}%",
                report.scenario.seed,
                report.ratio,
                report.requirement_ratio,
                report.utilisation * 100.0,
                report.backup_extra * 100.0
            );
        }
        all.extend(reports);
    }
    print!("\n{}", idlegrid_sim::report::table(&all));
}
