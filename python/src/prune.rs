//! `prune`: the CLI's pruning pipeline (`prune::pipeline::run_job`) behind one function.
//!
//! Settings reach the pruner only as `key=value` overrides of the default configuration —
//! the keys of a run's `config.json`, as `--set` takes them — so this binding does not name
//! the configuration's fields and survives their redesign. Progress is read from the files
//! the pipeline writes into the run folder (a checkpoint after every epoch of the game).

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use pruning_game::nn::data::{fashion_mnist, load_idx_dir, teacher_student, TeacherConfig};
use pruning_game::nn::InputSpec;
use pruning_game::prune::pipeline::{run_job, Architecture, Job};
use pruning_game::prune::{Baseline, PruneConfig};
use pruning_game::Error;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::to_python;
use crate::errors::IntoPy;
use crate::release::run_released;

/// Where a run stands, from its folder: `(stage, game checkpoints seen)`.
struct Watch {
    dir: PathBuf,
    last: Option<SystemTime>,
    checkpoints: usize,
    stage: &'static str,
}

impl Watch {
    fn modified(path: &Path) -> Option<SystemTime> {
        std::fs::metadata(path).and_then(|m| m.modified()).ok()
    }

    /// Updates the state; true when it changed.
    fn update(&mut self) -> bool {
        let before = (self.stage, self.checkpoints);
        let state = Self::modified(&self.dir.join("game").join("checkpoint.safetensors"));
        if state.is_some() && state != self.last {
            self.last = state;
            self.checkpoints += 1;
        }
        self.stage = if self.dir.join("report.json").exists() {
            "done"
        } else if self.dir.join("dense.ckpt.safetensors").exists() {
            "dense"
        } else if self.dir.join("refit.ckpt.safetensors").exists() {
            "refit"
        } else {
            "game"
        };
        before != (self.stage, self.checkpoints)
    }
}

/// Runs a pruning job into `out` and returns its report (`report.json`) as a dict.
#[pyfunction]
#[pyo3(signature = (out, *, model="mlp", dataset="teacher", data_dir=None, hidden=None,
    depth=8, init=None, seed=42, target_kept=None, baselines=false, resume=false,
    settings=Vec::new(), progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn prune<'py>(
    py: Python<'py>,
    out: PathBuf,
    model: &str,
    dataset: &str,
    data_dir: Option<PathBuf>,
    hidden: Option<Vec<usize>>,
    depth: usize,
    init: Option<PathBuf>,
    seed: u64,
    target_kept: Option<f64>,
    baselines: bool,
    resume: bool,
    settings: Vec<String>,
    progress: Option<Bound<'py, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let teacher = TeacherConfig::default();
    let is_teacher = dataset == "teacher";
    let architecture = match (init, model) {
        (Some(path), _) => Architecture::File { path },
        (None, "mlp") => Architecture::Mlp {
            hidden: hidden.unwrap_or(if is_teacher {
                vec![4 * teacher.width]
            } else {
                vec![512, 256]
            }),
        },
        (None, "cnn") => Architecture::Cnn,
        (None, "bn-cnn") => Architecture::BnCnn {
            widths: vec![32, 64, 128],
        },
        (None, "resnet") => Architecture::Resnet { depth },
        (None, other) => {
            return Err(Error::invalid(
                "model",
                format!("`{other}` is not mlp, cnn, bn-cnn or resnet"),
            ))
            .py()
        }
    };
    if let Architecture::Mlp { hidden } = &architecture {
        if hidden.is_empty() || hidden.contains(&0) {
            return Err(Error::invalid("hidden", "need at least one width, all > 0")).py();
        }
    }
    let base = if is_teacher {
        PruneConfig::teacher_default()
    } else {
        PruneConfig::default()
    };
    let mut overrides = vec![format!("seed={seed}")];
    if let Some(f) = target_kept {
        overrides.push(format!("target_kept={f}"));
    }
    overrides.extend(settings);
    let config = base.with_overrides(&overrides).py()?;
    let start = Instant::now();
    let mut watch = Watch {
        dir: out.clone(),
        last: None,
        checkpoints: 0,
        stage: "data",
    };
    let job_out = out.clone();
    let dataset = dataset.to_string();
    let report = run_released(
        py,
        move || -> pruning_game::Result<_> {
            let (name, (train, test)) = match (dataset.as_str(), &data_dir) {
                ("teacher", _) => (
                    format!("teacher-student (teacher width {})", teacher.width),
                    teacher_student(&teacher)?,
                ),
                ("fashion-mnist", Some(dir)) | ("idx", Some(dir)) => (
                    dataset.clone(),
                    load_idx_dir(dir, &InputSpec::fashion_mnist())?,
                ),
                ("fashion-mnist", None) => (
                    dataset.clone(),
                    fashion_mnist()?.ok_or_else(|| {
                        Error::invalid("dataset", "Fashion-MNIST is not installed; pass data_dir")
                    })?,
                ),
                (other, _) => {
                    return Err(Error::invalid(
                        "dataset",
                        format!("`{other}` is not teacher, fashion-mnist or idx (with data_dir)"),
                    ))
                }
            };
            let job = Job {
                architecture,
                config,
                baselines: if baselines {
                    Baseline::ALL.to_vec()
                } else {
                    Vec::new()
                },
                slimming_lambda: 1e-4,
                dataset: name,
            };
            run_job(&job, &train, &test, &job_out, resume)
        },
        |py| {
            if let Some(callback) = &progress {
                if watch.update() {
                    let event = PyDict::new(py);
                    event.set_item("stage", watch.stage)?;
                    event.set_item("checkpoints", watch.checkpoints)?;
                    event.set_item("seconds", start.elapsed().as_secs_f64())?;
                    callback.call1((event,))?;
                }
            }
            Ok(())
        },
        || {},
    )?
    .py()?;
    if let Some(callback) = &progress {
        watch.update();
        let event = PyDict::new(py);
        event.set_item("stage", "done")?;
        event.set_item("checkpoints", watch.checkpoints)?;
        event.set_item("seconds", start.elapsed().as_secs_f64())?;
        callback.call1((event,))?;
    }
    to_python(py, &report)
}
