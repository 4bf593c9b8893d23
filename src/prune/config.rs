//! Hyper-parameters of the equilibrium-driven pruner, validated once by [`PruneConfig::check`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::graph::train::FitConfig;
use crate::nn::graph::Graph;
use crate::nn::OptimizerConfig;
use crate::nn::{Distill, LrSchedule};

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
    /// the layers' games decide how many each layer keeps. In the weight game the target
    /// holds for all weights together.
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
///
/// The settings are grouped by concern, but every group is flattened: the saved JSON is one
/// flat object whose keys are the fields' own names, in declaration order, and `--set` takes
/// the same names. That order is the saved format (`tests/prune_config.rs` pins it), so a
/// field joins the group next to it in that order and groups are not reordered: run folders
/// saved earlier must still resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PruneConfig {
    /// The coefficients of the players' utilities.
    #[serde(flatten)]
    pub game: GameSettings,
    /// How the gates move and when they start, are re-measured and leave.
    #[serde(flatten)]
    pub gates: GateDynamics,
    /// How the participation cost `γ` is set over training.
    #[serde(flatten)]
    pub price: PriceControl,
    /// What the run does with settled units, measures on and records.
    #[serde(flatten)]
    pub run: RunSettings,
    /// How long and how the weights train, during and after the game.
    #[serde(flatten)]
    pub training: TrainingSchedule,
    /// Augmentation of image training data.
    #[serde(flatten)]
    pub data: DataSettings,
    /// Seed of the initial weights, shuffling and baselines.
    pub seed: u64,
}

impl Default for PruneConfig {
    fn default() -> Self {
        PruneConfig {
            game: GameSettings::default(),
            gates: GateDynamics::default(),
            price: PriceControl::default(),
            run: RunSettings::default(),
            training: TrainingSchedule::default(),
            data: DataSettings::default(),
            seed: 42,
        }
    }
}

/// The players' utility coefficients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GameSettings {
    /// Self-cost scale `α ≥ 0`.
    pub alpha: f64,
    /// Competition scale `β ≥ 0`.
    pub beta: f64,
    /// Participation cost `γ ≥ 0` (replaced by the calibrated value in target mode).
    pub gamma: f64,
}

impl Default for GameSettings {
    fn default() -> Self {
        GameSettings {
            alpha: 1e-4,
            beta: 1e-4,
            gamma: 2e-3,
        }
    }
}

/// How the gates step, what they measure between steps, and when they start and leave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GateDynamics {
    /// Gate step size `η_s > 0`.
    pub gate_lr: f64,
    /// How the gate step is scaled.
    pub gate_step: GateStep,
    /// Refresh `R` and look for removable units every `K` steps.
    pub refresh_every: usize,
    /// Steps a gate must stay at exactly 0 before its unit is removed.
    pub patience: usize,
    /// Redundancy measure (taken at every refresh).
    pub redundancy: Redundancy,
    /// How the ReLU scale symmetry is broken.
    pub symmetry: ScaleSymmetry,
    /// Decoupled weight decay `λ` (`θ ← θ(1 − η_w λ)`) for [`ScaleSymmetry::WeightDecay`].
    pub weight_decay: f64,
    /// Averaging factor in `[0, 1)` of the benefit estimate `b̂` (0 = raw batch gradient;
    /// the average spans about `1/(1 − m)` steps). The weight game, whose players each see
    /// one weight's noisy benefit, settles with a long average (0.997 in
    /// `docs/pruning.md`); the unit game with the default.
    pub benefit_momentum: f64,
    /// Optimiser steps before gates start to play (dense warm-up).
    pub warmup_steps: usize,
}

impl Default for GateDynamics {
    fn default() -> Self {
        GateDynamics {
            gate_lr: 1.0,
            gate_step: GateStep::Gradient,
            refresh_every: 50,
            patience: 100,
            redundancy: Redundancy::WeightCosine,
            symmetry: ScaleSymmetry::Normalize,
            weight_decay: 0.1,
            benefit_momentum: 0.9,
            warmup_steps: 200,
        }
    }
}

/// The participation cost over training: its ramp, and target mode's controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PriceControl {
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
}

impl Default for PriceControl {
    fn default() -> Self {
        PriceControl {
            gamma_ramp_steps: 0,
            target_kept: None,
            target_scope: TargetScope::EachLayer,
            target_schedule: TargetSchedule::Immediate,
            price_gain: 0.5,
            control_fraction: 0.8,
        }
    }
}

/// Structural removal, the held-out samples the run measures on, and how often it records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSettings {
    /// Remove units structurally during training (`false`: gates only, as network slimming).
    pub remove: bool,
    /// Held-out samples carved from the end of the training set for benefit measurements.
    pub holdout: usize,
    /// Record gate trajectories every this many steps.
    pub record_every: usize,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            remove: true,
            holdout: 2000,
            record_every: 25,
        }
    }
}

/// The weights' training: epochs of the game, the refit and the fine-tune, and the optimiser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainingSchedule {
    /// Training epochs: the game's, then the survivors' refit (`refit_fraction`).
    pub epochs: usize,
    /// Fraction of `epochs` given to the survivors after the game: the game plays the first
    /// epochs on its own learning-rate schedule, removes every unit at 0, and the units left
    /// train on the plain loss (the distillation loss with `distill_weight` above 0), gates
    /// folded, for the rest on a fresh schedule. The game's
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
    /// Knowledge distillation from the dense network while pruned networks train (Hinton,
    /// Vinyals and Dean, "Distilling the Knowledge in a Neural Network", 2015): the weight
    /// `λ ∈ [0, 1]` of the teacher's term in
    /// `L = (1 − λ) CE(y, softmax(z)) + λ T² KL(softmax(t/T) ‖ softmax(z/T))`, `t` the
    /// teacher's logits on the same batch. 0 (the default) trains on the plain loss. Above 0,
    /// the run's trained dense reference (gates at 1, in evaluation mode) is the teacher of
    /// every method alike, wherever a pruned network's weights train: the game's refit and
    /// fine-tune, every baseline's fine-tune, and the training from initialisation of a
    /// pruned shape (the scratch control, SNIP). What trains the whole network before it is
    /// pruned (the game's play, slimming's penalised training) stays on the plain loss.
    pub distill_weight: f64,
    /// Temperature `T > 0` of the distillation term (see `distill_weight`).
    pub distill_temperature: f64,
}

impl Default for TrainingSchedule {
    fn default() -> Self {
        TrainingSchedule {
            epochs: 5,
            refit_fraction: 0.2,
            finetune_epochs: 1,
            finetune_lr_scale: 1.0,
            batch_size: 128,
            optimizer: OptimizerConfig::adam(1e-3),
            schedule: LrSchedule::Constant,
            distill_weight: 0.0,
            distill_temperature: 4.0,
        }
    }
}

impl TrainingSchedule {
    /// Epochs of the survivors' refit after the game (`refit_fraction` of `epochs`, rounded).
    pub fn refit_epochs(&self) -> usize {
        (self.refit_fraction * self.epochs as f64).round() as usize
    }

    /// Epochs of gate play (`epochs` less the refit).
    pub fn game_epochs(&self) -> usize {
        self.epochs.saturating_sub(self.refit_epochs())
    }

    /// The distillation settings, whether on or off.
    pub fn distill(&self) -> Distill {
        Distill {
            weight: self.distill_weight,
            temperature: self.distill_temperature,
        }
    }

    /// The distillation settings if distillation is on (`distill_weight > 0`).
    pub fn distillation(&self) -> Option<Distill> {
        (self.distill_weight > 0.0).then(|| self.distill())
    }

    /// The weight optimiser's learning rate (scales the decoupled weight decay).
    pub fn weight_lr(&self) -> f64 {
        match self.optimizer {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => lr as f64,
        }
    }
}

/// Augmentation of image training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DataSettings {
    /// Zero padding of the random-crop augmentation of image data (0: none).
    pub crop_padding: usize,
    /// Random horizontal flips of image data.
    pub flip: bool,
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
    /// Checks every range; the error names the parameter (its key in the saved JSON) and the
    /// allowed range.
    pub fn check(&self) -> Result<()> {
        let (game, gates, price, run, training) = (
            &self.game,
            &self.gates,
            &self.price,
            &self.run,
            &self.training,
        );
        finite_non_negative("alpha", game.alpha)?;
        finite_non_negative("beta", game.beta)?;
        finite_non_negative("gamma", game.gamma)?;
        finite_non_negative("weight_decay", gates.weight_decay)?;
        if !(gates.gate_lr.is_finite() && gates.gate_lr > 0.0) {
            return Err(Error::invalid(
                "gate_lr",
                format!("{}: must be a finite number > 0", gates.gate_lr),
            ));
        }
        for (name, v) in [
            ("refresh_every", gates.refresh_every),
            ("patience", gates.patience),
            ("record_every", run.record_every),
            ("epochs", training.epochs),
            ("batch_size", training.batch_size),
        ] {
            if v == 0 {
                return Err(Error::invalid(name, "must be >= 1"));
            }
        }
        if !(0.0..1.0).contains(&gates.benefit_momentum) {
            return Err(Error::invalid(
                "benefit_momentum",
                format!("{}: must be in [0, 1)", gates.benefit_momentum),
            ));
        }
        if gates.symmetry == ScaleSymmetry::WeightDecay && gates.weight_decay <= 0.0 {
            return Err(Error::invalid(
                "weight_decay",
                "must be > 0 with symmetry = weight-decay (it is what breaks the symmetry)",
            ));
        }
        if !(price.price_gain.is_finite() && price.price_gain > 0.0) {
            return Err(Error::invalid(
                "price_gain",
                format!("{}: must be a finite number > 0", price.price_gain),
            ));
        }
        if !(training.finetune_lr_scale.is_finite() && training.finetune_lr_scale > 0.0) {
            return Err(Error::invalid(
                "finetune_lr_scale",
                format!(
                    "{}: must be a finite number > 0",
                    training.finetune_lr_scale
                ),
            ));
        }
        if !(price.control_fraction.is_finite() && (0.0..=1.0).contains(&price.control_fraction)) {
            return Err(Error::invalid(
                "control_fraction",
                format!("{}: must be a fraction in [0, 1]", price.control_fraction),
            ));
        }
        if !(training.refit_fraction.is_finite() && (0.0..1.0).contains(&training.refit_fraction)) {
            return Err(Error::invalid(
                "refit_fraction",
                format!("{}: must be a fraction in [0, 1)", training.refit_fraction),
            ));
        }
        if training.game_epochs() == 0 {
            return Err(Error::invalid(
                "refit_fraction",
                format!(
                    "{} of {} epochs leaves none for the game",
                    training.refit_fraction, training.epochs
                ),
            ));
        }
        training.distill().check()?;
        if let Some(f) = price.target_kept {
            if !(f.is_finite() && f > 0.0 && f <= 1.0) {
                return Err(Error::invalid(
                    "target_kept",
                    format!("{f}: must be a fraction in (0, 1]"),
                ));
            }
        }
        self.train_config(training.epochs).check()
    }

    /// `dense` as the teacher of a pruned network's training, with the distillation settings,
    /// if distillation is on (`distill_weight > 0`).
    pub fn teacher<'a>(&self, dense: &'a Graph) -> Option<(&'a Graph, Distill)> {
        self.training.distillation().map(|d| (dense, d))
    }

    /// The trainer settings for `epochs` epochs.
    pub fn train_config(&self, epochs: usize) -> FitConfig {
        FitConfig {
            epochs,
            batch_size: self.training.batch_size,
            optimizer: self.training.optimizer,
            schedule: self.training.schedule,
            crop_padding: self.data.crop_padding,
            flip: self.data.flip,
            seed: self.seed,
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
        let d = PruneConfig::default();
        PruneConfig {
            game: GameSettings {
                gamma: 4e-3,
                beta: 2e-3,
                ..d.game
            },
            gates: GateDynamics {
                warmup_steps: 100,
                refresh_every: 20,
                patience: 40,
                ..d.gates
            },
            run: RunSettings {
                holdout: 1000,
                record_every: 10,
                ..d.run
            },
            training: TrainingSchedule {
                epochs: 50,
                finetune_epochs: 2,
                ..d.training
            },
            ..d
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
