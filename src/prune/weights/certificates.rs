//! Certificates of the weight game at its end: each layer's game, measured on held-out data,
//! as a sparse [`PruningGame`] with one player per weight, analysed by T3 and T4.
//!
//! Benefits are `b = −w·∂L/∂θ` with the held-out gradient averaged over the held-out set
//! (a weight that left reads as `w = −sign(∂L/∂θ)·r`, so its benefit is what re-entering
//! would gain), self costs `α w²`, the participation cost the layer's `γ`, and the
//! competition `C_(o,i),(o,j) = γ β R_ij`. The report keeps per-layer counts and a margin
//! histogram; every weight's figures go to a binary file.

use std::collections::HashMap;
use std::path::Path;

use nalgebra::{DMatrix, DVector};
use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};

use super::layers::WeightLayer;
use super::pruner::{split, LayerState, WeightPruner};
use crate::error::{Error, Result};
use crate::game::{Competition, CsrMatrix, PruningGame};
use crate::io::write_atomic;
use crate::nn::data::Dataset;
use crate::nn::graph::train::for_each_batch_gradient;
use crate::nn::graph::{Graph, GraphGrads};
use crate::nn::safetensors_io::serialize;
use crate::prune::layer_game::dominated;

/// Upper edges of the margin histogram's bins, in units of the layer's price `γ`; the last
/// bin is open.
pub const MARGIN_BINS: [f64; 6] = [-1.0, -0.5, 0.0, 0.5, 1.0, 2.0];

/// One layer's certificates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightLayerCertificates {
    /// The weight's name.
    pub name: String,
    /// Weights of the layer.
    pub weights: usize,
    /// Weights still playing at the end.
    pub kept: usize,
    /// The layer's price `γ`.
    pub gamma: f64,
    /// Weights that left and are proved zero in every equilibrium of the measured game
    /// (T3 or T4).
    pub removed_dominated: usize,
    /// Of those, by T3 alone (`b ≤ γ`: zero is dominant whatever the others do).
    pub removed_t3: usize,
    /// Weights that left whose held-out benefit is at most their cost bound.
    pub removed_below_cost: usize,
    /// Weights still playing that the measured game proves should leave.
    pub kept_dominated: usize,
    /// Counts of removed weights by margin `(cost − benefit)/γ`, bins edged by
    /// [`MARGIN_BINS`] (`len + 1` bins).
    pub removed_margins: Vec<usize>,
}

/// Every weight's figures for one layer, column-major as the weight.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightDetail {
    /// Held-out benefit `b`.
    pub benefit: Vec<f32>,
    /// The smallest cost the weight faces in any equilibrium, `γ + Σ_j C_ij L_j` with `L`
    /// the T4 lower bounds.
    pub cost: Vec<f32>,
    /// Bit 0: left the game; bit 1: dominated by T3; bit 2: zero in every equilibrium.
    pub status: Vec<u8>,
}

/// Bits of [`WeightDetail::status`].
pub const LEFT: u8 = 1;
/// T3 dominance.
pub const T3: u8 = 2;
/// Zero in every equilibrium (T3 or T4).
pub const DOMINATED: u8 = 4;

/// Mean gradient of every parameter over `data` in batches of `batch` (evaluation mode).
pub fn mean_gradients(graph: &Graph, data: &Dataset, batch: usize) -> Result<Vec<DMatrix<f32>>> {
    let mut sums: Vec<DMatrix<f32>> = GraphGrads::new(graph).values().to_vec();
    sums.iter_mut().for_each(|m| m.fill(0.0));
    for_each_batch_gradient(graph, data, batch, |grads, rows| {
        let weight = rows as f32 / data.len() as f32;
        for (s, g) in sums.iter_mut().zip(grads.values()) {
            *s += g * weight;
        }
    })?;
    Ok(sums)
}

/// The measured game of one layer.
pub fn layer_game(
    layer: &WeightLayer,
    state: &LayerState,
    theta: &[f32],
    grad: &[f32],
    alpha: f64,
    beta: f64,
) -> Result<PruningGame> {
    let (rows, n) = (layer.rows, layer.len());
    let mut benefit = DVector::zeros(n);
    let mut self_cost = DVector::zeros(n);
    for k in 0..n {
        let (_, w) = split(theta[k], state.reference[k % rows], grad[k]);
        benefit[k] = -(w as f64) * grad[k] as f64;
        self_cost[k] = alpha * (w as f64).powi(2);
    }
    let scale = state.gamma * beta;
    let competition = if scale > 0.0 && state.neighbours.nnz() > 0 {
        // Player `k = i·rows + o` competes with `j·rows + o` for every partner `j` of `i`.
        let r = &state.neighbours;
        let mut offsets = Vec::with_capacity(n + 1);
        let mut columns = Vec::with_capacity(rows * r.nnz());
        let mut values = Vec::with_capacity(rows * r.nnz());
        offsets.push(0);
        for i in 0..layer.cols {
            for o in 0..rows {
                for (j, v) in r.of(i) {
                    let col = j * rows + o;
                    columns.push(u32::try_from(col).map_err(|_| {
                        Error::invalid(&layer.name, "more than 2^32 weights in one layer")
                    })?);
                    values.push(scale * v as f64);
                }
                offsets.push(columns.len());
            }
        }
        Competition::Sparse(CsrMatrix::from_csr(n, offsets, columns, values)?)
    } else {
        Competition::None
    };
    PruningGame::with_uniform_cost(benefit, self_cost, state.gamma, competition)
}

/// Every layer's certificates and per-weight detail for the pruner's final state on `graph`,
/// measured on `holdout`.
pub fn certify(
    pruner: &WeightPruner,
    graph: &Graph,
    holdout: &Dataset,
    batch: usize,
) -> Result<(Vec<WeightLayerCertificates>, Vec<WeightDetail>)> {
    let grads = mean_gradients(graph, holdout, batch)?;
    let game = pruner.game();
    let mut summaries = Vec::new();
    let mut details = Vec::new();
    for (l, st) in pruner.layers().iter().zip(pruner.states()) {
        let theta = graph.params[l.param].value.as_slice();
        let g = layer_game(
            l,
            st,
            theta,
            grads[l.param].as_slice(),
            game.alpha,
            game.beta,
        )?;
        let d = dominated(&g)?;
        let mut detail = WeightDetail {
            benefit: g.benefit().iter().map(|&v| v as f32).collect(),
            cost: d.cost_bound.iter().map(|&v| v as f32).collect(),
            status: vec![0; l.len()],
        };
        let mut summary = WeightLayerCertificates {
            name: l.name.clone(),
            weights: l.len(),
            kept: st.kept(),
            gamma: st.gamma,
            removed_dominated: 0,
            removed_t3: 0,
            removed_below_cost: 0,
            kept_dominated: 0,
            removed_margins: vec![0; MARGIN_BINS.len() + 1],
        };
        for k in 0..l.len() {
            let left = !st.alive[k];
            let bits =
                (left as u8 * LEFT) | (d.t3[k] as u8 * T3) | (d.dominated[k] as u8 * DOMINATED);
            detail.status[k] = bits;
            if left {
                let b = g.benefit()[k];
                summary.removed_dominated += d.dominated[k] as usize;
                summary.removed_t3 += d.t3[k] as usize;
                summary.removed_below_cost += (b <= d.cost_bound[k]) as usize;
                let margin = (d.cost_bound[k] - b) / st.gamma.max(f64::MIN_POSITIVE);
                let bin = MARGIN_BINS
                    .iter()
                    .position(|&e| margin < e)
                    .unwrap_or(MARGIN_BINS.len());
                summary.removed_margins[bin] += 1;
            } else {
                summary.kept_dominated += d.dominated[k] as usize;
            }
        }
        summaries.push(summary);
        details.push(detail);
    }
    Ok((summaries, details))
}

/// Writes every layer's [`WeightDetail`] to `path` as safetensors: `{name}.benefit` and
/// `{name}.cost` (`f32`) and `{name}.status` (`u8`), each shaped `[out, in]` (conv:
/// `[out, in·k·k]`) row-major like PyTorch's weight.
pub fn write_details(path: &Path, layers: &[WeightLayer], details: &[WeightDetail]) -> Result<()> {
    let mut tensors = Vec::new();
    for (l, d) in layers.iter().zip(details) {
        let shape = vec![l.rows, l.cols];
        let row_major = |k: usize| (k % l.cols) * l.rows + k / l.cols;
        let floats = |v: &[f32]| -> Vec<u8> {
            (0..v.len())
                .flat_map(|k| v[row_major(k)].to_le_bytes())
                .collect()
        };
        let stem = l.name.trim_end_matches(".weight");
        tensors.push((
            format!("{stem}.benefit"),
            Dtype::F32,
            shape.clone(),
            floats(&d.benefit),
        ));
        tensors.push((
            format!("{stem}.cost"),
            Dtype::F32,
            shape.clone(),
            floats(&d.cost),
        ));
        let status = (0..d.status.len())
            .map(|k| d.status[row_major(k)])
            .collect();
        tensors.push((format!("{stem}.status"), Dtype::U8, shape, status));
    }
    let meta = HashMap::from([(
        "status_bits".to_string(),
        "1 = left the game, 2 = dominated by T3, 4 = zero in every equilibrium".to_string(),
    )]);
    let bytes = serialize(&tensors, meta)?;
    write_atomic(path, |w| w.write_all(&bytes))
}
