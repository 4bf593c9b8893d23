//! Throughput of the sweep engine at scale, with 1 and 2 rayon threads.
//!
//! ```sh
//! cargo run --release --example sweep_scale            # 10,000 × 1,000 players; 4 × 10^6
//! cargo run --release --example sweep_scale -- 2000 2  # smaller: games, big replicates
//! ```
//!
//! Part 1 runs 10,000 games of 1,000 players with *sparse* competition (each player
//! competes with 16 others on average, Erdős–Rényi). Sparse is the realistic choice here:
//! a dense 1,000 × 1,000 game costs 8 MB and ~10^6 multiply-adds per solver iteration, so
//! 10,000 of them would take tens of minutes per thread count on a 2-core machine, while a
//! redundancy matrix thresholded to its strongest entries is what a large layer produces.
//! Part 2 runs one cell of 10^6-player sparse games (8 competitors each). Each part goes
//! through the full pipeline — generation, solve, iterated elimination, uniqueness check,
//! journal, statistics — exactly as `pruning-game simulate` does.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use pruning_game::sim::{run_sweep, SweepConfig, SweepOptions};

fn sweep(
    players: usize,
    degree: f64,
    gammas: &str,
    replicates: usize,
) -> anyhow::Result<SweepConfig> {
    let text = format!(
        r#"
name = "scale"
seed = 1
replicates = {replicates}
[grid]
players = {players}
topology = {{ kind = "random", degree = {degree:?} }}
gamma = {gammas}
beta = 0.5
diagonal_dominance = 1.1
benefit = {{ kind = "normal", mean = 0.2, std = 0.3 }}
solver = "best-response"
tolerance = 1e-8
"#
    );
    Ok(SweepConfig::from_toml_str(&text, Path::new("scale.toml"))?)
}

/// CPU seconds used by this process so far (Linux `/proc/self/stat`, 100 ticks/s), to tell
/// a slow run from one starved by other work on a shared machine; `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Runs `config` on a pool of `threads` and returns games per second.
fn throughput(config: &SweepConfig, threads: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let run = pool.install(|| run_sweep(config, dir.path(), &SweepOptions::default()))?;
    let seconds = start.elapsed().as_secs_f64();
    anyhow::ensure!(run.complete, "sweep did not complete");
    if let (Some(a), Some(b)) = (cpu_start, cpu_seconds()) {
        println!(
            "    {threads} thread(s): {seconds:.1} s wall, {:.1} s CPU ({:.0}% of {threads} core(s))",
            b - a,
            100.0 * (b - a) / (seconds * threads as f64)
        );
    }
    Ok(run.ran as f64 / seconds)
}

fn report(label: &str, config: &SweepConfig) -> anyhow::Result<()> {
    let games = config.games();
    let one = throughput(config, 1).with_context(|| format!("{label}, 1 thread"))?;
    println!(
        "{label}: {games} games, 1 thread : {one:10.3} games/s ({:.1} s)",
        games as f64 / one
    );
    let two = throughput(config, 2).with_context(|| format!("{label}, 2 threads"))?;
    println!(
        "{label}: {games} games, 2 threads: {two:10.3} games/s ({:.1} s)",
        games as f64 / two
    );
    println!("{label}: 2-vs-1 thread speed-up {:.2}×", two / one);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let games: usize = args
        .next()
        .map_or(Ok(10_000), |a| a.parse())
        .context("GAMES")?;
    let big: usize = args
        .next()
        .map_or(Ok(4), |a| a.parse())
        .context("BIG_REPLICATES")?;
    anyhow::ensure!(
        games >= 4 && big >= 1,
        "need GAMES >= 4 and BIG_REPLICATES >= 1"
    );
    // Four cells (γ ∈ {0.05, 0.1, 0.15, 0.2}) sharing the games equally.
    let small = sweep(1_000, 16.0, "[0.05, 0.1, 0.15, 0.2]", games / 4)?;
    report("1,000 players, sparse (degree 16)", &small)?;
    let large = sweep(1_000_000, 8.0, "0.1", big)?;
    report("10^6 players, sparse (degree 8)", &large)?;
    Ok(())
}
