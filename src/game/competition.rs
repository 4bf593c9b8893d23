//! The competition matrix `C` (`C_ij ≥ 0`, zero diagonal), dense or sparse.
//!
//! Sparse games store `C` in compressed sparse rows with 32-bit column indices, so a game
//! with 10^6 players and 16 competitors each costs about 200 MB, and row-parallel products
//! use both cores through rayon.

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Fewest rows per rayon task in sparse products. Rows are independent, so the split changes
/// no bit of the result; rayon balances the tasks across the threads (a fixed 4096-row chunk
/// gave one thread two chunks and the other one at 10^4 rows).
const ROWS_PER_TASK: usize = 1024;

/// A square sparse matrix in compressed sparse row form, validated as a competition matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    size: usize,
    row_offsets: Vec<usize>,
    columns: Vec<u32>,
    values: Vec<f64>,
}

impl CsrMatrix {
    /// Builds the matrix from `(row, col, value)` entries, in any order.
    ///
    /// Rejects indices out of range, repeated positions, non-finite or negative values and
    /// diagonal entries other than zero (explicit zeros on the diagonal are dropped). Errors
    /// name the entry's position in `entries`.
    pub fn from_triplets(size: usize, entries: &[(usize, usize, f64)]) -> Result<Self> {
        if size > u32::MAX as usize {
            return Err(Error::invalid(
                "players",
                format!("{size} exceeds the sparse limit of 2^32 - 1"),
            ));
        }
        let mut counts = vec![0usize; size + 1];
        for (entry, &(row, col, value)) in entries.iter().enumerate() {
            if row >= size || col >= size {
                return Err(Error::IndexOutOfRange {
                    entry,
                    row,
                    col,
                    players: size,
                });
            }
            check_entry("competition.sparse", entry, value)?;
            if row == col {
                if value != 0.0 {
                    return Err(Error::NonZeroDiagonal { index: row, value });
                }
                continue;
            }
            counts[row + 1] += 1;
        }
        for r in 0..size {
            counts[r + 1] += counts[r];
        }
        let row_offsets = counts;
        let nnz = row_offsets[size];
        let mut next = row_offsets.clone();
        // (column, entry position) per slot, sorted within rows to find duplicates.
        let mut slots = vec![(0u32, 0usize); nnz];
        for (entry, &(row, col, _)) in entries.iter().enumerate() {
            if row != col {
                slots[next[row]] = (col as u32, entry);
                next[row] += 1;
            }
        }
        for row in 0..size {
            let range = row_offsets[row]..row_offsets[row + 1];
            let row_slots = &mut slots[range];
            row_slots.sort_unstable();
            for pair in row_slots.windows(2) {
                if pair[0].0 == pair[1].0 {
                    return Err(Error::DuplicateEntry {
                        entry: pair[0].1.max(pair[1].1),
                        row,
                        col: pair[0].0 as usize,
                    });
                }
            }
        }
        let columns = slots.iter().map(|&(c, _)| c).collect();
        let values = slots.iter().map(|&(_, e)| entries[e].2).collect();
        Ok(CsrMatrix {
            size,
            row_offsets,
            columns,
            values,
        })
    }

    /// Builds the matrix from compressed sparse rows: row `i` holds columns
    /// `columns[row_offsets[i]..row_offsets[i + 1]]` with the same range of `values`.
    ///
    /// Validated as strictly as [`CsrMatrix::from_triplets`]: offsets start at 0, never
    /// decrease and end at the number of entries; columns in range, each at most once per row
    /// (rows in any order are sorted); values finite and non-negative; a diagonal entry must
    /// be 0 and is dropped. Errors name the arrays `indptr`, `indices` and `values`.
    pub fn from_csr(
        size: usize,
        row_offsets: Vec<usize>,
        mut columns: Vec<u32>,
        mut values: Vec<f64>,
    ) -> Result<Self> {
        if size > u32::MAX as usize {
            return Err(Error::invalid(
                "players",
                format!("{size} exceeds the sparse limit of 2^32 - 1"),
            ));
        }
        if row_offsets.len() != size + 1 {
            return Err(Error::LengthMismatch {
                field: "indptr (players + 1)".into(),
                expected: size + 1,
                got: row_offsets.len(),
            });
        }
        if values.len() != columns.len() {
            return Err(Error::LengthMismatch {
                field: "values (one per entry of indices)".into(),
                expected: columns.len(),
                got: values.len(),
            });
        }
        if row_offsets[0] != 0 || row_offsets[size] != columns.len() {
            return Err(Error::invalid(
                "indptr",
                format!(
                    "must run from 0 to the {} entries of indices, runs from {} to {}",
                    columns.len(),
                    row_offsets[0],
                    row_offsets[size]
                ),
            ));
        }
        if let Some(i) = row_offsets.windows(2).position(|w| w[1] < w[0]) {
            return Err(Error::invalid(
                format!("indptr[{}]", i + 1),
                format!(
                    "{} is below indptr[{i}] = {}",
                    row_offsets[i + 1],
                    row_offsets[i]
                ),
            ));
        }
        // Values first (a cheap pass in file order), then each row's columns. A branch-free
        // fold the compiler vectorises runs at memory speed; a parallel search pays a shared
        // atomic per element and loses to it on a busy pool. The position is only looked for
        // once something is wrong.
        let valid = values
            .iter()
            .fold(true, |ok, v| ok & (v.is_finite() & (*v >= 0.0)));
        if !valid {
            if let Some(k) = values.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
                check_entry("values", k, values[k])?;
            }
        }
        let bad_row = (0..size).find(|&i| {
            let range = row_offsets[i]..row_offsets[i + 1];
            let cols = &columns[range.clone()];
            cols.iter().any(|&c| c as usize >= size || c as usize == i)
                || cols.windows(2).any(|w| w[1] <= w[0])
        });
        let mut diagonal_zeros = false;
        if let Some(first) = bad_row {
            // Rare path: sort unsorted rows and report the first real fault.
            for i in first..size {
                let range = row_offsets[i]..row_offsets[i + 1];
                let cols = &columns[range.clone()];
                if let Some(k) = cols.iter().position(|&c| c as usize >= size) {
                    return Err(Error::invalid(
                        format!("indices[{}]", range.start + k),
                        format!("column {} is out of range for {size} players", cols[k]),
                    ));
                }
                if let Some(k) = cols.iter().position(|&c| c as usize == i) {
                    let value = values[range.start + k];
                    if value != 0.0 {
                        return Err(Error::NonZeroDiagonal { index: i, value });
                    }
                    diagonal_zeros = true;
                }
                if cols.windows(2).any(|w| w[1] <= w[0]) {
                    let mut pairs: Vec<(u32, f64)> = cols
                        .iter()
                        .copied()
                        .zip(values[range.clone()].iter().copied())
                        .collect();
                    pairs.sort_unstable_by_key(|p| p.0);
                    if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
                        return Err(Error::invalid(
                            format!("indices (row {i})"),
                            format!("column {} appears more than once", w[0].0),
                        ));
                    }
                    for (k, (c, v)) in pairs.into_iter().enumerate() {
                        columns[range.start + k] = c;
                        values[range.start + k] = v;
                    }
                }
            }
        }
        let mut matrix = CsrMatrix {
            size,
            row_offsets,
            columns,
            values,
        };
        if diagonal_zeros {
            matrix = matrix.without_diagonal();
        }
        Ok(matrix)
    }

    /// The same matrix without its (zero) diagonal entries.
    fn without_diagonal(&self) -> CsrMatrix {
        let mut row_offsets = Vec::with_capacity(self.size + 1);
        let mut columns = Vec::with_capacity(self.nnz());
        let mut values = Vec::with_capacity(self.nnz());
        row_offsets.push(0);
        for i in 0..self.size {
            for (j, v) in self.row(i).filter(|&(j, _)| j != i) {
                columns.push(j as u32);
                values.push(v);
            }
            row_offsets.push(columns.len());
        }
        CsrMatrix {
            size: self.size,
            row_offsets,
            columns,
            values,
        }
    }

    /// Row offsets (`size + 1` entries, from 0 to [`CsrMatrix::nnz`]).
    pub fn row_offsets(&self) -> &[usize] {
        &self.row_offsets
    }

    /// Column of every stored entry, row by row, increasing within a row.
    pub fn columns(&self) -> &[u32] {
        &self.columns
    }

    /// Value of every stored entry, in the order of [`CsrMatrix::columns`].
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Number of rows (= columns = players).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// The stored entries of row `i` as `(column, value)`, in increasing column order.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let range = self.row_offsets[i]..self.row_offsets[i + 1];
        self.columns[range.clone()]
            .iter()
            .map(|&c| c as usize)
            .zip(self.values[range].iter().copied())
    }

    /// `Σ_j C_ij x_j`.
    pub fn row_dot(&self, i: usize, x: &[f64]) -> f64 {
        let range = self.row_offsets[i]..self.row_offsets[i + 1];
        self.columns[range.clone()]
            .iter()
            .zip(&self.values[range])
            .map(|(&c, &v)| v * x[c as usize])
            .sum()
    }

    /// `out = C x`, rows in parallel.
    pub fn mul_vec(&self, x: &[f64], out: &mut [f64]) {
        out.par_iter_mut()
            .enumerate()
            .with_min_len(ROWS_PER_TASK)
            .for_each(|(i, o)| *o = self.row_dot(i, x));
    }

    /// Every stored entry as `(row, col, value)`, row by row.
    pub fn triplets(&self) -> impl Iterator<Item = (usize, usize, f64)> + '_ {
        (0..self.size).flat_map(move |i| self.row(i).map(move |(j, v)| (i, j, v)))
    }

    /// The transpose, in the same form.
    pub fn transpose(&self) -> CsrMatrix {
        let mut counts = vec![0usize; self.size + 1];
        for &c in &self.columns {
            counts[c as usize + 1] += 1;
        }
        for r in 0..self.size {
            counts[r + 1] += counts[r];
        }
        let mut next = counts.clone();
        let mut columns = vec![0u32; self.nnz()];
        let mut values = vec![0.0; self.nnz()];
        for (i, j, v) in self.triplets() {
            columns[next[j]] = i as u32;
            values[next[j]] = v;
            next[j] += 1;
        }
        CsrMatrix {
            size: self.size,
            row_offsets: counts,
            columns,
            values,
        }
    }

    /// Whether `C = Cᵀ` exactly (same pattern and values).
    ///
    /// Each entry above the diagonal `(i, j)` is looked up in row `j` by binary search (rows
    /// are sorted), in parallel and without building the transpose: at 10^6 players that saves
    /// a copy of `C`. Found mirrors are distinct entries below the diagonal, so equal counts
    /// above and below leave none without a partner.
    pub fn is_symmetric(&self) -> bool {
        let counts: Option<(usize, usize)> = (0..self.size)
            .into_par_iter()
            .with_min_len(ROWS_PER_TASK)
            .map(|i| {
                let range = self.row_offsets[i]..self.row_offsets[i + 1];
                let columns = &self.columns[range.clone()];
                let below = columns.partition_point(|&j| (j as usize) < i);
                let first_above = columns.partition_point(|&j| j as usize <= i);
                let mirrored = columns[first_above..]
                    .iter()
                    .zip(&self.values[range][first_above..])
                    .all(|(&j, &v)| {
                        let j = j as usize;
                        let other = self.row_offsets[j]..self.row_offsets[j + 1];
                        match self.columns[other.clone()].binary_search(&(i as u32)) {
                            Ok(k) => self.values[other][k].to_bits() == v.to_bits(),
                            Err(_) => false,
                        }
                    });
                mirrored.then_some((columns.len() - first_above, below))
            })
            .try_reduce(|| (0, 0), |a, b| Some((a.0 + b.0, a.1 + b.1)));
        counts.is_some_and(|(above, below)| above == below)
    }

    /// `Σ_j C_ij` for every row.
    pub fn row_sums(&self) -> Vec<f64> {
        (0..self.size)
            .map(|i| self.row(i).map(|(_, v)| v).sum())
            .collect()
    }
}

/// Side of the square tiles in which dense matrices are transposed or compared with their
/// transpose: a tile and its mirror (2 × 32 KiB of f64) stay in cache while both are walked.
const TILE: usize = 64;

/// Whether the square column-major matrix `m` equals its transpose, compared tile by tile
/// without building the transpose (at N = 4000 that copy alone is 128 MB and most of the check).
pub(crate) fn dense_is_symmetric(m: &DMatrix<f64>) -> bool {
    let n = m.nrows();
    let data = m.as_slice();
    let same = |a: f64, b: f64| a.partial_cmp(&b) == Some(std::cmp::Ordering::Equal);
    (0..n.div_ceil(TILE)).into_par_iter().all(|tile_col| {
        let columns = tile_col * TILE..((tile_col + 1) * TILE).min(n);
        (0..=tile_col).all(|tile_row| {
            let rows = tile_row * TILE..((tile_row + 1) * TILE).min(n);
            columns.clone().all(|j| {
                rows.clone()
                    .take_while(|&i| i < j)
                    .all(|i| same(data[i + j * n], data[j + i * n]))
            })
        })
    })
}

/// Transposes a square `n × n` array in place, tile by tile (row-major file data becomes
/// nalgebra's column-major storage without a second copy of the matrix).
pub(crate) fn transpose_square_in_place(data: &mut [f64], n: usize) {
    debug_assert_eq!(data.len(), n * n);
    for tile_col in 0..n.div_ceil(TILE) {
        let columns = tile_col * TILE..((tile_col + 1) * TILE).min(n);
        for tile_row in 0..=tile_col {
            let rows = tile_row * TILE..((tile_row + 1) * TILE).min(n);
            for j in columns.clone() {
                for i in rows.clone().take_while(|&i| i < j) {
                    data.swap(i + j * n, j + i * n);
                }
            }
        }
    }
}

/// Smallest dense matrix (entries) whose product is split across threads.
const PARALLEL_DENSE_ENTRIES: usize = 1 << 18;

/// `out = m x` for a column-major matrix, column by column (`out += x_j m_j`), skipping the
/// columns with `x_j = 0`: the solvers' vectors are zero on every pruned player (Newton's free
/// block, the lower bounds of the T4 bracket), and a dense product is a pass over memory
/// that then reads only the columns that count.
fn dense_mul_vec(m: &DMatrix<f64>, x: &[f64], out: &mut [f64]) {
    column_major_mul_vec(m.as_slice(), m.nrows(), x, out);
}

/// `out = m x` for the column-major `rows × x.len()` array `entries` of `f64` or `f32`
/// values, summed in `f64` (see [`dense_mul_vec`]). Each thread accumulates a fixed block of
/// columns into its own partial vector and the partials are added in order, so the result
/// depends on the thread count only, not on the scheduler.
pub(crate) fn column_major_mul_vec<T: Copy + Into<f64> + Sync>(
    entries: &[T],
    rows: usize,
    x: &[f64],
    out: &mut [f64],
) {
    let cols = x.len();
    let accumulate = |columns: std::ops::Range<usize>, y: &mut [f64]| {
        y.fill(0.0);
        for j in columns {
            let xj = x[j];
            if xj == 0.0 {
                continue;
            }
            let column = &entries[j * rows..(j + 1) * rows];
            for (yi, &c) in y.iter_mut().zip(column) {
                *yi += xj * c.into();
            }
        }
    };
    let threads = rayon::current_num_threads();
    if rows * cols < PARALLEL_DENSE_ENTRIES || threads < 2 {
        accumulate(0..cols, out);
        return;
    }
    let width = cols.div_ceil(threads);
    let parts: Vec<_> = (0..threads)
        .map(|t| (t * width).min(cols)..((t + 1) * width).min(cols))
        .collect();
    sum_over_parts(&parts, accumulate, out);
}

/// `out = Σ_t y_t`, where `accumulate(parts[t], y_t)` fills the `t`-th vector (one task per
/// part, each writing its own vector): the parallel form of a product whose parts would
/// otherwise write the same entries.
pub(crate) fn sum_over_parts(
    parts: &[std::ops::Range<usize>],
    accumulate: impl Fn(std::ops::Range<usize>, &mut [f64]) + Sync,
    out: &mut [f64],
) {
    let partials: Vec<Vec<f64>> = parts
        .par_iter()
        .map(|part| {
            let mut y = vec![0.0; out.len()];
            accumulate(part.clone(), &mut y);
            y
        })
        .collect();
    out.par_iter_mut().enumerate().for_each(|(i, o)| {
        *o = partials.iter().map(|p| p[i]).sum();
    });
}

fn check_entry(field: &str, index: usize, value: f64) -> Result<()> {
    if !value.is_finite() {
        return Err(Error::NonFinite {
            field: field.into(),
            index,
            value,
        });
    }
    if value < 0.0 {
        return Err(Error::Negative {
            field: field.into(),
            index,
            value,
        });
    }
    Ok(())
}

/// The competition matrix of a pruning game.
#[derive(Debug, Clone, PartialEq)]
pub enum Competition {
    /// No competition (`C = 0`).
    None,
    /// A dense `N × N` matrix.
    Dense(DMatrix<f64>),
    /// A sparse matrix in CSR form.
    Sparse(CsrMatrix),
}

impl Competition {
    /// A validated dense competition matrix: square, finite, non-negative, zero diagonal.
    /// Errors name the entry as `competition[i][j]` (its row-major position as the index).
    pub fn dense(matrix: DMatrix<f64>) -> Result<Self> {
        let n = matrix.nrows();
        if matrix.ncols() != n {
            return Err(Error::LengthMismatch {
                field: "competition.dense (columns)".into(),
                expected: n,
                got: matrix.ncols(),
            });
        }
        // One pass in storage order decides; only a bad matrix is walked again in row-major
        // order, so that the error names the first bad entry as it is written.
        let good = matrix
            .as_slice()
            .par_chunks(1 << 16)
            .all(|chunk| chunk.iter().all(|v| v.is_finite() && *v >= 0.0))
            && (0..n).all(|i| matrix[(i, i)] == 0.0);
        if !good {
            for i in 0..n {
                for j in 0..n {
                    let value = matrix[(i, j)];
                    // The field name is built only for a bad entry.
                    if !(value.is_finite() && value >= 0.0) {
                        check_entry(&format!("competition.dense[{i}]"), j, value)?;
                    }
                    if i == j && value != 0.0 {
                        return Err(Error::NonZeroDiagonal { index: i, value });
                    }
                }
            }
        }
        Ok(Competition::Dense(matrix))
    }

    /// A validated sparse competition matrix from `(row, col, value)` entries.
    pub fn sparse(size: usize, entries: &[(usize, usize, f64)]) -> Result<Self> {
        CsrMatrix::from_triplets(size, entries).map(Competition::Sparse)
    }

    /// The number of players this matrix is for, if it fixes one.
    pub fn size(&self) -> Option<usize> {
        match self {
            Competition::None => None,
            Competition::Dense(m) => Some(m.nrows()),
            Competition::Sparse(m) => Some(m.size()),
        }
    }

    /// Number of non-zero off-diagonal entries (stored entries for sparse).
    pub fn nnz(&self) -> usize {
        match self {
            Competition::None => 0,
            Competition::Dense(m) => m.iter().filter(|v| **v != 0.0).count(),
            Competition::Sparse(m) => m.nnz(),
        }
    }

    /// `Σ_{j≠i} C_ij x_j`.
    pub fn row_dot(&self, i: usize, x: &[f64]) -> f64 {
        match self {
            Competition::None => 0.0,
            Competition::Dense(m) => m.row(i).iter().zip(x).map(|(c, s)| c * s).sum(),
            Competition::Sparse(m) => m.row_dot(i, x),
        }
    }

    /// `out = C x`.
    pub fn mul_vec(&self, x: &[f64], out: &mut [f64]) {
        match self {
            Competition::None => out.fill(0.0),
            Competition::Dense(m) => dense_mul_vec(m, x, out),
            Competition::Sparse(m) => m.mul_vec(x, out),
        }
    }

    /// Whether `C` is symmetric (the game then has an exact potential, T5).
    pub fn is_symmetric(&self) -> bool {
        match self {
            Competition::None => true,
            Competition::Dense(m) => dense_is_symmetric(m),
            Competition::Sparse(m) => m.is_symmetric(),
        }
    }

    /// Every non-zero entry as `(row, col, value)`, row by row.
    pub fn triplets(&self) -> Box<dyn Iterator<Item = (usize, usize, f64)> + '_> {
        match self {
            Competition::None => Box::new(std::iter::empty()),
            Competition::Dense(m) => Box::new(
                (0..m.nrows())
                    .flat_map(move |i| (0..m.ncols()).map(move |j| (i, j, m[(i, j)])))
                    .filter(|t| t.2 != 0.0),
            ),
            Competition::Sparse(m) => Box::new(m.triplets()),
        }
    }

    /// `C` as a dense matrix with `n` rows (for spectral analysis of small games).
    pub fn to_dense(&self, n: usize) -> DMatrix<f64> {
        match self {
            Competition::Dense(m) => m.clone(),
            _ => {
                let mut dense = DMatrix::zeros(n, n);
                for (i, j, v) in self.triplets() {
                    dense[(i, j)] = v;
                }
                dense
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A random non-negative `n × n` matrix with zero diagonal and about a quarter zeros.
    fn random_matrix(n: usize, seed: u64) -> DMatrix<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        DMatrix::from_fn(n, n, |i, j| {
            if i == j || rng.random::<f64>() < 0.25 {
                0.0
            } else {
                rng.random::<f64>()
            }
        })
    }

    #[test]
    fn dense_product_skipping_zero_columns_equals_the_full_product() {
        // 40 entries take the one-thread path, 600 × 600 the per-thread partials.
        for (n, seed) in [(40, 1), (600, 2)] {
            let m = random_matrix(n, seed);
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 10);
            // Half the entries exactly zero, the rest of both signs, as in a Newton step.
            let x: Vec<f64> = (0..n)
                .map(|_| {
                    if rng.random::<bool>() {
                        0.0
                    } else {
                        rng.random::<f64>() - 0.5
                    }
                })
                .collect();
            let mut ours = vec![f64::NAN; n];
            dense_mul_vec(&m, &x, &mut ours);
            let reference = &m * nalgebra::DVector::from_column_slice(&x);
            for i in 0..n {
                let scale = m
                    .row(i)
                    .iter()
                    .zip(&x)
                    .map(|(c, v)| (c * v).abs())
                    .sum::<f64>();
                // Same terms, summed per column block: equal up to the rounding of the block
                // sums, a few ulps of the sum of magnitudes.
                assert!(
                    (ours[i] - reference[i]).abs() <= 8.0 * f64::EPSILON * scale,
                    "row {i} of {n}: {} vs {}",
                    ours[i],
                    reference[i]
                );
            }
            let zeros = vec![0.0; n];
            dense_mul_vec(&m, &zeros, &mut ours);
            assert!(ours.iter().all(|v| v.abs().to_bits() == 0));
        }
    }

    #[test]
    fn symmetry_is_decided_across_tile_boundaries() {
        for n in [1, 2, TILE - 1, TILE, TILE + 1, 2 * TILE + 3] {
            let m = random_matrix(n, n as u64);
            let symmetric = &m + m.transpose();
            assert!(dense_is_symmetric(&symmetric), "n = {n}");
            assert_eq!(dense_is_symmetric(&m), m == m.transpose(), "n = {n}");
            // One changed entry anywhere off the diagonal breaks it, in either triangle.
            for (i, j) in [(0, n - 1), (n - 1, 0), (n / 2, n / 3), (TILE.min(n - 1), 0)] {
                if i == j {
                    continue;
                }
                let mut broken = symmetric.clone();
                broken[(i, j)] += 1.0;
                assert!(!dense_is_symmetric(&broken), "n = {n}, entry ({i}, {j})");
            }
        }
    }

    #[test]
    fn sparse_symmetry_needs_every_entry_mirrored_in_both_triangles() {
        let ring = |n: usize| -> Vec<(usize, usize, f64)> {
            (0..n)
                .flat_map(|i| {
                    let j = (i + 1) % n;
                    let w = 0.1 + i as f64 * 0.01;
                    [(i, j, w), (j, i, w)]
                })
                .collect()
        };
        let n = 9;
        let symmetric = ring(n);
        assert!(CsrMatrix::from_triplets(n, &symmetric)
            .unwrap()
            .is_symmetric());
        // An entry without its mirror, below or above the diagonal, or a mirror with another
        // value breaks it.
        for extra in [(5, 2, 0.3), (2, 5, 0.3)] {
            let mut broken = symmetric.clone();
            broken.push(extra);
            assert!(!CsrMatrix::from_triplets(n, &broken).unwrap().is_symmetric());
        }
        let mut changed = symmetric.clone();
        changed[3].2 += 1e-12;
        assert!(!CsrMatrix::from_triplets(n, &changed)
            .unwrap()
            .is_symmetric());
    }

    #[test]
    fn in_place_transpose_equals_the_transpose() {
        for n in [1, 3, TILE - 1, TILE, TILE + 1, 2 * TILE + 3] {
            let m = random_matrix(n, 7 + n as u64);
            let mut data = m.as_slice().to_vec();
            transpose_square_in_place(&mut data, n);
            assert_eq!(DMatrix::from_vec(n, n, data), m.transpose(), "n = {n}");
        }
    }

    #[test]
    fn a_bad_dense_matrix_names_its_first_bad_entry_in_row_major_order() {
        let mut m = random_matrix(5, 3);
        m[(3, 1)] = -1.0;
        m[(1, 4)] = f64::NAN;
        let message = Competition::dense(m.clone()).unwrap_err().to_string();
        assert!(message.contains("competition.dense[1]"), "{message}");
        m[(1, 4)] = 0.5;
        m[(2, 2)] = 0.5;
        assert!(matches!(
            Competition::dense(m).unwrap_err(),
            Error::NonZeroDiagonal { index: 2, .. }
        ));
        assert!(Competition::dense(random_matrix(5, 3)).is_ok());
    }
}
