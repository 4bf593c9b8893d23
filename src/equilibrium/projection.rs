//! Projected gradient play on VI(F, box).
//!
//! Fixed step: `s ← Π(s − τ F(s))`. With `F` `L`-Lipschitz and `μ`-strongly monotone this is a
//! contraction for `τ < 2μ/L²` (T6); the default step is `μ/L²` from the bounds of the
//! quadratic game, or `2/(L + μ)` (`1/L` when `μ ≤ 0`) when `M` is symmetric, where the
//! iteration is projected gradient ascent on the concave potential (T5).
//!
//! Adaptive step (no Lipschitz constant): Malitsky's adaptive golden-ratio algorithm (aGRAAL),
//! `x̄ ← ((φ−1)x + x̄)/φ`, `x ← Π(x̄ − λ_k F(x))` with
//! `λ_k = min(ρλ_{k−1}, φθ_{k−1}‖Δx‖² / (4λ_{k−1}‖ΔF‖²), λ̄)`, `θ_k = φλ_k/λ_{k−1}`,
//! `φ = 3/2`, `ρ = 1/φ + 1/φ²`. It converges for every monotone, locally Lipschitz `F`,
//! using one evaluation of `F` per iteration.
//!
//! Requirements: `F` monotone (strongly monotone for the fixed step's guarantee).
//! References: A. A. Goldstein (1964); Y. Malitsky, "Golden ratio algorithms for variational
//! inequalities", Math. Programming 184 (2020), Alg. 2.

use rayon::prelude::*;

use super::executor::{residual_of, Algorithm};
use super::operator::Operator;
use crate::error::Result;
use crate::game::Game;

/// Golden-ratio parameter `φ` of aGRAAL.
const PHI: f64 = 1.5;
/// Cap `λ̄` on aGRAAL's step.
const MAX_STEP: f64 = 1e6;

/// `out = Π(x − τ g)`.
pub(crate) fn projected_step<G: Game + ?Sized>(
    game: &G,
    x: &[f64],
    tau: f64,
    g: &[f64],
    out: &mut [f64],
) {
    out.par_iter_mut()
        .enumerate()
        .with_min_len(crate::parallel::ELEMENTS_PER_TASK)
        .for_each(|(i, o)| *o = (x[i] - tau * g[i]).clamp(0.0, game.upper(i)));
}

/// Squared Euclidean distance.
pub(crate) fn distance2(x: &[f64], y: &[f64]) -> f64 {
    crate::parallel::ordered_sum(x.len(), |i| (x[i] - y[i]) * (x[i] - y[i]))
}

/// Fixed-step projected gradient play.
pub(crate) struct FixedProjection {
    step: f64,
    gradient: Vec<f64>,
    next: Vec<f64>,
}

impl FixedProjection {
    pub(crate) fn new(n: usize, step: f64) -> Self {
        FixedProjection {
            step,
            gradient: vec![0.0; n],
            next: vec![0.0; n],
        }
    }
}

impl<G: Operator + ?Sized> Algorithm<G> for FixedProjection {
    fn evaluate(&mut self, game: &G, s: &[f64]) -> Result<f64> {
        game.pseudo_gradient(s, &mut self.gradient);
        Ok(residual_of(game, s, &self.gradient))
    }

    fn advance(&mut self, game: &G, s: &mut [f64]) -> Result<()> {
        projected_step(game, s, self.step, &self.gradient, &mut self.next);
        s.copy_from_slice(&self.next);
        Ok(())
    }
}

/// Malitsky's adaptive golden-ratio algorithm.
pub(crate) struct GoldenRatio {
    gradient: Vec<f64>,
    previous: Vec<f64>,
    previous_gradient: Vec<f64>,
    anchor: Vec<f64>,
    next: Vec<f64>,
    step: f64,
    theta: f64,
    started: bool,
}

impl GoldenRatio {
    pub(crate) fn new(n: usize, initial_step: f64) -> Self {
        GoldenRatio {
            gradient: vec![0.0; n],
            previous: vec![0.0; n],
            previous_gradient: vec![0.0; n],
            anchor: vec![0.0; n],
            next: vec![0.0; n],
            step: initial_step,
            theta: 1.0,
            started: false,
        }
    }
}

impl<G: Operator + ?Sized> Algorithm<G> for GoldenRatio {
    fn evaluate(&mut self, game: &G, s: &[f64]) -> Result<f64> {
        game.pseudo_gradient(s, &mut self.gradient);
        Ok(residual_of(game, s, &self.gradient))
    }

    fn advance(&mut self, game: &G, s: &mut [f64]) -> Result<()> {
        if !self.started {
            // x¹ = Π(x⁰ − λ₀F(x⁰)) and x̄⁰ = x¹ (the paper's initialisation).
            self.started = true;
            self.previous.copy_from_slice(s);
            self.previous_gradient.copy_from_slice(&self.gradient);
            projected_step(game, s, self.step, &self.gradient, &mut self.next);
            s.copy_from_slice(&self.next);
            self.anchor.copy_from_slice(s);
            return Ok(());
        }
        let rho = 1.0 / PHI + 1.0 / (PHI * PHI);
        let dx = distance2(s, &self.previous);
        let df = distance2(&self.gradient, &self.previous_gradient);
        let mut step = rho * self.step;
        if df > 0.0 {
            step = step.min(PHI * self.theta * dx / (4.0 * self.step * df));
        }
        let step = step.min(MAX_STEP);
        let phi = PHI;
        self.anchor
            .par_iter_mut()
            .zip(s.par_iter())
            .with_min_len(crate::parallel::ELEMENTS_PER_TASK)
            .for_each(|(a, &x)| *a = ((phi - 1.0) * x + *a) / phi);
        projected_step(game, &self.anchor, step, &self.gradient, &mut self.next);
        self.theta = PHI * step / self.step;
        self.step = step;
        self.previous.copy_from_slice(s);
        self.previous_gradient.copy_from_slice(&self.gradient);
        s.copy_from_slice(&self.next);
        Ok(())
    }
}
