//! The crate's errors as Python exceptions.
//!
//! The message is the crate's own `Display` (it names the field and index); the exception's
//! class says what kind of problem it is, and `field` / `index` carry the structured parts so
//! that a notebook can react without parsing text.

use pruning_game::Error;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyAnyMethods;
use pyo3::{create_exception, PyErr};

create_exception!(
    _core,
    PruningGameError,
    pyo3::exceptions::PyValueError,
    "Base class of the errors the pruning-game core raises for bad input."
);
create_exception!(
    _core,
    ValidationError,
    PruningGameError,
    "A value is out of range or of the wrong size; `field` and `index` name it."
);
create_exception!(
    _core,
    FormatError,
    PruningGameError,
    "A file is malformed or does not match its schema (message names file and position)."
);
create_exception!(
    _core,
    SolverError,
    PruningGameError,
    "A solver cannot run on this game, or its linear algebra broke down."
);

/// The Python exception for a crate error.
pub fn to_py(e: Error) -> PyErr {
    let message = e.to_string();
    let (field, index): (Option<String>, Option<usize>) = match &e {
        Error::LengthMismatch { field, .. } => (Some(field.clone()), None),
        Error::NonFinite { field, index, .. }
        | Error::Negative { field, index, .. }
        | Error::NotPositive { field, index, .. } => (Some(field.clone()), Some(*index)),
        Error::NonZeroDiagonal { index, .. } => (Some("competition".into()), Some(*index)),
        Error::IndexOutOfRange { entry, .. } | Error::DuplicateEntry { entry, .. } => {
            (Some("competition".into()), Some(*entry))
        }
        Error::InvalidParameter { name, .. } => (Some(name.clone()), None),
        Error::TooLarge { field, .. } => (Some(field.clone()), None),
        Error::PlayerOutOfRange { player, .. } => (Some("player".into()), Some(*player)),
        _ => (None, None),
    };
    let err = match &e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(message)
        }
        Error::Io { .. } | Error::Locked { .. } => PyOSError::new_err(message),
        Error::Format { .. }
        | Error::ModelFormat { .. }
        | Error::DataFormat { .. }
        | Error::IdxMagic { .. }
        | Error::Truncated { .. }
        | Error::SweepMismatch { .. }
        | Error::ResumeMismatch { .. } => FormatError::new_err(message),
        Error::NeedsQuadraticGame { .. } | Error::Breakdown { .. } | Error::Diverged { .. } => {
            SolverError::new_err(message)
        }
        Error::Plot { .. } => PyRuntimeError::new_err(message),
        _ => ValidationError::new_err(message),
    };
    Python::attach(|py| {
        let value = err.value(py);
        let _ = value.setattr("field", field);
        let _ = value.setattr("index", index);
    });
    err
}

/// `Result` of the crate into `PyResult`.
pub trait IntoPy<T> {
    /// Maps the error with [`to_py`].
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for pruning_game::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// Registers the exception classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("PruningGameError", py.get_type::<PruningGameError>())?;
    m.add("ValidationError", py.get_type::<ValidationError>())?;
    m.add("FormatError", py.get_type::<FormatError>())?;
    m.add("SolverError", py.get_type::<SolverError>())?;
    Ok(())
}
