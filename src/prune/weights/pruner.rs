//! The weight-level game, played after every weight step.
//!
//! Each weight `θ` is read as a gate and a weight, `θ = s·w`, with the scale symmetry
//! `(s, w) → (s/c, c·w)` broken as for units (`proofs/S1-scale-symmetry.md`): `|w|` never
//! falls below its row's reference magnitude `r` (the root mean square of the row at
//! initialisation), so `s = min(1, |θ|/r)` and `w = sign(θ)·max(r, |θ|)`. A weight at 0 reads
//! as `s = 0` with `w = −sign(∂L/∂θ)·r`: the sign it would re-enter with. Its benefit is
//! `b = −∂L/∂s = −w·∂L/∂θ` (one product per weight), its utility
//! `U = b s − (α w²/2) s² − γ s (1 + β Σ_j R_ij s_j)`, and after every step
//! `s ← Π_[0,1](s + η F/√v)` with `F = b̂ − α w² s − γ(1 + β Σ_j R_ij s_j)`, `b̂` an average
//! of the batch benefits and `v` the running mean of their squares. A weight at exactly 0
//! for `patience` steps leaves: it is held at 0 from then on. When the game ends, every
//! weight whose best response to the final profile is 0 leaves with them.
//!
//! Target mode prices each layer on its own, or the whole network with one price
//! (`target_scope = network`: every weight pays the same for participating, and the layers'
//! shares follow from their benefits, which are all in units of the loss). A weight's best
//! response is 0 exactly when `b̂ ≤ γ(1 + β Σ_j R_ij s_j)`, so every `K` steps `γ` is set to
//! the value at which the aimed number of the priced weights have a positive best response;
//! the aim falls from every weight to `target_kept` along `F + (1 − F)(1 − p)³` over the
//! control window (the gradual schedule of Zhu and Gupta, "To prune, or not to prune",
//! 2017), then stays there: the price keeps being set until the game ends, so the weights
//! whose best response is positive stay the aimed number while their benefits move.

use rayon::prelude::*;

use super::config::WeightGame;
use super::layers::{competition, weight_layers, Neighbours, WeightLayer};
use crate::error::{Error, Result};
use crate::nn::data::Dataset;
use crate::nn::graph::{Graph, StepHook, StepRecord, Trainer};
use crate::prune::{PruneConfig, TargetScope};

/// Decay of the running mean of squared benefits.
const RMS_DECAY: f32 = 0.99;
/// Added to the root mean square so that a weight without benefit signal moves finitely.
const RMS_FLOOR: f32 = 1e-12;
/// Probe samples for the input correlations behind the competition.
const PROBE_ROWS: usize = 256;
/// The competition is measured again every this many price refreshes: input correlations
/// move slowly, and one measurement costs about as much as a few dozen steps.
const COMPETITION_REFRESH: u64 = 10;
/// Steps before a weight's zero count saturates (it has left long before).
const MAX_ZERO_STEPS: u32 = u32::MAX - 1;
/// `left_at` of a weight still playing.
pub const STILL_PLAYING: u32 = u32::MAX;

/// What the game remembers of one layer's weights.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerState {
    /// Reference magnitude `r` of each row.
    pub reference: Vec<f32>,
    /// Weights still playing (column-major, as the weight).
    pub alive: Vec<bool>,
    /// Averaged benefit `b̂`.
    pub benefit: Vec<f32>,
    /// Running mean of squared batch benefits.
    pub benefit_sq: Vec<f32>,
    /// Consecutive steps at exactly 0.
    pub zero_steps: Vec<u32>,
    /// Step at which each weight left ([`STILL_PLAYING`] if it did not).
    pub left_at: Vec<u32>,
    /// The layer's price `γ`.
    pub gamma: f64,
    /// The feature competition `R`.
    pub neighbours: Neighbours,
}

impl LayerState {
    fn new(layer: &WeightLayer, theta: &[f32], gamma: f64) -> Self {
        let n = layer.len();
        let reference = (0..layer.rows)
            .map(|o| {
                let sq: f64 = (0..layer.cols)
                    .map(|i| (theta[i * layer.rows + o] as f64).powi(2))
                    .sum();
                ((sq / layer.cols.max(1) as f64).sqrt() as f32).max(f32::MIN_POSITIVE)
            })
            .collect();
        LayerState {
            reference,
            alive: vec![true; n],
            benefit: vec![0.0; n],
            benefit_sq: vec![0.0; n],
            zero_steps: vec![0; n],
            left_at: vec![STILL_PLAYING; n],
            gamma,
            neighbours: Neighbours::default(),
        }
    }

    /// The gate of every weight of `theta` (0 for those that left): the gate of `θ` does not
    /// depend on the sign its weight would re-enter with.
    fn gates(&self, theta: &[f32]) -> Vec<f32> {
        let rows = self.reference.len();
        theta
            .par_iter()
            .enumerate()
            .map(|(k, &th)| {
                if self.alive[k] {
                    split(th, self.reference[k % rows], 0.0).0
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Weights still playing.
    pub fn kept(&self) -> usize {
        self.alive.iter().filter(|&&a| a).count()
    }
}

/// The gate and weight of `θ` in a row of reference `r`, with `g = ∂L/∂θ` deciding the
/// sign of a weight at 0.
#[inline]
pub fn split(theta: f32, r: f32, g: f32) -> (f32, f32) {
    if theta == 0.0 {
        (0.0, if g > 0.0 { -r } else { r })
    } else {
        (
            (theta.abs() / r).min(1.0),
            theta.signum() * theta.abs().max(r),
        )
    }
}

/// The weight-level pruner: a [`StepHook`] of the one training loop.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightPruner {
    game: WeightGame,
    config: PruneConfig,
    layers: Vec<WeightLayer>,
    states: Vec<LayerState>,
    step: u64,
    total_steps: u64,
}

/// The pruner with the held-out set it measures the competition on.
pub struct WeightHook<'a> {
    /// The pruner.
    pub pruner: &'a mut WeightPruner,
    /// Held-out samples.
    pub holdout: &'a Dataset,
}

impl StepHook for WeightHook<'_> {
    fn after_step(&mut self, trainer: &mut Trainer, _: &StepRecord) -> Result<()> {
        self.pruner.after_step(trainer, self.holdout)
    }
}

impl WeightPruner {
    /// A pruner for every Linear and Conv2d weight of `graph` over a game of `total_steps`
    /// weight steps.
    pub fn new(
        game: WeightGame,
        config: PruneConfig,
        graph: &Graph,
        total_steps: u64,
    ) -> Result<Self> {
        game.check()?;
        config.check()?;
        let layers = weight_layers(graph);
        if layers.is_empty() {
            return Err(Error::invalid(
                "model",
                "the network has no linear or conv weights",
            ));
        }
        let states = layers
            .iter()
            .map(|l| LayerState::new(l, graph.params[l.param].value.as_slice(), config.game.gamma))
            .collect();
        Ok(WeightPruner {
            game,
            config,
            layers,
            states,
            step: 0,
            total_steps,
        })
    }

    /// The weight layers, in node order.
    pub fn layers(&self) -> &[WeightLayer] {
        &self.layers
    }

    /// Each layer's state.
    pub fn states(&self) -> &[LayerState] {
        &self.states
    }

    /// The game's settings.
    pub fn game(&self) -> &WeightGame {
        &self.game
    }

    /// Steps seen.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The kept fraction target mode aims at after `step` steps (`None` without a target).
    fn aim(&self, step: u64) -> Option<f64> {
        let f = self.config.price.target_kept?;
        let start = self.config.gates.warmup_steps as u64;
        let end = self.control_until().max(start + 1);
        let p = (step.saturating_sub(start) as f64 / (end - start) as f64).min(1.0);
        Some(f + (1.0 - f) * (1.0 - p).powi(3))
    }

    /// The step at which the aim reaches the target.
    fn control_until(&self) -> u64 {
        (self.config.price.control_fraction * self.total_steps as f64) as u64
    }

    /// The game's work after one weight step of `trainer` (see the module docs).
    pub fn after_step(&mut self, trainer: &mut Trainer, holdout: &Dataset) -> Result<()> {
        let t = self.step;
        self.step += 1;
        let warmup = self.config.gates.warmup_steps as u64;
        let refresh = self.config.gates.refresh_every as u64;
        if t >= warmup && (t - warmup).is_multiple_of(refresh * COMPETITION_REFRESH) {
            self.refresh_competition(trainer.graph(), holdout)?;
        }
        let pricing = t >= warmup && t.is_multiple_of(refresh);
        let aim = if pricing { self.aim(t) } else { None };
        let (m, correction) = (
            self.config.gates.benefit_momentum as f32,
            1.0 - RMS_DECAY.powf(t as f32 + 1.0),
        );
        let (alpha, beta, eta) = (
            self.game.alpha as f32,
            self.game.beta as f32,
            self.game.gate_lr as f32,
        );
        let patience = self.config.gates.patience as u32;
        let step_u32 = t.min(u32::MAX as u64 - 1) as u32;
        let (graph, grads) = (trainer.graph(), trainer.gradients());
        let mut pressures = Vec::with_capacity(self.layers.len());
        for (l, st) in self.layers.iter().zip(self.states.iter_mut()) {
            let rows = l.rows;
            let theta = graph.params[l.param].value.as_slice();
            let grad = grads.values[l.param].as_slice();
            // Benefits of the batch just used, at the weights before the game moves them.
            theta
                .par_iter()
                .zip(grad)
                .zip(st.benefit.par_iter_mut().zip(st.benefit_sq.par_iter_mut()))
                .enumerate()
                .for_each(|(k, ((&th, &g), (b, b2)))| {
                    let (_, w) = split(th, st.reference[k % rows], g);
                    let batch = -w * g;
                    *b = m * *b + (1.0 - m) * batch;
                    *b2 = RMS_DECAY * *b2 + (1.0 - RMS_DECAY) * batch * batch;
                });
            if t >= warmup {
                pressures.push(pressure(&st.neighbours, &st.gates(theta), rows, beta));
            }
        }
        if t < warmup {
            return Ok(());
        }
        if let Some(aim) = aim {
            self.set_prices(&pressures, aim);
        }
        let (graph, grads) = trainer.graph_mut_and_gradients();
        for ((l, st), pressure) in self
            .layers
            .iter()
            .zip(self.states.iter_mut())
            .zip(pressures)
        {
            let rows = l.rows;
            let grad = grads.values[l.param].as_slice();
            let theta = graph.params[l.param].value.as_mut_slice();
            let gamma = st.gamma as f32;
            let LayerState {
                reference,
                alive,
                benefit,
                benefit_sq,
                zero_steps,
                left_at,
                ..
            } = st;
            theta
                .par_iter_mut()
                .zip(alive.par_iter_mut())
                .zip(zero_steps.par_iter_mut().zip(left_at.par_iter_mut()))
                .enumerate()
                .for_each(|(k, ((th, live), (zeros, left)))| {
                    if !*live {
                        *th = 0.0;
                        return;
                    }
                    let (si, w) = split(*th, reference[k % rows], grad[k]);
                    let f = benefit[k] - alpha * w * w * si - gamma * pressure[k];
                    let rms = (benefit_sq[k] / correction).sqrt() + RMS_FLOOR;
                    let new = (si + eta * f / rms).clamp(0.0, 1.0);
                    *th = new * w;
                    if new == 0.0 {
                        *zeros = (*zeros + 1).min(MAX_ZERO_STEPS);
                        if *zeros >= patience {
                            *live = false;
                            *left = step_u32;
                        }
                    } else {
                        *zeros = 0;
                    }
                });
        }
        Ok(())
    }

    /// Target mode's prices for `aim`, from each layer's benefits and price factors
    /// `pressures`: one per layer, or one shared by every layer (`target_scope`).
    fn set_prices(&mut self, pressures: &[Vec<f32>], aim: f64) {
        let parts: Vec<Part> = self
            .states
            .iter()
            .zip(pressures)
            .map(|(st, p)| (&st.benefit[..], &p[..], &st.alive[..]))
            .collect();
        let gammas: Vec<f64> = match self.config.price.target_scope {
            TargetScope::EachLayer => parts
                .iter()
                .map(|part| price(std::slice::from_ref(part), aim))
                .collect(),
            TargetScope::Network => vec![price(&parts, aim); parts.len()],
        };
        for (st, gamma) in self.states.iter_mut().zip(gammas) {
            st.gamma = gamma;
        }
    }

    fn refresh_competition(&mut self, graph: &Graph, holdout: &Dataset) -> Result<()> {
        let rows = PROBE_ROWS.min(holdout.len());
        let probe = &holdout.inputs()[..rows * holdout.sample_len()];
        let all = competition(graph, &self.layers, probe, rows, self.game.neighbours)?;
        for (st, n) in self.states.iter_mut().zip(all) {
            st.neighbours = n;
        }
        Ok(())
    }

    /// Ends the game: every weight whose best response to the final profile is 0 leaves —
    /// those at exactly 0 and those still sinking towards it (`b̂ ≤ γ (1 + β Σ_j R_ij s_j)`,
    /// whatever their gate) — and the competition is measured on the final network for the
    /// certificates. Without the second kind a run ends with the weights the price has not
    /// yet driven to 0, and keeps more than it aimed at. Returns how many of the second kind
    /// left.
    pub fn finish(&mut self, trainer: &mut Trainer, holdout: &Dataset) -> Result<usize> {
        let step = self.step.min(u32::MAX as u64 - 1) as u32;
        let mut sinking = 0;
        let beta = self.game.beta as f32;
        for (l, st) in self.layers.iter().zip(self.states.iter_mut()) {
            let theta = trainer.graph_mut().params[l.param].value.as_mut_slice();
            let pressure = pressure(&st.neighbours, &st.gates(theta), l.rows, beta);
            let gamma = st.gamma as f32;
            for (k, th) in theta.iter_mut().enumerate() {
                if st.alive[k] && (*th == 0.0 || st.benefit[k] <= gamma * pressure[k]) {
                    sinking += usize::from(*th != 0.0);
                    st.alive[k] = false;
                    st.left_at[k] = step;
                }
                if !st.alive[k] {
                    *th = 0.0;
                }
            }
        }
        self.refresh_competition(trainer.graph(), holdout)?;
        Ok(sinking)
    }
}

/// `1 + β Σ_j R_ij s_j` of every weight: the factor of the price it pays, from the gates `s`
/// of the other weights of its row.
pub fn pressure(r: &Neighbours, s: &[f32], rows: usize, beta: f32) -> Vec<f32> {
    let mut out = vec![1.0f32; s.len()];
    if beta == 0.0 || r.nnz() == 0 {
        return out;
    }
    out.par_chunks_mut(rows).enumerate().for_each(|(i, col)| {
        for (j, v) in r.of(i) {
            let other = &s[j * rows..(j + 1) * rows];
            for (p, &sj) in col.iter_mut().zip(other) {
                *p += beta * v * sj;
            }
        }
    });
    out
}

/// One layer's benefits `b̂`, price factors `p` and alive flags, as [`price`] reads them.
pub type Part<'a> = (&'a [f32], &'a [f32], &'a [bool]);

/// The price at which `aim` of the weights of `parts` (one layer, or every layer sharing a
/// price) have a positive best response: weight `i` plays iff `b̂_i > γ p_i`, so `γ` is the
/// next ratio `b̂_i / p_i` below the aimed number of largest among the weights still
/// playing (0 if fewer are left).
pub fn price(parts: &[Part], aim: f64) -> f64 {
    let players: usize = parts.iter().map(|(_, _, alive)| alive.len()).sum();
    let want = (aim * players as f64).round() as usize;
    let mut ratios: Vec<f32> = parts
        .iter()
        .flat_map(|&(benefit, pressure, alive)| {
            benefit
                .iter()
                .zip(pressure)
                .zip(alive)
                .filter(|(_, &a)| a)
                .map(|((&b, &p), _)| b / p)
        })
        .collect();
    if want >= ratios.len() {
        return 0.0;
    }
    let (_, &mut kth, _) = ratios.select_nth_unstable_by(want, |a, b| b.total_cmp(a));
    (kth as f64).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The split keeps `θ = s·w`, holds `|w| ≥ r`, and gives a weight at 0 the sign that
    /// makes its benefit `r |g| ≥ 0`.
    #[test]
    fn split_reads_every_weight_as_gate_times_weight() {
        for &(theta, r) in &[(0.3f32, 0.1f32), (-0.05, 0.1), (0.1, 0.1), (-2.0, 0.5)] {
            let (s, w) = split(theta, r, 0.7);
            assert!((s * w - theta).abs() < 1e-7, "{theta} {r}: {s}·{w}");
            assert!(w.abs() >= r && (0.0..=1.0).contains(&s));
            assert!(s.to_bits() == 1.0f32.to_bits() || w.abs().to_bits() == r.to_bits());
        }
        for g in [0.4f32, -0.4] {
            let (s, w) = split(0.0, 0.2, g);
            assert_eq!(s.to_bits(), 0.0f32.to_bits());
            assert!((-w * g - 0.2 * g.abs()).abs() < 1e-7);
        }
    }

    /// The price leaves exactly the aimed number of weights with `b̂ > γ p`.
    #[test]
    fn price_keeps_the_aimed_number_with_positive_best_response() {
        let benefit: Vec<f32> = (0..100)
            .map(|i| 0.5 * (i as f32 * 0.37).sin() + 1.0)
            .collect();
        let pressure: Vec<f32> = (0..100).map(|i| 1.0 + (i % 3) as f32 * 0.2).collect();
        let mut alive = vec![true; 100];
        alive[..10].iter_mut().for_each(|a| *a = false);
        for aim in [0.2, 0.5, 0.8] {
            let gamma = price(&[(&benefit, &pressure, &alive)], aim) as f32;
            let playing = (0..100)
                .filter(|&i| alive[i] && benefit[i] > gamma * pressure[i])
                .count();
            assert_eq!(playing, (aim * 100.0).round() as usize, "aim {aim}");
        }
        assert_eq!(
            price(&[(&benefit, &pressure, &alive)], 0.95).to_bits(),
            0.0f64.to_bits()
        );
    }

    /// A price shared by two layers keeps the aimed number of the two together, the layer
    /// with the larger benefits keeping more of it than one price per layer would give it.
    #[test]
    fn a_shared_price_keeps_the_aim_over_the_layers_together() {
        let strong: Vec<f32> = (0..60).map(|i| 2.0 + (i as f32 * 0.71).sin()).collect();
        let weak: Vec<f32> = (0..140).map(|i| 1.2 + (i as f32 * 0.53).cos()).collect();
        let (ps, pw) = (vec![1.0f32; 60], vec![1.1f32; 140]);
        let (alive_s, alive_w) = (vec![true; 60], vec![true; 140]);
        let parts = [
            (&strong[..], &ps[..], &alive_s[..]),
            (&weak[..], &pw[..], &alive_w[..]),
        ];
        let aim = 0.3;
        let gamma = price(&parts, aim) as f32;
        let keeps = |b: &[f32], p: &[f32]| (0..b.len()).filter(|&i| b[i] > gamma * p[i]).count();
        let (ks, kw) = (keeps(&strong, &ps), keeps(&weak, &pw));
        assert_eq!(ks + kw, 60, "kept {ks} + {kw}");
        assert!(ks > 18, "the strong layer kept {ks}, its own share is 18");
    }
}
