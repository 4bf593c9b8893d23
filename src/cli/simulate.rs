//! `pruning-game simulate`: run (or resume) a sweep file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use pruning_game::sim::{run_sweep, Shard, SweepConfig, SweepOptions};

/// Options of `simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Sweep file (.toml or .json).
    #[arg(long)]
    config: PathBuf,
    /// Output folder; an interrupted sweep run again into the same folder resumes.
    #[arg(long)]
    out: PathBuf,
    /// Run only shard K of N (1 <= K <= N): a deterministic 1/N of the cells.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Worker threads (default: all cores, or RAYON_NUM_THREADS).
    #[arg(long)]
    threads: Option<usize>,
    /// Never draw the progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long)]
    quiet: bool,
    /// Stop after this many games (the folder stays resumable).
    #[arg(long, value_name = "GAMES")]
    stop_after: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.stop_after != Some(0),
        "--stop-after must be at least 1 game"
    );
    let config = SweepConfig::from_path(&args.config)?;
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(t) = args.threads {
        anyhow::ensure!(t > 0, "--threads must be at least 1");
        builder = builder.num_threads(t);
    }
    let pool = builder.build().context("starting worker threads")?;
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} games ({percent}%)  elapsed {elapsed}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        bar
    };
    let on_start = |total: usize, resumed: usize| {
        bar.set_length(total as u64);
        bar.set_position(resumed as u64);
        // The ETA comes from the games run now, not those resumed from the journal.
        bar.reset_eta();
    };
    let on_row = |_: &pruning_game::sim::Row| bar.inc(1);
    let options = SweepOptions {
        shard: args.shard,
        on_start: Some(&on_start),
        on_row: Some(&on_row),
        stop_after: args.stop_after,
    };
    let outcome = pool.install(|| run_sweep(&config, &args.out, &options));
    bar.finish_and_clear();
    let outcome = outcome?;
    eprintln!(
        "{} of {} games done ({} resumed, {} run now){}; output in {}",
        outcome.resumed + outcome.ran,
        outcome.total,
        outcome.resumed,
        outcome.ran,
        if outcome.complete {
            ""
        } else {
            " — incomplete, run again to resume"
        },
        outcome.out_dir.display()
    );
    Ok(())
}
