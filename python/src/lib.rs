//! Python bindings of the `pruning-game` crate (module `pruning_game._core`).
//!
//! The Python package `pruning_game` wraps these functions with NumPy/SciPy conversions,
//! docstrings and result types; this crate only moves data across and maps errors. Every
//! entry point returns a Python exception for bad input (the crate's message, naming field
//! and index) and never lets a panic through.

mod convert;
mod errors;
mod game;
mod model;
mod prune;
mod release;
mod sim;
mod solve;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<game::PyGame>()?;
    m.add_class::<solve::SolveResult>()?;
    m.add_class::<model::PyModel>()?;
    m.add_function(wrap_pyfunction!(game::generate_game, m)?)?;
    m.add_function(wrap_pyfunction!(solve::solve, m)?)?;
    m.add_function(wrap_pyfunction!(solve::analyze, m)?)?;
    m.add_function(wrap_pyfunction!(sim::simulate, m)?)?;
    m.add_function(wrap_pyfunction!(sim::sweep_config_json, m)?)?;
    m.add_function(wrap_pyfunction!(sim::merge, m)?)?;
    m.add_function(wrap_pyfunction!(prune::prune, m)?)?;
    m.add_function(wrap_pyfunction!(model::load_model, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
