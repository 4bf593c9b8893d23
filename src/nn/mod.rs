//! Neural-network backend on nalgebra (`f32`): networks as graphs of ops with named
//! parameters ([`graph`]), their one training loop ([`graph::Trainer`]), data sets and the
//! shared kernels (dense layers, im2col convolution, GEMM).
//!
//! Prunable channels carry participation gates `s_c ∈ [0, 1]`, explicit gate nodes of the
//! graph; a backward pass gives the gradients of every parameter, gates included, for the
//! mean softmax cross-entropy. The MLP and the small CNN are chains named as in
//! `torch.nn.Sequential`; BatchNorm CNNs and ResNets use PyTorch's module paths.
//!
//! Layout conventions: activations are `[batch, …]` row-major (NCHW for images), weights are
//! `[out, in]` (conv: `[out, in·k·k]`) as in PyTorch; see [`graph`] for files.

mod conv;
pub mod data;
mod dense;
mod gemm;
pub mod graph;
mod input;
mod loss;
pub mod optim;
pub mod safetensors_io;
mod shape;
pub mod sparse;

pub use data::{DataSource, Dataset};
pub use graph::train::LrSchedule;
pub use input::InputSpec;
pub use loss::{Distill, LossStats};
pub use optim::OptimizerConfig;
pub use safetensors_io::ArchEntry;
pub use shape::Shape;
