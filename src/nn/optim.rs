//! Optimisers for weights and biases (gates are left to the pruner).
//!
//! * SGD with momentum (PyTorch convention): `v ← μ v + g + λ θ`, `θ ← θ − η v`.
//! * Adam (Kingma & Ba 2015): `m ← β1 m + (1−β1) g`, `v ← β2 v + (1−β2) g²`,
//!   `θ ← θ − η m̂ / (√v̂ + ε)` with bias-corrected `m̂, v̂`.

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::model::{Gradients, Model};
use super::surgery::{consumer_columns, select_col_blocks, select_entries, select_rows};
use crate::error::{Error, Result};

/// Optimiser choice and hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// Stochastic gradient descent with momentum.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum `μ` (0 = plain SGD).
        momentum: f32,
        /// L2 weight decay `λ`.
        weight_decay: f32,
    },
    /// Adam.
    Adam {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Denominator guard.
        eps: f32,
    },
}

impl OptimizerConfig {
    /// The same optimiser with its learning rate multiplied by `factor`.
    pub fn scaled_lr(mut self, factor: f32) -> Self {
        match &mut self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => *lr *= factor,
        }
        self
    }

    /// Adam with PyTorch's defaults and learning rate `lr`.
    pub fn adam(lr: f32) -> Self {
        OptimizerConfig::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// SGD with momentum and no weight decay.
    pub fn sgd(lr: f32, momentum: f32) -> Self {
        OptimizerConfig::Sgd {
            lr,
            momentum,
            weight_decay: 0.0,
        }
    }

    /// Checks ranges: rates > 0, decays in `[0, 1)`.
    pub fn check(&self) -> Result<()> {
        let ok = match *self {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
            } => {
                lr > 0.0 && lr.is_finite() && (0.0..1.0).contains(&momentum) && weight_decay >= 0.0
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                lr > 0.0
                    && lr.is_finite()
                    && (0.0..1.0).contains(&beta1)
                    && (0.0..1.0).contains(&beta2)
                    && eps > 0.0
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(
                "optimizer",
                format!("{self:?}: rates must be > 0 and decays in [0, 1)"),
            ))
        }
    }
}

/// Per-layer moment buffers (`first` is SGD's velocity or Adam's `m`; `second` Adam's `v`).
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    pub(crate) first_w: DMatrix<f32>,
    pub(crate) first_b: DVector<f32>,
    pub(crate) second_w: DMatrix<f32>,
    pub(crate) second_b: DVector<f32>,
}

/// An optimiser with its state.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    pub(crate) config: OptimizerConfig,
    pub(crate) lr_scale: f32,
    pub(crate) step: u64,
    pub(crate) moments: Vec<Option<Moments>>,
}

impl Optimizer {
    /// Fresh state for `model`.
    pub fn new(config: OptimizerConfig, model: &Model) -> Result<Self> {
        config.check()?;
        let adam = matches!(config, OptimizerConfig::Adam { .. });
        let moments = model
            .layers()
            .iter()
            .map(|l| {
                l.params().map(|(w, b)| {
                    let (sr, sc, sb) = if adam {
                        (w.nrows(), w.ncols(), b.len())
                    } else {
                        (0, 0, 0)
                    };
                    Moments {
                        first_w: DMatrix::zeros(w.nrows(), w.ncols()),
                        first_b: DVector::zeros(b.len()),
                        second_w: DMatrix::zeros(sr, sc),
                        second_b: DVector::zeros(sb),
                    }
                })
            })
            .collect();
        Ok(Optimizer {
            config,
            lr_scale: 1.0,
            step: 0,
            moments,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Multiplies the configured learning rate by `scale` from the next step on (schedules).
    pub fn set_lr_scale(&mut self, scale: f32) {
        self.lr_scale = scale;
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Applies one update to every weight and bias of `model` from `grads`.
    pub fn step(&mut self, model: &mut Model, grads: &Gradients) -> Result<()> {
        if self.moments.len() != model.layers.len() || grads.layers.len() != model.layers.len() {
            return Err(Error::invalid(
                "optimizer",
                "state built for a different model",
            ));
        }
        self.step += 1;
        let t = self.step as i32;
        let scale = self.lr_scale;
        for ((layer, g), m) in model
            .layers
            .iter_mut()
            .zip(&grads.layers)
            .zip(&mut self.moments)
        {
            let (Some((w, b)), Some(g), Some(m)) = (layer.params_mut(), g.as_ref(), m.as_mut())
            else {
                continue;
            };
            if w.shape() != g.weight.shape() || w.shape() != m.first_w.shape() {
                return Err(Error::invalid(
                    "optimizer",
                    "parameter shapes changed; rebuild the optimiser",
                ));
            }
            match self.config {
                OptimizerConfig::Sgd {
                    lr,
                    momentum,
                    weight_decay,
                } => {
                    let lr = lr * scale;
                    sgd(
                        w.as_mut_slice(),
                        g.weight.as_slice(),
                        m.first_w.as_mut_slice(),
                        lr,
                        momentum,
                        weight_decay,
                    );
                    sgd(
                        b.as_mut_slice(),
                        g.bias.as_slice(),
                        m.first_b.as_mut_slice(),
                        lr,
                        momentum,
                        0.0,
                    );
                }
                OptimizerConfig::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                } => {
                    let lr = lr * scale;
                    let c1 = 1.0 - beta1.powi(t);
                    let c2 = 1.0 - beta2.powi(t);
                    let h = AdamStep {
                        lr,
                        beta1,
                        beta2,
                        eps,
                        c1,
                        c2,
                    };
                    h.apply(
                        w.as_mut_slice(),
                        g.weight.as_slice(),
                        m.first_w.as_mut_slice(),
                        m.second_w.as_mut_slice(),
                    );
                    h.apply(
                        b.as_mut_slice(),
                        g.bias.as_slice(),
                        m.first_b.as_mut_slice(),
                        m.second_b.as_mut_slice(),
                    );
                }
            }
        }
        Ok(())
    }

    /// Mirrors [`Model::remove_units`] on the optimiser state. Call with the model *before*
    /// its units are removed.
    pub fn remove_units(
        &mut self,
        model_before: &Model,
        layer: usize,
        keep: &[usize],
    ) -> Result<()> {
        let next = model_before.next_weight_layer(layer);
        if let Some(m) = self.moments.get_mut(layer).and_then(|m| m.as_mut()) {
            m.first_w = select_rows(&m.first_w, keep);
            m.first_b = select_entries(&m.first_b, keep);
            if m.second_w.nrows() > 0 {
                m.second_w = select_rows(&m.second_w, keep);
                m.second_b = select_entries(&m.second_b, keep);
            }
        }
        if let Some(n) = next {
            let map = consumer_columns(model_before, layer, n)?;
            if let Some(m) = self.moments.get_mut(n).and_then(|m| m.as_mut()) {
                m.first_w = select_col_blocks(&m.first_w, keep, map);
                if m.second_w.nrows() > 0 {
                    m.second_w = select_col_blocks(&m.second_w, keep, map);
                }
            }
        }
        Ok(())
    }
}

/// Parameters per rayon task in the update loops.
const CHUNK: usize = 1 << 14;

pub(crate) fn sgd(p: &mut [f32], g: &[f32], v: &mut [f32], lr: f32, mu: f32, wd: f32) {
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|((p, g), v)| {
            for ((p, &g), v) in p.iter_mut().zip(g).zip(v) {
                let grad = g + wd * *p;
                *v = mu * *v + grad;
                *p -= lr * *v;
            }
        });
}

pub(crate) struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub c1: f32,
    pub c2: f32,
}

impl AdamStep {
    pub(crate) fn apply(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let step = self.lr / self.c1;
        let inv_sqrt_c2 = 1.0 / self.c2.sqrt();
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
            .for_each(|((p, g), (m, v))| {
                for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
                    *m = self.beta1 * *m + (1.0 - self.beta1) * g;
                    *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
                    *p -= step * *m / (v.sqrt() * inv_sqrt_c2 + self.eps);
                }
            });
    }
}
