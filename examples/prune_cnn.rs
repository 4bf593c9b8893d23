//! Prune the small CNN (conv 32 → conv 64 → dense 128) filter by filter: removing a filter
//! removes the matching input channel of the next convolution (or its block of the dense
//! layer after flatten). Fashion-MNIST when installed, else a synthetic image task labelled by
//! a random CNN. A subset (`--train N` below 20 000) switches to short-run settings.
//!
//! `cargo run --release --example prune_cnn -- --epochs 5 --target-kept 0.4 --baselines`
//! (full Fashion-MNIST, ≈ 10 s per epoch on 2 cores)
//! `cargo run --release --example prune_cnn -- --epochs 2 --train 12000` (a few minutes)

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use pruning_game::nn::data::fashion_mnist;
use pruning_game::nn::graph::{Graph, Op};
use pruning_game::nn::{DataSource, Dataset, InputSpec, LrSchedule};
use pruning_game::prune::pipeline::{run_job, Architecture, Job};
use pruning_game::prune::report::GroupCount;
use pruning_game::prune::{Baseline, PruneConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

#[derive(Parser)]
struct Args {
    /// Epochs with gate play.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Training samples used (all by default).
    #[arg(long, default_value_t = usize::MAX)]
    train: usize,
    /// Test samples used (all by default).
    #[arg(long, default_value_t = usize::MAX)]
    test: usize,
    /// Participation cost γ (ignored with `--target-kept`).
    #[arg(long, default_value_t = 1e-2)]
    gamma: f64,
    /// Keep about this fraction of each layer's units (γ found by target mode).
    #[arg(long)]
    target_kept: Option<f64>,
    /// Also run every baseline at the game's per-layer counts.
    #[arg(long)]
    baselines: bool,
    /// Configuration overrides `key=value` (keys as in `config.json`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Run folder.
    #[arg(long, default_value = "runs/prune_cnn")]
    out: PathBuf,
}

/// Images `[1, 12, 12]` of Gaussian noise labelled by a random small CNN (4 classes).
fn synthetic(n: usize, seed: u64) -> Result<Dataset> {
    let teacher = Graph::small_cnn(&[1, 12, 12], 4, seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1));
    let x: Vec<f32> = (0..n * 144)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let logits = teacher.predict(&x, n)?;
    let y = (0..n)
        .map(|r| logits.row(r).transpose().argmax().0 as u32)
        .collect();
    Ok(Dataset::new(
        x,
        y,
        vec![1, 12, 12],
        4,
        InputSpec::identity(vec![1, 12, 12]),
        DataSource::Subset {
            parent: Box::new(DataSource::Idx {
                dir: "synthetic-cnn-teacher".into(),
                split: "all".into(),
            }),
            len: n,
        },
    )?)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (name, train, test) = match fashion_mnist()? {
        Some((tr, te)) => (
            "fashion-mnist (subset)",
            tr.take(args.train),
            te.take(args.test),
        ),
        None => {
            let all = synthetic(args.train.min(12_000) + args.test.min(2_000), args.seed)?;
            let (tr, te) =
                pruning_game::prune::pipeline::split_holdout(&all, args.test.min(2_000))?;
            ("synthetic CNN teacher", tr, te)
        }
    };
    let mut config = PruneConfig::default();
    config.training.epochs = args.epochs;
    config.game.gamma = args.gamma;
    config.price.target_kept = args.target_kept;
    config.training.schedule = LrSchedule::Cosine;
    config.seed = args.seed;
    if train.len() < 20_000 {
        // Few steps per run on a subset: shorter warm-up, refresh and patience, smaller
        // batches, so that gates can reach 0 within the run (T7).
        config.gates.warmup_steps = 20;
        config.gates.refresh_every = 10;
        config.gates.patience = 20;
        config.training.batch_size = 64;
        config.run.holdout = 1000;
    }
    let config = config.with_overrides(&args.overrides)?;
    let job = Job {
        architecture: Architecture::Cnn,
        config,
        baselines: if args.baselines {
            Baseline::ALL.to_vec()
        } else {
            Vec::new()
        },
        slimming_lambda: 1e-4,
        dataset: name.into(),
    };
    let r = run_job(&job, &train, &test, &args.out, false)?;
    for c in &r.kept_per_group {
        println!("group {:<3} {} -> {} units", c.group, c.before, c.after);
    }
    println!(
        "accuracy dense {:.4}, pruned {:.4}, refitted {:.4}, fine-tuned {:.4}; params {} -> {}; FLOPs {} -> {}; latency {:.2} -> {:.2} ms",
        r.dense_accuracy,
        r.pruned_accuracy,
        r.refitted_accuracy,
        r.finetuned_accuracy,
        r.params_before,
        r.params_after,
        r.flops_before,
        r.flops_after,
        r.latency_ms_before,
        r.latency_ms_after
    );
    let graph = job.architecture.build(&train, args.seed)?;
    let conv: Vec<_> = r
        .kept_per_group
        .iter()
        .filter(|c| {
            graph
                .node(&c.group)
                .is_some_and(|n| matches!(graph.nodes()[n].op, Op::Conv2d(_)))
        })
        .collect();
    let filters = |f: fn(&&GroupCount) -> usize| conv.iter().map(f).sum::<usize>() as f64;
    println!(
        "filters removed {:.1}%; FLOPs reduced {:.2}x; measured inference speed-up {:.2}x",
        100.0 * (1.0 - filters(|c| c.after) / filters(|c| c.before).max(1.0)),
        r.flops_before as f64 / r.flops_after.max(1) as f64,
        r.speedup
    );
    for b in &r.baselines {
        println!(
            "baseline {:<10} pruned {:.4}, fine-tuned {:.4}",
            b.method, b.pruned_accuracy, b.finetuned_accuracy
        );
    }
    println!("run folder {}", args.out.display());
    Ok(())
}
