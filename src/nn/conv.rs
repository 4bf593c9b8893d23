//! Convolution by im2col + GEMM, and max pooling, over NCHW batches.
//!
//! A batch of `B` images becomes a column matrix `cols` of shape `[B * P, C * k * k]`
//! (`P` output positions per image). It is processed in chunks of a few samples whose block
//! of `cols` fits in cache: each rayon task does im2col and single-threaded per-image GEMMs
//! for its chunk, so the large im2col matrix is not streamed through memory between those
//! steps. The GEMMs read and write NCHW activations through strides, so no layout-change
//! copies are needed. Weight gradients are summed from per-chunk partials in a fixed order.

use rayon::prelude::*;

use super::gemm::{gemm_serial, View, ViewMut};
use super::layers::Conv2d;

/// The parameters a convolution call reads: filters as a column-major `[out, in*k*k]`
/// matrix and an optional bias (`None` for bias-free convolutions such as ResNet's).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvWeights<'a> {
    pub weight: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub out: usize,
}

impl<'a> ConvWeights<'a> {
    pub fn of(conv: &'a Conv2d) -> Self {
        ConvWeights {
            weight: conv.weight.as_slice(),
            bias: Some(conv.bias.as_slice()),
            out: conv.out_channels(),
        }
    }
}

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
        Self::of(
            conv.in_channels,
            h,
            w,
            conv.kernel,
            conv.stride,
            conv.padding,
        )
    }

    /// Geometry of a `k × k` convolution with `stride` and `pad` over `c × h × w` inputs
    /// (zero output positions when the kernel does not fit).
    pub fn of(c: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> Self {
        let (hp, wp) = (h + 2 * pad, w + 2 * pad);
        let (ho, wo) = if hp < k || wp < k || stride == 0 {
            (0, 0)
        } else {
            ((hp - k) / stride + 1, (wp - k) / stride + 1)
        };
        ConvGeom {
            c,
            h,
            w,
            k,
            stride,
            pad,
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
///
/// The `k` taps of one kernel row are contiguous in both `x` and `cols` whatever the stride,
/// so a kernel row that lies inside the image is one slice copy; only rows that touch the
/// padding go element by element. This keeps im2col a memcpy-like pass instead of a branch
/// per element.
fn im2col_one(g: &ConvGeom, x: &[f32], cols: &mut [f32]) {
    let (kk, k) = (g.patch(), g.k);
    for oy in 0..g.ho {
        for ox in 0..g.wo {
            let row = &mut cols[(oy * g.wo + ox) * kk..][..kk];
            let ix0 = (ox * g.stride) as isize - g.pad as isize;
            let x_inside = ix0 >= 0 && ix0 as usize + k <= g.w;
            for ch in 0..g.c {
                let plane = &x[ch * g.h * g.w..][..g.h * g.w];
                for ky in 0..k {
                    let dst = &mut row[(ch * k + ky) * k..][..k];
                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                    if iy < 0 || iy as usize >= g.h {
                        dst.fill(0.0);
                    } else if x_inside {
                        dst.copy_from_slice(&plane[iy as usize * g.w + ix0 as usize..][..k]);
                    } else {
                        for (kx, d) in dst.iter_mut().enumerate() {
                            let ix = ix0 + kx as isize;
                            *d = if ix >= 0 && (ix as usize) < g.w {
                                plane[iy as usize * g.w + ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Adds the patch gradients `dcols` (`[P, C*k*k]`) back onto `dx` (`[C, H, W]`, zeroed first
/// unless `accumulate`).
/// Same contiguous-kernel-row fast path as [`im2col_one`]; the additions happen in the same
/// order as an element-by-element scatter, so results are unchanged.
fn col2im_one(g: &ConvGeom, dcols: &[f32], dx: &mut [f32], accumulate: bool) {
    if !accumulate {
        dx.fill(0.0);
    }
    let (kk, k) = (g.patch(), g.k);
    for oy in 0..g.ho {
        for ox in 0..g.wo {
            let row = &dcols[(oy * g.wo + ox) * kk..][..kk];
            let ix0 = (ox * g.stride) as isize - g.pad as isize;
            let x_inside = ix0 >= 0 && ix0 as usize + k <= g.w;
            for ch in 0..g.c {
                let plane = &mut dx[ch * g.h * g.w..][..g.h * g.w];
                for ky in 0..k {
                    let src = &row[(ch * k + ky) * k..][..k];
                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                    if iy < 0 || iy as usize >= g.h {
                        continue;
                    }
                    if x_inside {
                        let dst = &mut plane[iy as usize * g.w + ix0 as usize..][..k];
                        for (d, v) in dst.iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (kx, v) in src.iter().enumerate() {
                            let ix = ix0 + kx as isize;
                            if ix >= 0 && (ix as usize) < g.w {
                                plane[iy as usize * g.w + ix as usize] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Independent accumulators for long reductions (a multiple of the f32 SIMD width).
pub(crate) const LANES: usize = 8;

/// Sum of `x` in `LANES` interleaved partial sums: a single running sum is bound by the
/// latency of the add chain, while independent lanes vectorise. Only reassociates the sum.
fn lane_sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut it = x.chunks_exact(LANES);
    for c in &mut it {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    for v in it.remainder() {
        acc[0] += v;
    }
    acc.iter().sum()
}

/// Samples per chunk: the chunk's im2col block (`S * P * C*k*k` floats) stays near 1 MiB, so
/// it is written, packed by the GEMM and read back while still in cache.
pub(crate) fn chunk_samples(g: &ConvGeom) -> usize {
    (CHUNK_FLOATS / (g.positions() * g.patch()).max(1)).max(1)
}

const CHUNK_FLOATS: usize = 1 << 18;

/// Number of chunks for `batch` samples.
pub(crate) fn chunks(g: &ConvGeom, batch: usize) -> usize {
    batch.div_ceil(chunk_samples(g))
}

/// Forward convolution of `batch` images: `y = conv(x) + b` in NCHW.
/// `cols` (`B*P*C*k*k`) is a workspace kept for backward.
/// The batch is processed in cache-sized chunks of samples, one rayon task per chunk, each
/// doing im2col, a single-threaded GEMM and the layout change back to NCHW.
pub(crate) fn conv_forward(
    conv: ConvWeights<'_>,
    g: &ConvGeom,
    batch: usize,
    x: &[f32],
    y: &mut [f32],
    cols: &mut [f32],
) {
    conv_forward_chunked(conv, g, batch, chunk_samples(g), x, y, cols)
}

#[allow(clippy::too_many_arguments)]
fn conv_forward_chunked(
    conv: ConvWeights<'_>,
    g: &ConvGeom,
    batch: usize,
    s: usize,
    x: &[f32],
    y: &mut [f32],
    cols: &mut [f32],
) {
    let (p, kk, o) = (g.positions(), g.patch(), conv.out);
    let in_len = g.c * g.h * g.w;
    let w = conv.weight;
    cols[..batch * p * kk]
        .par_chunks_mut(s * p * kk)
        .zip(
            x[..batch * in_len]
                .par_chunks(s * in_len)
                .zip(y[..batch * o * p].par_chunks_mut(s * o * p)),
        )
        .for_each(|(cc, (xc, yc))| {
            // Per image, y_b[o, pos] = b[o] + sum_j W[o, j] cols_b[pos, j]: reading `cols_b`
            // transposed through strides writes NCHW directly, with no [(b,p), o] buffer to
            // transpose afterwards. The bias is pre-filled and the GEMM accumulates (beta = 1).
            // im2col runs image by image just before its GEMM, so the image's block of `cols`
            // is still in cache when the GEMM packs it.
            for ((yb, cb), xi) in yc
                .chunks_mut(o * p)
                .zip(cc.chunks_mut(p * kk))
                .zip(xc.chunks(in_len))
            {
                im2col_one(g, xi, cb);
                match conv.bias {
                    Some(bias) => {
                        for (ych, &bch) in yb.chunks_mut(p).zip(bias) {
                            ych.fill(bch);
                        }
                    }
                    None => yb.fill(0.0),
                }
                gemm_serial(
                    o,
                    kk,
                    p,
                    1.0,
                    View {
                        data: w,
                        rs: 1,
                        cs: o,
                    },
                    View {
                        data: cb,
                        rs: 1,
                        cs: kk,
                    },
                    1.0,
                    ViewMut {
                        data: yb,
                        rs: p,
                        cs: 1,
                    },
                );
            }
        });
}

/// One chunk's `(cols, (dy, partial gradients))` in the backward pass.
type ChunkArgs<'a> = (&'a mut [f32], (&'a [f32], &'a mut [f32]));

/// Backward convolution. `dy` is NCHW; writes weight and bias gradients, and `dx` if given
/// (overwritten, or added to when `accumulate`).
/// Uses `cols` from the forward pass (overwritten with patch gradients) and `scratch`
/// (`chunks * (O*C*k*k + O)`) for per-chunk partial weight and bias gradients, which are
/// summed in chunk order so results do not depend on the thread count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_backward(
    conv: ConvWeights<'_>,
    g: &ConvGeom,
    batch: usize,
    dy: &[f32],
    cols: &mut [f32],
    dw: &mut [f32],
    scratch: &mut [f32],
    db: &mut [f32],
    dx: Option<(&mut [f32], bool)>,
) {
    conv_backward_chunked(
        conv,
        g,
        batch,
        chunk_samples(g),
        dy,
        cols,
        dw,
        scratch,
        db,
        dx,
    )
}

#[allow(clippy::too_many_arguments)]
fn conv_backward_chunked(
    conv: ConvWeights<'_>,
    g: &ConvGeom,
    batch: usize,
    s: usize,
    dy: &[f32],
    cols: &mut [f32],
    dw: &mut [f32],
    scratch: &mut [f32],
    db: &mut [f32],
    dx: Option<(&mut [f32], bool)>,
) {
    let (p, kk, o) = (g.positions(), g.patch(), conv.out);
    let in_len = g.c * g.h * g.w;
    let nchunks = batch.div_ceil(s);
    let part = o * kk + o;
    let w = conv.weight;
    let want_dx = dx.is_some();
    // Without an input gradient the dx slices are empty placeholders.
    let mut empty: [f32; 0] = [];
    let (dx_all, accumulate): (&mut [f32], bool) = match dx {
        Some((d, acc)) => (&mut d[..batch * in_len], acc),
        None => (&mut empty, false),
    };
    let dx_chunk = if want_dx { s * in_len } else { 1 };
    let dx_iter = dx_all.par_chunks_mut(dx_chunk);
    // Every product reads `dy` in its NCHW layout (`dy_b` is `[O, P]` row-major per image)
    // through strides, so no transposed copy of `dy` is made.
    let body = |(cc, (yc, sc)): ChunkArgs<'_>, dxc: Option<&mut [f32]>| {
        let (dwc, dbc) = sc.split_at_mut(o * kk);
        dbc.fill(0.0);
        for yb in yc.chunks(o * p) {
            for (d, ych) in dbc.iter_mut().zip(yb.chunks(p)) {
                *d += lane_sum(ych);
            }
        }
        // dW_c[o, j] = sum_b sum_pos dy_b[o, pos] cols_b[pos, j], column-major [o, kk];
        // the first image overwrites (beta = 0), later ones accumulate.
        for (i, (yb, cb)) in yc.chunks(o * p).zip(cc.chunks(p * kk)).enumerate() {
            gemm_serial(
                o,
                p,
                kk,
                1.0,
                View {
                    data: yb,
                    rs: p,
                    cs: 1,
                },
                View {
                    data: cb,
                    rs: kk,
                    cs: 1,
                },
                if i == 0 { 0.0 } else { 1.0 },
                ViewMut {
                    data: dwc,
                    rs: 1,
                    cs: o,
                },
            );
        }
        if let Some(dxc) = dxc {
            // dcols_b[pos, j] = sum_o dy_b[o, pos] W[o, j], then scatter back to the image.
            for ((dxi, cb), yb) in dxc
                .chunks_mut(in_len)
                .zip(cc.chunks_mut(p * kk))
                .zip(yc.chunks(o * p))
            {
                gemm_serial(
                    p,
                    o,
                    kk,
                    1.0,
                    View {
                        data: yb,
                        rs: 1,
                        cs: p,
                    },
                    View {
                        data: w,
                        rs: 1,
                        cs: o,
                    },
                    0.0,
                    ViewMut {
                        data: cb,
                        rs: kk,
                        cs: 1,
                    },
                );
                col2im_one(g, cb, dxi, accumulate);
            }
        }
    };
    let main = cols[..batch * p * kk].par_chunks_mut(s * p * kk).zip(
        dy[..batch * o * p]
            .par_chunks(s * o * p)
            .zip(scratch[..nchunks * part].par_chunks_mut(part)),
    );
    if want_dx {
        main.zip(dx_iter).for_each(|(a, dxc)| body(a, Some(dxc)));
    } else {
        main.for_each(|a| body(a, None));
    }
    dw.fill(0.0);
    db.fill(0.0);
    for sc in scratch[..nchunks * part].chunks(part) {
        let (dwc, dbc) = sc.split_at(o * kk);
        for (d, v) in dw.iter_mut().zip(dwc) {
            *d += v;
        }
        for (d, v) in db.iter_mut().zip(dbc) {
            *d += v;
        }
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

#[cfg(test)]
mod tests {
    use nalgebra::{DMatrix, DVector};

    use super::*;

    /// Direct-loop convolution and its gradients, the reference for the chunked im2col path.
    #[allow(clippy::type_complexity)]
    fn naive(
        conv: &Conv2d,
        g: &ConvGeom,
        batch: usize,
        x: &[f32],
        dy: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let (o, k, p) = (conv.out_channels(), g.k, g.positions());
        let mut y = vec![0.0; batch * o * p];
        let mut dw = vec![0.0; o * g.patch()];
        let mut db = vec![0.0; o];
        let mut dx = vec![0.0; batch * g.c * g.h * g.w];
        for b in 0..batch {
            for oc in 0..o {
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let yi = ((b * o + oc) * g.ho + oy) * g.wo + ox;
                        let mut acc = conv.bias[oc];
                        db[oc] += dy[yi];
                        for c in 0..g.c {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                                    let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                    if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w
                                    {
                                        continue;
                                    }
                                    let xi =
                                        ((b * g.c + c) * g.h + iy as usize) * g.w + ix as usize;
                                    let j = (c * k + ky) * k + kx;
                                    acc += conv.weight[(oc, j)] * x[xi];
                                    dw[oc + j * o] += dy[yi] * x[xi];
                                    dx[xi] += dy[yi] * conv.weight[(oc, j)];
                                }
                            }
                        }
                        y[yi] = acc;
                    }
                }
            }
        }
        (y, dw, db, dx)
    }

    #[test]
    fn chunked_conv_matches_direct_loops_across_many_chunks() {
        let (c, o, k, stride, pad, h, w, batch) = (3, 5, 3, 2, 1, 23, 21, 9);
        let conv = Conv2d::new(
            c,
            k,
            stride,
            pad,
            DMatrix::from_fn(o, c * k * k, |i, j| {
                ((i * 31 + j * 17) % 23) as f32 / 23.0 - 0.5
            }),
            DVector::from_fn(o, |i, _| i as f32 * 0.1 - 0.2),
            None,
        )
        .expect("valid conv");
        let g = ConvGeom::new(&conv, h, w);
        let x: Vec<f32> = (0..batch * c * h * w)
            .map(|i| ((i * 7919) % 101) as f32 / 101.0 - 0.5)
            .collect();
        let dy: Vec<f32> = (0..batch * o * g.positions())
            .map(|i| ((i * 104729) % 97) as f32 / 97.0 - 0.5)
            .collect();
        let (y0, dw0, db0, dx0) = naive(&conv, &g, batch, &x, &dy);
        for chunk in [1usize, 2, 4, 9] {
            let (p, kk) = (g.positions(), g.patch());
            let mut y = vec![0.0; batch * o * p];
            let mut cols = vec![0.0; batch * p * kk];
            conv_forward_chunked(
                ConvWeights::of(&conv),
                &g,
                batch,
                chunk,
                &x,
                &mut y,
                &mut cols,
            );
            let mut dw = vec![0.0; o * kk];
            let mut db = vec![0.0; o];
            let mut dx = vec![0.0; x.len()];
            let mut scratch = vec![0.0; batch.div_ceil(chunk) * (o * kk + o)];
            conv_backward_chunked(
                ConvWeights::of(&conv),
                &g,
                batch,
                chunk,
                &dy,
                &mut cols,
                &mut dw,
                &mut scratch,
                &mut db,
                Some((&mut dx, false)),
            );
            let close = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .all(|(u, v)| (u - v).abs() <= 1e-4 * (1.0 + v.abs()))
            };
            assert!(close(&y, &y0), "forward, chunk {chunk}");
            assert!(close(&dw, &dw0), "weight gradient, chunk {chunk}");
            assert!(close(&db, &db0), "bias gradient, chunk {chunk}");
            assert!(close(&dx, &dx0), "input gradient, chunk {chunk}");
        }
    }
}
