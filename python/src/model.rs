//! `load_model`: a model file read by the crate's graph loader, and its forward pass.
//!
//! This is how Python checks that a file another tool wrote (PyTorch through
//! `pruning_game_torch.from_torch`) means to the Rust backend what it meant there.

use std::path::PathBuf;

use numpy::{PyArray2, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pruning_game::nn::graph::{Graph, GraphWorkspace, Mode};
use pruning_game::Error;
use pyo3::prelude::*;

use crate::convert::to_python;
use crate::errors::IntoPy;
use crate::release::detached;

/// Samples per forward pass: bounds the workspace of large inputs.
const CHUNK: usize = 256;

/// A network loaded by the crate (sequential or graph file), in evaluation mode.
#[pyclass(module = "pruning_game._core", name = "Model", frozen)]
pub struct PyModel {
    graph: Graph,
    path: PathBuf,
}

#[pymethods]
impl PyModel {
    /// Per-sample input shape.
    #[getter]
    fn input_shape(&self) -> Vec<usize> {
        self.graph.input().shape.clone()
    }

    /// The file's input spec: `shape`, `scale`, `mean`, `std`.
    #[getter]
    fn input(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, self.graph.input())
    }

    /// Number of outputs (classes).
    #[getter]
    fn outputs(&self) -> usize {
        self.graph.output_len()
    }

    /// Parameters (weights, biases, BatchNorm's affine parameters and buffers).
    #[getter]
    fn parameter_count(&self) -> usize {
        self.graph.parameter_count()
    }

    /// Names of the parameters, as PyTorch's `state_dict` keys.
    fn parameter_names(&self) -> Vec<String> {
        self.graph.params().iter().map(|p| p.name.clone()).collect()
    }

    /// Logits `[batch, outputs]` (float32) of preprocessed inputs `[batch, *input_shape]`.
    fn logits<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let shape = x.shape().to_vec();
        let per = self.graph.input_len();
        let want = self.input_shape();
        if shape.len() != want.len() + 1 || shape[1..] != want[..] {
            return Err(Error::invalid(
                "x",
                format!(
                    "shape {shape:?} is not [batch, {}] for {}",
                    want.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.path.display()
                ),
            ))
            .py();
        }
        let batch = shape[0];
        let data: Vec<f32> = match x.as_slice() {
            Ok(s) => s.to_vec(),
            Err(_) => x.as_array().iter().copied().collect(),
        };
        let graph = &self.graph;
        let outputs = graph.output_len();
        let logits = detached(py, move || -> pruning_game::Result<Vec<f32>> {
            let mut out = Vec::with_capacity(batch * outputs);
            let mut ws = GraphWorkspace::new(graph, CHUNK.min(batch.max(1)));
            for start in (0..batch).step_by(CHUNK) {
                let b = CHUNK.min(batch - start);
                let y = graph.forward(
                    &mut ws,
                    &data[start * per..(start + b) * per],
                    b,
                    Mode::Eval,
                )?;
                out.extend_from_slice(y);
            }
            Ok(out)
        })?
        .py()?;
        let array = numpy::PyArray1::from_vec(py, logits);
        array.reshape([batch, outputs])
    }

    fn __repr__(&self) -> String {
        format!(
            "Model({:?}, input {:?}, {} outputs, {} parameters)",
            self.path.display().to_string(),
            self.graph.input().shape,
            self.graph.output_len(),
            self.graph.parameter_count()
        )
    }
}

/// Loads a model file with the crate's loader (`Graph::load`).
#[pyfunction]
pub fn load_model(py: Python<'_>, path: PathBuf) -> PyResult<PyModel> {
    let graph = detached(py, || Graph::load(&path))?.py()?;
    Ok(PyModel { graph, path })
}
