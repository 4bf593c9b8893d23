//! The accuracy–kept-fraction frontier: the game at fixed participation costs `--gammas`
//! (emergent sparsity) or at target kept fractions `--fractions` (γ found by target mode), and
//! every baseline at the game's per-layer kept counts, each followed by the same fine-tune.
//! Writes `OUT/frontier.csv` (`method,kept_fraction,accuracy_mean,accuracy_std`; methods
//! suffixed `-before-ft` are accuracies before fine-tuning, the game's at removal, and
//! `game-refitted` after the survivors' refit) and one run folder per (fraction, seed).
//!
//! `cargo run --release --example frontier -- --epochs 3 --seeds 1 --fractions 0.5,0.25,0.1`
//! `cargo run --release --example frontier -- --epochs 3 --seeds 1 --gammas 0,4e-4,3e-3`

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use pruning_game::nn::data::{fashion_mnist, teacher_student, TeacherConfig};
use pruning_game::prune::pipeline::{has_run, run_job, Architecture, Job};
use pruning_game::prune::report::{mean_std, write_frontier, FrontierRow};
use pruning_game::prune::{Baseline, PruneConfig};

#[derive(Parser)]
struct Args {
    /// Epochs with gate play (and of the dense reference).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Fine-tuning epochs.
    #[arg(long, default_value_t = 1)]
    finetune_epochs: usize,
    /// Number of seeds (seeds are base_seed + index).
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Base seed.
    #[arg(long, default_value_t = 42)]
    base_seed: u64,
    /// Target kept fractions.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.25,0.1")]
    fractions: Vec<f64>,
    /// Fixed participation costs to sweep instead of target fractions.
    #[arg(long, value_delimiter = ',', conflicts_with = "fractions")]
    gammas: Option<Vec<f64>>,
    /// Force the teacher–student task.
    #[arg(long)]
    teacher: bool,
    /// Configuration overrides `key=value` (keys as in `config.json`, e.g. `schedule=cosine`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Output folder.
    #[arg(long, default_value = "runs/frontier")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let fm = if args.teacher { None } else { fashion_mnist()? };
    let (name, (train, test), hidden, base) = match fm {
        Some(d) => ("fashion-mnist", d, vec![512, 256], PruneConfig::default()),
        None => {
            let t = TeacherConfig::default();
            (
                "teacher-student",
                teacher_student(&t)?,
                vec![4 * t.width],
                PruneConfig::teacher_default(),
            )
        }
    };
    let base = base.with_overrides(&args.overrides)?;
    // method -> kept fraction bucket -> (kept fractions, accuracies)
    let mut acc: BTreeMap<(String, usize), (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    // Each point: its name and how it sets the price (a fixed γ or a target fraction).
    let points: Vec<(String, Option<f64>, Option<f64>)> = match &args.gammas {
        Some(gs) => gs
            .iter()
            .map(|&g| (format!("gamma{g}"), Some(g), None))
            .collect(),
        None => args
            .fractions
            .iter()
            .map(|&f| (format!("kept{f}"), None, Some(f)))
            .collect(),
    };
    for (fi, (point, gamma, target)) in points.iter().enumerate() {
        for k in 0..args.seeds {
            let seed = args.base_seed + k;
            let config = PruneConfig {
                epochs: args.epochs,
                finetune_epochs: args.finetune_epochs,
                gamma: gamma.unwrap_or(base.gamma),
                target_kept: *target,
                seed,
                ..base.clone()
            };
            let job = Job {
                architecture: Architecture::Mlp {
                    hidden: hidden.clone(),
                },
                config,
                baselines: Baseline::ALL.to_vec(),
                slimming_lambda: 1e-4,
                dataset: name.into(),
            };
            let dir = args.out.join(format!("{point}_seed{seed}"));
            // A folder of an earlier, interrupted frontier run continues where it stopped.
            let r = run_job(&job, &train, &test, &dir, has_run(&dir))?;
            let mut push = |m: String, a: f64| {
                let e = acc.entry((m, fi)).or_default();
                e.0.push(r.kept_fraction);
                e.1.push(a);
            };
            push("game".into(), r.finetuned_accuracy);
            push("game-before-ft".into(), r.pruned_accuracy);
            push("game-refitted".into(), r.refitted_accuracy);
            for b in &r.baselines {
                push(b.method.clone(), b.finetuned_accuracy);
                push(format!("{}-before-ft", b.method), b.pruned_accuracy);
            }
            eprintln!(
                "{point} seed {seed}: kept {:.3}, dense {:.4}, game {:.4} / {:.4} / {:.4}; {}",
                r.kept_fraction,
                r.dense_accuracy,
                r.pruned_accuracy,
                r.refitted_accuracy,
                r.finetuned_accuracy,
                r.baselines
                    .iter()
                    .map(|b| format!(
                        "{} {:.4} / {:.4}",
                        b.method, b.pruned_accuracy, b.finetuned_accuracy
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let rows: Vec<FrontierRow> = acc
                .iter()
                .map(|((m, _), (kf, a))| {
                    let (mean, std) = mean_std(a);
                    FrontierRow {
                        method: m.clone(),
                        kept_fraction: mean_std(kf).0,
                        accuracy_mean: mean,
                        accuracy_std: std,
                    }
                })
                .collect();
            write_frontier(&args.out.join("frontier.csv"), &rows)?;
        }
    }
    Ok(())
}
