//! `torch.nn.ReLU`: `y = max(x, 0)`.

use rayon::prelude::*;

use super::{Fold, Zero, put, Bwd, Flow, Fwd, Kernel};
use crate::error::Result;
use crate::nn::graph::Param;
use crate::nn::Shape;

/// Values per rayon task in element-wise loops (each task's loop vectorises).
pub(crate) const PAR_MIN: usize = 1 << 14;

/// The rectifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relu;

impl Kernel for Relu {
    fn kind(&self) -> &'static str {
        "relu"
    }
    fn output_shape(&self, inputs: &[Shape], _: &[Param]) -> Result<Shape> {
        Ok(inputs[0])
    }
    fn forward(&self, f: Fwd<'_>) {
        let n = f.batch * f.in_shapes[0].numel();
        f.y[..n]
            .par_chunks_mut(PAR_MIN)
            .zip(f.x[0][..n].par_chunks(PAR_MIN))
            .for_each(|(ys, xs)| ys.iter_mut().zip(xs).for_each(|(y, &x)| *y = x.max(0.0)));
    }
    fn backward(&self, mut b: Bwd<'_>) {
        let Some((dx, acc)) = b.dx[0].take() else {
            return;
        };
        let n = b.batch * b.in_shapes[0].numel();
        dx[..n]
            .par_chunks_mut(PAR_MIN)
            .zip(b.dy[..n].par_chunks(PAR_MIN).zip(b.x[0][..n].par_chunks(PAR_MIN)))
            .for_each(|(ds, (gs, xs))| {
                for ((d, &g), &x) in ds.iter_mut().zip(gs).zip(xs) {
                    put(d, if x > 0.0 { g } else { 0.0 }, acc)
                }
            });
    }
    fn zero(&self) -> Zero {
        Zero::Keeps
    }
    fn fold(&self) -> Fold {
        Fold::Through
    }
    fn flow(&self) -> Flow {
        Flow::PerChannel
    }
}
