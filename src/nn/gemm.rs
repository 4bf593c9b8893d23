//! A bounds-checked, rayon-parallel wrapper around `matrixmultiply::sgemm`.
//!
//! Every product in the backend goes through [`gemm`]: strides express transposes and
//! column-major nalgebra storage without copies. Large products are split into independent
//! blocks of `C` (rows when `C` is row-major, columns when column-major) that run on rayon's
//! pool, so the GEMMs and the element-wise loops share one set of threads instead of two
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
    let split_rows = c.rs >= c.cs;
    let (len, min_piece) = if split_rows { (m, 16) } else { (n, 8) };
    if m * n * k < PAR_MACS || len < 2 * min_piece || rayon::current_num_threads() < 2 {
        return gemm_serial(m, k, n, alpha, a, b, beta, c);
    }
    let half = (len / 2).div_ceil(min_piece) * min_piece;
    if split_rows {
        let (c1, c2) = c.data.split_at_mut(half * c.rs);
        let a2 = View {
            data: &a.data[half * a.rs..],
            ..a
        };
        rayon::join(
            || {
                gemm(
                    half,
                    k,
                    n,
                    alpha,
                    a,
                    b,
                    beta,
                    ViewMut {
                        data: c1,
                        rs: c.rs,
                        cs: c.cs,
                    },
                )
            },
            || {
                gemm(
                    m - half,
                    k,
                    n,
                    alpha,
                    a2,
                    b,
                    beta,
                    ViewMut {
                        data: c2,
                        rs: c.rs,
                        cs: c.cs,
                    },
                )
            },
        );
    } else {
        let (c1, c2) = c.data.split_at_mut(half * c.cs);
        let b2 = View {
            data: &b.data[half * b.cs..],
            ..b
        };
        rayon::join(
            || {
                gemm(
                    m,
                    k,
                    half,
                    alpha,
                    a,
                    b,
                    beta,
                    ViewMut {
                        data: c1,
                        rs: c.rs,
                        cs: c.cs,
                    },
                )
            },
            || {
                gemm(
                    m,
                    k,
                    n - half,
                    alpha,
                    a,
                    b2,
                    beta,
                    ViewMut {
                        data: c2,
                        rs: c.rs,
                        cs: c.cs,
                    },
                )
            },
        );
    }
}

/// Single-threaded `C = alpha * A B + beta * C` (bounds-checked).
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
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        m * n == 0 || last_index(m, n, c.rs, c.cs) < c.data.len(),
        "gemm: C view too short"
    );
    if k == 0 {
        for r in 0..m {
            for col in 0..n {
                let x = &mut c.data[r * c.rs + col * c.cs];
                *x *= beta;
            }
        }
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
    // SAFETY: the asserts above guarantee every index the kernel touches is inside the
    // slices; `c` is a unique borrow so it cannot alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.data.as_mut_ptr(),
            c.rs as isize,
            c.cs as isize,
        );
    }
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
}
