//! Nash equilibria of continuous games, each returned with its certificate.
//!
//! Every solver is one step (an `Algorithm` in `executor.rs`) run by one executor that owns the
//! loop: the iteration budget, the tolerance on the natural residual
//! `‖s − Π(s − F(s))‖_∞`, divergence, stall and NaN detection, and the final [`Certificate`](crate::game::Certificate)
//! (Nash gap and natural residual, recomputed from the game). Termination is a value
//! ([`Termination`]); `Err` is kept for bad input.
//!
//! | [`SolverKind`] | update rule | requires | module |
//! |---|---|---|---|
//! | `best-response` | `s ← s + ω(BR(s) − s)`, Jacobi or Gauss–Seidel | concave utilities; converges for `ρ(D⁻¹C) < 1` or potential games | `best_response.rs` |
//! | `projection` | `s ← Π(s − τF(s))`, fixed `τ` or golden-ratio adaptive | `F` (strongly) monotone | `projection.rs` |
//! | `extragradient` | `y = Π(s − τF(s))`, `s ← Π(s − τF(y))` | `F` monotone, `τ < 1/L` or backtracking | `extragradient.rs` |
//! | `newton` | semismooth Newton / primal–dual active set on the box LCP | the quadratic [`PruningGame`] | `newton.rs` |
//!
//! [`solve`] runs any solver on a [`PruningGame`] (closed-form best responses, safe steps from
//! bounds on `‖M‖₂` and on monotonicity); [`solve_game`] runs the first three on any [`Game`].
//! Sparse games cost memory proportional to the non-zeros: every solver touches `C` only
//! through products.

mod best_response;
mod executor;
mod extragradient;
mod file;
mod linear;
mod newton;
mod operator;
mod options;
mod projection;

use std::time::Instant;

pub use executor::{Solution, SolveReport, Termination};
pub use file::EquilibriumFile;
pub use options::{Cancel, SolveOptions, SolverKind};

use crate::error::{Error, Result};
use crate::game::{Game, PruningGame};
use executor::{initial_profile, run};
use operator::{secant_lipschitz, General, Operator};

/// Solves the quadratic pruning game with any solver.
///
/// Fails only on invalid options or an initial profile of the wrong length or with
/// non-finite entries; a run that does not converge returns `Ok` with `converged: false`,
/// the reason in `termination` and the certificate of its last iterate.
pub fn solve(game: &PruningGame, kind: SolverKind, options: &SolveOptions) -> Result<Solution> {
    crate::parallel::in_pool(|| solve_quadratic(game, kind, options))
}

fn solve_quadratic(
    game: &PruningGame,
    kind: SolverKind,
    options: &SolveOptions,
) -> Result<Solution> {
    options.check()?;
    let start = Instant::now();
    let s = initial_profile(game, options)?;
    let n = s.len();
    match kind {
        SolverKind::Newton => {
            let symmetric = game.is_symmetric();
            let mut newton = newton::Newton::new(n, options.tolerance, symmetric);
            run(game, kind, &mut newton, s, options, start)
        }
        _ => first_order(game, kind, s, options, start),
    }
}

/// Solves a general game with best response (the game's own [`Game::best_response`],
/// Brent's method by default), projection or extragradient.
///
/// [`SolverKind::Newton`] needs the quadratic structure and is refused with
/// [`Error::NeedsQuadraticGame`].
pub fn solve_game<G: Game + ?Sized>(
    game: &G,
    kind: SolverKind,
    options: &SolveOptions,
) -> Result<Solution> {
    options.check()?;
    if kind == SolverKind::Newton {
        return Err(Error::NeedsQuadraticGame {
            solver: kind.to_string(),
        });
    }
    let start = Instant::now();
    let game = General(game);
    let s = initial_profile(&game, options)?;
    first_order(&game, kind, s, options, start)
}

/// Best response, projection and extragradient on any game the solvers can see.
fn first_order<G: Operator + ?Sized>(
    game: &G,
    kind: SolverKind,
    s: Vec<f64>,
    options: &SolveOptions,
    start: Instant,
) -> Result<Solution> {
    let n = s.len();
    if kind == SolverKind::BestResponse {
        let mut algorithm =
            best_response::BestResponse::new(n, options.damping, options.gauss_seidel);
        return run(game, kind, &mut algorithm, s, options, start);
    }
    let step = match options.step {
        Some(step) => step,
        None => default_step(game, kind, &s),
    };
    match (kind, options.adaptive) {
        (SolverKind::Projection, false) => {
            let mut algorithm = projection::FixedProjection::new(n, step);
            run(game, kind, &mut algorithm, s, options, start)
        }
        (SolverKind::Projection, true) => {
            let mut algorithm = projection::GoldenRatio::new(n, step);
            run(game, kind, &mut algorithm, s, options, start)
        }
        _ => {
            let mut algorithm = extragradient::Extragradient::new(n, step, options.adaptive);
            run(game, kind, &mut algorithm, s, options, start)
        }
    }
}

/// The step of the fixed-step methods (T6).
///
/// Quadratic game, with `L ≥ ‖M‖₂` and `μ ≤ λ_min((M+Mᵀ)/2)` from [`operator::Bounds`]:
/// projection `2/(L+μ)` when `M` is symmetric (`1/L` if `μ ≤ 0`), `μ/L²` otherwise (the step
/// that minimises the contraction bound `√(1 − 2τμ + τ²L²)`; `1/L` if `μ ≤ 0`, without
/// guarantee); extragradient `0.9/L`. General games: the same with a secant estimate of `L`
/// at the initial profile and no monotonicity bound.
fn default_step<G: Operator + ?Sized>(game: &G, kind: SolverKind, s: &[f64]) -> f64 {
    let (lipschitz, monotonicity, symmetric) = match game.bounds() {
        Some(b) => (b.lipschitz, b.monotonicity, b.symmetric),
        None => {
            let mut f = vec![0.0; s.len()];
            game.pseudo_gradient(s, &mut f);
            (secant_lipschitz(game, s, &f), 0.0, false)
        }
    };
    if !(lipschitz.is_finite() && lipschitz > 0.0) {
        return 1.0;
    }
    match kind {
        SolverKind::Extragradient => 0.9 / lipschitz,
        _ if monotonicity <= 0.0 => 1.0 / lipschitz,
        _ if symmetric => 2.0 / (lipschitz + monotonicity),
        _ => monotonicity / (lipschitz * lipschitz),
    }
}
