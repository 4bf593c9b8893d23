//! `pruning-game solve`: compute a Nash equilibrium of a game file and write the equilibrium
//! file with its certificate.
//!
//! `dominated` comes from [`provably_pruned_near`]: the T3/T4 proofs started from the solved
//! profile, so that they cost about as much as the solve; players the solve pruned that those
//! proofs could not reach in their budget are listed as `undetermined`.

use std::path::PathBuf;

use anyhow::Context;
use pruning_game::dominance::{provably_pruned_near, NearOptions};
use pruning_game::equilibrium::{solve, EquilibriumFile, SolveOptions, SolverKind};
use pruning_game::game::{Game, PruningGame};

/// Options of `solve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Game file (JSON or safetensors; docs/formats.md, docs/game-binary-format.md).
    #[arg(long)]
    game: PathBuf,
    /// Equilibrium solver.
    #[arg(long, value_enum, default_value_t = SolverKind::Newton)]
    solver: SolverKind,
    /// Tolerance on the natural residual ‖s − Π(s − F(s))‖_∞.
    #[arg(long, default_value_t = 1e-10)]
    tol: f64,
    /// Iteration budget.
    #[arg(long = "max-iter", default_value_t = 10_000)]
    max_iter: usize,
    /// Best response: damping ω in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    damping: f64,
    /// Best response: Gauss–Seidel sweeps instead of parallel Jacobi.
    #[arg(long)]
    gauss_seidel: bool,
    /// Projection / extragradient: fixed step (default: from a Lipschitz bound).
    #[arg(long)]
    step: Option<f64>,
    /// Projection / extragradient: adaptive step, no Lipschitz constant needed.
    #[arg(long)]
    adaptive: bool,
    /// Output equilibrium file (JSON), written atomically.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let reading = std::time::Instant::now();
    let game = PruningGame::read(&args.game)?;
    let read_seconds = reading.elapsed().as_secs_f64();
    let options = SolveOptions {
        tolerance: args.tol,
        max_iterations: args.max_iter,
        damping: args.damping,
        gauss_seidel: args.gauss_seidel,
        step: args.step,
        adaptive: args.adaptive,
        record_history: false,
        ..SolveOptions::default()
    };
    let solution = solve(&game, args.solver, &options)?;
    let mut file = EquilibriumFile::from_solution(&solution);
    let proving = std::time::Instant::now();
    let near = provably_pruned_near(&game, &solution.profile, &NearOptions::default())?;
    let proof_seconds = proving.elapsed().as_secs_f64();
    file.dominated = near.dominated;
    file.undetermined = near.undetermined;
    file.write_json(&args.out)
        .with_context(|| "writing the equilibrium file")?;
    let report = &solution.report;
    eprintln!(
        "read the game in {:.3} s; {}: {} after {} iterations in {:.3} s; residual {:.3e}, Nash gap {:.3e}; {} of {} players pruned ({} proved dominated in {} bracket rounds, {:.3} s; {} undetermined); wrote {}",
        read_seconds,
        report.solver,
        report.termination,
        report.iterations,
        report.seconds,
        report.certificate.natural_residual,
        report.certificate.nash_gap,
        file.pruned.len(),
        game.num_players(),
        file.dominated.len(),
        near.sweeps,
        proof_seconds,
        file.undetermined.len(),
        args.out.display()
    );
    if !report.converged {
        anyhow::bail!(
            "{} did not reach the tolerance {:e} ({}); the last iterate and its certificate are in {}",
            report.solver,
            args.tol,
            report.termination,
            args.out.display()
        );
    }
    Ok(())
}
