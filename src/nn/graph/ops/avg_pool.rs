//! `torch.nn.AvgPool2d(kernel, stride, padding)` with PyTorch's default of counting padded
//! cells: every window divides by `k²`.

use rayon::prelude::*;

use super::{Fold, Zero, put, Bwd, Flow, Fwd, Kernel, Pool};
use crate::error::Result;
use crate::nn::graph::Param;
use crate::nn::Shape;

/// Average pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool(pub Pool);

impl Kernel for AvgPool {
    fn kind(&self) -> &'static str {
        "avgpool2d"
    }
    fn output_shape(&self, inputs: &[Shape], _: &[Param]) -> Result<Shape> {
        self.0.output(inputs[0], "avgpool2d")
    }
    fn forward(&self, f: Fwd<'_>) {
        let Some((c, h, w, ho, wo)) = self.0.sizes(f.in_shapes[0]) else {
            return;
        };
        let inv = 1.0 / (self.0.kernel * self.0.kernel) as f32;
        f.y[..f.batch * c * ho * wo]
            .par_chunks_mut(ho * wo)
            .zip(f.x[0].par_chunks(h * w))
            .for_each(|(yp, xp)| {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let s: f32 = self.0.window(oy, ox, h, w).map(|i| xp[i]).sum();
                        yp[oy * wo + ox] = s * inv;
                    }
                }
            });
    }
    fn backward(&self, mut b: Bwd<'_>) {
        let Some((dx, acc)) = b.dx[0].take() else {
            return;
        };
        let Some((c, h, w, ho, wo)) = self.0.sizes(b.in_shapes[0]) else {
            return;
        };
        let inv = 1.0 / (self.0.kernel * self.0.kernel) as f32;
        dx[..b.batch * c * h * w]
            .par_chunks_mut(h * w)
            .zip(b.dy.par_chunks(ho * wo))
            .for_each(|(dxp, dyp)| {
                if !acc {
                    dxp.fill(0.0);
                }
                for oy in 0..ho {
                    for ox in 0..wo {
                        let g = dyp[oy * wo + ox] * inv;
                        for i in self.0.window(oy, ox, h, w) {
                            put(&mut dxp[i], g, true);
                        }
                    }
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
