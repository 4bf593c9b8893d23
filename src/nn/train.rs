//! Minibatch training: one [`Trainer::step`] is one optimiser update; [`Trainer::run`] owns
//! the loop (epochs, evaluation, progress bar, checkpoints) and reports to an [`Observer`].
//!
//! Each epoch draws a permutation from one `ChaCha8Rng` seeded by the config. A checkpoint
//! stores the weights, gates, optimiser moments, counters and the RNG word position at the
//! start of the current epoch, so a resumed run replays the same permutation and produces
//! exactly the same parameters as an uninterrupted one. Non-finite losses stop training with
//! [`Error::Diverged`]; non-finite parameters are never written.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nalgebra::{DMatrix, DVector};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::data::Dataset;
use super::model::{Gradients, LossStats, Model, Workspace};
use super::optim::{Moments, Optimizer, OptimizerConfig};
use super::safetensors_io::{parse, read_f32, row_major_bytes};
use crate::error::{Error, Result};
use crate::io::write_atomic;

/// Learning-rate schedule over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The configured rate throughout.
    #[default]
    Constant,
    /// Cosine decay from the configured rate to 0 over `epochs` epochs:
    /// `η_t = η (1 + cos(π t / T)) / 2`.
    Cosine,
}

/// Training settings (saved inside checkpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per minibatch.
    pub batch_size: usize,
    /// Optimiser and hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Seed of the shuffling RNG.
    pub seed: u64,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// Checkpoint file, written at the end of every epoch and every `checkpoint_every` steps.
    pub checkpoint: Option<PathBuf>,
    /// Extra checkpoint interval in optimiser steps.
    pub checkpoint_every: Option<usize>,
    /// Learning-rate schedule.
    #[serde(default)]
    pub schedule: LrSchedule,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 1,
            batch_size: 128,
            optimizer: OptimizerConfig::adam(1e-3),
            seed: 42,
            progress: true,
            checkpoint: None,
            checkpoint_every: None,
            schedule: LrSchedule::Constant,
        }
    }
}

impl TrainConfig {
    /// Checks batch size, optimiser ranges and the checkpoint interval.
    pub fn check(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", "must be > 0"));
        }
        if self.checkpoint_every == Some(0) {
            return Err(Error::invalid("checkpoint_every", "must be > 0 when set"));
        }
        self.optimizer.check()
    }
}

/// What happened in one optimiser step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Step within the epoch (0-based).
    pub step: usize,
    /// Steps since the start of training.
    pub global_step: u64,
    /// Batch loss and accuracy (before the update).
    pub batch: LossStats,
    /// True if this step finished the epoch.
    pub epoch_done: bool,
}

/// Summary of one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean training loss and accuracy over the epoch's batches.
    pub train: LossStats,
    /// Test-set loss and accuracy after the epoch, if a test set was given.
    pub test: Option<LossStats>,
    /// Wall-clock seconds of the epoch's training steps (evaluation excluded).
    pub seconds: f64,
}

/// What an observer sees after each optimiser step; it may change gates or ask for units to
/// be removed (applied by the trainer to the model and the optimiser state).
pub struct StepContext<'a> {
    /// The model after the update.
    pub model: &'a mut Model,
    /// Gradients of this step (`dL/dW`, `dL/db`, `dL/ds`).
    pub grads: &'a Gradients,
    /// The step's record.
    pub record: &'a StepRecord,
    removals: Vec<(usize, Vec<usize>)>,
}

impl StepContext<'_> {
    /// Asks the trainer to keep only units `keep` of gated layer `layer` after this hook.
    pub fn remove_units(&mut self, layer: usize, keep: Vec<usize>) {
        self.removals.push((layer, keep));
    }
}

/// Hooks called by [`Trainer::run`]; every method defaults to doing nothing.
pub trait Observer {
    /// After every optimiser step.
    fn on_step(&mut self, _ctx: &mut StepContext<'_>) -> Result<()> {
        Ok(())
    }
    /// After every epoch and its evaluation.
    fn on_epoch(&mut self, _model: &mut Model, _record: &EpochRecord) -> Result<()> {
        Ok(())
    }
}

/// An observer that does nothing.
impl Observer for () {}

/// Records every epoch (and optionally every step) in memory.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Keep step records too.
    pub keep_steps: bool,
    /// Step records (if `keep_steps`).
    pub steps: Vec<StepRecord>,
    /// Epoch records.
    pub epochs: Vec<EpochRecord>,
}

impl Observer for History {
    fn on_step(&mut self, ctx: &mut StepContext<'_>) -> Result<()> {
        if self.keep_steps {
            self.steps.push(*ctx.record);
        }
        Ok(())
    }
    fn on_epoch(&mut self, _model: &mut Model, record: &EpochRecord) -> Result<()> {
        self.epochs.push(*record);
        Ok(())
    }
}

/// Counters and RNG position saved in checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    config: TrainConfig,
    epoch: usize,
    step_in_epoch: usize,
    global_step: u64,
    optimizer_steps: u64,
    /// RNG word position before the current epoch's shuffle (decimal, a `u128`).
    epoch_rng_pos: String,
    running: LossStats,
    seconds: f64,
}

/// Trains a model on a data set, one step at a time or a whole run.
pub struct Trainer {
    config: TrainConfig,
    model: Model,
    optimizer: Optimizer,
    ws: Workspace,
    grads: Gradients,
    rng: ChaCha8Rng,
    perm: Vec<u32>,
    epoch: usize,
    step_in_epoch: usize,
    global_step: u64,
    epoch_rng_pos: u128,
    x: Vec<f32>,
    y: Vec<u32>,
    running: LossStats,
    seconds: f64,
}

impl Trainer {
    /// A trainer for `model` with fresh optimiser state.
    pub fn new(model: Model, config: TrainConfig) -> Result<Self> {
        config.check()?;
        let optimizer = Optimizer::new(config.optimizer, &model)?;
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        Ok(Self::assemble(model, optimizer, config, rng))
    }

    fn assemble(model: Model, optimizer: Optimizer, config: TrainConfig, rng: ChaCha8Rng) -> Self {
        let b = config.batch_size;
        Trainer {
            ws: Workspace::new(&model, b),
            grads: Gradients::new(&model),
            x: vec![0.0; b * model.input_len()],
            y: vec![0; b],
            epoch_rng_pos: rng.get_word_pos(),
            rng,
            perm: Vec::new(),
            epoch: 0,
            step_in_epoch: 0,
            global_step: 0,
            running: LossStats::default(),
            seconds: 0.0,
            config,
            model,
            optimizer,
        }
    }

    /// The model being trained.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Mutable model (gates may be changed freely; use [`Trainer::remove_units`] to remove).
    pub fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }

    /// Consumes the trainer, returning the model.
    pub fn into_model(self) -> Model {
        self.model
    }

    /// Gradients of the last step.
    pub fn gradients(&self) -> &Gradients {
        &self.grads
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Changes the total number of epochs (e.g. to extend a resumed run).
    pub fn set_epochs(&mut self, epochs: usize) {
        self.config.epochs = epochs;
    }

    /// Turns the progress bar on or off.
    pub fn set_progress(&mut self, on: bool) {
        self.config.progress = on;
    }

    /// Current epoch (0-based) and step within it.
    pub fn position(&self) -> (usize, usize) {
        (self.epoch, self.step_in_epoch)
    }

    /// Optimiser steps taken.
    pub fn global_step(&self) -> u64 {
        self.global_step
    }

    /// True once `config.epochs` epochs are done.
    pub fn finished(&self) -> bool {
        self.epoch >= self.config.epochs
    }

    /// Removes units from the model and mirrors the change in the optimiser state and the
    /// buffers (see [`Model::remove_units`]).
    pub fn remove_units(&mut self, layer: usize, keep: &[usize]) -> Result<()> {
        let before = self.model.clone();
        self.model.remove_units(layer, keep)?;
        self.optimizer.remove_units(&before, layer, keep)?;
        self.ws = Workspace::new(&self.model, self.config.batch_size);
        self.grads = Gradients::new(&self.model);
        Ok(())
    }

    fn shuffle(&mut self, n: usize) {
        self.rng.set_word_pos(self.epoch_rng_pos);
        self.perm.clear();
        self.perm.extend(0..n as u32);
        self.perm.shuffle(&mut self.rng);
    }

    /// One optimiser step on the next minibatch of `data`.
    pub fn step(&mut self, data: &Dataset) -> Result<StepRecord> {
        if data.sample_len() != self.model.input_len() {
            return Err(Error::LengthMismatch {
                field: "sample".into(),
                expected: self.model.input_len(),
                got: data.sample_len(),
            });
        }
        let n = data.len();
        if self.step_in_epoch == 0 {
            self.epoch_rng_pos = self.rng.get_word_pos();
            self.running = LossStats::default();
            self.seconds = 0.0;
            self.shuffle(n);
        } else if self.perm.len() != n {
            // Resumed mid-epoch: replay this epoch's permutation.
            self.shuffle(n);
        }
        let t0 = Instant::now();
        let b = self.config.batch_size;
        let start = self.step_in_epoch * b;
        let end = (start + b).min(n);
        let m = end - start;
        data.gather(&self.perm[start..end], &mut self.x, &mut self.y);
        let il = self.model.input_len();
        let stats = self.model.loss_and_grad(
            &mut self.ws,
            &self.x[..m * il],
            &self.y[..m],
            &mut self.grads,
        )?;
        if !stats.loss.is_finite() || !self.grads.is_finite() {
            let what = if stats.loss.is_finite() {
                "a gradient"
            } else {
                "the loss"
            };
            return Err(Error::Diverged {
                epoch: self.epoch,
                step: self.step_in_epoch,
                what: what.into(),
            });
        }
        if self.config.schedule == LrSchedule::Cosine {
            let total = (self.config.epochs * n.div_ceil(b)).max(1) as f64;
            let t = (self.global_step as f64 / total).min(1.0);
            self.optimizer
                .set_lr_scale((0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32);
        }
        self.optimizer.step(&mut self.model, &self.grads)?;
        self.running.loss += stats.loss * m as f64;
        self.running.correct += stats.correct;
        self.running.count += m;
        let record = StepRecord {
            epoch: self.epoch,
            step: self.step_in_epoch,
            global_step: self.global_step,
            batch: stats,
            epoch_done: end == n,
        };
        self.global_step += 1;
        self.step_in_epoch += 1;
        if end == n {
            self.epoch += 1;
            self.step_in_epoch = 0;
        }
        self.seconds += t0.elapsed().as_secs_f64();
        Ok(record)
    }

    /// Loss and accuracy of the model on `data` (reuses the training buffers).
    pub fn evaluate(&mut self, data: &Dataset) -> Result<LossStats> {
        evaluate_with(&self.model, &mut self.ws, data, &mut self.x, &mut self.y)
    }

    /// Trains until `config.epochs` epochs are done, evaluating on `test` after each epoch.
    pub fn run(
        &mut self,
        train: &Dataset,
        test: Option<&Dataset>,
        observer: &mut impl Observer,
    ) -> Result<Vec<EpochRecord>> {
        let steps_per_epoch = train.len().div_ceil(self.config.batch_size);
        let show = self.config.progress && std::io::stderr().is_terminal();
        let mut records = Vec::new();
        while !self.finished() {
            let bar = if show {
                ProgressBar::new(steps_per_epoch as u64)
            } else {
                ProgressBar::hidden()
            };
            if show {
                bar.set_draw_target(ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template(
                    "epoch {prefix} {bar:30} {pos}/{len} {msg} [{elapsed}<{eta}]",
                ) {
                    bar.set_style(style);
                }
                bar.set_prefix(format!("{}/{}", self.epoch + 1, self.config.epochs));
                bar.set_position(self.step_in_epoch as u64);
            }
            loop {
                let record = self.step(train)?;
                let mut ctx = StepContext {
                    model: &mut self.model,
                    grads: &self.grads,
                    record: &record,
                    removals: Vec::new(),
                };
                observer.on_step(&mut ctx)?;
                let removals = std::mem::take(&mut ctx.removals);
                for (layer, keep) in removals {
                    self.remove_units(layer, &keep)?;
                }
                bar.inc(1);
                if show && record.step % 10 == 0 {
                    let r = &self.running;
                    bar.set_message(format!(
                        "loss {:.4} acc {:.3}",
                        r.loss / r.count.max(1) as f64,
                        r.accuracy()
                    ));
                }
                if let (Some(every), Some(_)) =
                    (self.config.checkpoint_every, &self.config.checkpoint)
                {
                    if self.global_step.is_multiple_of(every as u64) && !record.epoch_done {
                        self.save_configured_checkpoint()?;
                    }
                }
                if record.epoch_done {
                    break;
                }
            }
            bar.finish_and_clear();
            let mut train_stats = self.running;
            train_stats.loss /= train_stats.count.max(1) as f64;
            let test_stats = match test {
                Some(t) => Some(self.evaluate(t)?),
                None => None,
            };
            let rec = EpochRecord {
                epoch: self.epoch - 1,
                train: train_stats,
                test: test_stats,
                seconds: self.seconds,
            };
            observer.on_epoch(&mut self.model, &rec)?;
            self.save_configured_checkpoint()?;
            records.push(rec);
        }
        Ok(records)
    }

    fn save_configured_checkpoint(&self) -> Result<()> {
        match &self.config.checkpoint {
            Some(p) => self.save_checkpoint(p),
            None => Ok(()),
        }
    }

    /// Writes a checkpoint atomically: model, gates, optimiser state, counters, RNG position.
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        if !self.model.is_finite() {
            return Err(Error::Diverged {
                epoch: self.epoch,
                step: self.step_in_epoch,
                what: "a parameter".into(),
            });
        }
        let mut extra = Vec::new();
        for (i, m) in self.optimizer.moments.iter().enumerate() {
            let Some(m) = m else { continue };
            for (name, w, b) in [
                ("first", &m.first_w, &m.first_b),
                ("second", &m.second_w, &m.second_b),
            ] {
                if w.nrows() == 0 {
                    continue;
                }
                extra.push((
                    format!("optim.{i}.{name}_w"),
                    vec![w.nrows(), w.ncols()],
                    row_major_bytes(w),
                ));
                extra.push((
                    format!("optim.{i}.{name}_b"),
                    vec![b.len()],
                    b.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ));
            }
        }
        let state = TrainerState {
            config: self.config.clone(),
            epoch: self.epoch,
            step_in_epoch: self.step_in_epoch,
            global_step: self.global_step,
            optimizer_steps: self.optimizer.step,
            // At an epoch boundary the next epoch's shuffle starts from the current position
            // (prune: without this a run resumed at an epoch end replays the last epoch's order).
            epoch_rng_pos: if self.step_in_epoch == 0 {
                self.rng.get_word_pos().to_string()
            } else {
                self.epoch_rng_pos.to_string()
            },
            running: self.running,
            seconds: self.seconds,
        };
        let mut meta = HashMap::new();
        meta.insert(
            "trainer".into(),
            serde_json::to_string(&state)
                .map_err(|e| Error::invalid("trainer state", e.to_string()))?,
        );
        let bytes = self.model.to_safetensors(extra, meta)?;
        write_atomic(path, |w| w.write_all(&bytes))
    }

    /// Resumes from a checkpoint written by [`Trainer::save_checkpoint`].
    pub fn resume(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let model = Model::from_safetensors(&bytes, path)?;
        let (st, meta) = parse(&bytes, path)?;
        let bad = |m: String| Error::ModelFormat {
            path: path.to_path_buf(),
            message: m,
        };
        let state: TrainerState = serde_json::from_str(
            meta.get("trainer")
                .ok_or_else(|| bad("not a checkpoint: no trainer metadata".into()))?,
        )
        .map_err(|e| bad(format!("trainer metadata: {e}")))?;
        state.config.check()?;
        let mut optimizer = Optimizer::new(state.config.optimizer, &model)?;
        optimizer.step = state.optimizer_steps;
        let adam = matches!(state.config.optimizer, OptimizerConfig::Adam { .. });
        for (i, m) in optimizer.moments.iter_mut().enumerate() {
            let Some(m) = m else { continue };
            let read = |name: &str, r: usize, c: usize| -> Result<DMatrix<f32>> {
                Ok(DMatrix::from_row_slice(
                    r,
                    c,
                    &read_f32(&st, &format!("optim.{i}.{name}_w"), &[r, c], path)?,
                ))
            };
            let readb = |name: &str, n: usize| -> Result<DVector<f32>> {
                Ok(DVector::from_vec(read_f32(
                    &st,
                    &format!("optim.{i}.{name}_b"),
                    &[n],
                    path,
                )?))
            };
            let (r, c, n) = (m.first_w.nrows(), m.first_w.ncols(), m.first_b.len());
            *m = Moments {
                first_w: read("first", r, c)?,
                first_b: readb("first", n)?,
                second_w: if adam {
                    read("second", r, c)?
                } else {
                    DMatrix::zeros(0, 0)
                },
                second_b: if adam {
                    readb("second", n)?
                } else {
                    DVector::zeros(0)
                },
            };
        }
        let pos: u128 = state
            .epoch_rng_pos
            .parse()
            .map_err(|_| bad("trainer metadata: bad epoch_rng_pos".into()))?;
        let mut rng = ChaCha8Rng::seed_from_u64(state.config.seed);
        rng.set_word_pos(pos);
        let mut t = Self::assemble(model, optimizer, state.config, rng);
        t.epoch = state.epoch;
        t.step_in_epoch = state.step_in_epoch;
        t.global_step = state.global_step;
        t.epoch_rng_pos = pos;
        t.running = state.running;
        t.seconds = state.seconds;
        Ok(t)
    }
}

/// Loss and accuracy of `model` on `data` in batches of `batch_size`.
pub fn evaluate(model: &Model, data: &Dataset, batch_size: usize) -> Result<LossStats> {
    let b = batch_size.max(1);
    let mut ws = Workspace::new(model, b);
    let mut x = vec![0.0; b * model.input_len()];
    let mut y = vec![0; b];
    evaluate_with(model, &mut ws, data, &mut x, &mut y)
}

fn evaluate_with(
    model: &Model,
    ws: &mut Workspace,
    data: &Dataset,
    x: &mut [f32],
    y: &mut [u32],
) -> Result<LossStats> {
    if data.sample_len() != model.input_len() {
        return Err(Error::LengthMismatch {
            field: "sample".into(),
            expected: model.input_len(),
            got: data.sample_len(),
        });
    }
    let b = ws.capacity().min(y.len());
    let il = model.input_len();
    let mut total = LossStats::default();
    let n = data.len();
    let mut idx: Vec<u32> = Vec::with_capacity(b);
    let mut start = 0;
    while start < n {
        let end = (start + b).min(n);
        idx.clear();
        idx.extend(start as u32..end as u32);
        let m = end - start;
        data.gather(&idx, &mut x[..m * il], &mut y[..m]);
        let s = model.evaluate_batch(ws, &x[..m * il], &y[..m])?;
        total.loss += s.loss * m as f64;
        total.correct += s.correct;
        total.count += m;
        start = end;
    }
    total.loss /= total.count.max(1) as f64;
    Ok(total)
}
