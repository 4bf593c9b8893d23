//! `M = diag(a) + C` as a linear operator, and the power iterations of T2/T6.
//!
//! Every entry of `M` is non-negative (`a ≥ 0`, `C ≥ 0`), so `MᵀM` and `D⁻¹C` are
//! non-negative matrices. For a non-negative matrix `A` and any vector `x > 0` the
//! Collatz–Wielandt inequalities give `min_i (Ax)_i/x_i ≤ ρ(A) ≤ max_i (Ax)_i/x_i`; the power
//! iterations below therefore return rigorous two-sided bounds, not only an estimate.

use nalgebra::{DMatrix, DVectorView, DVectorViewMut};
use rayon::prelude::*;

use crate::game::{Competition, CsrMatrix, PruningGame};

/// Entries of a power-iteration vector are kept at least this large (relative to its
/// maximum, which is normalised to one) so that the Collatz–Wielandt ratios stay defined on
/// reducible matrices; any positive vector gives valid bounds.
const POSITIVE_FLOOR: f64 = 1e-300;

/// `M x` and `Mᵀ x` for a pruning game, dense or sparse.
pub(crate) struct MOperator<'a> {
    game: &'a PruningGame,
    transpose: Option<CsrMatrix>,
}

impl<'a> MOperator<'a> {
    /// The operator; a sparse game's transpose is built once (O(nnz) memory) so that `Mᵀx`
    /// is a row-parallel product as well.
    pub(crate) fn new(game: &'a PruningGame) -> Self {
        let transpose = match game.competition() {
            Competition::Sparse(c) => Some(c.transpose()),
            _ => None,
        };
        MOperator { game, transpose }
    }

    /// `out = M x`.
    pub(crate) fn mul(&self, x: &[f64], out: &mut [f64]) {
        self.game.competition().mul_vec(x, out);
        self.add_diagonal(x, out);
    }

    /// `out = Mᵀ x`.
    pub(crate) fn mul_transpose(&self, x: &[f64], out: &mut [f64]) {
        match (self.game.competition(), &self.transpose) {
            (Competition::Dense(m), _) => {
                let xv = DVectorView::from_slice(x, x.len());
                let mut y = DVectorViewMut::from_slice(out, x.len());
                y.gemv_tr(1.0, m, &xv, 0.0);
            }
            (Competition::Sparse(_), Some(t)) => t.mul_vec(x, out),
            _ => self.game.competition().mul_vec(x, out),
        }
        self.add_diagonal(x, out);
    }

    fn add_diagonal(&self, x: &[f64], out: &mut [f64]) {
        let a = self.game.self_cost().as_slice();
        out.par_iter_mut()
            .zip(x.par_iter())
            .zip(a.par_iter())
            .for_each(|((o, &xi), &ai)| *o += ai * xi);
    }

    /// Row sums `Σ_j C_ij` and column sums `Σ_j C_ji` of the competition matrix.
    pub(crate) fn competition_sums(&self) -> (Vec<f64>, Vec<f64>) {
        let n = self.game.self_cost().len();
        match (self.game.competition(), &self.transpose) {
            (Competition::None, _) => (vec![0.0; n], vec![0.0; n]),
            (Competition::Sparse(c), Some(t)) => (c.row_sums(), t.row_sums()),
            (competition, _) => {
                let dense = competition.to_dense(n);
                let rows = dense.row_iter().map(|r| r.sum()).collect();
                let cols = dense.column_iter().map(|c| c.sum()).collect();
                (rows, cols)
            }
        }
    }

    /// The dense matrix `M` (for small games only).
    pub(crate) fn to_dense(&self) -> DMatrix<f64> {
        let n = self.game.self_cost().len();
        let mut m = self.game.competition().to_dense(n);
        for i in 0..n {
            m[(i, i)] = self.game.self_cost()[i];
        }
        m
    }
}

/// Two-sided bounds on the spectral radius of a non-negative operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RadiusBounds {
    /// Collatz–Wielandt lower bound.
    pub lower: f64,
    /// Collatz–Wielandt upper bound.
    pub upper: f64,
    /// Iterations used.
    pub iterations: usize,
}

/// Power iteration on the non-negative operator `apply` (which writes `A x` into its second
/// argument), shifted by the identity so that a periodic irreducible matrix still converges.
/// Returns Collatz–Wielandt bounds on `ρ(A)`; stops when they agree to `relative_tolerance`.
pub(crate) fn perron_bounds(
    n: usize,
    apply: impl Fn(&[f64], &mut [f64]),
    max_iterations: usize,
    relative_tolerance: f64,
) -> RadiusBounds {
    let mut x = vec![1.0; n];
    let mut y = vec![0.0; n];
    let mut best = RadiusBounds {
        lower: 0.0,
        upper: f64::INFINITY,
        iterations: 0,
    };
    for iteration in 1..=max_iterations.max(1) {
        apply(&x, &mut y);
        // Collatz–Wielandt ratios of A at the current positive x.
        let (lower, upper) = x
            .par_iter()
            .zip(y.par_iter())
            .map(|(&xi, &yi)| {
                let r = yi / xi;
                (r, r)
            })
            .reduce(
                || (f64::INFINITY, f64::NEG_INFINITY),
                |a, b| (a.0.min(b.0), a.1.max(b.1)),
            );
        best.lower = best.lower.max(lower.max(0.0));
        best.upper = best.upper.min(upper);
        best.iterations = iteration;
        if !best.upper.is_finite() || best.upper - best.lower <= relative_tolerance * best.upper {
            break;
        }
        // x ← (A + I) x, normalised to max 1, floored to stay positive.
        let scale = x
            .par_iter()
            .zip(y.par_iter())
            .map(|(&xi, &yi)| xi + yi)
            .reduce(|| 0.0, f64::max);
        if !(scale.is_finite() && scale > 0.0) {
            break;
        }
        x.par_iter_mut()
            .zip(y.par_iter())
            .for_each(|(xi, &yi)| *xi = ((*xi + yi) / scale).max(POSITIVE_FLOOR));
    }
    best
}

/// Bounds on `‖M‖₂ = sqrt(ρ(MᵀM))` from a power iteration on `MᵀM`, plus the Rayleigh
/// estimate `‖Mx‖/‖x‖` (a lower bound that converges to `‖M‖₂`).
pub(crate) fn spectral_norm_bounds(
    op: &MOperator<'_>,
    n: usize,
    max_iterations: usize,
    relative_tolerance: f64,
) -> RadiusBounds {
    let scratch = std::sync::Mutex::new(vec![0.0; n]);
    let bounds = perron_bounds(
        n,
        |x, out| {
            let mut mx = scratch.lock().unwrap_or_else(|e| e.into_inner());
            op.mul(x, &mut mx);
            op.mul_transpose(&mx, out);
        },
        max_iterations,
        relative_tolerance,
    );
    RadiusBounds {
        lower: bounds.lower.sqrt(),
        upper: bounds.upper.sqrt(),
        iterations: bounds.iterations,
    }
}
