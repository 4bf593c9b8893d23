//! Settings of the weight-level game. Schedules, prices and training come from the
//! [`PruneConfig`](crate::prune::PruneConfig) the unit pruner uses, so both play on the same
//! budget.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The weight game's own parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WeightGame {
    /// Self-cost scale: `a_w = α w²`.
    pub alpha: f64,
    /// Competition scale: a weight pays `γ (1 + β Σ_j R_ij s_j)` to participate, so a weight
    /// whose correlated partners in its row all play pays up to `1 + β` times the price.
    pub beta: f64,
    /// Largest move of a gate per step: the gate step is divided by the root mean square
    /// of the weight's benefit, which spans orders of magnitude across weights.
    pub gate_lr: f64,
    /// Competitors kept per input feature.
    pub neighbours: usize,
}

impl Default for WeightGame {
    fn default() -> Self {
        WeightGame {
            alpha: 1e-2,
            beta: 0.5,
            gate_lr: 0.05,
            neighbours: 8,
        }
    }
}

impl WeightGame {
    /// Checks every range; the error names the parameter.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [("alpha", self.alpha), ("beta", self.beta)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    format!("weight_game.{name}"),
                    format!("{v}: must be a finite number >= 0"),
                ));
            }
        }
        if !(self.gate_lr.is_finite() && self.gate_lr > 0.0 && self.gate_lr <= 1.0) {
            return Err(Error::invalid(
                "weight_game.gate_lr",
                format!("{}: must be in (0, 1]", self.gate_lr),
            ));
        }
        if self.neighbours == 0 || self.neighbours > 1024 {
            return Err(Error::invalid(
                "weight_game.neighbours",
                format!("{}: must be in 1..=1024", self.neighbours),
            ));
        }
        Ok(())
    }
}
