//! The one loop every solver runs in: budgets, tolerance, divergence and stall detection, and
//! the certificate of whatever profile the loop ends with.
//!
//! An algorithm owns one step (argmin's `Solver::next_iter`); [`run`] owns the rest, so a new
//! solver is one file implementing [`Algorithm`] plus one line in [`super::solve`].

use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::options::{SolveOptions, SolverKind};
use crate::error::{Error, Result};
use crate::game::{Certificate, Game};

/// Why a solver stopped. Only [`Termination::Converged`] comes with `converged: true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// The natural residual reached the tolerance (confirmed by the final certificate).
    Converged,
    /// The iteration budget ran out first.
    MaxIterations,
    /// The residual grew past `divergence_factor` times the best residual seen.
    Diverged,
    /// An iterate or its pseudo-gradient became NaN or infinite.
    NonFinite,
    /// The best residual did not fall by 1% within `stall_window` iterations.
    Stalled,
    /// [`SolveOptions::cancel`] was raised from another thread.
    Cancelled,
}

impl std::fmt::Display for Termination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Termination::Converged => "converged",
            Termination::MaxIterations => "iteration budget exhausted",
            Termination::Diverged => "diverged",
            Termination::NonFinite => "non-finite iterate",
            Termination::Stalled => "stalled",
            Termination::Cancelled => "cancelled",
        })
    }
}

/// What a solver did, with the certificate of the profile it returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolveReport {
    /// The solver that ran.
    pub solver: SolverKind,
    /// Steps taken (the profile returned is the `iterations`-th iterate).
    pub iterations: usize,
    /// Nash gap and natural residual of the returned profile, computed afresh from the game.
    pub certificate: Certificate,
    /// Whether the certificate's natural residual is within the tolerance.
    pub converged: bool,
    /// Why the loop stopped.
    pub termination: Termination,
    /// Natural residual of iterate `k` at index `k` (empty unless `record_history`).
    pub residual_history: Vec<f64>,
    /// Wall-clock time including set-up (Lipschitz estimates, symmetry checks).
    pub seconds: f64,
}

/// A profile and the report that certifies it; solvers return nothing less.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    /// The last iterate, inside the strategy box.
    pub profile: Vec<f64>,
    /// How it was obtained and how good it is.
    pub report: SolveReport,
}

/// One solver step, in two halves so that the executor can test the current iterate before
/// paying for the next one.
pub(crate) trait Algorithm<G: ?Sized> {
    /// Evaluates the iterate `s` (typically `F(s)`, kept for [`Algorithm::advance`]) and
    /// returns its natural residual — NaN if `s` or `F(s)` is not finite.
    fn evaluate(&mut self, game: &G, s: &[f64]) -> Result<f64>;

    /// Replaces `s` by the next iterate; called only right after `evaluate(s)`.
    fn advance(&mut self, game: &G, s: &mut [f64]) -> Result<()>;
}

/// `‖s − Π(s − f)‖_∞` given `f = F(s)`, NaN when anything is not finite (an infinite gradient
/// would otherwise be hidden by the projection).
pub(crate) fn residual_of<G: Game + ?Sized>(game: &G, s: &[f64], f: &[f64]) -> f64 {
    s.par_iter()
        .zip(f.par_iter())
        .enumerate()
        .with_min_len(crate::parallel::ELEMENTS_PER_TASK)
        .map(|(i, (&s, &f))| {
            if s.is_finite() && f.is_finite() {
                (s - (s - f).clamp(0.0, game.upper(i))).abs()
            } else {
                f64::NAN
            }
        })
        .reduce(|| 0.0, nan_max)
}

/// `max` that keeps NaN.
pub(crate) fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// The starting profile: `options.initial` checked and projected onto the box, or zeros.
pub(crate) fn initial_profile<G: Game + ?Sized>(
    game: &G,
    options: &SolveOptions,
) -> Result<Vec<f64>> {
    let n = game.num_players();
    if n == 0 {
        return Err(Error::EmptyGame);
    }
    match &options.initial {
        None => Ok(vec![0.0; n]),
        Some(initial) => {
            if initial.len() != n {
                return Err(Error::LengthMismatch {
                    field: "initial".into(),
                    expected: n,
                    got: initial.len(),
                });
            }
            if let Some(index) = initial.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    field: "initial".into(),
                    index,
                    value: initial[index],
                });
            }
            let mut s = initial.clone();
            game.project(&mut s);
            Ok(s)
        }
    }
}

/// Runs `algorithm` from `s` until it converges, exhausts the budget, diverges, stalls or
/// meets a non-finite value, and certifies the profile it stops at.
pub(crate) fn run<G: Game + ?Sized, A: Algorithm<G>>(
    game: &G,
    kind: SolverKind,
    algorithm: &mut A,
    mut s: Vec<f64>,
    options: &SolveOptions,
    start: Instant,
) -> Result<Solution> {
    let mut history = Vec::new();
    let mut best = f64::INFINITY;
    // Stall tracking: the last residual that improved on its predecessor mark by 1%.
    let mut mark = f64::INFINITY;
    let mut mark_at = 0usize;
    let mut iterations = 0usize;
    let termination = loop {
        let r = algorithm.evaluate(game, &s)?;
        if options.record_history {
            history.push(r);
        }
        if !r.is_finite() || s.iter().any(|v| !v.is_finite()) {
            break Termination::NonFinite;
        }
        if r <= options.tolerance {
            break Termination::Converged;
        }
        best = best.min(r);
        if r > options.divergence_factor * best {
            break Termination::Diverged;
        }
        if r < 0.99 * mark {
            mark = r;
            mark_at = iterations;
        }
        if let Some(window) = options.stall_window {
            if iterations - mark_at >= window {
                break Termination::Stalled;
            }
        }
        if iterations >= options.max_iterations {
            break Termination::MaxIterations;
        }
        if options.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
            break Termination::Cancelled;
        }
        algorithm.advance(game, &mut s)?;
        iterations += 1;
    };
    let certificate = Certificate::of(game, &s);
    let converged =
        termination == Termination::Converged && certificate.natural_residual <= options.tolerance;
    // The algorithm's residual and the certificate's are the same formula; should rounding
    // ever make them disagree, the certificate wins and the run is not called converged.
    let termination = if termination == Termination::Converged && !converged {
        Termination::Stalled
    } else {
        termination
    };
    Ok(Solution {
        profile: s,
        report: SolveReport {
            solver: kind,
            iterations,
            certificate,
            converged,
            termination,
            residual_history: history,
            seconds: start.elapsed().as_secs_f64(),
        },
    })
}
