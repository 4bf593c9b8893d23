//! A resumable pruning run: the trainer (weights, optimiser, data order) with the pruner
//! hooked into its loop, checkpointed after every epoch.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use super::config::PruneConfig;
use super::diagnostics::Evaluation;
use super::pruner::{EquilibriumPruner, PruneHook};
use crate::error::{Error, Result};
use crate::nn::data::Dataset;
use crate::nn::graph::{Graph, Trainer};

/// The run's one checkpoint inside its folder: the trainer's checkpoint with the pruner's
/// state in its metadata, written atomically and sealed by one checksum, so a kill at any
/// moment leaves either the previous epoch's state or this one's, never a mix.
const CHECKPOINT: &str = "checkpoint.safetensors";

/// Metadata key of the pruner's state in the checkpoint.
const PRUNER_KEY: &str = "pruner";

/// The trainer and the pruner of one run.
pub struct PruneRun {
    trainer: Trainer,
    pruner: EquilibriumPruner,
}

impl PruneRun {
    /// A fresh run of `config` on `graph`.
    pub fn new(graph: Graph, config: PruneConfig) -> Result<Self> {
        let pruner = EquilibriumPruner::new(config.clone(), &graph)?;
        let trainer = Trainer::new(graph, config.train_config(config.training.game_epochs()))?;
        Ok(PruneRun { trainer, pruner })
    }

    /// The network being pruned (gated, with channels removed so far).
    pub fn graph(&self) -> &Graph {
        self.trainer.graph()
    }

    /// The pruner.
    pub fn pruner(&self) -> &EquilibriumPruner {
        &self.pruner
    }

    /// Epochs done.
    pub fn epochs_done(&self) -> usize {
        self.trainer.epochs_done()
    }

    /// True once every epoch of the game has run.
    pub fn finished(&self) -> bool {
        self.trainer.finished()
    }

    /// One epoch of training with gate play, then an evaluation.
    pub fn run_epoch(
        &mut self,
        train: &Dataset,
        holdout: &Dataset,
        test: Option<&Dataset>,
    ) -> Result<Evaluation> {
        let per_epoch = train.len().div_ceil(self.pruner.config.training.batch_size) as u64;
        self.pruner
            .set_total_steps(per_epoch * self.pruner.config.training.game_epochs() as u64);
        let mut hook = PruneHook {
            pruner: &mut self.pruner,
            holdout,
        };
        self.trainer.run_epoch(train, &mut hook)?;
        let probe = train.take(holdout.len());
        self.pruner.evaluate(
            self.trainer.graph(),
            holdout,
            Some(&probe),
            test,
            self.trainer.epochs_done(),
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

    /// Writes the checkpoint (weights, gates, optimiser, data order and the pruner's state)
    /// into `dir`, as one atomic, checksummed file.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let pruner = serde_json::to_string(&self.pruner)
            .map_err(|e| Error::invalid("pruner state", e.to_string()))?;
        self.trainer.save_checkpoint_with(
            &dir.join(CHECKPOINT),
            HashMap::from([(PRUNER_KEY.to_string(), pruner)]),
        )
    }

    /// Deletes the checkpoint [`PruneRun::save`] wrote into `dir`, if there is one.
    pub fn remove_checkpoint(dir: &Path) -> Result<()> {
        let path = dir.join(CHECKPOINT);
        if path.is_file() {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    /// True if `dir` holds a checkpoint written by [`PruneRun::save`].
    pub fn has_checkpoint(dir: &Path) -> bool {
        dir.join(CHECKPOINT).is_file()
    }

    /// Resumes a run saved in `dir`; `config` must equal the saved one, and the refusal
    /// names every setting that differs.
    pub fn resume(dir: &Path, config: &PruneConfig) -> Result<Self> {
        let path = dir.join(CHECKPOINT);
        let (trainer, meta) = Trainer::resume_with(&path)?;
        let pruner: EquilibriumPruner = meta
            .get(PRUNER_KEY)
            .ok_or_else(|| Error::Format {
                path: path.clone(),
                message: format!("no `{PRUNER_KEY}` state: not a pruning run's checkpoint"),
            })
            .and_then(|text| {
                serde_json::from_str(text).map_err(|e| Error::Format {
                    path: path.clone(),
                    message: format!("pruner state: {e}"),
                })
            })?;
        let changed = differences(&pruner.config, config);
        if !changed.is_empty() {
            return Err(Error::ResumeMismatch {
                path,
                message: format!("settings differ from the saved run: {}", changed.join("; ")),
            });
        }
        pruner.resolve(trainer.graph())?;
        Ok(PruneRun { trainer, pruner })
    }

    /// Ends the run: removes every channel at exactly 0 and returns the gated network and
    /// the pruner (certificates, trajectories, evaluations).
    pub fn finish(mut self, holdout: &Dataset) -> Result<(Graph, EquilibriumPruner)> {
        self.pruner.finish(&mut self.trainer, holdout)?;
        Ok((self.trainer.into_graph(), self.pruner))
    }
}

/// Every setting in which `saved` and `requested` differ, as `key: saved -> requested`
/// (nested keys joined with dots, as `--set` names them).
pub(crate) fn differences<T: Serialize>(saved: &T, requested: &T) -> Vec<String> {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value::Object;
        match (a, b) {
            (Object(x), Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                let null = serde_json::Value::Null;
                for k in keys {
                    let sub = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(
                        &sub,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            _ if a != b => out.push(format!("{path}: {a} -> {b}")),
            _ => {}
        }
    }
    let as_value = |v: &T| serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
    let mut out = Vec::new();
    walk("", &as_value(saved), &as_value(requested), &mut out);
    out
}
