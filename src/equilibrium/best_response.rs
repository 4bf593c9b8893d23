//! Best-response dynamics.
//!
//! Update rule, with damping `ω ∈ (0, 1]`:
//! * Jacobi: `s_i ← s_i + ω (BR_i(s) − s_i)` for all `i` at once (rayon-parallel);
//! * Gauss–Seidel: the same, one player after another, each seeing the newest profile.
//!
//! For the quadratic game `BR_i(s) = Π_[0,u_i]((q_i − Σ_j C_ij s_j)/a_i)` (closed form, read
//! off the pseudo-gradient already computed for the residual); for a general game it is the
//! game's own [`Game::best_response`](crate::game::Game::best_response) (Brent's method by
//! default). Requirements: utilities concave in the own strategy. Convergence (T6): Jacobi
//! converges when `ρ(D⁻¹C) < 1` (e.g. strict diagonal dominance); Gauss–Seidel converges on
//! potential games with `M ≻ 0` (it is coordinate ascent on the potential). Damping helps when
//! Jacobi oscillates (`ρ` close to 1 from eigenvalues near −1).
//!
//! References: D. P. Bertsekas and J. N. Tsitsiklis, *Parallel and Distributed Computation*
//! (1989), ch. 3; D. Monderer and L. Shapley, "Potential games" (1996).

use nalgebra::DMatrix;
use rayon::prelude::*;

use super::executor::{residual_of, Algorithm};
use super::operator::Operator;
use crate::error::Result;

/// Jacobi or Gauss–Seidel best-response iteration.
pub(crate) struct BestResponse {
    damping: f64,
    gauss_seidel: bool,
    gradient: Vec<f64>,
    responses: Vec<f64>,
    rows: Option<DMatrix<f64>>,
}

impl BestResponse {
    pub(crate) fn new(n: usize, damping: f64, gauss_seidel: bool) -> Self {
        BestResponse {
            damping,
            gauss_seidel,
            gradient: vec![0.0; n],
            responses: if gauss_seidel {
                Vec::new()
            } else {
                vec![0.0; n]
            },
            rows: None,
        }
    }
}

impl<G: Operator + ?Sized> Algorithm<G> for BestResponse {
    fn evaluate(&mut self, game: &G, s: &[f64]) -> Result<f64> {
        game.pseudo_gradient(s, &mut self.gradient);
        Ok(residual_of(game, s, &self.gradient))
    }

    fn advance(&mut self, game: &G, s: &mut [f64]) -> Result<()> {
        let omega = self.damping;
        if self.gauss_seidel {
            game.gauss_seidel_sweep(s, omega, &mut self.rows);
            return Ok(());
        }
        if !game.responses_from_gradient(s, &self.gradient, &mut self.responses) {
            game.best_responses(s, &mut self.responses);
        }
        s.par_iter_mut()
            .zip(self.responses.par_iter())
            .for_each(|(x, &r)| *x += omega * (r - *x));
        Ok(())
    }
}
