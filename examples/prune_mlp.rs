//! The README's main job: prune an MLP with the equilibrium-driven pruner.
//!
//! Fashion-MNIST (784-512-256-10) when `/usr/share/datasets/fashion-mnist` is installed, else
//! the embedded teacher–student task (a student 4× wider than the teacher). Writes a run
//! folder (default `runs/prune_mlp`) with `report.json`, `certificates.json`,
//! `trajectories.csv`, `equilibrium.csv` and `pruned.safetensors`.
//!
//! `cargo run --release --example prune_mlp -- --epochs 3 --seed 1`

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use pruning_game::nn::data::{fashion_mnist, teacher_student, TeacherConfig};
use pruning_game::prune::pipeline::{run_job, Architecture, Job};
use pruning_game::prune::{Baseline, PruneConfig};

#[derive(Parser)]
struct Args {
    /// Training epochs with gate play (default: 3 on Fashion-MNIST, 40 on teacher–student).
    #[arg(long)]
    epochs: Option<usize>,
    /// Seed of weights, shuffling and baselines.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep about this fraction of hidden units (calibrates γ).
    #[arg(long)]
    target_kept: Option<f64>,
    /// Any other configuration key, as in `config.json` (`--set gamma=0.003 --set
    /// symmetry=unbroken --set redundancy=activation-correlation`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Also run the baselines at the same per-layer kept counts.
    #[arg(long)]
    baselines: bool,
    /// Force the teacher–student task.
    #[arg(long)]
    teacher: bool,
    /// Run folder.
    #[arg(long, default_value = "runs/prune_mlp")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let fm = if args.teacher { None } else { fashion_mnist()? };
    let (name, (train, test), hidden, mut config) = match fm {
        Some(d) => ("fashion-mnist".to_string(), d, vec![512, 256], {
            let mut c = PruneConfig::default();
            c.training.epochs = 3;
            c
        }),
        None => {
            let t = TeacherConfig::default();
            (
                format!("teacher-student (teacher width {})", t.width),
                teacher_student(&t)?,
                vec![4 * t.width],
                PruneConfig::teacher_default(),
            )
        }
    };
    if let Some(e) = args.epochs {
        config.training.epochs = e;
    }
    config.seed = args.seed;
    config.price.target_kept = args.target_kept;
    let config = config.with_overrides(&args.overrides)?;
    let job = Job {
        architecture: Architecture::Mlp { hidden },
        config,
        baselines: if args.baselines {
            Baseline::ALL.to_vec()
        } else {
            Vec::new()
        },
        slimming_lambda: 1e-4,
        dataset: name,
    };
    let r = run_job(&job, &train, &test, &args.out, false)?;
    println!("data set          {}", job.dataset);
    for (c, g) in r.kept_per_group.iter().zip(&r.gamma_per_group) {
        println!(
            "group {:<3}         {} -> {} units (gamma {g:.3e})",
            c.group, c.before, c.after
        );
    }
    println!(
        "accuracy          dense {:.4}  pruned {:.4}  refitted {:.4}  fine-tuned {:.4}",
        r.dense_accuracy, r.pruned_accuracy, r.refitted_accuracy, r.finetuned_accuracy
    );
    println!(
        "test loss         dense {:.4}  pruned {:.4}  refitted {:.4}  fine-tuned {:.4}",
        r.dense_loss, r.pruned_loss, r.refitted_loss, r.finetuned_loss
    );
    println!(
        "params {} -> {}, FLOPs {} -> {}, latency {:.2} -> {:.2} ms (x{:.2})",
        r.params_before,
        r.params_after,
        r.flops_before,
        r.flops_after,
        r.latency_ms_before,
        r.latency_ms_after,
        r.speedup
    );
    println!(
        "removed {} units: {} proved dominated (T3/T4), {} with benefit <= cost",
        r.removed, r.dominated, r.kkt_satisfied
    );
    if let Some(e) = r.evaluations.last() {
        for l in &e.layers {
            println!(
                "group {:<3} final  natural residual {:.2e}  Nash gap {:.2e}  mean gate {:.3}",
                l.group, l.natural_residual, l.nash_gap, l.mean_gate
            );
        }
    }
    for b in &r.baselines {
        println!(
            "baseline {:<10} pruned {:.4}  fine-tuned {:.4}",
            b.method, b.pruned_accuracy, b.finetuned_accuracy
        );
    }
    println!("run folder        {}", args.out.display());
    Ok(())
}
