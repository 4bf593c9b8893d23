//! The equilibrium file (docs/formats.md) written by `pruning-game solve`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Solution, SolverKind, Termination};
use crate::error::{Error, Result};

/// Files of more players than this are written without indentation: one number per line
/// would double a 10^7-player file.
const PRETTY_LIMIT: usize = 100_000;

/// A solved game as stored on disk: the profile, its certificate and what was pruned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EquilibriumFile {
    /// The equilibrium profile `s`, one entry per player.
    pub participation: Vec<f64>,
    /// Nash gap of `participation`.
    pub nash_gap: f64,
    /// Natural residual of `participation`.
    pub residual: f64,
    /// Solver iterations.
    pub iterations: usize,
    /// Whether the residual reached the requested tolerance.
    pub converged: bool,
    /// The solver that produced it.
    pub solver: SolverKind,
    /// Players with `s_i == 0` exactly, in increasing order.
    pub pruned: Vec<usize>,
    /// Players proved pruned by dominance (T3/T4); filled by the dominance analysis.
    pub dominated: Vec<usize>,
    /// Players the solver pruned that the dominance sweeps could not prove pruned within
    /// their budget (an extension of the schema; absent when empty and in older files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undetermined: Vec<usize>,
    /// Why the solver stopped (optional: absent in older files; docs/formats.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination: Option<Termination>,
}

impl EquilibriumFile {
    /// The file for `solution`, with `dominated` empty.
    pub fn from_solution(solution: &Solution) -> Self {
        let report = &solution.report;
        EquilibriumFile {
            pruned: solution
                .profile
                .iter()
                .enumerate()
                .filter(|(_, s)| **s == 0.0)
                .map(|(i, _)| i)
                .collect(),
            participation: solution.profile.clone(),
            nash_gap: report.certificate.nash_gap,
            residual: report.certificate.natural_residual,
            iterations: report.iterations,
            converged: report.converged,
            solver: report.solver,
            dominated: Vec::new(),
            undetermined: Vec::new(),
            termination: Some(report.termination),
        }
    }

    /// Writes the file atomically as JSON (indented up to 10^5 players). Refuses non-finite certificates, which JSON cannot
    /// represent (they would be written as `null` and fail to read back).
    pub fn write_json(&self, path: &Path) -> Result<()> {
        for (field, value) in [("nash_gap", self.nash_gap), ("residual", self.residual)] {
            if !value.is_finite() {
                return Err(Error::NonFinite {
                    field: field.into(),
                    index: 0,
                    value,
                });
            }
        }
        if self.participation.len() <= PRETTY_LIMIT {
            crate::io::write_json_atomic(path, self)
        } else {
            crate::io::write_atomic(path, |w| {
                serde_json::to_writer(&mut *w, self).map_err(std::io::Error::other)?;
                w.write_all(b"\n")
            })
        }
    }

    /// Reads a file written by [`EquilibriumFile::write_json`].
    pub fn read_json(path: &Path) -> Result<Self> {
        let text = crate::io::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}
