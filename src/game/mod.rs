//! Continuous games on boxes of strategies, and the quadratic pruning game.
//!
//! Player `i` chooses `s_i ∈ [0, u_i]`. A [`Game`] exposes each player's utility and its own
//! derivative; from these come the pseudo-gradient `F(s)_i = −∂U_i/∂s_i`, best responses and
//! the two certificates of a candidate equilibrium ([`nash_gap`], [`natural_residual`]).
//!
//! * [`PruningGame`] — the quadratic game `U_i = b_i s_i − (a_i/2) s_i² − γ_i s_i − s_i Σ C_ij s_j`
//!   with closed-form best responses and dense or sparse competition.
//! * [`SaturatingGame`] — a non-quadratic game with a saturating (logistic) benefit, whose best
//!   responses need a one-dimensional optimiser.
//! * [`synthetic`] — seeded synthetic pruning games.

mod best_response;
mod binary;
mod certificate;
mod competition;
mod file;
mod pruning;
mod saturating;
pub mod synthetic;
mod validate;

pub use best_response::{maximise_concave, maximise_on_interval};
pub use binary::{looks_like_safetensors, FORMAT_NAME, FORMAT_VERSION};
pub use certificate::{nash_gap, natural_residual, Certificate};
pub(crate) use competition::{column_major_mul_vec, sum_over_parts};
pub use competition::{Competition, CsrMatrix};
pub use pruning::PruningGame;
pub use saturating::SaturatingGame;
pub use synthetic::{generate, BenefitSpec, GeneratorConfig, Topology};

/// An `N`-player continuous game with box strategy sets `[0, u_i]`.
///
/// Utilities must be continuous in the whole profile and concave in the player's own
/// strategy (docs/mathematics.md); every solver and certificate relies on that concavity.
///
/// Methods that evaluate player `i` take `own` (the strategy `i` considers) and the full
/// `profile`, whose entry `i` is ignored: a deviation is evaluated without copying the
/// profile, which matters at 10^6 players.
pub trait Game: Sync {
    /// Number of players `N`.
    fn num_players(&self) -> usize;

    /// Upper bound `u_i > 0` of player `i`'s strategy set `[0, u_i]`.
    fn upper(&self, i: usize) -> f64;

    /// `U_i(own, profile_{-i})`.
    fn utility(&self, i: usize, own: f64, profile: &[f64]) -> f64;

    /// `∂U_i/∂s_i` at `(own, profile_{-i})`.
    fn own_gradient(&self, i: usize, own: f64, profile: &[f64]) -> f64;

    /// A maximiser of `U_i(·, profile_{-i})` on `[0, u_i]`.
    ///
    /// The default uses Brent's method (argmin) on the concave one-dimensional utility: the
    /// root of `∂U_i/∂s_i` (exact to machine precision, which certificates need), falling
    /// back to Brent's minimiser on the utility values; games with a closed form override it.
    fn best_response(&self, i: usize, profile: &[f64]) -> f64 {
        maximise_concave(
            |x| self.utility(i, x, profile),
            |x| self.own_gradient(i, x, profile),
            self.upper(i),
        )
    }

    /// The pseudo-gradient `F(s)_i = −∂U_i/∂s_i`, written into `out`.
    fn pseudo_gradient(&self, profile: &[f64], out: &mut [f64]) {
        use rayon::prelude::*;
        out.par_iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = -self.own_gradient(i, profile[i], profile));
    }

    /// Every player's best response to `profile`, written into `out` (a Jacobi sweep).
    fn best_responses(&self, profile: &[f64], out: &mut [f64]) {
        use rayon::prelude::*;
        out.par_iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = self.best_response(i, profile));
    }

    /// Each player's gain from its best deviation, `max_x U_i(x, s_-i) − U_i(s) ≥ 0`.
    /// The Nash gap is their maximum. A NaN gain (non-finite profile) stays NaN.
    fn deviation_gains(&self, profile: &[f64]) -> Vec<f64> {
        use rayon::prelude::*;
        (0..self.num_players())
            .into_par_iter()
            .map(|i| {
                let best = self.best_response(i, profile);
                clamp_gain(self.utility(i, best, profile) - self.utility(i, profile[i], profile))
            })
            .collect()
    }

    /// Projects `profile` onto the strategy box, in place.
    fn project(&self, profile: &mut [f64]) {
        for (i, s) in profile.iter_mut().enumerate() {
            *s = s.clamp(0.0, self.upper(i));
        }
    }
}

/// A deviation gain is never negative: a best response is at least as good as staying. Tiny
/// negative values from rounding (or from an inexact 1-D optimiser) are clamped to 0; NaN is
/// kept so that a broken profile cannot certify itself.
fn clamp_gain(gain: f64) -> f64 {
    if gain.is_nan() {
        gain
    } else {
        gain.max(0.0)
    }
}
