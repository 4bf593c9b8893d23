//! `torch.nn.MaxPool2d(kernel, stride, padding)`; padding counts as `−∞`.

use rayon::prelude::*;

use super::{Fold, Zero, put, BufferSizes, Bwd, Flow, Fwd, Kernel};
use crate::error::{Error, Result};
use crate::nn::graph::Param;
use crate::nn::Shape;

/// Window, stride and padding of a pooling op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// Square window.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Padding on every side.
    pub padding: usize,
}

impl Pool {
    /// A window with stride equal to its size and no padding (PyTorch's default).
    pub fn square(kernel: usize) -> Self {
        Pool {
            kernel,
            stride: kernel,
            padding: 0,
        }
    }

    /// Output shape of pooling an image, checking the window fits (PyTorch's rule that the
    /// padding is at most half the window).
    pub(crate) fn output(&self, s: Shape, kind: &str) -> Result<Shape> {
        let Shape::Image { c, h, w } = s else {
            return Err(Error::invalid(kind.to_string(), "expects an image input"));
        };
        let (k, st, p) = (self.kernel, self.stride, self.padding);
        if k == 0 || st == 0 || 2 * p > k || h + 2 * p < k || w + 2 * p < k {
            return Err(Error::invalid(
                kind.to_string(),
                format!("window {k}, stride {st}, padding {p} does not fit a {h}×{w} input"),
            ));
        }
        Ok(Shape::Image {
            c,
            h: (h + 2 * p - k) / st + 1,
            w: (w + 2 * p - k) / st + 1,
        })
    }

    /// `(c, h, w, ho, wo)`: the input image's sizes and the output's height and width, or
    /// `None` when the window does not fit (shapes are checked before any pass runs).
    pub(crate) fn sizes(&self, s: Shape) -> Option<(usize, usize, usize, usize, usize)> {
        match (s, self.output(s, "")) {
            (Shape::Image { c, h, w }, Ok(Shape::Image { h: ho, w: wo, .. })) => {
                Some((c, h, w, ho, wo))
            }
            _ => None,
        }
    }

    /// Input cells `(iy, ix)` inside the image of output cell `(oy, ox)`.
    pub(crate) fn window(
        &self,
        oy: usize,
        ox: usize,
        h: usize,
        w: usize,
    ) -> impl Iterator<Item = usize> + '_ {
        let y0 = (oy * self.stride) as isize - self.padding as isize;
        let x0 = (ox * self.stride) as isize - self.padding as isize;
        let k = self.kernel as isize;
        (y0.max(0)..(y0 + k).min(h as isize)).flat_map(move |iy| {
            (x0.max(0)..(x0 + k).min(w as isize)).map(move |ix| iy as usize * w + ix as usize)
        })
    }
}

/// Max pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool(pub Pool);

impl Kernel for MaxPool {
    fn kind(&self) -> &'static str {
        "maxpool2d"
    }
    fn output_shape(&self, inputs: &[Shape], _: &[Param]) -> Result<Shape> {
        self.0.output(inputs[0], "maxpool2d")
    }
    fn buffers(&self, _: &[Shape], out: Shape, batch: usize) -> BufferSizes {
        BufferSizes {
            index: batch * out.numel(),
            ..BufferSizes::default()
        }
    }
    fn forward(&self, f: Fwd<'_>) {
        let Some((c, h, w, ho, wo)) = self.0.sizes(f.in_shapes[0]) else {
            return;
        };
        let planes = f.batch * c;
        f.y[..planes * ho * wo]
            .par_chunks_mut(ho * wo)
            .zip(f.buf.index[..planes * ho * wo].par_chunks_mut(ho * wo))
            .zip(f.x[0][..planes * h * w].par_chunks(h * w))
            .for_each(|((yp, ap), xp)| {
                for oy in 0..ho {
                    for ox in 0..wo {
                        // `>` keeps the first maximum; a window always holds an image cell.
                        let mut best = f32::NEG_INFINITY;
                        let mut at = usize::MAX;
                        for i in self.0.window(oy, ox, h, w) {
                            if at == usize::MAX || xp[i] > best {
                                best = xp[i];
                                at = i;
                            }
                        }
                        yp[oy * wo + ox] = best;
                        ap[oy * wo + ox] = at as u32;
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
        let (op, planes) = (ho * wo, b.batch * c);
        dx[..planes * h * w]
            .par_chunks_mut(h * w)
            .zip(b.dy[..planes * op].par_chunks(op))
            .zip(b.buf.index[..planes * op].par_chunks(op))
            .for_each(|((dxp, dyp), ap)| {
                if !acc {
                    dxp.fill(0.0);
                }
                for (&g, &a) in dyp.iter().zip(ap) {
                    put(&mut dxp[a as usize], g, true);
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
