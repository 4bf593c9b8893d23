//! Inputs of the figures that do not come from sweeps: solver traces, participation
//! trajectories and accuracy frontiers.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A solver's residual per iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Legend label (the solver name, else the file name).
    pub label: String,
    /// Residual after each iteration.
    pub residuals: Vec<f64>,
}

/// Reads `residual_history` from an equilibrium or trace JSON file: at the top level, or
/// under `report`. The label is the `solver` field found beside it, else the file stem.
pub fn read_trace(path: &Path) -> Result<Trace> {
    let text = crate::io::read_to_string(path)?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Format {
        path: path.into(),
        message: e.to_string(),
    })?;
    let holder = [Some(&value), value.get("report")]
        .into_iter()
        .flatten()
        .find(|v| v.get("residual_history").is_some())
        .ok_or_else(|| Error::Format {
            path: path.into(),
            message: "no `residual_history` (top level or under `report`)".into(),
        })?;
    let residuals = holder["residual_history"]
        .as_array()
        .and_then(|a| a.iter().map(|v| v.as_f64()).collect::<Option<Vec<f64>>>())
        .ok_or_else(|| Error::Format {
            path: path.into(),
            message: "`residual_history` must be an array of numbers".into(),
        })?;
    let label = holder
        .get("solver")
        .or_else(|| value.get("solver"))
        .and_then(|s| s.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            path.file_stem()
                .map_or_else(|| "trace".into(), |s| s.to_string_lossy().into_owned())
        });
    Ok(Trace { label, residuals })
}

/// A small comma-separated table with a header, columns found by name.
struct Table {
    path: PathBuf,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn read(path: &Path) -> Result<Self> {
        let text = crate::io::read_to_string(path)?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<String> = lines
            .next()
            .ok_or_else(|| Error::Format {
                path: path.into(),
                message: "empty file".into(),
            })?
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect();
        let rows = lines
            .map(|l| l.split(',').map(|s| s.trim().to_owned()).collect())
            .collect();
        Ok(Table {
            path: path.into(),
            header,
            rows,
        })
    }

    fn column(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::Format {
                path: self.path.clone(),
                message: format!("no column `{name}` (found: {})", self.header.join(", ")),
            })
    }

    fn get<T: std::str::FromStr>(&self, row: usize, col: usize) -> Result<T> {
        let cell = self.rows[row].get(col).map(String::as_str).unwrap_or("");
        cell.parse().map_err(|_| Error::Format {
            path: self.path.clone(),
            message: format!(
                "line {}: column `{}`: cannot parse `{cell}`",
                row + 2,
                self.header[col]
            ),
        })
    }
}

/// One sample of a participation trajectory.
#[derive(Debug, Clone, PartialEq)]
pub struct TrajectoryPoint {
    /// Training step.
    pub step: f64,
    /// Unit id (e.g. `layer1.unit17`).
    pub unit: String,
    /// Participation `s_i`.
    pub value: f64,
}

/// Reads a CSV with columns `step, unit, value`.
pub fn read_trajectories(path: &Path) -> Result<Vec<TrajectoryPoint>> {
    let t = Table::read(path)?;
    let (s, u, v) = (t.column("step")?, t.column("unit")?, t.column("value")?);
    (0..t.rows.len())
        .map(|r| {
            Ok(TrajectoryPoint {
                step: t.get(r, s)?,
                unit: t.get(r, u)?,
                value: t.get(r, v)?,
            })
        })
        .collect()
}

/// One point of an accuracy–kept-fraction frontier.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontierPoint {
    /// Pruning method.
    pub method: String,
    /// Fraction of units kept.
    pub kept_fraction: f64,
    /// Mean accuracy.
    pub accuracy_mean: f64,
    /// Standard deviation of the accuracy (0 if unknown).
    pub accuracy_std: f64,
}

/// Reads a CSV with columns `method, kept_fraction, accuracy_mean, accuracy_std`.
pub fn read_frontier(path: &Path) -> Result<Vec<FrontierPoint>> {
    let t = Table::read(path)?;
    let (m, k) = (t.column("method")?, t.column("kept_fraction")?);
    let (a, s) = (t.column("accuracy_mean")?, t.column("accuracy_std")?);
    (0..t.rows.len())
        .map(|r| {
            Ok(FrontierPoint {
                method: t.get(r, m)?,
                kept_fraction: t.get(r, k)?,
                accuracy_mean: t.get(r, a)?,
                accuracy_std: t.get(r, s)?,
            })
        })
        .collect()
}
