//! Target mode: the participation cost `γ` as a price that keeps a chosen fraction of
//! channels — an initial value from the measured games' equilibria, then a multiplicative
//! adjustment every `K` steps until `control_fraction` of training.

use serde::{Deserialize, Serialize};

use super::config::{TargetSchedule, TargetScope};
use super::layer_game::{layer_game, predicted_equilibrium};
use super::players::{gates, measure_benefits, norms_sq};
use super::pruner::EquilibriumPruner;
use crate::error::Result;
use crate::nn::data::Dataset;
use crate::nn::graph::{ChannelGroup, Graph};

/// Bisection rounds on `γ` in target mode.
const CALIBRATION_ROUNDS: usize = 30;
/// Smallest price the adjustment multiplies (a price of 0 could never rise).
const MIN_PRICE: f64 = 1e-6;

/// How target mode chose `γ` (one per target group: each player group, or the network): an
/// initial value for which the measured games at the end of the warm-up predict the aim of
/// that step (bisection on their equilibria, solved by semismooth Newton with a certificate;
/// 0 if they keep no more than the aim at `γ = 0`, as always under the cubic schedule, whose
/// first aim is every channel), then a multiplicative adjustment every `K` steps (see
/// `adjust_price`) until `control_fraction` of the training steps; `γ` is then fixed so the
/// gates settle in one game. `γ` is the only lever: when the competition `β` alone removes
/// more than the target, the run keeps fewer channels than asked, and the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Requested kept fraction.
    pub target_kept: f64,
    /// `γ` of each player group from the measured games.
    pub initial_gamma: Vec<f64>,
    /// Kept fraction the measured games predict at `initial_gamma`.
    pub predicted_kept: f64,
    /// Kept fraction the measured games predict without any price (`γ = 0`): what the
    /// competition alone leaves.
    #[serde(default)]
    pub kept_without_price: f64,
    /// Largest natural residual of the predicted equilibria at `initial_gamma` (their
    /// certificate: each prediction is an equilibrium of its measured game to this accuracy).
    #[serde(default)]
    pub prediction_residual: f64,
    /// Step at which the games were measured (end of warm-up).
    pub step: u64,
    /// Price adjustments made.
    pub adjustments: usize,
    /// Last step at which `γ` may change.
    pub control_until: u64,
}

impl EquilibriumPruner {
    /// Target mode's kept fraction aimed at now (`target_schedule`), `None` outside target mode.
    pub(super) fn aim(&self) -> Option<f64> {
        let target = self.config.price.target_kept?;
        Some(match self.config.price.target_schedule {
            TargetSchedule::Immediate => target,
            TargetSchedule::Cubic => {
                let start = self.config.gates.warmup_steps as f64;
                let window = (self.control_until as f64 - start).max(1.0);
                let p = ((self.step as f64 - start) / window).clamp(0.0, 1.0);
                target + (1.0 - target) * (1.0 - p).powi(3)
            }
        })
    }

    /// The player groups priced together in target mode (indices into `self.groups`).
    pub(super) fn target_groups(&self) -> Vec<Vec<usize>> {
        match self.config.price.target_scope {
            TargetScope::EachLayer => (0..self.groups.len()).map(|i| vec![i]).collect(),
            TargetScope::Network => vec![(0..self.groups.len()).collect()],
        }
    }

    /// Chooses each target group's `γ` so that the measured games' equilibria keep about
    /// `target` of its channels (bisection on the equilibria of the static games).
    pub(super) fn calibrate(
        &mut self,
        graph: &Graph,
        groups: &[ChannelGroup],
        holdout: &Dataset,
        target: f64,
    ) -> Result<()> {
        self.refresh_redundancy(graph, groups, holdout)?;
        let (benefits, _) =
            measure_benefits(graph, groups, holdout, self.config.training.batch_size)?;
        let norms: Vec<Vec<f64>> = groups.iter().map(|g| norms_sq(graph, g)).collect();
        let (alpha, beta) = (self.config.game.alpha, self.config.game.beta);
        // Channels the predicted equilibria keep, and the worst certificate among them.
        let kept_at = |members: &[usize], gamma: f64| -> Result<(usize, f64)> {
            let (mut kept, mut worst) = (0usize, 0.0f64);
            for &li in members {
                let r = &self.groups[li].redundancy;
                let g = layer_game(&benefits[li], &norms[li], alpha, gamma, beta, r)?;
                let (s, residual) = predicted_equilibrium(&g)?;
                kept += s.iter().filter(|&&v| v > 0.0).count();
                worst = worst.max(residual);
            }
            Ok((kept, worst))
        };
        let mut gammas = vec![0.0; self.groups.len()];
        let (mut predicted, mut without_price, mut residual) = (0usize, 0usize, 0.0f64);
        for members in self.target_groups() {
            let units: usize = members.iter().map(|&li| self.groups[li].orig.len()).sum();
            let aim = target * units as f64;
            let (at_zero, _) = kept_at(&members, 0.0)?;
            without_price += at_zero;
            // No price when the games keep no more than the aim without one (always under
            // the cubic schedule, whose first aim is every channel); else bisection. The
            // static game misjudges the price (benefits of survivors grow as others leave);
            // the adjustment every `K` steps corrects that.
            let gamma = if at_zero as f64 <= aim {
                0.0
            } else {
                let mut lo = 0.0;
                let mut hi = members
                    .iter()
                    .flat_map(|&li| benefits[li].iter().copied())
                    .fold(0.0f64, f64::max)
                    .max(1e-12)
                    * 2.0;
                for _ in 0..CALIBRATION_ROUNDS {
                    let mid = 0.5 * (lo + hi);
                    if kept_at(&members, mid)?.0 as f64 > aim {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                0.5 * (lo + hi)
            };
            let (kept, worst) = kept_at(&members, gamma)?;
            predicted += kept;
            residual = residual.max(worst);
            for &li in &members {
                gammas[li] = gamma;
            }
        }
        for (l, &g) in self.groups.iter_mut().zip(&gammas) {
            l.gamma = g;
        }
        let total: usize = self.groups.iter().map(|l| l.orig.len()).sum();
        self.calibration = Some(Calibration {
            target_kept: self.config.price.target_kept.unwrap_or(target),
            initial_gamma: gammas,
            predicted_kept: predicted as f64 / total.max(1) as f64,
            kept_without_price: without_price as f64 / total.max(1) as f64,
            prediction_residual: residual,
            step: self.step - 1,
            adjustments: 0,
            control_until: self.control_until,
        });
        Ok(())
    }

    /// One price adjustment of each target group's `γ` towards the aimed kept fraction `a`
    /// ([`Self::aim`]): `γ ← max(γ, γ_min) exp(g clamp((active − a)/a, −1, 1))`, `g` the
    /// configured `price_gain` and `active` the group's fraction of positive gates.
    pub(super) fn adjust_price(&mut self, graph: &Graph, groups: &[ChannelGroup]) {
        let Some(target) = self.aim() else {
            return;
        };
        if self.step > self.control_until {
            return;
        }
        let gain = self.config.price.price_gain;
        for members in self.target_groups() {
            let total: usize = members.iter().map(|&li| self.groups[li].rho_total).sum();
            let active: usize = members
                .iter()
                .map(|&li| {
                    gates(graph, &groups[li])
                        .iter()
                        .filter(|&&v| v > 0.0)
                        .count()
                })
                .sum();
            let frac = active as f64 / total.max(1) as f64;
            let e = ((frac - target) / target).clamp(-1.0, 1.0);
            for &li in &members {
                let l = &mut self.groups[li];
                l.gamma = l.gamma.max(MIN_PRICE) * (gain * e).exp();
            }
        }
        if let Some(c) = self.calibration.as_mut() {
            c.adjustments += 1;
        }
    }

    /// Sets the last step at which target mode may change `γ` (`control_fraction` of
    /// `total_steps`).
    pub fn set_total_steps(&mut self, total_steps: u64) {
        self.control_until = (total_steps as f64 * self.config.price.control_fraction) as u64;
        if let Some(c) = self.calibration.as_mut() {
            c.control_until = self.control_until;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::PruneConfig;

    /// The cubic aim starts at every channel at the end of the warm-up, falls monotonically,
    /// reaches the target at the end of the control window and stays there; the immediate
    /// aim is the target throughout; outside target mode there is no aim.
    #[test]
    fn cubic_target_schedule_falls_from_all_units_to_the_target() {
        let graph = Graph::mlp(&[3, 4, 2], 1).unwrap();
        let pruner_with = |schedule: TargetSchedule, target: Option<f64>| {
            let mut config = PruneConfig::default();
            config.price.target_kept = target;
            config.price.target_schedule = schedule;
            config.gates.warmup_steps = 100;
            config.price.control_fraction = 0.5;
            let mut p = EquilibriumPruner::new(config, &graph).unwrap();
            p.set_total_steps(1100);
            p
        };
        let target = 0.2;
        let mut cubic = pruner_with(TargetSchedule::Cubic, Some(target));
        let mut immediate = pruner_with(TargetSchedule::Immediate, Some(target));
        let mut previous = f64::INFINITY;
        for step in (0..1100).step_by(10) {
            cubic.step = step;
            immediate.step = step;
            let aim = cubic.aim().unwrap();
            assert!(aim <= previous, "step {step}: {aim} rose from {previous}");
            previous = aim;
            assert_eq!(immediate.aim().unwrap().to_bits(), target.to_bits());
            if step <= 100 {
                assert_eq!(aim.to_bits(), 1.0f64.to_bits(), "step {step}");
            }
            if step >= 550 {
                assert!((aim - target).abs() < 1e-12, "step {step}: {aim}");
            }
        }
        // Halfway through the window (step 325) the aim is F + (1 − F)/8.
        cubic.step = 325;
        assert!((cubic.aim().unwrap() - (target + (1.0 - target) / 8.0)).abs() < 1e-12);
        assert!(pruner_with(TargetSchedule::Cubic, None).aim().is_none());
    }
}
