//! Prune the small CNN (conv 32 → conv 64 → dense 128) filter by filter: removing a filter
//! removes the matching input channel of the next convolution (or its block of the dense
//! layer after flatten). Fashion-MNIST when installed (a training subset keeps it to a few
//! minutes on 2 cores), else a synthetic image task labelled by a random CNN.
//!
//! `cargo run --release --example prune_cnn -- --epochs 2 --train 12000`

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use pruning_game::nn::data::fashion_mnist;
use pruning_game::nn::{DataSource, Dataset, InputSpec, Model};
use pruning_game::prune::pipeline::{run_job, Architecture, Job};
use pruning_game::prune::PruneConfig;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

#[derive(Parser)]
struct Args {
    /// Epochs with gate play.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Training samples used (the CNN is ~40× costlier per sample than the MLP).
    #[arg(long, default_value_t = 12000)]
    train: usize,
    /// Test samples used.
    #[arg(long, default_value_t = 2000)]
    test: usize,
    /// Participation cost γ.
    #[arg(long, default_value_t = 1e-2)]
    gamma: f64,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Run folder.
    #[arg(long, default_value = "runs/prune_cnn")]
    out: PathBuf,
}

/// Images `[1, 12, 12]` of Gaussian noise labelled by a random small CNN (4 classes).
fn synthetic(n: usize, seed: u64) -> Result<Dataset> {
    let teacher = Model::small_cnn(&[1, 12, 12], 4, seed)?;
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
            let all = synthetic(args.train + args.test, args.seed)?;
            let (tr, te) = pruning_game::prune::pipeline::split_holdout(&all, args.test)?;
            ("synthetic CNN teacher", tr, te)
        }
    };
    let config = PruneConfig {
        epochs: args.epochs,
        gamma: args.gamma,
        seed: args.seed,
        // Few steps per run on a subset: shorter warm-up, refresh and patience, smaller
        // batches, a larger price so that gates can reach 0 within the run (T7).
        warmup_steps: 20,
        refresh_every: 10,
        patience: 20,
        batch_size: 64,
        holdout: 1000,
        ..PruneConfig::default()
    };
    let job = Job {
        architecture: Architecture::Cnn,
        config,
        baselines: Vec::new(),
        slimming_lambda: 1e-4,
        dataset: name.into(),
    };
    let r = run_job(&job, &train, &test, &args.out, false)?;
    for c in &r.kept_per_layer {
        println!("layer {:<3} {} -> {} units", c.layer, c.before, c.after);
    }
    println!(
        "accuracy dense {:.4}, pruned {:.4}, fine-tuned {:.4}; params {} -> {}; FLOPs {} -> {}; latency {:.2} -> {:.2} ms",
        r.dense_accuracy,
        r.pruned_accuracy,
        r.finetuned_accuracy,
        r.params_before,
        r.params_after,
        r.flops_before,
        r.flops_after,
        r.latency_ms_before,
        r.latency_ms_after
    );
    println!("run folder {}", args.out.display());
    Ok(())
}
