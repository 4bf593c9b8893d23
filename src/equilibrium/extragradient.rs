//! Korpelevich's extragradient method on VI(F, box).
//!
//! Update rule: `y = Π(s − τF(s))`, `s ← Π(s − τF(y))`. For monotone `L`-Lipschitz `F` it
//! converges with any fixed `τ < 1/L` (T6); the default is `0.9/L` from the bounds of the
//! quadratic game (or a secant estimate for general games).
//!
//! Adaptive step (no Lipschitz constant): Khobotov's backtracking. Each iteration first tries
//! `τ ← 1.5τ`, then halves `τ` until `τ‖F(y) − F(s)‖ ≤ ν‖y − s‖` with `ν = 0.9`, the local
//! form of `τ < 1/L`; convergence holds for monotone, locally Lipschitz `F`.
//!
//! Requirements: `F` monotone (the game's symmetric part positive semidefinite).
//! References: G. M. Korpelevich, "The extragradient method for finding saddle points and
//! other problems", Ekonomika i Mat. Metody 12 (1976); E. N. Khobotov, USSR Comput. Math.
//! Math. Phys. 27 (1987).

use super::executor::{residual_of, Algorithm};
use super::operator::Operator;
use super::projection::{distance2, projected_step};
use crate::error::Result;

/// Acceptance ratio `ν` of the backtracking rule.
const NU: f64 = 0.9;
/// Growth tried at the start of each adaptive iteration.
const GROWTH: f64 = 1.5;
/// Halvings before the adaptive step gives up and takes the last trial.
const MAX_HALVINGS: usize = 60;

/// The extragradient method, fixed or backtracking step.
pub(crate) struct Extragradient {
    step: f64,
    adaptive: bool,
    gradient: Vec<f64>,
    middle: Vec<f64>,
    middle_gradient: Vec<f64>,
    next: Vec<f64>,
}

impl Extragradient {
    pub(crate) fn new(n: usize, step: f64, adaptive: bool) -> Self {
        Extragradient {
            step,
            adaptive,
            gradient: vec![0.0; n],
            middle: vec![0.0; n],
            middle_gradient: vec![0.0; n],
            next: vec![0.0; n],
        }
    }
}

impl<G: Operator + ?Sized> Algorithm<G> for Extragradient {
    fn evaluate(&mut self, game: &G, s: &[f64]) -> Result<f64> {
        game.pseudo_gradient(s, &mut self.gradient);
        Ok(residual_of(game, s, &self.gradient))
    }

    fn advance(&mut self, game: &G, s: &mut [f64]) -> Result<()> {
        if self.adaptive {
            self.step *= GROWTH;
            for _ in 0..MAX_HALVINGS {
                projected_step(game, s, self.step, &self.gradient, &mut self.middle);
                game.pseudo_gradient(&self.middle, &mut self.middle_gradient);
                let dy = distance2(&self.middle, s);
                let df = distance2(&self.middle_gradient, &self.gradient);
                // A non-finite df fails the test and shrinks the step; the executor sees the
                // non-finite gradient at the next evaluation if shrinking cannot cure it.
                if self.step * self.step * df <= NU * NU * dy {
                    break;
                }
                self.step *= 0.5;
            }
        } else {
            projected_step(game, s, self.step, &self.gradient, &mut self.middle);
            game.pseudo_gradient(&self.middle, &mut self.middle_gradient);
        }
        projected_step(game, s, self.step, &self.middle_gradient, &mut self.next);
        s.copy_from_slice(&self.next);
        Ok(())
    }
}
