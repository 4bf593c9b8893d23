//! A bounds-checked, rayon-parallel wrapper around `matrixmultiply::sgemm`.
//!
//! Every product in the backend goes through [`gemm`]: strides express transposes and
//! column-major nalgebra storage without copies. Large products are split into one block of `C`
//! per thread (rows or columns, whichever shares the smaller operand) on rayon's pool, so the GEMMs and the element-wise loops share one set of threads instead of two
//! pools competing for the cores.

/// A strided read-only matrix view: element `(r, c)` lives at `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

/// A strided mutable matrix view.
pub(crate) struct ViewMut<'a> {
    pub data: &'a mut [f32],
    pub rs: usize,
    pub cs: usize,
}

fn last_index(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs
    }
}

/// Products below this many multiply-adds run on one thread.
const PAR_MACS: usize = 1 << 18;

/// A matrix operand as the kernel sees it: a base pointer and two strides. Copied into rayon
/// tasks, which is sound because every task reads `A`/`B` only and writes a block of `C`
/// disjoint from every other task's block.
#[derive(Clone, Copy)]
struct Raw {
    ptr: *mut f32,
    rs: usize,
    cs: usize,
}

// SAFETY: see `Raw`: the tasks of one product share read-only operands and write disjoint
// blocks of the output; the caller's borrows outlive the `rayon::join` that uses them.
unsafe impl Send for Raw {}
unsafe impl Sync for Raw {}

impl Raw {
    /// The operand starting at element `(r, c)`.
    fn at(self, r: usize, c: usize) -> Raw {
        // SAFETY (of the callers): offsets stay inside the view bounds-checked in `gemm`.
        Raw {
            ptr: self.ptr.wrapping_add(r * self.rs + c * self.cs),
            ..self
        }
    }
}

/// `C = alpha * A B + beta * C` with `A` of shape `m × k`, `B` of shape `k × n`, split over
/// rayon threads for large products.
///
/// Panics if a view is too short for its shape: views are built by this crate from buffers it
/// sized itself, so a short view is a bug, never bad user input.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: View<'_>,
    b: View<'_>,
    beta: f32,
    c: ViewMut<'_>,
) {
    let pieces = if m * n * k < PAR_MACS {
        1
    } else {
        rayon::current_num_threads()
    };
    product(m, k, n, alpha, a, b, beta, c, pieces);
}

/// Single-threaded `C = alpha * A B + beta * C` (bounds-checked), for callers that are
/// already parallel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_serial(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: View<'_>,
    b: View<'_>,
    beta: f32,
    c: ViewMut<'_>,
) {
    product(m, k, n, alpha, a, b, beta, c, 1);
}

/// Checks the views, then computes the product in `pieces` blocks.
#[allow(clippy::too_many_arguments)]
fn product(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: View<'_>,
    b: View<'_>,
    beta: f32,
    c: ViewMut<'_>,
    pieces: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    check_views(m, k, n, &a, &b, &c);
    if k == 0 {
        for r in 0..m {
            for col in 0..n {
                c.data[r * c.rs + col * c.cs] *= beta;
            }
        }
        return;
    }
    let raw = |data: *const f32, rs, cs| Raw {
        ptr: data as *mut f32,
        rs,
        cs,
    };
    // SAFETY: `check_views` proved every element of the three shapes lies inside its slice;
    // `c` is a unique borrow, so the output cannot alias the inputs.
    unsafe {
        gemm_split(
            m,
            k,
            n,
            alpha,
            raw(a.data.as_ptr(), a.rs, a.cs),
            raw(b.data.as_ptr(), b.rs, b.cs),
            beta,
            raw(c.data.as_mut_ptr(), c.rs, c.cs),
            pieces,
        )
    }
}

/// Splits `C` into `pieces` blocks, one per thread, through nested `rayon::join`.
///
/// The kernel packs both operands of every call, so every block re-packs the operand it
/// shares with the others: splitting the rows of `C` re-packs all of `B` (`k·n`), splitting
/// its columns re-packs `A` (`m·k`). Hence one block per thread, never more, and the split
/// that shares the smaller operand. Splitting down to a size threshold instead re-packed the
/// shared operand dozens of times and made two threads slower than one at batch 128.
///
/// # Safety
/// The three operands must be valid for their shapes and `C` must not alias `A` or `B`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_split(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: Raw,
    b: Raw,
    beta: f32,
    c: Raw,
    pieces: usize,
) {
    const MIN_ROWS: usize = 16;
    const MIN_COLS: usize = 16;
    let split_rows = n <= m;
    let (len, min_piece) = if split_rows {
        (m, MIN_ROWS)
    } else {
        (n, MIN_COLS)
    };
    if pieces < 2 || m * n * k < PAR_MACS || len < 2 * min_piece {
        // SAFETY: forwarded from the caller.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                alpha,
                a.ptr,
                a.rs as isize,
                a.cs as isize,
                b.ptr,
                b.rs as isize,
                b.cs as isize,
                beta,
                c.ptr,
                c.rs as isize,
                c.cs as isize,
            )
        };
        return;
    }
    let first = pieces / 2;
    let half = (len * first / pieces).div_ceil(min_piece) * min_piece;
    let rest = pieces - first;
    // SAFETY: both halves are sub-blocks of the caller's operands, and the two blocks of `C`
    // are disjoint.
    if split_rows {
        rayon::join(
            || unsafe { gemm_split(half, k, n, alpha, a, b, beta, c, first) },
            || unsafe {
                gemm_split(
                    m - half,
                    k,
                    n,
                    alpha,
                    a.at(half, 0),
                    b,
                    beta,
                    c.at(half, 0),
                    rest,
                )
            },
        );
    } else {
        rayon::join(
            || unsafe { gemm_split(m, k, half, alpha, a, b, beta, c, first) },
            || unsafe {
                gemm_split(
                    m,
                    k,
                    n - half,
                    alpha,
                    a,
                    b.at(0, half),
                    beta,
                    c.at(0, half),
                    rest,
                )
            },
        );
    }
}

/// Panics unless every element of the three shapes lies inside its view.
fn check_views(m: usize, k: usize, n: usize, a: &View<'_>, b: &View<'_>, c: &ViewMut<'_>) {
    assert!(
        m * n == 0 || last_index(m, n, c.rs, c.cs) < c.data.len(),
        "gemm: C view too short"
    );
    if m * n * k == 0 {
        return;
    }
    assert!(
        last_index(m, k, a.rs, a.cs) < a.data.len(),
        "gemm: A view too short"
    );
    assert!(
        last_index(k, n, b.rs, b.cs) < b.data.len(),
        "gemm: B view too short"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_matches_naive_with_transposed_strides() {
        let (m, k, n) = (3, 4, 2);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 1.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| 1.0 - i as f32 * 0.25).collect();
        // A row-major, B column-major.
        let mut c = vec![1.0f32; m * n];
        gemm(
            m,
            k,
            n,
            2.0,
            View {
                data: &a,
                rs: k,
                cs: 1,
            },
            View {
                data: &b,
                rs: 1,
                cs: k,
            },
            0.5,
            ViewMut {
                data: &mut c,
                rs: n,
                cs: 1,
            },
        );
        for r in 0..m {
            for col in 0..n {
                let mut s = 0.0;
                for t in 0..k {
                    s += a[r * k + t] * b[t + col * k];
                }
                let want = 2.0 * s + 0.5;
                assert!((c[r * n + col] - want).abs() < 1e-5);
            }
        }
    }

    /// Every layout of `A`, `B` and `C`, at shapes large enough to be split (rows or columns
    /// first, with ragged last pieces), on a 3-thread pool so the splits really run: the
    /// parallel product equals a naive f64 sum to f32 rounding (`k ≤ 160` terms of magnitude
    /// ≤ 1: an absolute 1e-3 is over 100× the accumulated rounding error).
    #[test]
    fn split_products_match_naive_in_every_layout() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for &(m, k, n) in &[(150, 70, 40), (40, 160, 150), (97, 131, 89)] {
            assert!(m * k * n >= PAR_MACS);
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32) / 101.0 - 0.5)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 53 % 97) as f32) / 97.0 - 0.5)
                .collect();
            for layout in 0..8 {
                let (a_rm, b_rm, c_rm) = (layout & 1 == 1, layout & 2 == 2, layout & 4 == 4);
                let av = if a_rm { (k, 1) } else { (1, m) };
                let bv = if b_rm { (n, 1) } else { (1, k) };
                let cv = if c_rm { (n, 1) } else { (1, m) };
                let mut c = vec![0.25f32; m * n];
                pool.install(|| {
                    gemm(
                        m,
                        k,
                        n,
                        1.5,
                        View {
                            data: &a,
                            rs: av.0,
                            cs: av.1,
                        },
                        View {
                            data: &b,
                            rs: bv.0,
                            cs: bv.1,
                        },
                        2.0,
                        ViewMut {
                            data: &mut c,
                            rs: cv.0,
                            cs: cv.1,
                        },
                    )
                });
                for r in 0..m {
                    for col in 0..n {
                        let dot: f64 = (0..k)
                            .map(|t| {
                                a[r * av.0 + t * av.1] as f64 * b[t * bv.0 + col * bv.1] as f64
                            })
                            .sum();
                        let want = 1.5 * dot + 0.5;
                        let got = c[r * cv.0 + col * cv.1] as f64;
                        assert!(
                            (got - want).abs() < 1e-3,
                            "layout {layout} ({m},{k},{n}) at ({r},{col}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
