//! The sequential model, its workspace, forward and backward passes.
//!
//! A [`Model`] is a `Vec<Layer>` plus the input preprocessing. Passes run in a [`Workspace`]
//! allocated once for a maximum batch size, so training steps do not allocate. The loss is
//! the mean softmax cross-entropy over the batch; [`Gradients`] hold `dL/dW`, `dL/db` and, for
//! gated layers, `dL/ds_i` summed over the batch and spatial positions.

use std::fmt;
use std::str::FromStr;

use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::conv::{
    conv_backward, conv_forward, pool_backward, pool_forward, ConvGeom, ConvWeights, LANES,
};
use super::dense::{dense_backward, dense_forward, DenseWeights};
use super::layers::{check_len, Conv2d, Layer, Linear, MaxPool2d, Shape};
use crate::error::{Error, Result};

/// How raw input bytes become network inputs: `x = (byte * scale - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Per-sample shape, `[n]` or `[c, h, w]`.
    pub shape: Vec<usize>,
    /// Multiplier applied to raw values (1/255 for bytes).
    pub scale: f64,
    /// Mean subtracted after scaling.
    pub mean: f64,
    /// Standard deviation divided by after centring.
    pub std: f64,
}

impl InputSpec {
    /// Inputs used as they are (scale 1, mean 0, std 1).
    pub fn identity(shape: Vec<usize>) -> Self {
        InputSpec {
            shape,
            scale: 1.0,
            mean: 0.0,
            std: 1.0,
        }
    }

    /// Fashion-MNIST bytes: `[1, 28, 28]`, scale 1/255, mean 0.286, std 0.353.
    pub fn fashion_mnist() -> Self {
        InputSpec {
            shape: vec![1, 28, 28],
            scale: 1.0 / 255.0,
            mean: 0.286,
            std: 0.353,
        }
    }

    /// Preprocesses one raw value.
    pub fn apply(&self, raw: f32) -> f32 {
        ((raw as f64 * self.scale - self.mean) / self.std) as f32
    }
}

/// Stable address of a prunable unit: `layer{L}.unit{U}` where `L` is the index of the
/// linear/conv layer (as in `torch.nn.Sequential`) and `U` the row / filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitId {
    /// Layer index.
    pub layer: usize,
    /// Unit index inside the layer.
    pub unit: usize,
}

impl fmt::Display for UnitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer{}.unit{}", self.layer, self.unit)
    }
}

impl FromStr for UnitId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("unit id", format!("{s:?}: expected layer<L>.unit<U>"));
        let (l, u) = s.split_once('.').ok_or_else(bad)?;
        let layer = l
            .strip_prefix("layer")
            .and_then(|x| x.parse().ok())
            .ok_or_else(bad)?;
        let unit = u
            .strip_prefix("unit")
            .and_then(|x| x.parse().ok())
            .ok_or_else(bad)?;
        Ok(UnitId { layer, unit })
    }
}

/// Loss and accuracy of one batch or one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LossStats {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Correctly classified samples.
    pub correct: usize,
    /// Samples seen.
    pub count: usize,
}

impl LossStats {
    /// Fraction classified correctly (0 when empty).
    pub fn accuracy(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.correct as f64 / self.count as f64
        }
    }
}

/// Gradients of the mean loss for one parametrised layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerGrad {
    /// `dL/dW`, same shape as the weight.
    pub weight: DMatrix<f32>,
    /// `dL/db`.
    pub bias: DVector<f32>,
    /// `dL/ds_i` for gated layers, summed over batch and positions.
    pub gate: Option<DVector<f32>>,
}

/// Gradients for every layer of a model (`None` for layers without parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    pub(crate) layers: Vec<Option<LayerGrad>>,
}

impl Gradients {
    /// Zero gradients shaped like `model`.
    pub fn new(model: &Model) -> Self {
        let layers = model
            .layers
            .iter()
            .map(|l| {
                l.params().map(|(w, b)| LayerGrad {
                    weight: DMatrix::zeros(w.nrows(), w.ncols()),
                    bias: DVector::zeros(b.len()),
                    gate: l.gate().map(|g| DVector::zeros(g.len())),
                })
            })
            .collect();
        Gradients { layers }
    }

    /// Gradients of layer `index`, if it has parameters.
    pub fn layer(&self, index: usize) -> Option<&LayerGrad> {
        self.layers.get(index).and_then(|g| g.as_ref())
    }

    /// `dL/ds` of a gated layer.
    pub fn gate(&self, index: usize) -> Option<&DVector<f32>> {
        self.layer(index).and_then(|g| g.gate.as_ref())
    }

    /// True if every entry is finite.
    pub fn is_finite(&self) -> bool {
        self.layers.iter().flatten().all(|g| {
            g.weight
                .iter()
                .chain(g.bias.iter())
                .chain(g.gate.iter().flat_map(|x| x.iter()))
                .all(|v| v.is_finite())
        })
    }
}

/// Preallocated buffers for passes over batches of up to `capacity` samples.
#[derive(Debug, Clone)]
pub struct Workspace {
    capacity: usize,
    batch: usize,
    shapes: Vec<Shape>,
    acts: Vec<Vec<f32>>,
    dacts: Vec<Vec<f32>>,
    arg: Vec<Vec<u32>>,
    gate_scratch: Vec<Vec<f32>>,
    dw_scratch: Vec<Vec<f32>>,
}

impl Workspace {
    /// Buffers for `model` and batches of at most `capacity` samples.
    pub fn new(model: &Model, capacity: usize) -> Self {
        let cap = capacity.max(1);
        let shapes = model.shapes.clone();
        let n = model.layers.len();
        let acts = shapes.iter().map(|s| vec![0.0; cap * s.numel()]).collect();
        let dacts = shapes.iter().map(|s| vec![0.0; cap * s.numel()]).collect();
        let mut arg = vec![Vec::new(); n];
        let mut gate_scratch = vec![Vec::new(); n];
        let mut dw_scratch = vec![Vec::new(); n];
        for (i, layer) in model.layers.iter().enumerate() {
            match (layer, shapes[i]) {
                (Layer::Conv2d(c), Shape::Image { .. }) => {
                    dw_scratch[i] =
                        vec![0.0; super::conv::chunks(cap) * (c.weight.len() + c.out_channels())];
                }
                (Layer::MaxPool2d(_), _) => arg[i] = vec![0; cap * shapes[i + 1].numel()],
                (Layer::Relu, _) if i > 0 => {
                    if let Some(g) = model.layers[i - 1].gate() {
                        gate_scratch[i] = vec![0.0; cap * g.len()];
                    }
                }
                _ => {}
            }
        }
        Workspace {
            capacity: cap,
            batch: 0,
            shapes,
            acts,
            dacts,
            arg,
            gate_scratch,
            dw_scratch,
        }
    }

    /// Largest batch this workspace accepts.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Output of the last forward pass for `batch` samples, `[batch, outputs]` row-major.
    pub fn output(&self) -> &[f32] {
        let last = self.acts.len() - 1;
        &self.acts[last][..self.batch * self.shapes[last].numel()]
    }

    /// Activation entering layer `index` (index `len` = network output) from the last
    /// forward pass, `[batch, numel]` row-major (NCHW for images).
    pub fn activation(&self, index: usize) -> Option<&[f32]> {
        let s = self.shapes.get(index)?;
        Some(&self.acts[index][..self.batch * s.numel()])
    }
}

/// A sequential network whose layer indices match `torch.nn.Sequential`.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub(crate) layers: Vec<Layer>,
    pub(crate) input: InputSpec,
    /// `shapes[i]` is the input shape of layer `i`; the last entry is the output shape.
    pub(crate) shapes: Vec<Shape>,
}

impl Model {
    /// A model from layers, checking that shapes chain from `input` to a flat output.
    pub fn new(input: InputSpec, layers: Vec<Layer>) -> Result<Self> {
        let shapes = Self::infer_shapes(&input, &layers)?;
        if !matches!(shapes.last(), Some(Shape::Flat(_))) {
            return Err(Error::invalid(
                "model",
                "the output must be flat (end with flatten or linear)",
            ));
        }
        for (i, l) in layers.iter().enumerate() {
            if l.gate().is_some() && !matches!(layers.get(i + 1), Some(Layer::Relu)) {
                return Err(Error::NotPrunable {
                    layer: i,
                    reason: "a gated layer must be followed by relu".into(),
                });
            }
        }
        Ok(Model {
            layers,
            input,
            shapes,
        })
    }

    pub(crate) fn infer_shapes(input: &InputSpec, layers: &[Layer]) -> Result<Vec<Shape>> {
        let mut shapes = vec![Shape::from_dims(&input.shape)?];
        for (i, l) in layers.iter().enumerate() {
            let next = l.output_shape(i, shapes[i])?;
            shapes.push(next);
        }
        Ok(shapes)
    }

    pub(crate) fn refresh_shapes(&mut self) -> Result<()> {
        self.shapes = Self::infer_shapes(&self.input, &self.layers)?;
        Ok(())
    }

    /// An MLP with widths `[in, h1, ..., out]`; every hidden layer is gated and followed by
    /// ReLU. Weights are drawn from `ChaCha8Rng::seed_from_u64(seed)`.
    pub fn mlp(widths: &[usize], seed: u64) -> Result<Self> {
        if widths.len() < 2 || widths.contains(&0) {
            return Err(Error::invalid(
                "widths",
                format!("{widths:?}: need at least [in, out], all > 0"),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut layers = Vec::new();
        for (i, pair) in widths.windows(2).enumerate() {
            let hidden = i + 2 < widths.len();
            layers.push(Layer::Linear(Linear::init(
                pair[0], pair[1], hidden, &mut rng,
            )));
            if hidden {
                layers.push(Layer::Relu);
            }
        }
        Model::new(InputSpec::identity(vec![widths[0]]), layers)
    }

    /// The small CNN: conv c→32 3×3, relu, pool 2, conv 32→64 3×3, relu, pool 2, flatten,
    /// linear →128, relu, linear → `classes`. Conv channels and the 128 units are gated.
    pub fn small_cnn(input: &[usize], classes: usize, seed: u64) -> Result<Self> {
        let Shape::Image { c, h, w } = Shape::from_dims(input)? else {
            return Err(Error::invalid("input shape", "the CNN needs [c, h, w]"));
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let conv1 = Conv2d::init(c, 32, 3, 1, 0, true, &mut rng);
        let conv2 = Conv2d::init(32, 64, 3, 1, 0, true, &mut rng);
        let (h1, w1) = ((h.saturating_sub(2)) / 2, (w.saturating_sub(2)) / 2);
        let (h2, w2) = ((h1.saturating_sub(2)) / 2, (w1.saturating_sub(2)) / 2);
        if h2 == 0 || w2 == 0 || classes == 0 {
            return Err(Error::invalid(
                "input shape",
                format!("{input:?} is too small for the small CNN (needs >= 10x10)"),
            ));
        }
        let layers = vec![
            Layer::Conv2d(conv1),
            Layer::Relu,
            Layer::MaxPool2d(MaxPool2d { kernel: 2 }),
            Layer::Conv2d(conv2),
            Layer::Relu,
            Layer::MaxPool2d(MaxPool2d { kernel: 2 }),
            Layer::Flatten,
            Layer::Linear(Linear::init(64 * h2 * w2, 128, true, &mut rng)),
            Layer::Relu,
            Layer::Linear(Linear::init(128, classes, false, &mut rng)),
        ];
        Model::new(InputSpec::identity(input.to_vec()), layers)
    }

    /// The same architecture (layer shapes, gated units) with fresh weights drawn as by
    /// [`Model::mlp`] from `ChaCha8Rng::seed_from_u64(seed)`, each layer initialised for its
    /// own fan-in; gates at 1.
    pub fn reinitialized(&self, seed: u64) -> Result<Model> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layers = self
            .layers
            .iter()
            .map(|layer| match layer {
                Layer::Linear(l) => Layer::Linear(Linear::init(
                    l.in_features(),
                    l.out_features(),
                    l.gate().is_some(),
                    &mut rng,
                )),
                Layer::Conv2d(c) => Layer::Conv2d(Conv2d::init(
                    c.in_channels,
                    c.out_channels(),
                    c.kernel,
                    c.stride,
                    c.padding,
                    c.gate.is_some(),
                    &mut rng,
                )),
                other => other.clone(),
            })
            .collect();
        Model::new(self.input.clone(), layers)
    }

    /// Replaces the input preprocessing; the shape must keep the same number of values.
    pub fn with_input(mut self, input: InputSpec) -> Result<Self> {
        let old = self.shapes[0];
        let new = Shape::from_dims(&input.shape)?;
        if new != old && !(matches!(old, Shape::Flat(_)) && new.numel() == old.numel()) {
            return Err(Error::ShapeMismatch {
                layer: 0,
                expected: format!("{:?}", old.dims()),
                got: format!("{:?}", new.dims()),
            });
        }
        // A flat-input model keeps its flat shape; the spec's shape is metadata for exporters.
        self.input = InputSpec {
            shape: input.shape,
            ..input
        };
        if matches!(old, Shape::Flat(_)) {
            self.input.shape = old.dims();
        }
        Ok(self)
    }

    /// The layers, indexed as in `torch.nn.Sequential`.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Input preprocessing.
    pub fn input(&self) -> &InputSpec {
        &self.input
    }

    /// Values per input sample.
    pub fn input_len(&self) -> usize {
        self.shapes[0].numel()
    }

    /// Number of outputs (classes).
    pub fn output_len(&self) -> usize {
        self.shapes.last().map_or(0, |s| s.numel())
    }

    /// Shape entering each layer; the last entry is the output shape.
    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// Number of weights and biases (gates excluded).
    pub fn parameter_count(&self) -> usize {
        self.layers
            .iter()
            .filter_map(|l| l.params())
            .map(|(w, b)| w.len() + b.len())
            .sum()
    }

    /// Multiply-accumulate count of one forward pass for one sample (linear and conv only).
    pub fn macs_per_sample(&self) -> usize {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| match (l, self.shapes[i + 1]) {
                (Layer::Linear(x), _) => x.weight.len(),
                (Layer::Conv2d(c), Shape::Image { h, w, .. }) => c.weight.len() * h * w,
                _ => 0,
            })
            .sum()
    }

    /// Floating-point operations of one training step per sample in the GEMMs: forward,
    /// weight gradient, and input gradient for every weight layer but the first (whose input
    /// gradient is not computed). Used to report achieved GFLOP/s.
    pub fn train_flops_per_sample(&self) -> usize {
        let first = self.layers.iter().position(|l| l.params().is_some());
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let macs = match (l, self.shapes[i + 1]) {
                    (Layer::Linear(x), _) => x.weight.len(),
                    (Layer::Conv2d(c), Shape::Image { h, w, .. }) => c.weight.len() * h * w,
                    _ => 0,
                };
                let passes = if Some(i) == first { 2 } else { 3 };
                2 * macs * passes
            })
            .sum()
    }

    /// Indices of layers whose units are gated (the prunable layers).
    pub fn gated_layers(&self) -> Vec<usize> {
        (0..self.layers.len())
            .filter(|&i| self.layers[i].gate().is_some())
            .collect()
    }

    /// Every prunable unit, in layer order.
    pub fn units(&self) -> Vec<UnitId> {
        self.gated_layers()
            .into_iter()
            .flat_map(|layer| {
                let n = self.layers[layer].gate().map_or(0, |g| g.len());
                (0..n).map(move |unit| UnitId { layer, unit })
            })
            .collect()
    }

    fn gated(&self, layer: usize) -> Result<&DVector<f32>> {
        match self.layers.get(layer) {
            None => Err(Error::NotPrunable {
                layer,
                reason: format!("the model has {} layers", self.layers.len()),
            }),
            Some(l) => l.gate().ok_or_else(|| Error::NotPrunable {
                layer,
                reason: format!("{} layer without gates", l.kind()),
            }),
        }
    }

    /// The gate vector of prunable layer `layer`.
    pub fn gate(&self, layer: usize) -> Result<&DVector<f32>> {
        self.gated(layer)
    }

    /// Mutable gates of `layer` as a slice (its length is fixed; removal goes through
    /// [`Model::remove_units`]). Keep them finite and >= 0 (see [`Model::set_gate`]).
    pub fn gate_mut(&mut self, layer: usize) -> Result<&mut [f32]> {
        self.gated(layer)?;
        match self.layers[layer].gate_mut() {
            Some(g) => Ok(g.as_mut_slice()),
            None => Err(Error::NotPrunable {
                layer,
                reason: "no gates".into(),
            }),
        }
    }

    /// Overwrites the gates of `layer`. Gates must be finite and >= 0: gate folding and the
    /// max-pool right derivative at `s = 0` rely on `s relu(z) = relu(s z)`.
    pub fn set_gate(&mut self, layer: usize, values: &[f32]) -> Result<()> {
        if let Some((index, &v)) = values
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(Error::NonFinite {
                field: format!("layer{layer}.gate"),
                index,
                value: v as f64,
            });
        }
        let g = self.gate_mut(layer)?;
        check_len("gate", g.len(), values.len())?;
        g.copy_from_slice(values);
        Ok(())
    }

    /// Mutable weights and bias of layer `layer` as slices (weights in nalgebra's
    /// column-major order, the same order as [`LayerGrad::weight`]); shapes cannot change.
    pub fn parameters_mut(&mut self, layer: usize) -> Option<(&mut [f32], &mut [f32])> {
        self.layers
            .get_mut(layer)?
            .params_mut()
            .map(|(w, b)| (w.as_mut_slice(), b.as_mut_slice()))
    }

    /// Incoming weights of all units of `layer`: row `i` is unit `i`'s weights (a dense row
    /// or a flattened `[in, k, k]` filter).
    pub fn incoming_weights(&self, layer: usize) -> Result<&DMatrix<f32>> {
        self.gated(layer)?;
        match self.layers[layer].params() {
            Some((w, _)) => Ok(w),
            None => Err(Error::NotPrunable {
                layer,
                reason: "no weights".into(),
            }),
        }
    }

    /// Incoming weights (and bias last) of one unit.
    pub fn unit_incoming(&self, id: UnitId) -> Result<Vec<f32>> {
        let w = self.incoming_weights(id.layer)?;
        if id.unit >= w.nrows() {
            return Err(Error::NotPrunable {
                layer: id.layer,
                reason: format!("unit {} out of range ({} units)", id.unit, w.nrows()),
            });
        }
        Ok(w.row(id.unit).iter().copied().collect())
    }

    /// Index of the next parametrised layer after `layer` (the one that reads its units).
    pub fn next_weight_layer(&self, layer: usize) -> Option<usize> {
        (layer + 1..self.layers.len()).find(|&j| self.layers[j].params().is_some())
    }

    /// Outgoing weights of one unit: every weight of the next linear/conv layer that reads
    /// the unit's activation (a column of a dense weight, or an input-channel slice).
    pub fn unit_outgoing(&self, id: UnitId) -> Result<Vec<f32>> {
        self.unit_incoming(id)?;
        let next = self
            .next_weight_layer(id.layer)
            .ok_or_else(|| Error::NotPrunable {
                layer: id.layer,
                reason: "no next layer".into(),
            })?;
        let cols = super::surgery::consumer_columns(self, id.layer, next)?;
        let w = match self.layers[next].params() {
            Some((w, _)) => w,
            None => {
                return Err(Error::NotPrunable {
                    layer: next,
                    reason: "no weights".into(),
                })
            }
        };
        let r = cols.of(id.unit);
        Ok(
            r.flat_map(|c| w.column(c).iter().copied().collect::<Vec<_>>())
                .collect(),
        )
    }

    fn check_ws(&self, ws: &Workspace, batch: usize, x_len: usize) -> Result<()> {
        if ws.shapes != self.shapes {
            return Err(Error::invalid(
                "workspace",
                "built for a different model shape; create a new Workspace",
            ));
        }
        if batch > ws.capacity {
            return Err(Error::invalid(
                "batch",
                format!("{batch} exceeds the workspace capacity {}", ws.capacity),
            ));
        }
        check_len("input", batch * self.input_len(), x_len)
    }

    /// Forward pass of `batch` preprocessed samples `x` (`[batch, input_len]`); returns the
    /// logits `[batch, classes]` row-major. Intermediate activations stay in `ws`.
    pub fn forward<'w>(&self, ws: &'w mut Workspace, x: &[f32], batch: usize) -> Result<&'w [f32]> {
        self.check_ws(ws, batch, x.len())?;
        ws.batch = batch;
        ws.acts[0][..x.len()].copy_from_slice(x);
        for i in 0..self.layers.len() {
            let (lo, hi) = ws.acts.split_at_mut(i + 1);
            let (inp, out) = (
                &lo[i][..batch * self.shapes[i].numel()],
                &mut hi[0][..batch * self.shapes[i + 1].numel()],
            );
            match &self.layers[i] {
                Layer::Linear(l) => dense_forward(weights_of(l), batch, inp, out),
                Layer::Conv2d(c) => {
                    let Shape::Image { h, w, .. } = self.shapes[i] else {
                        continue;
                    };
                    let g = ConvGeom::new(c, h, w);
                    conv_forward(ConvWeights::of(c), &g, batch, inp, out);
                }
                Layer::Relu => {
                    let gate = if i > 0 {
                        self.layers[i - 1].gate()
                    } else {
                        None
                    };
                    match gate {
                        None => out.iter_mut().zip(inp).for_each(|(o, &z)| *o = z.max(0.0)),
                        Some(g) => gated_relu_forward(out, inp, g.as_slice(), self.unit_stride(i)),
                    }
                }
                Layer::MaxPool2d(p) => {
                    let Shape::Image { c, h, w } = self.shapes[i] else {
                        continue;
                    };
                    let after_gate = i >= 2
                        && matches!(self.layers[i - 1], Layer::Relu)
                        && self.layers[i - 2].gate().is_some();
                    let key = if after_gate {
                        &lo[i - 1][..inp.len()]
                    } else {
                        inp
                    };
                    pool_forward(p.kernel, batch * c, h, w, inp, key, out, &mut ws.arg[i]);
                }
                Layer::Flatten => out.copy_from_slice(inp),
            }
        }
        Ok(ws.output())
    }

    /// Values per unit per sample at the input of layer `i` (1 for dense, `h*w` for images).
    fn unit_stride(&self, i: usize) -> usize {
        match self.shapes[i] {
            Shape::Flat(_) => 1,
            Shape::Image { h, w, .. } => h * w,
        }
    }

    /// Forward and backward pass with the mean softmax cross-entropy against `labels`.
    /// Fills `grads` (weights, biases, gates) and returns the batch loss and accuracy.
    pub fn loss_and_grad(
        &self,
        ws: &mut Workspace,
        x: &[f32],
        labels: &[u32],
        grads: &mut Gradients,
    ) -> Result<LossStats> {
        let batch = labels.len();
        self.forward(ws, x, batch)?;
        let last = self.layers.len();
        let classes = self.output_len();
        if grads.layers.len() != last {
            return Err(Error::invalid(
                "gradients",
                "built for a different model; create new Gradients",
            ));
        }
        let stats = {
            let (logits, dlogits) = (
                &ws.acts[last][..batch * classes],
                &mut ws.dacts[last][..batch * classes],
            );
            softmax_xent(logits, labels, classes, Some(dlogits))?
        };
        self.backward(ws, grads)?;
        Ok(stats)
    }

    /// Loss and accuracy of one batch without gradients.
    pub fn evaluate_batch(
        &self,
        ws: &mut Workspace,
        x: &[f32],
        labels: &[u32],
    ) -> Result<LossStats> {
        let logits = self.forward(ws, x, labels.len())?;
        softmax_xent(logits, labels, self.output_len(), None)
    }

    /// Backward pass from the output gradient already in the workspace.
    fn backward(&self, ws: &mut Workspace, grads: &mut Gradients) -> Result<()> {
        let batch = ws.batch;
        for i in (0..self.layers.len()).rev() {
            let n_in = batch * self.shapes[i].numel();
            let n_out = batch * self.shapes[i + 1].numel();
            // Layer 0 needs no input gradient, except to feed a gate (never at layer 0).
            let need_dx = i > 0;
            let (dlo, dhi) = ws.dacts.split_at_mut(i + 1);
            let dx = &mut dlo[i][..n_in];
            let dy = &dhi[0][..n_out];
            let x = &ws.acts[i][..n_in];
            match &self.layers[i] {
                Layer::Linear(l) => {
                    let g = grads.layers[i]
                        .as_mut()
                        .ok_or_else(|| Error::invalid("gradients", "layout mismatch"))?;
                    dense_backward(
                        weights_of(l),
                        batch,
                        x,
                        dy,
                        g.weight.as_mut_slice(),
                        Some(g.bias.as_mut_slice()),
                        need_dx.then_some((dx, false)),
                    );
                }
                Layer::Conv2d(c) => {
                    let Shape::Image { h, w, .. } = self.shapes[i] else {
                        continue;
                    };
                    let geom = ConvGeom::new(c, h, w);
                    let g = grads.layers[i]
                        .as_mut()
                        .ok_or_else(|| Error::invalid("gradients", "layout mismatch"))?;
                    conv_backward(
                        ConvWeights::of(c),
                        &geom,
                        batch,
                        x,
                        dy,
                        g.weight.as_mut_slice(),
                        &mut ws.dw_scratch[i],
                        g.bias.as_mut_slice(),
                        need_dx.then_some((dx, false)),
                    );
                }
                Layer::Relu => {
                    let gate = if i > 0 {
                        self.layers[i - 1].gate()
                    } else {
                        None
                    };
                    match gate {
                        None => dx
                            .iter_mut()
                            .zip(dy.iter().zip(x))
                            .for_each(|(d, (&g, &z))| *d = if z > 0.0 { g } else { 0.0 }),
                        Some(s) => {
                            let ds = grads.layers[i - 1]
                                .as_mut()
                                .and_then(|g| g.gate.as_mut())
                                .ok_or_else(|| Error::invalid("gradients", "layout mismatch"))?;
                            let scratch = &mut ws.gate_scratch[i][..batch * s.len()];
                            gated_relu_backward(
                                dx,
                                dy,
                                x,
                                s.as_slice(),
                                self.unit_stride(i),
                                scratch,
                                ds.as_mut_slice(),
                            );
                        }
                    }
                }
                Layer::MaxPool2d(p) => {
                    let Shape::Image { c, h, w } = self.shapes[i] else {
                        continue;
                    };
                    pool_backward(p.kernel, batch * c, h, w, dy, &ws.arg[i], dx);
                }
                Layer::Flatten => dx.copy_from_slice(dy),
            }
        }
        Ok(())
    }

    /// Gated post-ReLU activations of prunable layer `layer` for `batch` samples: rows are
    /// samples (for conv layers, sample-major rows of every spatial position), columns units.
    pub fn activations(
        &self,
        ws: &mut Workspace,
        x: &[f32],
        batch: usize,
        layer: usize,
    ) -> Result<DMatrix<f32>> {
        let units = self.gated(layer)?.len();
        self.forward(ws, x, batch)?;
        let idx = layer + 2;
        let a = &ws.acts[idx][..batch * self.shapes[idx].numel()];
        Ok(match self.shapes[idx] {
            Shape::Flat(n) => DMatrix::from_row_slice(batch, n, a),
            Shape::Image { c, h, w } => {
                let p = h * w;
                DMatrix::from_fn(batch * p, units, |r, u| a[(r / p) * c * p + u * p + r % p])
            }
        })
    }

    /// Logits for `batch` samples, allocating a workspace (convenience for inference).
    pub fn predict(&self, x: &[f32], batch: usize) -> Result<DMatrix<f32>> {
        let mut ws = Workspace::new(self, batch);
        let y = self.forward(&mut ws, x, batch)?;
        Ok(DMatrix::from_row_slice(batch, self.output_len(), y))
    }

    /// True if every weight, bias and gate is finite.
    pub fn is_finite(&self) -> bool {
        self.layers.iter().all(|l| {
            l.params()
                .is_none_or(|(w, b)| w.iter().chain(b.iter()).all(|v| v.is_finite()))
                && l.gate().is_none_or(|g| g.iter().all(|v| v.is_finite()))
        })
    }
}

/// Minimum number of values per rayon task in element-wise loops.
const PAR_MIN: usize = 1 << 14;

/// `out = s_u * relu(z)` per sample; `per` values per unit (1 dense, `h*w` conv).
fn gated_relu_forward(out: &mut [f32], z: &[f32], s: &[f32], per: usize) {
    let chunk = per * s.len();
    out.par_chunks_mut(chunk)
        .zip(z.par_chunks(chunk))
        .with_min_len(PAR_MIN.div_ceil(chunk))
        .for_each(|(bo, bz)| {
            for (u, &su) in s.iter().enumerate() {
                for (o, &zv) in bo[u * per..][..per].iter_mut().zip(&bz[u * per..][..per]) {
                    *o = su * zv.max(0.0);
                }
            }
        });
}

/// Backward of the gated ReLU: `dz = dA s_u 1[z > 0]`, `ds_u = Σ dA relu(z)` over samples
/// and positions. Per-sample partial sums go to `scratch` and are reduced in a fixed order,
/// so results do not depend on thread scheduling.
fn gated_relu_backward(
    dz: &mut [f32],
    da: &[f32],
    z: &[f32],
    s: &[f32],
    per: usize,
    scratch: &mut [f32],
    ds: &mut [f32],
) {
    let chunk = per * s.len();
    dz.par_chunks_mut(chunk)
        .zip(da.par_chunks(chunk).zip(z.par_chunks(chunk)))
        .zip(scratch.par_chunks_mut(s.len()))
        .with_min_len(PAR_MIN.div_ceil(chunk))
        .for_each(|((bd, (ba, bz)), part)| {
            for (u, (&su, p)) in s.iter().zip(part.iter_mut()).enumerate() {
                let (bd, ba, bz) = (
                    &mut bd[u * per..][..per],
                    &ba[u * per..][..per],
                    &bz[u * per..][..per],
                );
                if per < LANES {
                    // Dense layers (per = 1): the lanes below would only add overhead.
                    let mut acc = 0.0f32;
                    for ((d, &g), &zv) in bd.iter_mut().zip(ba).zip(bz) {
                        acc += g * zv.max(0.0);
                        *d = if zv > 0.0 { g * su } else { 0.0 };
                    }
                    *p = acc;
                    continue;
                }
                // LANES independent partial sums: one serial accumulator would make this
                // loop latency-bound on the add chain (per = H*W is in the hundreds for conv
                // layers); several let it vectorise. This only reassociates the sum.
                let mut acc = [0.0f32; LANES];
                let split = per - per % LANES;
                for ((d, g), z) in bd[..split]
                    .chunks_exact_mut(LANES)
                    .zip(ba[..split].chunks_exact(LANES))
                    .zip(bz[..split].chunks_exact(LANES))
                {
                    for l in 0..LANES {
                        acc[l] += g[l] * z[l].max(0.0);
                        d[l] = if z[l] > 0.0 { g[l] * su } else { 0.0 };
                    }
                }
                for ((d, &g), &zv) in bd[split..].iter_mut().zip(&ba[split..]).zip(&bz[split..]) {
                    acc[0] += g * zv.max(0.0);
                    *d = if zv > 0.0 { g * su } else { 0.0 };
                }
                *p = acc.iter().sum();
            }
        });
    ds.fill(0.0);
    for part in scratch.chunks(s.len()) {
        for (d, &p) in ds.iter_mut().zip(part) {
            *d += p;
        }
    }
}

fn weights_of(l: &Linear) -> DenseWeights<'_> {
    DenseWeights {
        weight: l.weight.as_slice(),
        bias: Some(l.bias.as_slice()),
        inputs: l.in_features(),
        outputs: l.out_features(),
    }
}

/// Mean softmax cross-entropy; writes `(softmax - onehot) / batch` into `dlogits` if given.
pub(crate) fn softmax_xent(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    mut dlogits: Option<&mut [f32]>,
) -> Result<LossStats> {
    let batch = labels.len();
    let mut loss = 0.0f64;
    let mut correct = 0;
    let inv = 1.0 / batch.max(1) as f32;
    for (b, (row, &y)) in logits.chunks(classes).zip(labels).enumerate() {
        let y = y as usize;
        if y >= classes {
            return Err(Error::invalid(
                "label",
                format!("sample {b}: label {y} >= {classes} classes"),
            ));
        }
        let (mut arg, mut max) = (0, f32::NEG_INFINITY);
        for (c, &v) in row.iter().enumerate() {
            if v > max {
                max = v;
                arg = c;
            }
        }
        if arg == y {
            correct += 1;
        }
        // The loss is formed in f64: `lse - z_y` cancels, and in f32 its error would be
        // eps * |z|, enough to swamp small loss differences.
        let max = max as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        let lse = max + sum.ln();
        loss += lse - row[y] as f64;
        if let Some(d) = dlogits.as_deref_mut() {
            let drow = &mut d[b * classes..][..classes];
            for (c, (dv, &v)) in drow.iter_mut().zip(row).enumerate() {
                let p = (v as f64 - lse).exp() as f32;
                *dv = (p - if c == y { 1.0 } else { 0.0 }) * inv;
            }
        }
    }
    Ok(LossStats {
        loss: loss / batch.max(1) as f64,
        correct,
        count: batch,
    })
}
