//! The participation game of one layer, built from measurements of the network.
//!
//! Benefits `b_i = −∂L/∂s_i` are averaged over held-out batches (T8), self costs are
//! `a_i = α‖θ_i‖²` with `θ_i` = incoming row, bias and outgoing weights, the participation
//! cost is `γ` and the competition `C = βR` (zero diagonal). The pruner never solves the
//! game for training; it uses it for certificates (T3/T4), the equilibrium-gap metric and
//! the calibration of `γ` in target mode.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::config::Redundancy;
use crate::dominance::{iterated_elimination, provably_pruned, EliminationOptions};
use crate::error::{Error, Result};
use crate::game::{nash_gap, natural_residual, Competition, Game, PruningGame};
use crate::nn::surgery::ColumnMap;
use crate::nn::{Dataset, Gradients, LossStats, Model, Workspace};

/// `−∂L/∂s` of every gated layer averaged over `data` (in batches of `batch`), and the loss.
pub fn measure_benefits(
    model: &Model,
    data: &Dataset,
    batch: usize,
) -> Result<(Vec<DVector<f64>>, LossStats)> {
    let layers = model.gated_layers();
    let b = batch.max(1).min(data.len());
    let mut ws = Workspace::new(model, b);
    let mut grads = Gradients::new(model);
    let mut sums: Vec<DVector<f64>> = layers
        .iter()
        .map(|&l| DVector::zeros(model.gate(l).map_or(0, |g| g.len())))
        .collect();
    let n = model.input_len();
    let mut total = LossStats::default();
    let mut start = 0;
    while start < data.len() {
        let end = (start + b).min(data.len());
        let m = end - start;
        let x = &data.inputs()[start * n..end * n];
        let y = &data.labels()[start..end];
        let s = model.loss_and_grad(&mut ws, x, y, &mut grads)?;
        for (acc, &l) in sums.iter_mut().zip(&layers) {
            if let Some(g) = grads.gate(l) {
                for (a, &v) in acc.iter_mut().zip(g.iter()) {
                    *a -= v as f64 * m as f64;
                }
            }
        }
        total.loss += s.loss * m as f64;
        total.correct += s.correct;
        total.count += m;
        start = end;
    }
    let count = total.count.max(1) as f64;
    for acc in sums.iter_mut() {
        *acc /= count;
    }
    total.loss /= count;
    Ok((sums, total))
}

/// Squared outgoing-weight norm of every unit of gated `layer` (0 if nothing reads it).
pub fn outgoing_norms_sq(model: &Model, layer: usize) -> Result<Vec<f64>> {
    let units = model.gate(layer)?.len();
    let Some(next) = model.next_weight_layer(layer) else {
        return Ok(vec![0.0; units]);
    };
    let map: ColumnMap = crate::nn::surgery::consumer_columns(model, layer, next)?;
    let w = match model.layers()[next].params() {
        Some((w, _)) => w,
        None => return Ok(vec![0.0; units]),
    };
    Ok((0..units)
        .map(|u| {
            map.of(u)
                .map(|c| w.column(c).iter().map(|&v| (v as f64).powi(2)).sum::<f64>())
                .sum()
        })
        .collect())
}

/// `‖θ_i‖²` of every unit of gated `layer`: incoming row, bias and outgoing weights.
pub fn unit_norms_sq(model: &Model, layer: usize) -> Result<Vec<f64>> {
    let w = model.incoming_weights(layer)?;
    let bias = match model.layers()[layer].params() {
        Some((_, b)) => b.clone(),
        None => DVector::zeros(w.nrows()),
    };
    let out = outgoing_norms_sq(model, layer)?;
    Ok((0..w.nrows())
        .map(|i| {
            w.row(i).iter().map(|&v| (v as f64).powi(2)).sum::<f64>()
                + (bias[i] as f64).powi(2)
                + out[i]
        })
        .collect())
}

/// `|cos|` between the incoming weight rows of a layer (zero diagonal; zero rows give 0).
pub fn weight_cosine(w: &DMatrix<f32>) -> DMatrix<f64> {
    let w = w.map(|v| v as f64);
    let norms: Vec<f64> = (0..w.nrows()).map(|i| w.row(i).norm()).collect();
    let gram = &w * w.transpose();
    DMatrix::from_fn(w.nrows(), w.nrows(), |i, j| {
        let d = norms[i] * norms[j];
        if i == j || d <= 0.0 {
            0.0
        } else {
            (gram[(i, j)] / d).abs().min(1.0)
        }
    })
}

/// `|corr|` between the columns of an activation matrix (rows are samples; zero diagonal;
/// a constant column is uncorrelated with everything).
pub fn activation_correlation(a: &DMatrix<f32>) -> DMatrix<f64> {
    let (rows, cols) = (a.nrows(), a.ncols());
    let mut c = a.map(|v| v as f64);
    for j in 0..cols {
        let mean = c.column(j).sum() / rows.max(1) as f64;
        c.column_mut(j).add_scalar_mut(-mean);
    }
    let norms: Vec<f64> = (0..cols).map(|j| c.column(j).norm()).collect();
    let gram = c.transpose() * &c;
    DMatrix::from_fn(cols, cols, |i, j| {
        let d = norms[i] * norms[j];
        if i == j || d <= 1e-12 {
            0.0
        } else {
            (gram[(i, j)] / d).abs().min(1.0)
        }
    })
}

/// The redundancy matrix of gated `layer` measured as `kind` (`probe`: held-out inputs for
/// activation correlation, `[rows, input_len]`).
pub fn redundancy(
    model: &Model,
    layer: usize,
    kind: Redundancy,
    probe: &[f32],
    rows: usize,
) -> Result<DMatrix<f64>> {
    match kind {
        Redundancy::WeightCosine => Ok(weight_cosine(model.incoming_weights(layer)?)),
        Redundancy::ActivationCorrelation => {
            let mut ws = Workspace::new(model, rows);
            let a = model.activations(&mut ws, probe, rows, layer)?;
            Ok(activation_correlation(&a))
        }
    }
}

/// A layer's game from its measurements: `b`, `a = α‖θ‖²`, `γ`, `C = βR`.
pub fn layer_game(
    benefit: &DVector<f64>,
    norms_sq: &[f64],
    alpha: f64,
    gamma: f64,
    beta: f64,
    r: &DMatrix<f64>,
) -> Result<PruningGame> {
    let n = benefit.len();
    if norms_sq.len() != n || r.nrows() != n || r.ncols() != n {
        return Err(Error::LengthMismatch {
            field: "layer game measurements".into(),
            expected: n,
            got: norms_sq.len().min(r.nrows()),
        });
    }
    let a = DVector::from_iterator(n, norms_sq.iter().map(|v| alpha * v));
    let competition = if beta > 0.0 {
        Competition::dense(r * beta)?
    } else {
        Competition::None
    };
    PruningGame::with_uniform_cost(benefit.clone(), a, gamma, competition)
}

/// Certificates of a profile of one layer's game.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerGap {
    /// Layer index.
    pub layer: usize,
    /// Units in the layer.
    pub units: usize,
    /// Natural residual `‖s − Π(s − F(s))‖_∞` with benefits measured on held-out data.
    #[serde(with = "super::nan_serde::scalar")]
    pub natural_residual: f64,
    /// The same with benefits measured on a fixed training subset (the distribution the
    /// gates play on; NaN if not measured).
    #[serde(with = "super::nan_serde::scalar")]
    pub natural_residual_train: f64,
    /// Mean absolute gate change since the previous evaluation (NaN at the first).
    #[serde(with = "super::nan_serde::scalar")]
    pub drift: f64,
    /// Nash gap.
    #[serde(with = "super::nan_serde::scalar")]
    pub nash_gap: f64,
    /// Mean gate.
    #[serde(with = "super::nan_serde::scalar")]
    pub mean_gate: f64,
    /// Mean norm of the units' outgoing weights (NaN if not measured): with the scale
    /// symmetry unbroken it grows while the gates sink, the drift the symmetry breaking stops.
    #[serde(with = "super::nan_serde::scalar", default = "f64_nan")]
    pub mean_outgoing_norm: f64,
}

fn f64_nan() -> f64 {
    f64::NAN
}

/// Natural residual and Nash gap of `profile` in `game`.
pub fn layer_gap(layer: usize, game: &PruningGame, profile: &[f64]) -> LayerGap {
    LayerGap {
        layer,
        units: profile.len(),
        natural_residual: natural_residual(game, profile),
        natural_residual_train: f64::NAN,
        drift: f64::NAN,
        nash_gap: nash_gap(game, profile),
        mean_gate: profile.iter().sum::<f64>() / profile.len().max(1) as f64,
        mean_outgoing_norm: f64::NAN,
    }
}

/// T3/T4 analysis of a layer's game.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dominance {
    /// `q_i < 0` (T3).
    pub t3: Vec<bool>,
    /// Pruned in every equilibrium by T3 or T4 ([`crate::dominance::provably_pruned`]).
    pub dominated: Vec<bool>,
    /// `γ + Σ_j C_ij L_j` with `L` the T4 lower bounds: the smallest cost the unit faces in
    /// any equilibrium.
    pub cost_bound: Vec<f64>,
}

/// T3/T4 from the dominance module, plus each unit's equilibrium cost bound.
pub(crate) fn dominated(game: &PruningGame) -> Result<Dominance> {
    let n = game.num_players();
    let q = game.net_benefit();
    let mut dominated = vec![false; n];
    for i in provably_pruned(game) {
        dominated[i] = true;
    }
    let bounds = iterated_elimination(game, &EliminationOptions::default())?;
    let p_lo = game.competition_pressure(&bounds.lower);
    let gamma = game.participation_cost();
    Ok(Dominance {
        t3: (0..n).map(|i| q[i] < 0.0).collect(),
        dominated,
        cost_bound: (0..n).map(|i| gamma[i] + p_lo[i]).collect(),
    })
}

/// An approximate equilibrium by projected gradient play `s ← Π(s − τF(s))` with
/// `τ = 1/‖M‖_F` (a Lipschitz bound), from `s = u`; used to predict how many units a `γ`
/// keeps. Returns the profile.
pub(crate) fn approximate_equilibrium(game: &PruningGame, iterations: usize) -> Vec<f64> {
    let n = game.num_players();
    let c = game.competition().to_dense(n);
    let a = game.self_cost();
    let lip = (c.norm_squared() + a.norm_squared()).sqrt().max(1e-12);
    let tau = 1.0 / lip;
    let mut s: Vec<f64> = game.upper_bounds().iter().copied().collect();
    let mut f = vec![0.0; n];
    for _ in 0..iterations {
        game.pseudo_gradient(&s, &mut f);
        let mut change = 0.0f64;
        for i in 0..n {
            let new = (s[i] - tau * f[i]).clamp(0.0, game.upper(i));
            change = change.max((new - s[i]).abs());
            s[i] = new;
        }
        if change < 1e-10 {
            break;
        }
    }
    s
}
