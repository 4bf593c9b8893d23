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

/// Density (non-zeros over weights) below which a Linear layer runs from CSR: where the
/// sparse kernel's time fell below the dense one's for the 784→512 layer at batch 128
/// (0.049, interpolated; load average 0.15, 2 threads). At batch 1 the sparse kernel won at
/// every density up to 1.0, so this is the batched, conservative choice.
/// `cargo run --release --example sparse_speed -- --rounds 9` (see `docs/graphs.md`).
pub const LINEAR_BREAK_EVEN_DENSITY: f64 = 0.05;

/// Density below which a Conv2d layer runs from CSR: the break-even of the 32→64 3×3 conv on
/// 13×13 images at batch 128 (0.090, same run). At batch 1 the dense conv stayed faster down
/// to density 0.02, the lowest measured.
pub const CONV_BREAK_EVEN_DENSITY: f64 = 0.09;
