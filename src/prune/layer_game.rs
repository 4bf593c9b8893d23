//! The participation game of one player group, built from measurements of the network.
//!
//! Benefits `b_i = −∂L/∂s_i` are averaged over held-out batches (T8), self costs are
//! `a_i = α‖θ_i‖²` with `θ_i` all of the channel's parameters ([`super::players`]), the
//! participation cost is `γ` and the competition `C = βR` (zero diagonal). The pruner never
//! solves the game for training; it uses it for certificates (T3/T4), the equilibrium-gap
//! metric and, in target mode, to predict how many channels a price keeps: the equilibrium
//! of the measured game from the semismooth Newton solver, with its certificate.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::dominance::{iterated_elimination, provably_pruned, EliminationOptions};
use crate::equilibrium::{solve, SolveOptions, SolverKind};
use crate::error::{Error, Result};
use crate::game::{nash_gap, natural_residual, Competition, Game, PruningGame};

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

/// Certificates of a profile of one group's game.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerGap {
    /// The player group (its first producer's name).
    pub group: String,
    /// Channels in the group.
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
pub fn layer_gap(group: &str, game: &PruningGame, profile: &[f64]) -> LayerGap {
    LayerGap {
        group: group.to_string(),
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

/// Tolerance on the natural residual of a predicted equilibrium: far below any gate value
/// that matters (gates are `f32`, their steps `η_s ≥ 1e-3` times a benefit), and reached by
/// Newton's finite active-set identification in a few iterations on these small games.
const PREDICTION_TOLERANCE: f64 = 1e-10;
/// Newton iterations allowed (each one a linear solve on the active set).
const PREDICTION_ITERATIONS: usize = 200;

/// The predicted equilibrium of a measured game: the semismooth Newton solution from
/// `s = u`, and its natural residual (the certificate: small means the profile is an
/// equilibrium of the measured game to that accuracy).
pub(crate) fn predicted_equilibrium(game: &PruningGame) -> Result<(Vec<f64>, f64)> {
    let options = SolveOptions::new(PREDICTION_TOLERANCE, PREDICTION_ITERATIONS);
    let solution = solve(game, SolverKind::Newton, &options)?;
    let residual = solution.report.certificate.natural_residual;
    Ok((solution.profile, residual))
}
