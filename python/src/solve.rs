//! `solve` and `analyze` on a game, with the GIL released and Ctrl-C answered.

use numpy::{PyArray1, PyReadonlyArray1};
use pruning_game::dominance::{
    analyze as analyze_game, dominated_players, iterated_elimination, provably_pruned_near,
    AnalysisOptions, NearOptions,
};
use pruning_game::equilibrium::{solve as solve_game, Cancel, SolveOptions, SolverKind};
use pruning_game::game::Game;
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::to_python;
use crate::errors::IntoPy;
use crate::game::{check_profile, PyGame};
use crate::release::run_released;

/// What `solve` returns: the profile, its certificate and the dominance proofs.
#[pyclass(module = "pruning_game._core", name = "SolveResult", frozen, get_all)]
pub struct SolveResult {
    /// The profile `s` the solver returned (inside the box).
    participation: Py<PyArray1<f64>>,
    /// Nash gap of `participation`, recomputed from the game.
    nash_gap: f64,
    /// Natural residual `‖s − Π(s − F(s))‖_∞`, recomputed from the game.
    residual: f64,
    /// Solver steps taken.
    iterations: usize,
    /// `converged`, `max_iterations`, `diverged`, `non_finite` or `stalled`.
    termination: String,
    /// Whether `residual` is within the tolerance.
    converged: bool,
    /// The solver's name.
    solver: String,
    /// Players with `s_i` exactly 0, increasing.
    pruned: Py<PyArray1<i64>>,
    /// Players proved 0 in every equilibrium (T3/T4), increasing; empty with `prove=False`.
    dominated: Py<PyArray1<i64>>,
    /// Pruned players the proofs could not reach within their budget.
    undetermined: Py<PyArray1<i64>>,
    /// Residual of every iterate (empty unless `record_history=True`).
    residual_history: Py<PyArray1<f64>>,
    /// Seconds of the solve itself (as the CLI reports it).
    seconds: f64,
    /// Seconds of the dominance proofs.
    proof_seconds: f64,
}

#[pymethods]
impl SolveResult {
    fn __repr__(&self) -> String {
        format!(
            "SolveResult(solver={:?}, termination={:?}, iterations={}, residual={:.3e}, nash_gap={:.3e})",
            self.solver, self.termination, self.iterations, self.residual, self.nash_gap
        )
    }
}

fn indices(py: Python<'_>, v: impl IntoIterator<Item = usize>) -> Py<PyArray1<i64>> {
    PyArray1::from_vec(py, v.into_iter().map(|i| i as i64).collect()).unbind()
}

/// The serde name of a value (`max_iterations`, `row_diagonal_dominance`).
fn serde_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// Solves the game (see `pruning_game.solve`).
#[pyfunction]
#[pyo3(signature = (game, solver="newton", tol=1e-10, max_iter=10_000, *, damping=1.0,
    gauss_seidel=false, step=None, adaptive=false, initial=None, prove=true,
    record_history=false))]
#[allow(clippy::too_many_arguments)]
pub fn solve(
    py: Python<'_>,
    game: &Bound<'_, PyGame>,
    solver: &str,
    tol: f64,
    max_iter: usize,
    damping: f64,
    gauss_seidel: bool,
    step: Option<f64>,
    adaptive: bool,
    initial: Option<PyReadonlyArray1<'_, f64>>,
    prove: bool,
    record_history: bool,
) -> PyResult<SolveResult> {
    let kind: SolverKind = solver.parse().py()?;
    let game = &game.get().game;
    let initial = match initial {
        Some(a) => {
            let v: Vec<f64> = a.as_array().iter().copied().collect();
            check_profile("initial", &v, game.num_players()).py()?;
            Some(v)
        }
        None => None,
    };
    let cancel = Cancel::new();
    let options = SolveOptions {
        tolerance: tol,
        max_iterations: max_iter,
        initial,
        damping,
        gauss_seidel,
        step,
        adaptive,
        record_history,
        cancel: Some(cancel.clone()),
        ..SolveOptions::default()
    };
    options.check().py()?;
    let flag = cancel.clone();
    let (solution, near, proof_seconds) = run_released(
        py,
        move || -> pruning_game::Result<_> {
            let solution = solve_game(game, kind, &options)?;
            if !prove || flag.is_cancelled() {
                return Ok((solution, None, 0.0));
            }
            let start = std::time::Instant::now();
            let near = provably_pruned_near(game, &solution.profile, &NearOptions::default())?;
            Ok((solution, Some(near), start.elapsed().as_secs_f64()))
        },
        |_| Ok(()),
        || cancel.cancel(),
    )?
    .py()?;
    if solution.report.termination == pruning_game::equilibrium::Termination::Cancelled {
        // Cancelled without a signal left to raise (the handler returned normally).
        return Err(PyKeyboardInterrupt::new_err("solve cancelled"));
    }
    let report = solution.report;
    let pruned = solution
        .profile
        .iter()
        .enumerate()
        .filter(|(_, &s)| s == 0.0)
        .map(|(i, _)| i);
    let pruned = indices(py, pruned);
    let (dominated, undetermined) = match near {
        Some(near) => (indices(py, near.dominated), indices(py, near.undetermined)),
        None => (indices(py, []), indices(py, [])),
    };
    Ok(SolveResult {
        // The profile moves into NumPy without a copy.
        participation: PyArray1::from_vec(py, solution.profile).unbind(),
        nash_gap: report.certificate.nash_gap,
        residual: report.certificate.natural_residual,
        iterations: report.iterations,
        termination: serde_name(&report.termination),
        converged: report.converged,
        solver: report.solver.to_string(),
        pruned,
        dominated,
        undetermined,
        residual_history: PyArray1::from_vec(py, report.residual_history).unbind(),
        seconds: report.seconds,
        proof_seconds,
    })
}

/// Everything `pruning-game analyze` reports, as a dict, plus the per-player arrays: the
/// T3 margins and the T4 bracket.
#[pyfunction]
#[pyo3(signature = (game, *, tol=1e-12, max_sweeps=10_000, power_iterations=None,
    eigen_limit=1000, at=None))]
pub fn analyze<'py>(
    py: Python<'py>,
    game: &Bound<'py, PyGame>,
    tol: f64,
    max_sweeps: usize,
    power_iterations: Option<usize>,
    eigen_limit: usize,
    at: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<Bound<'py, PyDict>> {
    let game = &game.get().game;
    let mut options = AnalysisOptions::default();
    options.elimination.tolerance = tol;
    options.elimination.max_sweeps = max_sweeps;
    options.spectral.dense_eigen_limit = eigen_limit;
    let work = game.competition().nnz() + game.num_players();
    // The CLI's budget: about 2·10^9 multiply-adds, 20 to 200 power iterations.
    options.spectral.power_iterations =
        power_iterations.unwrap_or_else(|| (2_000_000_000 / work.max(1)).clamp(20, 200));
    if let Some(a) = at {
        options.profile = Some(a.as_array().iter().copied().collect());
    }
    let elimination = options.elimination;
    let (analysis, bounds, margins) = run_released(
        py,
        move || -> pruning_game::Result<_> {
            let analysis = analyze_game(game, &options)?;
            let bounds = iterated_elimination(game, &elimination)?;
            Ok((analysis, bounds, dominated_players(game)))
        },
        |_| Ok(()),
        || {},
    )?
    .py()?;
    let dict = to_python(py, &analysis)?
        .into_bound(py)
        .cast_into::<PyDict>()?;
    dict.set_item("lower", PyArray1::from_vec(py, bounds.lower))?;
    dict.set_item("upper", PyArray1::from_vec(py, bounds.upper))?;
    let (players, margin): (Vec<usize>, Vec<f64>) =
        margins.into_iter().map(|m| (m.player, m.margin)).unzip();
    dict.set_item("margin_players", indices(py, players))?;
    dict.set_item("margins", PyArray1::from_vec(py, margin))?;
    let verdict = &analysis.uniqueness.verdict;
    let (unique, test) = match verdict {
        pruning_game::dominance::Uniqueness::Unique { by } => (true, Some(serde_name(by))),
        pruning_game::dominance::Uniqueness::Unknown => (false, None),
    };
    dict.set_item("unique", unique)?;
    dict.set_item("uniqueness_test", test)?;
    Ok(dict)
}
