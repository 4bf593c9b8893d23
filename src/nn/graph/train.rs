//! Training a graph: seeded shuffling and augmentation, BatchNorm in training mode with its
//! running statistics updated after every step, a learning-rate schedule, and an evaluation
//! in evaluation mode after each epoch.
//!
//! Augmentation (both optional, both seeded): a random crop after zero-padding each side by
//! `crop_padding` pixels (the padding is the preprocessed value of a raw 0, as padding a raw
//! image with black would give), and a horizontal flip with probability ½.

use serde::{Deserialize, Serialize};

use super::trainer::Trainer;
use super::{Graph, GraphGrads, GraphWorkspace, Mode};
use crate::error::{Error, Result};
use crate::nn::data::Dataset;
use crate::nn::optim::OptimizerConfig;
use crate::nn::LossStats;

/// Learning-rate schedule over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The configured rate throughout.
    #[default]
    Constant,
    /// Cosine decay from the configured rate to 0 over `epochs` epochs:
    /// `η_t = η (1 + cos(π t / T)) / 2`.
    Cosine,
}

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per minibatch.
    pub batch_size: usize,
    /// Optimiser and hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule over all steps.
    pub schedule: LrSchedule,
    /// Zero padding of the random crop (0 = no crop).
    pub crop_padding: usize,
    /// Random horizontal flips.
    pub flip: bool,
    /// Seed of shuffling and augmentation.
    pub seed: u64,
}

impl Default for FitConfig {
    /// SGD 0.1 with momentum 0.9 and weight decay 5e-4, cosine schedule, batch 128, crop
    /// padding 2 and flips: the usual recipe for small-image ResNets.
    fn default() -> Self {
        FitConfig {
            epochs: 10,
            batch_size: 128,
            optimizer: OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 5e-4,
            },
            schedule: LrSchedule::Cosine,
            crop_padding: 2,
            flip: true,
            seed: 42,
        }
    }
}

impl FitConfig {
    /// Checks the batch size and the optimiser.
    pub fn check(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", "must be > 0"));
        }
        self.optimizer.check()
    }
}

/// What one epoch did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochSummary {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss and accuracy over the epoch's batches (training mode).
    pub train: LossStats,
    /// Test loss and accuracy after the epoch (evaluation mode).
    pub test: LossStats,
    /// Wall-clock seconds of the epoch's training steps (evaluation excluded).
    pub seconds: f64,
}

/// Copies sample `src` (`[c, h, w]`) into `dst`, shifted by `(dy, dx)` inside a frame padded
/// with `fill`, and mirrored left–right if `flip`.
#[allow(clippy::too_many_arguments)]
pub(super) fn augment_into(
    dst: &mut [f32],
    src: &[f32],
    (c, h, w): (usize, usize, usize),
    dy: isize,
    dx: isize,
    flip: bool,
    fill: f32,
) {
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let sy = y as isize + dy;
                let sx0 = if flip {
                    (w - 1 - x) as isize
                } else {
                    x as isize
                };
                let sx = sx0 + dx;
                dst[(ch * h + y) * w + x] =
                    if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                        src[(ch * h + sy as usize) * w + sx as usize]
                    } else {
                        fill
                    };
            }
        }
    }
}

/// Loss and accuracy of `graph` on `data` in evaluation mode.
pub fn evaluate(graph: &Graph, data: &Dataset, batch_size: usize) -> Result<LossStats> {
    let b = batch_size.max(1).min(data.len().max(1));
    let mut ws = GraphWorkspace::new(graph, b);
    let len = data.sample_len();
    let (mut loss, mut correct, mut count) = (0.0, 0, 0);
    for start in (0..data.len()).step_by(b) {
        let end = (start + b).min(data.len());
        let s = graph.evaluate_batch(
            &mut ws,
            &data.inputs()[start * len..end * len],
            &data.labels()[start..end],
        )?;
        loss += s.loss * s.count as f64;
        correct += s.correct;
        count += s.count;
    }
    Ok(LossStats {
        loss: loss / count.max(1) as f64,
        correct,
        count,
    })
}

/// Visits the gradients of `graph`'s loss on each minibatch of `data` in order (evaluation
/// mode, batches of `batch_size`), with the batch's number of rows: what importance criteria
/// and mean gradients accumulate.
pub fn for_each_batch_gradient(
    graph: &Graph,
    data: &Dataset,
    batch_size: usize,
    mut visit: impl FnMut(&GraphGrads, usize),
) -> Result<()> {
    let b = batch_size.max(1).min(data.len().max(1));
    let mut ws = GraphWorkspace::new(graph, b);
    let mut grads = GraphGrads::new(graph);
    let len = data.sample_len();
    for start in (0..data.len()).step_by(b) {
        let end = (start + b).min(data.len());
        graph.loss_and_grad(
            &mut ws,
            &data.inputs()[start * len..end * len],
            &data.labels()[start..end],
            Mode::Eval,
            &mut grads,
        )?;
        visit(&grads, end - start);
    }
    Ok(())
}

/// Trains `graph` on `train` for `config.epochs` epochs with [`Trainer`], evaluating on
/// `test` after each; `on_epoch` sees every summary as it is made (to print or save).
pub fn fit(
    graph: &mut Graph,
    train: &Dataset,
    test: &Dataset,
    config: &FitConfig,
    mut on_epoch: impl FnMut(&Graph, &EpochSummary) -> Result<()>,
) -> Result<Vec<EpochSummary>> {
    if test.sample_len() != graph.input_len() {
        return Err(Error::invalid(
            "data",
            format!(
                "test samples have {} values, the network takes {}",
                test.sample_len(),
                graph.input_len()
            ),
        ));
    }
    let mut trainer = Trainer::new(graph.clone(), config.clone())?;
    let mut out = Vec::with_capacity(config.epochs);
    while !trainer.finished() {
        trainer.run_epoch(train, &mut ())?;
        let summary = EpochSummary {
            epoch: trainer.epochs_done(),
            train: trainer.running(),
            test: evaluate(trainer.graph(), test, 500)?,
            seconds: trainer.epoch_seconds(),
        };
        on_epoch(trainer.graph(), &summary)?;
        out.push(summary);
    }
    *graph = trainer.into_graph();
    Ok(out)
}
