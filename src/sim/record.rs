//! One CSV row per game, and the solve that produces it.

use std::time::Instant;

use super::config::{game_seed, Cell};
use crate::dominance::{provably_pruned, uniqueness_and_convergence, SpectralOptions, Uniqueness};
use crate::equilibrium::{solve, SolveOptions};
use crate::error::{Error, Result};
use crate::game::{generate, BenefitSpec, PruningGame, Topology};

/// The CSV header, in column order.
pub const HEADER: &str = "cell,replicate,seed,players,topology,symmetric,gamma,beta,alpha,\
dominance,benefit,solver,tolerance,iterations,nash_gap,residual,converged,termination,\
pruned_fraction,proved_pruned_fraction,negative_q_fraction,uniqueness,seconds";

/// What defines a cell of a sweep, as recorded with each of its games and its summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CellParams {
    /// Players.
    pub players: usize,
    /// Topology as `dense:DENSITY`, `nearest:K` or `random:DEGREE`.
    pub topology: String,
    /// Symmetric competition.
    pub symmetric: bool,
    /// γ.
    pub gamma: f64,
    /// β.
    pub beta: f64,
    /// α.
    pub alpha: f64,
    /// δ.
    pub dominance: f64,
    /// Benefit as `split:NEG_FRACTION:SCALE` or `normal:MEAN:STD`.
    pub benefit: String,
    /// Solver name.
    pub solver: String,
    /// Solver tolerance.
    pub tolerance: f64,
}

/// Number of CSV columns of [`CellParams`].
pub(crate) const PARAM_COLUMNS: usize = 10;

impl CellParams {
    /// The parameters as CSV fields, in header order.
    pub(crate) fn csv_fields(&self) -> [String; PARAM_COLUMNS] {
        [
            self.players.to_string(),
            self.topology.clone(),
            self.symmetric.to_string(),
            num(self.gamma),
            num(self.beta),
            num(self.alpha),
            num(self.dominance),
            self.benefit.clone(),
            self.solver.clone(),
            num(self.tolerance),
        ]
    }

    /// Parses the fields written by [`CellParams::csv_fields`].
    fn from_csv_fields(f: &[&str], bad: &dyn Fn(&str) -> Error) -> Result<Self> {
        Ok(CellParams {
            players: parse_field(f[0], "players", bad)?,
            topology: f[1].into(),
            symmetric: parse_field(f[2], "symmetric", bad)?,
            gamma: parse_field(f[3], "gamma", bad)?,
            beta: parse_field(f[4], "beta", bad)?,
            alpha: parse_field(f[5], "alpha", bad)?,
            dominance: parse_field(f[6], "dominance", bad)?,
            benefit: f[7].into(),
            solver: f[8].into(),
            tolerance: parse_field(f[9], "tolerance", bad)?,
        })
    }
}

fn parse_field<T: std::str::FromStr>(
    s: &str,
    name: &str,
    bad: &dyn Fn(&str) -> Error,
) -> Result<T> {
    s.parse()
        .map_err(|_| bad(&format!("column {name}: cannot parse `{s}`")))
}

/// The result of one game of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Cell index.
    pub cell: usize,
    /// Replicate within the cell.
    pub replicate: usize,
    /// The game's seed.
    pub seed: u64,
    /// The cell's parameters.
    pub params: CellParams,
    /// Solver iterations.
    pub iterations: usize,
    /// Nash gap of the returned profile.
    pub nash_gap: f64,
    /// Natural residual of the returned profile.
    pub residual: f64,
    /// Whether the solver reached its tolerance.
    pub converged: bool,
    /// Why the solver stopped (`converged`, `max_iterations`, `diverged`, …).
    pub termination: String,
    /// Fraction of players with `s_i = 0` at the computed equilibrium.
    pub pruned_fraction: f64,
    /// Fraction proved pruned by iterated elimination (T3 ∪ T4), without solving.
    pub proved_pruned_fraction: f64,
    /// Fraction with `q_i < 0` (T3: dominated outright).
    pub negative_q_fraction: f64,
    /// Uniqueness verdict (T2): `unique:<test>` or `unknown` (no sufficient test passed).
    pub uniqueness: String,
    /// Wall time of generation plus analysis, seconds (the only column that varies between
    /// identical runs).
    pub seconds: f64,
}

fn topology_label(t: &Topology) -> String {
    match t {
        Topology::Dense { density } => format!("dense:{density}"),
        Topology::Nearest { k } => format!("nearest:{k}"),
        Topology::Random { degree } => format!("random:{degree}"),
    }
}

fn benefit_label(b: &BenefitSpec) -> String {
    match b {
        BenefitSpec::Split {
            negative_fraction,
            scale,
        } => format!("split:{negative_fraction}:{scale}"),
        BenefitSpec::Normal { mean, std } => format!("normal:{mean}:{std}"),
    }
}

/// The serde name of an enum value (`max_iterations`, …): one word, safe in a CSV field.
fn kebab<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// A float in Rust's shortest round-trip form, with an exponent for tiny and huge values
/// (`1e-9`, not `0.000000001`); `NaN` and `inf` parse back in Rust and pandas.
pub(crate) fn num(x: f64) -> String {
    format!("{x:?}")
}

fn fraction(count: usize, n: usize) -> f64 {
    count as f64 / n as f64
}

/// Generates replicate `replicate` of `cell`, solves it and measures it.
pub fn run_game(
    cell: &Cell,
    replicate: usize,
    base_seed: u64,
    max_iterations: usize,
) -> Result<Row> {
    let start = Instant::now();
    let mut generator = cell.generator.clone();
    generator.seed = game_seed(base_seed, cell.generator_index, replicate);
    let game = generate(&generator)?;
    let options = SolveOptions {
        // Sweeps keep one row per game, not the per-iteration residuals.
        record_history: false,
        ..SolveOptions::new(cell.tolerance, max_iterations)
    };
    let solution = solve(&game, cell.solver, &options)?;
    let measures = Measures::of(&game, &solution.profile);
    let report = &solution.report;
    Ok(Row {
        cell: cell.index,
        replicate,
        seed: generator.seed,
        params: CellParams {
            players: generator.players,
            topology: topology_label(&generator.topology),
            symmetric: generator.symmetric,
            gamma: generator.participation_cost,
            beta: generator.competition_scale,
            alpha: generator.self_cost,
            dominance: generator.diagonal_dominance,
            benefit: benefit_label(&generator.benefit),
            solver: cell.solver.to_string(),
            tolerance: cell.tolerance,
        },
        iterations: report.iterations,
        nash_gap: report.certificate.nash_gap,
        residual: report.certificate.natural_residual,
        converged: report.converged,
        termination: kebab(&report.termination),
        pruned_fraction: measures.pruned,
        proved_pruned_fraction: measures.proved,
        negative_q_fraction: measures.negative_q,
        uniqueness: measures.uniqueness,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Spectral settings of the uniqueness check in sweeps: no dense eigendecomposition (O(N³)
/// per game would dominate a sweep); the verdict comes from the O(nnz) tests — Gershgorin and
/// row dominance of `M`, and the Jacobi contraction bound.
const SWEEP_SPECTRAL: SpectralOptions = SpectralOptions {
    dense_eigen_limit: 0,
    power_iterations: 200,
    power_tolerance: 1e-6,
};

/// T2 verdict as one CSV word: `unique:<test that proved it>` or `unknown`.
fn uniqueness(game: &PruningGame) -> String {
    match uniqueness_and_convergence(game, &SWEEP_SPECTRAL).0.verdict {
        Uniqueness::Unique { by } => format!("unique:{}", kebab(&by)),
        Uniqueness::Unknown => "unknown".into(),
    }
}

struct Measures {
    pruned: f64,
    proved: f64,
    negative_q: f64,
    uniqueness: String,
}

impl Measures {
    fn of(game: &PruningGame, profile: &[f64]) -> Self {
        let n = profile.len();
        Measures {
            // Exactly zero, as in the equilibrium file's `pruned` (docs/formats.md): projections
            // land on the bound exactly.
            pruned: fraction(profile.iter().filter(|&&s| s <= 0.0).count(), n),
            proved: fraction(provably_pruned(game).len(), n),
            negative_q: fraction(game.net_benefit().iter().filter(|&&q| q < 0.0).count(), n),
            uniqueness: uniqueness(game),
        }
    }
}

impl Row {
    /// `(cell, replicate)`: the key that orders rows and detects duplicates.
    pub fn key(&self) -> (usize, usize) {
        (self.cell, self.replicate)
    }

    /// The row as one CSV line, without the newline. Floats use Rust's shortest round-trip
    /// form, so a line parsed back and written again is identical.
    pub fn to_csv(&self) -> String {
        [
            self.cell.to_string(),
            self.replicate.to_string(),
            self.seed.to_string(),
        ]
        .into_iter()
        .chain(self.params.csv_fields())
        .chain([
            self.iterations.to_string(),
            num(self.nash_gap),
            num(self.residual),
            self.converged.to_string(),
            self.termination.clone(),
            num(self.pruned_fraction),
            num(self.proved_pruned_fraction),
            num(self.negative_q_fraction),
            self.uniqueness.clone(),
            num(self.seconds),
        ])
        .collect::<Vec<_>>()
        .join(",")
    }

    /// Parses a line written by [`Row::to_csv`]; `line_number` (1-based) names it in errors.
    pub fn from_csv(line: &str, source: &std::path::Path, line_number: usize) -> Result<Self> {
        let bad = |what: &str| Error::Format {
            path: source.into(),
            message: format!("line {line_number}: {what}"),
        };
        let f: Vec<&str> = line.split(',').collect();
        let expected = HEADER.split(',').count();
        if f.len() != expected {
            return Err(bad(&format!(
                "expected {expected} fields, found {}",
                f.len()
            )));
        }
        Ok(Row {
            cell: parse_field(f[0], "cell", &bad)?,
            replicate: parse_field(f[1], "replicate", &bad)?,
            seed: parse_field(f[2], "seed", &bad)?,
            params: CellParams::from_csv_fields(&f[3..3 + PARAM_COLUMNS], &bad)?,
            iterations: parse_field(f[13], "iterations", &bad)?,
            nash_gap: parse_field(f[14], "nash_gap", &bad)?,
            residual: parse_field(f[15], "residual", &bad)?,
            converged: parse_field(f[16], "converged", &bad)?,
            termination: f[17].into(),
            pruned_fraction: parse_field(f[18], "pruned_fraction", &bad)?,
            proved_pruned_fraction: parse_field(f[19], "proved_pruned_fraction", &bad)?,
            negative_q_fraction: parse_field(f[20], "negative_q_fraction", &bad)?,
            uniqueness: f[21].into(),
            seconds: parse_field(f[22], "seconds", &bad)?,
        })
    }
}

/// Reads a results CSV (header plus rows).
pub fn read_rows(path: &std::path::Path) -> Result<Vec<Row>> {
    let text = crate::io::read_to_string(path)?;
    parse_rows(&text, path)
}

/// Parses results CSV text: the header must match [`HEADER`].
pub fn parse_rows(text: &str, source: &std::path::Path) -> Result<Vec<Row>> {
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h == HEADER => {}
        _ => {
            return Err(Error::Format {
                path: source.into(),
                message: "not a sweep results file (the header does not match)".into(),
            })
        }
    }
    lines
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(k, l)| Row::from_csv(l, source, k + 2))
        .collect()
}

/// Writes rows sorted by key, atomically.
pub fn write_rows(path: &std::path::Path, rows: &[Row]) -> Result<()> {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|r| r.key());
    crate::io::write_atomic(path, |w| {
        writeln!(w, "{HEADER}")?;
        for r in sorted {
            writeln!(w, "{}", r.to_csv())?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        let row = Row {
            cell: 3,
            replicate: 1,
            seed: 99,
            params: CellParams {
                players: 10,
                topology: "dense:0.5".into(),
                symmetric: true,
                gamma: 0.1,
                beta: 1.0 / 3.0,
                alpha: 1.0,
                dominance: 1.5,
                benefit: "split:0.3:1".into(),
                solver: "projection".into(),
                tolerance: 1e-8,
            },
            iterations: 12,
            nash_gap: 1e-12,
            residual: 0.0,
            converged: true,
            termination: "Converged".into(),
            pruned_fraction: 0.4,
            proved_pruned_fraction: 0.3,
            negative_q_fraction: 0.3,
            uniqueness: "unique".into(),
            seconds: 0.001,
        };
        let line = row.to_csv();
        let back = Row::from_csv(&line, std::path::Path::new("x"), 2).unwrap();
        assert_eq!(back, row);
        assert_eq!(back.to_csv(), line);
        assert!(Row::from_csv("1,2", std::path::Path::new("x"), 5)
            .unwrap_err()
            .to_string()
            .contains("line 5"));
    }
}
