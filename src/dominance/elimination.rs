//! Iterated elimination bounds (T4).
//!
//! With `C ≥ 0` a player's best response falls as its opponents participate more (strategic
//! substitutes). Starting from `L⁰ = 0`, `U⁰ = u`, the Jacobi sweeps
//! `U^{k+1} = BR(L^k)`, `L^{k+1} = BR(U^k)` give `L^k ↑`, `U^k ↓`, and every Nash equilibrium
//! stays inside `[L^k, U^k]` (proof in `proofs/T4-iterated-elimination.md`). A player with
//! `U_i = 0` is pruned in every equilibrium — without solving the game; one with `L_i > 0`
//! is active in every equilibrium. Each sweep costs two products `C·L`, `C·U`: `O(nnz)` work,
//! row-parallel through rayon.
//!
//! **Soundness in floating point.** Only the sign of `q_i − (C x)_i` decides whether a bound
//! is zero, so the pressures are rounded outward: the upper bound uses
//! `(C L)_i · (1 − PRESSURE_SLACK)`, the lower bound `(C U)_i · (1 + PRESSURE_SLACK)`. Every
//! term of `(C x)_i` is non-negative, so the computed sum is within `n_i · ε` (relative) of
//! the exact one, far inside the slack for any row shorter than 10^5 entries.
//!
//! **Ties (`a_i = 0`).** The utility is then linear in `s_i`; at a zero slope every
//! `s_i ∈ [0, u_i]` is a best response. The upper bound takes the largest element of that
//! set (`u_i`) and the lower bound the smallest (`0`), which keeps both maps monotone and
//! the bracket valid for every selection a solver may make.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::game::{column_major_mul_vec, sum_over_parts, Competition, CsrMatrix, PruningGame};

/// Relative outward rounding of competition pressures; see the module docs.
pub const PRESSURE_SLACK: f64 = 1e-10;

/// Relative outward rounding of pressures summed from a [`SingleCopy`]: each entry is within
/// a relative `2^-24` of the `f64` it rounds, and the `f64` sum of non-negative terms adds
/// `n ε`; four times `2^-24` covers both for any `n` below 10^8.
const SINGLE_PRESSURE_SLACK: f64 = 4.0 / (1u64 << 24) as f64;

/// A dense competition matrix rounded to `f32`, for the bracket's full half-sweeps: each is a
/// pass over the matrix, bound by memory bandwidth, and half the bytes make it about twice
/// as fast. The pressures are rounded outward by [`SINGLE_PRESSURE_SLACK`] instead of
/// [`PRESSURE_SLACK`], so the bounds are sound but a little looser; rounds in `f64` after
/// them recover the difference.
///
/// The copy holds only the rows and columns of the players not yet proved pruned (`index`):
/// a player with `U_i = 0` has final bounds (`L_i = 0` too), so its row is not needed, and it
/// adds nothing to any pressure, so neither is its column. When enough players have been
/// proved pruned the copy is compacted again ([`SingleCopy::compact`]). A symmetric matrix
/// keeps only its upper triangle: each entry read then serves both of its products, which
/// halves the memory a half-sweep reads.
struct SingleCopy {
    /// Column-major `index.len()` × `index.len()` entries, or for a symmetric matrix its
    /// upper triangle, column `j` holding rows `0..=j` from offset `j (j + 1) / 2`.
    entries: Vec<f32>,
    triangle: bool,
    /// The player of each row and column of `entries`, increasing.
    index: Vec<usize>,
    /// The source of a product gathered to `index`, and the product before it is scattered.
    gathered: Vec<f64>,
    product: Vec<f64>,
}

/// The copy is compacted when at most this fraction of its players is still open: compacting
/// reads the copy once, about what one product costs, and saves at least a quarter of every
/// later one.
const COMPACT_FRACTION: f64 = 0.75;

/// Offset of column `j` of a packed upper triangle.
fn triangle_offset(j: usize) -> usize {
    j * (j + 1) / 2
}

impl SingleCopy {
    /// The copy of a dense game's matrix, `None` for other games, small ones, or when an
    /// entry is outside the normal `f32` range (the relative error bound would not hold).
    fn of(game: &PruningGame) -> Option<Self> {
        let Competition::Dense(m) = game.competition() else {
            return None;
        };
        let n = m.nrows();
        if n < Bracket::MIN_SINGLE_PLAYERS {
            return None;
        }
        let representable =
            |v: f64| v == 0.0 || (v >= f64::from(f32::MIN_POSITIVE) && v <= f64::from(f32::MAX));
        let round = |single: &mut [f32], double: &[f64]| {
            single.iter_mut().zip(double).all(|(s, &d)| {
                *s = d as f32;
                representable(d)
            })
        };
        let triangle = game.is_symmetric();
        let (entries, converted) = if triangle {
            let mut entries = vec![0.0f32; triangle_offset(n)];
            let mut columns = Vec::with_capacity(n);
            let mut rest = entries.as_mut_slice();
            for j in 0..n {
                let (column, tail) = rest.split_at_mut(j + 1);
                columns.push(column);
                rest = tail;
            }
            let converted = columns
                .into_par_iter()
                .enumerate()
                .all(|(j, column)| round(column, &m.as_slice()[j * n..j * n + j + 1]));
            (entries, converted)
        } else {
            let mut entries = vec![0.0f32; m.len()];
            let converted = entries
                .par_chunks_mut(1 << 16)
                .zip(m.as_slice().par_chunks(1 << 16))
                .all(|(single, double)| round(single, double));
            (entries, converted)
        };
        if !converted {
            return None;
        }
        Some(SingleCopy {
            entries,
            triangle,
            index: (0..n).collect(),
            gathered: vec![0.0; n],
            product: vec![0.0; n],
        })
    }

    /// Drops the rows and columns of the players with `upper[i] <= 0` once at most
    /// [`COMPACT_FRACTION`] of the copy's players are left.
    fn compact(&mut self, upper: &[f64]) {
        let k = self.index.len();
        let keep: Vec<usize> = (0..k).filter(|&p| upper[self.index[p]] > 0.0).collect();
        if keep.len() as f64 > COMPACT_FRACTION * k as f64 {
            return;
        }
        let m = keep.len();
        let old = &self.entries;
        self.entries = if self.triangle {
            let mut entries = Vec::with_capacity(triangle_offset(m));
            for (jj, &j) in keep.iter().enumerate() {
                let source = &old[triangle_offset(j)..triangle_offset(j) + j + 1];
                entries.extend(keep[..=jj].iter().map(|&i| source[i]));
            }
            entries
        } else {
            let mut entries = vec![0.0f32; m * m];
            entries
                .par_chunks_mut(m.max(1))
                .zip(keep.par_iter())
                .for_each(|(column, &j)| {
                    let source = &old[j * k..(j + 1) * k];
                    for (e, &i) in column.iter_mut().zip(&keep) {
                        *e = source[i];
                    }
                });
            entries
        };
        self.index = keep.iter().map(|&p| self.index[p]).collect();
        self.gathered.truncate(m);
        self.product.truncate(m);
    }

    /// `out = C x` on the copy's rows, `+∞` on the others (players whose bounds are final:
    /// every best response to an infinite pressure is 0, so their bounds keep their values).
    fn mul_vec(&mut self, x: &[f64], out: &mut [f64]) {
        for (g, &i) in self.gathered.iter_mut().zip(&self.index) {
            *g = x[i];
        }
        let m = self.index.len();
        if self.triangle {
            triangle_mul_vec(&self.entries, &self.gathered, &mut self.product);
        } else {
            column_major_mul_vec(&self.entries, m, &self.gathered, &mut self.product);
        }
        out.fill(f64::INFINITY);
        for (&p, &i) in self.product.iter().zip(&self.index) {
            out[i] = p;
        }
    }
}

/// `y = C x` for a symmetric `C` stored as its packed upper triangle (see [`SingleCopy`]):
/// column `j` adds `C_ij x_j` to every `y_i` above the diagonal and its dot product with `x`
/// to `y_j`, so each entry is read once. Columns are split among the threads in ranges of
/// equal area, each thread summing into its own vector; the terms are the same non-negative
/// products as in the full matrix's, in another order.
fn triangle_mul_vec(entries: &[f32], x: &[f64], y: &mut [f64]) {
    let m = x.len();
    let accumulate = |columns: std::ops::Range<usize>, y: &mut [f64]| {
        y.fill(0.0);
        for j in columns {
            let column = &entries[triangle_offset(j)..triangle_offset(j) + j + 1];
            let (above, diagonal) = column.split_at(j);
            let xj = x[j];
            // Eight partial sums, so the dot product does not wait on one addition chain.
            let mut partial = [0.0f64; 8];
            let (y_above, _) = y.split_at_mut(j);
            let blocks = above.chunks_exact(8);
            let tail = blocks.remainder();
            let mut x_blocks = x[..j].chunks_exact(8);
            let mut y_blocks = y_above.chunks_exact_mut(8);
            for ((c8, x8), y8) in blocks.zip(&mut x_blocks).zip(&mut y_blocks) {
                for l in 0..8 {
                    let c = f64::from(c8[l]);
                    partial[l] += c * x8[l];
                    y8[l] += c * xj;
                }
            }
            let mut dot: f64 = partial.iter().sum();
            let x_tail = x_blocks.remainder();
            for ((&c, &xi), yi) in tail.iter().zip(x_tail).zip(y_blocks.into_remainder()) {
                let c = f64::from(c);
                dot += c * xi;
                *yi += c * xj;
            }
            y[j] += dot + f64::from(diagonal[0]) * xj;
        }
    };
    let threads = rayon::current_num_threads();
    if triangle_offset(m) < PARALLEL_TRIANGLE_ENTRIES || threads < 2 {
        accumulate(0..m, y);
        return;
    }
    // Column `j` holds `j + 1` entries: the first `t` of `T` ranges end at `m √(t / T)`.
    let bounds: Vec<usize> = (0..=threads)
        .map(|t| ((m as f64) * (t as f64 / threads as f64).sqrt()).round() as usize)
        .map(|b| b.min(m))
        .collect();
    let parts: Vec<_> = bounds.windows(2).map(|b| b[0]..b[1]).collect();
    sum_over_parts(&parts, accumulate, y);
}

/// Below this many stored entries a triangle product runs on one thread.
const PARALLEL_TRIANGLE_ENTRIES: usize = 1 << 17;

/// Options of [`iterated_elimination`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EliminationOptions {
    /// Stop when no bound moves by more than this (absolute) in a sweep.
    pub tolerance: f64,
    /// Largest number of sweeps.
    pub max_sweeps: usize,
    /// Bounds closer than this everywhere count as met (the equilibrium is known to this
    /// accuracy and every equilibrium lies within it).
    pub meet_tolerance: f64,
}

impl Default for EliminationOptions {
    fn default() -> Self {
        EliminationOptions {
            // Strategies are of order one; 1e-12 is a few thousand ulps, below any solver
            // tolerance yet reachable before rounding noise dominates the sweep-to-sweep change.
            tolerance: 1e-12,
            max_sweeps: 10_000,
            // Bounds this close identify the equilibrium at the accuracy of a solver's
            // certificate.
            meet_tolerance: 1e-9,
        }
    }
}

impl EliminationOptions {
    /// Checks that tolerances are finite and non-negative.
    pub fn check(&self) -> Result<()> {
        for (name, value) in [
            ("tolerance", self.tolerance),
            ("meet_tolerance", self.meet_tolerance),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::invalid(
                    name,
                    format!("{value} must be finite and >= 0"),
                ));
            }
        }
        Ok(())
    }
}

/// The bracket `[L, U]` that contains every Nash equilibrium, after the sweeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EliminationBounds {
    /// Lower bounds `L` (non-decreasing over sweeps).
    pub lower: Vec<f64>,
    /// Upper bounds `U` (non-increasing over sweeps).
    pub upper: Vec<f64>,
    /// Sweeps performed.
    pub sweeps: usize,
    /// Whether the last sweep moved no bound by more than the tolerance.
    pub converged: bool,
    /// Largest change of a bound in the last sweep.
    pub last_change: f64,
}

impl EliminationBounds {
    /// `max_i (U_i − L_i)`.
    pub fn gap(&self) -> f64 {
        self.lower
            .par_iter()
            .zip(self.upper.par_iter())
            .map(|(l, u)| u - l)
            .reduce(|| 0.0, f64::max)
    }

    /// Players with `U_i = 0`: zero participation in every equilibrium.
    pub fn pruned(&self) -> Vec<usize> {
        indices_where(&self.upper, |u| u <= 0.0)
    }

    /// Players with `L_i > 0`: positive participation in every equilibrium.
    pub fn active(&self) -> Vec<usize> {
        indices_where(&self.lower, |l| l > 0.0)
    }

    /// Whether `profile` lies in the bracket, up to `slack` per coordinate.
    pub fn contains(&self, profile: &[f64], slack: f64) -> bool {
        profile.len() == self.lower.len()
            && profile
                .iter()
                .zip(self.lower.iter().zip(&self.upper))
                .all(|(&s, (&l, &u))| s >= l - slack && s <= u + slack)
    }

    /// The midpoint `(L + U)/2`: the equilibrium when the bounds have met.
    pub fn midpoint(&self) -> Vec<f64> {
        self.lower
            .iter()
            .zip(&self.upper)
            .map(|(l, u)| 0.5 * (l + u))
            .collect()
    }
}

fn indices_where(values: &[f64], keep: impl Fn(f64) -> bool + Sync) -> Vec<usize> {
    values
        .par_iter()
        .enumerate()
        .filter(|(_, &v)| keep(v))
        .map(|(i, _)| i)
        .collect()
}

/// The largest best response of player `i` to pressure `pressure` (ties resolved upward).
pub(crate) fn best_response_max(game: &PruningGame, i: usize, pressure: f64) -> f64 {
    let slope = game.net_benefit()[i] - pressure;
    let a = game.self_cost()[i];
    let u = game.upper_bounds()[i];
    if a > 0.0 {
        (slope / a).clamp(0.0, u)
    } else if slope >= 0.0 {
        u
    } else {
        0.0
    }
}

/// The smallest best response of player `i` to pressure `pressure` (ties resolved downward).
pub(crate) fn best_response_min(game: &PruningGame, i: usize, pressure: f64) -> f64 {
    let slope = game.net_benefit()[i] - pressure;
    let a = game.self_cost()[i];
    let u = game.upper_bounds()[i];
    if a > 0.0 {
        (slope / a).clamp(0.0, u)
    } else if slope > 0.0 {
        u
    } else {
        0.0
    }
}

/// Runs the T4 sweeps until no bound moves by more than `options.tolerance` or the sweep
/// budget is spent. The bracket is valid after every sweep, converged or not.
pub fn iterated_elimination(
    game: &PruningGame,
    options: &EliminationOptions,
) -> Result<EliminationBounds> {
    options.check()?;
    crate::parallel::in_pool(|| {
        let mut bracket = Bracket::top(game);
        let outcome = bracket.run(options.tolerance, options.max_sweeps, |_| false);
        Ok(bracket.into_bounds(outcome))
    })
}

/// Which bound a half-sweep updates.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    /// `U_i ← min(U_i, β̄_i(C L))`.
    Upper,
    /// `L_i ← max(L_i, β_i(C U))`.
    Lower,
}

/// The players whose bound moved in a half-sweep.
enum Moved {
    /// More than `n / LISTED_FRACTION` of them (flagged in [`Bracket::moved_flags`]).
    Many,
    /// These, in no particular order.
    Few(Vec<usize>),
}

/// The rows a half-sweep recomputes.
enum Rows {
    All,
    Listed(Vec<usize>),
}

/// For every column `j` of a sparse `C`, the rows `i` with `C_ij ≠ 0`: whose pressure moves
/// when player `j`'s bound moves. The pattern of `Cᵀ`, without values.
struct Dependents {
    offsets: Vec<usize>,
    rows: Vec<u32>,
}

impl Dependents {
    fn of(c: &CsrMatrix) -> Self {
        let n = c.size();
        let mut offsets = vec![0usize; n + 1];
        for i in 0..n {
            for (j, _) in c.row(i) {
                offsets[j + 1] += 1;
            }
        }
        for j in 0..n {
            offsets[j + 1] += offsets[j];
        }
        let mut next = offsets.clone();
        let mut rows = vec![0u32; offsets[n]];
        for i in 0..n {
            for (j, _) in c.row(i) {
                // `CsrMatrix` holds at most 2^32 − 1 rows, so `i` fits.
                rows[next[j]] = i as u32;
                next[j] += 1;
            }
        }
        Dependents { offsets, rows }
    }

    fn column(&self, j: usize) -> &[u32] {
        &self.rows[self.offsets[j]..self.offsets[j + 1]]
    }
}

/// What one round (an upper then a lower half-sweep) did.
pub(crate) struct Round<'a> {
    /// Rounds done so far, this one included.
    pub(crate) sweeps: usize,
    /// Players whose upper bound reached 0 in this round.
    pub(crate) zeroed: &'a [usize],
}

/// How [`Bracket::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Outcome {
    pub(crate) sweeps: usize,
    pub(crate) converged: bool,
    pub(crate) last_change: f64,
}

/// A T4 bracket `[L, U]` that contains every equilibrium, and the sweeps that shrink it.
///
/// A round updates `U` from the current `L`, then `L` from the *new* `U` (the Jacobi sweeps
/// of the statement use the old `U`, and so run two independent chains at half the speed;
/// both reach the same limits, see `proofs/T4-iterated-elimination.md`). On sparse games a
/// half-sweep recomputes only the rows whose pressure moved — those with a competitor whose
/// bound changed — once few rows move; the iterates are the same, bit for bit, as those of
/// full sweeps.
pub(crate) struct Bracket<'g> {
    game: &'g PruningGame,
    pub(crate) lower: Vec<f64>,
    pub(crate) upper: Vec<f64>,
    dependents: Option<Dependents>,
    pressure: Vec<f64>,
    /// Round stamp of the last time a row was put on a list (deduplication).
    listed: Vec<u32>,
    stamp: u32,
    /// Sparse games: the rows whose bounds can still move, in increasing order. A row with
    /// `U_i = 0` (then `L_i = 0` too) or `L_i = u_i` (then `U_i = u_i`) is final.
    open: Option<Vec<usize>>,
    /// Which rows moved in the last full half-sweep.
    moved_flags: Vec<bool>,
    /// Full half-sweeps of dense games read this copy while it is there.
    single: Option<SingleCopy>,
}

/// A half-sweep recomputes listed rows instead of all of them when the list holds at most
/// `n / LISTED_FRACTION` rows: a listed row costs a random access and its share of building
/// the list (sequential), a row of the full product a streamed, parallel pass.
const LISTED_FRACTION: usize = 8;

impl<'g> Bracket<'g> {
    /// Smallest dense game whose half-sweeps read a [`SingleCopy`] (below it the matrix
    /// sits in cache anyway).
    pub(crate) const MIN_SINGLE_PLAYERS: usize = 1024;

    /// The bracket of the statement before any sweep: `L = 0`, `U = u`.
    pub(crate) fn top(game: &'g PruningGame) -> Self {
        let n = game.net_benefit().len();
        let upper = game.upper_bounds().iter().copied().collect();
        Self::new(game, vec![0.0; n], upper)
    }

    /// A bracket the caller has proved to contain every equilibrium.
    pub(crate) fn new(game: &'g PruningGame, lower: Vec<f64>, upper: Vec<f64>) -> Self {
        let n = lower.len();
        Bracket {
            game,
            lower,
            upper,
            dependents: None,
            pressure: vec![0.0; n],
            listed: Vec::new(),
            stamp: 0,
            open: None,
            moved_flags: Vec::new(),
            single: None,
        }
    }

    /// Makes the following full half-sweeps of a dense game read an `f32` copy of the
    /// matrix ([`SingleCopy`]); returns whether there is one (dense games from 1024 players).
    pub(crate) fn start_single_precision(&mut self) -> bool {
        self.single = SingleCopy::of(self.game);
        self.single.is_some()
    }

    /// Back to `f64` products and [`PRESSURE_SLACK`].
    pub(crate) fn end_single_precision(&mut self) {
        self.single = None;
    }

    /// Runs rounds until no bound moves by more than `tolerance`, `max_sweeps` rounds are
    /// done, or `stop` (called after every round) says so.
    pub(crate) fn run(
        &mut self,
        tolerance: f64,
        max_sweeps: usize,
        mut stop: impl FnMut(&Round<'_>) -> bool,
    ) -> Outcome {
        let mut outcome = Outcome {
            sweeps: 0,
            converged: false,
            last_change: f64::INFINITY,
        };
        // The lower bounds that moved in the previous round: the next upper half-sweep
        // recomputes their dependents (worked out only once that round is sure to run).
        let mut raised: Option<Moved> = None;
        for sweep in 1..=max_sweeps {
            let upper_rows = match raised.take() {
                None => Rows::All,
                Some(moved) => self.rows_after(&moved),
            };
            let rows = self.restrict(upper_rows);
            let (upper_change, lowered) = self.half_sweep(Side::Upper, &rows);
            let zeroed = self.zeroed(&lowered);
            // Every bound is computed in the first round; later, only where its input moved.
            let lower_rows = if sweep == 1 {
                Rows::All
            } else {
                self.rows_after(&lowered)
            };
            let lower_rows = self.restrict(lower_rows);
            let (lower_change, moved) = self.half_sweep(Side::Lower, &lower_rows);
            self.close_final_rows();
            raised = Some(moved);
            outcome.sweeps = sweep;
            outcome.last_change = upper_change.max(lower_change);
            if outcome.last_change <= tolerance {
                outcome.converged = true;
                break;
            }
            if stop(&Round {
                sweeps: sweep,
                zeroed: &zeroed,
            }) {
                break;
            }
        }
        outcome
    }

    /// Whether row `i`'s bounds are final (see [`Bracket::open`]).
    fn is_final(&self, i: usize) -> bool {
        self.upper[i] <= 0.0 || self.lower[i] >= self.game.upper_bounds()[i]
    }

    /// On sparse games, "all rows" means the open ones: a final row would get the value it
    /// already holds.
    fn restrict(&mut self, rows: Rows) -> Rows {
        match (rows, &self.open) {
            // The full product is the faster pass while most rows are open.
            (Rows::All, Some(open)) if open.len() < self.upper.len() / 2 => {
                Rows::Listed(open.clone())
            }
            (rows, _) => rows,
        }
    }

    /// Drops the rows that became final from the open rows (sparse games only).
    fn close_final_rows(&mut self) {
        if !matches!(self.game.competition(), Competition::Sparse(_)) {
            return;
        }
        let open = match self.open.take() {
            Some(mut open) => {
                open.retain(|&i| !self.is_final(i));
                open
            }
            None => (0..self.upper.len())
                .into_par_iter()
                .filter(|&i| !self.is_final(i))
                .collect(),
        };
        self.open = Some(open);
    }

    /// The rows whose pressure depends on a bound that just moved: all of them, or a list
    /// when that is much shorter (sparse games only).
    fn rows_after(&mut self, moved: &Moved) -> Rows {
        let moved = match moved {
            Moved::Many => return Rows::All,
            Moved::Few(list) => list.as_slice(),
        };
        let c = match self.game.competition() {
            _ if moved.is_empty() => return Rows::Listed(Vec::new()),
            Competition::Sparse(c) => c,
            Competition::None => return Rows::Listed(Vec::new()),
            Competition::Dense(_) => return Rows::All,
        };
        let n = c.size();
        let limit = n / LISTED_FRACTION;
        // The list would hold about `moved × (nnz / n)` rows: when that is past the limit,
        // the full sweep is chosen without building the list first.
        if moved.len().saturating_mul(c.nnz()) > limit.saturating_mul(n) {
            return Rows::All;
        }
        if self.dependents.is_none() {
            self.dependents = Some(Dependents::of(c));
        }
        let Some(dependents) = self.dependents.as_ref() else {
            return Rows::All;
        };
        if self.listed.len() != n {
            self.listed = vec![0; n];
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.listed.fill(0);
            self.stamp = 1;
        }
        let mut rows = Vec::with_capacity(limit.min(16 * moved.len()));
        for &j in moved {
            for &i in dependents.column(j) {
                let i = i as usize;
                let final_row =
                    self.upper[i] <= 0.0 || self.lower[i] >= self.game.upper_bounds()[i];
                if self.listed[i] != self.stamp && !final_row {
                    self.listed[i] = self.stamp;
                    rows.push(i);
                }
            }
            if rows.len() > limit {
                return Rows::All;
            }
        }
        Rows::Listed(rows)
    }

    /// Updates one bound on `rows`; returns the largest move and the players that moved.
    fn half_sweep(&mut self, side: Side, rows: &Rows) -> (f64, Moved) {
        let game = self.game;
        let n = self.upper.len();
        if let (Rows::All, Some(copy)) = (rows, &mut self.single) {
            copy.compact(&self.upper);
        }
        let (source, target) = match side {
            Side::Upper => (&self.lower, &mut self.upper),
            Side::Lower => (&self.upper, &mut self.lower),
        };
        let slack = if self.single.is_some() {
            SINGLE_PRESSURE_SLACK
        } else {
            PRESSURE_SLACK
        };
        // Monotone by construction; min/max only guard against rounding.
        let bound = |i: usize, pressure: f64, old: f64| match side {
            Side::Upper => best_response_max(game, i, pressure * (1.0 - slack)).min(old),
            Side::Lower => best_response_min(game, i, pressure * (1.0 + slack)).max(old),
        };
        match rows {
            Rows::All => {
                match &mut self.single {
                    Some(copy) => copy.mul_vec(source, &mut self.pressure),
                    None => game.competition().mul_vec(source, &mut self.pressure),
                }
                if self.moved_flags.len() != n {
                    self.moved_flags = vec![false; n];
                }
                let (change, count) = target
                    .par_iter_mut()
                    .zip(self.pressure.par_iter())
                    .zip(self.moved_flags.par_iter_mut())
                    .enumerate()
                    .map(|(i, ((t, &p), flag))| {
                        let new = bound(i, p, *t);
                        let step = (new - *t).abs();
                        *t = new;
                        *flag = step > 0.0;
                        (step, usize::from(step > 0.0))
                    })
                    .reduce(|| (0.0, 0), |a, b| (a.0.max(b.0), a.1 + b.1));
                // Past half the rows the next half-sweep is a full one: no list needed.
                let moved = if count > n / LISTED_FRACTION {
                    Moved::Many
                } else {
                    let flags = &self.moved_flags;
                    Moved::Few((0..n).into_par_iter().filter(|&i| flags[i]).collect())
                };
                (change, moved)
            }
            Rows::Listed(list) => {
                let competition = game.competition();
                let updates: Vec<(usize, f64)> = list
                    .par_iter()
                    .map(|&i| (i, bound(i, competition.row_dot(i, source), target[i])))
                    .collect();
                let mut change = 0.0f64;
                let mut moved = Vec::new();
                for (i, new) in updates {
                    let step = (new - target[i]).abs();
                    target[i] = new;
                    if step > 0.0 {
                        change = change.max(step);
                        moved.push(i);
                    }
                }
                (change, Moved::Few(moved))
            }
        }
    }

    /// The players among `moved` (all of them, for [`Moved::Many`]) whose upper bound is 0.
    fn zeroed(&self, moved: &Moved) -> Vec<usize> {
        match moved {
            Moved::Many => {
                let flags = &self.moved_flags;
                (0..self.upper.len())
                    .into_par_iter()
                    .filter(|&i| flags[i] && self.upper[i] <= 0.0)
                    .collect()
            }
            Moved::Few(list) => list
                .iter()
                .copied()
                .filter(|&i| self.upper[i] <= 0.0)
                .collect(),
        }
    }

    /// The bracket as a public value.
    pub(crate) fn into_bounds(self, outcome: Outcome) -> EliminationBounds {
        EliminationBounds {
            lower: self.lower,
            upper: self.upper,
            sweeps: outcome.sweeps,
            converged: outcome.converged,
            last_change: outcome.last_change,
        }
    }
}

/// Summary of the T4 bracket for reports (index lists, no per-player vectors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EliminationReport {
    /// Sweeps performed.
    pub sweeps: usize,
    /// Whether the sweeps reached the tolerance.
    pub converged: bool,
    /// Largest change in the last sweep.
    pub last_change: f64,
    /// `max_i (U_i − L_i)`.
    pub gap: f64,
    /// Whether `gap ≤ meet_tolerance`: the equilibrium is unique up to `gap` and equals the
    /// midpoint of the bracket.
    pub met: bool,
    /// Players with `U_i = 0` (pruned in every equilibrium).
    pub pruned: Vec<usize>,
    /// Players with `L_i > 0` (active in every equilibrium).
    pub active: Vec<usize>,
}

impl EliminationReport {
    /// The summary of `bounds`.
    pub fn of(bounds: &EliminationBounds, options: &EliminationOptions) -> Self {
        let gap = bounds.gap();
        EliminationReport {
            sweeps: bounds.sweeps,
            converged: bounds.converged,
            last_change: bounds.last_change,
            gap,
            met: gap <= options.meet_tolerance,
            pruned: bounds.pruned(),
            active: bounds.active(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Competition;
    use nalgebra::{dmatrix, dvector};

    #[test]
    fn the_single_copy_is_refused_when_an_entry_is_outside_the_normal_f32_range() {
        let n = Bracket::MIN_SINGLE_PLAYERS;
        let game_with = |entry: f64| {
            let mut c = nalgebra::DMatrix::from_element(n, n, 0.25);
            c.fill_diagonal(0.0);
            c[(3, 7)] = entry;
            c[(7, 3)] = entry;
            PruningGame::with_uniform_cost(
                nalgebra::DVector::from_element(n, 1.0),
                nalgebra::DVector::from_element(n, 1.0),
                0.0,
                Competition::dense(c).unwrap(),
            )
            .unwrap()
        };
        assert!(SingleCopy::of(&game_with(0.5)).is_some());
        // A subnormal f32 (or one that flushes to 0) and one past f32::MAX would break the
        // relative error bound behind the slack.
        for entry in [1e-40, 1e-50, 1e39] {
            assert!(SingleCopy::of(&game_with(entry)).is_none(), "{entry:e}");
        }
        // Small games keep f64.
        assert!(SingleCopy::of(&two_player([1.0, 1.0], [1.0, 1.0], 0.5)).is_none());
    }

    /// Once a quarter of the players are proved pruned the copy keeps only the others' rows
    /// and columns, and its products stay within the single-precision slack of the `f64`
    /// ones on those rows and infinite on the rest — for a full copy (unsymmetric matrix)
    /// and a triangle (symmetric), on one thread and on the pool.
    #[test]
    fn the_compacted_copy_multiplies_the_open_players_only() {
        let n = Bracket::MIN_SINGLE_PLAYERS + 5;
        let entry = |i: usize, j: usize| ((i * 7 + j * 3) % 11) as f64 / 97.0;
        for symmetric in [false, true] {
            let c = nalgebra::DMatrix::from_fn(n, n, |i, j| match (i == j, symmetric) {
                (true, _) => 0.0,
                (false, false) => entry(i, j),
                (false, true) => entry(i.min(j), i.max(j)),
            });
            let game = PruningGame::with_uniform_cost(
                nalgebra::DVector::from_element(n, 1.0),
                nalgebra::DVector::from_element(n, 1.0),
                0.0,
                Competition::dense(c.clone()).unwrap(),
            )
            .unwrap();
            let mut copy = SingleCopy::of(&game).unwrap();
            assert_eq!(copy.triangle, symmetric);
            let mut upper = vec![1.0; n];
            // Fewer than a quarter pruned: no compaction.
            (0..n / 5).for_each(|i| upper[3 * i] = 0.0);
            copy.compact(&upper);
            assert_eq!(copy.index.len(), n);
            (0..n / 3).for_each(|i| upper[3 * i] = 0.0);
            copy.compact(&upper);
            let open: Vec<usize> = (0..n).filter(|&i| upper[i] > 0.0).collect();
            assert_eq!(copy.index, open);
            let x: Vec<f64> = (0..n)
                .map(|j| {
                    if upper[j] > 0.0 {
                        (j % 5) as f64 * 0.2
                    } else {
                        0.0
                    }
                })
                .collect();
            let exact = &c * nalgebra::DVector::from_column_slice(&x);
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut out = vec![0.0; n];
                pool.install(|| copy.mul_vec(&x, &mut out));
                for i in 0..n {
                    if upper[i] > 0.0 {
                        let err = (out[i] - exact[i]).abs();
                        assert!(
                            err <= SINGLE_PRESSURE_SLACK * exact[i],
                            "symmetric {symmetric}, {threads} threads, row {i}: {err}"
                        );
                    } else {
                        assert!(out[i].is_infinite(), "row {i} is final: {}", out[i]);
                    }
                }
            }
        }
    }

    fn two_player(q: [f64; 2], a: [f64; 2], c: f64) -> PruningGame {
        PruningGame::with_uniform_cost(
            dvector![q[0], q[1]],
            dvector![a[0], a[1]],
            0.0,
            Competition::dense(dmatrix![0.0, c; c, 0.0]).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn hand_checked_two_player_bracket_meets_at_the_equilibrium() {
        // q = (1, 1), a = (2, 2), c = 1: s = (1 − s_other)/2 has the unique NE s = 1/3.
        let game = two_player([1.0, 1.0], [2.0, 2.0], 1.0);
        let bounds = iterated_elimination(&game, &EliminationOptions::default()).unwrap();
        assert!(bounds.converged);
        assert!(bounds.gap() < 1e-9);
        for s in bounds.midpoint() {
            assert!((s - 1.0 / 3.0).abs() < 1e-9);
        }
        assert_eq!(bounds.active(), vec![0, 1]);
        assert!(bounds.pruned().is_empty());
    }

    #[test]
    fn first_sweep_prunes_negative_net_benefit() {
        let game = two_player([-0.5, 1.0], [1.0, 1.0], 0.2);
        let options = EliminationOptions {
            max_sweeps: 1,
            ..Default::default()
        };
        let bounds = iterated_elimination(&game, &options).unwrap();
        assert_eq!(bounds.pruned(), vec![0]);
        assert!((bounds.upper[1] - 1.0).abs() < 1e-15);
        // L¹ = BR(U¹): U¹_0 = 0 already, so player 1 faces no pressure from player 0 (the
        // Jacobi sweep of the statement would still use U⁰_0 = 1 and give L¹_1 = 0.8).
        assert!((bounds.lower[1] - 1.0).abs() < 1e-15);
    }

    #[test]
    fn second_round_elimination_needs_a_sweep_more() {
        // Player 1 has q = 0.5 but player 0 is surely at 1 and pushes 0.6 on it.
        let game = PruningGame::with_uniform_cost(
            dvector![5.0, 0.5],
            dvector![1.0, 1.0],
            0.0,
            Competition::dense(dmatrix![0.0, 0.0; 0.6, 0.0]).unwrap(),
        )
        .unwrap();
        let bounds = iterated_elimination(&game, &EliminationOptions::default()).unwrap();
        assert_eq!(bounds.pruned(), vec![1]);
        assert_eq!(bounds.active(), vec![0]);
    }

    #[test]
    fn zero_self_cost_ties_keep_the_whole_interval() {
        // a = 0 and q exactly balances the pressure at the upper bound: every s_1 is a best
        // response when player 0 plays 1, so the bracket must keep [0, 1] for player 1.
        let game = PruningGame::with_uniform_cost(
            dvector![2.0, 0.5],
            dvector![1.0, 0.0],
            0.0,
            Competition::dense(dmatrix![0.0, 0.0; 0.5, 0.0]).unwrap(),
        )
        .unwrap();
        let bounds = iterated_elimination(&game, &EliminationOptions::default()).unwrap();
        assert!(bounds.lower[1] <= 0.0);
        assert!(bounds.upper[1] >= 1.0);
        assert!(bounds.pruned().is_empty());
        assert!(!bounds.contains(&[1.0, 0.5, 0.0], 0.0));
        assert!(bounds.contains(&[1.0, 0.5], 0.0));
    }

    #[test]
    fn rejects_bad_tolerance() {
        let game = two_player([1.0, 1.0], [1.0, 1.0], 0.0);
        let options = EliminationOptions {
            tolerance: f64::NAN,
            ..Default::default()
        };
        assert!(iterated_elimination(&game, &options).is_err());
    }
}
