//! The ops a graph node can run, one file each, registered in the [`ops!`] list below.
//!
//! Each op is a plain struct holding its hyper-parameters and the [`ParamId`]s of its
//! tensors, and implements [`Kernel`]: shape inference, the buffers it needs, forward and
//! backward over a batch, and how it moves channels ([`Flow`], read by the channel groups).
//! Adding an op is one file here plus one line in the list.

use std::ops::RangeInclusive;

use nalgebra::DMatrix;

use super::{Mode, Param, ParamId};
use crate::error::Result;
use crate::nn::Shape;

/// How an op relates its output channels to its inputs' (what the channel groups follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// The network input: channels nobody may remove.
    Source,
    /// Reads input channels through weight columns and produces new channels (weight rows).
    Produce,
    /// Channel `c` of the output depends on channel `c` of the input only.
    PerChannel,
    /// Adds its inputs channel by channel: their channels are one set.
    Merge,
    /// An image becomes a vector: channel `c` becomes `h·w` consecutive features.
    Flatten,
}

/// What an op does to a channel that is exactly zero at its input (the channel groups use it
/// to decide where a gate at 0 makes a channel vanish).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zero {
    /// The output channel is zero whatever the input (a gate at 0 makes it so).
    Makes,
    /// A zero input channel gives a zero output channel (ReLU, pooling, flatten).
    Keeps,
    /// A zero input channel may give a non-zero output (BatchNorm adds β).
    Breaks,
}

/// How a gate that follows an op can be folded into it: `s · f(x)` for per-channel `s ≥ 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fold {
    /// Rows of these parameters scale by `s`, so `s · f(x) = f'(x)` (producers, BatchNorm).
    Into(Vec<ParamId>),
    /// Positively homogeneous per channel: `s · f(x) = f(s · x)`; keep looking upstream.
    Through,
    /// Neither: the gate cannot move past this op.
    Blocked,
}

/// Scratch memory of one node, sized by [`Kernel::buffers`] for the workspace's capacity.
#[derive(Debug, Clone, Default)]
pub(crate) struct Buffers {
    /// Floats kept from forward to backward (im2col columns, batch statistics, …).
    pub saved: Vec<f32>,
    /// Integer indices kept from forward to backward (max-pool winners).
    pub index: Vec<u32>,
    /// Backward scratch (per-chunk or per-sample partial sums).
    pub partial: Vec<f32>,
}

/// Sizes of a node's [`Buffers`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BufferSizes {
    pub saved: usize,
    pub index: usize,
    pub partial: usize,
}

/// What a forward pass hands an op.
pub(crate) struct Fwd<'a> {
    pub batch: usize,
    pub x: &'a [&'a [f32]],
    pub in_shapes: &'a [Shape],
    pub y: &'a mut [f32],
    pub params: &'a [Param],
    pub buf: &'a mut Buffers,
    pub mode: Mode,
}

/// What a backward pass hands an op: `dx[k]` is `None` when input `k` needs no gradient,
/// else the buffer and whether to add to it (another consumer wrote it already).
pub(crate) struct Bwd<'a> {
    pub batch: usize,
    pub x: &'a [&'a [f32]],
    pub in_shapes: &'a [Shape],
    pub dy: &'a [f32],
    pub params: &'a [Param],
    pub grads: &'a mut [DMatrix<f32>],
    pub dx: Vec<Option<(&'a mut [f32], bool)>>,
    pub buf: &'a mut Buffers,
    pub mode: Mode,
}

/// Writes `v` into `d`, or adds it when `accumulate`.
#[inline]
pub(crate) fn put(d: &mut f32, v: f32, accumulate: bool) {
    if accumulate {
        *d += v
    } else {
        *d = v
    }
}

/// Channels and values per channel of one sample's activation.
pub(crate) fn channels(s: Shape) -> (usize, usize) {
    match s {
        Shape::Flat(n) => (n, 1),
        Shape::Image { c, h, w } => (c, h * w),
    }
}

/// The behaviour every op implements.
pub(crate) trait Kernel {
    /// Lower-case op name, as in the `architecture` metadata.
    fn kind(&self) -> &'static str;
    /// How many inputs the op takes.
    fn arity(&self) -> RangeInclusive<usize> {
        1..=1
    }
    /// Parameters the op reads, in `state_dict` order.
    fn param_ids(&self) -> Vec<ParamId> {
        Vec::new()
    }
    /// Output shape for these input shapes, or why they do not fit.
    fn output_shape(&self, inputs: &[Shape], params: &[Param]) -> Result<Shape>;
    /// Scratch needed for batches of `batch` samples.
    fn buffers(&self, _inputs: &[Shape], _out: Shape, _batch: usize) -> BufferSizes {
        BufferSizes::default()
    }
    /// Computes `y` from `x`.
    fn forward(&self, f: Fwd<'_>);
    /// Computes the parameter gradients and `dx` from `dy`.
    fn backward(&self, b: Bwd<'_>);
    /// How channels pass through.
    fn flow(&self) -> Flow;
    /// What a zero input channel becomes.
    fn zero(&self) -> Zero {
        Zero::Breaks
    }
    /// How a gate after this op folds into it.
    fn fold(&self) -> Fold {
        Fold::Blocked
    }
    /// Updates state after a training-mode pass from what `forward` left in `buf` (BatchNorm's
    /// running statistics); most ops keep none.
    fn after_training_pass(
        &mut self,
        _params: &mut [Param],
        _input: Shape,
        _batch: usize,
        _buf: &Buffers,
    ) {
    }
}

macro_rules! ops {
    ($($variant:ident($ty:ident) in $file:ident),* $(,)?) => {
        $(mod $file; pub use $file::$ty;)*

        /// A node's operation.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Op {
            /// The network input (node 0 only).
            Input,
            $(
                #[doc = concat!("See [`", stringify!($ty), "`].")]
                $variant($ty),
            )*
        }

        impl Op {
            pub(crate) fn kernel(&self) -> &dyn Kernel {
                match self {
                    Op::Input => &InputOp,
                    $(Op::$variant(k) => k,)*
                }
            }

            /// The op's kernel for updating its state (`None` for the input, which has none).
            pub(crate) fn kernel_mut(&mut self) -> Option<&mut dyn Kernel> {
                match self {
                    Op::Input => None,
                    $(Op::$variant(k) => Some(k),)*
                }
            }
        }
    };
}

ops! {
    Linear(Dense) in dense,
    Conv2d(Conv) in conv,
    BatchNorm(BatchNorm) in batch_norm,
    Relu(Relu) in relu,
    MaxPool2d(MaxPool) in max_pool,
    AvgPool2d(AvgPool) in avg_pool,
    GlobalAvgPool(GlobalAvgPool) in global_avg_pool,
    Flatten(Flatten) in flatten,
    Add(Add) in add,
    Gate(Gate) in gate,
}

pub use max_pool::Pool;

impl Op {
    /// Lower-case op name.
    pub fn kind(&self) -> &'static str {
        self.kernel().kind()
    }

    pub(crate) fn arity(&self) -> RangeInclusive<usize> {
        self.kernel().arity()
    }

    /// Parameters the op reads.
    pub fn param_ids(&self) -> Vec<ParamId> {
        self.kernel().param_ids()
    }

    pub(crate) fn output_shape(&self, inputs: &[Shape], params: &[Param]) -> Result<Shape> {
        self.kernel().output_shape(inputs, params)
    }
}

/// The input node: its values are copied in by the executor.
struct InputOp;

impl Kernel for InputOp {
    fn kind(&self) -> &'static str {
        "input"
    }
    fn arity(&self) -> RangeInclusive<usize> {
        0..=0
    }
    fn output_shape(&self, _: &[Shape], _: &[Param]) -> Result<Shape> {
        Err(crate::error::Error::invalid("input", "has no inputs"))
    }
    fn forward(&self, _: Fwd<'_>) {}
    fn backward(&self, _: Bwd<'_>) {}
    fn flow(&self) -> Flow {
        Flow::Source
    }
}
