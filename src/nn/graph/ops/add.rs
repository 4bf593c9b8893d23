//! Element-wise sum of two or more inputs of one shape (a residual join).

use std::ops::RangeInclusive;

use rayon::prelude::*;

use super::relu::PAR_MIN;
use super::{Zero, Bwd, Flow, Fwd, Kernel};
use crate::error::{Error, Result};
use crate::nn::graph::Param;
use crate::nn::Shape;

/// `y = Σ_k x_k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Add;

impl Kernel for Add {
    fn kind(&self) -> &'static str {
        "add"
    }
    fn arity(&self) -> RangeInclusive<usize> {
        2..=usize::MAX
    }
    fn output_shape(&self, inputs: &[Shape], _: &[Param]) -> Result<Shape> {
        if inputs.iter().any(|s| *s != inputs[0]) {
            let dims: Vec<_> = inputs.iter().map(|s| s.dims()).collect();
            return Err(Error::invalid(
                "add",
                format!("inputs must have one shape, got {dims:?}"),
            ));
        }
        Ok(inputs[0])
    }
    fn forward(&self, f: Fwd<'_>) {
        let n = f.batch * f.in_shapes[0].numel();
        // One pass over the output: each task sums its block of every input.
        f.y[..n]
            .par_chunks_mut(PAR_MIN)
            .enumerate()
            .for_each(|(t, ys)| {
                let r = t * PAR_MIN..t * PAR_MIN + ys.len();
                ys.copy_from_slice(&f.x[0][r.clone()]);
                for x in &f.x[1..] {
                    for (y, &v) in ys.iter_mut().zip(&x[r.clone()]) {
                        *y += v;
                    }
                }
            });
    }
    fn backward(&self, b: Bwd<'_>) {
        let n = b.batch * b.in_shapes[0].numel();
        for (dx, acc) in b.dx.into_iter().flatten() {
            dx[..n]
                .par_chunks_mut(PAR_MIN)
                .zip(b.dy[..n].par_chunks(PAR_MIN))
                .for_each(|(ds, gs)| {
                    if acc {
                        ds.iter_mut().zip(gs).for_each(|(d, &g)| *d += g);
                    } else {
                        ds.copy_from_slice(gs);
                    }
                });
        }
    }
    fn zero(&self) -> Zero {
        Zero::Keeps
    }
    fn flow(&self) -> Flow {
        Flow::Merge
    }
}
