//! Seeded synthetic pruning games.
//!
//! A [`GeneratorConfig`] is data (serde, with its seed inside) so that it can be stored next
//! to every result; the same configuration always yields the same game, bit for bit.

use nalgebra::{DMatrix, DVector};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use rayon::prelude::*;

use super::{Competition, CsrMatrix, PruningGame};
use crate::error::{Error, Result};

/// Who competes with whom.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Topology {
    /// A dense matrix; each off-diagonal pair competes with probability `density`.
    Dense {
        /// Probability that an ordered pair (or unordered, when symmetric) has `C_ij > 0`.
        density: f64,
    },
    /// Players on a ring, each competing with its `k` nearest neighbours (sparse storage).
    Nearest {
        /// Neighbours per player (`⌈k/2⌉` after, `⌊k/2⌋` before on the ring); even when the
        /// competition is symmetric.
        k: usize,
    },
    /// Erdős–Rényi: each pair competes independently, `degree` competitors per player on
    /// average (sparse storage).
    Random {
        /// Expected competitors per player.
        degree: f64,
    },
}

/// How the net benefits `q_i = b_i − γ_i` are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BenefitSpec {
    /// Exactly `round(negative_fraction · N)` players, chosen at random, get `q_i < 0`;
    /// magnitudes `|q_i| ~ U(0.05, 1) · scale`.
    Split {
        /// Fraction of players whose zero participation is dominant (T3).
        negative_fraction: f64,
        /// Scale of `|q_i|`.
        scale: f64,
    },
    /// Benefits `b_i ~ N(mean, std²)`; the sign of `q_i = b_i − γ` follows from `γ`.
    Normal {
        /// Mean benefit.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
}

/// Parameters of a synthetic pruning game. See [`generate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Number of players.
    pub players: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Competition pattern.
    pub topology: Topology,
    /// Whether `C = Cᵀ` (an exact potential game, T5).
    pub symmetric: bool,
    /// Competition strength β: non-zero entries are `β · U(0, 1)`.
    pub competition_scale: f64,
    /// Participation cost γ (the same for every player).
    pub participation_cost: f64,
    /// Benefit distribution.
    pub benefit: BenefitSpec,
    /// Diagonal dominance δ ≥ 0: `a_i = δ · max(Σ_j C_ij, Σ_j C_ji) + self_cost · U(0.5, 1.5)`.
    /// δ > 1 makes `M` strictly diagonally dominant by rows and columns, hence the symmetric
    /// part positive definite (unique equilibrium, T2); δ = 0 leaves only the base self cost.
    pub diagonal_dominance: f64,
    /// Base self cost α.
    pub self_cost: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            players: 100,
            seed: 0,
            topology: Topology::Dense { density: 1.0 },
            symmetric: false,
            competition_scale: 0.1,
            participation_cost: 0.1,
            benefit: BenefitSpec::Split {
                negative_fraction: 0.3,
                scale: 1.0,
            },
            diagonal_dominance: 1.5,
            self_cost: 1.0,
        }
    }
}

fn finite_non_negative(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            name,
            format!("{value} must be finite and >= 0"),
        ))
    }
}

fn fraction(name: &str, value: f64) -> Result<()> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid(name, format!("{value} must lie in [0, 1]")))
    }
}

impl GeneratorConfig {
    /// Checks every field's range; [`generate`] calls it first.
    pub fn check(&self) -> Result<()> {
        if self.players == 0 {
            return Err(Error::EmptyGame);
        }

        finite_non_negative("competition_scale", self.competition_scale)?;
        finite_non_negative("participation_cost", self.participation_cost)?;
        finite_non_negative("diagonal_dominance", self.diagonal_dominance)?;
        finite_non_negative("self_cost", self.self_cost)?;
        match self.topology {
            Topology::Dense { density } => fraction("density", density)?,
            Topology::Nearest { k } => {
                if self.symmetric && k % 2 == 1 {
                    return Err(Error::invalid(
                        "k",
                        format!("symmetric ring competition needs an even number of neighbours, got {k}"),
                    ));
                }
                if k >= self.players {
                    return Err(Error::invalid(
                        "k",
                        format!("{k} neighbours need more than {} players", self.players),
                    ));
                }
            }
            Topology::Random { degree } => {
                if !(degree.is_finite() && degree >= 0.0 && degree <= (self.players - 1) as f64) {
                    return Err(Error::invalid(
                        "degree",
                        format!(
                            "{degree} must lie in [0, players - 1 = {}]",
                            self.players - 1
                        ),
                    ));
                }
            }
        }
        match self.benefit {
            BenefitSpec::Split {
                negative_fraction,
                scale,
            } => {
                fraction("negative_fraction", negative_fraction)?;
                finite_non_negative("benefit scale", scale)?;
            }
            BenefitSpec::Normal { mean, std } => {
                if !mean.is_finite() {
                    return Err(Error::invalid(
                        "benefit mean",
                        format!("{mean} must be finite"),
                    ));
                }
                finite_non_negative("benefit std", std)?;
            }
        }
        if self.peak_bytes().is_none() {
            return Err(Error::invalid(
                "players",
                format!(
                    "{} players: the game would not fit in any memory",
                    self.players
                ),
            ));
        }
        if !matches!(self.topology, Topology::Dense { .. }) && self.players > u32::MAX as usize {
            return Err(Error::invalid(
                "players",
                format!("{} exceeds the sparse limit of 2^32 - 1", self.players),
            ));
        }
        Ok(())
    }
}

impl GeneratorConfig {
    /// Bytes [`generate`] needs at its peak, about: the competition matrix as it is built
    /// plus the per-player vectors. `None` when the count does not fit in 64 bits — no
    /// machine could hold the game. Front ends compare it with the memory they have before
    /// asking for a game that would abort the process.
    pub fn peak_bytes(&self) -> Option<u64> {
        let n = self.players as u64;
        // benefit, self cost, participation cost, upper, net benefit, row and column sums.
        let vectors = n.checked_mul(7 * 8)?;
        let matrix = match self.topology {
            Topology::Dense { .. } => n.checked_mul(n)?.checked_mul(8)?,
            // CSR: 4-byte column and 8-byte value per entry, 8-byte row offsets.
            Topology::Nearest { k } => n
                .checked_mul(k as u64)?
                .checked_mul(12)?
                .checked_add(8 * n)?,
            Topology::Random { degree } => {
                // Triplets (24 B), their sort slots (16 B) and the CSR (12 B) per entry.
                let entries = (n as f64 * degree * 1.1).ceil();
                if entries.is_nan() || entries >= 1e18 {
                    return None;
                }
                (entries as u64).checked_mul(52)?.checked_add(16 * n)?
            }
        };
        vectors.checked_add(matrix)
    }
}

/// Generates the game described by `config`.
pub fn generate(config: &GeneratorConfig) -> Result<PruningGame> {
    config.check()?;
    let n = config.players;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let competition = competition(config, &mut rng)?;
    let (row_sums, col_sums) = sums(&competition, n);
    let self_cost = DVector::from_fn(n, |i, _| {
        config.diagonal_dominance * row_sums[i].max(col_sums[i])
            + config.self_cost * rng.random_range(0.5..1.5)
    });
    let gamma = config.participation_cost;
    let benefit = match config.benefit {
        BenefitSpec::Split {
            negative_fraction,
            scale,
        } => {
            let negatives = (negative_fraction * n as f64).round() as usize;
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            let mut b = DVector::zeros(n);
            for (rank, &i) in order.iter().enumerate() {
                let magnitude = scale * rng.random_range(0.05..1.0);
                b[i] = gamma
                    + if rank < negatives {
                        -magnitude
                    } else {
                        magnitude
                    };
            }
            b
        }
        BenefitSpec::Normal { mean, std } => {
            let normal =
                Normal::new(mean, std).map_err(|e| Error::invalid("benefit", e.to_string()))?;
            DVector::from_fn(n, |_, _| normal.sample(&mut rng))
        }
    };
    PruningGame::new(
        benefit,
        self_cost,
        DVector::from_element(n, gamma),
        DVector::from_element(n, 1.0),
        competition,
    )
}

fn sums(competition: &Competition, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut rows = vec![0.0; n];
    let mut cols = vec![0.0; n];
    if let Competition::Sparse(c) = competition {
        // The same additions in the same order as the triplet loop below, on the arrays.
        let (offsets, columns, values) = (c.row_offsets(), c.columns(), c.values());
        for i in 0..n {
            for k in offsets[i]..offsets[i + 1] {
                rows[i] += values[k];
                cols[columns[k] as usize] += values[k];
            }
        }
        return (rows, cols);
    }
    for (i, j, v) in competition.triplets() {
        rows[i] += v;
        cols[j] += v;
    }
    (rows, cols)
}

fn competition(config: &GeneratorConfig, rng: &mut ChaCha8Rng) -> Result<Competition> {
    let n = config.players;
    let scale = config.competition_scale;
    if scale == 0.0 {
        return Ok(Competition::None);
    }
    let draw = |rng: &mut ChaCha8Rng| scale * rng.random::<f64>();
    match config.topology {
        Topology::Dense { density } => {
            let mut m = DMatrix::zeros(n, n);
            for i in 0..n {
                let start = if config.symmetric { i + 1 } else { 0 };
                for j in start..n {
                    if i == j || !rng.random_bool(density) {
                        continue;
                    }
                    let v = draw(rng);
                    m[(i, j)] = v;
                    if config.symmetric {
                        m[(j, i)] = v;
                    }
                }
            }
            Competition::dense(m)
        }
        Topology::Nearest { k } => nearest(n, k, config.symmetric, rng, draw),
        Topology::Random { degree } => {
            let p = if n > 1 { degree / (n - 1) as f64 } else { 0.0 };
            let mut entries = Vec::with_capacity((n as f64 * degree * 1.1) as usize + 16);
            for i in 0..n {
                let first = if config.symmetric { i + 1 } else { 0 };
                for j in geometric_sample(first, n, p, rng) {
                    if j == i {
                        continue;
                    }
                    let v = draw(rng);
                    entries.push((i, j, v));
                    if config.symmetric {
                        entries.push((j, i, v));
                    }
                }
            }
            Competition::sparse(n, &entries)
        }
    }
}

/// The ring of [`Topology::Nearest`], built straight into compressed sparse rows: `k` slots
/// per row, filled in the order of the draws (player `i` draws its `⌈k/2⌉` links after it,
/// and for each of the first `⌊k/2⌋` the mirrored link from that neighbour back to `i`), then
/// each row sorted by column. No list of triplets is held, so 10^7 players cost the matrix
/// and nothing more.
fn nearest(
    n: usize,
    k: usize,
    symmetric: bool,
    rng: &mut ChaCha8Rng,
    draw: impl Fn(&mut ChaCha8Rng) -> f64,
) -> Result<Competition> {
    let after = k.div_ceil(2);
    let before = k / 2;
    let entries = n.checked_mul(k).ok_or_else(|| {
        Error::invalid("players", format!("{n} players × {k} neighbours overflow"))
    })?;
    let mut columns = vec![0u32; entries];
    let mut values = vec![0.0; entries];
    // Row r: slots 0..before hold the links from r − before..r − 1 back to r (slot
    // before − d for distance d), slots before..k the links to r + 1..r + after.
    for i in 0..n {
        for d in 1..=after {
            let j = (i + d) % n;
            let v = draw(rng);
            let slot = i * k + before + d - 1;
            columns[slot] = j as u32;
            values[slot] = v;
            if d <= before {
                let w = if symmetric { v } else { draw(rng) };
                let slot = j * k + before - d;
                columns[slot] = i as u32;
                values[slot] = w;
            }
        }
    }
    columns
        .par_chunks_mut(k.max(1))
        .zip(values.par_chunks_mut(k.max(1)))
        .for_each(|(cols, vals)| {
            let mut pairs: Vec<(u32, f64)> =
                cols.iter().copied().zip(vals.iter().copied()).collect();
            pairs.sort_unstable_by_key(|p| p.0);
            for (slot, (c, v)) in pairs.into_iter().enumerate() {
                cols[slot] = c;
                vals[slot] = v;
            }
        });
    let offsets = (0..=n).map(|r| r * k).collect();
    CsrMatrix::from_csr(n, offsets, columns, values).map(Competition::Sparse)
}

/// Indices in `first..end`, each kept independently with probability `p`, in `O(kept)` time
/// by drawing geometric gaps.
fn geometric_sample(first: usize, end: usize, p: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut picked = Vec::new();
    if p <= 0.0 {
        return picked;
    }
    if p >= 1.0 {
        return (first..end).collect();
    }
    let log_q = (1.0 - p).ln();
    let mut j = first as f64 - 1.0;
    loop {
        let u: f64 = 1.0 - rng.random::<f64>(); // in (0, 1]
        j += 1.0 + (u.ln() / log_q).floor();
        if j >= end as f64 {
            return picked;
        }
        picked.push(j as usize);
    }
}
