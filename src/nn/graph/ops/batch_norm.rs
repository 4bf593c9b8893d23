//! `torch.nn.BatchNorm1d/2d`: per-channel normalisation with learned scale and shift.
//!
//! Training: `x̂ = (x − μ_B) / √(σ²_B + ε)` with the batch's mean and biased variance over
//! samples (and positions), `y = γ x̂ + β`; the running statistics then move by
//! `r ← (1 − m) r + m · batch` with the *unbiased* variance, as PyTorch does (the executor
//! applies this after the pass, [`crate::nn::graph::Graph::update_running_stats`]).
//! Evaluation: the running statistics replace the batch's. Backward in training mode:
//! `dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy x̂))`, `dγ = Σ dy x̂`, `dβ = Σ dy`.

use rayon::prelude::*;

use super::{Buffers, Fold, channels, put, BufferSizes, Bwd, Flow, Fwd, Kernel};
use crate::error::{Error, Result};
use crate::nn::conv::{lane_sum, lane_sum_of};
use crate::nn::graph::{Mode, Param, ParamId};
use crate::nn::Shape;

/// BatchNorm over the channels of a flat (`1d`) or image (`2d`) input.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    /// `γ`, PyTorch's `weight`.
    pub weight: ParamId,
    /// `β`, PyTorch's `bias`.
    pub bias: ParamId,
    /// Running mean.
    pub running_mean: ParamId,
    /// Running (unbiased) variance.
    pub running_var: ParamId,
    /// Denominator guard `ε` (PyTorch: 1e-5).
    pub eps: f32,
    /// Running-statistics momentum `m` (PyTorch: 0.1).
    pub momentum: f32,
    /// Training batches seen (PyTorch's `num_batches_tracked`).
    pub batches_tracked: u64,
}

impl BatchNorm {
    /// Mean and `1/σ` per channel for `mode`: the batch's (computed from `x`) or the running
    /// ones. Also returns the batch's biased variance (empty in evaluation).
    fn stats(&self, f_x: &[f32], batch: usize, s: Shape, params: &[Param], mode: Mode) -> Stats {
        let (c, per) = channels(s);
        match mode {
            Mode::Eval => {
                let rm = params[self.running_mean].value.as_slice();
                let rv = params[self.running_var].value.as_slice();
                Stats {
                    mean: rm.to_vec(),
                    inv_std: rv.iter().map(|&v| 1.0 / (v + self.eps).sqrt()).collect(),
                    var: Vec::new(),
                }
            }
            Mode::Train => {
                let n = (batch * per).max(1) as f64;
                // Two passes (mean, then squared deviations) for accuracy; each plane is
                // summed in f32 lanes and the planes in f64.
                let moments: Vec<(f64, f64)> = (0..c)
                    .into_par_iter()
                    .map(|ch| {
                        let plane = |b: usize| &f_x[(b * c + ch) * per..][..per];
                        let s1: f64 = (0..batch).map(|b| lane_sum(plane(b)) as f64).sum();
                        let mean = s1 / n;
                        let m = mean as f32;
                        let s2: f64 = (0..batch)
                            .map(|b| {
                                let p = plane(b);
                                lane_sum_of(p, p, |v, _| (v - m) * (v - m)) as f64
                            })
                            .sum();
                        (mean, s2 / n)
                    })
                    .collect();
                Stats {
                    mean: moments.iter().map(|m| m.0 as f32).collect(),
                    inv_std: moments
                        .iter()
                        .map(|m| (1.0 / (m.1 + self.eps as f64).sqrt()) as f32)
                        .collect(),
                    var: moments.iter().map(|m| m.1 as f32).collect(),
                }
            }
        }
    }
}

struct Stats {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    var: Vec<f32>,
}

impl Kernel for BatchNorm {
    fn kind(&self) -> &'static str {
        "batchnorm"
    }
    fn param_ids(&self) -> Vec<ParamId> {
        vec![self.weight, self.bias, self.running_mean, self.running_var]
    }
    fn output_shape(&self, inputs: &[Shape], params: &[Param]) -> Result<Shape> {
        let (c, _) = channels(inputs[0]);
        for p in self.param_ids() {
            if params[p].value.len() != c {
                return Err(Error::invalid(
                    params[p].name.clone(),
                    format!("needs {c} entries, one per channel"),
                ));
            }
        }
        if !(self.eps > 0.0 && (0.0..=1.0).contains(&self.momentum)) {
            return Err(Error::invalid(
                "batchnorm",
                "eps must be > 0 and momentum in [0, 1]",
            ));
        }
        Ok(inputs[0])
    }
    fn buffers(&self, inputs: &[Shape], _out: Shape, _batch: usize) -> BufferSizes {
        let (c, _) = channels(inputs[0]);
        // mean, 1/σ and the batch variance of the last forward pass.
        BufferSizes {
            saved: 3 * c,
            ..BufferSizes::default()
        }
    }
    fn forward(&self, f: Fwd<'_>) {
        let s = f.in_shapes[0];
        let (c, per) = channels(s);
        let st = self.stats(f.x[0], f.batch, s, f.params, f.mode);
        let gamma = f.params[self.weight].value.as_slice();
        let beta = f.params[self.bias].value.as_slice();
        f.y[..f.batch * c * per]
            .par_chunks_mut(c * per)
            .zip(f.x[0].par_chunks(c * per))
            .for_each(|(ys, xs)| {
                for ch in 0..c {
                    let (m, k) = (st.mean[ch], st.inv_std[ch] * gamma[ch]);
                    for (y, &x) in ys[ch * per..][..per].iter_mut().zip(&xs[ch * per..][..per]) {
                        *y = (x - m) * k + beta[ch];
                    }
                }
            });
        let saved = &mut f.buf.saved;
        saved[..c].copy_from_slice(&st.mean);
        saved[c..2 * c].copy_from_slice(&st.inv_std);
        if f.mode == Mode::Train {
            saved[2 * c..3 * c].copy_from_slice(&st.var);
        }
    }
    fn backward(&self, mut b: Bwd<'_>) {
        let s = b.in_shapes[0];
        let (c, per) = channels(s);
        let (batch, x, dy) = (b.batch, b.x[0], b.dy);
        let (mean, rest) = b.buf.saved.split_at(c);
        let inv_std = &rest[..c];
        // Σ dy and Σ dy·x̂ per channel in a fixed order: planes in f32 lanes, planes summed in f64.
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (m, k) = (mean[ch], inv_std[ch]);
                let (mut sd, mut sdx) = (0.0f64, 0.0f64);
                for bi in 0..batch {
                    let o = (bi * c + ch) * per;
                    let (g, v) = (&dy[o..][..per], &x[o..][..per]);
                    sd += lane_sum(g) as f64;
                    sdx += lane_sum_of(g, v, |g, v| g * ((v - m) * k)) as f64;
                }
                (sd, sdx)
            })
            .collect();
        let gamma = b.params[self.weight].value.as_slice().to_vec();
        for (ch, &(sd, sdx)) in sums.iter().enumerate() {
            b.grads[self.weight][ch] = sdx as f32;
            b.grads[self.bias][ch] = sd as f32;
        }
        let Some((dx, acc)) = b.dx[0].take() else {
            return;
        };
        let n = (batch * per).max(1) as f64;
        let train = b.mode == Mode::Train;
        dx[..batch * c * per]
            .par_chunks_mut(c * per)
            .zip(dy.par_chunks(c * per).zip(x.par_chunks(c * per)))
            .for_each(|(dxs, (dys, xs))| {
                for ch in 0..c {
                    let k = gamma[ch] * inv_std[ch];
                    let (md, mdx) = if train {
                        ((sums[ch].0 / n) as f32, (sums[ch].1 / n) as f32)
                    } else {
                        (0.0, 0.0)
                    };
                    let r = ch * per..(ch + 1) * per;
                    for ((d, &g), &v) in dxs[r.clone()].iter_mut().zip(&dys[r.clone()]).zip(&xs[r.clone()]) {
                        let xh = (v - mean[ch]) * inv_std[ch];
                        put(d, k * (g - md - xh * mdx), acc);
                    }
                }
            });
    }
    fn fold(&self) -> Fold {
        Fold::Into(vec![self.weight, self.bias])
    }
    fn after_training_pass(&mut self, params: &mut [Param], input: Shape, batch: usize, buf: &Buffers) {
        let (c, per) = channels(input);
        let n = (batch * per) as f32;
        let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        let m = self.momentum;
        for ch in 0..c {
            let rm = &mut params[self.running_mean].value[ch];
            *rm = (1.0 - m) * *rm + m * buf.saved[ch];
            let rv = &mut params[self.running_var].value[ch];
            *rv = (1.0 - m) * *rv + m * buf.saved[2 * c + ch] * unbias;
        }
        self.batches_tracked += 1;
    }
    fn flow(&self) -> Flow {
        Flow::PerChannel
    }
}
