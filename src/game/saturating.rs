//! A non-quadratic game: saturating benefit, linear participation cost, competition.

use nalgebra::DVector;

use super::validate::{competition_size, finite_per_player, non_negative, positive};
use super::{Competition, Game};
use crate::error::{Error, Result};

/// `U_i(s) = v_i (1 − e^{−κ_i s_i}) − γ_i s_i − s_i Σ_{j≠i} C_ij s_j` on `[0, u_i]`.
///
/// The benefit saturates: the first units of participation pay most, as with a neuron whose
/// contribution to the loss has diminishing returns. Utilities are strictly concave in the
/// own strategy (`v_i, κ_i > 0`), so it is a valid [`Game`], but the best response is
/// not piecewise linear; [`Game::best_response`] therefore uses the default one-dimensional
/// optimiser, and [`SaturatingGame::best_response_closed_form`] is kept as an independent
/// check of it.
#[derive(Debug, Clone, PartialEq)]
pub struct SaturatingGame {
    value: DVector<f64>,
    rate: DVector<f64>,
    participation_cost: DVector<f64>,
    upper: DVector<f64>,
    competition: Competition,
}

impl SaturatingGame {
    /// Builds and validates a game: `value`, `rate` and `upper` positive, `participation_cost`
    /// non-negative, all finite and of one length; `competition` as for the pruning game.
    pub fn new(
        value: DVector<f64>,
        rate: DVector<f64>,
        participation_cost: DVector<f64>,
        upper: DVector<f64>,
        competition: Competition,
    ) -> Result<Self> {
        let players = value.len();
        if players == 0 {
            return Err(Error::EmptyGame);
        }
        for (field, values) in [("value", &value), ("rate", &rate), ("upper", &upper)] {
            finite_per_player(field, values, players)?;
            positive(field, values)?;
        }
        finite_per_player("participation_cost", &participation_cost, players)?;
        non_negative("participation_cost", &participation_cost)?;
        competition_size(&competition, players)?;
        Ok(SaturatingGame {
            value,
            rate,
            participation_cost,
            upper,
            competition,
        })
    }

    /// The best response from the first-order condition `v κ e^{−κx} = γ + Σ C_ij s_j`,
    /// projected on the box. Used to check the numerical best response.
    pub fn best_response_closed_form(&self, i: usize, profile: &[f64]) -> f64 {
        let marginal_cost = self.participation_cost[i] + self.competition.row_dot(i, profile);
        let peak = self.value[i] * self.rate[i];
        if marginal_cost <= 0.0 {
            return self.upper[i];
        }
        ((peak / marginal_cost).ln() / self.rate[i]).clamp(0.0, self.upper[i])
    }
}

impl Game for SaturatingGame {
    fn num_players(&self) -> usize {
        self.value.len()
    }

    fn upper(&self, i: usize) -> f64 {
        self.upper[i]
    }

    fn utility(&self, i: usize, own: f64, profile: &[f64]) -> f64 {
        let pressure = self.competition.row_dot(i, profile);
        self.value[i] * (1.0 - (-self.rate[i] * own).exp())
            - (self.participation_cost[i] + pressure) * own
    }

    fn own_gradient(&self, i: usize, own: f64, profile: &[f64]) -> f64 {
        let pressure = self.competition.row_dot(i, profile);
        self.value[i] * self.rate[i] * (-self.rate[i] * own).exp()
            - self.participation_cost[i]
            - pressure
    }
}
