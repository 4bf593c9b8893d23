//! The equilibrium-driven pruner (docs/mathematics.md): one [`EquilibriumPruner::after_step`] per
//! minibatch, after the weight optimiser's step; [`PruneRun`] owns the loop.
//!
//! Per step, for every gated layer:
//! 1. (if the symmetry is broken) decoupled weight decay `θ ← θ(1 − η_w λ)`;
//! 2. every `K` steps `R` is refreshed ([`Redundancy`]);
//! 3. `b̂_i ← m b̂_i + (1 − m)(−∂L/∂s_i)` and the projected gradient step on `U_i`:
//!    `s_i ← Π_[0,1](s_i + η_s(b̂_i − a_i s_i − γ − β Σ_{j≠i} R_ij s_j))`;
//! 4. every `K` steps, units whose gate stayed at exactly 0 for `patience` steps are removed,
//!    each with a [`UnitCertificate`] measured on held-out batches.
//!
//! Removal keeps the surviving gates (they are players, not constants): the layer's gates are
//! set to 1 around the trainer's surgery, so nothing is folded, then restored.

use std::path::{Path, PathBuf};

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::certificate::{GuardRecord, UnitCertificate};
use super::config::{GateStep, PruneConfig, ScaleSymmetry, TargetSchedule, TargetScope};
use super::layer_game::{
    approximate_equilibrium, dominated, layer_game, layer_gap, measure_benefits, outgoing_norms_sq,
    redundancy, unit_norms_sq, LayerGap,
};
use crate::error::{Error, Result};
use crate::io::write_json_atomic;
use crate::nn::{evaluate, Dataset, Model, Trainer};

/// Steps of projected gradient play used to predict a layer's equilibrium in target mode.
const CALIBRATION_ITERATIONS: usize = 300;
/// Bisection rounds on `γ` in target mode.
const CALIBRATION_ROUNDS: usize = 30;
/// Samples of the held-out probe batch for activation correlation.
const PROBE_ROWS: usize = 256;

/// The pruning state of one gated layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LayerState {
    layer: usize,
    /// Original index of each current unit.
    orig: Vec<usize>,
    /// Consecutive steps each gate has been exactly 0.
    zero_steps: Vec<usize>,
    /// Averaged benefit `b̂`.
    benefit: Vec<f64>,
    /// Running mean of the squared batch benefit (for [`GateStep::RmsNormalized`]).
    benefit_sq: Vec<f64>,
    /// Redundancy `R` (zero diagonal).
    redundancy: DMatrix<f64>,
    /// Original index of a unit kept by the collapse guard (its gate is frozen at 1).
    protected: Option<usize>,
    /// Participation cost `γ` of this layer's game after the ramp (every layer shares the
    /// configured `γ` unless target mode prices each layer on its own).
    gamma: f64,
    /// Gates at the previous evaluation (NaN before the first).
    #[serde(with = "super::nan_serde::vector")]
    prev_gate: Vec<f64>,
    /// Units of the layer before any removal.
    rho_total: usize,
    /// Norm of each unit's incoming row and bias at the start (held by normalisation).
    rho_in: Vec<f64>,
    /// Norm of each unit's outgoing weights at the start.
    rho_out: Vec<f64>,
}

/// One point of a gate trajectory (`step,layer,unit,value` in CSV).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryPoint {
    /// Optimiser step.
    pub step: u64,
    /// Layer index.
    pub layer: usize,
    /// Original unit index.
    pub unit: usize,
    /// Gate value.
    pub value: f64,
}

/// An evaluation: loss and accuracy next to each layer's equilibrium gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Epochs done.
    pub epoch: usize,
    /// Optimiser steps done.
    pub step: u64,
    /// Test loss (NaN without a test set).
    #[serde(with = "super::nan_serde::scalar")]
    pub test_loss: f64,
    /// Test accuracy (NaN without a test set).
    #[serde(with = "super::nan_serde::scalar")]
    pub test_accuracy: f64,
    /// Held-out loss.
    #[serde(with = "super::nan_serde::scalar")]
    pub holdout_loss: f64,
    /// Per layer: natural residual and Nash gap of the participation game with measured
    /// benefits, at the current gates.
    pub layers: Vec<LayerGap>,
}

/// How target mode chose `γ` (one per target group: each layer, or the network): an initial
/// value for which the measured games at the end of the warm-up predict the aim of that
/// step (bisection on their equilibria; 0 if they keep no more than the aim at `γ = 0`, as
/// always under the cubic schedule, whose first aim is every unit), then
/// a multiplicative adjustment every `K` steps (see `adjust_price`) until `control_fraction`
/// of the training steps; `γ` is then fixed so the gates settle in one game. `γ` is the only
/// lever: when the competition `β` alone removes more than the target, the run keeps fewer
/// units than asked, and the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Requested kept fraction.
    pub target_kept: f64,
    /// `γ` of each gated layer from the measured games.
    pub initial_gamma: Vec<f64>,
    /// Kept fraction the measured games predict at `initial_gamma`.
    pub predicted_kept: f64,
    /// Kept fraction the measured games predict without any price (`γ = 0`): what the
    /// competition alone leaves.
    #[serde(default)]
    pub kept_without_price: f64,
    /// Step at which the games were measured (end of warm-up).
    pub step: u64,
    /// Price adjustments made.
    pub adjustments: usize,
    /// Last step at which `γ` may change.
    pub control_until: u64,
}

/// Decay of the running mean of squared benefits ([`GateStep::RmsNormalized`]).
const RMS_DECAY: f64 = 0.99;
/// Added to the root mean square so that a unit with no benefit signal takes finite steps.
const RMS_FLOOR: f64 = 1e-8;

/// Smallest price the adjustment multiplies (a price of 0 could never rise).
const MIN_PRICE: f64 = 1e-6;

/// The pruner: gate dynamics, removal, certificates and records. Serialisable, so a run can
/// be resumed exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EquilibriumPruner {
    config: PruneConfig,
    step: u64,
    layers: Vec<LayerState>,
    certificates: Vec<UnitCertificate>,
    guards: Vec<GuardRecord>,
    trajectory: Vec<TrajectoryPoint>,
    evaluations: Vec<Evaluation>,
    calibration: Option<Calibration>,
    control_until: u64,
}

impl EquilibriumPruner {
    /// A pruner for `model` (its gated layers are the players).
    pub fn new(config: PruneConfig, model: &Model) -> Result<Self> {
        config.check()?;
        let mut layers: Vec<LayerState> = Vec::new();
        for layer in model.gated_layers() {
            let n = model.gate(layer)?.len();
            let (rho_in, rho_out) = unit_norms(model, layer)?;
            layers.push(LayerState {
                layer,
                orig: (0..n).collect(),
                zero_steps: vec![0; n],
                benefit: vec![0.0; n],
                benefit_sq: vec![0.0; n],
                redundancy: DMatrix::zeros(n, n),
                protected: None,
                gamma: config.gamma,
                rho_total: n,
                prev_gate: vec![f64::NAN; n],
                rho_in,
                rho_out,
            });
        }
        if layers.is_empty() {
            return Err(Error::NotPrunable {
                layer: 0,
                reason: "the model has no gated layers".into(),
            });
        }
        Ok(EquilibriumPruner {
            config,
            step: 0,
            layers,
            certificates: Vec::new(),
            guards: Vec::new(),
            trajectory: Vec::new(),
            evaluations: Vec::new(),
            calibration: None,
            control_until: u64::MAX,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PruneConfig {
        &self.config
    }

    /// The participation cost of each gated layer after the ramp (the calibrated ones in
    /// target mode).
    pub fn gammas(&self) -> Vec<f64> {
        self.layers.iter().map(|l| l.gamma).collect()
    }

    /// The factor in `[0, 1]` of the `γ` ramp that starts at the end of the warm-up.
    fn ramp(&self) -> f64 {
        let ramp = self.config.gamma_ramp_steps as f64;
        let since = self.step.saturating_sub(self.config.warmup_steps as u64) as f64;
        if ramp <= 0.0 {
            1.0
        } else {
            (since / ramp).min(1.0)
        }
    }

    /// Target mode's kept fraction aimed at now (`target_schedule`), `None` outside target mode.
    fn aim(&self) -> Option<f64> {
        let target = self.config.target_kept?;
        Some(match self.config.target_schedule {
            TargetSchedule::Immediate => target,
            TargetSchedule::Cubic => {
                let start = self.config.warmup_steps as f64;
                let window = (self.control_until as f64 - start).max(1.0);
                let p = ((self.step as f64 - start) / window).clamp(0.0, 1.0);
                target + (1.0 - target) * (1.0 - p).powi(3)
            }
        })
    }

    /// The layers priced together in target mode (indices into `self.layers`).
    fn target_groups(&self) -> Vec<Vec<usize>> {
        match self.config.target_scope {
            TargetScope::EachLayer => (0..self.layers.len()).map(|i| vec![i]).collect(),
            TargetScope::Network => vec![(0..self.layers.len()).collect()],
        }
    }

    /// Steps seen.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Certificates of every removed unit, in removal order.
    pub fn certificates(&self) -> &[UnitCertificate] {
        &self.certificates
    }

    /// Units kept by the layer-collapse guard.
    pub fn guards(&self) -> &[GuardRecord] {
        &self.guards
    }

    /// Recorded gate trajectories.
    pub fn trajectory(&self) -> &[TrajectoryPoint] {
        &self.trajectory
    }

    /// Evaluations so far.
    pub fn evaluations(&self) -> &[Evaluation] {
        &self.evaluations
    }

    /// Target-mode calibration, if it ran.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// Original indices of the units still present, per gated layer.
    pub fn kept_units(&self) -> Vec<(usize, Vec<usize>)> {
        self.layers
            .iter()
            .map(|l| (l.layer, l.orig.clone()))
            .collect()
    }

    fn check_model(&self, model: &Model) -> Result<()> {
        for l in &self.layers {
            let n = model.gate(l.layer)?.len();
            if n != l.orig.len() {
                return Err(Error::LengthMismatch {
                    field: format!("gates of layer {}", l.layer),
                    expected: l.orig.len(),
                    got: n,
                });
            }
        }
        Ok(())
    }

    /// The pruner's work after one optimiser step of `trainer` (see the module docs).
    pub fn after_step(&mut self, trainer: &mut Trainer, holdout: &Dataset) -> Result<()> {
        self.check_model(trainer.model())?;
        let step = self.step;
        self.step += 1;
        match self.config.symmetry {
            ScaleSymmetry::WeightDecay => {
                let factor = (1.0 - self.config.weight_lr() * self.config.weight_decay) as f32;
                decay_weights(trainer.model_mut(), factor);
            }
            ScaleSymmetry::Normalize => {
                for l in &self.layers {
                    normalize_units(trainer.model_mut(), l)?;
                }
            }
            ScaleSymmetry::Unbroken => {}
        }
        let refresh = step.is_multiple_of(self.config.refresh_every as u64);
        if refresh {
            self.refresh_redundancy(trainer.model(), holdout)?;
        }
        let gate_grads: Vec<Vec<f32>> = self
            .layers
            .iter()
            .map(|l| {
                trainer
                    .gradients()
                    .gate(l.layer)
                    .map(|g| g.iter().copied().collect())
                    .unwrap_or_default()
            })
            .collect();
        let m = self.config.benefit_momentum;
        for (l, g) in self.layers.iter_mut().zip(&gate_grads) {
            for ((b, b2), &v) in l.benefit.iter_mut().zip(&mut l.benefit_sq).zip(g) {
                *b = m * *b + (1.0 - m) * (-(v as f64));
                *b2 = RMS_DECAY * *b2 + (1.0 - RMS_DECAY) * (v as f64).powi(2);
            }
        }
        let playing = step >= self.config.warmup_steps as u64;
        if playing {
            if step == self.config.warmup_steps as u64 {
                if let Some(target) = self.aim() {
                    self.calibrate(trainer.model(), holdout, target)?;
                }
            }
            self.play(trainer.model_mut())?;
        }
        if step.is_multiple_of(self.config.record_every as u64) {
            self.record(trainer.model())?;
        }
        if playing && refresh && step > self.config.warmup_steps as u64 {
            self.adjust_price(trainer.model())?;
        }
        if playing && refresh && self.config.remove {
            self.remove_settled(trainer, holdout, false)?;
        }
        Ok(())
    }

    fn refresh_redundancy(&mut self, model: &Model, holdout: &Dataset) -> Result<()> {
        let rows = PROBE_ROWS.min(holdout.len());
        let probe = &holdout.inputs()[..rows * holdout.sample_len()];
        for l in self.layers.iter_mut() {
            l.redundancy = redundancy(model, l.layer, self.config.redundancy, probe, rows)?;
        }
        Ok(())
    }

    /// One projected gradient step of every gate on its own utility.
    fn play(&mut self, model: &mut Model) -> Result<()> {
        let (alpha, beta, eta, ramp) = (
            self.config.alpha,
            self.config.beta,
            self.config.gate_lr,
            self.ramp(),
        );
        // Bias correction of the running mean of squared benefits (it starts at 0).
        let correction = 1.0 - RMS_DECAY.powf(self.step as f64);
        let normalized = self.config.gate_step == GateStep::RmsNormalized;
        for l in self.layers.iter_mut() {
            let gamma = ramp * l.gamma;
            let norms = unit_norms_sq(model, l.layer)?;
            let s: Vec<f64> = model.gate(l.layer)?.iter().map(|&v| v as f64).collect();
            let pressure = if beta > 0.0 {
                &l.redundancy * DVector::from_column_slice(&s) * beta
            } else {
                DVector::zeros(s.len())
            };
            let gates = model.gate_mut(l.layer)?;
            for i in 0..s.len() {
                if l.protected == Some(l.orig[i]) {
                    gates[i] = 1.0;
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
                gates[i] = new;
                if new == 0.0 {
                    l.zero_steps[i] += 1;
                } else {
                    l.zero_steps[i] = 0;
                }
            }
        }
        Ok(())
    }

    fn record(&mut self, model: &Model) -> Result<()> {
        for l in &self.layers {
            for (i, &v) in model.gate(l.layer)?.iter().enumerate() {
                self.trajectory.push(TrajectoryPoint {
                    step: self.step - 1,
                    layer: l.layer,
                    unit: l.orig[i],
                    value: v as f64,
                });
            }
        }
        Ok(())
    }

    /// The measured game of each layer at the current model and step (benefits measured on
    /// `data`, each layer's `γ` as ramped now).
    fn measured_games(
        &self,
        model: &Model,
        data: &Dataset,
    ) -> Result<(Vec<crate::game::PruningGame>, f64)> {
        let (benefits, stats) = measure_benefits(model, data, self.config.batch_size)?;
        let ramp = self.ramp();
        let mut games = Vec::new();
        for (l, b) in self.layers.iter().zip(&benefits) {
            let norms = unit_norms_sq(model, l.layer)?;
            games.push(layer_game(
                b,
                &norms,
                self.config.alpha,
                ramp * l.gamma,
                self.config.beta,
                &l.redundancy,
            )?);
        }
        Ok((games, stats.loss))
    }

    /// Chooses each target group's `γ` so that the measured games' equilibria keep about
    /// `target` of the group's units (bisection on the equilibria of the static games).
    fn calibrate(&mut self, model: &Model, holdout: &Dataset, target: f64) -> Result<()> {
        self.refresh_redundancy(model, holdout)?;
        let (benefits, _) = measure_benefits(model, holdout, self.config.batch_size)?;
        let mut norms = Vec::new();
        for l in &self.layers {
            norms.push(unit_norms_sq(model, l.layer)?);
        }
        let kept_at = |group: &[usize], gamma: f64| -> Result<usize> {
            let mut kept = 0usize;
            for &li in group {
                let l = &self.layers[li];
                let (alpha, beta) = (self.config.alpha, self.config.beta);
                let g = layer_game(&benefits[li], &norms[li], alpha, gamma, beta, &l.redundancy)?;
                let s = approximate_equilibrium(&g, CALIBRATION_ITERATIONS);
                kept += s.iter().filter(|&&v| v > 0.0).count();
            }
            Ok(kept)
        };
        let mut gammas = vec![0.0; self.layers.len()];
        let mut predicted = 0usize;
        let mut without_price = 0usize;
        for group in self.target_groups() {
            let units: usize = group.iter().map(|&li| self.layers[li].orig.len()).sum();
            let at_zero = kept_at(&group, 0.0)?;
            without_price += at_zero;
            // No price when the games keep no more than the aim without one (always under
            // the cubic schedule, whose first aim is every unit); else bisection. The static
            // game misjudges the price (benefits of survivors grow as others leave); the
            // adjustment every `K` steps corrects that.
            let gamma = if at_zero as f64 <= target * units as f64 {
                0.0
            } else {
                let mut lo = 0.0;
                let mut hi = group
                    .iter()
                    .flat_map(|&li| benefits[li].iter().copied())
                    .fold(0.0f64, f64::max)
                    .max(1e-12)
                    * 2.0;
                for _ in 0..CALIBRATION_ROUNDS {
                    let mid = 0.5 * (lo + hi);
                    if kept_at(&group, mid)? as f64 > target * units as f64 {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                0.5 * (lo + hi)
            };
            predicted += kept_at(&group, gamma)?;
            for &li in &group {
                gammas[li] = gamma;
            }
        }
        for (l, &g) in self.layers.iter_mut().zip(&gammas) {
            l.gamma = g;
        }
        let total: usize = self.layers.iter().map(|l| l.orig.len()).sum();
        self.calibration = Some(Calibration {
            target_kept: self.config.target_kept.unwrap_or(target),
            initial_gamma: gammas,
            predicted_kept: predicted as f64 / total.max(1) as f64,
            kept_without_price: without_price as f64 / total.max(1) as f64,
            step: self.step - 1,
            adjustments: 0,
            control_until: self.control_until,
        });
        Ok(())
    }

    /// One price adjustment of each target group's `γ` towards the aimed kept fraction `a`
    /// ([`Self::aim`]): `γ ← max(γ, γ_min) exp(g clamp((active − a)/a, −1, 1))`, `g` the
    /// configured `price_gain` and `active` the group's fraction of positive gates.
    fn adjust_price(&mut self, model: &Model) -> Result<()> {
        let Some(target) = self.aim() else {
            return Ok(());
        };
        if self.step > self.control_until {
            return Ok(());
        }
        let gain = self.config.price_gain;
        for group in self.target_groups() {
            let total: usize = group.iter().map(|&li| self.layers[li].rho_total).sum();
            let mut active = 0usize;
            for &li in &group {
                let gates = model.gate(self.layers[li].layer)?;
                active += gates.iter().filter(|&&v| v > 0.0).count();
            }
            let frac = active as f64 / total.max(1) as f64;
            let e = ((frac - target) / target).clamp(-1.0, 1.0);
            for &li in &group {
                let l = &mut self.layers[li];
                l.gamma = l.gamma.max(MIN_PRICE) * (gain * e).exp();
            }
        }
        if let Some(c) = self.calibration.as_mut() {
            c.adjustments += 1;
        }
        Ok(())
    }

    /// Sets the last step at which target mode may change `γ` (`control_fraction` of
    /// `total_steps`).
    pub fn set_total_steps(&mut self, total_steps: u64) {
        self.control_until = (total_steps as f64 * self.config.control_fraction) as u64;
        if let Some(c) = self.calibration.as_mut() {
            c.control_until = self.control_until;
        }
    }

    /// Removes units whose gates sat at 0 for the patience window (or, if `all_zero`, every
    /// unit at 0), recording certificates; applies the layer-collapse guard.
    fn remove_settled(
        &mut self,
        trainer: &mut Trainer,
        holdout: &Dataset,
        all_zero: bool,
    ) -> Result<()> {
        let patience = if all_zero { 0 } else { self.config.patience };
        let gate_zero = |model: &Model, layer: usize, i: usize| -> bool {
            model.gate(layer).map(|g| g[i] == 0.0).unwrap_or(false)
        };
        let any = self.layers.iter().any(|l| {
            (0..l.orig.len()).any(|i| {
                l.protected != Some(l.orig[i])
                    && gate_zero(trainer.model(), l.layer, i)
                    && (all_zero || l.zero_steps[i] >= patience)
            })
        });
        if !any {
            return Ok(());
        }
        let (games, _) = self.measured_games(trainer.model(), holdout)?;
        let ramp = self.ramp();
        let step = self.step.saturating_sub(1);
        // Target mode never removes below a group's target count during training (removal
        // is permanent; the price adjustment needs units it can bring back).
        let groups = self.target_groups();
        let mut group_of = vec![0; self.layers.len()];
        let mut allowance = Vec::new();
        for (gi, group) in groups.iter().enumerate() {
            let total: usize = group.iter().map(|&li| self.layers[li].rho_total).sum();
            let now: usize = group.iter().map(|&li| self.layers[li].orig.len()).sum();
            allowance.push(match (self.aim(), all_zero) {
                (Some(f), false) => now.saturating_sub((f * total as f64).ceil() as usize),
                _ => usize::MAX,
            });
            for &li in group {
                group_of[li] = gi;
            }
        }
        for (li, game) in games.iter().enumerate() {
            let layer = self.layers[li].layer;
            let gamma = ramp * self.layers[li].gamma;
            let allowance = &mut allowance[group_of[li]];
            let s: Vec<f64> = trainer
                .model()
                .gate(layer)?
                .iter()
                .map(|&v| v as f64)
                .collect();
            let candidates: Vec<usize> = (0..s.len())
                .filter(|&i| {
                    let l = &self.layers[li];
                    l.protected != Some(l.orig[i])
                        && s[i] == 0.0
                        && (all_zero || l.zero_steps[i] >= patience)
                })
                .collect();
            let pressure = game.competition_pressure(&s);
            let net = |i: usize| game.benefit()[i] - gamma - pressure[i];
            let mut candidates = candidates;
            if candidates.len() > *allowance {
                candidates.sort_by(|&a, &b| net(a).total_cmp(&net(b)));
                candidates.truncate(*allowance);
                candidates.sort_unstable();
            }
            *allowance = allowance.saturating_sub(candidates.len());
            if candidates.is_empty() {
                continue;
            }
            let dom = dominated(game)?;
            let mut keep: Vec<usize> = (0..s.len()).filter(|i| !candidates.contains(i)).collect();
            if keep.is_empty() {
                // Layer-collapse guard: keep the unit with the largest benefit − cost.
                let best = candidates
                    .iter()
                    .copied()
                    .max_by(|&a, &b| net(a).total_cmp(&net(b)))
                    .unwrap_or(0);
                keep.push(best);
                let l = &mut self.layers[li];
                l.protected = Some(l.orig[best]);
                self.guards.push(GuardRecord {
                    layer,
                    unit: l.orig[best],
                    step,
                    net: net(best),
                });
            }
            for &i in candidates.iter().filter(|i| !keep.contains(i)) {
                let cost = gamma + pressure[i];
                self.certificates.push(UnitCertificate {
                    layer,
                    unit: self.layers[li].orig[i],
                    step,
                    benefit: game.benefit()[i],
                    cost,
                    margin: cost - game.benefit()[i],
                    self_cost: game.self_cost()[i],
                    cost_bound: dom.cost_bound[i],
                    t3: dom.t3[i],
                    dominated: dom.dominated[i],
                    reason: if all_zero { "final" } else { "equilibrium" }.into(),
                });
            }
            // Surgery with gates at 1 so nothing is folded; the survivors' gates come back.
            let mut kept_gates: Vec<f32> = keep.iter().map(|&i| s[i] as f32).collect();
            if let Some(p) = self.layers[li].protected {
                for (k, &i) in keep.iter().enumerate() {
                    if self.layers[li].orig[i] == p {
                        kept_gates[k] = 1.0;
                    }
                }
            }
            let ones = vec![1.0f32; s.len()];
            trainer.model_mut().set_gate(layer, &ones)?;
            let norms_before = self.all_unit_norms(trainer.model())?;
            trainer.remove_units(layer, &keep)?;
            self.rescale_neighbour_references(trainer.model(), &norms_before, li)?;
            trainer.model_mut().set_gate(layer, &kept_gates)?;
            self.retain_units(li, &keep);
        }
        Ok(())
    }

    /// Keeps the state of units `keep` of `self.layers[li]` after the model lost the others.
    fn retain_units(&mut self, li: usize, keep: &[usize]) {
        let l = &mut self.layers[li];
        l.orig = keep.iter().map(|&i| l.orig[i]).collect();
        l.zero_steps = keep.iter().map(|&i| l.zero_steps[i]).collect();
        l.benefit = keep.iter().map(|&i| l.benefit[i]).collect();
        l.benefit_sq = keep.iter().map(|&i| l.benefit_sq[i]).collect();
        l.rho_in = keep.iter().map(|&i| l.rho_in[i]).collect();
        l.prev_gate = keep.iter().map(|&i| l.prev_gate[i]).collect();
        l.rho_out = keep.iter().map(|&i| l.rho_out[i]).collect();
        l.redundancy = DMatrix::from_fn(keep.len(), keep.len(), |a, b| {
            l.redundancy[(keep[a], keep[b])]
        });
    }

    /// Incoming and outgoing norms of the units of every gated layer.
    fn all_unit_norms(&self, model: &Model) -> Result<Vec<(Vec<f64>, Vec<f64>)>> {
        self.layers
            .iter()
            .map(|l| unit_norms(model, l.layer))
            .collect()
    }

    /// Removing units of layer `removed` also removes entries from the other layers' weight
    /// vectors (the columns of the next layer's rows, the rows of the previous layer's
    /// outgoing columns). Their reference norms `ρ` are scaled by the same factor as the
    /// vectors' norms, so the ratio `‖w‖/ρ` that [`ScaleSymmetry::Normalize`] moves into the
    /// gate is unchanged by the surgery. A stale `ρ` (a full-length norm held for a
    /// shortened vector) has the two normalisations that share a weight matrix undo each
    /// other every step and pump scale into the gates and, past a gate of 1, into the
    /// outgoing weights without bound.
    fn rescale_neighbour_references(
        &mut self,
        model: &Model,
        before: &[(Vec<f64>, Vec<f64>)],
        removed: usize,
    ) -> Result<()> {
        let after = self.all_unit_norms(model)?;
        let rescale = |rho: &mut [f64], old: &[f64], new: &[f64]| {
            for ((r, &o), &n) in rho.iter_mut().zip(old).zip(new) {
                if o > 0.0 && n > 0.0 {
                    *r *= n / o;
                }
            }
        };
        for (k, l) in self.layers.iter_mut().enumerate() {
            if k == removed {
                continue;
            }
            rescale(&mut l.rho_in, &before[k].0, &after[k].0);
            rescale(&mut l.rho_out, &before[k].1, &after[k].1);
        }
        Ok(())
    }

    /// Ends training: removes every unit whose gate is exactly 0 (exact: it contributes
    /// nothing), with certificates.
    pub fn finish(&mut self, trainer: &mut Trainer, holdout: &Dataset) -> Result<()> {
        self.check_model(trainer.model())?;
        if self.config.remove {
            self.remove_settled(trainer, holdout, true)?;
        }
        Ok(())
    }

    /// Evaluates loss, accuracy and each layer's equilibrium gap (benefits on `holdout`, and
    /// on `train_probe` if given); the result is recorded.
    pub fn evaluate(
        &mut self,
        model: &Model,
        holdout: &Dataset,
        train_probe: Option<&Dataset>,
        test: Option<&Dataset>,
        epoch: usize,
    ) -> Result<Evaluation> {
        self.check_model(model)?;
        let (games, holdout_loss) = self.measured_games(model, holdout)?;
        let train_games = match train_probe {
            Some(t) => Some(self.measured_games(model, t)?.0),
            None => None,
        };
        let mut layers = Vec::new();
        for (k, (l, g)) in self.layers.iter_mut().zip(&games).enumerate() {
            let s: Vec<f64> = model.gate(l.layer)?.iter().map(|&v| v as f64).collect();
            let mut gap = layer_gap(l.layer, g, &s);
            if let Some(tg) = &train_games {
                gap.natural_residual_train = crate::game::natural_residual(&tg[k], &s);
            }
            let changes: Vec<f64> = s
                .iter()
                .zip(&l.prev_gate)
                .filter(|(_, p)| p.is_finite())
                .map(|(a, p)| (a - p).abs())
                .collect();
            let drift = if changes.is_empty() {
                f64::NAN
            } else {
                changes.iter().sum::<f64>() / changes.len() as f64
            };
            gap.drift = drift;
            let out = outgoing_norms_sq(model, l.layer)?;
            gap.mean_outgoing_norm =
                out.iter().map(|v| v.sqrt()).sum::<f64>() / out.len().max(1) as f64;
            l.prev_gate = s;
            layers.push(gap);
        }
        let (test_loss, test_accuracy) = match test {
            Some(t) => {
                let st = evaluate(model, t, 500)?;
                (st.loss, st.accuracy())
            }
            None => (f64::NAN, f64::NAN),
        };
        let e = Evaluation {
            epoch,
            step: self.step,
            test_loss,
            test_accuracy,
            holdout_loss,
            layers,
        };
        self.evaluations.push(e.clone());
        Ok(e)
    }
}

/// Norms of each unit's incoming row (with bias) and outgoing weights.
fn unit_norms(model: &Model, layer: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let w = model.incoming_weights(layer)?;
    let b = model.layers()[layer].params().map(|(_, b)| b.clone());
    let out = outgoing_norms_sq(model, layer)?;
    let rin = (0..w.nrows())
        .map(|i| {
            let bias = b.as_ref().map_or(0.0, |b| (b[i] as f64).powi(2));
            (w.row(i).iter().map(|&v| (v as f64).powi(2)).sum::<f64>() + bias).sqrt()
        })
        .collect();
    Ok((rin, out.iter().map(|v| v.sqrt()).collect()))
}

/// The function-preserving rescaling of [`ScaleSymmetry::Normalize`] for one layer:
/// `w_in ← w_in ρ_in/‖w_in‖`, and the gate absorbs `k = (‖w_in‖/ρ_in)(‖w_out‖/ρ_out)` while
/// `w_out` returns to `ρ_out` — unless `s k > 1`, then `s = 1` and `w_out` keeps the excess.
/// Exact because `relu(c z) = c relu(z)` for `c > 0` and pooling/flatten commute with it.
fn normalize_units(model: &mut Model, l: &LayerState) -> Result<()> {
    let (rin, rout) = unit_norms(model, l.layer)?;
    let units = rin.len();
    let mut gates: Vec<f32> = model.gate(l.layer)?.iter().copied().collect();
    let mut scale_in = vec![1.0f32; units];
    let mut scale_out = vec![1.0f32; units];
    for i in 0..units {
        if rin[i] <= 0.0
            || rout[i] <= 0.0
            || l.rho_in[i] <= 0.0
            || l.rho_out[i] <= 0.0
            || l.protected == Some(l.orig[i])
        {
            continue;
        }
        let c_in = l.rho_in[i] / rin[i];
        let s = gates[i] as f64;
        let k = (rin[i] / l.rho_in[i]) * (rout[i] / l.rho_out[i]);
        let s_new = (s * k).min(1.0);
        scale_in[i] = c_in as f32;
        scale_out[i] = if s == 0.0 {
            (l.rho_out[i] / rout[i]) as f32
        } else {
            (s / (s_new * c_in)) as f32
        };
        gates[i] = s_new as f32;
    }
    if let Some((w, b)) = model.parameters_mut(l.layer) {
        // Column-major [units, in]: entry (i, c) at c * units + i.
        for (idx, v) in w.iter_mut().enumerate() {
            *v *= scale_in[idx % units];
        }
        for (v, &c) in b.iter_mut().zip(&scale_in) {
            *v *= c;
        }
    }
    if let Some(next) = model.next_weight_layer(l.layer) {
        let map = crate::nn::surgery::consumer_columns(model, l.layer, next)?;
        if let Some((w, _)) = model.parameters_mut(next) {
            let rows = w.len() / (units * map.per).max(1);
            for (u, &c) in scale_out.iter().enumerate() {
                let cols = map.of(u);
                for v in &mut w[cols.start * rows..cols.end * rows] {
                    *v *= c;
                }
            }
        }
    }
    model.set_gate(l.layer, &gates)
}

/// Multiplies every weight, and the biases of gated layers, by `factor`.
fn decay_weights(model: &mut Model, factor: f32) {
    let gated = model.gated_layers();
    for layer in 0..model.layers().len() {
        let is_gated = gated.contains(&layer);
        if let Some((w, b)) = model.parameters_mut(layer) {
            w.iter_mut().for_each(|v| *v *= factor);
            if is_gated {
                b.iter_mut().for_each(|v| *v *= factor);
            }
        }
    }
}

/// A resumable pruning run: the trainer (weights, optimiser, data order) and the pruner.
pub struct PruneRun {
    trainer: Trainer,
    pruner: EquilibriumPruner,
    epoch: usize,
}

/// File names inside a run's checkpoint folder.
const CHECKPOINT: &str = "checkpoint.safetensors";
const STATE: &str = "pruner_state.json";

#[derive(Serialize, Deserialize)]
struct SavedState {
    epoch: usize,
    global_step: u64,
    pruner: EquilibriumPruner,
}

impl PruneRun {
    /// A fresh run of `config` on `model`.
    pub fn new(model: Model, config: PruneConfig) -> Result<Self> {
        let pruner = EquilibriumPruner::new(config.clone(), &model)?;
        let trainer = Trainer::new(model, config.train_config(config.game_epochs()))?;
        Ok(PruneRun {
            trainer,
            pruner,
            epoch: 0,
        })
    }

    /// The model being pruned (gated, with units removed so far).
    pub fn model(&self) -> &Model {
        self.trainer.model()
    }

    /// The pruner.
    pub fn pruner(&self) -> &EquilibriumPruner {
        &self.pruner
    }

    /// Epochs done.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// True once every epoch of the game has run.
    pub fn finished(&self) -> bool {
        self.epoch >= self.pruner.config.game_epochs()
    }

    /// One epoch of training with gate play, then an evaluation.
    pub fn run_epoch(
        &mut self,
        train: &Dataset,
        holdout: &Dataset,
        test: Option<&Dataset>,
    ) -> Result<Evaluation> {
        let per_epoch = train.len().div_ceil(self.pruner.config.batch_size) as u64;
        self.pruner
            .set_total_steps(per_epoch * self.pruner.config.game_epochs() as u64);
        loop {
            let rec = self.trainer.step(train)?;
            self.pruner.after_step(&mut self.trainer, holdout)?;
            if rec.epoch_done {
                break;
            }
        }
        self.epoch += 1;
        let probe = train.take(holdout.len());
        self.pruner.evaluate(
            self.trainer.model(),
            holdout,
            Some(&probe),
            test,
            self.epoch,
        )
    }

    /// Runs the remaining epochs, saving a checkpoint in `dir` after each (if given).
    pub fn run(
        &mut self,
        train: &Dataset,
        holdout: &Dataset,
        test: Option<&Dataset>,
        dir: Option<&Path>,
    ) -> Result<()> {
        while !self.finished() {
            self.run_epoch(train, holdout, test)?;
            if let Some(d) = dir {
                self.save(d)?;
            }
        }
        Ok(())
    }

    /// Writes the checkpoint (weights, gates, optimiser, data order) and the pruner state
    /// into `dir`, each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        self.trainer.save_checkpoint(&dir.join(CHECKPOINT))?;
        write_json_atomic(
            &dir.join(STATE),
            &SavedState {
                epoch: self.epoch,
                global_step: self.trainer.global_step(),
                pruner: self.pruner.clone(),
            },
        )
    }

    /// True if `dir` holds a checkpoint written by [`PruneRun::save`].
    pub fn has_checkpoint(dir: &Path) -> bool {
        dir.join(CHECKPOINT).is_file() && dir.join(STATE).is_file()
    }

    /// Resumes a run saved in `dir`; `config` must equal the saved one.
    pub fn resume(dir: &Path, config: &PruneConfig) -> Result<Self> {
        let state_path: PathBuf = dir.join(STATE);
        let text = crate::io::read_to_string(&state_path)?;
        let saved: SavedState = serde_json::from_str(&text).map_err(|e| Error::Format {
            path: state_path.clone(),
            message: e.to_string(),
        })?;
        if &saved.pruner.config != config {
            return Err(Error::ResumeMismatch {
                path: state_path,
                message: "the saved configuration differs from the requested one".into(),
            });
        }
        let trainer = Trainer::resume(&dir.join(CHECKPOINT))?;
        if trainer.global_step() != saved.global_step {
            return Err(Error::ResumeMismatch {
                path: state_path,
                message: format!(
                    "checkpoint at step {} but pruner state at step {}",
                    trainer.global_step(),
                    saved.global_step
                ),
            });
        }
        saved.pruner.check_model(trainer.model())?;
        Ok(PruneRun {
            trainer,
            pruner: saved.pruner,
            epoch: saved.epoch,
        })
    }

    /// Ends the run: removes every unit at exactly 0 and returns the gated model and the
    /// pruner (certificates, trajectories, evaluations).
    pub fn finish(mut self, holdout: &Dataset) -> Result<(Model, EquilibriumPruner)> {
        self.pruner.finish(&mut self.trainer, holdout)?;
        Ok((self.trainer.into_model(), self.pruner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Model;

    /// Outputs before and after the normalising rescaling agree to this tolerance.
    const TOL: f32 = 1e-5;

    #[test]
    fn normalisation_preserves_the_function() {
        let mut model = Model::mlp(&[5, 7, 6, 3], 4).unwrap();
        let pruner = EquilibriumPruner::new(PruneConfig::default(), &model).unwrap();
        // Move weights away from their initial norms and gates off 1 (one gate at 0, one
        // whose rescaled value would pass 1).
        for layer in [0, 2] {
            let (w, b) = model.parameters_mut(layer).unwrap();
            for (k, v) in w.iter_mut().enumerate() {
                *v *= 0.5 + (k % 5) as f32 * 0.4;
            }
            b.iter_mut().for_each(|v| *v += 0.1);
            let n = model.gate(layer).unwrap().len();
            let g: Vec<f32> = (0..n).map(|i| [0.0, 0.3, 0.9, 0.6][i % 4]).collect();
            model.set_gate(layer, &g).unwrap();
        }
        let x: Vec<f32> = (0..4 * 5)
            .map(|k| ((k * 7 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let before = model.predict(&x, 4).unwrap();
        for l in &pruner.layers {
            normalize_units(&mut model, l).unwrap();
        }
        let after = model.predict(&x, 4).unwrap();
        assert!((before - after).abs().max() <= TOL);
        // Incoming norms are held in every layer; outgoing norms exactly in the last gated
        // layer (a deeper layer's row normalisation rescales the columns of a shallower one).
        for (k, l) in pruner.layers.iter().enumerate() {
            let (rin, rout) = unit_norms(&model, l.layer).unwrap();
            let g = model.gate(l.layer).unwrap();
            for i in 0..rin.len() {
                assert!((rin[i] - l.rho_in[i]).abs() < 1e-4);
                if k + 1 == pruner.layers.len() && g[i] < 1.0 {
                    assert!((rout[i] - l.rho_out[i]).abs() < 1e-4);
                }
            }
        }
    }

    /// One gate step under both rules from a state with known benefits: the normalised rule
    /// divides the plain step by the root mean square of the benefit (bias-corrected), and a
    /// gate whose utility gradient is 0 stays put under both (same fixed points).
    #[test]
    fn rms_normalised_gate_step_rescales_the_step_and_keeps_fixed_points() {
        let step_of = |rule: GateStep| -> Vec<f32> {
            let mut model = Model::mlp(&[3, 4, 2], 1).unwrap();
            model.set_gate(0, &[0.5; 4]).unwrap();
            let config = PruneConfig {
                alpha: 0.0,
                beta: 0.0,
                gamma: 0.1,
                gate_lr: 0.2,
                gate_step: rule,
                ..PruneConfig::default()
            };
            let mut p = EquilibriumPruner::new(config, &model).unwrap();
            p.step = 1;
            let l = &mut p.layers[0];
            // Benefits 0.1 (= γ: a fixed point), 0.3, -0.2, 0.5; mean squares 4× the square.
            l.benefit = vec![0.1, 0.3, -0.2, 0.5];
            l.benefit_sq = l
                .benefit
                .iter()
                .map(|b| 4.0 * b * b * (1.0 - RMS_DECAY))
                .collect();
            p.play(&mut model).unwrap();
            model.gate(0).unwrap().iter().copied().collect()
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

    /// The cubic aim starts at every unit at the end of the warm-up, falls monotonically,
    /// reaches the target at the end of the control window and stays there; the immediate
    /// aim is the target throughout; outside target mode there is no aim.
    #[test]
    fn cubic_target_schedule_falls_from_all_units_to_the_target() {
        let model = Model::mlp(&[3, 4, 2], 1).unwrap();
        let pruner_with = |schedule: TargetSchedule, target: Option<f64>| {
            let config = PruneConfig {
                target_kept: target,
                target_schedule: schedule,
                warmup_steps: 100,
                control_fraction: 0.5,
                ..PruneConfig::default()
            };
            let mut p = EquilibriumPruner::new(config, &model).unwrap();
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

    /// After units of one layer are removed, normalising is idempotent again: a second pass
    /// changes no weight and no gate (the first may, by rounding). With the neighbours'
    /// reference norms left stale the two normalisations sharing the middle weight matrix
    /// rescale it against each other on every pass, which the test also shows.
    #[test]
    fn removal_keeps_normalisation_idempotent() {
        let passes = |rescale_references: bool| -> f32 {
            let mut model = Model::mlp(&[5, 8, 6, 3], 4).unwrap();
            let mut pruner = EquilibriumPruner::new(PruneConfig::default(), &model).unwrap();
            model
                .set_gate(0, &[0.5, 0.7, 0.3, 0.9, 0.6, 0.4, 0.8, 0.2])
                .unwrap();
            model.set_gate(2, &[0.5, 0.6, 0.7, 0.4, 0.3, 0.8]).unwrap();
            for l in &pruner.layers {
                normalize_units(&mut model, l).unwrap();
            }
            let keep = [0, 2, 3];
            let before = pruner.all_unit_norms(&model).unwrap();
            model.remove_units(2, &keep).unwrap();
            if rescale_references {
                pruner
                    .rescale_neighbour_references(&model, &before, 1)
                    .unwrap();
            }
            pruner.retain_units(1, &keep);
            let snapshot = |m: &Model| -> Vec<f32> {
                let mut v = Vec::new();
                for layer in [0, 2, 4] {
                    let (w, b) = m.layers()[layer].params().unwrap();
                    v.extend(w.iter().copied());
                    v.extend(b.iter().copied());
                }
                for layer in [0, 2] {
                    v.extend(m.gate(layer).unwrap().iter().copied());
                }
                v
            };
            for l in &pruner.layers {
                normalize_units(&mut model, l).unwrap();
            }
            let first = snapshot(&model);
            for l in &pruner.layers {
                normalize_units(&mut model, l).unwrap();
            }
            let second = snapshot(&model);
            first
                .iter()
                .zip(&second)
                .map(|(a, b)| (a - b).abs() / a.abs().max(1e-3))
                .fold(0.0, f32::max)
        };
        // f32 rescaling by factors within a few ulps of 1.
        let fixed = passes(true);
        assert!(fixed < 1e-5, "largest relative change {fixed}");
        let stale = passes(false);
        assert!(
            stale > 1e-2,
            "stale references changed weights by only {stale}"
        );
    }
}
