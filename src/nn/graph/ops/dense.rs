//! `torch.nn.Linear`: `y = x Wᵀ + b` on flat inputs.

use super::{Fold, Bwd, Flow, Fwd, Kernel};
use crate::error::{Error, Result};
use crate::nn::dense::{dense_backward, dense_forward, DenseWeights};
use crate::nn::graph::{Param, ParamId};
use crate::nn::Shape;

/// A fully connected layer: weight `[out, in]`, optional bias `[out]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// The weight parameter.
    pub weight: ParamId,
    /// The bias parameter, if any.
    pub bias: Option<ParamId>,
}

impl Dense {
    fn weights<'a>(&self, params: &'a [Param]) -> DenseWeights<'a> {
        let w = &params[self.weight].value;
        DenseWeights {
            weight: w.as_slice(),
            bias: self.bias.map(|b| params[b].value.as_slice()),
            inputs: w.ncols(),
            outputs: w.nrows(),
        }
    }
}

impl Kernel for Dense {
    fn kind(&self) -> &'static str {
        "linear"
    }
    fn param_ids(&self) -> Vec<ParamId> {
        std::iter::once(self.weight).chain(self.bias).collect()
    }
    fn output_shape(&self, inputs: &[Shape], params: &[Param]) -> Result<Shape> {
        let w = &params[self.weight].value;
        if let Some(b) = self.bias {
            if params[b].value.len() != w.nrows() {
                return Err(Error::invalid("bias", "needs one entry per output"));
            }
        }
        match inputs[0] {
            Shape::Flat(n) if n == w.ncols() => Ok(Shape::Flat(w.nrows())),
            s => Err(Error::invalid(
                "linear",
                format!("expects {} flat features, got {:?}", w.ncols(), s.dims()),
            )),
        }
    }
    fn forward(&self, f: Fwd<'_>) {
        dense_forward(self.weights(f.params), f.batch, f.x[0], f.y);
    }
    fn backward(&self, mut b: Bwd<'_>) {
        let l = self.weights(b.params);
        let dx = b.dx[0].take();
        let (dw, db) = match self.bias {
            Some(bias) => {
                let [w, bb] = b
                    .grads
                    .get_disjoint_mut([self.weight, bias])
                    .expect("weight and bias are distinct parameters");
                (w.as_mut_slice(), Some(bb.as_mut_slice()))
            }
            None => (b.grads[self.weight].as_mut_slice(), None),
        };
        dense_backward(l, b.batch, b.x[0], b.dy, dw, db, dx);
    }
    fn fold(&self) -> Fold {
        Fold::Into(self.param_ids())
    }
    fn flow(&self) -> Flow {
        Flow::Produce
    }
}
