//! Unstructured sparsity: CSR storage of pruned Linear and Conv2d weights, a CSR model file
//! that PyTorch reads too, and an evaluation-mode forward path that runs sparse layers from
//! CSR.
//!
//! Weight-level pruning leaves most entries of a weight exactly zero. [`Csr`] keeps the
//! others row by row (a row is an output unit or a filter); [`export_csr`] and [`load_csr`]
//! write and read the inference model with its weights in that form; [`SparseModel`] runs a
//! graph with each layer on the sparse path when its density is below the break-even density
//! of its kind, measured on this toolkit's kernels.

mod csr;
mod file;
mod kernels;
mod model;

pub use csr::{Csr, CsrError};
pub use file::{export_csr, from_csr_bytes, load_csr};
pub use model::{LayerChoice, SparseModel};

/// Density (non-zeros over weights) below which a Linear layer runs from CSR.
pub const LINEAR_BREAK_EVEN_DENSITY: f64 = 0.3;

/// Density below which a Conv2d layer runs from CSR.
pub const CONV_BREAK_EVEN_DENSITY: f64 = 0.3;
