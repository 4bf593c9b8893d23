//! The one training loop: a [`Trainer`] takes optimiser steps over seeded epochs, calls a
//! [`StepHook`] after each (the pruner's way in), and writes and resumes checkpoints that
//! continue exactly where they stopped.
//!
//! Each epoch's permutation comes from one `ChaCha8Rng` seeded by the config, restarted at
//! the word position saved at the epoch's start; augmentation draws from a stream of its own
//! keyed by the global step, so a run resumed mid-epoch sees the same batches, crops and flips.
//!
//! With a teacher ([`Trainer::set_teacher`]) the loss is knowledge distillation's
//! ([`Distill`]): the teacher, run in evaluation mode on the same augmented batch and never
//! updated, is not saved in checkpoints. A checkpoint records the distillation settings and
//! the teacher's fingerprint instead, and a resumed trainer refuses to step or to write a
//! checkpoint until it has been given the teacher it was written with (none, if it was
//! written without one), so a resumed run continues exactly as the uninterrupted one or not
//! at all. (Saving the teacher instead would double every checkpoint for a network the
//! caller holds anyway: the run's dense reference, itself checkpointed.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nalgebra::DMatrix;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};

use super::io::CHECKPOINT_PREFIX;
use super::train::{augment_into, FitConfig};
use super::{Graph, GraphGrads, GraphOptimizer, GraphWorkspace, Mode, ParamId, RemovalPlan};
use crate::error::{Error, Result};
use crate::io::{seal, verify_sealed, write_atomic, DIGEST_KEY, DIGEST_PLACEHOLDER};
use crate::nn::data::Dataset;
use crate::nn::safetensors_io::{parse, read_f32, row_major_bytes};
use crate::nn::{Distill, LossStats, LrSchedule};

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRecord {
    /// Epoch of the step (0-based).
    pub epoch: usize,
    /// Step within the epoch (0-based).
    pub step: usize,
    /// Steps before this one over the whole run.
    pub global_step: u64,
    /// Loss and accuracy of the batch (training mode, before the update); with a teacher,
    /// the loss is the distillation loss.
    pub batch: LossStats,
    /// True if this step ended the epoch.
    pub epoch_done: bool,
}

/// Work done after every optimiser step, with the trainer in hand (gates may be moved and
/// channels removed through [`Trainer::remove_channels`]).
pub trait StepHook {
    /// Called after the weights were updated by the step `record` describes.
    fn after_step(&mut self, trainer: &mut Trainer, record: &StepRecord) -> Result<()>;
}

/// No hook: plain training.
impl StepHook for () {
    fn after_step(&mut self, _: &mut Trainer, _: &StepRecord) -> Result<()> {
        Ok(())
    }
}

/// The counters a checkpoint stores next to the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    config: FitConfig,
    epoch: usize,
    step_in_epoch: usize,
    global_step: u64,
    optimizer_steps: u64,
    /// RNG word position before the current epoch's shuffle (decimal: a `u128`).
    epoch_rng_pos: String,
    running: LossStats,
    seconds: f64,
    /// The teacher distilled from when the checkpoint was written (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    teacher: Option<TeacherRecord>,
}

/// What a checkpoint records of the teacher: the settings and the teacher's fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TeacherRecord {
    /// [`Distill::weight`].
    weight: f64,
    /// [`Distill::temperature`].
    temperature: f64,
    /// FNV-1a (hex) of the teacher's structure and parameters.
    fingerprint: String,
}

impl TeacherRecord {
    fn describe(record: Option<&TeacherRecord>) -> String {
        match record {
            None => "without a teacher".into(),
            Some(r) => format!(
                "distilling from a teacher with fingerprint {} at weight {} and temperature {}",
                r.fingerprint, r.weight, r.temperature
            ),
        }
    }
}

/// The network distilled from, with its workspace and settings.
struct Teacher {
    graph: Graph,
    ws: GraphWorkspace,
    distill: Distill,
    record: TeacherRecord,
}

/// An L1 penalty `λ Σ |p|` on chosen parameters, trained by the same optimiser as the
/// weights: its subgradient `λ sign(p)` joins their gradients before each update (network
/// slimming's sparsity term). Parameters marked non-negative are projected back onto
/// `p ≥ 0` after each update (a gate after a ReLU must stay non-negative to fold).
#[derive(Debug, Clone, PartialEq)]
pub struct L1Penalty {
    /// Penalised parameters, with whether each is kept non-negative.
    pub params: Vec<(ParamId, bool)>,
    /// Strength `λ`.
    pub lambda: f32,
}

/// Metadata key of the trainer state in a checkpoint.
const STATE_KEY: &str = "trainer";

/// Trains a graph one step at a time.
pub struct Trainer {
    config: FitConfig,
    graph: Graph,
    optimizer: GraphOptimizer,
    ws: GraphWorkspace,
    grads: GraphGrads,
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
    penalty: Option<L1Penalty>,
    teacher: Option<Teacher>,
    /// After a resume, until the first step: the checkpoint and the teacher it recorded.
    resumed: Option<(PathBuf, Option<TeacherRecord>)>,
}

impl Trainer {
    /// A trainer for `graph` with fresh optimiser state.
    pub fn new(graph: Graph, config: FitConfig) -> Result<Self> {
        config.check()?;
        let optimizer = GraphOptimizer::new(config.optimizer, &graph)?;
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        Ok(Self::assemble(graph, optimizer, config, rng))
    }

    fn assemble(
        graph: Graph,
        optimizer: GraphOptimizer,
        config: FitConfig,
        rng: ChaCha8Rng,
    ) -> Self {
        let b = config.batch_size;
        Trainer {
            ws: GraphWorkspace::new(&graph, b),
            grads: GraphGrads::new(&graph),
            x: vec![0.0; b * graph.input_len()],
            y: vec![0; b],
            epoch_rng_pos: rng.get_word_pos(),
            rng,
            perm: Vec::new(),
            epoch: 0,
            step_in_epoch: 0,
            global_step: 0,
            running: LossStats::default(),
            seconds: 0.0,
            penalty: None,
            teacher: None,
            resumed: None,
            config,
            graph,
            optimizer,
        }
    }

    /// The graph being trained.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Mutable graph: gates and weights may change freely; remove channels with
    /// [`Trainer::remove_channels`], which keeps the optimiser and buffers in step.
    pub fn graph_mut(&mut self) -> &mut Graph {
        &mut self.graph
    }

    /// The mutable graph beside the last step's gradients, for a hook that moves parameters
    /// by their gradients without copying them.
    pub fn graph_mut_and_gradients(&mut self) -> (&mut Graph, &GraphGrads) {
        (&mut self.graph, &self.grads)
    }

    /// Consumes the trainer, returning the graph.
    pub fn into_graph(self) -> Graph {
        self.graph
    }

    /// Gradients of the last step.
    pub fn gradients(&self) -> &GraphGrads {
        &self.grads
    }

    /// The configuration.
    pub fn config(&self) -> &FitConfig {
        &self.config
    }

    /// Optimiser steps taken.
    pub fn global_step(&self) -> u64 {
        self.global_step
    }

    /// Epochs completed.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// True once `config.epochs` epochs are done.
    pub fn finished(&self) -> bool {
        self.epoch >= self.config.epochs
    }

    /// Mean loss and accuracy over the current epoch's steps so far (training mode); with a
    /// teacher, the loss is the distillation loss the weights train on, not the
    /// cross-entropy.
    pub fn running(&self) -> LossStats {
        let mut r = self.running;
        r.loss /= r.count.max(1) as f64;
        r
    }

    /// Wall-clock seconds of the current epoch's steps.
    pub fn epoch_seconds(&self) -> f64 {
        self.seconds
    }

    /// Adds `penalty` to the loss from the next step on. Its parameters must be trainable
    /// ([`ParamKind::Weight`](super::ParamKind::Weight)); it is not saved in checkpoints.
    pub fn set_penalty(&mut self, penalty: L1Penalty) -> Result<()> {
        for &(p, _) in &penalty.params {
            match self.graph.params.get(p) {
                Some(param) if param.kind == super::ParamKind::Weight => {}
                _ => {
                    return Err(Error::invalid(
                        "penalty",
                        format!("parameter {p} is not trainable"),
                    ))
                }
            }
        }
        self.penalty = Some(penalty);
        Ok(())
    }

    /// Distils from `teacher` from the next step on: the loss becomes [`Distill`]'s blend of
    /// the cross-entropy with the teacher's softened outputs, the teacher's logits computed in
    /// evaluation mode on the same (augmented) batch. The teacher is never updated, and must
    /// take the same inputs and give as many outputs as the graph being trained. It is not
    /// saved in checkpoints (they record its fingerprint and the settings): a resumed trainer
    /// must be given the same teacher again before its first step, or none if it had none.
    pub fn set_teacher(&mut self, teacher: Graph, distill: Distill) -> Result<()> {
        distill.check()?;
        for (what, expected, got) in [
            (
                "teacher inputs",
                self.graph.input_len(),
                teacher.input_len(),
            ),
            (
                "teacher outputs",
                self.graph.output_len(),
                teacher.output_len(),
            ),
        ] {
            if expected != got {
                return Err(Error::LengthMismatch {
                    field: what.into(),
                    expected,
                    got,
                });
            }
        }
        if !teacher.is_finite() {
            return Err(Error::invalid("teacher", "has a non-finite parameter"));
        }
        let record = TeacherRecord {
            weight: distill.weight,
            temperature: distill.temperature,
            fingerprint: teacher.fingerprint()?,
        };
        self.teacher = Some(Teacher {
            ws: GraphWorkspace::new(&teacher, self.config.batch_size),
            graph: teacher,
            distill,
            record,
        });
        Ok(())
    }

    /// After a resume and before the first step, refuses a teacher (or its absence) other
    /// than the one the checkpoint was written with.
    fn check_resumed_teacher(&self) -> Result<()> {
        if let Some((path, saved)) = &self.resumed {
            let now = self.teacher.as_ref().map(|t| &t.record);
            if now != saved.as_ref() {
                return Err(Error::ResumeMismatch {
                    path: path.clone(),
                    message: format!(
                        "the checkpoint was written {}, but this run trains {}",
                        TeacherRecord::describe(saved.as_ref()),
                        TeacherRecord::describe(now)
                    ),
                });
            }
        }
        Ok(())
    }

    /// Applies `plan` to the graph, the optimiser's moments and the gradients alike.
    pub fn remove_channels(&mut self, plan: &RemovalPlan) -> Result<()> {
        self.graph.remove_channels(plan)?;
        self.optimizer.remove_channels(plan)?;
        self.grads.remove_channels(plan)?;
        self.ws = GraphWorkspace::new(&self.graph, self.config.batch_size);
        Ok(())
    }

    fn shuffle(&mut self, n: usize) {
        self.rng.set_word_pos(self.epoch_rng_pos);
        self.perm.clear();
        self.perm.extend(0..n as u32);
        self.perm.shuffle(&mut self.rng);
    }

    /// Copies the batch of `indices` into the input buffer, cropped and flipped as configured.
    fn load_batch(&mut self, data: &Dataset, start: usize, end: usize) {
        data.gather(&self.perm[start..end], &mut self.x, &mut self.y);
        let dims = match *data.shape() {
            [c, h, w] => (c, h, w),
            _ => return,
        };
        let pad = self.config.crop_padding as i64;
        if pad == 0 && !self.config.flip {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
        rng.set_stream(self.global_step + 1);
        let fill = data.input_spec().apply(0.0);
        let len = data.sample_len();
        let mut src = vec![0.0f32; len];
        for slot in 0..end - start {
            let dst = &mut self.x[slot * len..(slot + 1) * len];
            src.copy_from_slice(dst);
            let mut shift = || {
                if pad > 0 {
                    rng.random_range(-pad..=pad) as isize
                } else {
                    0
                }
            };
            let (dy, dx) = (shift(), shift());
            let flip = self.config.flip && rng.random_bool(0.5);
            augment_into(dst, &src, dims, dy, dx, flip, fill);
        }
    }

    /// One optimiser step on the next minibatch of `data`, BatchNorm's running statistics
    /// moved as PyTorch's training forward does; with a teacher, on the distillation loss.
    pub fn step(&mut self, data: &Dataset) -> Result<StepRecord> {
        self.check_resumed_teacher()?;
        if data.sample_len() != self.graph.input_len() {
            return Err(Error::LengthMismatch {
                field: "sample".into(),
                expected: self.graph.input_len(),
                got: data.sample_len(),
            });
        }
        let n = data.len();
        if n == 0 {
            return Err(Error::invalid("data", "the training set is empty"));
        }
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
        self.load_batch(data, start, end);
        let il = self.graph.input_len();
        let (x, y) = (&self.x[..m * il], &self.y[..m]);
        let stats = match &mut self.teacher {
            None => self
                .graph
                .loss_and_grad(&mut self.ws, x, y, Mode::Train, &mut self.grads)?,
            Some(t) => {
                let logits = t.graph.forward(&mut t.ws, x, m, Mode::Eval)?;
                self.graph.distill_loss_and_grad(
                    &mut self.ws,
                    x,
                    y,
                    logits,
                    t.distill,
                    Mode::Train,
                    &mut self.grads,
                )?
            }
        };
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
        self.graph.update_running_stats(&self.ws)?;
        if self.config.schedule == LrSchedule::Cosine {
            let total = (self.config.epochs * n.div_ceil(b)).max(1) as f64;
            let t = (self.global_step as f64 / total).min(1.0);
            self.optimizer
                .set_lr_scale((0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32);
        }
        if let Some(pen) = &self.penalty {
            for &(p, _) in &pen.params {
                let w = self.graph.params[p].value.as_slice();
                for (g, &v) in self.grads.values[p].as_mut_slice().iter_mut().zip(w) {
                    *g += pen.lambda * v.signum() * (v != 0.0) as u8 as f32;
                }
            }
        }
        self.optimizer.step(&mut self.graph, &self.grads)?;
        if let Some(pen) = &self.penalty {
            for &(p, nonnegative) in &pen.params {
                if nonnegative {
                    self.graph.params[p]
                        .value
                        .iter_mut()
                        .for_each(|v| *v = v.max(0.0));
                }
            }
        }
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
        self.resumed = None;
        if end == n {
            self.epoch += 1;
            self.step_in_epoch = 0;
        }
        self.seconds += t0.elapsed().as_secs_f64();
        Ok(record)
    }

    /// Steps to the end of the current epoch, calling `hook` after every step.
    pub fn run_epoch(&mut self, data: &Dataset, hook: &mut impl StepHook) -> Result<()> {
        loop {
            let record = self.step(data)?;
            hook.after_step(self, &record)?;
            if record.epoch_done {
                return Ok(());
            }
        }
    }

    /// Trains to the end (every epoch of the config) with `hook`; with `checkpoint`, a
    /// checkpoint is written after every epoch.
    pub fn run(
        &mut self,
        data: &Dataset,
        hook: &mut impl StepHook,
        checkpoint: Option<&Path>,
    ) -> Result<()> {
        while !self.finished() {
            self.run_epoch(data, hook)?;
            if let Some(path) = checkpoint {
                self.save_checkpoint(path)?;
            }
        }
        Ok(())
    }

    /// Writes a checkpoint atomically: the graph with its gates, the optimiser's moments,
    /// the counters and the RNG position, sealed by a checksum.
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        self.save_checkpoint_with(path, HashMap::new())
    }

    /// [`Trainer::save_checkpoint`] with more metadata (the state of whatever drives the
    /// trainer), so that both land in one atomic write and one checksum.
    pub fn save_checkpoint_with(
        &self,
        path: &Path,
        mut meta: HashMap<String, String>,
    ) -> Result<()> {
        if !self.graph.is_finite() {
            return Err(Error::Diverged {
                epoch: self.epoch,
                step: self.step_in_epoch,
                what: "a parameter".into(),
            });
        }
        // A resumed trainer given another teacher must not overwrite what it resumed.
        self.check_resumed_teacher()?;
        let mut extra = Vec::new();
        for (kind, moments) in [
            ("first", self.optimizer.first_moments()),
            ("second", self.optimizer.second_moments()),
        ] {
            for (p, m) in self.graph.params().iter().zip(moments) {
                extra.push((
                    moment_name(kind, &p.name),
                    Dtype::F32,
                    vec![m.nrows(), m.ncols()],
                    row_major_bytes(m),
                ));
            }
        }
        let state = TrainerState {
            config: self.config.clone(),
            epoch: self.epoch,
            step_in_epoch: self.step_in_epoch,
            global_step: self.global_step,
            optimizer_steps: self.optimizer.steps(),
            // At an epoch boundary the next shuffle starts from the current position.
            epoch_rng_pos: if self.step_in_epoch == 0 {
                self.rng.get_word_pos().to_string()
            } else {
                self.epoch_rng_pos.to_string()
            },
            running: self.running,
            seconds: self.seconds,
            teacher: self.teacher.as_ref().map(|t| t.record.clone()),
        };
        meta.insert(
            STATE_KEY.to_string(),
            serde_json::to_string(&state)
                .map_err(|e| Error::invalid("trainer state", e.to_string()))?,
        );
        meta.insert(DIGEST_KEY.to_string(), DIGEST_PLACEHOLDER.to_string());
        let mut bytes = self.graph.to_safetensors(true, extra, meta)?;
        seal(&mut bytes)?;
        write_atomic(path, |w| w.write_all(&bytes))
    }

    /// Resumes from a checkpoint written by [`Trainer::save_checkpoint`]; a checkpoint whose
    /// checksum does not match its contents is refused. A checkpoint written while distilling
    /// needs the same teacher and settings again ([`Trainer::set_teacher`]) before the first
    /// step, which refuses anything else (a teacher where there was none included).
    pub fn resume(path: &Path) -> Result<Self> {
        Ok(Self::resume_with(path)?.0)
    }

    /// [`Trainer::resume`], also returning the checkpoint's metadata (what
    /// [`Trainer::save_checkpoint_with`] added, verified by the same checksum).
    pub fn resume_with(path: &Path) -> Result<(Self, HashMap<String, String>)> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        verify_sealed(&bytes, path)?;
        let graph = Graph::from_safetensors(&bytes, path)?;
        let (st, meta) = parse(&bytes, path)?;
        let bad = |m: String| Error::ModelFormat {
            path: path.to_path_buf(),
            message: m,
        };
        let state: TrainerState = serde_json::from_str(
            meta.get(STATE_KEY)
                .ok_or_else(|| bad("not a checkpoint: no trainer metadata".into()))?,
        )
        .map_err(|e| bad(format!("trainer metadata: {e}")))?;
        state.config.check()?;
        let fresh = GraphOptimizer::new(state.config.optimizer, &graph)?;
        let read = |kind: &str, shapes: &[DMatrix<f32>]| -> Result<Vec<DMatrix<f32>>> {
            graph
                .params()
                .iter()
                .zip(shapes)
                .map(|(p, m)| {
                    let (r, c) = m.shape();
                    let v = read_f32(&st, &moment_name(kind, &p.name), &[r, c], path)?;
                    Ok(DMatrix::from_row_slice(r, c, &v))
                })
                .collect()
        };
        let first = read("first", fresh.first_moments())?;
        let second = read("second", fresh.second_moments())?;
        let optimizer = GraphOptimizer::restore(
            state.config.optimizer,
            &graph,
            state.optimizer_steps,
            first,
            second,
        )?;
        let pos: u128 = state
            .epoch_rng_pos
            .parse()
            .map_err(|_| bad("trainer metadata: bad epoch_rng_pos".into()))?;
        let mut rng = ChaCha8Rng::seed_from_u64(state.config.seed);
        rng.set_word_pos(pos);
        let mut t = Self::assemble(graph, optimizer, state.config, rng);
        t.epoch = state.epoch;
        t.step_in_epoch = state.step_in_epoch;
        t.global_step = state.global_step;
        t.epoch_rng_pos = pos;
        t.running = state.running;
        t.seconds = state.seconds;
        t.resumed = Some((path.to_path_buf(), state.teacher));
        Ok((t, meta))
    }
}

/// The checkpoint tensor holding optimiser moment `kind` of parameter `param`.
fn moment_name(kind: &str, param: &str) -> String {
    format!("{CHECKPOINT_PREFIX}{kind}.{param}")
}
