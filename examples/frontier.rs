//! The accuracy–kept-fraction frontier: the game at fixed participation costs `--gammas`
//! (emergent sparsity) or at target kept fractions `--fractions` (γ found by target mode), and
//! every baseline at the game's per-layer kept counts, each followed by the same fine-tune.
//! Writes `OUT/frontier.csv` (`method,kept_fraction,accuracy_mean,accuracy_std`; methods
//! suffixed `-before-ft` are accuracies before fine-tuning, the game's at removal, and
//! `game-refitted` after the survivors' refit) and one run folder per (fraction, seed).
//!
//! With `--granularity weight` the players are single weights (`prune::weights`): kept
//! fractions are of weights, the baselines are magnitude, random and SNIP pruning, and
//! `--set weight_game.KEY=VALUE` sets the weight game's own parameters.
//!
//! `cargo run --release --example frontier -- --epochs 3 --seeds 1 --fractions 0.5,0.25,0.1`
//! `cargo run --release --example frontier -- --epochs 3 --seeds 1 --gammas 0,4e-4,3e-3`
//! `cargo run --release --example frontier -- --granularity weight --fractions 0.1,0.05,0.02`
//!
//! `--weight-baselines global-magnitude,scratch` runs only those weight-level baselines (the
//! dense reference always runs).
//!
//! `--set distill_weight=0.5 --set distill_temperature=4` distils every pruned network's
//! training (the game's refit and fine-tune, every baseline's fine-tune, the scratch control
//! and SNIP) from the run's dense reference (`PruneConfig`'s `distill_weight`). The settings
//! of the sweep, distillation included, are written to `OUT/frontier.json` beside the CSV and
//! printed at the start; each run folder's `report.json` holds its full configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Parser;
use pruning_game::io::write_json_atomic;
use pruning_game::nn::data::{fashion_mnist, teacher_student, Dataset, TeacherConfig};
use pruning_game::nn::Distill;
use pruning_game::prune::pipeline::{has_run, run_job, Architecture, Job};
use pruning_game::prune::report::{mean_std, write_frontier, FrontierRow};
use pruning_game::prune::weights::{run_weight_job, WeightBaseline, WeightGame, WeightJob};
use pruning_game::prune::{apply_overrides, Baseline, PruneConfig};
use serde::Serialize;

/// What the players are.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Granularity {
    /// Neurons (channel groups).
    Unit,
    /// Single weights.
    Weight,
}

/// The network.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Model {
    /// 784-512-256-10 (teacher task: one hidden layer).
    Mlp,
    /// The small CNN (Fashion-MNIST only).
    Cnn,
}

/// What `OUT/frontier.json` records of the sweep, so that its CSV describes itself: the
/// flags, the overrides and the configuration they gave (each run sets its own epochs,
/// price and seed on top), and the distillation settings if distillation was on.
#[derive(Serialize)]
struct Settings<'a> {
    dataset: &'a str,
    granularity: &'a str,
    model: &'a str,
    epochs: usize,
    finetune_epochs: usize,
    seeds: u64,
    base_seed: u64,
    fractions: Option<&'a Vec<f64>>,
    gammas: Option<&'a Vec<f64>>,
    overrides: &'a [String],
    distillation: Option<Distill>,
    config: &'a PruneConfig,
    weight_game: Option<&'a WeightGame>,
}

/// One run's figures: kept fraction, (method, accuracy) pairs and a log line.
type RunFigures = (f64, Vec<(String, f64)>, String);

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
    /// Players: units or single weights.
    #[arg(long, value_enum, default_value = "unit")]
    granularity: Granularity,
    /// The network.
    #[arg(long, value_enum, default_value = "mlp")]
    model: Model,
    /// Force the teacher–student task.
    #[arg(long)]
    teacher: bool,
    /// Configuration overrides `key=value` (keys as in `config.json`, e.g. `schedule=cosine`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Weight-level baselines to run (names as in the CSV; default: every one).
    #[arg(long, value_delimiter = ',')]
    weight_baselines: Option<Vec<String>>,
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
    let (game_overrides, overrides): (Vec<String>, Vec<String>) = args
        .overrides
        .iter()
        .cloned()
        .partition(|o| o.starts_with("weight_game."));
    let base = base.with_overrides(&overrides)?;
    let game_overrides: Vec<String> = game_overrides
        .iter()
        .map(|o| o["weight_game.".len()..].to_string())
        .collect();
    let game: WeightGame = apply_overrides(&WeightGame::default(), &game_overrides)?;
    game.check()?;
    if args.granularity == Granularity::Unit && !game_overrides.is_empty() {
        anyhow::bail!("--set weight_game.*: only with --granularity weight");
    }
    if args.granularity == Granularity::Unit && args.weight_baselines.is_some() {
        anyhow::bail!("--weight-baselines: only with --granularity weight");
    }
    let weight_baselines = match &args.weight_baselines {
        None => WeightBaseline::ALL.to_vec(),
        Some(names) => names
            .iter()
            .map(|n| {
                WeightBaseline::ALL
                    .into_iter()
                    .find(|b| b.name() == n)
                    .ok_or_else(|| anyhow::anyhow!("--weight-baselines: unknown baseline {n}"))
            })
            .collect::<Result<_>>()?,
    };
    let architecture = match args.model {
        Model::Mlp => Architecture::Mlp { hidden },
        Model::Cnn => Architecture::Cnn,
    };
    let distillation = base.training.distillation();
    match distillation {
        Some(d) => eprintln!(
            "distillation on: every pruned network trains on (1 - {w}) CE + {w} T^2 KL against \
             the dense reference at temperature T = {t}",
            w = d.weight,
            t = d.temperature
        ),
        None => eprintln!("distillation off (--set distill_weight=W to turn it on)"),
    }
    std::fs::create_dir_all(&args.out)?;
    write_json_atomic(
        &args.out.join("frontier.json"),
        &Settings {
            dataset: name,
            granularity: match args.granularity {
                Granularity::Unit => "unit",
                Granularity::Weight => "weight",
            },
            model: match args.model {
                Model::Mlp => "mlp",
                Model::Cnn => "cnn",
            },
            epochs: args.epochs,
            finetune_epochs: args.finetune_epochs,
            seeds: args.seeds,
            base_seed: args.base_seed,
            fractions: args.gammas.is_none().then_some(&args.fractions),
            gammas: args.gammas.as_ref(),
            overrides: &args.overrides,
            distillation,
            config: &base,
            weight_game: (args.granularity == Granularity::Weight).then_some(&game),
        },
    )?;
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
    let prefix = match args.granularity {
        Granularity::Unit => "",
        Granularity::Weight => "weights_",
    };
    for (fi, (point, gamma, target)) in points.iter().enumerate() {
        for k in 0..args.seeds {
            let seed = args.base_seed + k;
            let mut config = base.clone();
            config.training.epochs = args.epochs;
            config.training.finetune_epochs = args.finetune_epochs;
            config.game.gamma = gamma.unwrap_or(base.game.gamma);
            config.price.target_kept = *target;
            config.seed = seed;
            let dir = args.out.join(format!("{prefix}{point}_seed{seed}"));
            let (kept, figures, line) = match args.granularity {
                Granularity::Unit => unit_run(&architecture, config, name, &train, &test, &dir)?,
                Granularity::Weight => {
                    let job = WeightJob {
                        architecture: architecture.clone(),
                        config,
                        game: game.clone(),
                        baselines: weight_baselines.clone(),
                        dataset: name.into(),
                    };
                    weight_run(&job, &train, &test, &dir)?
                }
            };
            for (m, a) in figures {
                let e = acc.entry((m, fi)).or_default();
                e.0.push(kept);
                e.1.push(a);
            }
            eprintln!("{point} seed {seed}: {line}");
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

/// One unit-level run (resumed where an earlier, interrupted frontier run stopped).
fn unit_run(
    architecture: &Architecture,
    config: PruneConfig,
    name: &str,
    train: &Dataset,
    test: &Dataset,
    dir: &Path,
) -> Result<RunFigures> {
    let job = Job {
        architecture: architecture.clone(),
        config,
        baselines: Baseline::ALL.to_vec(),
        slimming_lambda: 1e-4,
        dataset: name.into(),
    };
    let r = run_job(&job, train, test, dir, has_run(dir))?;
    let mut figures = vec![
        ("game".to_string(), r.finetuned_accuracy),
        ("game-before-ft".into(), r.pruned_accuracy),
        ("game-refitted".into(), r.refitted_accuracy),
    ];
    for b in &r.baselines {
        figures.push((b.method.clone(), b.finetuned_accuracy));
        figures.push((format!("{}-before-ft", b.method), b.pruned_accuracy));
    }
    let line = format!(
        "kept {:.3}, dense {:.4}, game {:.4} / {:.4} / {:.4}; {}",
        r.kept_fraction,
        r.dense_accuracy,
        r.pruned_accuracy,
        r.refitted_accuracy,
        r.finetuned_accuracy,
        baseline_line(r.baselines.iter().map(|b| (
            &b.method,
            b.pruned_accuracy,
            b.finetuned_accuracy
        )))
    );
    Ok((r.kept_fraction, figures, line))
}

/// One weight-level run (always fresh).
fn weight_run(job: &WeightJob, train: &Dataset, test: &Dataset, dir: &Path) -> Result<RunFigures> {
    let r = run_weight_job(job, train, test, dir)?;
    let mut figures = vec![
        ("game".to_string(), r.finetuned_accuracy),
        ("game-before-ft".into(), r.pruned_accuracy),
        ("game-refitted".into(), r.refitted_accuracy),
        ("dense".into(), r.dense_accuracy),
    ];
    for b in &r.baselines {
        figures.push((b.method.clone(), b.finetuned_accuracy));
        figures.push((format!("{}-before-ft", b.method), b.pruned_accuracy));
    }
    let dominated: usize = r.certificates.iter().map(|c| c.removed_dominated).sum();
    let removed: usize = r.certificates.iter().map(|c| c.weights - c.kept).sum();
    let line = format!(
        "kept {:.4} of weights, dense {:.4}, game {:.4} (played; {} weights left at the end) / \
         {:.4} / {:.4} / {:.4}, {dominated} of {removed} removed weights dominated; {}",
        r.kept_fraction,
        r.dense_accuracy,
        r.played_accuracy,
        r.left_at_end,
        r.pruned_accuracy,
        r.refitted_accuracy,
        r.finetuned_accuracy,
        baseline_line(r.baselines.iter().map(|b| (
            &b.method,
            b.pruned_accuracy,
            b.finetuned_accuracy
        )))
    );
    Ok((r.kept_fraction, figures, line))
}

fn baseline_line<'a>(rows: impl Iterator<Item = (&'a String, f64, f64)>) -> String {
    rows.map(|(m, before, after)| format!("{m} {before:.4} / {after:.4}"))
        .collect::<Vec<_>>()
        .join(", ")
}
