//! Layer types: plain structs in one enum, so every parameter is visible to the pruner.
//!
//! A hidden unit is a row of a [`Linear`] weight or a filter of a [`Conv2d`]. Units that feed
//! a ReLU carry a participation gate `s_i`; the activation leaving the ReLU is
//! `a_i = s_i * relu(z_i)`. The gate is stored on the layer that owns the unit (and saved as
//! `{index}.gate` under that layer's index), but it acts on the ReLU output.

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_distr::{Distribution, Uniform};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Shape of one sample's activation (the batch dimension is implicit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// A feature vector.
    Flat(usize),
    /// A channel-major image, `[c, h, w]` as in PyTorch's NCHW.
    Image {
        /// Channels.
        c: usize,
        /// Height.
        h: usize,
        /// Width.
        w: usize,
    },
}

impl Shape {
    /// Number of values per sample.
    pub fn numel(&self) -> usize {
        match *self {
            Shape::Flat(n) => n,
            Shape::Image { c, h, w } => c * h * w,
        }
    }

    /// The shape as a list of dimensions (`[n]` or `[c, h, w]`).
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            Shape::Flat(n) => vec![n],
            Shape::Image { c, h, w } => vec![c, h, w],
        }
    }

    /// Builds a shape from `[n]` or `[c, h, w]`.
    pub fn from_dims(dims: &[usize]) -> Result<Shape> {
        match *dims {
            [n] if n > 0 => Ok(Shape::Flat(n)),
            [c, h, w] if c > 0 && h > 0 && w > 0 => Ok(Shape::Image { c, h, w }),
            _ => Err(Error::invalid(
                "input shape",
                format!("{dims:?}: expected [n] or [c, h, w], all > 0"),
            )),
        }
    }
}

/// Draws `He`-uniform weights `U(-sqrt(6/fan_in), sqrt(6/fan_in))`, suited to ReLU networks.
pub(crate) fn he_uniform(
    rows: usize,
    cols: usize,
    fan_in: usize,
    rng: &mut impl Rng,
) -> DMatrix<f32> {
    let bound = (6.0 / fan_in.max(1) as f32).sqrt();
    // A non-degenerate range cannot fail; fall back to zeros rather than panic.
    match Uniform::new(-bound, bound) {
        Ok(dist) => DMatrix::from_fn(rows, cols, |_, _| dist.sample(rng)),
        Err(_) => DMatrix::zeros(rows, cols),
    }
}

/// A fully connected layer `z = W x + b`, `W` of shape `[out, in]` (PyTorch's layout).
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    pub(crate) weight: DMatrix<f32>,
    pub(crate) bias: DVector<f32>,
    pub(crate) gate: Option<DVector<f32>>,
}

impl Linear {
    /// A layer from explicit parameters; `gate` (one entry per output unit) is optional.
    pub fn new(
        weight: DMatrix<f32>,
        bias: DVector<f32>,
        gate: Option<DVector<f32>>,
    ) -> Result<Self> {
        check_len("linear.bias", weight.nrows(), bias.len())?;
        if let Some(g) = &gate {
            check_len("linear.gate", weight.nrows(), g.len())?;
        }
        if weight.nrows() == 0 || weight.ncols() == 0 {
            return Err(Error::invalid(
                "linear",
                "a layer needs at least one input and one output",
            ));
        }
        Ok(Linear { weight, bias, gate })
    }

    /// A randomly initialised layer (He-uniform weights, zero bias), gated if `gated`.
    pub fn init(inputs: usize, outputs: usize, gated: bool, rng: &mut impl Rng) -> Self {
        Linear {
            weight: he_uniform(outputs, inputs, inputs, rng),
            bias: DVector::zeros(outputs),
            gate: gated.then(|| DVector::from_element(outputs, 1.0)),
        }
    }

    /// Number of inputs.
    pub fn in_features(&self) -> usize {
        self.weight.ncols()
    }

    /// Number of output units.
    pub fn out_features(&self) -> usize {
        self.weight.nrows()
    }

    /// The weight matrix `[out, in]`; row `i` holds unit `i`'s incoming weights.
    pub fn weight(&self) -> &DMatrix<f32> {
        &self.weight
    }

    /// The bias vector.
    pub fn bias(&self) -> &DVector<f32> {
        &self.bias
    }

    /// The gate vector, if the layer's units are gated.
    pub fn gate(&self) -> Option<&DVector<f32>> {
        self.gate.as_ref()
    }
}

/// A 2-D convolution (cross-correlation, as `torch.nn.Conv2d`) over NCHW inputs.
///
/// The weight is stored as a matrix `[out, in * k * k]` whose row `o` is filter `o` in
/// `[in, kh, kw]` row-major order, so its row-major bytes equal PyTorch's `[out, in, kh, kw]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    pub(crate) in_channels: usize,
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
    pub(crate) weight: DMatrix<f32>,
    pub(crate) bias: DVector<f32>,
    pub(crate) gate: Option<DVector<f32>>,
}

impl Conv2d {
    /// A layer from explicit parameters; `weight` is `[out, in * kernel * kernel]`.
    pub fn new(
        in_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        weight: DMatrix<f32>,
        bias: DVector<f32>,
        gate: Option<DVector<f32>>,
    ) -> Result<Self> {
        if in_channels == 0 || kernel == 0 || stride == 0 || weight.nrows() == 0 {
            return Err(Error::invalid(
                "conv2d",
                "channels, kernel, stride and outputs must be > 0",
            ));
        }
        check_len(
            "conv2d.weight columns",
            in_channels * kernel * kernel,
            weight.ncols(),
        )?;
        check_len("conv2d.bias", weight.nrows(), bias.len())?;
        if let Some(g) = &gate {
            check_len("conv2d.gate", weight.nrows(), g.len())?;
        }
        Ok(Conv2d {
            in_channels,
            kernel,
            stride,
            padding,
            weight,
            bias,
            gate,
        })
    }

    /// A randomly initialised layer (He-uniform weights, zero bias), gated if `gated`.
    pub fn init(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        gated: bool,
        rng: &mut impl Rng,
    ) -> Self {
        let fan_in = in_channels * kernel * kernel;
        Conv2d {
            in_channels,
            kernel,
            stride: stride.max(1),
            padding,
            weight: he_uniform(out_channels, fan_in, fan_in, rng),
            bias: DVector::zeros(out_channels),
            gate: gated.then(|| DVector::from_element(out_channels, 1.0)),
        }
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Output channels (filters, the layer's units).
    pub fn out_channels(&self) -> usize {
        self.weight.nrows()
    }

    /// Square kernel size.
    pub fn kernel(&self) -> usize {
        self.kernel
    }

    /// Stride in both directions.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Zero padding on every side.
    pub fn padding(&self) -> usize {
        self.padding
    }

    /// Filters as rows of a `[out, in * k * k]` matrix.
    pub fn weight(&self) -> &DMatrix<f32> {
        &self.weight
    }

    /// The bias vector.
    pub fn bias(&self) -> &DVector<f32> {
        &self.bias
    }

    /// The gate vector, if the layer's channels are gated.
    pub fn gate(&self) -> Option<&DVector<f32>> {
        self.gate.as_ref()
    }

    /// Output height and width for an `h × w` input, or `None` if the kernel does not fit.
    pub fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (hp, wp) = (h + 2 * self.padding, w + 2 * self.padding);
        if hp < self.kernel || wp < self.kernel {
            return None;
        }
        Some((
            (hp - self.kernel) / self.stride + 1,
            (wp - self.kernel) / self.stride + 1,
        ))
    }
}

/// Max pooling with a square window and stride equal to the window (PyTorch's default);
/// trailing rows and columns that do not fill a window are dropped, as in PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    pub(crate) kernel: usize,
}

impl MaxPool2d {
    /// A pooling layer with window and stride `kernel` (> 0).
    pub fn new(kernel: usize) -> Result<Self> {
        if kernel == 0 {
            return Err(Error::invalid("maxpool2d.kernel", "must be > 0"));
        }
        Ok(MaxPool2d { kernel })
    }

    /// Window size and stride.
    pub fn kernel(&self) -> usize {
        self.kernel
    }
}

/// One layer of a sequential model; indices match `torch.nn.Sequential`.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// Fully connected layer.
    Linear(Linear),
    /// Convolution.
    Conv2d(Conv2d),
    /// ReLU; multiplies by the previous layer's gate when it has one.
    Relu,
    /// Max pooling.
    MaxPool2d(MaxPool2d),
    /// Flattens `[c, h, w]` to `c * h * w` in channel-major order (as PyTorch).
    Flatten,
}

impl Layer {
    /// The gate vector of a prunable layer.
    pub fn gate(&self) -> Option<&DVector<f32>> {
        match self {
            Layer::Linear(l) => l.gate.as_ref(),
            Layer::Conv2d(c) => c.gate.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn gate_mut(&mut self) -> Option<&mut DVector<f32>> {
        match self {
            Layer::Linear(l) => l.gate.as_mut(),
            Layer::Conv2d(c) => c.gate.as_mut(),
            _ => None,
        }
    }

    /// Weight and bias of a parametrised layer.
    pub fn params(&self) -> Option<(&DMatrix<f32>, &DVector<f32>)> {
        match self {
            Layer::Linear(l) => Some((&l.weight, &l.bias)),
            Layer::Conv2d(c) => Some((&c.weight, &c.bias)),
            _ => None,
        }
    }

    pub(crate) fn params_mut(&mut self) -> Option<(&mut DMatrix<f32>, &mut DVector<f32>)> {
        match self {
            Layer::Linear(l) => Some((&mut l.weight, &mut l.bias)),
            Layer::Conv2d(c) => Some((&mut c.weight, &mut c.bias)),
            _ => None,
        }
    }

    /// A short lowercase name (`linear`, `conv2d`, `relu`, `maxpool2d`, `flatten`).
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Linear(_) => "linear",
            Layer::Conv2d(_) => "conv2d",
            Layer::Relu => "relu",
            Layer::MaxPool2d(_) => "maxpool2d",
            Layer::Flatten => "flatten",
        }
    }

    /// The output shape for `input`, or an error naming the mismatch.
    pub fn output_shape(&self, index: usize, input: Shape) -> Result<Shape> {
        let bad = |expected: String| Error::ShapeMismatch {
            layer: index,
            expected,
            got: format!("{:?}", input.dims()),
        };
        match (self, input) {
            (Layer::Linear(l), Shape::Flat(n)) if n == l.in_features() => {
                Ok(Shape::Flat(l.out_features()))
            }
            (Layer::Linear(l), _) => Err(bad(format!("[{}]", l.in_features()))),
            (Layer::Conv2d(c), Shape::Image { c: ch, h, w }) if ch == c.in_channels => {
                match c.output_hw(h, w) {
                    Some((ho, wo)) => Ok(Shape::Image {
                        c: c.out_channels(),
                        h: ho,
                        w: wo,
                    }),
                    None => Err(bad(format!(
                        "an image of at least {0}x{0} after padding",
                        c.kernel
                    ))),
                }
            }
            (Layer::Conv2d(c), _) => Err(bad(format!("[{}, h, w]", c.in_channels))),
            (Layer::Relu, s) => Ok(s),
            (Layer::MaxPool2d(p), Shape::Image { c, h, w }) if h >= p.kernel && w >= p.kernel => {
                Ok(Shape::Image {
                    c,
                    h: h / p.kernel,
                    w: w / p.kernel,
                })
            }
            (Layer::MaxPool2d(p), _) => Err(bad(format!("[c, h, w] with h, w >= {}", p.kernel))),
            (Layer::Flatten, s) => Ok(Shape::Flat(s.numel())),
        }
    }
}

pub(crate) fn check_len(field: &str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(Error::LengthMismatch {
            field: field.to_string(),
            expected,
            got,
        });
    }
    Ok(())
}
