//! One-dimensional best responses for games without a closed form.

use argmin::core::{CostFunction, Executor};
use argmin::solver::brent::{BrentOpt, BrentRoot};

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

/// Absolute tolerance of the root search on the derivative: a few ulps of order-one strategies.
const ROOT_TOLERANCE: f64 = 1e-15;

/// A maximiser of a concave function on `[0, upper]` from its derivative `gradient`.
///
/// Function values locate a flat maximum only to about `√ε ≈ 1e-8` in the argument, which is
/// not enough to certify an equilibrium to a residual of `1e-10`. For a concave function the
/// derivative is non-increasing, so the maximiser is `0` if `f'(0) ≤ 0`, `upper` if
/// `f'(upper) ≥ 0`, and otherwise the root of `f'`, which Brent's root finder (argmin's
/// `BrentRoot`) brackets to machine precision. If the derivative is not finite at an end or
/// the root search fails, it falls back to [`maximise_on_interval`].
pub fn maximise_concave(f: impl Fn(f64) -> f64, gradient: impl Fn(f64) -> f64, upper: f64) -> f64 {
    let at_zero = gradient(0.0);
    let at_upper = gradient(upper);
    if !(at_zero.is_finite() && at_upper.is_finite()) {
        return maximise_on_interval(f, upper);
    }
    if at_zero <= 0.0 {
        return 0.0;
    }
    if at_upper >= 0.0 {
        return upper;
    }
    let solver = BrentRoot::new(0.0, upper, ROOT_TOLERANCE);
    let run = Executor::new(Derivative(&gradient), solver)
        .configure(|state| state.param(0.5 * upper).max_iters(200))
        .run();
    match run {
        Ok(result) => match result.state().best_param {
            Some(x) if x.is_finite() => x.clamp(0.0, upper),
            _ => maximise_on_interval(f, upper),
        },
        Err(_) => maximise_on_interval(f, upper),
    }
}

struct Derivative<F>(F);

impl<F: Fn(f64) -> f64> CostFunction for Derivative<F> {
    type Param = f64;
    type Output = f64;

    fn cost(&self, x: &f64) -> Result<f64, argmin::core::Error> {
        Ok((self.0)(*x))
    }
}
