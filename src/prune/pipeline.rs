//! The whole pruning job behind `pruning-game prune` and the examples: dense reference,
//! equilibrium pruning (resumable), fine-tune, baselines at equal per-layer kept counts,
//! reports and the exported model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::baselines::{
    finetune, prune_to_counts, scores, train_folded, train_resumable, train_slimming, Baseline,
};
use super::certificate::{GuardRecord, UnitCertificate};
use super::config::PruneConfig;
use super::diagnostics::Evaluation;
use super::price::Calibration;
use super::report::{
    group_counts, kept_fraction, latency_ms, write_evaluations, write_trajectories, GroupCount,
};
use super::run::PruneRun;
use crate::error::{Error, Result};
use crate::io::{remove_stale_temporaries, write_json_atomic};
use crate::lock::FolderLock;
use crate::nn::graph::train::evaluate;
use crate::nn::graph::{Graph, RESNET_DEPTHS};
use crate::nn::{DataSource, Dataset, Distill};

/// Network architecture of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// MLP with these hidden widths (input and output from the data).
    Mlp {
        /// Hidden widths.
        hidden: Vec<usize>,
    },
    /// The small CNN of [`Graph::small_cnn`].
    Cnn,
    /// The BatchNorm CNN of [`Graph::bn_cnn`] with these block widths.
    BnCnn {
        /// Channels of each conv-BN-ReLU block.
        widths: Vec<usize>,
    },
    /// The ResNet for small images of [`Graph::resnet`].
    Resnet {
        /// Depth `6n + 2`.
        depth: usize,
    },
    /// A trained network from a model file (this crate's export, or PyTorch's through
    /// `python/pruning_game_torch.py`): no dense training; gates are inserted
    /// ([`Graph::with_gates`]) and the game plays while the network is fine-tuned.
    File {
        /// The `.safetensors` file.
        path: PathBuf,
    },
}

/// The most parameters a network built here may have: 2^28 (1 GiB of weights; training holds
/// about six such copies: values, gradients, two optimiser moments, a reference and a folded
/// copy). Checked from the widths before anything is allocated.
const MAX_PARAMETERS: u128 = 1 << 28;

/// The most activation values a minibatch may produce across a network's layers: 2^30
/// (4 GiB; the backward pass holds about as much again in gradients).
const MAX_BATCH_ACTIVATIONS: u128 = 1 << 30;

impl Architecture {
    /// Parameters and activation values per sample of the network this builds, counted from
    /// its widths without building it (`None` for the fixed architectures and model files,
    /// whose sizes the data's image bounds and the file's size already limit).
    fn size_estimate(&self, data: &Dataset) -> Option<(u128, u128)> {
        let classes = data.classes() as u128;
        match self {
            Architecture::Mlp { hidden } => {
                let mut widths = vec![data.sample_len() as u128];
                widths.extend(hidden.iter().map(|&w| w as u128));
                widths.push(classes);
                let params = widths.windows(2).map(|w| (w[0] + 2) * w[1]).sum();
                Some((params, 3 * widths.iter().sum::<u128>()))
            }
            Architecture::BnCnn { widths } => {
                let [c, h, w] = data.shape()[..] else {
                    return None;
                };
                let (mut cin, mut pixels) = (c as u128, (h * w) as u128);
                let (mut params, mut values) = (0u128, 0u128);
                for &width in widths {
                    let width = width as u128;
                    params += 9 * cin * width + 3 * width;
                    values += 4 * width * pixels;
                    (cin, pixels) = (width, pixels / 4);
                }
                Some((params + (cin + 1) * classes, values))
            }
            _ => None,
        }
    }

    /// Refuses a network whose parameters or one minibatch's activations would not fit in
    /// the bounds above, naming the flag that sets its size.
    fn check_size(&self, data: &Dataset, batch_size: usize) -> Result<()> {
        let Some((params, per_sample)) = self.size_estimate(data) else {
            return Ok(());
        };
        let flag = match self {
            Architecture::BnCnn { .. } => "widths",
            _ => "hidden",
        };
        if params > MAX_PARAMETERS {
            return Err(Error::invalid(
                flag,
                format!("the network would have {params} parameters; at most {MAX_PARAMETERS} are allowed"),
            ));
        }
        let batch = per_sample * batch_size.min(data.len()) as u128;
        if batch > MAX_BATCH_ACTIVATIONS {
            return Err(Error::invalid(
                flag,
                format!(
                    "a minibatch of {batch_size} would produce about {batch} activation values; \
                     at most {MAX_BATCH_ACTIVATIONS} are allowed (lower the widths or batch_size)"
                ),
            ));
        }
        Ok(())
    }

    /// A fresh gated network for `data`, weights seeded by `seed`.
    pub fn build(&self, data: &Dataset, seed: u64) -> Result<Graph> {
        let images = data.shape().len() == 3;
        let needs_images = |what: &str| {
            Error::invalid(
                "model",
                format!("the {what} needs image data ([c, h, w]); use --model mlp"),
            )
        };
        let input = data.input_spec().clone();
        match self {
            Architecture::Mlp { hidden } => {
                let mut widths = vec![data.sample_len()];
                widths.extend(hidden);
                widths.push(data.classes());
                Graph::mlp(&widths, seed)?.with_input(input)
            }
            Architecture::Cnn if images => {
                Graph::small_cnn(data.shape(), data.classes(), seed)?.with_input(input)
            }
            Architecture::BnCnn { widths } if images => {
                Graph::bn_cnn(input, widths, data.classes(), seed)
            }
            Architecture::Resnet { depth } if images => {
                if !RESNET_DEPTHS.contains(depth) {
                    return Err(Error::invalid(
                        "model",
                        format!("resnet{depth}: the depth must be one of {RESNET_DEPTHS:?}"),
                    ));
                }
                Graph::resnet(*depth, input, data.classes(), seed)
            }
            Architecture::File { path } => {
                let graph = Graph::load(path)?;
                // The loader refuses non-finite values by tensor and entry.
                if graph.input().shape != data.shape() {
                    return Err(Error::ModelFormat {
                        path: path.clone(),
                        message: format!(
                            "input shape {:?}, but the data set's samples are {:?}",
                            graph.input().shape,
                            data.shape()
                        ),
                    });
                }
                if graph.output_len() != data.classes() {
                    return Err(Error::ModelFormat {
                        path: path.clone(),
                        message: format!(
                            "{} outputs, but the data set has {} classes",
                            graph.output_len(),
                            data.classes()
                        ),
                    });
                }
                graph.with_gates()
            }
            Architecture::Cnn => Err(needs_images("CNN")),
            Architecture::BnCnn { .. } => Err(needs_images("BN-CNN")),
            Architecture::Resnet { .. } => Err(needs_images("ResNet")),
        }
    }
}

/// Splits off the last `n` training samples as the held-out set for benefit measurements
/// (at most a fifth of the data).
pub fn split_holdout(train: &Dataset, n: usize) -> Result<(Dataset, Dataset)> {
    let n = n.clamp(1, (train.len() / 5).max(1));
    let keep = train.len() - n;
    let d = train.sample_len();
    let part = |from: usize, to: usize| {
        Dataset::new(
            train.inputs()[from * d..to * d].to_vec(),
            train.labels()[from..to].to_vec(),
            train.shape().to_vec(),
            train.classes(),
            train.input_spec().clone(),
            DataSource::Subset {
                parent: Box::new(train.source().clone()),
                len: to - from,
            },
        )
    };
    Ok((part(0, keep)?, part(keep, train.len())?))
}

/// A pruning job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Network.
    pub architecture: Architecture,
    /// Pruner and training settings (seed inside).
    pub config: PruneConfig,
    /// Baselines to run at the game's per-layer kept counts.
    pub baselines: Vec<Baseline>,
    /// L1 strength of the slimming baseline.
    pub slimming_lambda: f64,
    /// Human-readable data set name.
    pub dataset: String,
}

/// A baseline's result at the game's per-layer kept counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineResult {
    /// Baseline name.
    pub method: String,
    /// Kept channels per player group.
    pub kept_per_group: Vec<GroupCount>,
    /// Test accuracy right after pruning (for `scratch`: after training the fresh shape).
    pub pruned_accuracy: f64,
    /// Test accuracy after the same fine-tune as the game.
    pub finetuned_accuracy: f64,
}

/// Everything `report.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Which variant of the algorithm ran.
    pub variant: String,
    /// The job (architecture, data set, full configuration, baselines).
    pub job: Job,
    /// Seed of the run.
    pub seed: u64,
    /// `γ` of each player group's game at the end (calibrated in target mode).
    pub gamma_per_group: Vec<f64>,
    /// Target-mode calibration.
    pub calibration: Option<Calibration>,
    /// Test accuracy of the dense network trained with the same budget.
    pub dense_accuracy: f64,
    /// Test accuracy of the game's network right after removal (before the refit and the
    /// fine-tune).
    pub pruned_accuracy: f64,
    /// Test accuracy of the game's network after the survivors' refit (equal to
    /// `pruned_accuracy` without one).
    pub refitted_accuracy: f64,
    /// Test accuracy of the exported network (after fine-tuning).
    pub finetuned_accuracy: f64,
    /// Test loss of the dense network.
    pub dense_loss: f64,
    /// Test loss of the game's network right after removal.
    pub pruned_loss: f64,
    /// Test loss after the survivors' refit.
    pub refitted_loss: f64,
    /// Test loss of the exported network.
    pub finetuned_loss: f64,
    /// Channels per player group before and after.
    pub kept_per_group: Vec<GroupCount>,
    /// Fraction of channels kept.
    pub kept_fraction: f64,
    /// Parameters of the dense network.
    pub params_before: usize,
    /// Parameters of the exported network.
    pub params_after: usize,
    /// FLOPs per sample (2 × multiply-accumulates) before.
    pub flops_before: usize,
    /// FLOPs per sample after.
    pub flops_after: usize,
    /// Best-of-9 forward latency (ms) over 2000 test samples in batches of 250, dense.
    pub latency_ms_before: f64,
    /// Same for the exported network.
    pub latency_ms_after: f64,
    /// `latency_ms_before / latency_ms_after`.
    pub speedup: f64,
    /// Same for the exported network with its BatchNorms folded into the layers before them
    /// ([`Graph::fold_batchnorm`]), timed in the same rounds as the other two.
    pub latency_ms_folded: f64,
    /// `latency_ms_before / latency_ms_folded`: the dense network unfolded over the pruned one
    /// folded, the gain of pruning and folding together.
    pub speedup_folded: f64,
    /// Units removed, with certificates in `certificates.json`.
    pub removed: usize,
    /// Removed units proved dominated by T3/T4.
    pub dominated: usize,
    /// Removed units satisfying the KKT condition `benefit ≤ cost` on held-out data.
    pub kkt_satisfied: usize,
    /// Units kept by the layer-collapse guard.
    pub guards: Vec<GuardRecord>,
    /// What a user must know about this run (a missed target, a guarded layer), one
    /// sentence each; empty when there is nothing to say.
    pub notes: Vec<String>,
    /// Loss, accuracy and equilibrium gaps after every epoch.
    pub evaluations: Vec<Evaluation>,
    /// Baselines at the same per-layer kept counts.
    pub baselines: Vec<BaselineResult>,
    /// Wall-clock seconds of the whole job.
    pub seconds: f64,
}

/// A one-line description of the algorithm variant in `config`.
pub fn variant(config: &PruneConfig) -> String {
    let distillation = match config.training.distillation() {
        None => String::new(),
        Some(d) => format!(
            "; every pruned network (refit, fine-tunes, scratch control) distils from the dense \
             reference at weight {} and temperature {}",
            d.weight, d.temperature
        ),
    };
    format!(
        "projected gradient play on gates after each weight step; benefit = EMA({}) of -dL/ds; \
         redundancy {:?} refreshed every {} steps; scale symmetry {}; warm-up {} steps; \
         removal after {} steps at 0; {}; {}{distillation}",
        config.gates.benefit_momentum,
        config.gates.redundancy,
        config.gates.refresh_every,
        match config.gates.symmetry {
            crate::prune::ScaleSymmetry::Normalize =>
                "broken by moving each unit's weight scale into its gate (norms held)".to_string(),
            crate::prune::ScaleSymmetry::WeightDecay =>
                format!("broken by decoupled weight decay {}", config.gates.weight_decay),
            crate::prune::ScaleSymmetry::Unbroken => "left unbroken".into(),
        },
        config.gates.warmup_steps,
        config.gates.patience,
        match config.price.target_kept {
            Some(f) => format!(
                "gamma for kept fraction {f} ({}): initial value from the measured games, then price-adjusted until {:.0}% of training, aiming {}",
                match config.price.target_scope {
                    crate::prune::TargetScope::EachLayer => "a price per layer",
                    crate::prune::TargetScope::Network => "one price for the network",
                },
                100.0 * config.price.control_fraction,
                match config.price.target_schedule {
                    crate::prune::TargetSchedule::Immediate => "at the target throughout",
                    crate::prune::TargetSchedule::Cubic => "at a kept fraction falling cubically from 1 to the target",
                }
            ),
            None => format!("fixed gamma {}", config.game.gamma),
        },
        match config.training.refit_epochs() {
            0 => "no refit: the game plays every epoch".to_string(),
            r => format!(
                "the game plays {} of {} epochs, then the survivors refit for {r} (gates folded, \
                 plain loss, fresh schedule)",
                config.training.game_epochs(),
                config.training.epochs
            ),
        }
    )
}

/// Relative miss of the target kept fraction that the report points out.
const TARGET_MISS: f64 = 0.1;

/// The report's notes: a target kept fraction missed by more than [`TARGET_MISS`] either way
/// (and why, when the games measured at the end of the warm-up kept less even at `γ = 0`),
/// and every layer the collapse guard kept alive.
fn run_notes(calibration: Option<&Calibration>, guards: &[GuardRecord], kept: f64) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(c) = calibration {
        if kept > c.target_kept * (1.0 + TARGET_MISS) {
            notes.push(format!(
                "kept fraction {kept:.3} is above the target {}: the gates had not followed the \
                 price when it was fixed (raise control_fraction or price_gain)",
                c.target_kept
            ));
        }
        if kept < c.target_kept * (1.0 - TARGET_MISS) {
            let why = if c.kept_without_price < c.target_kept {
                format!(
                    ": even at gamma = 0 the games measured at step {} kept {:.3} (competition \
                     and negative benefits remove units without any price; lower beta to keep more)",
                    c.step, c.kept_without_price
                )
            } else {
                String::new()
            };
            notes.push(format!(
                "kept fraction {kept:.3} is below the target {}{why}",
                c.target_kept
            ));
        }
    }
    for g in guards {
        notes.push(format!(
            "group {} would have lost every channel; channel {} was kept by the collapse guard",
            g.group, g.unit
        ));
    }
    notes
}

/// What a run folder's `config.json` holds: the job and fingerprints of what it ran on, so a
/// resume with other data or another starting network is refused even when the paths that
/// name them differ (a moved folder, another working directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunRecord {
    #[serde(flatten)]
    job: Job,
    inputs: Inputs,
}

/// Fingerprints of a run's inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Inputs {
    /// Training samples (held-out set included).
    train_samples: usize,
    /// Test samples.
    test_samples: usize,
    /// FNV-1a (hex) of every training and test sample and label.
    data_digest: String,
    /// FNV-1a (hex) of the starting network's parameters and structure.
    init_digest: String,
}

impl Inputs {
    fn of(train: &Dataset, test: &Dataset, initial: &Graph) -> Result<Self> {
        let mut h = crate::io::FNV_OFFSET;
        for d in [train, test] {
            h = crate::io::fnv1a_extend(h, bytemuck::cast_slice(d.inputs()));
            h = crate::io::fnv1a_extend(h, bytemuck::cast_slice(d.labels()));
        }
        Ok(Inputs {
            train_samples: train.len(),
            test_samples: test.len(),
            data_digest: format!("{h:016x}"),
            init_digest: initial.fingerprint()?,
        })
    }
}

impl RunRecord {
    /// The settings in which a saved run differs from this one; names of files (the model
    /// given by `--init`, an IDX folder in the data set's name) are left to the digests.
    fn differences_from(&self, saved: &RunRecord) -> Vec<String> {
        let anonymous = |r: &RunRecord| {
            let mut r = r.clone();
            if let Architecture::File { path } = &mut r.job.architecture {
                *path = PathBuf::new();
            }
            r.job.dataset.clear();
            r
        };
        super::run::differences(&anonymous(saved), &anonymous(self))
    }
}

/// True if `dir` holds a pruning run that `run_job` can resume.
pub fn has_run(dir: &Path) -> bool {
    dir.join(CONFIG).is_file()
}

/// The job's record in a run folder.
const CONFIG: &str = "config.json";

/// The game's folder and the trainer checkpoints of the refit and the dense reference inside
/// a run folder.
const GAME_DIR: &str = "game";
const REFIT_CHECKPOINT: &str = "refit.ckpt.safetensors";
const DENSE_CHECKPOINT: &str = "dense.ckpt.safetensors";

/// Files of a run folder.
pub struct RunFiles {
    /// The folder.
    pub dir: PathBuf,
}

impl RunFiles {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The survivors' refit: gates folded, `config.training.refit_epochs()` epochs on the plain
/// loss (or distilling from `teacher`) with a fresh learning-rate schedule at the training
/// rate.
fn refit(
    gated: &Graph,
    train: &Dataset,
    config: &PruneConfig,
    checkpoint: &Path,
    resume: bool,
    teacher: Option<(&Graph, Distill)>,
) -> Result<Graph> {
    let mut fc = config.train_config(config.training.refit_epochs());
    fc.seed = config.seed.wrapping_add(2);
    train_folded(gated, train, fc, Some((checkpoint, resume)), teacher)
}

/// Checks everything about `job` on `(train, test)` that can be checked without writing a
/// file — settings, sizes against what they would allocate, the network against the data —
/// and returns the starting network with the training and held-out sets.
pub(crate) fn prepare(
    architecture: &Architecture,
    cfg: &PruneConfig,
    train: &Dataset,
    test: &Dataset,
) -> Result<(Graph, Dataset, Dataset)> {
    cfg.check()?;
    let (train, holdout) = split_holdout(train, cfg.run.holdout)?;
    if cfg.training.batch_size > train.len() {
        return Err(Error::invalid(
            "batch_size",
            format!(
                "{} is more than the {} training samples left after the held-out set",
                cfg.training.batch_size,
                train.len()
            ),
        ));
    }
    architecture.check_size(&train, cfg.training.batch_size)?;
    let initial = architecture.build(&train, cfg.seed)?;
    if test.sample_len() != initial.input_len() {
        return Err(Error::invalid(
            "test set",
            format!(
                "samples have {} values, the network takes {}",
                test.sample_len(),
                initial.input_len()
            ),
        ));
    }
    Ok((initial, train, holdout))
}

/// Checks `job` on `(train, test)` as [`run_job`] does before it writes anything.
pub fn check_job(job: &Job, train: &Dataset, test: &Dataset) -> Result<()> {
    prepare_job(job, train, test).map(|_| ())
}

/// [`prepare`] for a unit job, with the checks of its baselines' settings.
fn prepare_job(job: &Job, train: &Dataset, test: &Dataset) -> Result<(Graph, Dataset, Dataset)> {
    if !(job.slimming_lambda.is_finite() && job.slimming_lambda >= 0.0) {
        return Err(Error::invalid(
            "slimming_lambda",
            "must be a finite number >= 0",
        ));
    }
    prepare(&job.architecture, &job.config, train, test)
}

/// Runs `job` on `(train, test)`, writing everything into `out`; with `resume`, continues
/// from the checkpoints found there. Returns the report (also written as `report.json`).
pub fn run_job(
    job: &Job,
    train: &Dataset,
    test: &Dataset,
    out: &Path,
    resume: bool,
) -> Result<Report> {
    let t0 = Instant::now();
    let files = RunFiles {
        dir: out.to_path_buf(),
    };
    let cfg = &job.config;
    let train_all = train;
    let (initial, train, holdout) = prepare_job(job, train, test)?;
    let record = RunRecord {
        job: job.clone(),
        inputs: Inputs::of(train_all, test, &initial)?,
    };
    if resume && !has_run(out) {
        return Err(Error::NothingToResume { path: out.into() });
    }
    // One writer per folder; what a killed writer left half-written goes first.
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let _lock = FolderLock::acquire(out)?;
    let game_dir = files.path(GAME_DIR);
    if resume {
        let path = files.path(CONFIG);
        let saved: RunRecord =
            serde_json::from_str(&crate::io::read_to_string(&path)?).map_err(|e| {
                Error::ResumeMismatch {
                    path: path.clone(),
                    message: format!("not a run of this version ({e})"),
                }
            })?;
        let changed = record.differences_from(&saved);
        if !changed.is_empty() {
            return Err(Error::ResumeMismatch {
                path,
                message: format!("settings differ from the saved run: {}", changed.join("; ")),
            });
        }
    } else {
        // Nothing of an earlier run in this folder may be resumed into the new one.
        PruneRun::remove_checkpoint(&game_dir)?;
        for name in [REFIT_CHECKPOINT, DENSE_CHECKPOINT] {
            let path = files.path(name);
            if path.is_file() {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
    }
    for dir in [out, game_dir.as_path()] {
        if dir.is_dir() {
            remove_stale_temporaries(dir)?;
        }
    }
    if !resume {
        write_json_atomic(&files.path(CONFIG), &record)?;
    }

    // The game.
    let mut run = if resume && PruneRun::has_checkpoint(&game_dir) {
        PruneRun::resume(&game_dir, cfg)?
    } else {
        PruneRun::new(initial.clone(), cfg.clone())?
    };
    run.run(&train, &holdout, Some(test), Some(&game_dir))?;
    let (gated, pruner) = run.finish(&holdout)?;
    let pruned_stats = evaluate(&gated, test, 500)?;

    // Dense reference (the baselines' starting point, and with distillation on the teacher
    // of every pruned network's training from here on): a model from a file is one already.
    let from_file = matches!(job.architecture, Architecture::File { .. });
    let dense = if from_file {
        initial.clone()
    } else {
        train_resumable(
            initial.clone(),
            &train,
            cfg.train_config(cfg.training.epochs),
            &files.path(DENSE_CHECKPOINT),
            resume,
            None,
        )?
    };
    let dense_stats = evaluate(&dense, test, 500)?;
    let teacher = cfg.teacher(&dense);

    let refitted = refit(
        &gated,
        &train,
        cfg,
        &files.path(REFIT_CHECKPOINT),
        resume,
        teacher,
    )?;
    let refitted_stats = evaluate(&refitted, test, 500)?;
    let finetuned = finetune(
        &refitted,
        &train,
        cfg,
        cfg.training.finetune_epochs,
        teacher,
    )?;
    let final_stats = evaluate(&finetuned, test, 500)?;
    let counts = group_counts(&initial, &gated);

    let mut baselines = Vec::new();
    let kept: Vec<usize> = counts.iter().map(|c| c.after.max(1)).collect();
    for &b in &job.baselines {
        let source = if b == Baseline::Slimming {
            train_slimming(&initial, &train, cfg, job.slimming_lambda)?
        } else {
            dense.clone()
        };
        let s = scores(
            b,
            &source,
            &holdout,
            cfg.training.batch_size,
            cfg.seed.wrapping_add(7),
        )?;
        let mut pruned = prune_to_counts(&source, &s, &kept)?;
        if b == Baseline::Scratch {
            let fresh = pruned.reinitialized(cfg.seed.wrapping_add(3));
            let fc = cfg.train_config(cfg.training.epochs);
            pruned = train_folded(&fresh, &train, fc, None, teacher)?;
        }
        let before = evaluate(&pruned, test, 500)?;
        if from_file && matches!(b, Baseline::Magnitude | Baseline::Random | Baseline::Taylor) {
            // The game played `epochs` on the trained model before its fine-tune (slimming
            // trained as long under its penalty, scratch as long from a fresh start): the same
            // budget at the same settings, from the pruned weights.
            let fc = cfg.train_config(cfg.training.epochs);
            pruned = train_folded(&pruned, &train, fc, None, teacher)?;
        }
        let tuned = finetune(&pruned, &train, cfg, cfg.training.finetune_epochs, teacher)?;
        let after = evaluate(&tuned, test, 500)?;
        baselines.push(BaselineResult {
            method: b.name().into(),
            kept_per_group: group_counts(&initial, &pruned),
            pruned_accuracy: before.accuracy(),
            finetuned_accuracy: after.accuracy(),
        });
    }

    let mut dense_export = dense.clone();
    dense_export.fold_gates()?;
    let folded = finetuned.fold_batchnorm()?;
    // Interleaved, best of all rounds, so load from other processes hits all alike.
    let mut lat = [f64::INFINITY; 3];
    for _ in 0..3 {
        for (l, g) in lat.iter_mut().zip([&dense_export, &finetuned, &folded]) {
            *l = l.min(latency_ms(g, test, 2000, 250, 3)?);
        }
    }
    let [lat_before, lat_after, lat_folded] = lat;
    let certs: &[UnitCertificate] = pruner.certificates();
    finetuned.export(&files.path("pruned.safetensors"))?;
    write_json_atomic(&files.path("certificates.json"), &certs)?;
    write_trajectories(&files.path("trajectories.csv"), pruner.trajectory())?;
    write_evaluations(&files.path("equilibrium.csv"), pruner.evaluations())?;
    let kept = kept_fraction(&counts);
    let report = Report {
        variant: variant(cfg),
        job: job.clone(),
        seed: cfg.seed,
        gamma_per_group: pruner.gammas(),
        calibration: pruner.calibration().cloned(),
        dense_accuracy: dense_stats.accuracy(),
        pruned_accuracy: pruned_stats.accuracy(),
        refitted_accuracy: refitted_stats.accuracy(),
        finetuned_accuracy: final_stats.accuracy(),
        dense_loss: dense_stats.loss,
        pruned_loss: pruned_stats.loss,
        refitted_loss: refitted_stats.loss,
        finetuned_loss: final_stats.loss,
        kept_fraction: kept,
        kept_per_group: counts,
        params_before: initial.parameter_count(),
        params_after: finetuned.parameter_count(),
        flops_before: 2 * initial.macs_per_sample(),
        flops_after: 2 * finetuned.macs_per_sample(),
        latency_ms_before: lat_before,
        latency_ms_after: lat_after,
        speedup: lat_before / lat_after.max(1e-12),
        latency_ms_folded: lat_folded,
        speedup_folded: lat_before / lat_folded.max(1e-12),
        removed: certs.len(),
        dominated: certs.iter().filter(|c| c.dominated).count(),
        kkt_satisfied: certs.iter().filter(|c| c.margin >= 0.0).count(),
        notes: run_notes(pruner.calibration(), pruner.guards(), kept)
            .into_iter()
            .chain((holdout.len() != cfg.run.holdout).then(|| {
                format!(
                    "holdout: {} samples asked, {} used (at most a fifth of the {} training \
                     samples)",
                    cfg.run.holdout,
                    holdout.len(),
                    train_all.len()
                )
            }))
            .collect(),
        guards: pruner.guards().to_vec(),
        evaluations: pruner.evaluations().to_vec(),
        baselines,
        seconds: t0.elapsed().as_secs_f64(),
    };
    write_json_atomic(&files.path("report.json"), &report)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::data::{teacher_student, TeacherConfig};
    use crate::nn::graph::Trainer;
    use crate::prune::baselines::train_resumable;
    use crate::prune::players::{gates_mut, players};

    /// The refit trains the survivors of a shrunk network on the plain loss (its training loss
    /// falls) with their gates folded, and without a refit the folded network computes what the
    /// gated one did.
    #[test]
    fn refit_trains_the_folded_survivors_for_its_share_of_the_epochs() {
        let (train, _) = teacher_student(&TeacherConfig {
            train: 2000,
            test: 10,
            ..TeacherConfig::default()
        })
        .unwrap();
        let mut gated = Graph::mlp(&[train.sample_len(), 12, train.classes()], 3).unwrap();
        // Briefly trained, then shrunk as the game's costs shrink its survivors.
        let mut warm = PruneConfig::teacher_default();
        warm.training.epochs = 2;
        let mut t = Trainer::new(gated.clone(), warm.train_config(2)).unwrap();
        t.run(&train, &mut (), None).unwrap();
        gated = t.into_graph();
        let group = players(&gated).remove(0);
        gates_mut(&mut gated, &group).fill(0.3);
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("refit.ckpt");
        let config = |refit_fraction: f64| {
            let mut c = PruneConfig::teacher_default();
            c.training.epochs = 10;
            c.training.refit_fraction = refit_fraction;
            c
        };
        let loss = |g: &Graph| evaluate(g, &train, 500).unwrap().loss;

        let folded = refit(&gated, &train, &config(0.0), &ckpt, false, None).unwrap();
        assert!(
            !ckpt.exists(),
            "no refit epochs, yet a checkpoint was written"
        );
        let x = &train.inputs()[..50 * train.sample_len()];
        let gap = (gated.predict(x, 50).unwrap() - folded.predict(x, 50).unwrap())
            .abs()
            .max();
        assert!(gap < 1e-5, "folding changed the outputs by {gap}");

        let refitted = refit(&gated, &train, &config(0.3), &ckpt, false, None).unwrap();
        assert!(
            ckpt.exists(),
            "the refit wrote no checkpoint to resume from"
        );
        let after = players(&refitted).remove(0);
        assert_eq!(after.channels, 12, "the refit changed the width");
        assert!(crate::prune::players::gates(&refitted, &after)
            .iter()
            .all(|g| g.to_bits() == 1.0f32.to_bits()));
        let (before, after) = (loss(&folded), loss(&refitted));
        assert!(after < 0.9 * before, "training loss {before} -> {after}");
    }

    /// The refit of a distilled run, interrupted after its first epoch and resumed with the
    /// dense reference read back from its checkpoint (as a resumed run has it), ends where
    /// the uninterrupted refit does; resumed without the teacher, it is refused.
    #[test]
    fn a_distilled_refit_resumes_exactly_with_the_dense_reference_read_back() {
        let (train, _) = teacher_student(&TeacherConfig {
            train: 1500,
            test: 10,
            ..TeacherConfig::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = PruneConfig::teacher_default();
        config.training.epochs = 10;
        config.training.refit_fraction = 0.3;
        config.training.distill_weight = 0.5;
        let initial = Graph::mlp(&[train.sample_len(), 16, train.classes()], 4).unwrap();
        let dense_ckpt = dir.path().join("dense.ckpt");
        let fc = config.train_config(2);
        let dense = train_resumable(
            initial.clone(),
            &train,
            fc.clone(),
            &dense_ckpt,
            false,
            None,
        )
        .unwrap();
        let reread = train_resumable(initial, &train, fc, &dense_ckpt, true, None).unwrap();
        assert_eq!(reread, dense);
        let mut gated = Graph::mlp(&[train.sample_len(), 6, train.classes()], 5).unwrap();
        let group = players(&gated).remove(0);
        gates_mut(&mut gated, &group).fill(0.5);

        let full_ckpt = dir.path().join("full.ckpt");
        let full = refit(
            &gated,
            &train,
            &config,
            &full_ckpt,
            false,
            config.teacher(&dense),
        );
        let full = full.unwrap();
        // What the refit leaves on disk after its first epoch.
        let ckpt = dir.path().join("refit.ckpt");
        let mut fc = config.train_config(config.training.refit_epochs());
        fc.seed = config.seed.wrapping_add(2);
        let mut folded = gated.clone();
        folded.fold_gates_forward().unwrap();
        let mut t = Trainer::new(folded, fc).unwrap();
        let (teacher, distill) = config.teacher(&dense).unwrap();
        t.set_teacher(teacher.clone(), distill).unwrap();
        t.run_epoch(&train, &mut ()).unwrap();
        t.save_checkpoint(&ckpt).unwrap();

        let refused = refit(&gated, &train, &config, &ckpt, true, None).unwrap_err();
        assert!(matches!(refused, Error::ResumeMismatch { .. }), "{refused}");
        let resumed = refit(
            &gated,
            &train,
            &config,
            &ckpt,
            true,
            config.teacher(&reread),
        );
        assert_eq!(resumed.unwrap(), full, "the resumed refit differs");
        let plain = refit(&gated, &train, &config, &full_ckpt, false, None).unwrap();
        assert_ne!(plain, full, "the teacher changed nothing");
    }

    /// With distillation on, every network trained after pruning differs from the run without
    /// it (the game's refit and fine-tune, every baseline's fine-tune, the scratch control's
    /// training), while what trains before pruning (the game's play, the dense reference,
    /// slimming's penalised training) is the same; the report says it distilled.
    #[test]
    fn distillation_reaches_every_pruned_network_and_nothing_before_pruning() {
        let (train, test) = teacher_student(&TeacherConfig {
            train: 3000,
            test: 1000,
            ..TeacherConfig::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let job = |distill_weight: f64| {
            let mut config = PruneConfig::teacher_default();
            config.training.epochs = 12;
            config.price.target_kept = Some(0.25);
            config.training.distill_weight = distill_weight;
            Job {
                architecture: Architecture::Mlp { hidden: vec![32] },
                config,
                baselines: Baseline::ALL.to_vec(),
                slimming_lambda: 1e-4,
                dataset: "teacher".into(),
            }
        };
        let run = |w: f64| {
            run_job(
                &job(w),
                &train,
                &test,
                &dir.path().join(format!("{w}")),
                false,
            )
        };
        let (off, on) = (run(0.0).unwrap(), run(1.0).unwrap());
        assert!(!off.variant.contains("distils"), "{}", off.variant);
        assert!(
            on.variant.contains("distils from the dense reference"),
            "{}",
            on.variant
        );
        assert_eq!(on.dense_loss.to_bits(), off.dense_loss.to_bits());
        assert_eq!(on.pruned_loss.to_bits(), off.pruned_loss.to_bits());
        assert_eq!(on.kept_per_group, off.kept_per_group);
        assert_ne!(on.refitted_loss.to_bits(), off.refitted_loss.to_bits());
        assert_ne!(on.finetuned_loss.to_bits(), off.finetuned_loss.to_bits());
        for (a, b) in on.baselines.iter().zip(&off.baselines) {
            if a.method == "scratch" {
                assert_ne!(a.pruned_accuracy.to_bits(), b.pruned_accuracy.to_bits());
            } else {
                let (x, y) = (a.pruned_accuracy, b.pruned_accuracy);
                assert_eq!(x.to_bits(), y.to_bits(), "{}", a.method);
                let (x, y) = (a.finetuned_accuracy, b.finetuned_accuracy);
                assert_ne!(x.to_bits(), y.to_bits(), "{}", a.method);
            }
        }
    }

    fn calibration(target_kept: f64, kept_without_price: f64) -> Calibration {
        Calibration {
            target_kept,
            initial_gamma: vec![0.0, 0.0],
            predicted_kept: 1.0,
            kept_without_price,
            prediction_residual: 0.0,
            step: 200,
            adjustments: 10,
            control_until: 1000,
        }
    }

    /// A missed target is blamed on the competition only when the games kept fewer units
    /// than the target without any price; a zero initial price alone (the cubic schedule's
    /// first aim is every unit) is no evidence of that.
    #[test]
    fn notes_give_the_competition_as_reason_only_when_it_applies() {
        let blamed = run_notes(Some(&calibration(0.1, 0.05)), &[], 0.085);
        assert_eq!(blamed.len(), 1, "{blamed:?}");
        assert!(blamed[0].contains("below the target 0.1"), "{blamed:?}");
        assert!(blamed[0].contains("kept 0.050"), "{blamed:?}");
        let unexplained = run_notes(Some(&calibration(0.1, 0.27)), &[], 0.085);
        assert_eq!(unexplained.len(), 1, "{unexplained:?}");
        assert!(!unexplained[0].contains("gamma = 0"), "{unexplained:?}");
        let above = run_notes(Some(&calibration(0.1, 0.27)), &[], 0.115);
        assert!(above[0].contains("above the target 0.1"), "{above:?}");
        assert!(run_notes(Some(&calibration(0.1, 0.05)), &[], 0.095).is_empty());
        assert!(run_notes(None, &[], 0.5).is_empty());
        let guard = GuardRecord {
            group: "2".into(),
            unit: 7,
            step: 300,
            net: -0.1,
        };
        let guarded = run_notes(None, &[guard], 0.01);
        assert!(
            guarded[0].contains("channel 7 was kept by the collapse guard"),
            "{guarded:?}"
        );
    }
}
