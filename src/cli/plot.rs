//! `pruning-game plot`: render a figure from result files.

use std::path::PathBuf;

use pruning_game::plot;
use pruning_game::sim::load_results;

/// Which figure.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Kind {
    /// Heatmap of the pruned fraction over (γ, β); input: a sweep folder or results CSV.
    Phase,
    /// Predicted vs observed pruned fraction; input: a sweep folder or results CSV.
    Sparsity,
    /// Residual per iteration (log scale); inputs: equilibrium/trace JSON files with
    /// `residual_history`.
    Convergence,
    /// Participation over training; input: a CSV with columns step, unit, value.
    Trajectories,
    /// Accuracy vs kept fraction; input: a CSV with columns method, kept_fraction,
    /// accuracy_mean, accuracy_std.
    Frontier,
}

/// Options of `plot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The figure to draw.
    #[arg(value_enum)]
    kind: Kind,
    /// Input files or folders.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output image: .svg or .png.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // Every flag and input is checked before the figure is drawn (the only write).
    plot::output_format(&args.out)?;
    for input in &args.inputs {
        anyhow::ensure!(
            input.exists(),
            "{}: no such file or folder",
            input.display()
        );
    }
    let single = || -> anyhow::Result<&PathBuf> {
        anyhow::ensure!(
            args.inputs.len() == 1,
            "`plot {:?}` takes one input, got {}",
            args.kind,
            args.inputs.len()
        );
        Ok(&args.inputs[0])
    };
    match args.kind {
        Kind::Phase => plot::phase_diagram(&load_results(single()?)?, &args.out)?,
        Kind::Sparsity => plot::sparsity(&load_results(single()?)?, &args.out)?,
        Kind::Convergence => {
            let traces = args
                .inputs
                .iter()
                .map(|p| plot::read_trace(p))
                .collect::<Result<Vec<_>, _>>()?;
            plot::convergence(&traces, &args.out)?
        }
        Kind::Trajectories => plot::trajectories(&plot::read_trajectories(single()?)?, &args.out)?,
        Kind::Frontier => plot::frontier(&plot::read_frontier(single()?)?, &args.out)?,
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
