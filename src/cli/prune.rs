//! `pruning-game prune`: train a gated network, prune it with the equilibrium-driven pruner,
//! fine-tune and write `RUN/pruned.safetensors`, `RUN/report.json`, `RUN/certificates.json`.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use pruning_game::nn::data::{
    fashion_mnist, load_idx_dir, teacher_student, TeacherConfig, FASHION_MNIST_DIR,
};
use pruning_game::nn::InputSpec;
use pruning_game::prune::pipeline::{check_job, has_run, run_job, Architecture, Job};
use pruning_game::prune::{Baseline, PruneConfig, Redundancy, ScaleSymmetry};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModelArg {
    Mlp,
    Cnn,
    BnCnn,
    Resnet,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DatasetArg {
    FashionMnist,
    Teacher,
    Idx,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SymmetryArg {
    Normalize,
    WeightDecay,
    Unbroken,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RedundancyArg {
    WeightCosine,
    ActivationCorrelation,
}

/// Options of `prune`. Unset hyper-parameters take the library defaults
/// (`PruneConfig::default`, or `PruneConfig::teacher_default` for the teacher task).
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// Network: MLP (hidden widths from --hidden), the small CNN, the BatchNorm CNN (block
    /// widths from --widths) or a ResNet for small images (--depth).
    /// [default: mlp]
    #[arg(long, value_enum)]
    model: Option<ModelArg>,
    /// BN-CNN block widths, comma separated [default: 32,64,128].
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
    /// ResNet depth (6n + 2: 8, 14, 20, 32, 44) [default: 8].
    #[arg(long)]
    depth: Option<usize>,
    /// Prune this trained model instead of training one (`.safetensors` from this tool or
    /// from PyTorch via python/pruning_game_torch.py): no dense training; the game plays
    /// during the --epochs of fine-tuning.
    #[arg(long, value_name = "MODEL")]
    init: Option<PathBuf>,
    /// Data set: Fashion-MNIST (installed IDX files), the embedded teacher–student task, or
    /// any IDX folder given by --data-dir.
    #[arg(long, value_enum, default_value = "teacher")]
    dataset: DatasetArg,
    /// Folder with the four IDX files (for --dataset idx or a non-default Fashion-MNIST).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// MLP hidden widths, comma separated (default 512,256; 32 for the teacher task).
    #[arg(long, value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Participation cost γ.
    #[arg(long)]
    gamma: Option<f64>,
    /// Competition scale β.
    #[arg(long)]
    beta: Option<f64>,
    /// Self-cost scale α.
    #[arg(long)]
    alpha: Option<f64>,
    /// Gate step size η_s.
    #[arg(long)]
    gate_lr: Option<f64>,
    /// Refresh R and check removals every K steps.
    #[arg(long)]
    refresh_every: Option<usize>,
    /// Steps at exactly 0 before a unit is removed.
    #[arg(long)]
    patience: Option<usize>,
    /// Redundancy measure.
    #[arg(long, value_enum)]
    redundancy: Option<RedundancyArg>,
    /// How the ReLU scale symmetry is broken.
    #[arg(long, value_enum)]
    symmetry: Option<SymmetryArg>,
    /// Training epochs with gate play.
    #[arg(long)]
    epochs: Option<usize>,
    /// Fine-tuning epochs after removal.
    #[arg(long)]
    finetune_epochs: Option<usize>,
    /// Seed of weights, shuffling and baselines.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep about this fraction of hidden units (γ calibrated on the measured game).
    #[arg(long, value_name = "F")]
    target_kept: Option<f64>,
    /// Also run every baseline at the same per-layer kept counts.
    #[arg(long)]
    baselines: bool,
    /// Continue from the checkpoints in --out.
    #[arg(long)]
    resume: bool,
    /// Any other configuration key, as named in the run's `config.json`
    /// (`--set schedule=cosine --set warmup_steps=400`); repeatable, applied last.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Use only the first N training samples (quicker runs; the held-out set comes from them).
    #[arg(long, value_name = "N")]
    train_samples: Option<usize>,
    /// Run folder.
    #[arg(long)]
    out: PathBuf,
}

/// Refuses flags that do not apply to the chosen network, data set or mode, rather than
/// ignoring them.
fn check_combination(args: &Args) -> anyhow::Result<()> {
    let model = args.model.unwrap_or(ModelArg::Mlp);
    let given = |set: bool, flag: &str, why: &str| -> anyhow::Result<()> {
        if set {
            anyhow::bail!("{flag} does not apply {why}");
        }
        Ok(())
    };
    if args.init.is_some() {
        let why = "with --init (the model file gives the network)";
        given(args.model.is_some(), "--model", why)?;
        given(args.hidden.is_some(), "--hidden", why)?;
        given(args.widths.is_some(), "--widths", why)?;
        given(args.depth.is_some(), "--depth", why)?;
    }
    given(
        args.hidden.is_some() && !matches!(model, ModelArg::Mlp),
        "--hidden",
        "to this model (MLP hidden widths; use --widths for the BN-CNN)",
    )?;
    given(
        args.widths.is_some() && !matches!(model, ModelArg::BnCnn),
        "--widths",
        "to this model (block widths of --model bn-cnn)",
    )?;
    given(
        args.depth.is_some() && !matches!(model, ModelArg::Resnet),
        "--depth",
        "to this model (the depth of --model resnet)",
    )?;
    given(
        args.data_dir.is_some() && matches!(args.dataset, DatasetArg::Teacher),
        "--data-dir",
        "to --dataset teacher (its data are generated, not read)",
    )?;
    given(
        args.gamma.is_some() && args.target_kept.is_some(),
        "--gamma",
        "with --target-kept (the price is calibrated to reach the target)",
    )?;
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_combination(&args)?;
    let teacher = TeacherConfig::default();
    let (name, (train, test)) = match args.dataset {
        DatasetArg::Teacher => (
            format!("teacher-student (teacher width {})", teacher.width),
            teacher_student(&teacher)?,
        ),
        DatasetArg::FashionMnist => match &args.data_dir {
            Some(dir) => (
                "fashion-mnist".into(),
                load_idx_dir(dir, &InputSpec::fashion_mnist())?,
            ),
            None => (
                "fashion-mnist".into(),
                fashion_mnist()?.with_context(|| {
                    format!("Fashion-MNIST is not installed in {FASHION_MNIST_DIR} (apt install dataset-fashion-mnist, or pass --data-dir)")
                })?,
            ),
        },
        DatasetArg::Idx => {
            let dir = args
                .data_dir
                .as_ref()
                .context("--dataset idx needs --data-dir DIR")?;
            (
                format!("idx:{}", dir.display()),
                load_idx_dir(dir, &InputSpec::fashion_mnist())?,
            )
        }
    };
    let train = match args.train_samples {
        Some(0) => anyhow::bail!("invalid --train-samples: must be > 0"),
        Some(n) if n > train.len() => anyhow::bail!(
            "invalid --train-samples {n}: the data set has {} training samples",
            train.len()
        ),
        Some(n) => train.take(n),
        None => train,
    };
    let is_teacher = matches!(args.dataset, DatasetArg::Teacher);
    let mut c = if is_teacher {
        PruneConfig::teacher_default()
    } else {
        PruneConfig::default()
    };
    macro_rules! set {
        ($group:ident . $field:ident) => {
            if let Some(v) = args.$field {
                c.$group.$field = v;
            }
        };
    }
    set!(game.gamma);
    set!(game.beta);
    set!(game.alpha);
    set!(gates.gate_lr);
    set!(gates.refresh_every);
    set!(gates.patience);
    set!(training.epochs);
    set!(training.finetune_epochs);
    if let Some(r) = args.redundancy {
        c.gates.redundancy = match r {
            RedundancyArg::WeightCosine => Redundancy::WeightCosine,
            RedundancyArg::ActivationCorrelation => Redundancy::ActivationCorrelation,
        };
    }
    if let Some(s) = args.symmetry {
        c.gates.symmetry = match s {
            SymmetryArg::Normalize => ScaleSymmetry::Normalize,
            SymmetryArg::WeightDecay => ScaleSymmetry::WeightDecay,
            SymmetryArg::Unbroken => ScaleSymmetry::Unbroken,
        };
    }
    c.seed = args.seed;
    c.price.target_kept = args.target_kept;
    let c = c
        .with_overrides(&args.overrides)
        .context("invalid configuration")?;
    let architecture = match (&args.init, args.model.unwrap_or(ModelArg::Mlp)) {
        (Some(path), _) => Architecture::File { path: path.clone() },
        (None, model) => match model {
            ModelArg::Mlp => Architecture::Mlp {
                hidden: args.hidden.clone().unwrap_or(if is_teacher {
                    vec![4 * teacher.width]
                } else {
                    vec![512, 256]
                }),
            },
            ModelArg::Cnn => Architecture::Cnn,
            ModelArg::BnCnn => Architecture::BnCnn {
                widths: args.widths.clone().unwrap_or_else(|| vec![32, 64, 128]),
            },
            ModelArg::Resnet => Architecture::Resnet {
                depth: args.depth.unwrap_or(8),
            },
        },
    };
    if let Architecture::BnCnn { widths } = &architecture {
        if widths.is_empty() || widths.contains(&0) {
            anyhow::bail!("invalid --widths: need at least one width, all > 0");
        }
    }
    if let Architecture::Mlp { hidden } = &architecture {
        if hidden.is_empty() || hidden.contains(&0) {
            anyhow::bail!("invalid --hidden: need at least one width, all > 0");
        }
    }
    let job = Job {
        architecture,
        config: c,
        baselines: if args.baselines {
            Baseline::ALL.to_vec()
        } else {
            Vec::new()
        },
        slimming_lambda: 1e-4,
        dataset: name,
    };
    check_job(&job, &train, &test)?;
    if !args.resume && has_run(&args.out) {
        anyhow::bail!(
            "{}: this folder already holds a pruning run; add --resume to continue it, or \
             choose another --out",
            args.out.display()
        );
    }
    let r = run_job(&job, &train, &test, &args.out, args.resume)
        .with_context(|| format!("pruning run in {}", args.out.display()))?;
    let kept: Vec<String> = r
        .kept_per_group
        .iter()
        .map(|k| format!("{}->{}", k.before, k.after))
        .collect();
    eprintln!(
        "kept {} (gamma {}); accuracy dense {:.4}, pruned {:.4}, refitted {:.4}, fine-tuned {:.4}; params {} -> {}; wrote {}",
        kept.join(", "),
        r.gamma_per_group
            .iter()
            .map(|g| format!("{g:.3e}"))
            .collect::<Vec<_>>()
            .join(", "),
        r.dense_accuracy,
        r.pruned_accuracy,
        r.refitted_accuracy,
        r.finetuned_accuracy,
        r.params_before,
        r.params_after,
        args.out.display()
    );
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    Ok(())
}
