//! `pruning-game generate`: write a seeded synthetic game file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use pruning_game::game::{generate, BenefitSpec, GeneratorConfig, Topology};

/// Options of `generate`. Dense competition unless `--sparse K` or `--random-degree D`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// Number of players.
    #[arg(long)]
    players: usize,
    /// Seed of every random choice (recorded in the output's file name only by you; the same
    /// seed and options always give the same file).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sparse competition: each player competes with its K nearest neighbours on a ring.
    #[arg(long, value_name = "K", conflicts_with = "random_degree")]
    sparse: Option<usize>,
    /// Sparse Erdős–Rényi competition with D competitors per player on average.
    #[arg(long, value_name = "D")]
    random_degree: Option<f64>,
    /// Dense competition: probability that a pair competes.
    #[arg(long, default_value_t = 1.0)]
    density: f64,
    /// Make the competition symmetric (an exact potential game).
    #[arg(long)]
    symmetric: bool,
    /// Competition strength β (entries are β·U(0,1)).
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// Participation cost γ.
    #[arg(long, default_value_t = 0.1)]
    gamma: f64,
    /// Base self cost α.
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
    /// Diagonal dominance δ (δ > 1 guarantees a unique equilibrium).
    #[arg(long, default_value_t = 1.5)]
    dominance: f64,
    /// Fraction of players whose net benefit q_i = b_i − γ is negative.
    #[arg(long, default_value_t = 0.3)]
    negative_fraction: f64,
    /// Output game file: safetensors when the name ends in `.safetensors`, JSON otherwise.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let topology = match (args.sparse, args.random_degree) {
        (Some(k), _) => Topology::Nearest { k },
        (None, Some(degree)) => Topology::Random { degree },
        (None, None) => Topology::Dense {
            density: args.density,
        },
    };
    let config = GeneratorConfig {
        players: args.players,
        seed: args.seed,
        topology,
        symmetric: args.symmetric,
        competition_scale: args.beta,
        participation_cost: args.gamma,
        benefit: BenefitSpec::Split {
            negative_fraction: args.negative_fraction,
            scale: 1.0,
        },
        diagonal_dominance: args.dominance,
        self_cost: args.alpha,
    };
    config.check()?;
    if let (Some(need), Some(have)) = (config.peak_bytes(), physical_memory()) {
        if need > have {
            anyhow::bail!(
                "--players {}: generating this game needs about {:.1} GB, more than the {:.1} GB of memory here",
                args.players,
                need as f64 / 1e9,
                have as f64 / 1e9
            );
        }
    }
    let start = Instant::now();
    let game = generate(&config)?;
    game.write(&args.out)
        .with_context(|| "writing the game file")?;
    eprintln!(
        "wrote {} players, {} competition entries to {} in {:.2} s",
        args.players,
        game.competition().nnz(),
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Total memory of this machine in bytes (`MemTotal` of `/proc/meminfo`), if known.
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}
