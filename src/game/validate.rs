//! Checks shared by the games' constructors; each error names the field and the index.

use nalgebra::DVector;

use super::Competition;
use crate::error::{Error, Result};

/// One finite entry per player.
pub(crate) fn finite_per_player(field: &str, values: &DVector<f64>, players: usize) -> Result<()> {
    if values.len() != players {
        return Err(Error::LengthMismatch {
            field: field.into(),
            expected: players,
            got: values.len(),
        });
    }
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite {
            field: field.into(),
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Every entry `>= 0`.
pub(crate) fn non_negative(field: &str, values: &DVector<f64>) -> Result<()> {
    match values.iter().position(|v| *v < 0.0) {
        Some(index) => Err(Error::Negative {
            field: field.into(),
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Every entry `> 0`.
pub(crate) fn positive(field: &str, values: &DVector<f64>) -> Result<()> {
    match values.iter().position(|v| *v <= 0.0) {
        Some(index) => Err(Error::NotPositive {
            field: field.into(),
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// A competition matrix sized for `players` (or none at all).
pub(crate) fn competition_size(competition: &Competition, players: usize) -> Result<()> {
    match competition.size() {
        Some(size) if size != players => Err(Error::LengthMismatch {
            field: "competition (rows)".into(),
            expected: players,
            got: size,
        }),
        _ => Ok(()),
    }
}
