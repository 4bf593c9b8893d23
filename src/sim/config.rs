//! Sweep files: generator parameters and the grids they range over.
//!
//! A sweep file (TOML or JSON) names a base seed, a number of replicates and one axis per
//! parameter. Every axis accepts a single value or a list; float axes also accept
//! `{ from, to, steps }` (evenly spaced, both ends included). The grid is the Cartesian
//! product of the axes, expanded in a fixed order (players, topology, symmetric, γ, β, α, δ,
//! benefit, solver, tolerance; the last varies fastest), so a cell index names the same
//! parameters on every machine.
//!
//! Sizes are checked before anything is expanded or allocated: the number of cells
//! ([`MAX_CELLS`]) and games ([`MAX_GAMES`]) from the axes' lengths alone, the memory of one
//! game ([`MAX_GAME_BYTES`], estimated by [`game_bytes`] from its players, topology and
//! solver), and the file's own size ([`MAX_FILE_BYTES`]). A typo such as `steps = 10^12`
//! or `players = 10^12` is a one-line error naming the file and the field, not an abort.
//!
//! ```toml
//! seed = 42
//! replicates = 5
//! [grid]
//! players = 200
//! topology = { kind = "nearest", k = 8 }
//! participation_cost = { from = 0.0, to = 0.5, steps = 6 }   # γ
//! competition_scale = [0.0, 0.5, 1.0]                       # β
//! solver = "projection"
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::{self, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::equilibrium::SolverKind;
use crate::error::{Error, Result};
use crate::game::{BenefitSpec, GeneratorConfig, Topology};

/// Largest number of games one sweep may describe; a guard against a typo such as
/// `steps = 1000000` silently planning years of work. A finished sweep holds one row per
/// game in memory (a few hundred bytes each) while it writes `results.csv`.
pub const MAX_GAMES: usize = 10_000_000;

/// Largest number of grid cells: the expanded grid is held in memory (about 150 bytes a
/// cell) by every run and merge of the sweep.
pub const MAX_CELLS: usize = 1_000_000;

/// Largest memory one game may need, estimated from its players, topology and solver
/// before it is generated ([`game_bytes`]). Each worker thread holds one game at a time.
pub const MAX_GAME_BYTES: u64 = 4 << 30;

/// Largest sweep file read; a sweep file is a few lines, and lists of axis values stay far
/// below this.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Estimated peak bytes of generating and solving one game: the per-player vectors of the
/// game and the solvers, plus the competition matrix (dense `N × N` for the dense topology,
/// triplets and CSR for the sparse ones) and Newton's dense block on the free players.
/// Computed in `f64`, so absurd sizes give a large number, not an overflow.
pub fn game_bytes(players: usize, topology: &Topology, solver: SolverKind) -> f64 {
    let n = players as f64;
    let vectors = 64.0 * 8.0 * n;
    let competition = match *topology {
        Topology::Dense { .. } => 2.0 * 8.0 * n * n,
        Topology::Nearest { k } => 2.0 * 24.0 * n * k as f64,
        Topology::Random { degree } => 2.0 * 2.0 * 24.0 * n * (degree * 1.1 + 1.0),
    };
    let newton = match solver {
        SolverKind::Newton => 8.0 * n * n,
        _ => 0.0,
    };
    vectors + competition + newton
}

/// `bytes` in the largest binary unit that keeps it above 1 (`3.2 GiB`).
fn human_bytes(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}

/// One value or a list of values of a grid axis.
///
/// Deserialised by hand rather than as an untagged enum, so that a bad value reports the
/// element type's own error ("unknown variant `ring`, expected one of …") instead of "data
/// did not match any variant".
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Axis<T> {
    /// Several values.
    Many(Vec<T>),
    /// A single value.
    One(T),
}

impl<T: Clone> Axis<T> {
    /// Number of values, without expanding the axis.
    pub fn len(&self) -> usize {
        match self {
            Axis::Many(v) => v.len(),
            Axis::One(_) => 1,
        }
    }

    /// True if the axis has no values (an empty list).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The axis' values in order.
    pub fn values(&self) -> Vec<T> {
        match self {
            Axis::Many(v) => v.clone(),
            Axis::One(v) => vec![v.clone()],
        }
    }
}

/// An evenly spaced range `from, …, to` with `steps` points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Linspace {
    /// First value.
    pub from: f64,
    /// Last value.
    pub to: f64,
    /// Number of points (≥ 1; with 1 only `from`).
    pub steps: usize,
}

/// A float axis: one value, a list, or a [`Linspace`] (deserialised by hand, as [`Axis`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FloatAxis {
    /// Several values.
    Many(Vec<f64>),
    /// An evenly spaced range.
    Range(Linspace),
    /// A single value.
    One(f64),
}

impl FloatAxis {
    /// Number of values, without expanding the axis (a range may claim any number).
    pub fn len(&self) -> usize {
        match self {
            FloatAxis::Many(v) => v.len(),
            FloatAxis::One(_) => 1,
            FloatAxis::Range(r) => r.steps,
        }
    }

    /// True if the axis has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The axis' values in order; call it only after [`SweepConfig::check`], which bounds
    /// the number of values.
    pub fn values(&self) -> Vec<f64> {
        match self {
            FloatAxis::Many(v) => v.clone(),
            FloatAxis::One(v) => vec![*v],
            FloatAxis::Range(r) => match r.steps {
                0 => Vec::new(),
                1 => vec![r.from],
                n => (0..n)
                    .map(|k| r.from + (r.to - r.from) * k as f64 / (n - 1) as f64)
                    .collect(),
            },
        }
    }
}

/// Deserialises `Axis::One` from a scalar or a table, `Axis::Many` from a list; `$one` and
/// `$map` wrap what the element type produced.
macro_rules! axis_visitor {
    ($visitor:ident, $value:ty, $expecting:expr, |$t:ident| $element:ty, $one:expr, $many:expr, $map:expr) => {
        impl<'de, $t: Deserialize<'de>> Visitor<'de> for $visitor<$t> {
            type Value = $value;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($expecting)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<$value, A::Error> {
                Vec::<$element>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map($many)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<$value, A::Error> {
                $map(de::value::MapAccessDeserializer::new(map))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<$value, E> {
                <$element>::deserialize(v.into_deserializer()).map($one)
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<$value, E> {
                <$element>::deserialize(v.into_deserializer()).map($one)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<$value, E> {
                <$element>::deserialize(v.into_deserializer()).map($one)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<$value, E> {
                <$element>::deserialize(v.into_deserializer()).map($one)
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<$value, E> {
                <$element>::deserialize(v.into_deserializer()).map($one)
            }
        }
    };
}

struct AxisVisitor<T>(PhantomData<T>);
axis_visitor!(
    AxisVisitor,
    Axis<T>,
    "a value or a list of values",
    |T| T,
    Axis::One,
    Axis::Many,
    |m| T::deserialize(m).map(Axis::One)
);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Axis<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(AxisVisitor(PhantomData))
    }
}

/// `T` is unused: the macro's visitors are generic.
struct FloatAxisVisitor<T>(PhantomData<T>);
axis_visitor!(
    FloatAxisVisitor,
    FloatAxis,
    "a number, a list of numbers or { from, to, steps }",
    |T| f64,
    FloatAxis::One,
    FloatAxis::Many,
    |m| Linspace::deserialize(m).map(FloatAxis::Range)
);

impl<'de> Deserialize<'de> for FloatAxis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(FloatAxisVisitor::<()>(PhantomData))
    }
}

/// The axes of a sweep. Every field has a default except `players`, γ and β.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Number of players.
    pub players: Axis<usize>,
    /// Competition pattern.
    #[serde(default = "default_topology")]
    pub topology: Axis<Topology>,
    /// Symmetric competition (exact potential games).
    #[serde(default = "default_symmetric")]
    pub symmetric: Axis<bool>,
    /// Participation cost γ.
    #[serde(alias = "gamma")]
    pub participation_cost: FloatAxis,
    /// Competition strength β.
    #[serde(alias = "beta")]
    pub competition_scale: FloatAxis,
    /// Base self cost α.
    #[serde(alias = "alpha", default = "default_self_cost")]
    pub self_cost: FloatAxis,
    /// Diagonal dominance δ.
    #[serde(default = "default_dominance")]
    pub diagonal_dominance: FloatAxis,
    /// Benefit distribution.
    #[serde(default = "default_benefit")]
    pub benefit: Axis<BenefitSpec>,
    /// Equilibrium solver.
    #[serde(default = "default_solver")]
    pub solver: Axis<SolverKind>,
    /// Solver tolerance on the natural residual.
    #[serde(default = "default_tolerance")]
    pub tolerance: FloatAxis,
}

fn default_topology() -> Axis<Topology> {
    Axis::One(GeneratorConfig::default().topology)
}
fn default_symmetric() -> Axis<bool> {
    Axis::One(false)
}
fn default_self_cost() -> FloatAxis {
    FloatAxis::One(GeneratorConfig::default().self_cost)
}
fn default_dominance() -> FloatAxis {
    FloatAxis::One(GeneratorConfig::default().diagonal_dominance)
}
fn default_benefit() -> Axis<BenefitSpec> {
    Axis::One(GeneratorConfig::default().benefit)
}
fn default_solver() -> Axis<SolverKind> {
    Axis::One(SolverKind::Projection)
}
fn default_tolerance() -> FloatAxis {
    FloatAxis::One(1e-8)
}
fn default_replicates() -> usize {
    1
}
fn default_max_iterations() -> usize {
    10_000
}

/// A sweep: base seed, replicates and the grid. Saved (with its hash) next to the results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// A label for reports.
    #[serde(default)]
    pub name: Option<String>,
    /// Base seed; each game's seed is derived from it (see [`game_seed`]).
    pub seed: u64,
    /// Games per cell.
    #[serde(default = "default_replicates")]
    pub replicates: usize,
    /// Solver iteration budget per game.
    #[serde(default = "default_max_iterations")]
    pub max_iterations: usize,
    /// The axes.
    pub grid: Grid,
}

/// One point of the grid: generator parameters (seed left at 0) and solver settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Position in the expanded grid.
    pub index: usize,
    /// Position among the generator-parameter combinations only: cells that differ only in
    /// solver or tolerance share it, and so solve the very same games.
    pub generator_index: usize,
    /// Generator parameters; `seed` is set per replicate.
    pub generator: GeneratorConfig,
    /// Solver.
    pub solver: SolverKind,
    /// Tolerance.
    pub tolerance: f64,
}

fn mix(mut z: u64) -> u64 {
    // SplitMix64 finaliser: a bijection with good avalanche, so nearby inputs give unrelated
    // seeds.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of replicate `replicate` of generator combination `generator_index`.
///
/// A pure function of its arguments, so results do not depend on the order in which
/// threads, shards or resumed runs reach the games.
pub fn game_seed(base: u64, generator_index: usize, replicate: usize) -> u64 {
    mix(mix(mix(base) ^ generator_index as u64) ^ replicate as u64)
}

impl SweepConfig {
    /// Reads a sweep file; the format follows the extension (`.toml` or `.json`).
    pub fn from_path(path: &Path) -> Result<Self> {
        let size = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(Error::TooLarge {
                path: path.into(),
                field: "file size".into(),
                value: size.to_string(),
                reason: format!("a sweep file may hold at most {MAX_FILE_BYTES} bytes"),
            });
        }
        let text = crate::io::read_to_string(path)?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Self::from_toml_str(&text, path),
            Some("json") => Self::from_json_str(&text, path),
            _ => Err(Error::Format {
                path: path.into(),
                message: "a sweep file must end in .toml or .json".into(),
            }),
        }
    }

    /// Parses and checks TOML text; `source` names it in errors.
    pub fn from_toml_str(text: &str, source: &Path) -> Result<Self> {
        let config: SweepConfig = toml::from_str(text).map_err(|e| {
            // "line L, column C: message" on one line; toml's own rendering spans several.
            let at = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
                format!("line {line}, column {column}: ")
            });
            Error::Format {
                path: source.into(),
                message: one_line(&format!("{}{}", at.unwrap_or_default(), e.message().trim())),
            }
        })?;
        config.check().map_err(|e| in_file(e, source))?;
        Ok(config)
    }

    /// Parses and checks JSON text; `source` names it in errors.
    pub fn from_json_str(text: &str, source: &Path) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let config: SweepConfig =
            serde_path_to_error::deserialize(de).map_err(|e| Error::Format {
                path: source.into(),
                message: one_line(&format!("at `{}`: {}", e.path(), e.inner())),
            })?;
        config.check().map_err(|e| in_file(e, source))?;
        Ok(config)
    }

    /// A stable hash of the configuration (hex): shards and resumed runs must agree on it.
    pub fn hash(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("{:016x}", crate::io::fnv1a(json.as_bytes()))
    }

    /// Checks ranges: non-empty axes, positive tolerances, every generator combination valid.
    pub fn check(&self) -> Result<()> {
        if self.replicates == 0 {
            return Err(Error::invalid("replicates", "must be at least 1"));
        }
        if self.max_iterations == 0 {
            return Err(Error::invalid("max_iterations", "must be at least 1"));
        }
        let g = &self.grid;
        let lengths = [
            ("players", g.players.len()),
            ("topology", g.topology.len()),
            ("symmetric", g.symmetric.len()),
            ("participation_cost", g.participation_cost.len()),
            ("competition_scale", g.competition_scale.len()),
            ("self_cost", g.self_cost.len()),
            ("diagonal_dominance", g.diagonal_dominance.len()),
            ("benefit", g.benefit.len()),
            ("solver", g.solver.len()),
            ("tolerance", g.tolerance.len()),
        ];
        // Sizes first, from the axes' lengths alone: nothing is expanded before the grid is
        // known to fit.
        let mut cells = 1usize;
        for (name, len) in lengths {
            if len == 0 {
                return Err(Error::invalid(
                    format!("grid.{name}"),
                    "the axis has no values",
                ));
            }
            cells = cells.saturating_mul(len);
            if cells > MAX_CELLS {
                return Err(Error::invalid(
                    format!("grid.{name}"),
                    format!(
                        "{len} values make the grid larger than the limit of {MAX_CELLS} cells"
                    ),
                ));
            }
        }
        let games = cells.saturating_mul(self.replicates);
        if games > MAX_GAMES {
            return Err(Error::invalid(
                "replicates",
                format!(
                    "{} replicates of {cells} cells make {} games, more than the limit of {MAX_GAMES}",
                    self.replicates,
                    cells as u128 * self.replicates as u128
                ),
            ));
        }
        for t in g.tolerance.values() {
            if !(t.is_finite() && t > 0.0) {
                return Err(Error::invalid(
                    "grid.tolerance",
                    format!("{t} must be finite and > 0"),
                ));
            }
        }
        // The per-game memory bound first: it names the axis at fault, where a generator
        // combination's own check would only say which combination.
        for &players in &g.players.values() {
            for topology in &g.topology.values() {
                for &solver in &g.solver.values() {
                    let bytes = game_bytes(players, topology, solver);
                    if bytes > MAX_GAME_BYTES as f64 {
                        return Err(Error::invalid(
                            "grid.players",
                            format!(
                                "a game of {players} players ({topology:?}, solver {solver}) would need about {}, more than the limit of {} per game",
                                human_bytes(bytes),
                                human_bytes(MAX_GAME_BYTES as f64)
                            ),
                        ));
                    }
                }
            }
        }
        for cell in self.generator_cells() {
            cell.check().map_err(|e| {
                Error::invalid("grid", format!("combination {cell:?} is invalid: {e}"))
            })?;
        }
        Ok(())
    }

    /// Number of games per sweep (cells × replicates).
    pub fn games(&self) -> usize {
        self.cells().len() * self.replicates
    }

    /// Generator combinations in grid order (seed 0).
    fn generator_cells(&self) -> Vec<GeneratorConfig> {
        let g = &self.grid;
        let mut out = Vec::new();
        for &players in &g.players.values() {
            for &topology in &g.topology.values() {
                for &symmetric in &g.symmetric.values() {
                    for &participation_cost in &g.participation_cost.values() {
                        for &competition_scale in &g.competition_scale.values() {
                            for &self_cost in &g.self_cost.values() {
                                for &diagonal_dominance in &g.diagonal_dominance.values() {
                                    for &benefit in &g.benefit.values() {
                                        out.push(GeneratorConfig {
                                            players,
                                            seed: 0,
                                            topology,
                                            symmetric,
                                            competition_scale,
                                            participation_cost,
                                            benefit,
                                            diagonal_dominance,
                                            self_cost,
                                        });
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Every cell of the grid, in index order.
    pub fn cells(&self) -> Vec<Cell> {
        let solvers = self.grid.solver.values();
        let tolerances = self.grid.tolerance.values();
        let mut cells = Vec::new();
        for (generator_index, generator) in self.generator_cells().into_iter().enumerate() {
            for &solver in &solvers {
                for &tolerance in &tolerances {
                    cells.push(Cell {
                        index: cells.len(),
                        generator_index,
                        generator: generator.clone(),
                        solver,
                        tolerance,
                    });
                }
            }
        }
        cells
    }
}

/// `text` with line breaks escaped: parser messages quote the input (an unknown key may
/// hold a `\n`), and an error is one line.
fn one_line(text: &str) -> String {
    text.replace('\r', "\\r").replace('\n', "\\n")
}

/// Names the sweep file in an error raised while checking its contents.
fn in_file(error: Error, source: &Path) -> Error {
    match error {
        Error::InvalidParameter { .. } => Error::Format {
            path: source.into(),
            message: error.to_string(),
        },
        other => other,
    }
}

/// A deterministic 1/N of the cells: shard `K/N` (1 ≤ K ≤ N) takes the cells whose index is
/// `K − 1` modulo `N`. Interleaving balances the load when cost grows along an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// `K`, 1-based.
    pub index: usize,
    /// `N`.
    pub count: usize,
}

impl Shard {
    /// Whether this shard owns `cell`.
    pub fn owns(&self, cell: usize) -> bool {
        cell % self.count == self.index - 1
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("shard", format!("`{s}` is not K/N with 1 <= K <= N"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
        seed = 7
        replicates = 2
        [grid]
        players = [10, 20]
        gamma = { from = 0.0, to = 0.2, steps = 3 }
        beta = 0.5
        solver = ["projection", "best-response"]
    "#;

    #[test]
    fn grid_expands_in_order() {
        let c = SweepConfig::from_toml_str(SMALL, Path::new("t.toml")).unwrap();
        let cells = c.cells();
        assert_eq!(cells.len(), 2 * 3 * 2);
        assert_eq!(c.games(), 24);
        assert_eq!(cells[0].solver, SolverKind::Projection);
        assert_eq!(cells[1].solver, SolverKind::BestResponse);
        assert_eq!(cells[1].generator_index, 0);
        assert_eq!(cells[2].generator_index, 1);
        assert!((cells[2].generator.participation_cost - 0.1).abs() < 1e-15);
        assert_eq!(cells[6].generator.players, 20);
    }

    #[test]
    fn seeds_differ_and_are_stable() {
        assert_ne!(game_seed(1, 0, 0), game_seed(1, 0, 1));
        assert_ne!(game_seed(1, 0, 1), game_seed(1, 1, 0));
        assert_eq!(game_seed(5, 3, 2), game_seed(5, 3, 2));
    }

    #[test]
    fn shard_parsing() {
        assert_eq!(
            "2/3".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 3 }
        );
        assert!("0/3".parse::<Shard>().is_err());
        assert!("4/3".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn errors_quoting_the_input_stay_on_one_line() {
        let text = format!("\"a\\nb\" = 1\n{SMALL}");
        let e = SweepConfig::from_toml_str(&text, Path::new("t.toml")).unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
        assert!(e.to_string().contains("a\\nb"), "{e}");
        let e = SweepConfig::from_json_str("{\"a\\nb\": 1}", Path::new("t.json")).unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let text = SMALL.replace("beta = 0.5", "beta = -1.0");
        let e = SweepConfig::from_toml_str(&text, Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("competition_scale"), "{e}");
        let text = SMALL.replace("replicates = 2", "replicate = 2");
        let e = SweepConfig::from_toml_str(&text, Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("replicate"), "{e}");
    }
}
