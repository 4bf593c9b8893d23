//! Uniqueness of the equilibrium (T2) and the convergence constants of T6.
//!
//! Every test here is *sufficient*: when it passes, the equilibrium is unique (or the
//! iteration converges); when it fails nothing follows — a game that fails all of them may
//! still have a unique equilibrium. Proofs in `proofs/T2-uniqueness.md` and
//! `proofs/T6-convergence.md`.

use nalgebra::SymmetricEigen;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::operator::{perron_bounds, spectral_norm_bounds, MOperator};
use crate::game::PruningGame;

/// The sufficient condition that decided uniqueness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UniquenessTest {
    /// `λ_min((M+Mᵀ)/2) > 0` by a dense symmetric eigendecomposition: `F` strongly monotone.
    SymmetricPartEigenvalue,
    /// Gershgorin: `a_i > Σ_j (C_ij + C_ji)/2` for all `i`, so `(M+Mᵀ)/2 ≻ 0` (strict
    /// diagonal dominance of the symmetric part).
    SymmetricPartGershgorin,
    /// `a_i > Σ_j C_ij` for all `i`: `M` is strictly row diagonally dominant with a positive
    /// diagonal, hence a P-matrix, and a box LCP with a P-matrix has one solution.
    RowDiagonalDominance,
    /// `ρ(D⁻¹C) < 1` (rigorous Collatz–Wielandt bound): the Jacobi best-response map is a
    /// contraction in a weighted max norm, so it has one fixed point.
    JacobiContraction,
}

/// Uniqueness verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Uniqueness {
    /// The equilibrium is unique, proved by `by`.
    Unique {
        /// The first sufficient test that passed.
        by: UniquenessTest,
    },
    /// No sufficient test passed. This does not show that several equilibria exist.
    Unknown,
}

/// Uniqueness verdict with every quantity that was computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UniquenessReport {
    /// The verdict.
    pub verdict: Uniqueness,
    /// `λ_min((M+Mᵀ)/2)` when the game was small enough for a dense eigendecomposition.
    pub min_eigenvalue: Option<f64>,
    /// Gershgorin lower bound `min_i (a_i − Σ_j (C_ij + C_ji)/2)` on that eigenvalue.
    pub gershgorin_lower: f64,
    /// `min_i (a_i − Σ_j C_ij)`: positive means strict row diagonal dominance of `M`.
    pub row_dominance_margin: f64,
    /// Rigorous upper bound on `ρ(D⁻¹C)` (`None` if some `a_i = 0` with competitors).
    pub jacobi_radius_upper: Option<f64>,
    /// Why `Unknown` is not a proof of non-uniqueness.
    pub note: String,
}

/// Constants of T6 for the solvers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvergenceConstants {
    /// Power-iteration estimate of `L = ‖M‖₂` (a lower bound converging to it).
    pub lipschitz_estimate: f64,
    /// A rigorous upper bound on `‖M‖₂`: the smaller of the Collatz–Wielandt bound on
    /// `ρ(MᵀM)` and `sqrt(‖M‖₁ ‖M‖_∞)`. Step sizes below use it.
    pub lipschitz_upper: f64,
    /// Strong-monotonicity modulus `μ` (a lower bound on `λ_min((M+Mᵀ)/2)`): the eigenvalue
    /// when computed, else the Gershgorin bound; `None` when it is not positive.
    pub strong_monotonicity: Option<f64>,
    /// Projected-gradient steps `τ < 2μ/L²` converge linearly (`None` without `μ > 0`).
    pub projection_step_bound: Option<f64>,
    /// A safe projected-gradient step, `μ/L²` (the fastest contraction of the proof).
    pub projection_step: Option<f64>,
    /// Extragradient converges for `τ < 1/L` (monotone `F`).
    pub extragradient_step_bound: f64,
    /// A safe extragradient step, `0.9/L`.
    pub extragradient_step: f64,
    /// Estimate of `ρ(D⁻¹C)` (Perron root; `C ≥ 0`), `None` if some `a_i = 0` with competitors.
    pub jacobi_radius: Option<f64>,
    /// Rigorous upper bound on `ρ(D⁻¹C)`; Jacobi best response converges if it is `< 1`.
    pub jacobi_radius_upper: Option<f64>,
    /// `‖D⁻¹C‖_∞ = max_i Σ_j C_ij / a_i`, a cruder upper bound on `ρ(D⁻¹C)`.
    pub jacobi_row_sum_bound: Option<f64>,
    /// Power iterations used (norm, Jacobi radius).
    pub power_iterations: (usize, usize),
}

/// Options of the spectral computations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpectralOptions {
    /// Largest `N` for a dense symmetric eigendecomposition (`O(N³)` time, `O(N²)` memory).
    pub dense_eigen_limit: usize,
    /// Power-iteration budget.
    pub power_iterations: usize,
    /// Power iteration stops when its lower and upper bounds agree to this relative accuracy.
    pub power_tolerance: f64,
}

impl Default for SpectralOptions {
    fn default() -> Self {
        SpectralOptions {
            // About a second for the eigendecomposition on one core.
            dense_eigen_limit: 1000,
            power_iterations: 200,
            // Step sizes need the constants to a few digits only.
            power_tolerance: 1e-6,
        }
    }
}

/// An eigenvalue is treated as positive only above this multiple of `‖S‖_∞`: the dense
/// eigensolver is backward stable, so its eigenvalues carry errors of order `ε ‖S‖`.
const EIGEN_RELATIVE_SLACK: f64 = 1e-12;

/// `λ_min((M+Mᵀ)/2)` by a dense symmetric eigendecomposition, with the slack subtracted so
/// that a positive value is a proof.
fn min_symmetric_eigenvalue(op: &MOperator<'_>) -> f64 {
    let m = op.to_dense();
    let s = (&m + m.transpose()) * 0.5;
    let norm = s
        .row_iter()
        .map(|r| r.iter().map(|v| v.abs()).sum::<f64>())
        .fold(0.0, f64::max);
    let eigen = SymmetricEigen::new(s);
    eigen
        .eigenvalues
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        - EIGEN_RELATIVE_SLACK * norm
}

/// Jacobi matrix `D⁻¹C` bounds, or `None` when some player with competitors has `a_i = 0`.
fn jacobi_bounds(
    game: &PruningGame,
    row_sums: &[f64],
    options: &SpectralOptions,
) -> Option<(f64, f64, f64, usize)> {
    let a = game.self_cost();
    if (0..a.len()).any(|i| a[i] <= 0.0 && row_sums[i] > 0.0) {
        return None;
    }
    let inverse: Vec<f64> = a
        .iter()
        .map(|&v| if v > 0.0 { 1.0 / v } else { 0.0 })
        .collect();
    let row_bound = row_sums
        .iter()
        .zip(&inverse)
        .map(|(r, d)| r * d)
        .fold(0.0, f64::max);
    let bounds = perron_bounds(
        a.len(),
        |x, out| {
            game.competition().mul_vec(x, out);
            out.par_iter_mut()
                .zip(inverse.par_iter())
                .for_each(|(o, d)| *o *= d);
        },
        options.power_iterations,
        options.power_tolerance,
    );
    let upper = bounds.upper.min(row_bound);
    let estimate = 0.5 * (bounds.lower + upper);
    Some((estimate, upper, row_bound, bounds.iterations))
}

/// Decides uniqueness (T2) and computes the T6 constants in one pass over the game.
pub fn uniqueness_and_convergence(
    game: &PruningGame,
    options: &SpectralOptions,
) -> (UniquenessReport, ConvergenceConstants) {
    let n = game.net_benefit().len();
    let op = MOperator::new(game);
    let a = game.self_cost();
    let (rows, cols) = op.competition_sums();
    let gershgorin_lower = (0..n)
        .map(|i| a[i] - 0.5 * (rows[i] + cols[i]))
        .fold(f64::INFINITY, f64::min);
    let row_dominance_margin = (0..n).map(|i| a[i] - rows[i]).fold(f64::INFINITY, f64::min);
    let min_eigenvalue = (n <= options.dense_eigen_limit).then(|| min_symmetric_eigenvalue(&op));
    let jacobi = jacobi_bounds(game, &rows, options);

    let verdict = if min_eigenvalue.is_some_and(|l| l > 0.0) {
        Uniqueness::Unique {
            by: UniquenessTest::SymmetricPartEigenvalue,
        }
    } else if gershgorin_lower > 0.0 {
        Uniqueness::Unique {
            by: UniquenessTest::SymmetricPartGershgorin,
        }
    } else if row_dominance_margin > 0.0 {
        Uniqueness::Unique {
            by: UniquenessTest::RowDiagonalDominance,
        }
    } else if a.iter().all(|&v| v > 0.0) && jacobi.is_some_and(|j| j.1 < 1.0) {
        // With some a_i = 0 (and no competitors) ρ can be < 1 while player i is indifferent
        // (q_i = 0): the best-response map is then not single-valued and nothing is unique.
        Uniqueness::Unique {
            by: UniquenessTest::JacobiContraction,
        }
    } else {
        Uniqueness::Unknown
    };
    let note = match verdict {
        Uniqueness::Unique { .. } => "a sufficient condition holds: exactly one equilibrium",
        Uniqueness::Unknown => {
            "no sufficient condition holds; this does not prove several equilibria exist"
        }
    }
    .to_string();

    // T6 constants.
    let (abs_row_max, abs_col_max) = (0..n).fold((0.0_f64, 0.0_f64), |(r, c), i| {
        (r.max(a[i] + rows[i]), c.max(a[i] + cols[i]))
    });
    let norm = spectral_norm_bounds(&op, n, options.power_iterations, options.power_tolerance);
    let lipschitz_upper = norm.upper.min(abs_row_max.sqrt() * abs_col_max.sqrt());
    let lipschitz_estimate = norm.lower.min(lipschitz_upper);
    let mu = match min_eigenvalue {
        Some(l) => l,
        None => gershgorin_lower,
    };
    let strong_monotonicity = (mu > 0.0).then_some(mu);
    let positive_l = lipschitz_upper > 0.0;
    let projection_step_bound = strong_monotonicity
        .filter(|_| positive_l)
        .map(|mu| 2.0 * mu / (lipschitz_upper * lipschitz_upper));
    let projection_step = projection_step_bound.map(|t| 0.5 * t);
    let extragradient_step_bound = if positive_l {
        1.0 / lipschitz_upper
    } else {
        f64::INFINITY
    };
    let constants = ConvergenceConstants {
        lipschitz_estimate,
        lipschitz_upper,
        strong_monotonicity,
        projection_step_bound,
        projection_step,
        extragradient_step_bound,
        // 0.9 keeps a margin below the bound that the proof needs to be strict.
        extragradient_step: 0.9 * extragradient_step_bound,
        jacobi_radius: jacobi.map(|j| j.0),
        jacobi_radius_upper: jacobi.map(|j| j.1),
        jacobi_row_sum_bound: jacobi.map(|j| j.2),
        power_iterations: (norm.iterations, jacobi.map_or(0, |j| j.3)),
    };
    let report = UniquenessReport {
        verdict,
        min_eigenvalue,
        gershgorin_lower,
        row_dominance_margin,
        jacobi_radius_upper: constants.jacobi_radius_upper,
        note,
    };
    (report, constants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Competition;
    use nalgebra::{dmatrix, dvector, DMatrix, DVector};

    fn game(a: DVector<f64>, c: DMatrix<f64>) -> PruningGame {
        let n = a.len();
        PruningGame::with_uniform_cost(
            DVector::from_element(n, 1.0),
            a,
            0.0,
            Competition::dense(c).unwrap(),
        )
        .unwrap()
    }

    fn sparse(game: &PruningGame) -> PruningGame {
        let n = game.self_cost().len();
        let entries: Vec<_> = game.competition().triplets().collect();
        PruningGame::new(
            game.benefit().clone(),
            game.self_cost().clone(),
            game.participation_cost().clone(),
            game.upper_bounds().clone(),
            Competition::sparse(n, &entries).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn two_by_two_constants_by_hand() {
        // M = [[2, 1], [1, 2]]: eigenvalues 1 and 3, so μ = 1, L = 3, D⁻¹C has ρ = 1/2.
        let g = game(dvector![2.0, 2.0], dmatrix![0.0, 1.0; 1.0, 0.0]);
        let (u, c) = uniqueness_and_convergence(&g, &SpectralOptions::default());
        assert_eq!(
            u.verdict,
            Uniqueness::Unique {
                by: UniquenessTest::SymmetricPartEigenvalue
            }
        );
        assert!((u.min_eigenvalue.unwrap() - 1.0).abs() < 1e-9);
        assert!((c.lipschitz_estimate - 3.0).abs() < 1e-5);
        assert!(c.lipschitz_upper >= 3.0 - 1e-12 && c.lipschitz_upper < 3.0 + 1e-5);
        assert!((c.jacobi_radius.unwrap() - 0.5).abs() < 1e-5);
        assert!(c.jacobi_radius_upper.unwrap() >= 0.5 - 1e-12);
        assert!((c.jacobi_row_sum_bound.unwrap() - 0.5).abs() < 1e-15);
        let tau = c.projection_step_bound.unwrap();
        assert!(tau <= 2.0 / 9.0 + 1e-12 && tau > 2.0 / 9.0 - 1e-5);
    }

    #[test]
    fn sparse_uses_gershgorin_and_matches_dense_constants() {
        let g = game(
            dvector![2.0, 2.0, 2.0],
            dmatrix![0.0, 1.0, 0.0; 0.0, 0.0, 1.0; 1.0, 0.0, 0.0],
        );
        let s = sparse(&g);
        let options = SpectralOptions {
            dense_eigen_limit: 0,
            ..Default::default()
        };
        let (u, c) = uniqueness_and_convergence(&s, &options);
        assert_eq!(u.min_eigenvalue, None);
        assert_eq!(
            u.verdict,
            Uniqueness::Unique {
                by: UniquenessTest::SymmetricPartGershgorin
            }
        );
        // Circulant M = 2I + P: ‖M‖₂ = 3, ρ(D⁻¹C) = 1/2 (periodic: needs the shift).
        assert!((c.lipschitz_estimate - 3.0).abs() < 1e-5);
        assert!((c.jacobi_radius.unwrap() - 0.5).abs() < 1e-5);
        let (_, dense) = uniqueness_and_convergence(&g, &options);
        assert!((dense.lipschitz_upper - c.lipschitz_upper).abs() < 1e-9);
    }

    #[test]
    fn strongly_competing_pair_is_unknown() {
        // M = [[1, 2], [2, 1]] is indefinite: two pure equilibria (1, 0) and (0, 1) exist.
        let g = game(dvector![1.0, 1.0], dmatrix![0.0, 2.0; 2.0, 0.0]);
        let (u, c) = uniqueness_and_convergence(&g, &SpectralOptions::default());
        assert_eq!(u.verdict, Uniqueness::Unknown);
        assert!(u.note.contains("does not prove"));
        assert!(u.min_eigenvalue.unwrap() < 0.0);
        assert_eq!(c.strong_monotonicity, None);
        assert_eq!(c.projection_step_bound, None);
        assert!(c.jacobi_radius_upper.unwrap() >= 2.0 - 1e-9);
    }

    #[test]
    fn row_dominance_without_symmetric_dominance() {
        // Three players push 0.8 each on player 3: rows sum to 0.8 < a = 1 (row dominant),
        // but column 3 sums to 2.4, so Gershgorin on the symmetric part fails for player 3.
        let mut c = DMatrix::zeros(4, 4);
        for i in 0..3 {
            c[(i, 3)] = 0.8;
        }
        let g = game(DVector::from_element(4, 1.0), c);
        let options = SpectralOptions {
            dense_eigen_limit: 0,
            ..Default::default()
        };
        let (u, _) = uniqueness_and_convergence(&g, &options);
        assert!((u.gershgorin_lower + 0.2).abs() < 1e-12);
        assert!((u.row_dominance_margin - 0.2).abs() < 1e-12);
        assert_eq!(
            u.verdict,
            Uniqueness::Unique {
                by: UniquenessTest::RowDiagonalDominance
            }
        );
    }

    #[test]
    fn indifferent_player_is_not_declared_unique() {
        // Player 0 has a = 0, q = 0 and no competitors: every s_0 ∈ [0, 1] is an equilibrium
        // strategy. ρ(D⁻¹C) = 0 here, so the Jacobi test must not claim uniqueness.
        let g = PruningGame::with_uniform_cost(
            dvector![0.0, 1.0],
            dvector![0.0, 1.0],
            0.0,
            Competition::None,
        )
        .unwrap();
        let (u, c) = uniqueness_and_convergence(&g, &SpectralOptions::default());
        assert_eq!(c.jacobi_radius_upper, Some(0.0));
        assert_eq!(u.verdict, Uniqueness::Unknown);
    }

    #[test]
    fn zero_self_cost_with_competitors_has_no_jacobi_radius() {
        let g = game(dvector![0.0, 1.0], dmatrix![0.0, 1.0; 0.0, 0.0]);
        let (u, c) = uniqueness_and_convergence(&g, &SpectralOptions::default());
        assert_eq!(c.jacobi_radius, None);
        assert_eq!(u.jacobi_radius_upper, None);
    }
}
