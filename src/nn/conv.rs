//! Convolution by im2col + GEMM over NCHW batches.
//!
//! One image's patches form the matrix `cols` of shape `[C*k*k, P]` (`P` output positions),
//! row-major: row `(c, ky, kx)` holds the input plane `c` shifted by the tap, so im2col and
//! col2im move whole image rows and every GEMM operand the kernel packs has a contiguous
//! side. `cols` lives in a per-thread scratch that stays in cache: backward rebuilds it from
//! the input instead of keeping `B` copies of it from forward, which would stream
//! `B*P*C*k*k` floats through memory twice per step. The batch is split into a fixed number
//! of chunks whatever the thread count; weight gradients are summed from per-chunk partials
//! in chunk order, so results do not depend on the threads.

use std::cell::RefCell;

use rayon::prelude::*;

use super::gemm::{gemm_serial, View, ViewMut};

/// The parameters a convolution call reads: filters as a column-major `[out, in*k*k]`
/// matrix and an optional bias (`None` for bias-free convolutions such as ResNet's).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvWeights<'a> {
    pub weight: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub out: usize,
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

    /// Rows of the im2col matrix.
    pub fn patch(&self) -> usize {
        self.c * self.k * self.k
    }

    /// The output columns `ox` whose tap `t` (a kernel row or column index) falls inside an
    /// input axis of length `n`: `0 ≤ ox·stride + t − pad < n`.
    fn inside(&self, t: usize, n: usize, out: usize) -> std::ops::Range<usize> {
        let s = self.stride;
        let lo = self.pad.saturating_sub(t).div_ceil(s);
        let hi = if n + self.pad > t {
            ((n + self.pad - t - 1) / s + 1).min(out)
        } else {
            0
        };
        lo.min(hi)..hi
    }
}

/// Fills one image's `[C*k*k, P]` block of `cols` (rows `ld` apart) from `x` (`[C, H, W]`):
/// row `(c, ky, kx)`, segment `oy` is input row `oy·stride + ky − pad` read from column
/// `kx − pad` on with the stride, zero where it falls in the padding.
fn im2col(g: &ConvGeom, x: &[f32], cols: &mut [f32], ld: usize) {
    let (k, p, s) = (g.k, g.positions(), g.stride);
    for ch in 0..g.c {
        let plane = &x[ch * g.h * g.w..][..g.h * g.w];
        for ky in 0..k {
            let rows = g.inside(ky, g.h, g.ho);
            for kx in 0..k {
                let row = &mut cols[((ch * k + ky) * k + kx) * ld..][..p];
                let xs = g.inside(kx, g.w, g.wo);
                if s == 1 && g.wo == g.w {
                    same_size_tap(g, plane, row, ky, kx);
                    continue;
                }
                for oy in 0..g.ho {
                    let dst = &mut row[oy * g.wo..][..g.wo];
                    if !rows.contains(&oy) || xs.is_empty() {
                        dst.fill(0.0);
                        continue;
                    }
                    let iy = oy * s + ky - g.pad;
                    let ix0 = xs.start * s + kx - g.pad;
                    let src = &plane[iy * g.w..][..g.w];
                    dst[..xs.start].fill(0.0);
                    dst[xs.end..].fill(0.0);
                    let mid = &mut dst[xs.clone()];
                    if s == 1 {
                        mid.copy_from_slice(&src[ix0..][..mid.len()]);
                    } else {
                        for (d, v) in mid.iter_mut().zip(src[ix0..].iter().step_by(s)) {
                            *d = *v;
                        }
                    }
                }
            }
        }
    }
}

/// One tap row of [`im2col`] for a stride-1 convolution that keeps the width (`2·pad = k − 1`):
/// the output rows inside the image are the plane shifted by a constant offset, so they are
/// one flat copy, after which the cells that wrapped into a neighbouring input row or fell
/// off the plane are zeroed.
fn same_size_tap(g: &ConvGeom, plane: &[f32], row: &mut [f32], ky: usize, kx: usize) {
    let (w, n) = (g.w, g.h * g.w);
    let rows = g.inside(ky, g.h, g.ho);
    let xs = g.inside(kx, g.w, g.wo);
    let (a, b) = (rows.start * w, rows.end * w);
    // cols[oy·w + ox] = plane[oy·w + ox + off] for every cell inside the image.
    let off = (ky * w + kx) as isize - (g.pad * w + g.pad) as isize;
    let lo = a.max((-off).max(0) as usize);
    let hi = b.min((n as isize - off).max(0) as usize).max(lo);
    row[..lo].fill(0.0);
    row[hi..].fill(0.0);
    row[lo..hi].copy_from_slice(&plane[(lo as isize + off) as usize..][..hi - lo]);
    if xs.len() < w {
        for r in row[a..b].chunks_exact_mut(w) {
            r[..xs.start].fill(0.0);
            r[xs.end..].fill(0.0);
        }
    }
}

/// Adds one image's patch gradients (a `[C*k*k, P]` block of `dcols`, rows `ld` apart) back
/// onto `dx` (`[C, H, W]`, zeroed first unless `accumulate`): the transpose of [`im2col`].
fn col2im(g: &ConvGeom, dcols: &[f32], dx: &mut [f32], accumulate: bool, ld: usize) {
    if !accumulate {
        dx.fill(0.0);
    }
    let (k, p, s) = (g.k, g.positions(), g.stride);
    for ch in 0..g.c {
        let plane = &mut dx[ch * g.h * g.w..][..g.h * g.w];
        for ky in 0..k {
            let rows = g.inside(ky, g.h, g.ho);
            for kx in 0..k {
                let row = &dcols[((ch * k + ky) * k + kx) * ld..][..p];
                let xs = g.inside(kx, g.w, g.wo);
                if xs.is_empty() {
                    continue;
                }
                for oy in rows.clone() {
                    let src = &row[oy * g.wo..][xs.clone()];
                    let iy = oy * s + ky - g.pad;
                    let ix0 = xs.start * s + kx - g.pad;
                    let dst = &mut plane[iy * g.w..][..g.w];
                    if s == 1 {
                        for (d, v) in dst[ix0..][..src.len()].iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (d, v) in dst[ix0..].iter_mut().step_by(s).zip(src) {
                            *d += v;
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
pub(crate) fn lane_sum(x: &[f32]) -> f32 {
    lane_sum_of(x, x, |v, _| v)
}

/// `Σ_i f(a_i, b_i)` in `LANES` interleaved partial sums, as [`lane_sum`].
#[inline]
pub(crate) fn lane_sum_of(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let n = a.len().min(b.len());
    let split = n - n % LANES;
    for (ca, cb) in a[..split]
        .chunks_exact(LANES)
        .zip(b[..split].chunks_exact(LANES))
    {
        for l in 0..LANES {
            acc[l] += f(ca[l], cb[l]);
        }
    }
    for (&u, &v) in a[split..n].iter().zip(&b[split..n]) {
        acc[0] += f(u, v);
    }
    acc.iter().sum()
}

/// Chunks a batch is split into: enough for two to four threads to balance, few enough that
/// the per-chunk weight-gradient partials stay small. Fixed, so that sums do not depend on
/// the thread count.
const CHUNKS: usize = 16;

/// Samples per chunk for `batch` samples.
fn chunk_samples(batch: usize) -> usize {
    batch.div_ceil(CHUNKS).max(1)
}

/// Number of chunks (of weight-gradient partials) for `batch` samples.
pub(crate) fn chunks(batch: usize) -> usize {
    batch.div_ceil(chunk_samples(batch))
}

thread_local! {
    /// One image's `cols`, per thread: im2col writes it and the GEMM packs it while it is
    /// still in cache.
    static COLS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch of `len` floats. `f` must not re-enter (it runs serial
/// GEMMs only, never rayon work that could land another task's `f` on this thread).
fn with_cols<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    COLS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() < len {
            c.resize(len, 0.0);
        }
        f(&mut c[..len])
    })
}

/// Images per product: their columns and outputs (`S*P*(C*k*k + O)` floats) stay near 1 MiB,
/// so im2col writes them and the GEMM packs them while they are in cache; in deep layers,
/// where `P` is a few dozen, one product over several images saves re-packing the filters and
/// re-reading the weight gradient for every image.
fn group_images(g: &ConvGeom, out: usize) -> usize {
    (GROUP_FLOATS / (g.positions() * (g.patch() + out)).max(1)).max(1)
}

const GROUP_FLOATS: usize = 1 << 18;

/// Forward convolution of `batch` images: `y = conv(x) + b` in NCHW.
///
/// Per group of `S` images, `out[o, (b, pos)] = Σ_j W[o, j] cols[j, (b, pos)]` is one
/// product, then copied to NCHW with the bias added.
pub(crate) fn conv_forward(
    conv: ConvWeights<'_>,
    g: &ConvGeom,
    batch: usize,
    x: &[f32],
    y: &mut [f32],
) {
    let (p, kk, o) = (g.positions(), g.patch(), conv.out);
    let in_len = g.c * g.h * g.w;
    let s = group_images(g, o);
    let w = conv.weight;
    y[..batch * o * p]
        .par_chunks_mut(s * o * p)
        .zip(x[..batch * in_len].par_chunks(s * in_len))
        .for_each(|(yc, xc)| {
            let sp = xc.len() / in_len * p;
            with_cols((kk + o) * sp, |buf| {
                let (cols, out) = buf.split_at_mut(kk * sp);
                for (b, xi) in xc.chunks(in_len).enumerate() {
                    im2col(g, xi, &mut cols[b * p..], sp);
                }
                gemm_serial(
                    o,
                    kk,
                    sp,
                    1.0,
                    View {
                        data: w,
                        rs: 1,
                        cs: o,
                    },
                    View {
                        data: cols,
                        rs: sp,
                        cs: 1,
                    },
                    0.0,
                    ViewMut {
                        data: out,
                        rs: sp,
                        cs: 1,
                    },
                );
                for (b, yb) in yc.chunks_mut(o * p).enumerate() {
                    for (ch, ych) in yb.chunks_mut(p).enumerate() {
                        let src = &out[ch * sp + b * p..][..p];
                        match conv.bias {
                            Some(bias) => {
                                for (d, v) in ych.iter_mut().zip(src) {
                                    *d = v + bias[ch];
                                }
                            }
                            None => ych.copy_from_slice(src),
                        }
                    }
                }
            });
        });
}

/// One chunk's `(x, (dy, partial gradients))` in the backward pass.
type ChunkArgs<'a> = (&'a [f32], (&'a [f32], &'a mut [f32]));

/// Backward convolution of the forward pass on `x`. `dy` is NCHW; writes weight and bias
/// gradients, and `dx` if given (overwritten, or added to when `accumulate`).
/// `scratch` (`chunks(batch) * (O*C*k*k + O)`) holds per-chunk partial weight and bias
/// gradients, summed in chunk order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_backward(
    conv: ConvWeights<'_>,
    g: &ConvGeom,
    batch: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    scratch: &mut [f32],
    db: &mut [f32],
    dx: Option<(&mut [f32], bool)>,
) {
    conv_backward_chunked(
        conv,
        g,
        batch,
        chunk_samples(batch),
        x,
        dy,
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
    x: &[f32],
    dy: &[f32],
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
    let body = |(xc, (yc, sc)): ChunkArgs<'_>, mut dxc: Option<&mut [f32]>| {
        let (dwc, dbc) = sc.split_at_mut(o * kk);
        dbc.fill(0.0);
        for yb in yc.chunks(o * p) {
            for (d, ych) in dbc.iter_mut().zip(yb.chunks(p)) {
                *d += lane_sum(ych);
            }
        }
        // Groups of images as in forward: `dys` is the group's `dy` as `[O, (b, pos)]`.
        let n_img = xc.len() / in_len;
        let group = group_images(g, o).min(n_img);
        with_cols((kk + o) * group * p, |buf| {
            let (cols_all, dys_all) = buf.split_at_mut(kk * group * p);
            for (gi, start) in (0..n_img).step_by(group).enumerate() {
                let n = group.min(n_img - start);
                let sp = n * p;
                let (cols, dys) = (&mut cols_all[..kk * sp], &mut dys_all[..o * sp]);
                for b in 0..n {
                    im2col(
                        g,
                        &xc[(start + b) * in_len..][..in_len],
                        &mut cols[b * p..],
                        sp,
                    );
                    let yb = &yc[(start + b) * o * p..][..o * p];
                    for (ch, ych) in yb.chunks(p).enumerate() {
                        dys[ch * sp + b * p..][..p].copy_from_slice(ych);
                    }
                }
                // dW_c[o, j] = Σ_(b, pos) dy[o, (b, pos)] cols[j, (b, pos)], column-major
                // [o, kk]; the first group overwrites (beta = 0), later ones accumulate.
                gemm_serial(
                    o,
                    sp,
                    kk,
                    1.0,
                    View {
                        data: dys,
                        rs: sp,
                        cs: 1,
                    },
                    View {
                        data: cols,
                        rs: 1,
                        cs: sp,
                    },
                    if gi == 0 { 0.0 } else { 1.0 },
                    ViewMut {
                        data: dwc,
                        rs: 1,
                        cs: o,
                    },
                );
                let Some(dxc) = dxc.as_deref_mut() else {
                    continue;
                };
                // dcols[j, (b, pos)] = Σ_o W[o, j] dy[o, (b, pos)], scattered back per image.
                gemm_serial(
                    kk,
                    o,
                    sp,
                    1.0,
                    View {
                        data: w,
                        rs: o,
                        cs: 1,
                    },
                    View {
                        data: dys,
                        rs: sp,
                        cs: 1,
                    },
                    0.0,
                    ViewMut {
                        data: cols,
                        rs: sp,
                        cs: 1,
                    },
                );
                for b in 0..n {
                    let dxi = &mut dxc[(start + b) * in_len..][..in_len];
                    col2im(g, &cols[b * p..], dxi, accumulate, sp);
                }
            }
        });
    };
    let main = x[..batch * in_len].par_chunks(s * in_len).zip(
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

#[cfg(test)]
mod tests {
    use nalgebra::{DMatrix, DVector};

    use super::*;

    /// Direct-loop convolution and its gradients, the reference for the chunked im2col path.
    #[allow(clippy::type_complexity)]
    fn naive(
        weight: &DMatrix<f32>,
        bias: &DVector<f32>,
        g: &ConvGeom,
        batch: usize,
        x: &[f32],
        dy: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let (o, k, p) = (weight.nrows(), g.k, g.positions());
        let mut y = vec![0.0; batch * o * p];
        let mut dw = vec![0.0; o * g.patch()];
        let mut db = vec![0.0; o];
        let mut dx = vec![0.0; batch * g.c * g.h * g.w];
        for b in 0..batch {
            for oc in 0..o {
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let yi = ((b * o + oc) * g.ho + oy) * g.wo + ox;
                        let mut acc = bias[oc];
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
                                    acc += weight[(oc, j)] * x[xi];
                                    dw[oc + j * o] += dy[yi] * x[xi];
                                    dx[xi] += dy[yi] * weight[(oc, j)];
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

    /// Every geometry class of the tap ranges: stride 1 and 2, padding wider than the
    /// kernel's reach, 1×1 kernels, and images narrower than the kernel plus padding.
    #[test]
    fn chunked_conv_matches_direct_loops_across_many_chunks() {
        for &(c, o, k, stride, pad, h, w, batch) in &[
            (3, 5, 3, 2, 1, 23, 21, 9),
            (2, 4, 3, 1, 1, 9, 11, 5),
            (3, 4, 1, 2, 0, 8, 7, 4),
            (2, 3, 3, 1, 2, 4, 5, 3),
            (1, 2, 5, 3, 1, 6, 3, 2),
            (2, 3, 5, 1, 2, 6, 7, 2),
            (16, 16, 3, 1, 1, 28, 28, 5),
        ] {
            let weight = DMatrix::from_fn(o, c * k * k, |i, j| {
                ((i * 31 + j * 17) % 23) as f32 / 23.0 - 0.5
            });
            let bias = DVector::from_fn(o, |i, _| i as f32 * 0.1 - 0.2);
            let weights = ConvWeights {
                weight: weight.as_slice(),
                bias: Some(bias.as_slice()),
                out: o,
            };
            let g = ConvGeom::of(c, h, w, k, stride, pad);
            assert!(g.positions() > 0);
            let x: Vec<f32> = (0..batch * c * h * w)
                .map(|i| ((i * 7919) % 101) as f32 / 101.0 - 0.5)
                .collect();
            let dy: Vec<f32> = (0..batch * o * g.positions())
                .map(|i| ((i * 104729) % 97) as f32 / 97.0 - 0.5)
                .collect();
            let (y0, dw0, db0, dx0) = naive(&weight, &bias, &g, batch, &x, &dy);
            let close = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .all(|(u, v)| (u - v).abs() <= 1e-4 * (1.0 + v.abs()))
            };
            let kk = g.patch();
            let mut y = vec![0.0; batch * o * g.positions()];
            conv_forward(weights, &g, batch, &x, &mut y);
            assert!(close(&y, &y0), "forward, {c} {k} {stride} {pad} {h} {w}");
            for chunk in [1usize, 2, 4, 9] {
                let mut dw = vec![0.0; o * kk];
                let mut db = vec![0.0; o];
                let mut dx = vec![0.0; x.len()];
                let mut scratch = vec![0.0; batch.div_ceil(chunk) * (o * kk + o)];
                conv_backward_chunked(
                    weights,
                    &g,
                    batch,
                    chunk,
                    &x,
                    &dy,
                    &mut dw,
                    &mut scratch,
                    &mut db,
                    Some((&mut dx, false)),
                );
                assert!(close(&dw, &dw0), "weight gradient, chunk {chunk}");
                assert!(close(&db, &db0), "bias gradient, chunk {chunk}");
                assert!(close(&dx, &dx0), "input gradient, chunk {chunk}");
            }
        }
    }
}
