//! `torch.nn.Conv2d` with square kernels, stride and zero padding, by im2col + GEMM.

use super::{Fold, BufferSizes, Bwd, Flow, Fwd, Kernel};
use crate::error::{Error, Result};
use crate::nn::conv::{chunks, conv_backward, conv_forward, ConvGeom, ConvWeights};
use crate::nn::graph::{Param, ParamId};
use crate::nn::Shape;

/// A convolution: weight `[out, in·k·k]`, optional bias `[out]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    /// The weight parameter.
    pub weight: ParamId,
    /// The bias parameter, if any.
    pub bias: Option<ParamId>,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl Conv {
    /// Input channels the weight reads.
    pub fn in_channels(&self, params: &[Param]) -> usize {
        params[self.weight].value.ncols() / (self.kernel * self.kernel).max(1)
    }

    fn geom(&self, input: Shape, params: &[Param]) -> ConvGeom {
        let Shape::Image { h, w, .. } = input else {
            return ConvGeom::of(0, 0, 0, self.kernel, self.stride, self.padding);
        };
        ConvGeom::of(
            self.in_channels(params),
            h,
            w,
            self.kernel,
            self.stride,
            self.padding,
        )
    }

    fn weights<'a>(&self, params: &'a [Param]) -> ConvWeights<'a> {
        let w = &params[self.weight].value;
        ConvWeights {
            weight: w.as_slice(),
            bias: self.bias.map(|b| params[b].value.as_slice()),
            out: w.nrows(),
        }
    }
}

impl Kernel for Conv {
    fn kind(&self) -> &'static str {
        "conv2d"
    }
    fn param_ids(&self) -> Vec<ParamId> {
        std::iter::once(self.weight).chain(self.bias).collect()
    }
    fn output_shape(&self, inputs: &[Shape], params: &[Param]) -> Result<Shape> {
        let w = &params[self.weight].value;
        let k2 = self.kernel * self.kernel;
        if self.kernel == 0 || self.stride == 0 || !w.ncols().is_multiple_of(k2) {
            return Err(Error::invalid(
                "conv2d",
                "kernel and stride must be > 0 and the weight [out, in·k·k]",
            ));
        }
        if let Some(b) = self.bias {
            if params[b].value.len() != w.nrows() {
                return Err(Error::invalid("bias", "needs one entry per output channel"));
            }
        }
        let Shape::Image { c, .. } = inputs[0] else {
            return Err(Error::invalid("conv2d", "expects an image input"));
        };
        let g = self.geom(inputs[0], params);
        if c != g.c || g.positions() == 0 {
            return Err(Error::invalid(
                "conv2d",
                format!(
                    "weight reads {} channels with kernel {}; input is {:?}",
                    g.c,
                    self.kernel,
                    inputs[0].dims()
                ),
            ));
        }
        Ok(Shape::Image {
            c: w.nrows(),
            h: g.ho,
            w: g.wo,
        })
    }
    fn buffers(&self, inputs: &[Shape], out: Shape, batch: usize) -> BufferSizes {
        // Shapes are checked before buffers are sized, so the weight is implied by them.
        let (Shape::Image { c, h, w }, Shape::Image { c: o, .. }) = (inputs[0], out) else {
            return BufferSizes::default();
        };
        let g = ConvGeom::of(c, h, w, self.kernel, self.stride, self.padding);
        BufferSizes {
            partial: chunks(batch) * (o * g.patch() + o) + o,
            ..BufferSizes::default()
        }
    }
    fn forward(&self, f: Fwd<'_>) {
        let g = self.geom(f.in_shapes[0], f.params);
        conv_forward(
            self.weights(f.params),
            &g,
            f.batch,
            f.x[0],
            f.y,
        );
    }
    fn backward(&self, mut b: Bwd<'_>) {
        let g = self.geom(b.in_shapes[0], b.params);
        let cw = self.weights(b.params);
        let dx = b.dx[0].take();
        let split = b.buf.partial.len() - cw.out;
        let (partial, no_bias) = b.buf.partial.split_at_mut(split);
        let (dw, db) = match self.bias {
            Some(bias) => {
                let [w, bb] = b
                    .grads
                    .get_disjoint_mut([self.weight, bias])
                    .expect("weight and bias are distinct parameters");
                (w.as_mut_slice(), bb.as_mut_slice())
            }
            None => (b.grads[self.weight].as_mut_slice(), no_bias),
        };
        conv_backward(
            cw,
            &g,
            b.batch,
            b.x[0],
            b.dy,
            dw,
            partial,
            db,
            dx,
        );
    }
    fn fold(&self) -> Fold {
        Fold::Into(self.param_ids())
    }
    fn flow(&self) -> Flow {
        Flow::Produce
    }
}
