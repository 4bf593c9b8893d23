//! Eval-mode forward kernels that read weights in CSR form: `y = x Wᵀ + b` and a direct
//! sparse convolution. Only stored entries are multiplied, so the work is `nnz` per sample
//! (times output positions for a convolution) instead of `rows · cols`.
//!
//! Every output element is its bias plus the products of its row's entries in column order,
//! computed by one task; the work is split over rows or `(image, filter)` planes only, so
//! results do not depend on the thread count.

use rayon::prelude::*;

use super::csr::Csr;
use crate::nn::conv::ConvGeom;

/// Below this batch, [`linear_forward`] takes dot products against each sample's row
/// (gathers); from it on, it multiplies each stored entry into a whole batch at once.
const BATCH_AXPY: usize = 4;

/// Rows of the output per rayon task.
const ROWS_PER_TASK: usize = 16;

/// `y[b, o] = bias[o] + Σ_k W[o, k] x[b, k]` for `batch` row-major samples `x` (`[batch, in]`)
/// into `y` (`[batch, out]`).
pub(crate) fn linear_forward(
    w: &Csr,
    bias: Option<&[f32]>,
    batch: usize,
    x: &[f32],
    y: &mut [f32],
) {
    let (inp, out) = (w.cols(), w.rows());
    let b0 = |o: usize| bias.map_or(0.0, |b| b[o]);
    if batch < BATCH_AXPY {
        for (xb, yb) in x[..batch * inp]
            .chunks(inp)
            .zip(y[..batch * out].chunks_mut(out))
        {
            yb.par_chunks_mut(ROWS_PER_TASK)
                .enumerate()
                .for_each(|(t, ys)| {
                    for (i, yo) in ys.iter_mut().enumerate() {
                        let o = t * ROWS_PER_TASK + i;
                        let (cols, vals) = w.row(o);
                        let mut acc = b0(o);
                        for (&c, &v) in cols.iter().zip(vals) {
                            acc += v * xb[c as usize];
                        }
                        *yo = acc;
                    }
                });
        }
        return;
    }
    // Batch-minor copies: a stored entry then scales one contiguous column of the batch
    // (`x_t[k, ..]`) into one contiguous output row (`y_t[o, ..]`), which vectorises.
    let mut x_t = vec![0.0f32; inp * batch];
    for (b, xb) in x[..batch * inp].chunks(inp).enumerate() {
        for (k, &v) in xb.iter().enumerate() {
            x_t[k * batch + b] = v;
        }
    }
    let mut y_t = vec![0.0f32; out * batch];
    y_t.par_chunks_mut(ROWS_PER_TASK * batch)
        .enumerate()
        .for_each(|(t, ys)| {
            for (i, yo) in ys.chunks_mut(batch).enumerate() {
                let o = t * ROWS_PER_TASK + i;
                yo.fill(b0(o));
                let (cols, vals) = w.row(o);
                for (&c, &v) in cols.iter().zip(vals) {
                    let xc = &x_t[c as usize * batch..][..batch];
                    for (d, &s) in yo.iter_mut().zip(xc) {
                        *d += v * s;
                    }
                }
            }
        });
    for (b, yb) in y[..batch * out].chunks_mut(out).enumerate() {
        for (o, d) in yb.iter_mut().enumerate() {
            *d = y_t[o * batch + b];
        }
    }
}

/// Output positions `o` along one axis whose tap `t` reads inside an input of length `n`:
/// `0 ≤ o·stride + t − pad < n`, for `out` positions.
fn inside(t: usize, n: usize, out: usize, stride: usize, pad: usize) -> std::ops::Range<usize> {
    let lo = pad.saturating_sub(t).div_ceil(stride);
    let hi = if n + pad > t {
        ((n + pad - t - 1) / stride + 1).min(out)
    } else {
        0
    };
    lo.min(hi)..hi
}

/// Direct sparse convolution of `batch` NCHW images: every output plane `(b, o)` is its bias
/// plus, for each stored tap `(c, ky, kx)` of filter `o`, the tap's value times input plane
/// `c` shifted by the tap. No im2col matrix is built, so the cost is the stored taps times
/// the output positions.
pub(crate) fn conv_forward(
    w: &Csr,
    bias: Option<&[f32]>,
    g: &ConvGeom,
    batch: usize,
    x: &[f32],
    y: &mut [f32],
) {
    let (p, o_n, k) = (g.positions(), w.rows(), g.k);
    let (kk, in_len, s) = (k * k, g.c * g.h * g.w, g.stride);
    y[..batch * o_n * p]
        .par_chunks_mut(p)
        .enumerate()
        .for_each(|(i, plane)| {
            let (b, o) = (i / o_n, i % o_n);
            plane.fill(bias.map_or(0.0, |bb| bb[o]));
            let xb = &x[b * in_len..][..in_len];
            let (cols, vals) = w.row(o);
            for (&j, &v) in cols.iter().zip(vals) {
                let j = j as usize;
                let (c, ky, kx) = (j / kk, j % kk / k, j % k);
                let src = &xb[c * g.h * g.w..][..g.h * g.w];
                let xs = inside(kx, g.w, g.wo, s, g.pad);
                if xs.is_empty() {
                    continue;
                }
                for oy in inside(ky, g.h, g.ho, s, g.pad) {
                    let iy = oy * s + ky - g.pad;
                    let row = &src[iy * g.w..][..g.w];
                    let ix0 = xs.start * s + kx - g.pad;
                    let dst = &mut plane[oy * g.wo..][xs.clone()];
                    if s == 1 {
                        for (d, &u) in dst.iter_mut().zip(&row[ix0..]) {
                            *d += v * u;
                        }
                    } else {
                        for (d, &u) in dst.iter_mut().zip(row[ix0..].iter().step_by(s)) {
                            *d += v * u;
                        }
                    }
                }
            }
        });
}
