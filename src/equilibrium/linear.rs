//! Linear solves on the free block `M_II` of the quadratic game, for the Newton solver.
//!
//! Vectors have full length `N` and are zero outside the free set `I`, so that a product with
//! `M_II` is one product with `M` (dense, or sparse in `O(nnz)`) followed by a mask. Small
//! dense blocks are factorised (Cholesky when symmetric, LU otherwise); everything else uses
//! Jacobi-preconditioned conjugate gradients (symmetric `M`) or BiCGSTAB (non-symmetric).
//!
//! References: Y. Saad, *Iterative Methods for Sparse Linear Systems* (2003), §6.7 (CG), §7.4
//! (BiCGSTAB); H. A. van der Vorst, SIAM J. Sci. Stat. Comput. 13 (1992).

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

use super::executor::nan_max;
use crate::game::{Competition, PruningGame};
use crate::parallel::{CHUNK, ELEMENTS_PER_TASK};

/// Largest free block factorised densely without trying an iterative solve first (its cost
/// is `k³/3` flops).
pub(crate) const DIRECT_LIMIT: usize = 1200;
/// Iterations of the iterative try on a large dense block before factorising it.
const DENSE_ITERATIONS: usize = 300;

/// The free block `M_II + μ E_II` of a quadratic game, with `E` the players without self cost
/// (`a_i = 0`): the proximal term keeps the block regular where `M` has a zero diagonal (see
/// the Newton module docs).
pub(crate) struct FreeBlock<'a> {
    pub game: &'a PruningGame,
    pub free: &'a [bool],
    /// `μ > 0`, the diagonal of players with `a_i = 0`.
    pub regularisation: f64,
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    crate::parallel::ordered_sum(x.len(), |i| x[i] * y[i])
}

fn norm_inf(x: &[f64]) -> f64 {
    x.par_iter()
        .with_min_len(ELEMENTS_PER_TASK)
        .map(|v| v.abs())
        .reduce(|| 0.0, nan_max)
}

impl FreeBlock<'_> {
    /// The block's diagonal entry of player `i`.
    fn diagonal(&self, i: usize) -> f64 {
        let a = self.game.self_cost()[i];
        if a > 0.0 {
            a
        } else {
            self.regularisation
        }
    }

    /// `out = (M_II + μ E_II) x` (zero outside `I`); `x` must be zero outside `I`.
    fn apply(&self, x: &[f64], out: &mut [f64]) {
        self.game.competition().mul_vec(x, out);
        out.par_iter_mut()
            .enumerate()
            .with_min_len(ELEMENTS_PER_TASK)
            .for_each(|(i, o)| {
                *o = if self.free[i] {
                    *o + self.diagonal(i) * x[i]
                } else {
                    0.0
                };
            });
    }

    /// Jacobi preconditioner: `r` divided by the block's diagonal on `I`.
    fn precondition(&self, r: &[f64], z: &mut [f64]) {
        z.par_iter_mut()
            .enumerate()
            .with_min_len(ELEMENTS_PER_TASK)
            .for_each(|(i, z)| *z = r[i] / self.diagonal(i));
    }

    /// Solves `(M_II + μ E_II) x = rhs` (both zero outside `I`) from the start `x`, given its
    /// residual `r = rhs − (M_II + μ E_II) x` rather than `rhs` (Newton has it from `F` at the
    /// cost of a product with the few players that change sides), until the residual is at
    /// most `tolerance` in the max norm. Returns whether it got there; an iterative solve
    /// leaves `r` the residual of `x`.
    pub(crate) fn solve(
        &self,
        r: &mut [f64],
        x: &mut [f64],
        tolerance: f64,
        symmetric: bool,
        max_iterations: usize,
    ) -> bool {
        let dense = match self.game.competition() {
            Competition::Dense(m) => Some(m),
            _ => None,
        };
        let index = || -> Vec<usize> { (0..self.free.len()).filter(|&i| self.free[i]).collect() };
        let iterate = |r: &mut [f64], x: &mut [f64], budget: usize| {
            budget > 0
                && if symmetric {
                    self.conjugate_gradient(r, x, tolerance, budget)
                } else {
                    self.bicgstab(r, x, tolerance, budget)
                }
        };
        let Some(m) = dense else {
            return iterate(r, x, max_iterations);
        };
        // A dense block of k free players factorises in k³/3 flops; an iterative step costs
        // about 2nk (the products skip the columns outside the block). Small blocks try the
        // iterations that cost as much as the factorisation, so a block never costs much more
        // than twice its factorisation and a well-conditioned one (a few dozen products) far
        // less; blocks too large to factorise cheaply get a fixed try. Ill-conditioned blocks
        // are then factorised after all.
        let k = self.free.iter().filter(|&&f| f).count();
        let n = self.free.len();
        let budget = if k <= DIRECT_LIMIT {
            k * k / (6 * n)
        } else {
            DENSE_ITERATIONS
        };
        if iterate(r, x, budget.min(max_iterations)) {
            return true;
        }
        // rhs = r + A x, for the factorisation.
        let mut rhs = vec![0.0; n];
        self.apply(x, &mut rhs);
        for (b, r) in rhs.iter_mut().zip(r.iter()) {
            *b += r;
        }
        if self.direct_into(m, &index(), &rhs, x, symmetric) {
            return true;
        }
        // A singular factorisation: the rest of the fixed try from where the first stopped.
        k <= DIRECT_LIMIT
            && iterate(
                r,
                x,
                DENSE_ITERATIONS.saturating_sub(budget).min(max_iterations),
            )
    }

    /// Factorises the block and writes the solution into `x`; `false` if it is singular.
    fn direct_into(
        &self,
        m: &DMatrix<f64>,
        index: &[usize],
        rhs: &[f64],
        x: &mut [f64],
        symmetric: bool,
    ) -> bool {
        match self.direct(m, index, rhs, symmetric) {
            Some(solution) => {
                for (k, &i) in index.iter().enumerate() {
                    x[i] = solution[k];
                }
                true
            }
            None => false,
        }
    }

    fn direct(
        &self,
        m: &DMatrix<f64>,
        index: &[usize],
        rhs: &[f64],
        symmetric: bool,
    ) -> Option<DVector<f64>> {
        let k = index.len();
        if k == 0 {
            // No free players: nothing to solve (nalgebra's LU panics on an empty matrix).
            return Some(DVector::zeros(0));
        }
        let block = DMatrix::from_fn(k, k, |r, c| {
            let (i, j) = (index[r], index[c]);
            if r == c {
                self.diagonal(i)
            } else {
                m[(i, j)]
            }
        });
        let b = DVector::from_iterator(k, index.iter().map(|&i| rhs[i]));
        let solution = if symmetric {
            match block.clone().cholesky() {
                Some(ch) => Some(ch.solve(&b)),
                None => block.lu().solve(&b),
            }
        } else {
            block.lu().solve(&b)
        }?;
        solution.iter().all(|v| v.is_finite()).then_some(solution)
    }

    /// Preconditioned conjugate gradients; fails on a direction of non-positive curvature.
    ///
    /// An iteration is the product and three passes over the vectors (the product's mask
    /// with `pᵀAp`; the updates of `x`, `r`, `z` with `rᵀz` and `‖r‖_∞`; the new direction):
    /// at 10^4 players each pass costs about as much as its start on two threads, so the
    /// passes are fused. Sums run over the fixed chunks of [`crate::parallel::ordered_sum`].
    fn conjugate_gradient(
        &self,
        r: &mut [f64],
        x: &mut [f64],
        tolerance: f64,
        max_iterations: usize,
    ) -> bool {
        let n = x.len();
        let mut z = vec![0.0; n];
        self.precondition(r, &mut z);
        let mut p = z.clone();
        let mut ap = vec![0.0; n];
        let mut rz = dot(r, &z);
        let mut size = norm_inf(r);
        for _ in 0..max_iterations {
            if let Some(verdict) = verdict(size, tolerance) {
                return verdict;
            }
            let curvature = self.apply_with_dot(&p, &mut ap);
            if curvature.is_nan() || curvature <= 0.0 {
                return false;
            }
            let alpha = rz / curvature;
            let (rz_next, size_next) = self.step(alpha, &p, &ap, x, r, &mut z);
            size = size_next;
            let beta = rz_next / rz;
            rz = rz_next;
            p.par_iter_mut()
                .zip(z.par_iter())
                .with_min_len(ELEMENTS_PER_TASK)
                .for_each(|(p, z)| *p = z + beta * *p);
        }
        size <= tolerance
    }

    /// `out = (M_II + μ E_II) x` as [`FreeBlock::apply`], returning `xᵀ out`.
    fn apply_with_dot(&self, x: &[f64], out: &mut [f64]) -> f64 {
        self.game.competition().mul_vec(x, out);
        let partials: Vec<f64> = out
            .par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .enumerate()
            .map(|(c, (out, x))| {
                let mut sum = 0.0;
                for (k, (o, &x)) in out.iter_mut().zip(x).enumerate() {
                    let i = c * CHUNK + k;
                    *o = if self.free[i] {
                        *o + self.diagonal(i) * x
                    } else {
                        0.0
                    };
                    sum += x * *o;
                }
                sum
            })
            .collect();
        partials.iter().sum()
    }

    /// CG's step of length `alpha`: `x += α p`, `r −= α Ap`, `z = r / diag`; returns
    /// `(rᵀz, ‖r‖_∞)`.
    fn step(
        &self,
        alpha: f64,
        p: &[f64],
        ap: &[f64],
        x: &mut [f64],
        r: &mut [f64],
        z: &mut [f64],
    ) -> (f64, f64) {
        let partials: Vec<(f64, f64)> = x
            .par_chunks_mut(CHUNK)
            .zip(r.par_chunks_mut(CHUNK))
            .zip(z.par_chunks_mut(CHUNK))
            .zip(p.par_chunks(CHUNK).zip(ap.par_chunks(CHUNK)))
            .enumerate()
            .map(|(c, (((x, r), z), (p, ap)))| {
                let (mut rz, mut size) = (0.0, 0.0);
                for k in 0..x.len() {
                    x[k] += alpha * p[k];
                    r[k] -= alpha * ap[k];
                    z[k] = r[k] / self.diagonal(c * CHUNK + k);
                    rz += r[k] * z[k];
                    size = nan_max(size, r[k].abs());
                }
                (rz, size)
            })
            .collect();
        partials
            .iter()
            .fold((0.0, 0.0), |(rz, size), &(a, b)| (rz + a, nan_max(size, b)))
    }

    /// Right-preconditioned BiCGSTAB; fails on breakdown.
    fn bicgstab(
        &self,
        r: &mut [f64],
        x: &mut [f64],
        tolerance: f64,
        max_iterations: usize,
    ) -> bool {
        let n = x.len();
        let shadow = r.to_vec();
        let (mut rho, mut alpha, mut omega) = (1.0, 1.0, 1.0);
        let mut v = vec![0.0; n];
        let mut p = vec![0.0; n];
        let mut p_hat = vec![0.0; n];
        let mut s = vec![0.0; n];
        let mut s_hat = vec![0.0; n];
        let mut t = vec![0.0; n];
        for _ in 0..max_iterations {
            if let Some(verdict) = settled(r, tolerance) {
                return verdict;
            }
            let rho_next = dot(&shadow, r);
            if rho_next == 0.0 || !rho_next.is_finite() {
                return false;
            }
            let beta = (rho_next / rho) * (alpha / omega);
            rho = rho_next;
            p.par_iter_mut()
                .zip(r.par_iter().zip(v.par_iter()))
                .with_min_len(ELEMENTS_PER_TASK)
                .for_each(|(p, (r, v))| *p = r + beta * (*p - omega * v));
            self.precondition(&p, &mut p_hat);
            self.apply(&p_hat, &mut v);
            let denominator = dot(&shadow, &v);
            if denominator == 0.0 || !denominator.is_finite() {
                return false;
            }
            alpha = rho / denominator;
            s.par_iter_mut()
                .zip(r.par_iter().zip(v.par_iter()))
                .with_min_len(ELEMENTS_PER_TASK)
                .for_each(|(s, (r, v))| *s = r - alpha * v);
            if norm_inf(&s) <= tolerance {
                x.par_iter_mut()
                    .zip(p_hat.par_iter())
                    .with_min_len(ELEMENTS_PER_TASK)
                    .for_each(|(x, p)| *x += alpha * p);
                r.copy_from_slice(&s);
                return true;
            }
            self.precondition(&s, &mut s_hat);
            self.apply(&s_hat, &mut t);
            let tt = dot(&t, &t);
            if tt.is_nan() || tt <= 0.0 {
                return false;
            }
            omega = dot(&t, &s) / tt;
            if omega == 0.0 || !omega.is_finite() {
                return false;
            }
            x.par_iter_mut()
                .zip(p_hat.par_iter().zip(s_hat.par_iter()))
                .with_min_len(ELEMENTS_PER_TASK)
                .for_each(|(x, (p, s))| *x += alpha * p + omega * s);
            r.par_iter_mut()
                .zip(s.par_iter().zip(t.par_iter()))
                .with_min_len(ELEMENTS_PER_TASK)
                .for_each(|(r, (s, t))| *r = s - omega * t);
        }
        norm_inf(r) <= tolerance
    }
}

/// `Some(true)` once the residual is within `tolerance` (max norm), `Some(false)` once it is
/// no longer finite, `None` while an iteration should go on.
fn settled(r: &[f64], tolerance: f64) -> Option<bool> {
    verdict(norm_inf(r), tolerance)
}

/// [`settled`] given the residual's max norm.
fn verdict(size: f64, tolerance: f64) -> Option<bool> {
    if size <= tolerance {
        Some(true)
    } else if !size.is_finite() {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::synthetic::{generate, GeneratorConfig, Topology};
    use crate::game::Game;

    /// `rhs − A x` on the free block.
    fn residual(block: &FreeBlock<'_>, rhs: &[f64], x: &[f64]) -> Vec<f64> {
        let mut r = vec![0.0; x.len()];
        block.apply(x, &mut r);
        for (r, b) in r.iter_mut().zip(rhs) {
            *r = b - *r;
        }
        r
    }

    #[test]
    fn dense_blocks_are_solved_by_iterations_or_by_the_factorisation() {
        // Well conditioned (δ = 1.5) and just above the loss of positive definiteness
        // (δ = 0.47, no base self cost), symmetric or not: the answer meets the tolerance
        // whichever path gives it.
        for (dominance, self_cost) in [(1.5, 1.0), (0.47, 0.0)] {
            for symmetric in [true, false] {
                let game = generate(&GeneratorConfig {
                    players: 300,
                    seed: 3,
                    topology: Topology::Dense { density: 1.0 },
                    symmetric,
                    diagonal_dominance: dominance,
                    self_cost,
                    ..GeneratorConfig::default()
                })
                .unwrap();
                let n = game.num_players();
                let free: Vec<bool> = (0..n).map(|i| i % 3 != 0).collect();
                let block = FreeBlock {
                    game: &game,
                    free: &free,
                    regularisation: 1e-3,
                };
                let rhs: Vec<f64> = (0..n)
                    .map(|i| {
                        if free[i] {
                            ((i as f64) * 0.7).sin()
                        } else {
                            0.0
                        }
                    })
                    .collect();
                // An iteration budget of 1 leaves the answer to the factorisation, which
                // must recover the right-hand side from the start and its residual.
                for (max_iterations, start) in [(5_000, 0.0), (5_000, 0.3), (1, 0.0), (1, 0.3)] {
                    let mut x: Vec<f64> = (0..n)
                        .map(|i| {
                            if free[i] {
                                start * (i as f64).cos()
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    let mut r = residual(&block, &rhs, &x);
                    let tolerance = 1e-10;
                    assert!(block.solve(&mut r, &mut x, tolerance, symmetric, max_iterations));
                    let left = norm_inf(&residual(&block, &rhs, &x));
                    assert!(
                        left <= 10.0 * tolerance,
                        "δ = {dominance}, symmetric = {symmetric}, budget {max_iterations}, \
                         start {start}: residual {left:e}"
                    );
                    assert!((0..n).all(|i| free[i] || x[i].abs().to_bits() == 0));
                }
            }
        }
    }
}
