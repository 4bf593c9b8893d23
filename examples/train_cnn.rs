//! Trains the small gated CNN (conv 32, conv 64, dense 128) on Fashion-MNIST with Adam and
//! reports test accuracy and seconds per epoch.
//!
//! `cargo run --release --example train_cnn -- [--epochs N] [--seed S] [--data-dir DIR] …`
//! (same flags as `train_mlp`).

#[path = "train_mlp.rs"]
#[allow(dead_code)]
mod common;

use anyhow::{bail, Result};
use pruning_game::nn::graph::Graph;

fn main() -> Result<()> {
    let args = common::parse_args(15)?;
    let (tr, te) = common::load(&args)?;
    if tr.shape().len() != 3 {
        bail!("the CNN needs image data; {:?} is flat", tr.shape());
    }
    let graph = Graph::small_cnn(tr.shape(), tr.classes(), args.seed)?;
    common::train(graph, &args, &tr, &te)
}
