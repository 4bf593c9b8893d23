//! Baselines on the same backend, compared at equal per-layer kept counts: each ranks the
//! units of every gated layer by a score, keeps the top ones and is then fine-tuned exactly
//! like the game's network.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::PruneConfig;
use super::layer_game::measure_benefits;
use super::pruner::PruneRun;
use crate::error::{Error, Result};
use crate::nn::{Dataset, Model, TrainConfig, Trainer};

/// A baseline pruning criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// L2 norm of the incoming weights (and bias).
    Magnitude,
    /// Network slimming: gates trained with an L1 penalty `λ Σ s_i`, ranked by gate value.
    L1Gates,
    /// A seeded random ranking.
    Random,
    /// First-order Taylor / gate-gradient saliency `|s_i ∂L/∂s_i|` on held-out data.
    Taylor,
    /// No ranking: the kept shape trained from a fresh initialisation for the dense
    /// network's epochs (the control of "is the pruned network more than its shape?").
    Scratch,
}

impl Baseline {
    /// Every baseline.
    pub const ALL: [Baseline; 5] = [
        Baseline::Magnitude,
        Baseline::L1Gates,
        Baseline::Random,
        Baseline::Taylor,
        Baseline::Scratch,
    ];

    /// Name used in reports and CSV files.
    pub fn name(&self) -> &'static str {
        match self {
            Baseline::Magnitude => "magnitude",
            Baseline::L1Gates => "l1-gates",
            Baseline::Random => "random",
            Baseline::Taylor => "taylor",
            Baseline::Scratch => "scratch",
        }
    }
}

/// Scores of every unit of every gated layer (higher = more important).
pub fn scores(
    method: Baseline,
    model: &Model,
    holdout: &Dataset,
    batch: usize,
    seed: u64,
) -> Result<Vec<Vec<f64>>> {
    let layers = model.gated_layers();
    match method {
        Baseline::Magnitude => layers
            .iter()
            .map(|&l| {
                let w = model.incoming_weights(l)?;
                let b = model.layers()[l].params().map(|(_, b)| b.clone());
                Ok((0..w.nrows())
                    .map(|i| {
                        let bias = b.as_ref().map_or(0.0, |b| (b[i] as f64).powi(2));
                        (w.row(i).iter().map(|&v| (v as f64).powi(2)).sum::<f64>() + bias).sqrt()
                    })
                    .collect())
            })
            .collect(),
        Baseline::L1Gates => layers
            .iter()
            .map(|&l| Ok(model.gate(l)?.iter().map(|&v| v as f64).collect()))
            .collect(),
        Baseline::Random => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            layers
                .iter()
                .map(|&l| {
                    let n = model.gate(l)?.len();
                    let mut order: Vec<usize> = (0..n).collect();
                    order.shuffle(&mut rng);
                    let mut s = vec![0.0; n];
                    for (rank, &i) in order.iter().enumerate() {
                        s[i] = rank as f64;
                    }
                    Ok(s)
                })
                .collect()
        }
        // The shape alone matters: every unit scores the same.
        Baseline::Scratch => layers
            .iter()
            .map(|&l| Ok(vec![0.0; model.gate(l)?.len()]))
            .collect(),
        Baseline::Taylor => {
            let (benefits, _) = measure_benefits(model, holdout, batch)?;
            layers
                .iter()
                .zip(benefits)
                .map(|(&l, b)| {
                    let g = model.gate(l)?;
                    Ok(b.iter()
                        .zip(g.iter())
                        .map(|(&b, &s)| (b * s as f64).abs())
                        .collect())
                })
                .collect()
        }
    }
}

/// Keeps the `counts[k]` highest-scoring units of the `k`-th gated layer (ties: lower index)
/// and removes the others; gates are folded first, so the result has every gate at 1.
pub fn prune_to_counts(model: &Model, scores: &[Vec<f64>], counts: &[usize]) -> Result<Model> {
    let layers = model.gated_layers();
    if scores.len() != layers.len() || counts.len() != layers.len() {
        return Err(Error::LengthMismatch {
            field: "per-layer counts".into(),
            expected: layers.len(),
            got: counts.len().min(scores.len()),
        });
    }
    let mut m = model.clone();
    m.fold_gates()?;
    for ((&layer, s), &k) in layers.iter().zip(scores).zip(counts) {
        let n = s.len();
        if k == 0 || k > n {
            return Err(Error::invalid(
                "kept count",
                format!("layer {layer}: {k} not in 1..={n}"),
            ));
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
        let mut keep: Vec<usize> = order[..k].to_vec();
        keep.sort_unstable();
        m.remove_units(layer, &keep)?;
    }
    Ok(m)
}

/// Fine-tunes `model`'s weights for `epochs` epochs (gates folded first, then fixed at 1) at
/// `finetune_lr_scale` times the training rate.
pub fn finetune(
    model: &Model,
    train: &Dataset,
    config: &PruneConfig,
    epochs: usize,
) -> Result<Model> {
    let mut tc = config.train_config(epochs);
    tc.seed = config.seed.wrapping_add(1);
    tc.optimizer = tc.optimizer.scaled_lr(config.finetune_lr_scale as f32);
    train_folded(model, train, tc, None)
}

/// Trains `model`'s weights with `tc` after folding its gates (fixed at 1 from then on); with
/// `checkpoint = Some((file, resume))`, checkpointed into `file` and, with `resume`, continued
/// from it.
pub(crate) fn train_folded(
    model: &Model,
    train: &Dataset,
    tc: TrainConfig,
    checkpoint: Option<(&Path, bool)>,
) -> Result<Model> {
    let mut m = model.clone();
    m.fold_gates()?;
    if tc.epochs == 0 {
        return Ok(m);
    }
    match checkpoint {
        Some((file, resume)) => train_resumable(m, train, tc, file, resume),
        None => {
            let mut t = Trainer::new(m, tc)?;
            t.run(train, None, &mut ())?;
            Ok(t.into_model())
        }
    }
}

/// Trains `model` with `tc`, checkpointing into `checkpoint`; with `resume`, continues from
/// it (which must have been written with the same settings).
pub(crate) fn train_resumable(
    model: Model,
    train: &Dataset,
    mut tc: TrainConfig,
    checkpoint: &Path,
    resume: bool,
) -> Result<Model> {
    tc.checkpoint = Some(checkpoint.to_path_buf());
    let mut t = if resume && checkpoint.is_file() {
        let t = Trainer::resume(checkpoint)?;
        if t.config() != &tc {
            return Err(Error::ResumeMismatch {
                path: checkpoint.to_path_buf(),
                message: "the checkpoint was written with other training settings".into(),
            });
        }
        t
    } else {
        Trainer::new(model, tc)?
    };
    t.run(train, None, &mut ())?;
    Ok(t.into_model())
}

/// Network slimming's training: the same gate dynamics with only the L1 cost `λ s_i`
/// (`α = β = 0`, `γ = λ`, no removal, symmetry left as in the original method).
pub fn train_slimming(
    model: Model,
    train: &Dataset,
    holdout: &Dataset,
    config: &PruneConfig,
    lambda: f64,
) -> Result<Model> {
    let cfg = PruneConfig {
        alpha: 0.0,
        beta: 0.0,
        gamma: lambda,
        remove: false,
        symmetry: super::config::ScaleSymmetry::Unbroken,
        target_kept: None,
        refit_fraction: 0.0,
        ..config.clone()
    };
    let mut run = PruneRun::new(model, cfg)?;
    run.run(train, holdout, None, None)?;
    Ok(run.finish(holdout)?.0)
}
