//! `pruning-game merge`: combine the output folders of a sharded sweep.

use std::path::PathBuf;

/// Options of `merge`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder of the merged sweep.
    #[arg(long)]
    out: PathBuf,
    /// Merge even if some shards are missing.
    #[arg(long)]
    partial: bool,
    /// Shard output folders (each from `simulate --shard K/N`).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let outcome = pruning_game::sim::merge(&args.inputs, &args.out, args.partial)?;
    eprintln!(
        "merged {} rows from {} shards into {}{}",
        outcome.rows,
        outcome.shards.len(),
        args.out.display(),
        if outcome.missing.is_empty() {
            String::new()
        } else {
            format!(" (missing shards {:?})", outcome.missing)
        }
    );
    Ok(())
}
