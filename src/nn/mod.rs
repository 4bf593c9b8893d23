//! Neural-network backend: MLPs and small CNNs with participation gates, on nalgebra (`f32`).
//!
//! Every hidden unit `i` (a dense neuron or a conv output channel) has a gate `s_i ∈ [0, 1]`
//! and emits `a_i = s_i · relu(z_i)`. A backward pass gives `dL/dW`, `dL/db` and `dL/ds_i`
//! for the mean softmax cross-entropy `L`. The sequential [`Model`] is the source of the MLP
//! and small-CNN chains of [`graph`] (`Graph::from_model`, same weights and numerics); the
//! pruner and the one training loop it hooks into run on [`graph`]. Units are addressed as
//! [`UnitId`] `layer{L}.unit{U}` with `L` the `torch.nn.Sequential` index.
//!
//! Layout conventions: activations are `[batch, …]` row-major (NCHW for images), weights are
//! `[out, in]` (conv: `[out, in·k·k]`) as in PyTorch; see [`safetensors_io`] for files.

mod conv;
pub mod data;
mod dense;
mod gemm;
pub mod graph;
pub mod layers;
pub mod model;
pub mod optim;
pub mod safetensors_io;
pub mod surgery;
pub mod train;

pub use data::{DataSource, Dataset};
pub use layers::{Conv2d, Layer, Linear, MaxPool2d, Shape};
pub use model::{Gradients, InputSpec, LayerGrad, LossStats, Model, UnitId, Workspace};
pub use optim::{Optimizer, OptimizerConfig};
pub use safetensors_io::ArchEntry;
pub use surgery::ColumnMap;
pub use train::{
    evaluate, EpochRecord, History, LrSchedule, Observer, StepContext, StepRecord, TrainConfig,
    Trainer,
};
