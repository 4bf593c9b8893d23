//! The participation gate: channel `c` is multiplied by `s_c ∈ [0, 1]`.
//!
//! `y = s_c x`, `dx = s_c dy`, `dL/ds_c = Σ dy · x` over samples and positions. A gate vector
//! may be shared by several gate nodes (a residual stream), so its gradient is *added to*;
//! the executor clears gate gradients before each backward pass. The gate is the last
//! per-channel op before the channel's consumers, so at `s_c = 0` its gradient is the right
//! derivative of the loss and the channel is exactly zero downstream.

use rayon::prelude::*;

use super::relu::PAR_MIN;
use super::{Zero, channels, put, BufferSizes, Bwd, Flow, Fwd, Kernel};
use crate::error::{Error, Result};
use crate::nn::conv::lane_sum_of;
use crate::nn::graph::{Param, ParamId};
use crate::nn::Shape;

/// A gate node reading the gate vector `gate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    /// The gate parameter, one entry per channel.
    pub gate: ParamId,
}

impl Kernel for Gate {
    fn kind(&self) -> &'static str {
        "gate"
    }
    fn param_ids(&self) -> Vec<ParamId> {
        vec![self.gate]
    }
    fn output_shape(&self, inputs: &[Shape], params: &[Param]) -> Result<Shape> {
        let (c, _) = channels(inputs[0]);
        let p = &params[self.gate];
        if p.value.len() != c {
            return Err(Error::invalid(
                p.name.clone(),
                format!("has {} entries for {c} channels", p.value.len()),
            ));
        }
        Ok(inputs[0])
    }
    fn buffers(&self, inputs: &[Shape], _: Shape, batch: usize) -> BufferSizes {
        BufferSizes {
            partial: batch * channels(inputs[0]).0,
            ..BufferSizes::default()
        }
    }
    fn forward(&self, f: Fwd<'_>) {
        let (c, per) = channels(f.in_shapes[0]);
        let s = f.params[self.gate].value.as_slice();
        f.y[..f.batch * c * per]
            .par_chunks_mut(c * per)
            .with_min_len(PAR_MIN.div_ceil(c * per))
            .zip(f.x[0].par_chunks(c * per))
            .for_each(|(ys, xs)| {
                for (ch, &sc) in s.iter().enumerate() {
                    let r = ch * per..(ch + 1) * per;
                    for (y, &x) in ys[r.clone()].iter_mut().zip(&xs[r]) {
                        *y = sc * x;
                    }
                }
            });
    }
    fn backward(&self, mut b: Bwd<'_>) {
        let (c, per) = channels(b.in_shapes[0]);
        let s = b.params[self.gate].value.as_slice();
        // Per-sample partial sums, reduced in sample order: results do not depend on threads.
        let partial = &mut b.buf.partial[..b.batch * c];
        partial
            .par_chunks_mut(c)
            .zip(b.dy.par_chunks(c * per).zip(b.x[0].par_chunks(c * per)))
            .for_each(|(p, (dys, xs))| {
                for (ch, pc) in p.iter_mut().enumerate() {
                    let r = ch * per..(ch + 1) * per;
                    *pc = lane_sum_of(&dys[r.clone()], &xs[r], |g, x| g * x);
                }
            });
        let ds = b.grads[self.gate].as_mut_slice();
        for p in partial.chunks(c) {
            for (d, v) in ds.iter_mut().zip(p) {
                *d += v;
            }
        }
        let Some((dx, acc)) = b.dx[0].take() else {
            return;
        };
        dx[..b.batch * c * per]
            .par_chunks_mut(c * per)
            .zip(b.dy.par_chunks(c * per))
            .for_each(|(dxs, dys)| {
                for (ch, &sc) in s.iter().enumerate() {
                    let r = ch * per..(ch + 1) * per;
                    for (d, &g) in dxs[r.clone()].iter_mut().zip(&dys[r]) {
                        put(d, sc * g, acc);
                    }
                }
            });
    }
    fn zero(&self) -> Zero {
        Zero::Makes
    }
    fn flow(&self) -> Flow {
        Flow::PerChannel
    }
}
