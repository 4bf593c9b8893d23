//! What the solvers use beyond [`Game`]: shortcuts the quadratic game allows (best responses
//! from the pseudo-gradient already computed, a row-major Gauss–Seidel sweep) and bounds on
//! the Lipschitz and monotonicity constants of `F` that fix safe step sizes.

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::game::{Competition, Game, PruningGame};

/// Constants of `F(s) = M s − q` that fix step sizes (T6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bounds {
    /// An upper bound on the Lipschitz constant `‖M‖₂`.
    pub lipschitz: f64,
    /// A lower bound on the strong-monotonicity modulus `λ_min((M + Mᵀ)/2)` (may be ≤ 0, then
    /// it proves nothing).
    pub monotonicity: f64,
    /// Whether `M` is symmetric (an exact potential game, T5).
    pub symmetric: bool,
}

/// A game as the solvers see it.
pub(crate) trait Operator: Game {
    /// Writes every best response computed from `f = F(s)` into `out`, sharing the product
    /// that the residual needed; returns `false` if the game has no such shortcut.
    fn responses_from_gradient(&self, _s: &[f64], _f: &[f64], _out: &mut [f64]) -> bool {
        false
    }

    /// One Gauss–Seidel sweep `s_i ← s_i + ω (BR_i(s) − s_i)`, `i = 0, 1, …`, with the newest
    /// values of earlier players. `rows` is scratch the game may fill once (a row-major copy).
    fn gauss_seidel_sweep(&self, s: &mut [f64], damping: f64, _rows: &mut Option<DMatrix<f64>>) {
        for i in 0..s.len() {
            let response = self.best_response(i, s);
            s[i] += damping * (response - s[i]);
        }
    }

    /// Lipschitz and monotonicity bounds, when the game's structure gives them.
    fn bounds(&self) -> Option<Bounds> {
        None
    }
}

impl Operator for PruningGame {
    fn responses_from_gradient(&self, s: &[f64], f: &[f64], out: &mut [f64]) -> bool {
        let q = self.net_benefit();
        let a = self.self_cost();
        out.par_iter_mut().enumerate().for_each(|(i, o)| {
            // F_i = a_i s_i + (C s)_i − q_i, so the competition pressure is recovered exactly
            // up to rounding of the sum.
            let pressure = f[i] - a[i] * s[i] + q[i];
            *o = self.best_response_to_pressure(i, pressure, s[i]);
        });
        true
    }

    fn gauss_seidel_sweep(&self, s: &mut [f64], damping: f64, rows: &mut Option<DMatrix<f64>>) {
        match self.competition() {
            Competition::Dense(m) => {
                // Column-major storage makes row i strided; the transpose's column i is row i,
                // contiguous, and is built once per solve.
                let t = rows.get_or_insert_with(|| m.transpose());
                for i in 0..s.len() {
                    let pressure: f64 = t.column(i).iter().zip(s.iter()).map(|(c, x)| c * x).sum();
                    let response = self.best_response_to_pressure(i, pressure, s[i]);
                    s[i] += damping * (response - s[i]);
                }
            }
            competition => {
                for i in 0..s.len() {
                    let pressure = competition.row_dot(i, s);
                    let response = self.best_response_to_pressure(i, pressure, s[i]);
                    s[i] += damping * (response - s[i]);
                }
            }
        }
    }

    fn bounds(&self) -> Option<Bounds> {
        Some(quadratic_bounds(self))
    }
}

/// A general game, seen through its [`Game`] methods only.
pub(crate) struct General<'a, G: ?Sized>(pub &'a G);

impl<G: Game + ?Sized> Game for General<'_, G> {
    fn num_players(&self) -> usize {
        self.0.num_players()
    }
    fn upper(&self, i: usize) -> f64 {
        self.0.upper(i)
    }
    fn utility(&self, i: usize, own: f64, profile: &[f64]) -> f64 {
        self.0.utility(i, own, profile)
    }
    fn own_gradient(&self, i: usize, own: f64, profile: &[f64]) -> f64 {
        self.0.own_gradient(i, own, profile)
    }
    fn best_response(&self, i: usize, profile: &[f64]) -> f64 {
        self.0.best_response(i, profile)
    }
    fn pseudo_gradient(&self, profile: &[f64], out: &mut [f64]) {
        self.0.pseudo_gradient(profile, out)
    }
    fn best_responses(&self, profile: &[f64], out: &mut [f64]) {
        self.0.best_responses(profile, out)
    }
    fn deviation_gains(&self, profile: &[f64]) -> Vec<f64> {
        self.0.deviation_gains(profile)
    }
    fn project(&self, profile: &mut [f64]) {
        self.0.project(profile)
    }
}

impl<G: Game + ?Sized> Operator for General<'_, G> {}

/// Power-iteration steps behind the Collatz–Wielandt bound.
const POWER_STEPS: usize = 12;

/// Bounds for `M = diag(a) + C` (all entries ≥ 0).
///
/// * Lipschitz: the smaller of Hölder's `√(‖M‖₁ ‖M‖_∞)` and, where `Mᵀ` is cheap (dense, or
///   symmetric), the Collatz–Wielandt bound `ρ(A) ≤ max_i (A x)_i / x_i` for the non-negative
///   `A = MᵀM` (or `M` itself when symmetric) at a positive `x` improved by power iteration.
///   Both are upper bounds, so the steps derived from them are safe.
/// * Monotonicity: Gershgorin on `(M + Mᵀ)/2`: `min_i a_i − (Σ_j C_ij + Σ_j C_ji)/2`.
pub(crate) fn quadratic_bounds(game: &PruningGame) -> Bounds {
    let n = game.num_players();
    let a = game.self_cost();
    let mut row = vec![0.0; n];
    let mut col = vec![0.0; n];
    for (i, j, v) in game.competition().triplets() {
        row[i] += v;
        col[j] += v;
    }
    let norm_inf = (0..n).map(|i| a[i] + row[i]).fold(0.0, f64::max);
    let norm_one = (0..n).map(|i| a[i] + col[i]).fold(0.0, f64::max);
    let holder = (norm_inf * norm_one).sqrt();
    let monotonicity = (0..n)
        .map(|i| a[i] - 0.5 * (row[i] + col[i]))
        .fold(f64::INFINITY, f64::min);
    let symmetric = game.is_symmetric();
    let apply = |x: &[f64], out: &mut [f64]| {
        game.competition().mul_vec(x, out);
        for i in 0..n {
            out[i] += a[i] * x[i];
        }
    };
    let collatz = match game.competition() {
        _ if symmetric => power_bound(n, |x, out| apply(x, out)),
        Competition::Dense(m) => {
            let mut y = vec![0.0; n];
            power_bound(n, |x, out| {
                apply(x, &mut y);
                let yv = nalgebra::DVectorView::from_slice(&y, n);
                let mut o = nalgebra::DVectorViewMut::from_slice(out, n);
                o.gemv_tr(1.0, m, &yv, 0.0);
                for i in 0..n {
                    o[i] += a[i] * y[i];
                }
            })
            .sqrt()
        }
        _ => f64::INFINITY,
    };
    Bounds {
        lipschitz: holder.min(collatz),
        monotonicity,
        symmetric,
    }
}

/// The Collatz–Wielandt upper bound on the spectral radius of a non-negative matrix given by
/// its product, after a few power steps from the all-ones vector; infinite when an entry of
/// the iterate vanishes (the bound then says nothing).
fn power_bound(n: usize, mut apply: impl FnMut(&[f64], &mut [f64])) -> f64 {
    let mut x = vec![1.0; n];
    let mut y = vec![0.0; n];
    let mut bound = f64::INFINITY;
    for _ in 0..POWER_STEPS {
        apply(&x, &mut y);
        let mut ratio = 0.0_f64;
        for i in 0..n {
            if x[i] > 0.0 {
                ratio = ratio.max(y[i] / x[i]);
            } else {
                ratio = f64::INFINITY;
            }
        }
        bound = bound.min(ratio);
        let scale = y.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        if !(scale > 0.0 && scale.is_finite()) {
            break;
        }
        for i in 0..n {
            x[i] = y[i] / scale;
        }
    }
    bound
}

/// A secant estimate of the Lipschitz constant of `F` near `s` for games without structure:
/// twice the largest `‖F(x) − F(s)‖ / ‖x − s‖` over a few perturbations `x` of relative size
/// `1e-3`. It is an estimate, not a bound; the adaptive step rules need none.
pub(crate) fn secant_lipschitz<G: Game + ?Sized>(game: &G, s: &[f64], f: &[f64]) -> f64 {
    let n = s.len();
    let mut x = vec![0.0; n];
    let mut fx = vec![0.0; n];
    let mut estimate = 0.0_f64;
    for pattern in 0..3usize {
        for i in 0..n {
            let u = game.upper(i);
            let sign = if (i + pattern) % 2 == 0 { 1.0 } else { -1.0 };
            let sign = if pattern == 2 { 1.0 } else { sign };
            let mut xi = s[i] + sign * 1e-3 * u;
            if !(0.0..=u).contains(&xi) {
                xi = s[i] - sign * 1e-3 * u;
            }
            x[i] = xi.clamp(0.0, u);
        }
        game.pseudo_gradient(&x, &mut fx);
        let dx: f64 = x.iter().zip(s).map(|(a, b)| (a - b) * (a - b)).sum();
        let df: f64 = fx.iter().zip(f).map(|(a, b)| (a - b) * (a - b)).sum();
        if dx > 0.0 {
            estimate = estimate.max((df / dx).sqrt());
        }
    }
    2.0 * estimate
}
