//! Convolution by im2col + GEMM, and max pooling, over NCHW batches.
//!
//! A batch of `B` images becomes one column matrix `cols` of shape `[B * P, C * k * k]`
//! (`P` output positions per image), so the whole batch is a single large GEMM that
//! `matrixmultiply` threads; the layout shuffles around it run per sample under rayon.

use rayon::prelude::*;

use super::gemm::{gemm, View, ViewMut};
use super::layers::Conv2d;

/// Geometry of one convolution call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
}

impl ConvGeom {
    pub fn new(conv: &Conv2d, h: usize, w: usize) -> Self {
        let (ho, wo) = conv.output_hw(h, w).unwrap_or((0, 0));
        ConvGeom {
            c: conv.in_channels,
            h,
            w,
            k: conv.kernel,
            stride: conv.stride,
            pad: conv.padding,
            ho,
            wo,
        }
    }

    /// Output positions per image.
    pub fn positions(&self) -> usize {
        self.ho * self.wo
    }

    /// Columns of the im2col matrix.
    pub fn patch(&self) -> usize {
        self.c * self.k * self.k
    }
}

/// Fills `cols` (`[P, C*k*k]` for one image) from `x` (`[C, H, W]`).
fn im2col_one(g: &ConvGeom, x: &[f32], cols: &mut [f32]) {
    let kk = g.patch();
    for oy in 0..g.ho {
        for ox in 0..g.wo {
            let row = &mut cols[(oy * g.wo + ox) * kk..][..kk];
            let mut idx = 0;
            for ch in 0..g.c {
                let plane = &x[ch * g.h * g.w..][..g.h * g.w];
                for ky in 0..g.k {
                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                    for kx in 0..g.k {
                        let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                        row[idx] =
                            if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                plane[iy as usize * g.w + ix as usize]
                            } else {
                                0.0
                            };
                        idx += 1;
                    }
                }
            }
        }
    }
}

/// Adds the patch gradients `dcols` (`[P, C*k*k]`) back onto `dx` (`[C, H, W]`, zeroed first).
fn col2im_one(g: &ConvGeom, dcols: &[f32], dx: &mut [f32]) {
    dx.fill(0.0);
    let kk = g.patch();
    for oy in 0..g.ho {
        for ox in 0..g.wo {
            let row = &dcols[(oy * g.wo + ox) * kk..][..kk];
            let mut idx = 0;
            for ch in 0..g.c {
                for ky in 0..g.k {
                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                    for kx in 0..g.k {
                        let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                            dx[ch * g.h * g.w + iy as usize * g.w + ix as usize] += row[idx];
                        }
                        idx += 1;
                    }
                }
            }
        }
    }
}

/// Forward convolution of `batch` images: `y = conv(x) + b` in NCHW.
/// `cols` (`B*P*C*k*k`) and `tmp` (`B*P*O`) are workspaces; `cols` is kept for backward.
pub(crate) fn conv_forward(
    conv: &Conv2d,
    g: &ConvGeom,
    batch: usize,
    x: &[f32],
    y: &mut [f32],
    cols: &mut [f32],
    tmp: &mut [f32],
) {
    let (p, kk, o) = (g.positions(), g.patch(), conv.out_channels());
    let in_len = g.c * g.h * g.w;
    cols[..batch * p * kk]
        .par_chunks_mut(p * kk)
        .zip(x[..batch * in_len].par_chunks(in_len))
        .for_each(|(c, xi)| im2col_one(g, xi, c));
    // tmp[(b,p), o] = sum_j cols[(b,p), j] W[o, j]
    gemm(
        batch * p,
        kk,
        o,
        1.0,
        View {
            data: &cols[..batch * p * kk],
            rs: kk,
            cs: 1,
        },
        View {
            data: conv.weight.as_slice(),
            rs: o,
            cs: 1,
        },
        0.0,
        ViewMut {
            data: &mut tmp[..batch * p * o],
            rs: o,
            cs: 1,
        },
    );
    let bias = conv.bias.as_slice();
    y[..batch * o * p]
        .par_chunks_mut(o * p)
        .zip(tmp[..batch * p * o].par_chunks(p * o))
        .for_each(|(yb, tb)| {
            for (ch, yc) in yb.chunks_mut(p).enumerate() {
                let bch = bias[ch];
                for (pos, v) in yc.iter_mut().enumerate() {
                    *v = tb[pos * o + ch] + bch;
                }
            }
        });
}

/// Backward convolution. `dy` is NCHW; writes weight and bias gradients, and `dx` if given.
/// Uses `cols` from the forward pass (overwritten with patch gradients), `tmp`, and
/// `dw_scratch` (`out * in*k*k`) for the second half of the weight-gradient reduction.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_backward(
    conv: &Conv2d,
    g: &ConvGeom,
    batch: usize,
    dy: &[f32],
    cols: &mut [f32],
    tmp: &mut [f32],
    dw: &mut [f32],
    dw_scratch: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let (p, kk, o) = (g.positions(), g.patch(), conv.out_channels());
    // NCHW -> [(b,p), o]
    tmp[..batch * p * o]
        .par_chunks_mut(p * o)
        .zip(dy[..batch * o * p].par_chunks(o * p))
        .for_each(|(tb, yb)| {
            for (ch, yc) in yb.chunks(p).enumerate() {
                for (pos, v) in yc.iter().enumerate() {
                    tb[pos * o + ch] = *v;
                }
            }
        });
    db.fill(0.0);
    for row in tmp[..batch * p * o].chunks(o) {
        for (d, v) in db.iter_mut().zip(row) {
            *d += v;
        }
    }
    // dW[o, j] = sum_r tmp[r, o] cols[r, j]; dW is column-major [o, kk]. The reduction over
    // r = (b, p) is split in two halves on two threads (the second into `dw_scratch`), so
    // neither thread packs the other's share of the large `tmp` and `cols` matrices.
    let rows = batch * p;
    let half = if rayon::current_num_threads() > 1 && rows >= 256 {
        rows / 2
    } else {
        rows
    };
    let dw_part = |r0: usize, r1: usize, out: &mut [f32]| {
        gemm(
            o,
            r1 - r0,
            kk,
            1.0,
            View {
                data: &tmp[r0 * o..r1 * o],
                rs: 1,
                cs: o,
            },
            View {
                data: &cols[r0 * kk..r1 * kk],
                rs: kk,
                cs: 1,
            },
            0.0,
            ViewMut {
                data: out,
                rs: 1,
                cs: o,
            },
        )
    };
    if half < rows {
        let scratch = &mut dw_scratch[..o * kk];
        rayon::join(
            || dw_part(0, half, &mut *dw),
            || dw_part(half, rows, &mut *scratch),
        );
        for (d, s) in dw.iter_mut().zip(scratch.iter()) {
            *d += s;
        }
    } else {
        dw_part(0, rows, dw);
    }
    if let Some(dx) = dx {
        // dcols[r, j] = sum_o tmp[r, o] W[o, j]
        gemm(
            batch * p,
            o,
            kk,
            1.0,
            View {
                data: &tmp[..batch * p * o],
                rs: o,
                cs: 1,
            },
            View {
                data: conv.weight.as_slice(),
                rs: 1,
                cs: o,
            },
            0.0,
            ViewMut {
                data: &mut cols[..batch * p * kk],
                rs: kk,
                cs: 1,
            },
        );
        let in_len = g.c * g.h * g.w;
        dx[..batch * in_len]
            .par_chunks_mut(in_len)
            .zip(cols[..batch * p * kk].par_chunks(p * kk))
            .for_each(|(dxi, dc)| col2im_one(g, dc, dxi));
    }
}

/// Max pooling forward over `batch * c` planes of `h × w`; records the argmax offset (within
/// the plane) of every output for backward. The argmax is taken over `key` (same layout as
/// `x`): after a gated ReLU the key is the pre-activation `z`, so the selected position is the
/// one that wins for every gate `s > 0`, and `dL/ds` at `s = 0` is the right derivative
/// (with `x = s relu(z)` all zero at `s = 0`, a tie would otherwise pick an arbitrary cell).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pool_forward(
    k: usize,
    planes: usize,
    h: usize,
    w: usize,
    x: &[f32],
    key: &[f32],
    y: &mut [f32],
    arg: &mut [u32],
) {
    let (ho, wo) = (h / k, w / k);
    y[..planes * ho * wo]
        .par_chunks_mut(ho * wo)
        .zip(arg[..planes * ho * wo].par_chunks_mut(ho * wo))
        .zip(
            x[..planes * h * w]
                .par_chunks(h * w)
                .zip(key[..planes * h * w].par_chunks(h * w)),
        )
        .for_each(|((yp, ap), (xp, kp))| {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut best = f32::NEG_INFINITY;
                    let mut at = (oy * k) * w + ox * k;
                    for ky in 0..k {
                        for kx in 0..k {
                            let i = (oy * k + ky) * w + ox * k + kx;
                            // `>` keeps the first maximum; NaN never wins, but NaN inputs
                            // are caught by the trainer's loss check.
                            if kp[i] > best {
                                best = kp[i];
                                at = i;
                            }
                        }
                    }
                    yp[oy * wo + ox] = xp[at];
                    ap[oy * wo + ox] = at as u32;
                }
            }
        });
}

/// Max pooling backward: routes each output gradient to its argmax input.
pub(crate) fn pool_backward(
    k: usize,
    planes: usize,
    h: usize,
    w: usize,
    dy: &[f32],
    arg: &[u32],
    dx: &mut [f32],
) {
    let (ho, wo) = (h / k, w / k);
    dx[..planes * h * w]
        .par_chunks_mut(h * w)
        .zip(dy[..planes * ho * wo].par_chunks(ho * wo))
        .zip(arg[..planes * ho * wo].par_chunks(ho * wo))
        .for_each(|((dxp, dyp), ap)| {
            dxp.fill(0.0);
            for (d, &a) in dyp.iter().zip(ap) {
                dxp[a as usize] += d;
            }
        });
}
