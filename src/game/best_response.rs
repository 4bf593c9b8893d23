//! One-dimensional best responses for games without a closed form.

use argmin::core::{CostFunction, Executor};
use argmin::solver::brent::BrentOpt;

/// Absolute tolerance on the maximiser. Brent's method stops at `tol·|x| + eps`, so with
/// strategies of order one the maximiser is located to about `1e-10`, and the utility —
/// flat at an interior optimum — to about `1e-20`.
const BRENT_TOLERANCE: f64 = 1e-11;

struct Negated<F>(F);

impl<F: Fn(f64) -> f64> CostFunction for Negated<F> {
    type Param = f64;
    type Output = f64;

    fn cost(&self, x: &f64) -> Result<f64, argmin::core::Error> {
        Ok(-(self.0)(*x))
    }
}

/// A maximiser of a concave function `f` on `[0, upper]`.
///
/// Brent's method (argmin's `BrentOpt`) finds the interior optimum; both end points are
/// compared as well, since for a concave function the maximum may sit on the boundary where
/// Brent only approaches it. If the optimiser fails (it does not for finite `f`), the better
/// end point is returned.
pub fn maximise_on_interval(f: impl Fn(f64) -> f64, upper: f64) -> f64 {
    let mut best = (0.0, f(0.0));
    let at_upper = f(upper);
    if at_upper > best.1 {
        best = (upper, at_upper);
    }
    let solver = BrentOpt::new(0.0, upper).set_tolerance(BRENT_TOLERANCE, BRENT_TOLERANCE);
    let run = Executor::new(Negated(&f), solver)
        .configure(|state| state.max_iters(200))
        .run();
    if let Ok(result) = run {
        if let Some(&x) = result.state().best_param.as_ref() {
            let x = x.clamp(0.0, upper);
            let value = f(x);
            if value > best.1 {
                best = (x, value);
            }
        }
    }
    best.0
}
