//! `simulate`: a sweep file's grid run by the crate's sweep runner into a results folder.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use pruning_game::sim::{
    load_results, merge as merge_shards, run_sweep, summarise, Row, Shard, SweepConfig,
    SweepOptions,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::to_python;
use crate::errors::IntoPy;
use crate::release::{detached, run_released};

fn row_dict<'py>(py: Python<'py>, r: &Row) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("cell", r.cell)?;
    d.set_item("replicate", r.replicate)?;
    d.set_item("seed", r.seed)?;
    let p = &r.params;
    d.set_item("players", p.players)?;
    d.set_item("topology", &p.topology)?;
    d.set_item("symmetric", p.symmetric)?;
    d.set_item("gamma", p.gamma)?;
    d.set_item("beta", p.beta)?;
    d.set_item("alpha", p.alpha)?;
    d.set_item("dominance", p.dominance)?;
    d.set_item("benefit", &p.benefit)?;
    d.set_item("solver", &p.solver)?;
    d.set_item("tolerance", p.tolerance)?;
    d.set_item("iterations", r.iterations)?;
    d.set_item("nash_gap", r.nash_gap)?;
    d.set_item("residual", r.residual)?;
    d.set_item("converged", r.converged)?;
    d.set_item("termination", &r.termination)?;
    d.set_item("pruned_fraction", r.pruned_fraction)?;
    d.set_item("proved_pruned_fraction", r.proved_pruned_fraction)?;
    d.set_item("negative_q_fraction", r.negative_q_fraction)?;
    d.set_item("uniqueness", &r.uniqueness)?;
    d.set_item("seconds", r.seconds)?;
    Ok(d)
}

/// Parses a sweep configuration: a file (`.toml` / `.json`) or text in one of the forms.
#[pyfunction]
#[pyo3(signature = (path=None, text=None, form="toml"))]
pub fn sweep_config_json(
    path: Option<PathBuf>,
    text: Option<&str>,
    form: &str,
) -> PyResult<String> {
    let config = read_config(path.as_deref(), text, form)?;
    serde_json::to_string(&config)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
}

fn read_config(path: Option<&Path>, text: Option<&str>, form: &str) -> PyResult<SweepConfig> {
    let source = Path::new("<config>");
    match (path, text) {
        (Some(p), None) => SweepConfig::from_path(p).py(),
        (None, Some(t)) if form == "json" => SweepConfig::from_json_str(t, source).py(),
        (None, Some(t)) => SweepConfig::from_toml_str(t, source).py(),
        _ => Err(pruning_game::Error::invalid(
            "config",
            "give a path or a text, not both",
        ))
        .py(),
    }
}

/// Runs (or resumes) a sweep into `out`; returns `(rows, summary, run)` where `rows` is a
/// list of dicts (one per finished game, in cell and replicate order) and `summary` the
/// per-cell statistics of `summary.json`.
#[pyfunction]
#[pyo3(signature = (out, *, path=None, text=None, form="toml", shard=None, stop_after=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn simulate<'py>(
    py: Python<'py>,
    out: PathBuf,
    path: Option<PathBuf>,
    text: Option<&str>,
    form: &str,
    shard: Option<&str>,
    stop_after: Option<usize>,
    progress: Option<Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyList>, Py<PyAny>, Bound<'py, PyDict>)> {
    let config = read_config(path.as_deref(), text, form)?;
    let shard: Option<Shard> = shard.map(str::parse).transpose().py()?;
    let total = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let mut reported = usize::MAX;
    let outcome = {
        let (config, out, total, done) = (&config, &out, &total, &done);
        run_released(
            py,
            move || {
                let on_start = |games: usize, resumed: usize| {
                    total.store(games, Ordering::Relaxed);
                    done.store(resumed, Ordering::Relaxed);
                };
                let on_row = |_: &Row| {
                    done.fetch_add(1, Ordering::Relaxed);
                };
                let options = SweepOptions {
                    shard,
                    on_start: Some(&on_start),
                    on_row: Some(&on_row),
                    stop_after,
                };
                run_sweep(config, out, &options)
            },
            |_| {
                let now = done.load(Ordering::Relaxed);
                match &progress {
                    Some(callback) if now != reported => {
                        reported = now;
                        callback.call1((now, total.load(Ordering::Relaxed)))?;
                        Ok(())
                    }
                    _ => Ok(()),
                }
            },
            || {},
        )?
        .py()?
    };
    if let Some(callback) = &progress {
        callback.call1((outcome.resumed + outcome.ran, outcome.total))?;
    }
    let rows = detached(py, || load_results(&out))?.py()?;
    let summary = to_python(py, &summarise(&rows, config.name.as_deref()))?;
    let list = PyList::empty(py);
    for r in &rows {
        list.append(row_dict(py, r)?)?;
    }
    let run = PyDict::new(py);
    run.set_item("total", outcome.total)?;
    run.set_item("resumed", outcome.resumed)?;
    run.set_item("ran", outcome.ran)?;
    run.set_item("complete", outcome.complete)?;
    run.set_item("out", outcome.out_dir)?;
    Ok((list, summary, run))
}

/// Joins complete shard folders of one sweep into `out` (as `pruning-game merge`); returns
/// `(rows, summary)` of the merged results.
#[pyfunction]
#[pyo3(signature = (shards, out, *, allow_partial=false))]
pub fn merge<'py>(
    py: Python<'py>,
    shards: Vec<PathBuf>,
    out: PathBuf,
    allow_partial: bool,
) -> PyResult<(Bound<'py, PyList>, Py<PyAny>)> {
    let rows = detached(py, || {
        merge_shards(&shards, &out, allow_partial)?;
        load_results(&out)
    })?
    .py()?;
    let manifest = pruning_game::sim::Manifest::read(&out).py()?;
    let summary = to_python(py, &summarise(&rows, manifest.config.name.as_deref()))?;
    let list = PyList::empty(py);
    for r in &rows {
        list.append(row_dict(py, r)?)?;
    }
    Ok((list, summary))
}
