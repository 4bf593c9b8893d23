//! `torch.nn.Flatten`: `[c, h, w] → [c·h·w]`, channel-major (no data moves).

use super::{Zero, put, Bwd, Flow, Fwd, Kernel};
use crate::error::Result;
use crate::nn::graph::Param;
use crate::nn::Shape;

/// Flattening of images into feature vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flatten;

impl Kernel for Flatten {
    fn kind(&self) -> &'static str {
        "flatten"
    }
    fn output_shape(&self, inputs: &[Shape], _: &[Param]) -> Result<Shape> {
        Ok(Shape::Flat(inputs[0].numel()))
    }
    fn forward(&self, f: Fwd<'_>) {
        let n = f.batch * f.in_shapes[0].numel();
        f.y[..n].copy_from_slice(&f.x[0][..n]);
    }
    fn backward(&self, mut b: Bwd<'_>) {
        let Some((dx, acc)) = b.dx[0].take() else {
            return;
        };
        let n = b.batch * b.in_shapes[0].numel();
        for (d, &g) in dx[..n].iter_mut().zip(&b.dy[..n]) {
            put(d, g, acc);
        }
    }
    fn zero(&self) -> Zero {
        Zero::Keeps
    }
    fn flow(&self) -> Flow {
        Flow::Flatten
    }
}
