//! The quadratic pruning game (docs/mathematics.md, the pruning game).

use nalgebra::DVector;
use rayon::prelude::*;

use super::validate::{competition_size, finite_per_player, non_negative, positive};
use super::{clamp_gain, Competition, Game};
use crate::error::{Error, Result};

/// `U_i(s) = b_i s_i − (a_i/2) s_i² − γ_i s_i − s_i Σ_{j≠i} C_ij s_j` on `s_i ∈ [0, u_i]`.
///
/// With `q = b − γ` and `M = diag(a) + C` the pseudo-gradient is `F(s) = M s − q`, so an
/// equilibrium solves a box-constrained linear complementarity problem. All parameters are
/// validated once, in [`PruningGame::new`]; the type cannot hold a malformed game.
#[derive(Debug, Clone, PartialEq)]
pub struct PruningGame {
    benefit: DVector<f64>,
    self_cost: DVector<f64>,
    participation_cost: DVector<f64>,
    upper: DVector<f64>,
    competition: Competition,
    net_benefit: DVector<f64>,
    symmetric: SymmetryMemo,
}

/// Whether `C = Cᵀ`, worked out on first use: the check is a pass over `C` (25 ms at dense
/// N = 4000) that the solver, the bounds and the analysis each need. Equal games compare
/// equal whether or not either has worked it out.
#[derive(Debug, Clone, Default)]
struct SymmetryMemo(std::sync::OnceLock<bool>);

impl PartialEq for SymmetryMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl PruningGame {
    /// Builds and validates a game.
    ///
    /// All vectors must have one finite entry per player (the length of `benefit`);
    /// `self_cost`, `participation_cost` and `C` must be non-negative, `upper` positive, and
    /// `C` square of the same size with a zero diagonal.
    pub fn new(
        benefit: DVector<f64>,
        self_cost: DVector<f64>,
        participation_cost: DVector<f64>,
        upper: DVector<f64>,
        competition: Competition,
    ) -> Result<Self> {
        let players = benefit.len();
        if players == 0 {
            return Err(Error::EmptyGame);
        }
        finite_per_player("benefit", &benefit, players)?;
        finite_per_player("self_cost", &self_cost, players)?;
        non_negative("self_cost", &self_cost)?;
        finite_per_player("participation_cost", &participation_cost, players)?;
        non_negative("participation_cost", &participation_cost)?;
        finite_per_player("upper", &upper, players)?;
        positive("upper", &upper)?;
        competition_size(&competition, players)?;
        let net_benefit = &benefit - &participation_cost;
        Ok(PruningGame {
            benefit,
            self_cost,
            participation_cost,
            upper,
            competition,
            net_benefit,
            symmetric: SymmetryMemo::default(),
        })
    }

    /// The game with its symmetry already known (a reader that checked it on the way in).
    pub(crate) fn with_known_symmetry(self, symmetric: bool) -> Self {
        debug_assert_eq!(symmetric, self.competition.is_symmetric());
        let _ = self.symmetric.0.set(symmetric);
        self
    }

    /// Whether `C` is symmetric (the game then has an exact potential, T5); checked once.
    pub fn is_symmetric(&self) -> bool {
        *self
            .symmetric
            .0
            .get_or_init(|| self.competition.is_symmetric())
    }

    /// A game with scalar participation cost `gamma` and unit upper bounds.
    pub fn with_uniform_cost(
        benefit: DVector<f64>,
        self_cost: DVector<f64>,
        gamma: f64,
        competition: Competition,
    ) -> Result<Self> {
        let n = benefit.len();
        Self::new(
            benefit,
            self_cost,
            DVector::from_element(n, gamma),
            DVector::from_element(n, 1.0),
            competition,
        )
    }

    /// Benefits `b`.
    pub fn benefit(&self) -> &DVector<f64> {
        &self.benefit
    }

    /// Self costs `a` (the diagonal of `M`).
    pub fn self_cost(&self) -> &DVector<f64> {
        &self.self_cost
    }

    /// Participation costs `γ`.
    pub fn participation_cost(&self) -> &DVector<f64> {
        &self.participation_cost
    }

    /// Upper bounds `u`.
    pub fn upper_bounds(&self) -> &DVector<f64> {
        &self.upper
    }

    /// The competition matrix `C`.
    pub fn competition(&self) -> &Competition {
        &self.competition
    }

    /// Net benefits `q = b − γ`: `F(s) = M s − q`.
    pub fn net_benefit(&self) -> &DVector<f64> {
        &self.net_benefit
    }

    /// `C s`.
    pub fn competition_pressure(&self, profile: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; profile.len()];
        self.competition.mul_vec(profile, &mut out);
        out
    }

    /// Best response of player `i` facing competition pressure `pressure = Σ_j C_ij s_j`.
    ///
    /// `Π_[0,u_i]((q_i − pressure)/a_i)` when `a_i > 0`. When `a_i = 0` the utility is linear
    /// in `s_i`: `u_i` if the slope is positive, `0` if negative; with a zero slope every point
    /// is a best response and `current` (clamped to the box) is kept, so that iterations do
    /// not jump between equally good points.
    pub fn best_response_to_pressure(&self, i: usize, pressure: f64, current: f64) -> f64 {
        let slope = self.net_benefit[i] - pressure;
        let a = self.self_cost[i];
        let u = self.upper[i];
        if a > 0.0 {
            (slope / a).clamp(0.0, u)
        } else if slope > 0.0 {
            u
        } else if slope < 0.0 {
            0.0
        } else {
            current.clamp(0.0, u)
        }
    }

    /// `U_i(own)` given the competition pressure on `i`.
    pub fn utility_with_pressure(&self, i: usize, own: f64, pressure: f64) -> f64 {
        own * (self.net_benefit[i] - pressure) - 0.5 * self.self_cost[i] * own * own
    }

    /// The exact potential `Φ(s) = qᵀs − ½ sᵀ M s`.
    ///
    /// It is a potential of the game (T5) only when `C` is symmetric; for other games the
    /// value is still computed but carries no meaning.
    pub fn potential(&self, profile: &[f64]) -> f64 {
        let pressure = self.competition_pressure(profile);
        crate::parallel::ordered_sum(profile.len(), |i| {
            let s = profile[i];
            s * self.net_benefit[i] - 0.5 * s * (self.self_cost[i] * s + pressure[i])
        })
    }
}

impl Game for PruningGame {
    fn num_players(&self) -> usize {
        self.benefit.len()
    }

    fn upper(&self, i: usize) -> f64 {
        self.upper[i]
    }

    fn utility(&self, i: usize, own: f64, profile: &[f64]) -> f64 {
        self.utility_with_pressure(i, own, self.competition.row_dot(i, profile))
    }

    fn own_gradient(&self, i: usize, own: f64, profile: &[f64]) -> f64 {
        self.net_benefit[i] - self.self_cost[i] * own - self.competition.row_dot(i, profile)
    }

    fn best_response(&self, i: usize, profile: &[f64]) -> f64 {
        self.best_response_to_pressure(i, self.competition.row_dot(i, profile), profile[i])
    }

    fn pseudo_gradient(&self, profile: &[f64], out: &mut [f64]) {
        self.competition.mul_vec(profile, out);
        out.par_iter_mut()
            .enumerate()
            .with_min_len(crate::parallel::ELEMENTS_PER_TASK)
            .for_each(|(i, o)| {
                *o += self.self_cost[i] * profile[i] - self.net_benefit[i];
            });
    }

    fn best_responses(&self, profile: &[f64], out: &mut [f64]) {
        self.competition.mul_vec(profile, out);
        out.par_iter_mut()
            .enumerate()
            .with_min_len(crate::parallel::ELEMENTS_PER_TASK)
            .for_each(|(i, o)| {
                *o = self.best_response_to_pressure(i, *o, profile[i]);
            });
    }

    /// Closed form with a single product `C s`.
    fn deviation_gains(&self, profile: &[f64]) -> Vec<f64> {
        let pressure = self.competition_pressure(profile);
        profile
            .par_iter()
            .enumerate()
            .with_min_len(crate::parallel::ELEMENTS_PER_TASK)
            .map(|(i, &s)| {
                let best = self.best_response_to_pressure(i, pressure[i], s);
                clamp_gain(
                    self.utility_with_pressure(i, best, pressure[i])
                        - self.utility_with_pressure(i, s, pressure[i]),
                )
            })
            .collect()
    }
}
