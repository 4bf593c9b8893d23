//! The optimisers of [`crate::nn::optim`] over a graph's trainable parameters.
//!
//! Moments are lists shaped like the graph's parameters, so a [`RemovalPlan`] cuts them as it
//! cuts the parameters. Buffers (running statistics) and gates are not touched: the forward
//! pass and the pruner own those. Weight decay (SGD) applies to every trainable tensor, as
//! `torch.optim.SGD(model.parameters(), weight_decay=λ)` does.

use nalgebra::DMatrix;

use super::{Graph, GraphGrads, ParamKind, RemovalPlan};
use crate::error::{Error, Result};
use crate::nn::optim::{sgd, AdamStep, OptimizerConfig};

/// An optimiser with its state for one graph.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphOptimizer {
    config: OptimizerConfig,
    lr_scale: f32,
    step: u64,
    first: Vec<DMatrix<f32>>,
    second: Vec<DMatrix<f32>>,
}

impl GraphOptimizer {
    /// Fresh state for `graph`.
    pub fn new(config: OptimizerConfig, graph: &Graph) -> Result<Self> {
        config.check()?;
        let zeros = || {
            graph
                .params
                .iter()
                .map(|p| DMatrix::zeros(p.value.nrows(), p.value.ncols()))
                .collect()
        };
        let second = match config {
            OptimizerConfig::Adam { .. } => zeros(),
            OptimizerConfig::Sgd { .. } => Vec::new(),
        };
        Ok(GraphOptimizer {
            config,
            lr_scale: 1.0,
            step: 0,
            first: zeros(),
            second,
        })
    }

    /// Multiplies the configured learning rate (for schedules).
    pub fn set_lr_scale(&mut self, scale: f32) {
        self.lr_scale = scale;
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of every trainable parameter of `graph` from `grads`.
    pub fn step(&mut self, graph: &mut Graph, grads: &GraphGrads) -> Result<()> {
        let shapes_match = self.first.len() == graph.params.len()
            && grads.values.len() == graph.params.len()
            && graph
                .params
                .iter()
                .zip(&self.first)
                .zip(&grads.values)
                .all(|((p, m), g)| p.value.shape() == m.shape() && g.shape() == m.shape());
        if !shapes_match {
            return Err(Error::invalid(
                "optimizer",
                "state built for other parameter shapes; apply the removal plan to it",
            ));
        }
        self.step += 1;
        let t = self.step as i32;
        for (i, p) in graph.params.iter_mut().enumerate() {
            if p.kind != ParamKind::Weight {
                continue;
            }
            let (w, g) = (p.value.as_mut_slice(), grads.values[i].as_slice());
            match self.config {
                OptimizerConfig::Sgd {
                    lr,
                    momentum,
                    weight_decay,
                } => sgd(
                    w,
                    g,
                    self.first[i].as_mut_slice(),
                    lr * self.lr_scale,
                    momentum,
                    weight_decay,
                ),
                OptimizerConfig::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                } => AdamStep {
                    lr: lr * self.lr_scale,
                    beta1,
                    beta2,
                    eps,
                    c1: 1.0 - beta1.powi(t),
                    c2: 1.0 - beta2.powi(t),
                }
                .apply(
                    w,
                    g,
                    self.first[i].as_mut_slice(),
                    self.second[i].as_mut_slice(),
                ),
            }
        }
        Ok(())
    }

    /// Cuts the moments as `plan` cuts the parameters.
    pub fn remove_channels(&mut self, plan: &RemovalPlan) -> Result<()> {
        plan.apply(&mut self.first)?;
        plan.apply(&mut self.second)
    }

    /// The configuration.
    pub fn config(&self) -> OptimizerConfig {
        self.config
    }

    /// The second moments (Adam's `v`; empty for SGD).
    pub fn second_moments(&self) -> &[DMatrix<f32>] {
        &self.second
    }

    /// State restored from a checkpoint: `step` updates taken and the moments, checked
    /// against `graph`'s parameter shapes.
    pub(crate) fn restore(
        config: OptimizerConfig,
        graph: &Graph,
        step: u64,
        first: Vec<DMatrix<f32>>,
        second: Vec<DMatrix<f32>>,
    ) -> Result<Self> {
        let mut opt = GraphOptimizer::new(config, graph)?;
        let fits = |saved: &[DMatrix<f32>], fresh: &[DMatrix<f32>]| {
            saved.len() == fresh.len()
                && saved.iter().zip(fresh).all(|(a, b)| a.shape() == b.shape())
        };
        if !fits(&first, &opt.first) || !fits(&second, &opt.second) {
            return Err(Error::invalid(
                "optimizer",
                "saved moments do not match the parameter shapes",
            ));
        }
        opt.step = step;
        opt.first = first;
        opt.second = second;
        Ok(opt)
    }

    /// The first moments (SGD's velocity, Adam's `m`), shaped like the parameters.
    pub fn first_moments(&self) -> &[DMatrix<f32>] {
        &self.first
    }
}

impl GraphGrads {
    /// Cuts the gradients as `plan` cuts the parameters.
    pub fn remove_channels(&mut self, plan: &RemovalPlan) -> Result<()> {
        plan.apply(&mut self.values)
    }
}
