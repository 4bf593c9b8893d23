//! A resumable pruning run: the trainer (weights, optimiser, data order) with the pruner
//! hooked into its loop, checkpointed after every epoch.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::PruneConfig;
use super::diagnostics::Evaluation;
use super::pruner::{EquilibriumPruner, PruneHook};
use crate::error::{Error, Result};
use crate::io::write_json_atomic;
use crate::nn::data::Dataset;
use crate::nn::graph::{Graph, Trainer};

/// File names inside a run's checkpoint folder.
const CHECKPOINT: &str = "checkpoint.safetensors";
const STATE: &str = "pruner_state.json";

#[derive(Serialize, Deserialize)]
struct SavedState {
    epoch: usize,
    global_step: u64,
    pruner: EquilibriumPruner,
}

/// The trainer and the pruner of one run.
pub struct PruneRun {
    trainer: Trainer,
    pruner: EquilibriumPruner,
}

impl PruneRun {
    /// A fresh run of `config` on `graph`.
    pub fn new(graph: Graph, config: PruneConfig) -> Result<Self> {
        let pruner = EquilibriumPruner::new(config.clone(), &graph)?;
        let trainer = Trainer::new(graph, config.train_config(config.game_epochs()))?;
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
        let per_epoch = train.len().div_ceil(self.pruner.config.batch_size) as u64;
        self.pruner
            .set_total_steps(per_epoch * self.pruner.config.game_epochs() as u64);
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

    /// Writes the checkpoint (weights, gates, optimiser, data order) and the pruner state
    /// into `dir`, each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        self.trainer.save_checkpoint(&dir.join(CHECKPOINT))?;
        write_json_atomic(
            &dir.join(STATE),
            &SavedState {
                epoch: self.trainer.epochs_done(),
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
        if trainer.global_step() != saved.global_step || trainer.epochs_done() != saved.epoch {
            return Err(Error::ResumeMismatch {
                path: state_path,
                message: format!(
                    "checkpoint at step {} but pruner state at step {}",
                    trainer.global_step(),
                    saved.global_step
                ),
            });
        }
        saved.pruner.resolve(trainer.graph())?;
        Ok(PruneRun {
            trainer,
            pruner: saved.pruner,
        })
    }

    /// Ends the run: removes every channel at exactly 0 and returns the gated network and
    /// the pruner (certificates, trajectories, evaluations).
    pub fn finish(mut self, holdout: &Dataset) -> Result<(Graph, EquilibriumPruner)> {
        self.pruner.finish(&mut self.trainer, holdout)?;
        Ok((self.trainer.into_graph(), self.pruner))
    }
}
