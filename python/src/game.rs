//! `Game`: the crate's quadratic `PruningGame` behind a frozen Python object.
//!
//! Inputs are read where NumPy holds them: a contiguous `float64` array is one slice, copied
//! once into the game (which owns its vectors, as the crate requires); other layouts are read
//! element by element, never converted in a temporary. The caller's arrays are never written
//! (the crate sorts CSR rows in its own copy). Accessors return read-only views of the game's
//! own memory, kept alive by the game object.

use std::path::PathBuf;

use nalgebra::{DMatrix, DVector};
use numpy::ndarray::ArrayView1;
use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pruning_game::game::{
    generate, BenefitSpec, Competition, CsrMatrix, Game, GeneratorConfig, PruningGame, Topology,
};
use pruning_game::Error;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::IntoPy;
use crate::release::{detached, guarded};

/// A per-player field: one number for every player, or one per player.
#[derive(FromPyObject)]
pub enum PerPlayer<'py> {
    /// The same value for all.
    Scalar(f64),
    /// One value per player.
    Array(PyReadonlyArray1<'py, f64>),
}

impl PerPlayer<'_> {
    fn vector(&self, players: usize) -> DVector<f64> {
        match self {
            PerPlayer::Scalar(v) => DVector::from_element(players, *v),
            PerPlayer::Array(a) => vector(a),
        }
    }
}

/// Integer index arrays as SciPy stores them.
#[derive(FromPyObject)]
pub enum Indices<'py> {
    /// `int32` (SciPy's default below 2^31 entries).
    I32(PyReadonlyArray1<'py, i32>),
    /// `int64`.
    I64(PyReadonlyArray1<'py, i64>),
}

impl Indices<'_> {
    /// The entries as `i64`, in order, read in place.
    fn values(&self) -> Box<dyn Iterator<Item = i64> + '_> {
        match self {
            Indices::I32(a) => Box::new(a.as_array().into_iter().map(|&v| i64::from(v))),
            Indices::I64(a) => Box::new(a.as_array().into_iter().copied()),
        }
    }
}

/// The array's values, read in place (one copy, into the returned vector).
fn read_values(a: &PyReadonlyArray1<'_, f64>) -> Vec<f64> {
    match a.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => a.as_array().iter().copied().collect(),
    }
}

fn vector(a: &PyReadonlyArray1<'_, f64>) -> DVector<f64> {
    match a.as_slice() {
        Ok(s) => DVector::from_column_slice(s),
        Err(_) => DVector::from_iterator(a.len(), a.as_array().iter().copied()),
    }
}

/// The dense matrix of a 2-d array, read in its own memory order.
fn matrix(a: &PyReadonlyArray2<'_, f64>) -> DMatrix<f64> {
    let view = a.as_array();
    let (rows, cols) = view.dim();
    if let Some(s) = view.as_slice() {
        DMatrix::from_row_slice(rows, cols, s)
    } else if let Some(s) = view.t().as_slice() {
        DMatrix::from_column_slice(rows, cols, s)
    } else {
        DMatrix::from_fn(rows, cols, |i, j| view[(i, j)])
    }
}

/// Row offsets from `indptr`, refusing negative entries with the crate's error.
fn offsets(indptr: &Indices<'_>) -> pruning_game::Result<Vec<usize>> {
    indptr
        .values()
        .enumerate()
        .map(|(index, v)| {
            usize::try_from(v).map_err(|_| Error::Negative {
                field: "indptr".into(),
                index,
                value: v as f64,
            })
        })
        .collect()
}

/// Columns from `indices`; values past `u32` are left for the crate's range check.
fn columns(indices: &Indices<'_>) -> pruning_game::Result<Vec<u32>> {
    indices
        .values()
        .enumerate()
        .map(|(index, v)| {
            if v < 0 {
                Err(Error::Negative {
                    field: "indices".into(),
                    index,
                    value: v as f64,
                })
            } else {
                Ok(u32::try_from(v).unwrap_or(u32::MAX))
            }
        })
        .collect()
}

/// `(indptr, indices, values)` of a CSR matrix, as NumPy arrays.
type CsrArrays<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f64>>,
);

/// A quadratic pruning game (validated once, immutable).
#[pyclass(module = "pruning_game._core", name = "Game", frozen)]
pub struct PyGame {
    pub game: PruningGame,
}

impl PyGame {
    /// A read-only NumPy view of one of the game's vectors.
    fn view<'py>(
        slf: &Bound<'py, Self>,
        pick: fn(&PruningGame) -> &DVector<f64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let data = pick(&slf.get().game).as_slice();
        let view = ArrayView1::from(data);
        // SAFETY: the array borrows the vector of a frozen game that it keeps alive as its
        // base object; the game never changes, and the view is made read-only below.
        let array = unsafe { PyArray1::borrow_from_array(&view, slf.clone().into_any()) };
        let kwargs = PyDict::new(slf.py());
        kwargs.set_item("write", false)?;
        array.call_method("setflags", (), Some(&kwargs))?;
        Ok(array)
    }
}

#[pymethods]
impl PyGame {
    /// Builds and validates a game from arrays (see `pruning_game.PruningGame`).
    #[staticmethod]
    #[pyo3(signature = (benefit, self_cost, participation_cost, upper, dense=None, sparse=None))]
    #[allow(clippy::type_complexity)]
    fn from_arrays(
        benefit: PyReadonlyArray1<'_, f64>,
        self_cost: PerPlayer<'_>,
        participation_cost: PerPlayer<'_>,
        upper: PerPlayer<'_>,
        dense: Option<PyReadonlyArray2<'_, f64>>,
        sparse: Option<(
            (usize, usize),
            Indices<'_>,
            Indices<'_>,
            PyReadonlyArray1<'_, f64>,
        )>,
    ) -> PyResult<Self> {
        guarded(move || -> PyResult<Self> {
            let n = benefit.len();
            let competition = match (dense, sparse) {
                (Some(_), Some(_)) => {
                    return Err(Error::invalid(
                        "competition",
                        "give a dense array or a sparse matrix, not both",
                    ))
                    .py()
                }
                (Some(d), None) => Competition::dense(matrix(&d)).py()?,
                (None, Some(((rows, cols), indptr, indices, values))) => {
                    if rows != cols {
                        return Err(Error::LengthMismatch {
                            field: "competition (columns)".into(),
                            expected: rows,
                            got: cols,
                        })
                        .py();
                    }
                    let csr = CsrMatrix::from_csr(
                        rows,
                        offsets(&indptr).py()?,
                        columns(&indices).py()?,
                        read_values(&values),
                    )
                    .py()?;
                    Competition::Sparse(csr)
                }
                (None, None) => Competition::None,
            };
            let game = PruningGame::new(
                vector(&benefit),
                self_cost.vector(n),
                participation_cost.vector(n),
                upper.vector(n),
                competition,
            )
            .py()?;
            Ok(PyGame { game })
        })?
    }

    /// Reads a game file (JSON or safetensors, by name or first bytes).
    #[staticmethod]
    fn read(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let game = detached(py, || PruningGame::read(&path))?.py()?;
        Ok(PyGame { game })
    }

    /// Writes the game file atomically: safetensors for `.safetensors`, JSON otherwise.
    fn write(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        detached(py, || self.game.write(&path))?.py()
    }

    /// The game as the JSON text of its file.
    fn to_json(&self) -> String {
        self.game.to_json_string()
    }

    #[getter]
    fn players(&self) -> usize {
        self.game.num_players()
    }

    #[getter]
    fn benefit<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Self::view(slf, PruningGame::benefit)
    }

    #[getter]
    fn self_cost<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Self::view(slf, PruningGame::self_cost)
    }

    #[getter]
    fn participation_cost<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Self::view(slf, PruningGame::participation_cost)
    }

    #[getter]
    fn upper<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Self::view(slf, PruningGame::upper_bounds)
    }

    #[getter]
    fn net_benefit<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Self::view(slf, PruningGame::net_benefit)
    }

    /// `none`, `dense` or `sparse`.
    #[getter]
    fn storage(&self) -> &'static str {
        match self.game.competition() {
            Competition::None => "none",
            Competition::Dense(_) => "dense",
            Competition::Sparse(_) => "sparse",
        }
    }

    /// Stored competition entries (non-zeros for dense).
    #[getter]
    fn nnz(&self) -> usize {
        self.game.competition().nnz()
    }

    /// Whether `C = Cᵀ` (an exact potential game, T5).
    #[getter]
    fn symmetric(&self) -> bool {
        self.game.competition().is_symmetric()
    }

    /// The competition as `(indptr int64, indices int32, values float64)` of a CSR matrix,
    /// whatever the storage (copies).
    fn competition_csr<'py>(&self, py: Python<'py>) -> CsrArrays<'py> {
        let n = self.game.num_players();
        let mut indptr = vec![0i64; n + 1];
        let mut indices = Vec::new();
        let mut values = Vec::new();
        for (i, j, v) in self.game.competition().triplets() {
            indptr[i + 1] += 1;
            indices.push(j as i64);
            values.push(v);
        }
        for i in 0..n {
            indptr[i + 1] += indptr[i];
        }
        (
            PyArray1::from_vec(py, indptr),
            PyArray1::from_vec(py, indices),
            PyArray1::from_vec(py, values),
        )
    }

    /// `Φ(s) = qᵀs − ½ sᵀMs` (an exact potential only when `C` is symmetric).
    fn potential(&self, profile: PyReadonlyArray1<'_, f64>) -> PyResult<f64> {
        let s = self.profile(&profile)?;
        guarded(|| self.game.potential(&s))
    }

    /// `F(s) = M s − q`.
    fn pseudo_gradient<'py>(
        &self,
        py: Python<'py>,
        profile: PyReadonlyArray1<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let s = self.profile(&profile)?;
        let mut out = vec![0.0; s.len()];
        guarded(|| self.game.pseudo_gradient(&s, &mut out))?;
        Ok(PyArray1::from_vec(py, out))
    }

    /// `(nash_gap, natural_residual)` of a profile, computed from the game.
    fn certificate(&self, profile: PyReadonlyArray1<'_, f64>) -> PyResult<(f64, f64)> {
        let s = self.profile(&profile)?;
        let c = guarded(|| pruning_game::game::Certificate::of(&self.game, &s))?;
        Ok((c.nash_gap, c.natural_residual))
    }
}

impl PyGame {
    /// A profile of this game's size with finite entries, or the crate's error naming it.
    fn profile(&self, profile: &PyReadonlyArray1<'_, f64>) -> PyResult<Vec<f64>> {
        let s = read_values(profile);
        check_profile("profile", &s, self.game.num_players()).py()?;
        Ok(s)
    }
}

/// The crate's length and finiteness errors for a profile given from Python.
pub fn check_profile(field: &str, s: &[f64], players: usize) -> pruning_game::Result<()> {
    if s.len() != players {
        return Err(Error::LengthMismatch {
            field: field.into(),
            expected: players,
            got: s.len(),
        });
    }
    match s.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite {
            field: field.into(),
            index,
            value: s[index],
        }),
        None => Ok(()),
    }
}

/// A seeded synthetic game with the knobs of `pruning-game generate`.
#[pyfunction]
#[pyo3(signature = (players, *, seed=0, sparse=None, random_degree=None, density=1.0,
    symmetric=false, beta=0.1, gamma=0.1, alpha=1.0, dominance=1.5, negative_fraction=0.3))]
#[allow(clippy::too_many_arguments)]
pub fn generate_game(
    py: Python<'_>,
    players: usize,
    seed: u64,
    sparse: Option<usize>,
    random_degree: Option<f64>,
    density: f64,
    symmetric: bool,
    beta: f64,
    gamma: f64,
    alpha: f64,
    dominance: f64,
    negative_fraction: f64,
) -> PyResult<PyGame> {
    let topology = match (sparse, random_degree) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "sparse",
                "give sparse (K neighbours) or random_degree, not both",
            ))
            .py()
        }
        (Some(k), None) => Topology::Nearest { k },
        (None, Some(degree)) => Topology::Random { degree },
        (None, None) => Topology::Dense { density },
    };
    let config = GeneratorConfig {
        players,
        seed,
        topology,
        symmetric,
        competition_scale: beta,
        participation_cost: gamma,
        benefit: BenefitSpec::Split {
            negative_fraction,
            scale: 1.0,
        },
        diagonal_dominance: dominance,
        self_cost: alpha,
    };
    config.check().py()?;
    let game = detached(py, || generate(&config))?.py()?;
    Ok(PyGame { game })
}
