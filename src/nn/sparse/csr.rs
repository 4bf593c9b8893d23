//! Compressed sparse row matrices: how a pruned Linear or Conv2d weight is stored.
//!
//! Row `r` is output unit (or filter) `r`; its non-zeros are `values[indptr[r]..indptr[r + 1]]`
//! at the columns `indices[..]` of the same range, strictly increasing. A conv column is the
//! tap `(in, ky, kx)`, `(in · k + ky) · k + kx`, as in the dense weight.
//!
//! Index widths: columns are `u32`, and every constructor refuses a matrix wider than
//! `u32::MAX`, so a column index always fits; against `usize` this halves the index bytes the
//! sparse kernels stream next to the values. Row offsets count entries of a `Vec`, so `usize`
//! cannot overflow in memory; files store them as `i64` (PyTorch's index type, and no file
//! can hold 2⁶³ entries).
//!
//! Which zeros are left out: [`Csr::from_dense`] keeps `−0.0` entries (a gate folded at 0
//! leaves them in a negative weight's place), so a file round-trips bit for bit;
//! [`Csr::from_dense_nonzero`] drops zeros of both signs, for the kernels, where a signed
//! zero adds nothing to a sum.

use std::fmt;

use nalgebra::DMatrix;

/// Why the parts of a CSR matrix do not fit together: the part and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrError {
    /// `indptr`, `indices`, `values` or `shape`.
    pub part: &'static str,
    /// What is wrong, with the row and entry where it applies.
    pub reason: String,
}

impl fmt::Display for CsrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.part, self.reason)
    }
}

impl std::error::Error for CsrError {}

impl From<CsrError> for crate::error::Error {
    fn from(e: CsrError) -> Self {
        crate::error::Error::invalid(e.part, e.reason)
    }
}

fn err(part: &'static str, reason: String) -> CsrError {
    CsrError { part, reason }
}

/// A `rows × cols` `f32` matrix in compressed sparse row form.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    rows: usize,
    cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl Csr {
    /// The entries other than `+0.0` of a column-major nalgebra matrix (a linear `[out, in]`
    /// or conv `[out, in·k·k]` weight), row by row: [`Csr::to_dense`] gives back its bits.
    pub fn from_dense(w: &DMatrix<f32>) -> Result<Csr, CsrError> {
        let (rows, cols) = w.shape();
        Csr::build(rows, cols, |r, c| w[(r, c)], |v| v.to_bits() != 0)
    }

    /// The non-zeros of a column-major matrix, `−0.0` dropped too (what a product needs).
    pub fn from_dense_nonzero(w: &DMatrix<f32>) -> Result<Csr, CsrError> {
        let (rows, cols) = w.shape();
        Csr::build(rows, cols, |r, c| w[(r, c)], |v| v != 0.0)
    }

    /// The entries other than `+0.0` of a row-major `rows × cols` buffer (PyTorch's bytes of
    /// a weight).
    pub fn from_row_major(rows: usize, cols: usize, data: &[f32]) -> Result<Csr, CsrError> {
        match rows.checked_mul(cols) {
            Some(n) if n == data.len() => {
                Csr::build(rows, cols, |r, c| data[r * cols + c], |v| v.to_bits() != 0)
            }
            _ => Err(err(
                "shape",
                format!("{rows} x {cols} does not match {} values", data.len()),
            )),
        }
    }

    fn build(
        rows: usize,
        cols: usize,
        at: impl Fn(usize, usize) -> f32,
        keep: impl Fn(f32) -> bool,
    ) -> Result<Csr, CsrError> {
        check_width(cols)?;
        let mut indptr = Vec::with_capacity(rows + 1);
        let (mut indices, mut values) = (Vec::new(), Vec::new());
        indptr.push(0);
        for r in 0..rows {
            for c in 0..cols {
                let v = at(r, c);
                if keep(v) {
                    indices.push(c as u32);
                    values.push(v);
                }
            }
            indptr.push(values.len());
        }
        Ok(Csr {
            rows,
            cols,
            indptr,
            indices,
            values,
        })
    }

    /// A matrix from its parts, checked: `indptr` has `rows + 1` non-decreasing offsets from
    /// 0 to the number of entries, `indices` and `values` have that many, each row's columns
    /// are strictly increasing and below `cols` (no duplicates), and every value is finite.
    pub fn from_parts(
        rows: usize,
        cols: usize,
        indptr: Vec<usize>,
        indices: Vec<u32>,
        values: Vec<f32>,
    ) -> Result<Csr, CsrError> {
        check_width(cols)?;
        if Some(indptr.len()) != rows.checked_add(1) {
            return Err(err(
                "indptr",
                format!(
                    "{} offsets, expected rows + 1 = {}",
                    indptr.len(),
                    rows as u128 + 1
                ),
            ));
        }
        if indices.len() != values.len() {
            return Err(err(
                "values",
                format!("{} values for {} indices", values.len(), indices.len()),
            ));
        }
        if indptr[0] != 0 || indptr[rows] != indices.len() {
            return Err(err(
                "indptr",
                format!(
                    "runs from {} to {}, expected 0 to the {} entries",
                    indptr[0],
                    indptr[rows],
                    indices.len()
                ),
            ));
        }
        // Monotone offsets from 0 to the entry count bound every row's range.
        if let Some(r) = indptr.windows(2).position(|p| p[1] < p[0]) {
            return Err(err(
                "indptr",
                format!(
                    "decreases at row {r} ({} then {})",
                    indptr[r],
                    indptr[r + 1]
                ),
            ));
        }
        for r in 0..rows {
            let (a, b) = (indptr[r], indptr[r + 1]);
            let row = &indices[a..b];
            if let Some(k) = row.iter().position(|&c| c as usize >= cols) {
                return Err(err(
                    "indices",
                    format!(
                        "entry {}: column {} is out of range for {cols} columns",
                        a + k,
                        row[k]
                    ),
                ));
            }
            if let Some(k) = row.windows(2).position(|p| p[1] <= p[0]) {
                return Err(err(
                    "indices",
                    format!(
                        "row {r}: columns {} then {} at entry {} (must strictly increase)",
                        row[k],
                        row[k + 1],
                        a + k + 1
                    ),
                ));
            }
        }
        if let Some(k) = values.iter().position(|v| !v.is_finite()) {
            return Err(err(
                "values",
                format!("entry {k} is not finite ({})", values[k]),
            ));
        }
        Ok(Csr {
            rows,
            cols,
            indptr,
            indices,
            values,
        })
    }

    /// Rows (output units or filters).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (inputs, or `in·k·k` taps).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row offsets, `rows + 1` of them.
    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }

    /// Column of every stored entry.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// Value of every stored entry.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Stored entries.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// Stored entries over `rows · cols` (0 for an empty matrix).
    pub fn density(&self) -> f64 {
        let n = self.rows as f64 * self.cols as f64;
        if n > 0.0 {
            self.nnz() as f64 / n
        } else {
            0.0
        }
    }

    /// Columns and values of row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[a..b], &self.values[a..b])
    }

    /// The dense column-major matrix.
    pub fn to_dense(&self) -> DMatrix<f32> {
        let mut m = DMatrix::zeros(self.rows, self.cols);
        for r in 0..self.rows {
            let (cols, vals) = self.row(r);
            for (&c, &v) in cols.iter().zip(vals) {
                m[(r, c as usize)] = v;
            }
        }
        m
    }

    /// Writes the dense row-major matrix into `out` (`rows · cols` values, zeroed here).
    pub fn write_row_major(&self, out: &mut [f32]) {
        out.fill(0.0);
        for r in 0..self.rows {
            let (cols, vals) = self.row(r);
            let dst = &mut out[r * self.cols..][..self.cols];
            for (&c, &v) in cols.iter().zip(vals) {
                dst[c as usize] = v;
            }
        }
    }
}

fn check_width(cols: usize) -> Result<(), CsrError> {
    if u32::try_from(cols).is_err() {
        return Err(err(
            "shape",
            format!(
                "{cols} columns: column indices are u32, at most {}",
                u32::MAX
            ),
        ));
    }
    Ok(())
}
