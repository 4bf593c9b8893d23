//! Fully connected kernels over row-major batches: `y = x Wᵀ + b` and its gradients.
//!
//! `W` is a column-major `[out, in]` matrix (nalgebra's layout); the GEMMs read it and the
//! activations through strides, so no transposed copies are made.

use super::gemm::{gemm, View, ViewMut};

/// The parameters a dense call reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DenseWeights<'a> {
    pub weight: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub inputs: usize,
    pub outputs: usize,
}

/// `y[b, o] = bias[o] + Σ_i x[b, i] W[o, i]` for `batch` rows.
pub(crate) fn dense_forward(l: DenseWeights<'_>, batch: usize, x: &[f32], y: &mut [f32]) {
    let (inp, out) = (l.inputs, l.outputs);
    let y = &mut y[..batch * out];
    match l.bias {
        Some(b) => y.chunks_mut(out).for_each(|row| row.copy_from_slice(b)),
        None => y.fill(0.0),
    }
    gemm(
        batch,
        inp,
        out,
        1.0,
        View {
            data: x,
            rs: inp,
            cs: 1,
        },
        View {
            data: l.weight,
            rs: out,
            cs: 1,
        },
        1.0,
        ViewMut {
            data: y,
            rs: out,
            cs: 1,
        },
    );
}

/// Gradients of [`dense_forward`]: overwrites `dw` (column-major `[out, in]`) and `db`, and
/// writes `dx = dy W` into `dx` if given (overwritten, or added to when the flag is set).
pub(crate) fn dense_backward(
    l: DenseWeights<'_>,
    batch: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dx: Option<(&mut [f32], bool)>,
) {
    let (inp, out) = (l.inputs, l.outputs);
    if let Some(db) = db {
        db.fill(0.0);
        for row in dy[..batch * out].chunks(out) {
            for (d, v) in db.iter_mut().zip(row) {
                *d += v;
            }
        }
    }
    gemm(
        out,
        batch,
        inp,
        1.0,
        View {
            data: dy,
            rs: 1,
            cs: out,
        },
        View {
            data: x,
            rs: inp,
            cs: 1,
        },
        0.0,
        ViewMut {
            data: dw,
            rs: 1,
            cs: out,
        },
    );
    if let Some((dx, accumulate)) = dx {
        gemm(
            batch,
            out,
            inp,
            1.0,
            View {
                data: dy,
                rs: out,
                cs: 1,
            },
            View {
                data: l.weight,
                rs: 1,
                cs: out,
            },
            if accumulate { 1.0 } else { 0.0 },
            ViewMut {
                data: dx,
                rs: inp,
                cs: 1,
            },
        );
    }
}
