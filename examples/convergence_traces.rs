//! Writes one solver trace (a `SolveReport` as JSON, with `residual_history`) per solver for
//! one seeded game, for `pruning-game plot convergence`.
//!
//! ```sh
//! cargo run --release --example convergence_traces -- traces/
//! pruning-game plot convergence traces/*.json --out convergence.png
//! ```

use std::path::PathBuf;

use pruning_game::equilibrium::{solve, SolveOptions, SolverKind};
use pruning_game::game::{generate, BenefitSpec, GeneratorConfig, Topology};

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "traces".into()));
    std::fs::create_dir_all(&out)?;
    // 500 players, 20 competitors each, δ = 1.1: unique equilibrium, every solver converges.
    let game = generate(&GeneratorConfig {
        players: 500,
        seed: 7,
        topology: Topology::Random { degree: 20.0 },
        symmetric: false,
        competition_scale: 0.5,
        participation_cost: 0.1,
        benefit: BenefitSpec::Normal {
            mean: 0.2,
            std: 0.3,
        },
        diagonal_dominance: 1.1,
        self_cost: 1.0,
    })?;
    for kind in SolverKind::ALL {
        let solution = solve(&game, kind, &SolveOptions::new(1e-10, 10_000))?;
        let path = out.join(format!("{kind}.json"));
        pruning_game::io::write_json_atomic(&path, &solution.report)?;
        println!(
            "{kind}: {} iterations, residual {:.2e} -> {}",
            solution.report.iterations,
            solution.report.certificate.natural_residual,
            path.display()
        );
    }
    Ok(())
}
