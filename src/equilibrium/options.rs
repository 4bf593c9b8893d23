//! Solver choice and settings: plain data with `Default`, validated once by [`SolveOptions::check`].

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which equilibrium solver to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum SolverKind {
    /// Best-response dynamics (Jacobi or Gauss–Seidel, optionally damped).
    BestResponse,
    /// Projected gradient play on VI(F, box), fixed or adaptive (golden-ratio) step.
    Projection,
    /// Korpelevich's extragradient method, fixed or backtracking step.
    Extragradient,
    /// Semismooth Newton / primal–dual active set on the box LCP (quadratic game only).
    Newton,
}

impl SolverKind {
    /// Every solver, in a fixed order (for tables and shared test suites).
    pub const ALL: [SolverKind; 4] = [
        SolverKind::BestResponse,
        SolverKind::Projection,
        SolverKind::Extragradient,
        SolverKind::Newton,
    ];

    /// The command-line and file name: `best-response`, `projection`, `extragradient`, `newton`.
    pub fn name(self) -> &'static str {
        match self {
            SolverKind::BestResponse => "best-response",
            SolverKind::Projection => "projection",
            SolverKind::Extragradient => "extragradient",
            SolverKind::Newton => "newton",
        }
    }
}

impl fmt::Display for SolverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SolverKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        SolverKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "solver",
                    format!("`{s}` is not one of best-response, projection, extragradient, newton"),
                )
            })
    }
}

/// Settings shared by every solver; knobs a solver does not use are ignored by it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SolveOptions {
    /// Stop when the natural residual `‖s − Π(s − F(s))‖_∞` is at most this (> 0).
    pub tolerance: f64,
    /// Iteration budget (each solver's own step counts as one iteration).
    pub max_iterations: usize,
    /// Starting profile (projected onto the box); `None` starts from `s = 0`.
    pub initial: Option<Vec<f64>>,
    /// Best response: `s ← s + ω (BR(s) − s)` with `ω ∈ (0, 1]` (1 = undamped).
    pub damping: f64,
    /// Best response: update players one after another (Gauss–Seidel) instead of all at once
    /// (Jacobi, parallel).
    pub gauss_seidel: bool,
    /// Projection / extragradient: a fixed step `τ > 0`; `None` derives it from a Lipschitz
    /// estimate of `F` (and, for projection on non-symmetric games, a monotonicity bound).
    pub step: Option<f64>,
    /// Projection / extragradient: choose the step on the fly, without a Lipschitz constant
    /// (golden-ratio algorithm for projection, backtracking for extragradient).
    pub adaptive: bool,
    /// Keep the natural residual of every iterate in the report.
    pub record_history: bool,
    /// Report [`Termination::Diverged`](super::Termination::Diverged) when the residual exceeds
    /// this multiple of the best residual seen so far (> 1).
    pub divergence_factor: f64,
    /// Report [`Termination::Stalled`](super::Termination::Stalled) when the best residual has
    /// not fallen by 1% within this many iterations; `None` never stalls.
    pub stall_window: Option<usize>,
    /// Stops the run at the next iteration once cancelled from another thread (an
    /// interactive session's Ctrl-C), with [`Termination::Cancelled`](super::Termination::Cancelled).
    #[serde(skip)]
    pub cancel: Option<Cancel>,
}

/// A flag another thread raises to stop a running solve; clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag not yet raised.
    pub fn new() -> Self {
        Cancel::default()
    }

    /// Asks every solve holding this flag (or a clone) to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Two options are equal when they would run the same solve: clones of one flag are equal.
impl PartialEq for Cancel {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            tolerance: 1e-10,
            max_iterations: 10_000,
            initial: None,
            damping: 1.0,
            gauss_seidel: false,
            step: None,
            adaptive: false,
            record_history: true,
            divergence_factor: 1e6,
            stall_window: Some(2_000),
            cancel: None,
        }
    }
}

impl SolveOptions {
    /// Options with the given tolerance and budget, everything else default.
    pub fn new(tolerance: f64, max_iterations: usize) -> Self {
        SolveOptions {
            tolerance,
            max_iterations,
            ..Default::default()
        }
    }

    /// Checks every field's range (the initial profile is checked against the game by the
    /// solver, which knows its size).
    pub fn check(&self) -> Result<()> {
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return Err(Error::invalid(
                "tolerance",
                format!("{} must be finite and > 0", self.tolerance),
            ));
        }
        if !(self.damping > 0.0 && self.damping <= 1.0) {
            return Err(Error::invalid(
                "damping",
                format!("{} must lie in (0, 1]", self.damping),
            ));
        }
        if let Some(step) = self.step {
            if !(step.is_finite() && step > 0.0) {
                return Err(Error::invalid(
                    "step",
                    format!("{step} must be finite and > 0"),
                ));
            }
        }
        if self.divergence_factor.is_nan() || self.divergence_factor <= 1.0 {
            return Err(Error::invalid(
                "divergence_factor",
                format!("{} must be > 1", self.divergence_factor),
            ));
        }
        if self.stall_window == Some(0) {
            return Err(Error::invalid(
                "stall_window",
                "0 iterations; use None to disable",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solver_names_round_trip() {
        for kind in SolverKind::ALL {
            assert_eq!(kind.to_string().parse::<SolverKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
        }
        assert!(matches!(
            "newtonian".parse::<SolverKind>(),
            Err(Error::InvalidParameter { .. })
        ));
    }

    #[test]
    fn check_rejects_each_bad_field() {
        assert!(SolveOptions::default().check().is_ok());
        let bad = [
            SolveOptions {
                tolerance: f64::NAN,
                ..Default::default()
            },
            SolveOptions {
                tolerance: -1.0,
                ..Default::default()
            },
            SolveOptions {
                damping: 1.5,
                ..Default::default()
            },
            SolveOptions {
                step: Some(0.0),
                ..Default::default()
            },
            SolveOptions {
                divergence_factor: 1.0,
                ..Default::default()
            },
            SolveOptions {
                stall_window: Some(0),
                ..Default::default()
            },
        ];
        for options in bad {
            assert!(options.check().is_err(), "{options:?}");
        }
    }
}
