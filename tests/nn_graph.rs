//! The model graph: gradients of every op against central differences (proptest), the
//! builders' pinned initial weights, channel groups of a ResNet, and removal by plan.
//!
//! Tolerances. Networks run in `f32` with the loss accumulated in
//! `f64`. With `h = 1e-3` the central difference has truncation error `O(h²)` ≈ 1e-6 on these
//! O(1)-scaled graphs and round-off ≈ `1e-6 / h` = 1e-3, so we accept
//! `|analytic − fd| ≤ 2e-3 + 2e-2·|fd|`. A ReLU sign or max-pool winner that changes inside
//! `[θ − h, θ + h]` makes the difference meaningless; such coordinates are detected
//! structurally (the regime — every ReLU input's sign and every max-pool window's winner —
//! differs between `θ − h`, `θ` and `θ + h`) and skipped, at most a quarter of them (else the
//! draw is rejected), so a wrong gradient cannot hide behind the rule.

mod common;

use nalgebra::DMatrix;
use proptest::prelude::*;
use pruning_game::nn::graph::{
    Add, AvgPool, BatchNorm, Conv, Dense, Flatten, Gate, GlobalAvgPool, Graph, GraphGrads,
    GraphOptimizer, GraphWorkspace, MaxPool, Mode, Node, Op, Param, ParamKind, Pool, Relu,
    RemovalPlan,
};
use pruning_game::nn::{InputSpec, OptimizerConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

const H: f32 = 1e-3;
const ATOL: f64 = 2e-3;
const RTOL: f64 = 2e-2;
const MAX_SKIPPED: f64 = 0.25;

fn randn(rng: &mut ChaCha8Rng, rows: usize, cols: usize, scale: f32) -> DMatrix<f32> {
    DMatrix::from_fn(rows, cols, |_, _| {
        rng.sample::<f32, _>(StandardNormal) * scale
    })
}

/// Nodes and parameters of a graph under construction.
struct Net {
    nodes: Vec<Node>,
    params: Vec<Param>,
}

impl Net {
    fn new() -> Self {
        Net {
            nodes: vec![Node {
                name: "input".into(),
                op: Op::Input,
                inputs: vec![],
            }],
            params: vec![],
        }
    }
    fn param(&mut self, kind: ParamKind, value: DMatrix<f32>) -> usize {
        let name = format!("p{}", self.params.len());
        self.params.push(Param { name, kind, value });
        self.params.len() - 1
    }
    fn node(&mut self, op: Op, inputs: &[usize]) -> usize {
        let name = format!("n{}", self.nodes.len());
        self.nodes.push(Node {
            name,
            op,
            inputs: inputs.to_vec(),
        });
        self.nodes.len() - 1
    }
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        rng: &mut ChaCha8Rng,
        at: usize,
        c: usize,
        o: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> usize {
        let fan = c * k * k;
        let weight = self.param(
            ParamKind::Weight,
            randn(rng, o, fan, 1.0 / (fan as f32).sqrt()),
        );
        let bias = rng
            .random_bool(0.5)
            .then(|| self.param(ParamKind::Weight, randn(rng, o, 1, 0.3)));
        self.node(
            Op::Conv2d(Conv {
                weight,
                bias,
                kernel: k,
                stride,
                padding: pad,
            }),
            &[at],
        )
    }
    fn batch_norm(&mut self, rng: &mut ChaCha8Rng, at: usize, c: usize) -> usize {
        let weight = self.param(ParamKind::Weight, randn(rng, c, 1, 0.5).add_scalar(1.0));
        let bias = self.param(ParamKind::Weight, randn(rng, c, 1, 0.3));
        let running_mean = self.param(ParamKind::Buffer, randn(rng, c, 1, 0.3));
        let running_var = self.param(
            ParamKind::Buffer,
            DMatrix::from_fn(c, 1, |_, _| rng.random_range(0.5..2.0)),
        );
        self.node(
            Op::BatchNorm(BatchNorm {
                weight,
                bias,
                running_mean,
                running_var,
                eps: 1e-5,
                momentum: 0.1,
                batches_tracked: 0,
            }),
            &[at],
        )
    }
    fn gate(&mut self, rng: &mut ChaCha8Rng, at: usize, c: usize) -> usize {
        // Some gates exactly 0: dL/ds at s = 0 is what a pruner reads.
        let g = DMatrix::from_fn(c, 1, |_, _| {
            if rng.random_bool(0.2) {
                0.0
            } else {
                rng.random_range(0.2..1.0)
            }
        });
        let gate = self.param(ParamKind::Gate, g);
        self.node(Op::Gate(Gate { gate }), &[at])
    }
    fn linear(&mut self, rng: &mut ChaCha8Rng, at: usize, i: usize, o: usize) -> usize {
        let weight = self.param(ParamKind::Weight, randn(rng, o, i, 1.0 / (i as f32).sqrt()));
        let bias = Some(self.param(ParamKind::Weight, randn(rng, o, 1, 0.3)));
        self.node(Op::Linear(Dense { weight, bias }), &[at])
    }
    fn finish(self, shape: Vec<usize>) -> Graph {
        Graph::new(InputSpec::identity(shape), self.nodes, self.params).expect("a valid graph")
    }
}

/// A random graph exercising strided/padded conv, BatchNorm, a gate, max or average
/// pooling, a residual add through a 1×1 conv, and global pooling or flatten.
fn random_graph(seed: u64) -> (Graph, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (c, hw) = (rng.random_range(1..=3), rng.random_range(5..=8));
    let o = rng.random_range(2..=4);
    let k = rng.random_range(1..=3);
    let stride = rng.random_range(1..=2);
    let pad = rng.random_range(0..=k / 2);
    let mut n = Net::new();
    let a = n.conv(&mut rng, 0, c, o, k, stride, pad);
    let a = n.batch_norm(&mut rng, a, o);
    let a = n.gate(&mut rng, a, o);
    // The shortcut: a 1×1 conv with the same stride, cropped to the same size by padding 0.
    let ho = (hw + 2 * pad - k) / stride + 1;
    let s = n.conv(&mut rng, 0, c, o, 1, stride, 0);
    let hs = (hw - 1) / stride + 1;
    let joined = if hs == ho {
        n.node(Op::Add(Add), &[a, s])
    } else {
        a
    };
    let pk = rng.random_range(1..=2.min(ho));
    let pool = Pool {
        kernel: pk,
        stride: rng.random_range(1..=2),
        padding: rng.random_range(0..=pk / 2),
    };
    let p = if rng.random_bool(0.5) {
        n.node(Op::MaxPool2d(MaxPool(pool)), &[joined])
    } else {
        n.node(Op::AvgPool2d(AvgPool(pool)), &[joined])
    };
    let flat = if rng.random_bool(0.5) {
        let g = n.node(Op::GlobalAvgPool(GlobalAvgPool), &[p]);
        n.node(Op::Flatten(Flatten), &[g])
    } else {
        let r = n.node(Op::Relu(Relu), &[p]);
        n.node(Op::Flatten(Flatten), &[r])
    };
    let batch = rng.random_range(2..=4);
    let shape = vec![c, hw, hw];
    (n.finish_with_head(&mut rng, flat, shape), batch)
}

impl Net {
    fn finish_with_head(mut self, rng: &mut ChaCha8Rng, flat: usize, shape: Vec<usize>) -> Graph {
        let partial = Graph::new(
            InputSpec::identity(shape.clone()),
            {
                let mut nodes = self.nodes.clone();
                nodes.truncate(flat + 1);
                nodes
            },
            self.params.clone(),
        );
        let width = partial
            .map(|g| g.shapes()[flat].numel())
            .expect("valid body");
        self.linear(rng, flat, width, 3);
        self.finish(shape)
    }
}

/// The piecewise-linear regime of the last forward pass: each ReLU input's sign and each
/// max-pool window's winning cell (first maximum, as the op picks it).
fn regime(g: &Graph, ws: &GraphWorkspace) -> Vec<u32> {
    let mut out = Vec::new();
    for (i, node) in g.nodes().iter().enumerate() {
        let Some(&j) = node.inputs.first() else {
            continue;
        };
        let x = ws.activation(j).expect("node input");
        match &node.op {
            Op::Relu(_) => out.extend(x.iter().map(|&z| u32::from(z > 0.0))),
            Op::MaxPool2d(MaxPool(p)) => {
                let [c, h, w] = g.shapes()[j].dims()[..] else {
                    continue;
                };
                let [_, ho, wo] = g.shapes()[i].dims()[..] else {
                    continue;
                };
                for plane in x.chunks(h * w).take(x.len() / (c * h * w) * c) {
                    for oy in 0..ho {
                        for ox in 0..wo {
                            let (mut best, mut at) = (f32::NEG_INFINITY, u32::MAX);
                            for ky in 0..p.kernel {
                                for kx in 0..p.kernel {
                                    let iy = (oy * p.stride + ky) as isize - p.padding as isize;
                                    let ix = (ox * p.stride + kx) as isize - p.padding as isize;
                                    if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                                        continue;
                                    }
                                    let k = iy as usize * w + ix as usize;
                                    if at == u32::MAX || plane[k] > best {
                                        best = plane[k];
                                        at = k as u32;
                                    }
                                }
                            }
                            out.push(at);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn loss(g: &Graph, ws: &mut GraphWorkspace, x: &[f32], y: &[u32], mode: Mode) -> f64 {
    let batch = y.len();
    let logits = g.forward(ws, x, batch, mode).expect("valid batch").to_vec();
    // Mean cross-entropy in f64, as the crate computes it.
    let classes = g.output_len();
    let mut total = 0.0;
    for (row, &t) in logits.chunks(classes).zip(y) {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        total += lse - row[t as usize] as f64;
    }
    total / batch as f64
}

#[derive(Debug)]
enum CheckFailure {
    Mismatch(String),
    Degenerate,
}

/// Checks every parameter gradient of `g`, at most `sample` evenly spread entries of each
/// parameter.
fn check_gradients(
    mut g: Graph,
    batch: usize,
    mode: Mode,
    seed: u64,
    sample: usize,
) -> Result<(), CheckFailure> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37);
    let x: Vec<f32> = randn(&mut rng, batch * g.input_len(), 1, 1.0)
        .iter()
        .copied()
        .collect();
    let y: Vec<u32> = (0..batch).map(|_| rng.random_range(0..3)).collect();
    let mut ws = GraphWorkspace::new(&g, batch);
    let mut grads = GraphGrads::new(&g);
    g.loss_and_grad(&mut ws, &x, &y, mode, &mut grads)
        .expect("valid batch");
    let (mut checked, mut skipped) = (0usize, 0usize);
    let names: Vec<String> = g
        .params()
        .iter()
        .filter(|p| p.kind != ParamKind::Buffer)
        .map(|p| p.name.clone())
        .collect();
    for name in names {
        let analytic = grads
            .get(&g, &name)
            .expect("a gradient per parameter")
            .clone();
        let len = analytic.len();
        for i in (0..len.min(sample)).map(|k| k * len / len.min(sample)) {
            let v0 = g.param(&name).expect("param").value[i];
            let at = |g: &mut Graph, ws: &mut GraphWorkspace, v: f32| {
                g.param_mut(&name).expect("param")[i] = v;
                let l = loss(g, ws, &x, &y, mode);
                (l, regime(g, ws))
            };
            let stencil = [H, -H, H / 2.0, -H / 2.0].map(|d| at(&mut g, &mut ws, v0 + d));
            let (_, r0) = at(&mut g, &mut ws, v0);
            if stencil.iter().any(|(_, r)| *r != r0) {
                skipped += 1; // a kink inside the stencil
                continue;
            }
            let [(lp, _), (lm, _), (lp2, _), (lm2, _)] = stencil;
            // Richardson's combination of the steps H and H/2 cancels the H² error term:
            // where the loss curves on the scale of H (a small 1×1 convolution weight into
            // training-mode BatchNorm, whose scale then matters only through ε), the plain
            // central difference is off by several percent.
            let (wide, narrow) = ((lp - lm) / (2.0 * H as f64), (lp2 - lm2) / H as f64);
            let fd = (4.0 * narrow - wide) / 3.0;
            let tol = ATOL + RTOL * fd.abs();
            checked += 1;
            let a = analytic[i] as f64;
            if (a - fd).abs() > tol {
                return Err(CheckFailure::Mismatch(format!(
                    "{name}[{i}]: analytic {a:.6}, central difference {fd:.6} ({mode:?}) in\n{g}{:?}",
                    g.params().iter().map(|p| (&p.name, p.value.shape())).collect::<Vec<_>>()
                )));
            }
        }
    }
    if skipped as f64 > MAX_SKIPPED * (checked + skipped) as f64 {
        return Err(CheckFailure::Degenerate);
    }
    Ok(())
}

proptest! {
    #![proptest_config(common::cases(48))]

    /// Conv (strided, padded, with and without bias), BatchNorm in both modes, gates (some
    /// at 0), max and average pooling (padded, strided), add, global pooling and flatten:
    /// every parameter gradient matches central differences.
    #[test]
    fn graph_gradients_match_central_differences(seed in any::<u64>(), train in any::<bool>()) {
        let (g, batch) = random_graph(seed);
        let mode = if train { Mode::Train } else { Mode::Eval };
        match check_gradients(g, batch, mode, seed, usize::MAX) {
            Ok(()) => {}
            Err(CheckFailure::Degenerate) => prop_assume!(false, "too many kinks"),
            Err(CheckFailure::Mismatch(m)) => prop_assert!(false, "{}", m),
        }
    }
}

proptest! {
    #![proptest_config(common::cases(12))]

    /// The builders' chains: the gated MLP (gates on flat units after ReLU) and the small CNN
    /// (conv → ReLU → max-pool → gate, flatten, gated linear), gates random and some at 0.
    /// Up to 48 entries of each parameter are checked.
    #[test]
    fn chain_gradients_match_central_differences(seed in any::<u64>(), cnn in any::<bool>()) {
        let mut g = if cnn {
            Graph::small_cnn(&[1, 10, 10], 3, seed).unwrap()
        } else {
            Graph::mlp(&[6, 5, 4, 3], seed).unwrap()
        };
        common::random_gates(&mut g, seed);
        let batch = 2 + (seed % 3) as usize;
        match check_gradients(g, batch, Mode::Train, seed, 48) {
            Ok(()) => {}
            Err(CheckFailure::Degenerate) => prop_assume!(false, "too many kinks"),
            Err(CheckFailure::Mismatch(m)) => prop_assert!(false, "{}", m),
        }
    }
}

/// The batch statistics really are used in training mode: the same input gives different
/// outputs in the two modes, and the training-mode output of each channel has mean β.
#[test]
fn batch_norm_uses_batch_statistics_when_training_and_running_ones_when_evaluating() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut n = Net::new();
    let bn = n.batch_norm(&mut rng, 0, 4);
    n.node(Op::Flatten(Flatten), &[bn]);
    let g = n.finish(vec![4]);
    let batch = 64;
    let x: Vec<f32> = randn(&mut rng, batch * 4, 1, 3.0)
        .iter()
        .map(|v| v + 2.0)
        .collect();
    let mut ws = GraphWorkspace::new(&g, batch);
    let train = g.forward(&mut ws, &x, batch, Mode::Train).unwrap().to_vec();
    let eval = g.forward(&mut ws, &x, batch, Mode::Eval).unwrap().to_vec();
    let beta = &g.params()[1].value;
    for c in 0..4 {
        let mean: f32 = (0..batch).map(|b| train[b * 4 + c]).sum::<f32>() / batch as f32;
        assert!(
            (mean - beta[c]).abs() < 1e-4,
            "channel {c}: mean {mean} vs beta {}",
            beta[c]
        );
    }
    assert!(train.iter().zip(&eval).any(|(a, b)| (a - b).abs() > 1e-2));
}

/// Running statistics move as PyTorch's do: `r ← 0.9 r + 0.1 batch`, unbiased variance.
#[test]
fn running_statistics_follow_pytorch_momentum_and_unbiased_variance() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut n = Net::new();
    n.batch_norm(&mut rng, 0, 2);
    let mut g = n.finish(vec![2]);
    let x = [1.0f32, 10.0, 3.0, 20.0, 5.0, 30.0];
    let (rm0, rv0) = (g.params()[2].value.clone(), g.params()[3].value.clone());
    let mut ws = GraphWorkspace::new(&g, 3);
    g.forward(&mut ws, &x, 3, Mode::Train).unwrap();
    g.update_running_stats(&ws).unwrap();
    let (mean, var) = ([3.0f32, 20.0], [4.0f32, 100.0]); // unbiased: Σ(x−m)²/(n−1)
    for c in 0..2 {
        let rm = 0.9 * rm0[c] + 0.1 * mean[c];
        let rv = 0.9 * rv0[c] + 0.1 * var[c];
        assert!((g.params()[2].value[c] - rm).abs() < 1e-5);
        assert!((g.params()[3].value[c] - rv).abs() < 1e-4);
    }
    let Op::BatchNorm(bn) = &g.nodes()[1].op else {
        panic!("node 1 is the BatchNorm")
    };
    assert_eq!(bn.batches_tracked, 1);
}

/// FNV-1a over the node names and kinds, then the parameter names and the bits of their
/// values, in graph order.
fn fingerprint(g: &Graph) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    };
    for n in g.nodes() {
        eat(n.name.as_bytes());
        eat(n.op.kind().as_bytes());
    }
    for p in g.params() {
        eat(p.name.as_bytes());
        for v in p.value.iter() {
            eat(&v.to_bits().to_le_bytes());
        }
    }
    h
}

/// Fingerprints of the builders' initial networks (see the test below).
const FP_MLP784: u64 = 0x3ce1_47f7_f6fb_517c;
const FP_MLP20: u64 = 0x56a7_b8c8_3e61_41c3;
const FP_CNN: u64 = 0xb918_1933_cd83_5d8e;
const FP_CNN12: u64 = 0x2b21_b5fb_a111_cbda;

/// The builders' initial networks, pinned: a change in the order of the random draws, the
/// layers or their names changes these fingerprints. The values were printed by this
/// function for the builders of commit 3bb2937, which still converted the sequential
/// `Model::mlp` / `Model::small_cnn` into chains; today's builders draw the same weights.
#[test]
fn builders_draw_the_pinned_initial_weights() {
    let cases = [
        (
            "mlp 784-512-256-10 seed 42",
            Graph::mlp(&[784, 512, 256, 10], 42),
            FP_MLP784,
        ),
        ("mlp 20-64-4 seed 7", Graph::mlp(&[20, 64, 4], 7), FP_MLP20),
        (
            "small cnn 1x28x28 seed 42",
            Graph::small_cnn(&[1, 28, 28], 10, 42),
            FP_CNN,
        ),
        (
            "small cnn 3x12x12 seed 3",
            Graph::small_cnn(&[3, 12, 12], 5, 3),
            FP_CNN12,
        ),
    ];
    for (what, g, want) in cases {
        let got = fingerprint(&g.unwrap());
        assert_eq!(got, want, "{what}: fingerprint {got:#018x}");
    }
}

fn small_resnet(seed: u64) -> Graph {
    let mut g = Graph::resnet(8, InputSpec::identity(vec![1, 12, 12]), 5, seed).unwrap();
    // Non-trivial BatchNorm parameters and statistics, so that a removal that cut the wrong
    // entries would show.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let names: Vec<String> = g.params().iter().map(|p| p.name.clone()).collect();
    for name in names {
        let v = g.param_mut(&name).unwrap();
        if name.ends_with("running_var") {
            v.iter_mut().for_each(|x| *x = rng.random_range(0.5..2.0));
        } else if name.ends_with("running_mean")
            || (name.contains("bn") || name.contains("downsample.1")) && name.ends_with("bias")
        {
            v.iter_mut().for_each(|x| *x = rng.random_range(-0.5..0.5));
        }
    }
    g
}

/// The ResNet's groups: the stem and each stage's residual stream are one group each
/// (stream 2 and 3 with their downsample convs), every block's inner channels another; the
/// classifier's outputs are fixed.
#[test]
fn resnet_channel_groups_follow_the_residual_streams() {
    let g = small_resnet(1);
    let groups = g.channel_groups();
    let prunable: Vec<_> = groups.iter().filter(|gr| gr.prunable()).collect();
    // ResNet-8: one block per stage → 3 inner groups + 3 streams.
    assert_eq!(
        prunable.len(),
        6,
        "{:#?}",
        groups
            .iter()
            .map(|g| (&g.name, &g.fixed))
            .collect::<Vec<_>>()
    );
    let stream1 = groups.iter().find(|gr| gr.name == "conv1").unwrap();
    let names = |ids: &[usize]| {
        ids.iter()
            .map(|&i| g.nodes()[i].name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&stream1.producers), ["conv1", "layer1.0.conv2"]);
    let stream2 = groups
        .iter()
        .find(|gr| gr.name == "layer2.0.conv2")
        .unwrap();
    assert_eq!(
        names(&stream2.producers),
        ["layer2.0.conv2", "layer2.0.downsample.0"]
    );
    assert_eq!(stream2.channels, 32);
    let fc = groups.iter().find(|gr| gr.name == "fc").unwrap();
    assert!(!fc.prunable());
}

/// Removing any subset of any group's channels leaves the eval-mode outputs equal to the
/// gated network's with those gates at 0, and the optimiser's moments and the gradients
/// move with their parameters.
#[test]
fn removal_by_plan_matches_zero_gates_and_moves_moments() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for trial in 0..12 {
        let mut g = small_resnet(trial);
        let batch = 3;
        let x: Vec<f32> = (0..batch * g.input_len())
            .map(|_| rng.sample::<f32, _>(StandardNormal))
            .collect();
        let y: Vec<u32> = (0..batch).map(|_| rng.random_range(0..5)).collect();
        // A few SGD steps make every moment non-zero.
        let mut opt = GraphOptimizer::new(OptimizerConfig::sgd(0.05, 0.9), &g).unwrap();
        let mut ws = GraphWorkspace::new(&g, batch);
        let mut grads = GraphGrads::new(&g);
        for _ in 0..2 {
            g.loss_and_grad(&mut ws, &x, &y, Mode::Train, &mut grads)
                .unwrap();
            opt.step(&mut g, &grads).unwrap();
        }
        let groups: Vec<_> = g
            .channel_groups()
            .into_iter()
            .filter(|gr| gr.prunable())
            .collect();
        let group = &groups[rng.random_range(0..groups.len())];
        let keep: Vec<usize> = (0..group.channels)
            .filter(|_| rng.random_bool(0.6))
            .collect();
        let keep = if keep.is_empty() { vec![0] } else { keep };
        let gate = &g.params()[group.gate.unwrap()].name.clone();
        let mut zeroed = g.clone();
        let s = zeroed.param_mut(gate).unwrap();
        for (c, v) in s.iter_mut().enumerate() {
            if !keep.contains(&c) {
                *v = 0.0;
            }
        }
        let reference = zeroed.predict(&x, batch).unwrap();
        let producer = format!("{}.weight", g.nodes()[group.producers[0]].name);
        let pid = g.params().iter().position(|p| p.name == producer).unwrap();
        let moment_before = opt.first_moments()[pid].clone();
        let grad_before = grads.values()[pid].clone();
        let plan = RemovalPlan::new(&g, group, keep.clone()).unwrap();
        let mut cut = zeroed.clone();
        cut.remove_channels(&plan).unwrap();
        opt.remove_channels(&plan).unwrap();
        grads.remove_channels(&plan).unwrap();
        let out = cut.predict(&x, batch).unwrap();
        let scale = reference.amax().max(1.0);
        assert!(
            (out - &reference).amax() <= 1e-5 * scale,
            "trial {trial}, group {}",
            group.name
        );
        for (r, &k) in keep.iter().enumerate() {
            assert_eq!(opt.first_moments()[pid].row(r), moment_before.row(k));
            assert_eq!(grads.values()[pid].row(r), grad_before.row(k));
        }
        // The cut graph, its gradients and its optimiser still fit together.
        let mut ws = GraphWorkspace::new(&cut, batch);
        cut.loss_and_grad(&mut ws, &x, &y, Mode::Train, &mut grads)
            .unwrap();
        opt.step(&mut cut, &grads).unwrap();
    }
}

/// Folding gates into BatchNorm or the producer before them changes no output, and leaves
/// every gate at 1.
#[test]
fn folding_gates_keeps_outputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut g = small_resnet(3);
    let names: Vec<String> = g
        .params()
        .iter()
        .filter(|p| p.kind == ParamKind::Gate)
        .map(|p| p.name.clone())
        .collect();
    for n in names {
        g.param_mut(&n)
            .unwrap()
            .iter_mut()
            .for_each(|v| *v = rng.random_range(0.0..1.0));
    }
    let x: Vec<f32> = (0..2 * g.input_len())
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect();
    let before = g.predict(&x, 2).unwrap();
    g.fold_gates().unwrap();
    let after = g.predict(&x, 2).unwrap();
    assert!((after - &before).amax() <= 1e-5 * before.amax().max(1.0));
    assert!(g
        .params()
        .iter()
        .filter(|p| p.kind == ParamKind::Gate)
        .all(|p| p.value.iter().all(|&v| v == 1.0)));
}

/// Plans refuse what they cannot do, by name.
#[test]
fn plans_refuse_fixed_groups_and_bad_channel_lists() {
    let g = small_resnet(2);
    let groups = g.channel_groups();
    let fc = groups.iter().find(|gr| gr.name == "fc").unwrap();
    let e = RemovalPlan::new(&g, fc, vec![0]).unwrap_err().to_string();
    assert!(e.contains("fc") && e.contains("outputs"), "{e}");
    let inner = groups
        .iter()
        .find(|gr| gr.name == "layer1.0.conv1")
        .unwrap();
    for keep in [vec![], vec![2, 1], vec![0, 16]] {
        let e = RemovalPlan::new(&g, inner, keep.clone())
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer1.0.conv1"), "{keep:?}: {e}");
    }
}
