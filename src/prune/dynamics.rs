//! Gate dynamics: the benefit estimate and one projected gradient step of every gate on its
//! own utility, `s_i ← Π_[0,1](s_i + η_s(b̂_i − a_i s_i − γ − β Σ_{j≠i} R_ij s_j))`.

use nalgebra::DVector;

use super::config::GateStep;
use super::players::{gate_gradient, gates, gates_mut, norms_sq};
use super::pruner::EquilibriumPruner;
use crate::nn::graph::{ChannelGroup, Graph, GraphGrads};

/// Decay of the running mean of squared benefits ([`GateStep::RmsNormalized`]).
const RMS_DECAY: f64 = 0.99;
/// Added to the root mean square so that a channel with no benefit signal takes finite steps.
const RMS_FLOOR: f64 = 1e-8;

impl EquilibriumPruner {
    /// The factor in `[0, 1]` of the `γ` ramp that starts at the end of the warm-up.
    pub(super) fn ramp(&self) -> f64 {
        let ramp = self.config.price.gamma_ramp_steps as f64;
        let since = self
            .step
            .saturating_sub(self.config.gates.warmup_steps as u64) as f64;
        if ramp <= 0.0 {
            1.0
        } else {
            (since / ramp).min(1.0)
        }
    }

    /// `b̂ ← m b̂ + (1 − m)(−∂L/∂s)` from the last step's gradients, and the running mean of
    /// the squared batch benefit.
    pub(super) fn average_benefits(&mut self, grads: &GraphGrads, groups: &[ChannelGroup]) {
        let m = self.config.gates.benefit_momentum;
        for (l, g) in self.groups.iter_mut().zip(groups) {
            let grad = gate_gradient(grads, g);
            for ((b, b2), &v) in l.benefit.iter_mut().zip(&mut l.benefit_sq).zip(grad) {
                *b = m * *b + (1.0 - m) * (-(v as f64));
                *b2 = RMS_DECAY * *b2 + (1.0 - RMS_DECAY) * (v as f64).powi(2);
            }
        }
    }

    /// One projected gradient step of every gate on its own utility.
    pub(super) fn play(&mut self, graph: &mut Graph, groups: &[ChannelGroup]) {
        let (alpha, beta, eta, ramp) = (
            self.config.game.alpha,
            self.config.game.beta,
            self.config.gates.gate_lr,
            self.ramp(),
        );
        // Bias correction of the running mean of squared benefits (it starts at 0).
        let correction = 1.0 - RMS_DECAY.powf(self.step as f64);
        let normalized = self.config.gates.gate_step == GateStep::RmsNormalized;
        for (l, g) in self.groups.iter_mut().zip(groups) {
            let gamma = ramp * l.gamma;
            let norms = norms_sq(graph, g);
            let s: Vec<f64> = gates(graph, g).iter().map(|&v| v as f64).collect();
            let pressure = if beta > 0.0 {
                &l.redundancy * DVector::from_column_slice(&s) * beta
            } else {
                DVector::zeros(s.len())
            };
            let protected: Vec<bool> = (0..s.len()).map(|i| l.is_protected(i)).collect();
            let out = gates_mut(graph, g);
            for i in 0..s.len() {
                if protected[i] {
                    out[i] = 1.0;
                    l.zero_steps[i] = 0;
                    continue;
                }
                let grad = l.benefit[i] - alpha * norms[i] * s[i] - gamma - pressure[i];
                let step = if normalized {
                    eta / ((l.benefit_sq[i] / correction).sqrt() + RMS_FLOOR)
                } else {
                    eta
                };
                let new = (s[i] + step * grad).clamp(0.0, 1.0) as f32;
                out[i] = new;
                if new == 0.0 {
                    l.zero_steps[i] += 1;
                } else {
                    l.zero_steps[i] = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::players::players;
    use crate::prune::{GameSettings, PruneConfig};

    /// One gate step under both rules from a state with known benefits: the normalised rule
    /// divides the plain step by the root mean square of the benefit (bias-corrected), and a
    /// gate whose utility gradient is 0 stays put under both (same fixed points).
    #[test]
    fn rms_normalised_gate_step_rescales_the_step_and_keeps_fixed_points() {
        let step_of = |rule: GateStep| -> Vec<f32> {
            let mut graph = Graph::mlp(&[3, 4, 2], 1).unwrap();
            let group = players(&graph).remove(0);
            gates_mut(&mut graph, &group).fill(0.5);
            let mut config = PruneConfig {
                game: GameSettings {
                    alpha: 0.0,
                    beta: 0.0,
                    gamma: 0.1,
                },
                ..PruneConfig::default()
            };
            config.gates.gate_lr = 0.2;
            config.gates.gate_step = rule;
            let mut p = EquilibriumPruner::new(config, &graph).unwrap();
            p.step = 1;
            let l = &mut p.groups[0];
            // Benefits 0.1 (= γ: a fixed point), 0.3, -0.2, 0.5; mean squares 4× the square.
            l.benefit = vec![0.1, 0.3, -0.2, 0.5];
            l.benefit_sq = l
                .benefit
                .iter()
                .map(|b| 4.0 * b * b * (1.0 - RMS_DECAY))
                .collect();
            p.play(&mut graph, std::slice::from_ref(&group));
            gates(&graph, &group).to_vec()
        };
        let plain = step_of(GateStep::Gradient);
        let scaled = step_of(GateStep::RmsNormalized);
        let benefit = [0.1f64, 0.3, -0.2, 0.5];
        for i in 0..4 {
            let f = benefit[i] - 0.1;
            let want_plain = (0.5 + 0.2 * f).clamp(0.0, 1.0);
            let want_scaled =
                (0.5 + 0.2 * f / (2.0 * benefit[i].abs() + RMS_FLOOR)).clamp(0.0, 1.0);
            assert!(
                (plain[i] as f64 - want_plain).abs() < 1e-6,
                "{i}: {plain:?}"
            );
            assert!(
                (scaled[i] as f64 - want_scaled).abs() < 1e-6,
                "{i}: {scaled:?}"
            );
        }
        // Exactly unmoved, not merely close.
        assert_eq!(plain[0].to_bits(), 0.5f32.to_bits());
        assert_eq!(scaled[0].to_bits(), 0.5f32.to_bits());
    }
}
