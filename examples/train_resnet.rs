//! Trains a ResNet for small images (or the BN-CNN) on Fashion-MNIST and reports test
//! accuracy and seconds per epoch; exports the model in PyTorch's layout after every epoch.
//!
//! `cargo run --release --example train_resnet -- [--depth 8|14|20|32|44] [--bn-cnn]
//!  [--epochs N] [--seed S] [--batch B] [--lr LR] [--weight-decay WD] [--crop-padding P]
//!  [--no-flip] [--train-samples N] [--data-dir DIR] [--out DIR]`
//!
//! Defaults: ResNet-8, 10 epochs, SGD 0.1 with momentum 0.9 and weight decay 5e-4, cosine
//! schedule, batch 128, random 2-pixel crops and flips. Writes `DIR/model.safetensors` (the
//! last epoch's export; `python3 python/pruning_game_torch.py DIR/model.safetensors` loads it)
//! and `DIR/history.json`; default `DIR` is `runs/train_resnet`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use pruning_game::io::write_atomic;
use pruning_game::nn::data::{fashion_mnist, load_idx_dir};
use pruning_game::nn::graph::train::{fit, FitConfig};
use pruning_game::nn::graph::Graph;
use pruning_game::nn::{InputSpec, OptimizerConfig};

fn main() -> Result<()> {
    let mut depth = 8;
    let mut bn_cnn = false;
    let mut cfg = FitConfig::default();
    let (mut lr, mut wd) = (0.1f32, 5e-4f32);
    let mut data_dir: Option<PathBuf> = None;
    let mut out = PathBuf::from("runs/train_resnet");
    let mut train_samples: Option<usize> = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--depth" => depth = val()?.parse()?,
            "--bn-cnn" => bn_cnn = true,
            "--epochs" => cfg.epochs = val()?.parse()?,
            "--seed" => cfg.seed = val()?.parse()?,
            "--batch" => cfg.batch_size = val()?.parse()?,
            "--lr" => lr = val()?.parse()?,
            "--weight-decay" => wd = val()?.parse()?,
            "--crop-padding" => cfg.crop_padding = val()?.parse()?,
            "--no-flip" => cfg.flip = false,
            "--train-samples" => train_samples = Some(val()?.parse()?),
            "--data-dir" => data_dir = Some(val()?.into()),
            "--out" => out = val()?.into(),
            other => bail!("unknown flag {other}"),
        }
    }
    cfg.optimizer = OptimizerConfig::Sgd {
        lr,
        momentum: 0.9,
        weight_decay: wd,
    };
    cfg.check()?;
    let (train, test) = match &data_dir {
        Some(d) => load_idx_dir(d, &InputSpec::fashion_mnist())?,
        None => fashion_mnist()?.context(
            "needs image data: install Debian's dataset-fashion-mnist or pass --data-dir",
        )?,
    };
    let train = match train_samples {
        Some(n) => train.take(n),
        None => train,
    };
    let input = train.input_spec().clone();
    let mut graph = if bn_cnn {
        Graph::bn_cnn(input, &[32, 64, 128], train.classes(), cfg.seed)?
    } else {
        Graph::resnet(depth, input, train.classes(), cfg.seed)?
    };
    let name = if bn_cnn {
        "bn-cnn 32-64-128".to_string()
    } else {
        format!("resnet-{depth}")
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    eprintln!(
        "{name}: {} parameters, {:.1} M MACs per sample, {} training samples; {:?}",
        graph.parameter_count(),
        graph.macs_per_sample() as f64 / 1e6,
        train.len(),
        cfg
    );
    let model_path = out.join("model.safetensors");
    let history_path = out.join("history.json");
    let mut history = Vec::new();
    fit(&mut graph, &train, &test, &cfg, |g, e| {
        println!(
            "epoch {:>3}  train loss {:.4} acc {:.4}  test loss {:.4} acc {:.4}  {:.1} s ({:.0} samples/s)",
            e.epoch,
            e.train.loss,
            e.train.accuracy(),
            e.test.loss,
            e.test.accuracy(),
            e.seconds,
            e.train.count as f64 / e.seconds
        );
        history.push(*e);
        g.export(&model_path)?;
        let json = serde_json::json!({ "model": name, "config": cfg, "epochs": history });
        write_atomic(&history_path, |w| {
            serde_json::to_writer_pretty(w, &json).map_err(std::io::Error::other)
        })
    })?;
    println!("model: {}", model_path.display());
    Ok(())
}
