//! Do the gates settle? The same pruning run with the ReLU scale symmetry broken
//! (normalisation, the default) and left unbroken; prints and writes, per epoch and layer, the
//! natural residual of the layer's participation game (benefits on a training subset and on
//! held-out data), the mean gate, the mean gate drift and the mean norm of the units' outgoing
//! weights (`OUT/<symmetry>/equilibrium.csv`).
//!
//! `cargo run --release --example settle -- --epochs 8`

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use pruning_game::nn::data::{fashion_mnist, teacher_student, TeacherConfig};
use pruning_game::nn::LrSchedule;
use pruning_game::prune::pipeline::{split_holdout, Architecture};
use pruning_game::prune::report::{write_evaluations, write_trajectories};
use pruning_game::prune::{PruneConfig, PruneRun, ScaleSymmetry};

#[derive(Parser)]
struct Args {
    /// Epochs of gate play of each run (the game alone: no refit follows).
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Cosine learning-rate decay of the weights (default: constant).
    #[arg(long)]
    cosine: bool,
    /// Configuration overrides `key=value` (keys as in `config.json`), applied to both runs.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Force the teacher–student task.
    #[arg(long)]
    teacher: bool,
    /// Output folder.
    #[arg(long, default_value = "runs/settle")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let fm = if args.teacher { None } else { fashion_mnist()? };
    let (train, test, hidden, base) = match fm {
        Some((tr, te)) => (tr, te, vec![512, 256], PruneConfig::default()),
        None => {
            let t = TeacherConfig::default();
            let (tr, te) = teacher_student(&t)?;
            (tr, te, vec![4 * t.width], PruneConfig::teacher_default())
        }
    };
    for (name, symmetry) in [
        ("normalize", ScaleSymmetry::Normalize),
        ("unbroken", ScaleSymmetry::Unbroken),
    ] {
        let mut config = base.clone();
        config.training.epochs = args.epochs;
        config.training.refit_fraction = 0.0;
        config.seed = args.seed;
        config.gates.symmetry = symmetry;
        config.training.schedule = if args.cosine {
            LrSchedule::Cosine
        } else {
            LrSchedule::Constant
        };
        let config = config.with_overrides(&args.overrides)?;
        let (tr, ho) = split_holdout(&train, config.run.holdout)?;
        let model = Architecture::Mlp {
            hidden: hidden.clone(),
        }
        .build(&tr, config.seed)?;
        let mut run = PruneRun::new(model, config)?;
        let dir = args.out.join(name);
        while !run.finished() {
            let e = run.run_epoch(&tr, &ho, Some(&test))?;
            for l in &e.layers {
                println!(
                    "{name:<9} epoch {:>2} layer {} units {:>3} residual train {:.2e} held-out {:.2e} mean gate {:.3} drift {:.2e} |w_out| {:.3} acc {:.4}",
                    e.epoch, l.group, l.units, l.natural_residual_train, l.natural_residual,
                    l.mean_gate, l.drift, l.mean_outgoing_norm, e.test_accuracy
                );
            }
            run.save(&dir)?;
        }
        write_evaluations(&dir.join("equilibrium.csv"), run.pruner().evaluations())?;
        write_trajectories(&dir.join("trajectories.csv"), run.pruner().trajectory())?;
    }
    Ok(())
}
