//! A whole weight-level job: the game, the survivors' refit and fine-tune, the dense
//! reference, every baseline at the game's per-layer kept counts, certificates and files.
//!
//! Budgets match the unit pipeline's: the game plays `game_epochs`, the kept weights train
//! on the plain loss for `refit_epochs` and are fine-tuned for `finetune_epochs`. A baseline
//! that prunes the trained dense network (trained `epochs`) gets the same fine-tune; one
//! that prunes at initialisation trains the sparse network for `epochs` and the same
//! fine-tune. Pruned weights are held at 0 throughout. With distillation on
//! ([`PruneConfig::teacher`]) the dense reference is the teacher of the refit, every
//! fine-tune and the training of the networks pruned at initialisation (SNIP, scratch).

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::baselines::{baseline_masks, train_masked, Masks, WeightBaseline};
use super::certificates::{certify, write_details, WeightLayerCertificates};
use super::config::WeightGame;
use super::layers::weight_layers;
use super::pruner::{WeightHook, WeightPruner};
use super::units::{remove_dead_units, RemovedUnits};
use crate::error::{Error, Result};
use crate::io::write_json_atomic;
use crate::lock::FolderLock;
use crate::nn::data::Dataset;
use crate::nn::graph::train::evaluate;
use crate::nn::graph::{Graph, Trainer};
use crate::prune::pipeline::{prepare, Architecture};
use crate::prune::PruneConfig;

/// Probe samples that judge which removed units emit constants.
const UNIT_PROBE_ROWS: usize = 64;

/// A weight-level pruning job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightJob {
    /// Network.
    pub architecture: Architecture,
    /// Training, schedule and price settings (`target_kept` is the fraction of weights).
    pub config: PruneConfig,
    /// The weight game's own settings.
    pub game: WeightGame,
    /// Baselines to run at the game's kept counts.
    pub baselines: Vec<WeightBaseline>,
    /// Human-readable data set name.
    pub dataset: String,
}

/// One layer's kept weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCount {
    /// The weight's name.
    pub name: String,
    /// Weights before.
    pub before: usize,
    /// Non-zero weights after.
    pub after: usize,
}

/// A baseline's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightBaselineResult {
    /// Baseline name.
    pub method: String,
    /// Kept weights per layer.
    pub kept_per_layer: Vec<LayerCount>,
    /// Test accuracy after pruning (for criteria at initialisation: after training).
    pub pruned_accuracy: f64,
    /// Test accuracy after the same fine-tune as the game's.
    pub finetuned_accuracy: f64,
}

/// Everything `report.json` of a weight job holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightReport {
    /// The job.
    pub job: WeightJob,
    /// Seed of the run.
    pub seed: u64,
    /// Test accuracy of the dense network trained for `epochs`.
    pub dense_accuracy: f64,
    /// Test accuracy at the end of play, before the game's end removes the weights whose
    /// best response is 0 but whose gate has not reached it yet.
    pub played_accuracy: f64,
    /// Weights the game's end removed that were not yet at 0.
    pub left_at_end: usize,
    /// Test accuracy at the end of the game.
    pub pruned_accuracy: f64,
    /// After the kept weights' refit.
    pub refitted_accuracy: f64,
    /// After the fine-tune (the exported network).
    pub finetuned_accuracy: f64,
    /// Kept weights per layer, after units whose weights all left were removed.
    pub kept_per_layer: Vec<LayerCount>,
    /// Fraction of weights kept.
    pub kept_fraction: f64,
    /// Units removed structurally.
    pub removed_units: Vec<RemovedUnits>,
    /// Per-layer certificates (per-weight figures in `weight_certificates.safetensors`).
    pub certificates: Vec<WeightLayerCertificates>,
    /// Parameters of the exported network, zeros included.
    pub params_after: usize,
    /// Bytes of `pruned.safetensors` (dense tensors with zeros).
    pub dense_file_bytes: u64,
    /// Bytes of `pruned_csr.safetensors`, the same network with its weights in CSR.
    pub csr_file_bytes: u64,
    /// Baselines.
    pub baselines: Vec<WeightBaselineResult>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

fn counts(before: &Graph, after: &Graph) -> Vec<LayerCount> {
    weight_layers(before)
        .iter()
        .zip(weight_layers(after))
        .map(|(b, a)| LayerCount {
            name: b.name.clone(),
            before: b.len(),
            after: after.params[a.param]
                .value
                .iter()
                .filter(|&&v| v != 0.0)
                .count(),
        })
        .collect()
}

fn fraction(counts: &[LayerCount]) -> f64 {
    let (kept, all) = counts
        .iter()
        .fold((0, 0), |(k, a), c| (k + c.after, a + c.before));
    kept as f64 / all.max(1) as f64
}

/// Checks `job` on `(train, test)` as [`run_weight_job`] does before it writes anything.
pub fn check_weight_job(job: &WeightJob, train: &Dataset, test: &Dataset) -> Result<()> {
    job.game.check()?;
    prepare(&job.architecture, &job.config, train, test).map(|_| ())
}

/// Runs `job`, writing `config.json`, `report.json`, `pruned.safetensors` (dense, zeros
/// included), `pruned_csr.safetensors` (weights in CSR) and `weight_certificates.safetensors`
/// into `out` (a fresh run each time).
pub fn run_weight_job(
    job: &WeightJob,
    train: &Dataset,
    test: &Dataset,
    out: &Path,
) -> Result<WeightReport> {
    let t0 = Instant::now();
    job.game.check()?;
    let cfg = &job.config;
    let (initial, train, holdout) = prepare(&job.architecture, cfg, train, test)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let _lock = FolderLock::acquire(out)?;
    write_json_atomic(&out.join("config.json"), job)?;

    // The game.
    let game_epochs = cfg.training.game_epochs();
    let steps = (game_epochs * train.len().div_ceil(cfg.training.batch_size)) as u64;
    let mut pruner = WeightPruner::new(job.game.clone(), cfg.clone(), &initial, steps)?;
    let mut trainer = Trainer::new(initial.clone(), cfg.train_config(game_epochs))?;
    trainer.run(
        &train,
        &mut WeightHook {
            pruner: &mut pruner,
            holdout: &holdout,
        },
        None,
    )?;
    let played_stats = evaluate(trainer.graph(), test, 500)?;
    let left_at_end = pruner.finish(&mut trainer, &holdout)?;
    let mut gated = trainer.into_graph();
    let (certificates, details) = certify(&pruner, &gated, &holdout, 500)?;
    let pruned_stats = evaluate(&gated, test, 500)?;
    let rows = UNIT_PROBE_ROWS.min(holdout.len());
    let removed_units = remove_dead_units(
        &mut gated,
        &holdout.inputs()[..rows * holdout.sample_len()],
        rows,
    )?;
    let layers = weight_layers(&gated);
    let masks = Masks::nonzero(&gated, &layers);

    // The dense reference: the baselines' starting point, and with distillation on the
    // teacher of every pruned network's training from here on.
    let dense = {
        let mut t = Trainer::new(initial.clone(), cfg.train_config(cfg.training.epochs))?;
        t.run(&train, &mut (), None)?;
        t.into_graph()
    };
    let dense_stats = evaluate(&dense, test, 500)?;
    let teacher = cfg.teacher(&dense);

    let mut refit_fc = cfg.train_config(cfg.training.refit_epochs());
    refit_fc.seed = cfg.seed.wrapping_add(2);
    let refitted = train_masked(&gated, &masks, &train, refit_fc, teacher)?;
    let refitted_stats = evaluate(&refitted, test, 500)?;
    let finetune = |g: &Graph, m: &Masks| {
        let mut fc = cfg.train_config(cfg.training.finetune_epochs);
        fc.seed = cfg.seed.wrapping_add(1);
        fc.optimizer = fc
            .optimizer
            .scaled_lr(cfg.training.finetune_lr_scale as f32);
        train_masked(g, m, &train, fc, teacher)
    };
    let finetuned = finetune(&refitted, &masks)?;
    let final_stats = evaluate(&finetuned, test, 500)?;
    let kept_per_layer = counts(&initial, &finetuned);

    // Baselines keep the game's per-layer counts; the scratch control also takes its
    // shape (units the game removed are gone) and its kept weights.
    let kept: Vec<usize> = kept_per_layer.iter().map(|c| c.after).collect();
    let mut baselines = Vec::new();
    for &b in &job.baselines {
        let (source, masks) = if b == WeightBaseline::Scratch {
            (gated.reinitialized(cfg.seed.wrapping_add(3)), masks.clone())
        } else {
            let source = if b.at_initialisation() {
                &initial
            } else {
                &dense
            };
            let m = baseline_masks(
                b,
                source,
                &weight_layers(source),
                &kept,
                &holdout,
                cfg.training.batch_size,
                cfg.seed.wrapping_add(7),
            )?;
            (source.clone(), m)
        };
        let pruned = if b.at_initialisation() {
            train_masked(
                &source,
                &masks,
                &train,
                cfg.train_config(cfg.training.epochs),
                teacher,
            )?
        } else {
            train_masked(&source, &masks, &train, cfg.train_config(0), None)?
        };
        let before = evaluate(&pruned, test, 500)?;
        let tuned = finetune(&pruned, &masks)?;
        let after = evaluate(&tuned, test, 500)?;
        baselines.push(WeightBaselineResult {
            method: b.name().into(),
            kept_per_layer: counts(&initial, &tuned),
            pruned_accuracy: before.accuracy(),
            finetuned_accuracy: after.accuracy(),
        });
    }

    let model = out.join("pruned.safetensors");
    finetuned.export(&model)?;
    let dense_file_bytes = std::fs::metadata(&model)
        .map_err(|e| Error::io(&model, e))?
        .len();
    let csr_file_bytes =
        crate::nn::sparse::export_csr(&finetuned, &out.join("pruned_csr.safetensors"))?;
    write_details(
        &out.join("weight_certificates.safetensors"),
        pruner.layers(),
        &details,
    )?;
    let report = WeightReport {
        job: job.clone(),
        seed: cfg.seed,
        dense_accuracy: dense_stats.accuracy(),
        played_accuracy: played_stats.accuracy(),
        left_at_end,
        pruned_accuracy: pruned_stats.accuracy(),
        refitted_accuracy: refitted_stats.accuracy(),
        finetuned_accuracy: final_stats.accuracy(),
        kept_fraction: fraction(&kept_per_layer),
        kept_per_layer,
        removed_units,
        certificates,
        params_after: finetuned.parameter_count(),
        dense_file_bytes,
        csr_file_bytes,
        baselines,
        seconds: t0.elapsed().as_secs_f64(),
    };
    write_json_atomic(&out.join("report.json"), &report)?;
    Ok(report)
}
