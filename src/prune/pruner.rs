//! The equilibrium-driven pruner (docs/mathematics.md): a [`StepHook`] of the one training
//! loop, run after every weight step. Per step, for every player group:
//! 1. the scale symmetry is broken ([`super::symmetry`]);
//! 2. every `K` steps `R` is refreshed ([`Redundancy`](super::Redundancy));
//! 3. `b̂_i ← m b̂_i + (1 − m)(−∂L/∂s_i)` and the projected gradient step on `U_i`
//!    ([`super::dynamics`]);
//! 4. target mode prices the groups ([`super::price`]);
//! 5. every `K` steps, channels whose gate stayed at exactly 0 for `patience` steps are
//!    removed with certificates ([`super::removal`]).
//!
//! Diagnostics (trajectories, equilibrium gaps) are in [`super::diagnostics`]; the
//! checkpointed run in [`super::run`].

use serde::{Deserialize, Serialize};

use super::certificate::{GuardRecord, UnitCertificate};
use super::config::PruneConfig;
use super::diagnostics::{Evaluation, TrajectoryPoint};
use super::players::{incoming_norms, outgoing_norms, players, redundancy};
use super::price::Calibration;
use super::state::GroupState;
use crate::error::{Error, Result};
use crate::nn::data::Dataset;
use crate::nn::graph::{ChannelGroup, Graph, StepHook, StepRecord, Trainer};

/// Samples of the held-out probe batch for activation correlation.
const PROBE_ROWS: usize = 256;

/// The pruner: gate dynamics, removal, certificates and records. Serialisable, so a run can
/// be resumed exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EquilibriumPruner {
    pub(super) config: PruneConfig,
    pub(super) step: u64,
    pub(super) groups: Vec<GroupState>,
    pub(super) certificates: Vec<UnitCertificate>,
    pub(super) guards: Vec<GuardRecord>,
    pub(super) trajectory: Vec<TrajectoryPoint>,
    pub(super) evaluations: Vec<Evaluation>,
    pub(super) calibration: Option<Calibration>,
    pub(super) control_until: u64,
}

/// The pruner as the training loop's hook, with the held-out set it measures on.
pub struct PruneHook<'a> {
    /// The pruner.
    pub pruner: &'a mut EquilibriumPruner,
    /// Held-out samples for benefits and certificates.
    pub holdout: &'a Dataset,
}

impl StepHook for PruneHook<'_> {
    fn after_step(&mut self, trainer: &mut Trainer, _: &StepRecord) -> Result<()> {
        self.pruner.after_step(trainer, self.holdout)
    }
}

impl EquilibriumPruner {
    /// A pruner for `graph`: its prunable gated channel groups are the players.
    pub fn new(config: PruneConfig, graph: &Graph) -> Result<Self> {
        config.check()?;
        let groups: Vec<GroupState> = players(graph)
            .iter()
            .map(|g| {
                GroupState::new(
                    g.name.clone(),
                    config.game.gamma,
                    incoming_norms(graph, g),
                    outgoing_norms(graph, g),
                )
            })
            .collect();
        if groups.is_empty() {
            return Err(Error::NotPrunable {
                layer: 0,
                reason: "the network has no prunable gated channel group".into(),
            });
        }
        Ok(EquilibriumPruner {
            config,
            step: 0,
            groups,
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

    /// Steps seen.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The participation cost of each player group after the ramp (the calibrated ones in
    /// target mode).
    pub fn gammas(&self) -> Vec<f64> {
        self.groups.iter().map(|l| l.gamma).collect()
    }

    /// Certificates of every removed channel, in removal order.
    pub fn certificates(&self) -> &[UnitCertificate] {
        &self.certificates
    }

    /// Channels kept by the collapse guard.
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

    /// Original indices of the channels still present, per player group.
    pub fn kept_units(&self) -> Vec<(String, Vec<usize>)> {
        self.groups
            .iter()
            .map(|l| (l.name.clone(), l.orig.clone()))
            .collect()
    }

    /// The channel group of every state, checked against the graph's widths.
    pub(super) fn resolve(&self, graph: &Graph) -> Result<Vec<ChannelGroup>> {
        let all = players(graph);
        self.groups
            .iter()
            .map(|l| {
                let g = all.iter().find(|g| g.name == l.name).ok_or_else(|| {
                    Error::invalid("group", format!("{}: not a player of this graph", l.name))
                })?;
                if g.channels != l.orig.len() {
                    return Err(Error::LengthMismatch {
                        field: format!("gates of group {}", l.name),
                        expected: l.orig.len(),
                        got: g.channels,
                    });
                }
                Ok(g.clone())
            })
            .collect()
    }

    /// The pruner's work after one optimiser step of `trainer` (see the module docs).
    pub fn after_step(&mut self, trainer: &mut Trainer, holdout: &Dataset) -> Result<()> {
        let groups = self.resolve(trainer.graph())?;
        let step = self.step;
        self.step += 1;
        self.break_symmetry(trainer.graph_mut(), &groups);
        let refresh = step.is_multiple_of(self.config.gates.refresh_every as u64);
        if refresh {
            self.refresh_redundancy(trainer.graph(), &groups, holdout)?;
        }
        self.average_benefits(trainer.gradients(), &groups);
        let warmup = self.config.gates.warmup_steps as u64;
        let playing = step >= warmup;
        if playing {
            if step == warmup {
                if let Some(target) = self.aim() {
                    self.calibrate(trainer.graph(), &groups, holdout, target)?;
                }
            }
            self.play(trainer.graph_mut(), &groups);
            self.normalize_groups(trainer.graph_mut(), &groups);
        }
        if step.is_multiple_of(self.config.run.record_every as u64) {
            self.record(trainer.graph(), &groups);
        }
        if playing && refresh && step > warmup {
            self.adjust_price(trainer.graph(), &groups);
        }
        if playing && refresh && self.config.run.remove {
            self.remove_settled(trainer, holdout, false)?;
        }
        Ok(())
    }

    pub(super) fn refresh_redundancy(
        &mut self,
        graph: &Graph,
        groups: &[ChannelGroup],
        holdout: &Dataset,
    ) -> Result<()> {
        let rows = PROBE_ROWS.min(holdout.len());
        let probe = &holdout.inputs()[..rows * holdout.sample_len()];
        for (l, g) in self.groups.iter_mut().zip(groups) {
            l.redundancy = redundancy(graph, g, self.config.gates.redundancy, probe, rows)?;
        }
        Ok(())
    }

    /// Ends training: removes every channel whose gate is exactly 0 (exact: it contributes
    /// nothing), with certificates.
    pub fn finish(&mut self, trainer: &mut Trainer, holdout: &Dataset) -> Result<()> {
        self.resolve(trainer.graph())?;
        if self.config.run.remove {
            self.remove_settled(trainer, holdout, true)?;
        }
        Ok(())
    }
}
