//! BatchNorm folded into the conv or linear layer before it: BN-CNNs, ResNet-8s and an MLP
//! with BatchNorm1d, with random weights, biases, gates, `γ`, `β`, running statistics and `ε`,
//! compute the same evaluation-mode logits folded as unfolded, lose every BatchNorm that sits
//! alone after a producer, and export files that load back to the same logits. BatchNorms
//! after a shared producer or after an add stay.
//!
//! Tolerance: `|folded − original| ≤ 1e-5 · max(1, max |logit|)`. Both run in f32 in the same
//! summation order; the fold only changes where rounding happens (each weight is rounded once
//! more after its scale `a`, the bias once instead of BatchNorm's subtract, multiply and add),
//! a few units of 6e-8 relative per layer, carried through at most ten layers of O(1) gain:
//! about 1e-6 (the largest seen over these tests is 4.5e-7). A wrong fold is well outside it:
//! `ε` is drawn up to 0.1 against variances from [0.5, 2], so a fold that drops `ε` misses by
//! 1e-4 to 1e-2, and a missed mean, sign or `σ²` for `σ` by more.

mod common;

use nalgebra::DMatrix;
use proptest::prelude::*;
use pruning_game::nn::graph::{
    Add, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Graph, Node, NodeId, Op, Param, ParamKind,
    Relu,
};
use pruning_game::nn::InputSpec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

const TOL: f32 = 1e-5;

/// `g` with BatchNorm `γ` (either sign), `β`, running means and variances in [0.5, 2], `ε`
/// in [1e-5, 0.1], producer biases and gates (a quarter at 0) all drawn from `seed`.
fn randomised(g: &Graph, seed: u64) -> Graph {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut nodes = g.nodes().to_vec();
    let mut params = g.params().to_vec();
    let mut fill = |p: usize, rng: &mut ChaCha8Rng, f: &dyn Fn(&mut ChaCha8Rng) -> f32| {
        params[p].value.iter_mut().for_each(|v| *v = f(rng));
    };
    let signed =
        |r: &mut ChaCha8Rng| r.random_range(0.5..1.5f32) * [-1.0, 1.0][r.random_range(0..2)];
    for n in nodes.iter_mut() {
        match &mut n.op {
            Op::BatchNorm(b) => {
                b.eps = 10f32.powf(rng.random_range(-5.0..-1.0));
                fill(b.weight, &mut rng, &signed);
                fill(b.bias, &mut rng, &|r| r.random_range(-0.5..0.5));
                fill(b.running_mean, &mut rng, &|r| r.random_range(-0.5..0.5));
                fill(b.running_var, &mut rng, &|r| r.random_range(0.5..2.0));
            }
            Op::Conv2d(Conv { bias: Some(b), .. }) | Op::Linear(Dense { bias: Some(b), .. }) => {
                fill(*b, &mut rng, &|r| r.random_range(-0.3..0.3));
            }
            _ => {}
        }
    }
    let mut g = Graph::new(g.input().clone(), nodes, params).unwrap();
    common::random_gates(&mut g, seed ^ 1);
    g
}

fn batch_norms(g: &Graph) -> usize {
    g.nodes()
        .iter()
        .filter(|n| matches!(n.op, Op::BatchNorm(_)))
        .count()
}

/// The BatchNorms that can fold, and how many of their producers have no bias.
fn foldable(g: &Graph) -> (usize, usize) {
    let readers = g.consumers();
    let (mut folds, mut biasless) = (0, 0);
    for n in g.nodes() {
        let Op::BatchNorm(_) = n.op else { continue };
        let p = n.inputs[0];
        let bias = match &g.nodes()[p].op {
            Op::Conv2d(c) => c.bias,
            Op::Linear(d) => d.bias,
            _ => continue,
        };
        if readers[p].len() == 1 {
            folds += 1;
            biasless += usize::from(bias.is_none());
        }
    }
    (folds, biasless)
}

fn inputs(g: &Graph, batch: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..batch * g.input_len())
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// Folds `g` and checks the logits, what was folded, the parameter list and the export.
/// Returns the folded graph.
fn check_fold(g: &Graph, seed: u64) -> Result<Graph, TestCaseError> {
    let x = inputs(g, 3, seed);
    let want = g.predict(&x, 3).unwrap();
    let folded = g.fold_batchnorm().unwrap();
    let got = folded.predict(&x, 3).unwrap();
    let err = (&got - &want).amax();
    let scale = want.amax().max(1.0);
    prop_assert!(err <= TOL * scale, "max error {err} at scale {scale}");

    let (folds, biasless) = foldable(g);
    prop_assert!(folds > 0, "nothing to fold in this graph");
    prop_assert_eq!(batch_norms(&folded), batch_norms(g) - folds);
    prop_assert!(!folded.has_gates());
    let gates = g
        .params()
        .iter()
        .filter(|p| p.kind == ParamKind::Gate)
        .count();
    // Each fold drops γ, β and both statistics and adds a bias where the producer had none.
    let expected = g.params().len() - gates - 4 * folds + biasless;
    prop_assert_eq!(folded.params().len(), expected);
    prop_assert!(folded.params().len() < g.params().len());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("folded.safetensors");
    folded.export(&path).unwrap();
    let back = Graph::load(&path).unwrap();
    prop_assert_eq!(back.params().len(), folded.params().len());
    prop_assert_eq!(back.predict(&x, 3).unwrap(), got);
    Ok(folded)
}

/// Nodes and PyTorch-named parameters of a hand-built graph.
struct Net {
    nodes: Vec<Node>,
    params: Vec<Param>,
    rng: ChaCha8Rng,
}

impl Net {
    fn new(seed: u64) -> Self {
        let input = Node {
            name: "input".into(),
            op: Op::Input,
            inputs: vec![],
        };
        Net {
            nodes: vec![input],
            params: vec![],
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
    fn param(&mut self, name: String, kind: ParamKind, value: DMatrix<f32>) -> usize {
        self.params.push(Param { name, kind, value });
        self.params.len() - 1
    }
    fn node(&mut self, name: &str, op: Op, inputs: &[NodeId]) -> NodeId {
        let inputs = inputs.to_vec();
        let name = name.to_string();
        self.nodes.push(Node { name, op, inputs });
        self.nodes.len() - 1
    }
    fn weight(
        &mut self,
        name: &str,
        rows: usize,
        cols: usize,
        bias: bool,
    ) -> (usize, Option<usize>) {
        let s = 1.0 / (cols as f32).sqrt();
        let rng = &mut self.rng;
        let w = DMatrix::from_fn(rows, cols, |_, _| rng.sample::<f32, _>(StandardNormal) * s);
        let w = self.param(format!("{name}.weight"), ParamKind::Weight, w);
        let b = bias.then(|| {
            self.param(
                format!("{name}.bias"),
                ParamKind::Weight,
                DMatrix::zeros(rows, 1),
            )
        });
        (w, b)
    }
    fn linear(&mut self, name: &str, at: NodeId, i: usize, o: usize, bias: bool) -> NodeId {
        let (weight, bias) = self.weight(name, o, i, bias);
        self.node(name, Op::Linear(Dense { weight, bias }), &[at])
    }
    fn conv(&mut self, name: &str, at: NodeId, c: usize, o: usize, bias: bool) -> NodeId {
        let (weight, bias) = self.weight(name, o, c * 9, bias);
        let op = Op::Conv2d(Conv {
            weight,
            bias,
            kernel: 3,
            stride: 1,
            padding: 1,
        });
        self.node(name, op, &[at])
    }
    fn batch_norm(&mut self, name: &str, at: NodeId, c: usize) -> NodeId {
        let mut v =
            |suffix: &str, kind| self.param(format!("{name}.{suffix}"), kind, DMatrix::zeros(c, 1));
        let op = Op::BatchNorm(BatchNorm {
            weight: v("weight", ParamKind::Weight),
            bias: v("bias", ParamKind::Weight),
            running_mean: v("running_mean", ParamKind::Buffer),
            running_var: v("running_var", ParamKind::Buffer),
            eps: 1e-5,
            momentum: 0.1,
            batches_tracked: 0,
        });
        self.node(name, op, &[at])
    }
    fn finish(self, shape: Vec<usize>, seed: u64) -> Graph {
        let g = Graph::new(InputSpec::identity(shape), self.nodes, self.params).unwrap();
        randomised(&g, seed)
    }
}

/// An MLP with BatchNorm1d after each hidden linear layer (the second without a bias), and
/// after the last one when `bn_out`, so that a BatchNorm producing the logits folds too.
fn bn_mlp(seed: u64, bn_out: bool) -> Graph {
    let mut n = Net::new(seed);
    let mut at = n.linear("0", 0, 6, 8, true);
    at = n.batch_norm("1", at, 8);
    at = n.node("2", Op::Relu(Relu), &[at]);
    at = n.linear("3", at, 8, 5, false);
    at = n.batch_norm("4", at, 5);
    at = n.node("5", Op::Relu(Relu), &[at]);
    at = n.linear("6", at, 5, 3, true);
    if bn_out {
        n.batch_norm("7", at, 3);
    }
    n.finish(vec![6], seed)
}

proptest! {
    #![proptest_config(common::cases(16))]

    #[test]
    fn folded_bn_cnns_compute_the_same_logits(
        seed in any::<u64>(),
        c in 1..=3usize,
        hw in 8..=12usize,
        widths in proptest::collection::vec(1..=6usize, 1..=3),
        classes in 2..=5usize,
    ) {
        let input = InputSpec::identity(vec![c, hw, hw]);
        let g = randomised(&Graph::bn_cnn(input, &widths, classes, seed).unwrap(), seed);
        let folded = check_fold(&g, seed)?;
        prop_assert_eq!(batch_norms(&folded), 0);
    }

    #[test]
    fn folded_resnets_compute_the_same_logits(
        seed in any::<u64>(),
        c in 1..=3usize,
        classes in 2..=5usize,
    ) {
        let input = InputSpec::identity(vec![c, 12, 12]);
        let g = randomised(&Graph::resnet(8, input, classes, seed).unwrap(), seed);
        let folded = check_fold(&g, seed)?;
        prop_assert_eq!(batch_norms(&folded), 0);
    }

    #[test]
    fn folded_bn_mlps_compute_the_same_logits(seed in any::<u64>(), bn_out in any::<bool>()) {
        let g = bn_mlp(seed, bn_out);
        let folded = check_fold(&g, seed)?;
        prop_assert_eq!(batch_norms(&folded), 0);
    }
}

/// A BatchNorm whose conv is also read by an add, and one after that add, stay; the
/// BatchNorm after a conv read by it alone folds; the outputs still match.
#[test]
fn batch_norms_after_a_shared_producer_or_an_add_stay() {
    for seed in 0..4 {
        let mut n = Net::new(seed);
        let a = n.conv("conv_a", 0, 2, 4, seed % 2 == 0);
        let bn_a = n.batch_norm("bn_a", a, 4);
        let sum = n.node("add", Op::Add(Add), &[bn_a, a]);
        let mut at = n.batch_norm("bn_b", sum, 4);
        at = n.node("relu", Op::Relu(Relu), &[at]);
        at = n.conv("conv_c", at, 4, 4, false);
        at = n.batch_norm("bn_c", at, 4);
        at = n.node("pool", Op::GlobalAvgPool(GlobalAvgPool), &[at]);
        at = n.node("flatten", Op::Flatten(Flatten), &[at]);
        n.linear("fc", at, 4, 3, true);
        let g = n.finish(vec![2, 6, 6], seed);
        assert_eq!(foldable(&g), (1, 1));
        let folded = check_fold(&g, seed).unwrap();
        let left: Vec<&str> = folded
            .nodes()
            .iter()
            .filter(|n| matches!(n.op, Op::BatchNorm(_)))
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(left, ["bn_a", "bn_b"]);
        assert!(folded.param("conv_c.bias").is_some());
    }
}
