//! Baselines on the same backend, compared at equal per-group kept counts and equal training
//! budget: each ranks the channels of every player group by a score, keeps the top ones and
//! is then fine-tuned exactly like the game's network. With distillation on
//! ([`PruneConfig::teacher`]) every fine-tune here, and the scratch control's training,
//! distils from the same dense network.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::PruneConfig;
use super::players::{gate_gradient, gate_id, gates, magnitudes, player, players};
use crate::error::{Error, Result};
use crate::nn::data::Dataset;
use crate::nn::graph::train::{for_each_batch_gradient, FitConfig};
use crate::nn::graph::{ChannelGroup, Graph, L1Penalty, Op, ParamKind, RemovalPlan, Trainer};
use crate::nn::Distill;

/// A baseline pruning criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// Group magnitude: the L2 norm of all of a channel's parameters (producer rows and
    /// biases, BatchNorm `γ`/`β`, consumer columns), on the dense network.
    Magnitude,
    /// Network slimming (Liu et al., "Learning Efficient Convolutional Networks through
    /// Network Slimming", ICCV 2017): training from scratch with an L1 penalty `λ Σ |γ|` on
    /// BatchNorm's scaling factors — or, in a group without BatchNorm, on free per-channel
    /// scales (the gates, made trainable and kept `≥ 0`) — optimised by the same optimiser
    /// as the weights; channels ranked by `|γ|` (summed over the group's BatchNorms); the
    /// kept scales are kept.
    Slimming,
    /// A seeded random ranking.
    Random,
    /// First-order Taylor importance (Molchanov et al., "Importance Estimation for Neural
    /// Network Pruning", CVPR 2019): `(Σ_{w ∈ channel} g_w w)²`, equal to `(s ∂L/∂s)²` for a
    /// gate, accumulated over held-out minibatches, on the dense network.
    Taylor,
    /// No ranking: the kept shape trained from a fresh initialisation for the dense
    /// network's epochs (the control of "is the pruned network more than its shape?").
    Scratch,
}

impl Baseline {
    /// Every baseline.
    pub const ALL: [Baseline; 5] = [
        Baseline::Magnitude,
        Baseline::Slimming,
        Baseline::Random,
        Baseline::Taylor,
        Baseline::Scratch,
    ];

    /// Name used in reports and CSV files.
    pub fn name(&self) -> &'static str {
        match self {
            Baseline::Magnitude => "magnitude",
            Baseline::Slimming => "slimming",
            Baseline::Random => "random",
            Baseline::Taylor => "taylor",
            Baseline::Scratch => "scratch",
        }
    }
}

/// BatchNorm scale vectors of `group`.
fn bn_scales(graph: &Graph, group: &ChannelGroup) -> Vec<usize> {
    group
        .per_channel
        .iter()
        .filter_map(|&m| match &graph.nodes()[m].op {
            Op::BatchNorm(b) => Some(b.weight),
            _ => None,
        })
        .collect()
}

/// Slimming's per-channel scales of `group`: its BatchNorm `γ`s, else its gate.
fn slimming_scales(graph: &Graph, group: &ChannelGroup) -> (Vec<usize>, bool) {
    let bn = bn_scales(graph, group);
    if bn.is_empty() {
        (vec![gate_id(group)], true)
    } else {
        (bn, false)
    }
}

/// Scores of every channel of every player group (higher = more important).
pub fn scores(
    method: Baseline,
    graph: &Graph,
    holdout: &Dataset,
    batch: usize,
    seed: u64,
) -> Result<Vec<Vec<f64>>> {
    let groups = players(graph);
    match method {
        Baseline::Magnitude => Ok(groups.iter().map(|g| magnitudes(graph, g)).collect()),
        Baseline::Slimming => Ok(groups
            .iter()
            .map(|g| {
                let (scales, _) = slimming_scales(graph, g);
                (0..g.channels)
                    .map(|c| {
                        scales
                            .iter()
                            .map(|&p| (graph.params()[p].value[c] as f64).abs())
                            .sum()
                    })
                    .collect()
            })
            .collect()),
        Baseline::Random => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            Ok(groups
                .iter()
                .map(|g| {
                    let mut order: Vec<usize> = (0..g.channels).collect();
                    order.shuffle(&mut rng);
                    let mut s = vec![0.0; g.channels];
                    for (rank, &i) in order.iter().enumerate() {
                        s[i] = rank as f64;
                    }
                    s
                })
                .collect())
        }
        // The shape alone matters: every channel scores the same.
        Baseline::Scratch => Ok(groups.iter().map(|g| vec![0.0; g.channels]).collect()),
        Baseline::Taylor => taylor(graph, &groups, holdout, batch),
    }
}

/// Molchanov et al.'s importance `(s ∂L/∂s)²` per minibatch, averaged over `data`.
fn taylor(
    graph: &Graph,
    groups: &[ChannelGroup],
    data: &Dataset,
    batch: usize,
) -> Result<Vec<Vec<f64>>> {
    let mut sums: Vec<Vec<f64>> = groups.iter().map(|g| vec![0.0; g.channels]).collect();
    let mut batches = 0usize;
    for_each_batch_gradient(graph, data, batch, |grads, _| {
        for (acc, g) in sums.iter_mut().zip(groups) {
            let s = gates(graph, g);
            for ((a, &d), &v) in acc.iter_mut().zip(gate_gradient(grads, g)).zip(s) {
                *a += (d as f64 * v as f64).powi(2);
            }
        }
        batches += 1;
    })?;
    for acc in sums.iter_mut() {
        acc.iter_mut().for_each(|a| *a /= batches.max(1) as f64);
    }
    Ok(sums)
}

/// Keeps the `counts[k]` highest-scoring channels of the `k`-th player group (ties: lower
/// index) and removes the others; gates are folded first, so the result has every gate at 1.
pub fn prune_to_counts(graph: &Graph, scores: &[Vec<f64>], counts: &[usize]) -> Result<Graph> {
    let names: Vec<String> = players(graph).into_iter().map(|g| g.name).collect();
    if scores.len() != names.len() || counts.len() != names.len() {
        return Err(Error::LengthMismatch {
            field: "per-group counts".into(),
            expected: names.len(),
            got: counts.len().min(scores.len()),
        });
    }
    let mut g = graph.clone();
    g.fold_gates_forward()?;
    for ((name, s), &k) in names.iter().zip(scores).zip(counts) {
        let n = s.len();
        if k == 0 || k > n {
            return Err(Error::invalid(
                "kept count",
                format!("group {name}: {k} not in 1..={n}"),
            ));
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
        let mut keep: Vec<usize> = order[..k].to_vec();
        keep.sort_unstable();
        let group = player(&g, name)?;
        let plan = RemovalPlan::new(&g, &group, keep)?;
        g.remove_channels(&plan)?;
    }
    Ok(g)
}

/// A trainer of `graph` with `fc`, distilling from `teacher` if given.
pub(crate) fn trainer(
    graph: Graph,
    fc: FitConfig,
    teacher: Option<(&Graph, Distill)>,
) -> Result<Trainer> {
    let mut t = Trainer::new(graph, fc)?;
    if let Some((g, d)) = teacher {
        t.set_teacher(g.clone(), d)?;
    }
    Ok(t)
}

/// Fine-tunes `graph`'s weights for `epochs` epochs (gates folded first, then fixed at 1) at
/// `finetune_lr_scale` times the training rate, distilling from `teacher` if given
/// ([`PruneConfig::teacher`]).
pub fn finetune(
    graph: &Graph,
    train: &Dataset,
    config: &PruneConfig,
    epochs: usize,
    teacher: Option<(&Graph, Distill)>,
) -> Result<Graph> {
    let mut fc = config.train_config(epochs);
    fc.seed = config.seed.wrapping_add(1);
    fc.optimizer = fc
        .optimizer
        .scaled_lr(config.training.finetune_lr_scale as f32);
    train_folded(graph, train, fc, None, teacher)
}

/// Trains `graph`'s weights with `fc` after folding its gates into the weights after them
/// ([`Graph::fold_gates_forward`]; fixed at 1 from then on), distilling from `teacher` if
/// given; with `checkpoint = Some((file, resume))`, checkpointed into `file` and, with
/// `resume`, continued from it.
pub(crate) fn train_folded(
    graph: &Graph,
    train: &Dataset,
    fc: FitConfig,
    checkpoint: Option<(&Path, bool)>,
    teacher: Option<(&Graph, Distill)>,
) -> Result<Graph> {
    let mut g = graph.clone();
    g.fold_gates_forward()?;
    if fc.epochs == 0 {
        return Ok(g);
    }
    match checkpoint {
        Some((file, resume)) => train_resumable(g, train, fc, file, resume, teacher),
        None => {
            let mut t = trainer(g, fc, teacher)?;
            t.run(train, &mut (), None)?;
            Ok(t.into_graph())
        }
    }
}

/// Trains `graph` with `fc`, distilling from `teacher` if given, checkpointing into
/// `checkpoint` after every epoch; with `resume`, continues from it (which must have been
/// written with the same settings and teacher: the trainer refuses another).
pub(crate) fn train_resumable(
    graph: Graph,
    train: &Dataset,
    fc: FitConfig,
    checkpoint: &Path,
    resume: bool,
    teacher: Option<(&Graph, Distill)>,
) -> Result<Graph> {
    let mut t = if resume && checkpoint.is_file() {
        let mut t = Trainer::resume(checkpoint)?;
        if t.config() != &fc {
            return Err(Error::ResumeMismatch {
                path: checkpoint.to_path_buf(),
                message: "the checkpoint was written with other training settings".into(),
            });
        }
        if let Some((g, d)) = teacher {
            t.set_teacher(g.clone(), d)?;
        }
        t
    } else {
        trainer(graph, fc, teacher)?
    };
    t.run(train, &mut (), Some(checkpoint))?;
    Ok(t.into_graph())
}

/// Network slimming's training of `graph` from its initialisation with the dense budget:
/// the L1 penalty `λ` on every player group's scales (see [`Baseline::Slimming`]), on the
/// plain loss (it trains the whole network before pruning, as the game's play does). Returns
/// the trained network with its gates back to being gates.
pub fn train_slimming(
    graph: &Graph,
    train: &Dataset,
    config: &PruneConfig,
    lambda: f64,
) -> Result<Graph> {
    let mut g = graph.clone();
    let mut params = Vec::new();
    for group in players(&g) {
        let (scales, nonnegative) = slimming_scales(&g, &group);
        params.extend(scales.into_iter().map(|p| (p, nonnegative)));
    }
    for &(p, _) in &params {
        g.params[p].kind = ParamKind::Weight;
    }
    let mut t = Trainer::new(g, config.train_config(config.training.epochs))?;
    t.set_penalty(L1Penalty {
        params: params.clone(),
        lambda: lambda as f32,
    })?;
    t.run(train, &mut (), None)?;
    let mut g = t.into_graph();
    for (p, gate) in params {
        if gate {
            g.params[p].kind = ParamKind::Gate;
        }
    }
    Ok(g)
}
