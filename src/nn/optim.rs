//! Optimisers for weights and biases (gates are left to the pruner).
//!
//! * SGD with momentum (PyTorch convention): `v ← μ v + g + λ θ`, `θ ← θ − η v`.
//! * Adam (Kingma & Ba 2015): `m ← β1 m + (1−β1) g`, `v ← β2 v + (1−β2) g²`,
//!   `θ ← θ − η m̂ / (√v̂ + ε)` with bias-corrected `m̂, v̂`.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

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
