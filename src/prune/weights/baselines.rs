//! Weight-level baselines, compared with the game at equal per-layer kept counts (global
//! magnitude: equal total count) and equal training budget, and the masked training they and
//! the game's network share.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::layers::WeightLayer;
use crate::error::Result;
use crate::nn::data::Dataset;
use crate::nn::graph::train::FitConfig;
use crate::nn::graph::{
    Graph, GraphGrads, GraphWorkspace, Mode, ParamId, StepHook, StepRecord, Trainer,
};
use crate::nn::Distill;

/// A weight pruning criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightBaseline {
    /// Layer-wise magnitude pruning (Han et al., "Learning both Weights and Connections for
    /// Efficient Neural Networks", NeurIPS 2015): the trained dense network keeps each
    /// layer's largest `|w|`, then retrains with the pruned weights held at 0.
    LayerMagnitude,
    /// Global magnitude pruning: one threshold on `|w|` across every layer at the game's total
    /// kept count (the layers' shares are the criterion's own).
    GlobalMagnitude,
    /// A seeded random choice of each layer's kept weights on the trained dense network.
    Random,
    /// SNIP (Lee et al., "SNIP: Single-shot Network Pruning based on Connection
    /// Sensitivity", ICLR 2019): at initialisation, keeps the weights of largest connection
    /// sensitivity `|w ∂L/∂w|` on one minibatch, then trains the sparse network from
    /// scratch. Published SNIP ranks globally; here each layer keeps the game's count, so
    /// the comparison is at equal per-layer sparsity.
    Snip,
    /// The game's kept weights trained from a fresh initialisation: the control of "is the
    /// pruned network more than its sparsity pattern?".
    Scratch,
}

impl WeightBaseline {
    /// Every baseline.
    pub const ALL: [WeightBaseline; 5] = [
        WeightBaseline::LayerMagnitude,
        WeightBaseline::GlobalMagnitude,
        WeightBaseline::Random,
        WeightBaseline::Snip,
        WeightBaseline::Scratch,
    ];

    /// Name used in reports and CSV files.
    pub fn name(&self) -> &'static str {
        match self {
            WeightBaseline::LayerMagnitude => "layer-magnitude",
            WeightBaseline::GlobalMagnitude => "global-magnitude",
            WeightBaseline::Random => "random",
            WeightBaseline::Snip => "snip",
            WeightBaseline::Scratch => "scratch",
        }
    }

    /// True if the criterion prunes at initialisation and trains the sparse network for the
    /// whole budget; otherwise it prunes the trained dense network and is fine-tuned.
    pub fn at_initialisation(&self) -> bool {
        matches!(self, WeightBaseline::Snip | WeightBaseline::Scratch)
    }
}

/// Which entries of each weight layer stay, column-major as the weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Masks(pub Vec<(ParamId, Vec<bool>)>);

impl Masks {
    /// Kept entries per layer.
    pub fn counts(&self) -> Vec<usize> {
        self.0
            .iter()
            .map(|(_, m)| m.iter().filter(|&&k| k).count())
            .collect()
    }

    /// Sets every pruned entry of `graph` to 0.
    pub fn apply(&self, graph: &mut Graph) {
        for (p, m) in &self.0 {
            for (v, &keep) in graph.params[*p].value.as_mut_slice().iter_mut().zip(m) {
                if !keep {
                    *v = 0.0;
                }
            }
        }
    }

    /// The pattern of non-zero entries of `graph`'s weight layers.
    pub fn nonzero(graph: &Graph, layers: &[WeightLayer]) -> Masks {
        Masks(
            layers
                .iter()
                .map(|l| {
                    let v = graph.params[l.param].value.as_slice();
                    (l.param, v.iter().map(|&x| x != 0.0).collect())
                })
                .collect(),
        )
    }
}

/// Holds pruned weights at 0 after every step.
struct MaskHook<'a>(&'a Masks);

impl StepHook for MaskHook<'_> {
    fn after_step(&mut self, trainer: &mut Trainer, _: &StepRecord) -> Result<()> {
        self.0.apply(trainer.graph_mut());
        Ok(())
    }
}

/// Trains `graph` with `fc`, the entries `masks` prunes held at 0 throughout, distilling
/// from `teacher` if given ([`PruneConfig::teacher`](crate::prune::PruneConfig::teacher)).
pub fn train_masked(
    graph: &Graph,
    masks: &Masks,
    train: &Dataset,
    fc: FitConfig,
    teacher: Option<(&Graph, Distill)>,
) -> Result<Graph> {
    let mut g = graph.clone();
    masks.apply(&mut g);
    if fc.epochs == 0 {
        return Ok(g);
    }
    let mut t = crate::prune::baselines::trainer(g, fc, teacher)?;
    t.run(train, &mut MaskHook(masks), None)?;
    Ok(t.into_graph())
}

/// Keeps the `count` highest scores of `scores` (ties: lower index).
fn top(scores: &[f64], count: usize) -> Vec<bool> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut keep = vec![false; scores.len()];
    for &i in order.iter().take(count) {
        keep[i] = true;
    }
    keep
}

/// The masks of `baseline` on `graph` (trained dense, or at initialisation for
/// [`WeightBaseline::at_initialisation`]), keeping `counts[l]` weights of layer `l`;
/// `batch` is SNIP's minibatch (the first samples of `data`), `seed` the random one's.
/// [`WeightBaseline::Scratch`] has no criterion of its own: its masks are the game's.
pub fn baseline_masks(
    baseline: WeightBaseline,
    graph: &Graph,
    layers: &[WeightLayer],
    counts: &[usize],
    data: &Dataset,
    batch: usize,
    seed: u64,
) -> Result<Masks> {
    let values = |l: &WeightLayer| graph.params[l.param].value.as_slice();
    let per_layer = |score: &dyn Fn(&WeightLayer) -> Vec<f64>| {
        Masks(
            layers
                .iter()
                .zip(counts)
                .map(|(l, &c)| (l.param, top(&score(l), c)))
                .collect(),
        )
    };
    Ok(match baseline {
        WeightBaseline::LayerMagnitude | WeightBaseline::Scratch => {
            per_layer(&|l| values(l).iter().map(|v| v.abs() as f64).collect())
        }
        WeightBaseline::GlobalMagnitude => {
            let all: Vec<f64> = layers
                .iter()
                .flat_map(|l| values(l).iter().map(|v| v.abs() as f64))
                .collect();
            let keep = top(&all, counts.iter().sum());
            let mut at = 0;
            Masks(
                layers
                    .iter()
                    .map(|l| {
                        let m = keep[at..at + l.len()].to_vec();
                        at += l.len();
                        (l.param, m)
                    })
                    .collect(),
            )
        }
        WeightBaseline::Random => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            Masks(
                layers
                    .iter()
                    .zip(counts)
                    .map(|(l, &c)| {
                        let mut order: Vec<usize> = (0..l.len()).collect();
                        order.shuffle(&mut rng);
                        let mut m = vec![false; l.len()];
                        order.iter().take(c).for_each(|&i| m[i] = true);
                        (l.param, m)
                    })
                    .collect(),
            )
        }
        WeightBaseline::Snip => {
            let m = batch.clamp(1, data.len().max(1));
            let mut ws = GraphWorkspace::new(graph, m);
            let mut grads = GraphGrads::new(graph);
            let n = graph.input_len();
            graph.loss_and_grad(
                &mut ws,
                &data.inputs()[..m * n],
                &data.labels()[..m],
                Mode::Train,
                &mut grads,
            )?;
            per_layer(&|l| {
                let g = grads.values()[l.param].as_slice();
                values(l)
                    .iter()
                    .zip(g)
                    .map(|(&w, &d)| (w as f64 * d as f64).abs())
                    .collect()
            })
        }
    })
}
