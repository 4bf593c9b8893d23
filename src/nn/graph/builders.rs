//! The networks this crate builds: the gated MLP and small CNN (chains in the sequential
//! layout, see [`super::chain`]), a BatchNorm CNN, and ResNets for small images.
//!
//! Every prunable channel group gets one gate vector. A gate sits after the last
//! per-channel op of its chain (after ReLU and pooling, or after BatchNorm where an add
//! follows), so that at `s = 0` the channel is exactly zero wherever it is read.

use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Uniform};

use super::chain::{chain, Role};
use super::ops::{
    Add, BatchNorm, Conv, Dense, Flatten, Gate, GlobalAvgPool, MaxPool, Op, Pool, Relu,
};
use super::{Graph, Node, NodeId, Param, ParamId, ParamKind};
use crate::error::{Error, Result};
use crate::nn::safetensors_io::ArchEntry;
use crate::nn::{InputSpec, Shape};

/// Assembles nodes and named parameters.
pub(crate) struct Builder {
    input: InputSpec,
    nodes: Vec<Node>,
    params: Vec<Param>,
    rng: ChaCha8Rng,
}

impl Builder {
    pub fn new(input: InputSpec, seed: u64) -> Self {
        Builder {
            input,
            nodes: vec![Node {
                name: "input".into(),
                op: Op::Input,
                inputs: Vec::new(),
            }],
            params: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn param(&mut self, name: String, kind: ParamKind, value: DMatrix<f32>) -> ParamId {
        self.params.push(Param { name, kind, value });
        self.params.len() - 1
    }

    pub fn node(&mut self, name: impl Into<String>, op: Op, inputs: &[NodeId]) -> NodeId {
        self.nodes.push(Node {
            name: name.into(),
            op,
            inputs: inputs.to_vec(),
        });
        self.nodes.len() - 1
    }

    fn vector(n: usize, v: f32) -> DMatrix<f32> {
        DMatrix::from_element(n, 1, v)
    }

    /// A conv node `name` with He-uniform filters; bias-free when `bias` is false.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        name: &str,
        input: NodeId,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> NodeId {
        let fan_in = cin * kernel * kernel;
        let w = he_uniform(cout, fan_in, fan_in, &mut self.rng);
        let weight = self.param(format!("{name}.weight"), ParamKind::Weight, w);
        let bias = bias.then(|| {
            self.param(
                format!("{name}.bias"),
                ParamKind::Weight,
                Self::vector(cout, 0.0),
            )
        });
        let op = Op::Conv2d(Conv {
            weight,
            bias,
            kernel,
            stride,
            padding,
        });
        self.node(name, op, &[input])
    }

    /// A linear node `name` with He-uniform weights and a zero bias.
    pub fn linear(&mut self, name: &str, input: NodeId, inp: usize, out: usize) -> NodeId {
        let w = he_uniform(out, inp, inp, &mut self.rng);
        let weight = self.param(format!("{name}.weight"), ParamKind::Weight, w);
        let bias = Some(self.param(
            format!("{name}.bias"),
            ParamKind::Weight,
            Self::vector(out, 0.0),
        ));
        self.node(name, Op::Linear(Dense { weight, bias }), &[input])
    }

    /// A BatchNorm node `name` over `c` channels with PyTorch's defaults.
    pub fn batch_norm(&mut self, name: &str, input: NodeId, c: usize) -> NodeId {
        let weight = self.param(
            format!("{name}.weight"),
            ParamKind::Weight,
            Self::vector(c, 1.0),
        );
        let bias = self.param(
            format!("{name}.bias"),
            ParamKind::Weight,
            Self::vector(c, 0.0),
        );
        let running_mean = self.param(
            format!("{name}.running_mean"),
            ParamKind::Buffer,
            Self::vector(c, 0.0),
        );
        let running_var = self.param(
            format!("{name}.running_var"),
            ParamKind::Buffer,
            Self::vector(c, 1.0),
        );
        let op = Op::BatchNorm(BatchNorm {
            weight,
            bias,
            running_mean,
            running_var,
            eps: 1e-5,
            momentum: 0.1,
            batches_tracked: 0,
        });
        self.node(name, op, &[input])
    }

    /// A gate vector of `c` entries at 1.
    pub fn gate_param(&mut self, name: &str, c: usize) -> ParamId {
        self.param(name.to_string(), ParamKind::Gate, Self::vector(c, 1.0))
    }

    pub fn gate(&mut self, name: &str, input: NodeId, gate: ParamId) -> NodeId {
        self.node(name, Op::Gate(Gate { gate }), &[input])
    }

    pub fn relu(&mut self, name: &str, input: NodeId) -> NodeId {
        self.node(name, Op::Relu(Relu), &[input])
    }

    pub fn finish(self) -> Result<Graph> {
        Graph::new(self.input, self.nodes, self.params)
    }
}

/// Depths of the ResNets for small images: `6n + 2` layers, `n` basic blocks per stage.
pub const RESNET_DEPTHS: [usize; 5] = [8, 14, 20, 32, 44];

impl Graph {
    /// The gated MLP with widths `[in, h1, …, out]`: linear layers named `0, 2, 4, …` as in
    /// `torch.nn.Sequential`, each hidden one followed by ReLU and the gate `{index}.gate`.
    /// Weights are drawn from `ChaCha8Rng::seed_from_u64(seed)` (see [`drawn`]).
    pub fn mlp(widths: &[usize], seed: u64) -> Result<Graph> {
        if widths.len() < 2 || widths.contains(&0) {
            return Err(Error::invalid(
                "widths",
                format!("{widths:?}: need at least [in, out], all > 0"),
            ));
        }
        let mut layers = Vec::new();
        for (i, pair) in widths.windows(2).enumerate() {
            layers.push(ArchEntry::Linear {
                inputs: pair[0],
                outputs: pair[1],
            });
            if i + 2 < widths.len() {
                layers.push(ArchEntry::Relu);
            }
        }
        drawn(InputSpec::identity(vec![widths[0]]), &layers, seed)
    }

    /// The small CNN: conv c→32 3×3, ReLU, max-pool 2, conv 32→64 3×3, ReLU, max-pool 2,
    /// flatten, linear → 128, ReLU, linear → `classes`. Both convs and the 128 units are
    /// gated. Weights are drawn from `seed` (see [`drawn`]).
    pub fn small_cnn(input: &[usize], classes: usize, seed: u64) -> Result<Graph> {
        let Shape::Image { c, h, w } = Shape::from_dims(input)? else {
            return Err(Error::invalid("input shape", "the CNN needs [c, h, w]"));
        };
        let (h1, w1) = ((h.saturating_sub(2)) / 2, (w.saturating_sub(2)) / 2);
        let (h2, w2) = ((h1.saturating_sub(2)) / 2, (w1.saturating_sub(2)) / 2);
        if h2 == 0 || w2 == 0 || classes == 0 {
            return Err(Error::invalid(
                "input shape",
                format!("{input:?} is too small for the small CNN (needs >= 10x10)"),
            ));
        }
        let conv = |inputs, outputs| ArchEntry::Conv2d {
            inputs,
            outputs,
            kernel: 3,
            stride: 1,
            padding: 0,
        };
        let pool = ArchEntry::Maxpool2d { kernel: 2 };
        let layers = [
            conv(c, 32),
            ArchEntry::Relu,
            pool.clone(),
            conv(32, 64),
            ArchEntry::Relu,
            pool,
            ArchEntry::Flatten,
            ArchEntry::Linear {
                inputs: 64 * h2 * w2,
                outputs: 128,
            },
            ArchEntry::Relu,
            ArchEntry::Linear {
                inputs: 128,
                outputs: classes,
            },
        ];
        drawn(InputSpec::identity(input.to_vec()), &layers, seed)
    }

    /// The same network reading `input`'s preprocessing. The shape must stay, except that a
    /// flat network takes any shape of as many values and keeps its flat one (the data's
    /// `[c, h, w]` would only be metadata to it).
    pub fn with_input(mut self, input: InputSpec) -> Result<Graph> {
        let old = self.shapes[0];
        let new = Shape::from_dims(&input.shape)?;
        if new != old && !(matches!(old, Shape::Flat(_)) && new.numel() == old.numel()) {
            return Err(Error::ShapeMismatch {
                layer: 0,
                expected: format!("{:?}", old.dims()),
                got: format!("{:?}", new.dims()),
            });
        }
        self.input = InputSpec {
            shape: old.dims(),
            ..input
        };
        Ok(self)
    }

    /// A BatchNorm CNN, a chain in `torch.nn.Sequential` order: for each width, a block
    /// conv 3×3 (padding 1, no bias) → BatchNorm2d → ReLU → max-pool 2 (the last block
    /// instead global average pooling), then flatten and a linear classifier. Each block's
    /// channels are one gated group.
    pub fn bn_cnn(input: InputSpec, widths: &[usize], classes: usize, seed: u64) -> Result<Graph> {
        let [c0, _, _] = input.shape[..] else {
            return Err(Error::invalid(
                "input shape",
                "a BN-CNN needs [c, h, w] images",
            ));
        };
        if widths.is_empty() || widths.contains(&0) || classes == 0 {
            return Err(Error::invalid(
                "widths",
                "need at least one block, all widths > 0",
            ));
        }
        let mut b = Builder::new(input, seed);
        let (mut at, mut cin, mut i) = (0, c0, 0);
        let mut next = || {
            i += 1;
            (i - 1).to_string()
        };
        for (k, &w) in widths.iter().enumerate() {
            let conv = next();
            at = b.conv(&conv, at, cin, w, 3, 1, 1, false);
            at = b.batch_norm(&next(), at, w);
            at = b.relu(&next(), at);
            at = if k + 1 < widths.len() {
                b.node(next(), Op::MaxPool2d(MaxPool(Pool::square(2))), &[at])
            } else {
                b.node(next(), Op::GlobalAvgPool(GlobalAvgPool), &[at])
            };
            let gate = b.gate_param(&format!("{conv}.gate"), w);
            at = b.gate(&format!("{conv}.gate"), at, gate);
            cin = w;
        }
        at = b.node(next(), Op::Flatten(Flatten), &[at]);
        b.linear(&next(), at, cin, classes);
        b.finish()
    }

    /// A ResNet for small images (He et al. 2016, section 4.2): a 3×3 stem of 16 channels,
    /// three stages of `n = (depth − 2) / 6` basic blocks at 16, 32 and 64 channels (the first
    /// block of stages 2 and 3 strides by 2 and adds through a 1×1 conv + BatchNorm
    /// downsample), global average pooling and a linear classifier. Names follow the common
    /// PyTorch layout (`conv1`, `bn1`, `layer2.0.downsample.0`, `fc`). Each block's inner
    /// channels are one group; each stage's residual stream is one group whose gate vector is
    /// shared by every gate node adding into it.
    pub fn resnet(depth: usize, input: InputSpec, classes: usize, seed: u64) -> Result<Graph> {
        if !RESNET_DEPTHS.contains(&depth) {
            return Err(Error::invalid(
                "depth",
                format!(
                    "{depth}: a ResNet for small images has depth 6n + 2, one of {RESNET_DEPTHS:?}"
                ),
            ));
        }
        let [c0, _, _] = input.shape[..] else {
            return Err(Error::invalid(
                "input shape",
                "a ResNet needs [c, h, w] images",
            ));
        };
        let blocks = (depth - 2) / 6;
        let mut b = Builder::new(input, seed);
        let mut at = b.conv("conv1", 0, c0, 16, 3, 1, 1, false);
        at = b.batch_norm("bn1", at, 16);
        at = b.relu("relu", at);
        let mut stream = b.gate_param("layer1.stream_gate", 16);
        at = b.gate("gate", at, stream);
        let mut cin = 16;
        for (s, width) in [16usize, 32, 64].into_iter().enumerate() {
            let stage = format!("layer{}", s + 1);
            if s > 0 {
                stream = b.gate_param(&format!("{stage}.stream_gate"), width);
            }
            for k in 0..blocks {
                let p = format!("{stage}.{k}");
                let stride = if s > 0 && k == 0 { 2 } else { 1 };
                let inner = b.gate_param(&format!("{p}.gate1"), width);
                let mut x = b.conv(&format!("{p}.conv1"), at, cin, width, 3, stride, 1, false);
                x = b.batch_norm(&format!("{p}.bn1"), x, width);
                x = b.relu(&format!("{p}.relu1"), x);
                x = b.gate(&format!("{p}.gate1"), x, inner);
                x = b.conv(&format!("{p}.conv2"), x, width, width, 3, 1, 1, false);
                x = b.batch_norm(&format!("{p}.bn2"), x, width);
                x = b.gate(&format!("{p}.gate2"), x, stream);
                let shortcut = if stride != 1 || cin != width {
                    let d = b.conv(
                        &format!("{p}.downsample.0"),
                        at,
                        cin,
                        width,
                        1,
                        stride,
                        0,
                        false,
                    );
                    let d = b.batch_norm(&format!("{p}.downsample.1"), d, width);
                    b.gate(&format!("{p}.downsample.gate"), d, stream)
                } else {
                    at
                };
                x = b.node(format!("{p}.add"), Op::Add(Add), &[x, shortcut]);
                at = b.relu(&format!("{p}.relu2"), x);
                cin = width;
            }
        }
        at = b.node("avgpool", Op::GlobalAvgPool(GlobalAvgPool), &[at]);
        at = b.node("flatten", Op::Flatten(Flatten), &[at]);
        b.linear("fc", at, cin, classes);
        b.finish()
    }
}

impl Graph {
    /// The same architecture at its current widths with fresh parameters from `seed`:
    /// He-uniform weights for each linear and conv on its own fan-in, zero biases, BatchNorm
    /// at PyTorch's initial state, gates at 1 (the scratch control of a pruned shape).
    pub fn reinitialized(&self, seed: u64) -> Graph {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut g = self.clone();
        for n in g.nodes.iter_mut() {
            match &mut n.op {
                Op::Linear(Dense { weight, bias }) | Op::Conv2d(Conv { weight, bias, .. }) => {
                    let w = &mut g.params[*weight].value;
                    let (rows, fan_in) = w.shape();
                    *w = he_uniform(rows, fan_in, fan_in, &mut rng);
                    if let Some(b) = bias {
                        g.params[*b].value.fill(0.0);
                    }
                }
                Op::BatchNorm(b) => {
                    for (p, v) in [
                        (b.weight, 1.0),
                        (b.bias, 0.0),
                        (b.running_mean, 0.0),
                        (b.running_var, 1.0),
                    ] {
                        g.params[p].value.fill(v);
                    }
                    b.batches_tracked = 0;
                }
                _ => {}
            }
        }
        g.set_gates(1.0);
        g
    }
}

/// The chain of `layers` with He-uniform weights drawn from `ChaCha8Rng::seed_from_u64(seed)`
/// in layer order (each weight matrix filled in nalgebra's column-major order, on its own
/// fan-in), zero biases, and gates at 1 on every weight layer but the last. The draw order
/// is pinned by `builders_draw_the_pinned_initial_weights` (`tests/nn_graph.rs`).
fn drawn(input: InputSpec, layers: &[ArchEntry], seed: u64) -> Result<Graph> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let last = layers
        .iter()
        .rposition(|l| matches!(l, ArchEntry::Linear { .. } | ArchEntry::Conv2d { .. }));
    chain(input, layers, |layer, role, _, shape| {
        let units = shape[0];
        Ok(match role {
            Role::Weight => {
                let fan_in = shape[1..].iter().product();
                Some(he_uniform(units, fan_in, fan_in, &mut rng))
            }
            Role::Bias => Some(Builder::vector(units, 0.0)),
            Role::Gate => (Some(layer) != last).then(|| Builder::vector(units, 1.0)),
        })
    })
}

/// Draws `He`-uniform weights `U(-sqrt(6/fan_in), sqrt(6/fan_in))`, suited to ReLU networks.
fn he_uniform(rows: usize, cols: usize, fan_in: usize, rng: &mut impl Rng) -> DMatrix<f32> {
    let bound = (6.0 / fan_in.max(1) as f32).sqrt();
    // A non-degenerate range cannot fail; fall back to zeros rather than panic.
    match Uniform::new(-bound, bound) {
        Ok(dist) => DMatrix::from_fn(rows, cols, |_, _| dist.sample(rng)),
        Err(_) => DMatrix::zeros(rows, cols),
    }
}
