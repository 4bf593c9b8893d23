//! Trains the 784-512-256-10 gated MLP on Fashion-MNIST with Adam and reports test accuracy
//! and seconds per epoch. Falls back to the teacher–student task if the data are absent.
//!
//! `cargo run --release --example train_mlp -- [--epochs N] [--seed S] [--data-dir DIR]
//!  [--batch B] [--lr LR] [--constant-lr] [--out model.safetensors]
//!  [--checkpoint ck.safetensors] [--quiet]`
//!
//! The learning rate follows a cosine decay to 0 over the run unless `--constant-lr`. With
//! `--checkpoint`, a checkpoint is written after every epoch and an existing one is resumed
//! (with the settings it was written with).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use pruning_game::nn::data::{fashion_mnist, load_idx_dir, teacher_student, TeacherConfig};
use pruning_game::nn::graph::train::{evaluate, FitConfig};
use pruning_game::nn::graph::{Graph, Trainer};
use pruning_game::nn::{Dataset, InputSpec, LrSchedule, OptimizerConfig};

/// Command-line options shared by the training examples.
pub struct Args {
    pub epochs: usize,
    pub seed: u64,
    pub batch: usize,
    pub lr: f32,
    pub data_dir: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub checkpoint: Option<PathBuf>,
    pub quiet: bool,
    pub cosine: bool,
}

pub fn parse_args(default_epochs: usize) -> Result<Args> {
    let mut a = Args {
        epochs: default_epochs,
        seed: 42,
        batch: 128,
        lr: 1e-3,
        data_dir: None,
        out: None,
        checkpoint: None,
        quiet: false,
        cosine: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--epochs" => a.epochs = val()?.parse()?,
            "--seed" => a.seed = val()?.parse()?,
            "--batch" => a.batch = val()?.parse()?,
            "--lr" => a.lr = val()?.parse()?,
            "--data-dir" => a.data_dir = Some(val()?.into()),
            "--out" => a.out = Some(val()?.into()),
            "--checkpoint" => a.checkpoint = Some(val()?.into()),
            "--quiet" => a.quiet = true,
            "--constant-lr" => a.cosine = false,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// Fashion-MNIST (or `--data-dir`), else the teacher–student task.
pub fn load(args: &Args) -> Result<(Dataset, Dataset)> {
    if let Some(dir) = &args.data_dir {
        return Ok(load_idx_dir(dir, &InputSpec::fashion_mnist())?);
    }
    match fashion_mnist()? {
        Some(d) => Ok(d),
        None => {
            eprintln!("Fashion-MNIST not found; using the teacher-student task");
            let cfg = TeacherConfig {
                inputs: 784,
                width: 16,
                classes: 10,
                train: 20_000,
                test: 5_000,
                seed: args.seed,
            };
            Ok(teacher_student(&cfg)?)
        }
    }
}

pub fn train(graph: Graph, args: &Args, train: &Dataset, test: &Dataset) -> Result<()> {
    let graph = graph.with_input(train.input_spec().clone())?;
    println!(
        "model: {} parameters, {} MACs/sample; data: {:?}",
        graph.parameter_count(),
        graph.macs_per_sample(),
        train.source()
    );
    let cfg = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch,
        optimizer: OptimizerConfig::adam(args.lr),
        schedule: if args.cosine {
            LrSchedule::Cosine
        } else {
            LrSchedule::Constant
        },
        crop_padding: 0,
        flip: false,
        seed: args.seed,
    };
    let mut trainer = match &args.checkpoint {
        Some(p) if p.exists() => {
            let t = Trainer::resume(p)?;
            println!(
                "resumed from {} after epoch {}",
                p.display(),
                t.epochs_done()
            );
            t
        }
        _ => Trainer::new(graph, cfg)?,
    };
    let (mut last, mut seconds, mut epochs) = (None, 0.0, 0);
    while !trainer.finished() {
        trainer.run_epoch(train, &mut ())?;
        let (r, t) = (
            trainer.running(),
            evaluate(trainer.graph(), test, args.batch)?,
        );
        println!(
            "epoch {:2}: train loss {:.4} acc {:.4} | test loss {:.4} acc {:.4} | {:.2} s",
            trainer.epochs_done(),
            r.loss,
            r.accuracy(),
            t.loss,
            t.accuracy(),
            trainer.epoch_seconds()
        );
        (last, seconds, epochs) = (Some(t), seconds + trainer.epoch_seconds(), epochs + 1);
        if let Some(p) = &args.checkpoint {
            trainer.save_checkpoint(p)?;
        }
    }
    if let Some(t) = last {
        println!(
            "final test accuracy {:.4}; mean {:.2} s/epoch",
            t.accuracy(),
            seconds / epochs as f64
        );
    }
    if let Some(out) = &args.out {
        trainer.graph().export(out)?;
        println!("exported {}", out.display());
    }
    Ok(())
}

#[allow(dead_code)]
fn main() -> Result<()> {
    let args = parse_args(15)?;
    let (tr, te) = load(&args)?;
    let widths = [tr.sample_len(), 512, 256, tr.classes()];
    train(Graph::mlp(&widths, args.seed)?, &args, &tr, &te)
}
