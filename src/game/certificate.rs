//! Certificates of a candidate equilibrium (docs/mathematics.md, certificates).

use serde::{Deserialize, Serialize};

use super::Game;

/// How far a profile is from a Nash equilibrium, measured two ways; both are zero exactly at
/// an equilibrium.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    /// `max_i [max_x U_i(x, s_-i) − U_i(s)]`: the most any player gains by deviating.
    pub nash_gap: f64,
    /// `‖s − Π_S(s − F(s))‖_∞`: the fixed-point residual of the variational inequality.
    pub natural_residual: f64,
}

impl Certificate {
    /// Both certificates of `profile`.
    pub fn of<G: Game + ?Sized>(game: &G, profile: &[f64]) -> Self {
        Certificate {
            nash_gap: nash_gap(game, profile),
            natural_residual: natural_residual(game, profile),
        }
    }

    /// Whether both measures are finite.
    pub fn is_finite(&self) -> bool {
        self.nash_gap.is_finite() && self.natural_residual.is_finite()
    }
}

/// The maximum of `values`, NaN if any value is NaN (plain `f64::max` would hide it).
pub(crate) fn max_or_nan(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut max = 0.0_f64;
    for v in values {
        if v.is_nan() {
            return f64::NAN;
        }
        max = max.max(v);
    }
    max
}

/// The Nash gap `max_i [max_x U_i(x, s_-i) − U_i(s)]` (≥ 0; NaN for a non-finite profile).
pub fn nash_gap<G: Game + ?Sized>(game: &G, profile: &[f64]) -> f64 {
    max_or_nan(game.deviation_gains(profile))
}

/// The natural residual `‖s − Π_S(s − F(s))‖_∞` (NaN for a non-finite profile).
pub fn natural_residual<G: Game + ?Sized>(game: &G, profile: &[f64]) -> f64 {
    let mut gradient = vec![0.0; profile.len()];
    game.pseudo_gradient(profile, &mut gradient);
    max_or_nan(
        profile
            .iter()
            .zip(&gradient)
            .enumerate()
            .map(|(i, (&s, &f))| (s - (s - f).clamp(0.0, game.upper(i))).abs()),
    )
}
