//! Semismooth Newton (primal–dual active set) for the quadratic game's box LCP.
//!
//! The equilibrium solves `Φ(s) = s − Π_[0,u](s − D⁻¹F(s)) = 0` with `F(s) = M s − q` and
//! `D = diag(a)`; the scaling makes `s_i − F_i/a_i` the unconstrained best response, so the
//! active sets are read off best responses. A generalized Newton step on `Φ` is the
//! primal–dual active-set step:
//! * `L = {i : s_i − F_i/a_i ≤ 0}` → `s_i = 0`; `U = {i : s_i − F_i/a_i ≥ u_i}` → `s_i = u_i`;
//! * the free set `I` solves `M_II s_I = q_I − M_IU u_U` (Cholesky/LU for small dense blocks,
//!   preconditioned CG/BiCGSTAB otherwise, to a forcing tolerance `min(0.1, r)·r`).
//!
//! **Players without self cost (`a_i = 0`).** Their diagonal of `M` is zero; when their row of
//! `C` is zero too (`F_i = −q_i` constant), a free such player makes `M_II` singular with an
//! inconsistent right-hand side, and every step would run the inner solve to its cap. They
//! get a proximal term instead: `D_ii = μ_k = min(1, r_k)` with `r_k` the current residual,
//! and the free block solves `(M + μ_k E)_II s_I = (q − M u_U + μ_k E s^k)_I` with `E` the
//! players with `a_i = 0` — the Newton step of `F + μ_k E(· − s^k)`, whose block is regular.
//! Their active set is `s_i − F_i/μ_k` against the box: as `μ_k → 0` it is the bang-bang best
//! response (`F_i > 0` → 0, `F_i < 0` → `u_i`), and a shrinking proximal term keeps local
//! convergence superlinear (the regularised Levenberg–Marquardt choice `μ ~ ‖Φ‖`). The
//! certificate is untouched: every trial point is scored by the unregularised residual.
//!
//! Globalisation: the Newton point (projected on the box) is accepted when its merit
//! `‖s − Π(s − F(s))‖₂` is sufficiently below the largest of the last eight merits
//! (non-monotone), otherwise the path `s + t(s_N − s)` is searched
//! with `t = 1/2, 1/4, …`; if that fails too, one safe projected-gradient step is taken (T6),
//! so progress never depends on the active-set guess. Once the active set is right the Newton
//! point is the exact equilibrium up to the linear solve: local convergence is finite
//! (superlinear with inexact solves), and direct solves finish at machine precision.
//!
//! Requirements: the quadratic game ([`PruningGame`]); guarantees need `M` a P-matrix on the
//! free blocks met (e.g. `M + Mᵀ ≻ 0`). References: M. Hintermüller, K. Ito, K. Kunisch, "The
//! primal–dual active set strategy as a semismooth Newton method", SIAM J. Optim. 13 (2003);
//! F. Facchinei and J.-S. Pang, *Finite-Dimensional Variational Inequalities and
//! Complementarity Problems* (2003), ch. 7–9.

use rayon::prelude::*;

use super::executor::{residual_of, Algorithm};
use super::linear::FreeBlock;
use super::operator::{quadratic_bounds, Bounds};
use super::projection::projected_step;
use crate::error::Result;
use crate::game::{Game, PruningGame};
use crate::parallel::ELEMENTS_PER_TASK;

/// Sufficient-decrease constant of the merit test.
const ARMIJO: f64 = 1e-4;
/// Halvings of the Newton step before falling back to a gradient step.
const LINE_SEARCH_STEPS: usize = 8;
/// Iteration cap of one inner linear solve.
const INNER_ITERATIONS: usize = 5_000;
/// Merits remembered by the non-monotone acceptance test of the full Newton step.
const MEMORY: usize = 8;

/// Where the active-set guess puts a player.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Lower,
    Upper,
    Free,
}

/// Semismooth Newton / primal–dual active set with a proximal term for players without self
/// cost, a merit line search and a gradient fallback.
pub(crate) struct Newton {
    tolerance: f64,
    symmetric: bool,
    /// The safe projection step of the gradient fallback, from bounds on `M` (T6); computed
    /// the first time a line search fails, since the bounds cost a few dozen products with `C`
    /// and most solves never need them.
    fallback_step: Option<f64>,
    gradient: Vec<f64>,
    /// Whether `gradient` already holds `F` of the current iterate (set by `advance`).
    fresh: bool,
    residual: f64,
    side: Vec<Side>,
    free: Vec<bool>,
    target: Vec<f64>,
    /// The free block's residual at the current iterate, then at the Newton point.
    inner_residual: Vec<f64>,
    solution: Vec<f64>,
    trial: Vec<f64>,
    trial_gradient: Vec<f64>,
    /// Merits of the latest iterates, for the non-monotone test.
    recent: std::collections::VecDeque<f64>,
}

impl Newton {
    /// `symmetric`: whether `C = Cᵀ`, which picks the inner linear solver.
    pub(crate) fn new(n: usize, tolerance: f64, symmetric: bool) -> Self {
        Newton {
            tolerance,
            symmetric,
            fallback_step: None,
            gradient: vec![0.0; n],
            fresh: false,
            residual: f64::INFINITY,
            side: vec![Side::Free; n],
            free: vec![false; n],
            target: vec![0.0; n],
            inner_residual: vec![0.0; n],
            solution: vec![0.0; n],
            trial: vec![0.0; n],
            trial_gradient: vec![0.0; n],
            recent: std::collections::VecDeque::with_capacity(MEMORY),
        }
    }
}

/// The fixed projection step that contracts under `bounds` (T6).
fn safe_step(bounds: Bounds) -> f64 {
    if !(bounds.lipschitz.is_finite() && bounds.lipschitz > 0.0) {
        // F is constant (no self cost, no competition): any step is safe.
        1.0
    } else if bounds.symmetric || bounds.monotonicity <= 0.0 {
        1.0 / bounds.lipschitz
    } else {
        bounds.monotonicity / (bounds.lipschitz * bounds.lipschitz)
    }
}

/// `‖s − Π(s − f)‖₂²`.
fn merit(game: &PruningGame, s: &[f64], f: &[f64]) -> f64 {
    crate::parallel::ordered_sum(s.len(), |i| {
        let d = s[i] - (s[i] - f[i]).clamp(0.0, game.upper(i));
        d * d
    })
}

impl Algorithm<PruningGame> for Newton {
    fn evaluate(&mut self, game: &PruningGame, s: &[f64]) -> Result<f64> {
        if !self.fresh {
            game.pseudo_gradient(s, &mut self.gradient);
        }
        self.fresh = false;
        self.residual = residual_of(game, s, &self.gradient);
        Ok(self.residual)
    }

    fn advance(&mut self, game: &PruningGame, s: &mut [f64]) -> Result<()> {
        let a = game.self_cost();
        let u = game.upper_bounds();
        let f = &self.gradient;
        // Proximal diagonal of the players without self cost (module docs); positive, since
        // `advance` only runs on a residual above the tolerance.
        let mu = self.residual.clamp(f64::MIN_POSITIVE, 1.0);
        // Active-set guess from the unconstrained best responses.
        self.side
            .par_iter_mut()
            .zip(self.free.par_iter_mut())
            .enumerate()
            .with_min_len(ELEMENTS_PER_TASK)
            .for_each(|(i, (side, free))| {
                let scale = if a[i] > 0.0 { a[i] } else { mu };
                let raw = s[i] - f[i] / scale;
                *side = if raw <= 0.0 {
                    Side::Lower
                } else if raw >= u[i] {
                    Side::Upper
                } else {
                    Side::Free
                };
                *free = *side == Side::Free;
            });
        // The free block's system is `(M + μE)_II x_I = q_I − (C u_U)_I + μ (E s)_I`; its
        // residual at the start `x_I = s_I` is `q_I − (C w)_I − (a s)_I` with `w` = `u` on U,
        // `s` on I and 0 on L, that is `−F_I − (C d)_I` with `d = w − s`, non-zero only
        // where a player's bound differs from where it stands (few, near the solution).
        let side = &self.side;
        self.target
            .par_iter_mut()
            .enumerate()
            .with_min_len(ELEMENTS_PER_TASK)
            .for_each(|(i, d)| {
                *d = match side[i] {
                    Side::Lower => -s[i],
                    Side::Upper => u[i] - s[i],
                    Side::Free => 0.0,
                }
            });
        game.competition()
            .mul_vec(&self.target, &mut self.inner_residual);
        let free = &self.free;
        self.inner_residual
            .par_iter_mut()
            .enumerate()
            .with_min_len(ELEMENTS_PER_TASK)
            .for_each(|(i, r)| *r = if free[i] { -f[i] - *r } else { 0.0 });
        self.solution
            .par_iter_mut()
            .enumerate()
            .with_min_len(ELEMENTS_PER_TASK)
            .for_each(|(i, x)| *x = if free[i] { s[i] } else { 0.0 });
        let inner_tolerance = (0.1 * self.tolerance).max(self.residual.min(0.1) * self.residual);
        let block = FreeBlock {
            game,
            free: &self.free,
            regularisation: mu,
        };
        block.solve(
            &mut self.inner_residual,
            &mut self.solution,
            inner_tolerance,
            self.symmetric,
            INNER_ITERATIONS,
        );
        // The Newton point, projected on the box.
        let solution = &self.solution;
        self.target
            .par_iter_mut()
            .enumerate()
            .with_min_len(ELEMENTS_PER_TASK)
            .for_each(|(i, t)| {
                *t = match side[i] {
                    Side::Lower => 0.0,
                    Side::Upper => u[i],
                    Side::Free if solution[i].is_finite() => solution[i].clamp(0.0, u[i]),
                    Side::Free => s[i],
                }
            });
        let current = merit(game, s, &self.gradient);
        if self.recent.len() == MEMORY {
            self.recent.pop_front();
        }
        self.recent.push_back(current);
        // The full step is tested against the worst of the latest merits (Grippo–Lampariello–
        // Lucidi): active-set steps may raise the residual once on their way to the solution;
        // shorter steps must decrease it.
        let reference = self.recent.iter().fold(current, |m, &v| m.max(v));
        let mut t = 1.0;
        for step in 0..=LINE_SEARCH_STEPS {
            let reference = if step == 0 { reference } else { current };
            let target = &self.target;
            self.trial
                .par_iter_mut()
                .enumerate()
                .with_min_len(ELEMENTS_PER_TASK)
                .for_each(|(i, x)| *x = s[i] + t * (target[i] - s[i]));
            game.pseudo_gradient(&self.trial, &mut self.trial_gradient);
            let value = merit(game, &self.trial, &self.trial_gradient);
            if value <= (1.0 - ARMIJO * t) * reference {
                s.copy_from_slice(&self.trial);
                std::mem::swap(&mut self.gradient, &mut self.trial_gradient);
                self.fresh = true;
                return Ok(());
            }
            t *= 0.5;
        }
        let step = *self
            .fallback_step
            .get_or_insert_with(|| safe_step(quadratic_bounds(game)));
        projected_step(game, s, step, &self.gradient, &mut self.trial);
        s.copy_from_slice(&self.trial);
        Ok(())
    }
}
