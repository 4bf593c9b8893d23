//! Eval-mode forward kernels that read weights in CSR form: `y = x Wᵀ + b` and a convolution
//! of CSR filters against im2col patches. Only stored entries are multiplied, so the work is `nnz` per sample
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

/// Fills `cols` (`[C·k·k, P]` row-major) with one image's patches: row `(c, ky, kx)` is input
/// plane `c` shifted by the tap, zero where the tap falls in the padding.
fn im2col(g: &ConvGeom, x: &[f32], cols: &mut [f32]) {
    let (k, p, s) = (g.k, g.positions(), g.stride);
    for (j, row) in cols[..g.patch() * p].chunks_mut(p).enumerate() {
        let (c, ky, kx) = (j / (k * k), j % (k * k) / k, j % k);
        let plane = &x[c * g.h * g.w..][..g.h * g.w];
        let (ys, xs) = (
            inside(ky, g.h, g.ho, s, g.pad),
            inside(kx, g.w, g.wo, s, g.pad),
        );
        for (oy, dst) in row.chunks_mut(g.wo).enumerate() {
            if !ys.contains(&oy) || xs.is_empty() {
                dst.fill(0.0);
                continue;
            }
            let src = &plane[(oy * s + ky - g.pad) * g.w..][..g.w];
            let ix0 = xs.start * s + kx - g.pad;
            dst[..xs.start].fill(0.0);
            dst[xs.end..].fill(0.0);
            for (d, &v) in dst[xs.clone()].iter_mut().zip(src[ix0..].iter().step_by(s)) {
                *d = v;
            }
        }
    }
}

/// Filter `o`'s output plane from one image's patches: its bias plus, for each stored tap
/// `j`, the tap's value times patch row `j` (a contiguous row of `P` positions).
fn filter_plane(w: &Csr, bias: Option<&[f32]>, o: usize, cols: &[f32], plane: &mut [f32]) {
    let p = plane.len();
    plane.fill(bias.map_or(0.0, |b| b[o]));
    let (taps, vals) = w.row(o);
    for (&j, &v) in taps.iter().zip(vals) {
        for (d, &u) in plane.iter_mut().zip(&cols[j as usize * p..][..p]) {
            *d += v * u;
        }
    }
}

/// Sparse convolution of `batch` NCHW images: per image, its patch matrix (im2col, `C·k·k`
/// rows of `P` positions) is built once and each filter's plane sums its stored taps' rows,
/// so the products cost the stored taps times `P`. One image at a time is split over
/// filters; a batch is split over images.
pub(crate) fn conv_forward(
    w: &Csr,
    bias: Option<&[f32]>,
    g: &ConvGeom,
    batch: usize,
    x: &[f32],
    y: &mut [f32],
) {
    let (p, o_n) = (g.positions(), w.rows());
    let in_len = g.c * g.h * g.w;
    let cols_len = g.patch() * p;
    if batch == 1 {
        let mut cols = vec![0.0f32; cols_len];
        im2col(g, &x[..in_len], &mut cols);
        y[..o_n * p]
            .par_chunks_mut(p)
            .enumerate()
            .for_each(|(o, plane)| filter_plane(w, bias, o, &cols, plane));
        return;
    }
    y[..batch * o_n * p]
        .par_chunks_mut(o_n * p)
        .zip(x[..batch * in_len].par_chunks(in_len))
        .for_each_init(
            || vec![0.0f32; cols_len],
            |cols, (yb, xb)| {
                im2col(g, xb, cols);
                for (o, plane) in yb.chunks_mut(p).enumerate() {
                    filter_plane(w, bias, o, cols, plane);
                }
            },
        );
}
