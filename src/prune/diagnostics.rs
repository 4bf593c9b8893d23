//! What the pruner records for the reports: gate trajectories, and at every evaluation the
//! measured games' natural residual and Nash gap at the current gates.

use serde::{Deserialize, Serialize};

use super::layer_game::{layer_game, layer_gap, LayerGap};
use super::players::{gates, measure_benefits, norms_sq, outgoing_norms};
use super::pruner::EquilibriumPruner;
use crate::error::Result;
use crate::game::PruningGame;
use crate::nn::data::Dataset;
use crate::nn::graph::train::evaluate;
use crate::nn::graph::{ChannelGroup, Graph};

/// One point of a gate trajectory (`step,group,unit,value` in CSV).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryPoint {
    /// Optimiser step.
    pub step: u64,
    /// Player group.
    pub group: String,
    /// Original channel index.
    pub unit: usize,
    /// Gate value.
    pub value: f64,
}

/// An evaluation: loss and accuracy next to each group's equilibrium gap.
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
    /// Per group: natural residual and Nash gap of the participation game with measured
    /// benefits, at the current gates.
    pub layers: Vec<LayerGap>,
}

fn as_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

impl EquilibriumPruner {
    pub(super) fn record(&mut self, graph: &Graph, groups: &[ChannelGroup]) {
        for (l, g) in self.groups.iter().zip(groups) {
            for (i, &v) in gates(graph, g).iter().enumerate() {
                self.trajectory.push(TrajectoryPoint {
                    step: self.step - 1,
                    group: l.name.clone(),
                    unit: l.orig[i],
                    value: v as f64,
                });
            }
        }
    }

    /// The measured game of each group at the current network and step (benefits measured
    /// on `data`, each group's `γ` as ramped now), and the loss on `data`.
    pub(super) fn measured_games(
        &self,
        graph: &Graph,
        groups: &[ChannelGroup],
        data: &Dataset,
    ) -> Result<(Vec<PruningGame>, f64)> {
        let (benefits, stats) =
            measure_benefits(graph, groups, data, self.config.training.batch_size)?;
        let ramp = self.ramp();
        let mut games = Vec::new();
        for ((l, g), b) in self.groups.iter().zip(groups).zip(&benefits) {
            games.push(layer_game(
                b,
                &norms_sq(graph, g),
                self.config.game.alpha,
                ramp * l.gamma,
                self.config.game.beta,
                &l.redundancy,
            )?);
        }
        Ok((games, stats.loss))
    }

    /// Evaluates loss, accuracy and each group's equilibrium gap (benefits on `holdout`, and
    /// on `train_probe` if given); the result is recorded.
    pub fn evaluate(
        &mut self,
        graph: &Graph,
        holdout: &Dataset,
        train_probe: Option<&Dataset>,
        test: Option<&Dataset>,
        epoch: usize,
    ) -> Result<Evaluation> {
        let groups = self.resolve(graph)?;
        let (games, holdout_loss) = self.measured_games(graph, &groups, holdout)?;
        let train_games = match train_probe {
            Some(t) => Some(self.measured_games(graph, &groups, t)?.0),
            None => None,
        };
        let mut layers = Vec::new();
        for (k, ((l, g), game)) in self.groups.iter_mut().zip(&groups).zip(&games).enumerate() {
            let s = as_f64(gates(graph, g));
            let mut gap = layer_gap(&l.name, game, &s);
            if let Some(tg) = &train_games {
                gap.natural_residual_train = crate::game::natural_residual(&tg[k], &s);
            }
            let changes: Vec<f64> = s
                .iter()
                .zip(&l.prev_gate)
                .filter(|(_, p)| p.is_finite())
                .map(|(a, p)| (a - p).abs())
                .collect();
            gap.drift = if changes.is_empty() {
                f64::NAN
            } else {
                changes.iter().sum::<f64>() / changes.len() as f64
            };
            let out = outgoing_norms(graph, g);
            gap.mean_outgoing_norm = out.iter().sum::<f64>() / out.len().max(1) as f64;
            l.prev_gate = s;
            layers.push(gap);
        }
        let (test_loss, test_accuracy) = match test {
            Some(t) => {
                let st = evaluate(graph, t, 500)?;
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
