//! `torch.nn.AdaptiveAvgPool2d(1)`: the mean of each channel, `[c, h, w] → [c, 1, 1]`.

use rayon::prelude::*;

use super::{Fold, Zero, put, Bwd, Flow, Fwd, Kernel};
use crate::error::{Error, Result};
use crate::nn::graph::Param;
use crate::nn::Shape;

/// Global average pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalAvgPool;

impl Kernel for GlobalAvgPool {
    fn kind(&self) -> &'static str {
        "globalavgpool"
    }
    fn output_shape(&self, inputs: &[Shape], _: &[Param]) -> Result<Shape> {
        match inputs[0] {
            Shape::Image { c, .. } => Ok(Shape::Image { c, h: 1, w: 1 }),
            _ => Err(Error::invalid("globalavgpool", "expects an image input")),
        }
    }
    fn forward(&self, f: Fwd<'_>) {
        let Shape::Image { c, h, w } = f.in_shapes[0] else {
            return;
        };
        let inv = 1.0 / (h * w) as f32;
        f.y[..f.batch * c]
            .par_iter_mut()
            .zip(f.x[0].par_chunks(h * w))
            .for_each(|(y, xp)| *y = xp.iter().sum::<f32>() * inv);
    }
    fn backward(&self, mut b: Bwd<'_>) {
        let Some((dx, acc)) = b.dx[0].take() else {
            return;
        };
        let Shape::Image { c, h, w } = b.in_shapes[0] else {
            return;
        };
        let inv = 1.0 / (h * w) as f32;
        dx[..b.batch * c * h * w]
            .par_chunks_mut(h * w)
            .zip(&b.dy[..b.batch * c])
            .for_each(|(dxp, &g)| dxp.iter_mut().for_each(|d| put(d, g * inv, acc)));
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
