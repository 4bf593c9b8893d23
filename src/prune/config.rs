//! Hyper-parameters of the equilibrium-driven pruner, validated once by [`PruneConfig::check`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::graph::train::FitConfig;
use crate::nn::LrSchedule;
use crate::nn::OptimizerConfig;

/// How the redundancy `R_ij ∈ [0, 1]` between two units of a layer is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Redundancy {
    /// `|cos|` of the incoming weight vectors (filters for conv layers); cheap, data-free.
    #[default]
    WeightCosine,
    /// `|corr|` of the gated activations on one held-out batch (every spatial position of a
    /// filter counts as a sample).
    ActivationCorrelation,
}

/// How the ReLU scale symmetry `(s_i, w_out,i) → (s_i/c, c·w_out,i)` is broken
/// (`proofs/S1-scale-symmetry.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ScaleSymmetry {
    /// After every step, a function-preserving rescaling moves each unit's scale into its
    /// gate: incoming row (with bias) and outgoing weights go back to their initial norms and
    /// `s_i` absorbs the ratio (the excess stays in the outgoing weights when `s_i` would
    /// pass 1). The gate is then the unit's only free scale.
    #[default]
    Normalize,
    /// Decoupled weight decay `θ ← θ(1 − η_w λ)` on every weight and gated bias.
    WeightDecay,
    /// Nothing: the plain game, which has no interior equilibrium (gates drift to 0 while
    /// outgoing weights grow).
    Unbroken,
}

/// How a gate's projected gradient step is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GateStep {
    /// `s_i ← Π(s_i + η_s F_i)`: one step size for every gate.
    #[default]
    Gradient,
    /// `s_i ← Π(s_i + η_s F_i / √v_i)`, `v_i` a running mean of the squared batch benefit
    /// (decay 0.99, bias-corrected). A positive diagonal scaling leaves the fixed points of
    /// the projected step — the equilibria — unchanged on a box, while the step adapts to
    /// each gate's scale of benefits, which spans orders of magnitude across units and over
    /// training; `η_s` becomes roughly the largest move of a gate per step.
    RmsNormalized,
}

/// Which units target mode prices together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TargetScope {
    /// Every gated layer is its own game with its own price `γ_l`, adjusted so that the
    /// layer keeps the target fraction (uniform per-layer sparsity, as most baselines use).
    /// The layers are separate games, so nothing couples their prices; on Fashion-MNIST a
    /// shared price starved the first layer and cost 1.8 points at 9% kept (`docs/pruning.md`).
    #[default]
    EachLayer,
    /// One price for the whole network: the target holds for all hidden units together and
    /// the layers' games decide how many each layer keeps.
    Network,
}

/// How target mode's kept fraction moves from all units to `target_kept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TargetSchedule {
    /// The price aims at `target_kept` from the end of the warm-up.
    #[default]
    Immediate,
    /// The aim falls as `F + (1 − F)(1 − p)³`, `p` the fraction of the control window
    /// (end of the warm-up to `control_fraction` of training) gone by: units leave over the window,
    /// fastest at first while the weights still move most, instead of in one burst that
    /// drags every gate of the layer down with the price. On the Fashion-MNIST MLP over 15
    /// epochs, asked for 0.5 / 0.25 / 0.1, it kept 0.44 / 0.25 / 0.097 (immediate: 0.34 /
    /// 0.22 / 0.099) and was more accurate at each; but the price starts at 0 and rises by
    /// relative steps, too slowly for a short run (the 5-epoch CNN removed no filter for a
    /// 0.5 target), so it is not the default (`docs/pruning.md`).
    Cubic,
}

/// Everything that defines a pruning run; saved next to every result (the seed included).
///
/// The gate step is `s_i ← Π_[0,1](s_i + η_s(b̂_i − a_i s_i − γ − β Σ_{j≠i} R_ij s_j))` with
/// `b̂_i` an exponential average of `−∂L/∂s_i` and `a_i = α(‖w_in,i‖² + b_i² + ‖w_out,i‖²)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PruneConfig {
    /// Self-cost scale `α ≥ 0`.
    pub alpha: f64,
    /// Competition scale `β ≥ 0`.
    pub beta: f64,
    /// Participation cost `γ ≥ 0` (replaced by the calibrated value in target mode).
    pub gamma: f64,
    /// Gate step size `η_s > 0`.
    pub gate_lr: f64,
    /// How the gate step is scaled.
    pub gate_step: GateStep,
    /// Refresh `R` and look for removable units every `K` steps.
    pub refresh_every: usize,
    /// Steps a gate must stay at exactly 0 before its unit is removed.
    pub patience: usize,
    /// Redundancy measure.
    pub redundancy: Redundancy,
    /// How the ReLU scale symmetry is broken.
    pub symmetry: ScaleSymmetry,
    /// Decoupled weight decay `λ` (`θ ← θ(1 − η_w λ)`) for [`ScaleSymmetry::WeightDecay`].
    pub weight_decay: f64,
    /// Averaging factor in `[0, 1)` of the benefit estimate `b̂` (0 = raw batch gradient).
    pub benefit_momentum: f64,
    /// Optimiser steps before gates start to play (dense warm-up).
    pub warmup_steps: usize,
    /// Steps over which the participation cost rises linearly from 0 to `γ` after the
    /// warm-up, so units leave one by one in order of their net benefit instead of in one
    /// burst while the benefits they leave behind have not been redistributed yet.
    pub gamma_ramp_steps: usize,
    /// Keep about this fraction of hidden units (of each layer or of the network, by
    /// `target_scope`): `γ` is calibrated on the games measured at the end of the warm-up,
    /// then adjusted every `K` steps until `control_fraction` of training, then fixed.
    pub target_kept: Option<f64>,
    /// Which units share a price in target mode.
    pub target_scope: TargetScope,
    /// How target mode's aim moves to `target_kept`.
    pub target_schedule: TargetSchedule,
    /// Gain `g > 0` of target mode's price adjustment
    /// `γ ← γ exp(g clamp((active − a)/a, −1, 1))` every `K` steps, `a` the aimed fraction.
    pub price_gain: f64,
    /// Fraction of the training steps during which target mode may adjust `γ`; after it `γ`
    /// is fixed, so the remaining steps train the network that is left in one game.
    pub control_fraction: f64,
    /// Remove units structurally during training (`false`: gates only, as network slimming).
    pub remove: bool,
    /// Held-out samples carved from the end of the training set for benefit measurements.
    pub holdout: usize,
    /// Record gate trajectories every this many steps.
    pub record_every: usize,
    /// Training epochs: the game's, then the survivors' refit (`refit_fraction`).
    pub epochs: usize,
    /// Fraction of `epochs` given to the survivors after the game: the game plays the first
    /// epochs on its own learning-rate schedule, removes every unit at 0, and the units left
    /// train on the plain loss, gates folded, for the rest on a fresh schedule. The game's
    /// costs shrink the units that stay as a lasso shrinks its coefficients; the refit undoes
    /// that within the same training budget as the dense network's.
    pub refit_fraction: f64,
    /// Fine-tuning epochs after removal (gates folded, weights only).
    pub finetune_epochs: usize,
    /// Fine-tuning learning rate as a multiple of the training rate (the usual practice of
    /// fine-tuning below the training rate: a full-rate restart first undoes a converged
    /// network before it repairs a damaged one).
    pub finetune_lr_scale: f64,
    /// Minibatch size.
    pub batch_size: usize,
    /// Weight optimiser.
    pub optimizer: OptimizerConfig,
    /// Weight learning-rate schedule over the pruning epochs (a decaying rate lets the
    /// weights, and with them the gates, come to rest).
    pub schedule: LrSchedule,
    /// Zero padding of the random-crop augmentation of image data (0: none).
    pub crop_padding: usize,
    /// Random horizontal flips of image data.
    pub flip: bool,
    /// Seed of the initial weights, shuffling and baselines.
    pub seed: u64,
}

impl Default for PruneConfig {
    fn default() -> Self {
        PruneConfig {
            alpha: 1e-4,
            beta: 1e-4,
            gamma: 2e-3,
            gate_lr: 1.0,
            gate_step: GateStep::Gradient,
            refresh_every: 50,
            patience: 100,
            redundancy: Redundancy::WeightCosine,
            symmetry: ScaleSymmetry::Normalize,
            weight_decay: 0.1,
            benefit_momentum: 0.9,
            warmup_steps: 200,
            gamma_ramp_steps: 0,
            target_kept: None,
            target_scope: TargetScope::EachLayer,
            target_schedule: TargetSchedule::Immediate,
            price_gain: 0.5,
            control_fraction: 0.8,
            remove: true,
            holdout: 2000,
            record_every: 25,
            epochs: 5,
            refit_fraction: 0.2,
            finetune_epochs: 1,
            finetune_lr_scale: 1.0,
            batch_size: 128,
            optimizer: OptimizerConfig::adam(1e-3),
            schedule: LrSchedule::Constant,
            crop_padding: 0,
            flip: false,
            seed: 42,
        }
    }
}

fn finite_non_negative(name: &str, v: f64) -> Result<()> {
    if !v.is_finite() || v < 0.0 {
        return Err(Error::invalid(
            name,
            format!("{v}: must be a finite number >= 0"),
        ));
    }
    Ok(())
}

impl PruneConfig {
    /// Checks every range; the error names the parameter and the allowed range.
    pub fn check(&self) -> Result<()> {
        finite_non_negative("alpha", self.alpha)?;
        finite_non_negative("beta", self.beta)?;
        finite_non_negative("gamma", self.gamma)?;
        finite_non_negative("weight_decay", self.weight_decay)?;
        if !(self.gate_lr.is_finite() && self.gate_lr > 0.0) {
            return Err(Error::invalid(
                "gate_lr",
                format!("{}: must be a finite number > 0", self.gate_lr),
            ));
        }
        for (name, v) in [
            ("refresh_every", self.refresh_every),
            ("patience", self.patience),
            ("record_every", self.record_every),
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
        ] {
            if v == 0 {
                return Err(Error::invalid(name, "must be >= 1"));
            }
        }
        if !(0.0..1.0).contains(&self.benefit_momentum) {
            return Err(Error::invalid(
                "benefit_momentum",
                format!("{}: must be in [0, 1)", self.benefit_momentum),
            ));
        }
        if self.symmetry == ScaleSymmetry::WeightDecay && self.weight_decay <= 0.0 {
            return Err(Error::invalid(
                "weight_decay",
                "must be > 0 with symmetry = weight-decay (it is what breaks the symmetry)",
            ));
        }
        if !(self.price_gain.is_finite() && self.price_gain > 0.0) {
            return Err(Error::invalid(
                "price_gain",
                format!("{}: must be a finite number > 0", self.price_gain),
            ));
        }
        if !(self.finetune_lr_scale.is_finite() && self.finetune_lr_scale > 0.0) {
            return Err(Error::invalid(
                "finetune_lr_scale",
                format!("{}: must be a finite number > 0", self.finetune_lr_scale),
            ));
        }
        if !(self.control_fraction.is_finite() && (0.0..=1.0).contains(&self.control_fraction)) {
            return Err(Error::invalid(
                "control_fraction",
                format!("{}: must be a fraction in [0, 1]", self.control_fraction),
            ));
        }
        if !(self.refit_fraction.is_finite() && (0.0..1.0).contains(&self.refit_fraction)) {
            return Err(Error::invalid(
                "refit_fraction",
                format!("{}: must be a fraction in [0, 1)", self.refit_fraction),
            ));
        }
        if self.game_epochs() == 0 {
            return Err(Error::invalid(
                "refit_fraction",
                format!(
                    "{} of {} epochs leaves none for the game",
                    self.refit_fraction, self.epochs
                ),
            ));
        }
        if let Some(f) = self.target_kept {
            if !(f.is_finite() && f > 0.0 && f <= 1.0) {
                return Err(Error::invalid(
                    "target_kept",
                    format!("{f}: must be a fraction in (0, 1]"),
                ));
            }
        }
        self.train_config(self.epochs).check()
    }

    /// Epochs of the survivors' refit after the game (`refit_fraction` of `epochs`, rounded).
    pub fn refit_epochs(&self) -> usize {
        (self.refit_fraction * self.epochs as f64).round() as usize
    }

    /// Epochs of gate play (`epochs` less the refit).
    pub fn game_epochs(&self) -> usize {
        self.epochs.saturating_sub(self.refit_epochs())
    }

    /// The trainer settings for `epochs` epochs.
    pub fn train_config(&self, epochs: usize) -> FitConfig {
        FitConfig {
            epochs,
            batch_size: self.batch_size,
            optimizer: self.optimizer,
            schedule: self.schedule,
            crop_padding: self.crop_padding,
            flip: self.flip,
            seed: self.seed,
        }
    }

    /// The weight optimiser's learning rate (scales the decoupled weight decay).
    pub fn weight_lr(&self) -> f64 {
        match self.optimizer {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => lr as f64,
        }
    }
}

impl PruneConfig {
    /// This configuration with `key=value` overrides applied, keys named as in the saved
    /// JSON (`schedule=cosine`, `gamma=0.003`, `optimizer.lr=0.0005`); a value is read as
    /// JSON, else as a string. Unknown keys and ill-typed values are errors naming the key.
    pub fn with_overrides(&self, overrides: &[String]) -> Result<PruneConfig> {
        let config = apply_overrides(self, overrides)?;
        config.check()?;
        Ok(config)
    }

    /// Settings for the small teacher–student task (8000 samples, a few hundred steps per
    /// run): shorter refresh, patience and warm-up, more epochs.
    pub fn teacher_default() -> Self {
        PruneConfig {
            epochs: 50,
            finetune_epochs: 2,
            gamma: 4e-3,
            beta: 2e-3,
            warmup_steps: 100,
            refresh_every: 20,
            patience: 40,
            holdout: 1000,
            record_every: 10,
            ..PruneConfig::default()
        }
    }
}

/// `value` with `key=value` overrides applied, keys named as in its JSON form (dots reach
/// into nested objects); a value is read as JSON, else as a string. Unknown keys and
/// ill-typed values are errors naming the key.
pub fn apply_overrides<T>(value: &T, overrides: &[String]) -> Result<T>
where
    T: Serialize + serde::de::DeserializeOwned + Clone,
{
    let mut current = value.clone();
    for o in overrides {
        let (key, raw) = o
            .split_once('=')
            .ok_or_else(|| Error::invalid("override", format!("{o:?}: expected key=value")))?;
        let parsed = serde_json::from_str(raw)
            .unwrap_or_else(|_| serde_json::Value::String(raw.to_string()));
        let mut json =
            serde_json::to_value(&current).map_err(|e| Error::invalid("config", e.to_string()))?;
        let mut slot = &mut json;
        for part in key.split('.') {
            slot = slot
                .as_object_mut()
                .and_then(|m| m.get_mut(part))
                .ok_or_else(|| Error::invalid(key, "no such configuration key"))?;
        }
        *slot = parsed;
        // One override at a time, so a value of the wrong type is blamed on its key.
        current = serde_json::from_value(json).map_err(|e| Error::invalid(key, e.to_string()))?;
    }
    Ok(current)
}
