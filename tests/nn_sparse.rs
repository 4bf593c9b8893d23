//! The sparse path: CSR layers agree with the dense kernels, the CSR model file round-trips
//! bit for bit and refuses hostile files by tensor name, and — where torch is installed —
//! PyTorch loads the CSR file strictly through `python/pruning_game_torch.py`.
//!
//! Tolerance: the sparse kernels add each output's products in column order, the dense
//! GEMMs in blocks, so the two differ by f32 rounding (about 1e-7 relative per product, a few
//! hundred products per output, a handful of layers); `1e-5 · (1 + |dense|)` is well above
//! that and far below any indexing mistake, which moves a logit by the size of a weight.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use common::random_gates;
use nalgebra::DMatrix;
use proptest::prelude::*;
use pruning_game::nn::graph::{Conv, Dense, Flatten, Graph, Node, Op, Param, ParamKind};
use pruning_game::nn::sparse::{export_csr, from_csr_bytes, load_csr, Csr, SparseModel};
use pruning_game::nn::InputSpec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// Zeroes each Linear/Conv weight entry with probability `p`; when `0 < p < 1`, every
/// fifth row (unit or filter) is zeroed whole as well, so empty rows are covered.
fn sparsify(g: &mut Graph, p: f64, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let weights: Vec<(String, usize)> = g
        .nodes()
        .iter()
        .filter_map(|n| match &n.op {
            Op::Linear(d) => Some(d.weight),
            Op::Conv2d(c) => Some(c.weight),
            _ => None,
        })
        .map(|w| (g.params()[w].name.clone(), g.params()[w].value.nrows()))
        .collect();
    for (name, rows) in weights {
        let v = g.param_mut(&name).unwrap();
        for (k, x) in v.iter_mut().enumerate() {
            let empty_row = p > 0.0 && p < 1.0 && (k % rows) % 5 == 0;
            if empty_row || rng.random_bool(p) {
                *x = 0.0;
            }
        }
    }
}

fn inputs(g: &Graph, batch: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..batch * g.input_len())
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// Random biases and BatchNorm statistics, so that every parameter matters.
fn perturb(g: &mut Graph, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let names: Vec<String> = g.params().iter().map(|p| p.name.clone()).collect();
    for name in names {
        let v = g.param_mut(&name).unwrap();
        if name.ends_with("running_var") {
            v.iter_mut().for_each(|x| *x = rng.random_range(0.3..1.5));
        } else if name.ends_with("running_mean") || name.ends_with(".bias") {
            v.iter_mut().for_each(|x| *x = rng.random_range(-0.3..0.3));
        }
    }
}

/// conv (k, stride, pad) → flatten → linear, to cover geometries the builders do not.
fn conv_graph(c: usize, hw: usize, o: usize, k: usize, stride: usize, pad: usize) -> Graph {
    let mut rng = ChaCha8Rng::seed_from_u64((c * 1000 + k * 100 + stride * 10 + pad) as u64);
    let mut m = |r: usize, cc: usize| DMatrix::from_fn(r, cc, |_, _| rng.random_range(-0.5..0.5));
    let ho = (hw + 2 * pad - k) / stride + 1;
    let params = vec![
        Param {
            name: "0.weight".into(),
            kind: ParamKind::Weight,
            value: m(o, c * k * k),
        },
        Param {
            name: "0.bias".into(),
            kind: ParamKind::Weight,
            value: m(o, 1),
        },
        Param {
            name: "2.weight".into(),
            kind: ParamKind::Weight,
            value: m(5, o * ho * ho),
        },
    ];
    let nodes = vec![
        Node {
            name: "input".into(),
            op: Op::Input,
            inputs: vec![],
        },
        Node {
            name: "0".into(),
            op: Op::Conv2d(Conv {
                weight: 0,
                bias: Some(1),
                kernel: k,
                stride,
                padding: pad,
            }),
            inputs: vec![0],
        },
        Node {
            name: "1".into(),
            op: Op::Flatten(Flatten),
            inputs: vec![1],
        },
        Node {
            name: "2".into(),
            op: Op::Linear(Dense {
                weight: 2,
                bias: None,
            }),
            inputs: vec![2],
        },
    ];
    Graph::new(InputSpec::identity(vec![c, hw, hw]), nodes, params).unwrap()
}

/// Every architecture the tests run: MLP, small CNN, BN-CNN, ResNet-8 and odd conv shapes.
fn graphs(seed: u64) -> Vec<(&'static str, Graph)> {
    let fm = InputSpec::fashion_mnist();
    let mut out = vec![
        ("mlp", Graph::mlp(&[784, 96, 48, 10], seed).unwrap()),
        ("cnn", Graph::small_cnn(&[1, 28, 28], 10, seed).unwrap()),
        (
            "bn-cnn",
            Graph::bn_cnn(fm.clone(), &[8, 16], 10, seed).unwrap(),
        ),
        ("resnet8", Graph::resnet(8, fm, 10, seed).unwrap()),
        ("conv k5 s3 p2", conv_graph(3, 11, 4, 5, 3, 2)),
        ("conv k3 s2 p0", conv_graph(2, 9, 6, 3, 2, 0)),
        ("conv k1 s1 p1", conv_graph(2, 5, 3, 1, 1, 1)),
        ("conv k3 s1 p3", conv_graph(2, 4, 3, 3, 1, 3)),
    ];
    for (_, g) in &mut out {
        perturb(g, seed);
    }
    out
}

fn assert_close(a: &DMatrix<f32>, b: &DMatrix<f32>, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}");
    let worst = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1e-5,
        "{what}: sparse and dense differ by {worst:e}"
    );
}

#[test]
fn sparse_and_dense_paths_agree_at_every_sparsity() {
    for (name, base) in graphs(3) {
        for (si, &p) in [0.0, 0.5, 0.9, 0.98, 1.0].iter().enumerate() {
            let mut g = base.clone();
            sparsify(&mut g, p, 10 + si as u64);
            if si == 2 {
                random_gates(&mut g, 5); // gate nodes run as dense ops on both paths
            }
            let m = SparseModel::with_break_even(&g, f64::INFINITY, f64::INFINITY).unwrap();
            assert!(
                !m.layers().is_empty() && m.layers().iter().all(|l| l.sparse),
                "{name}: every layer must run sparse here"
            );
            for batch in [1, 3, 4, 9] {
                let x = inputs(&g, batch, 7 + batch as u64);
                let dense = g.predict(&x, batch).unwrap();
                let sparse = m.predict(&x, batch).unwrap();
                assert_close(&sparse, &dense, &format!("{name} p={p} batch={batch}"));
            }
        }
    }
}

#[test]
fn layers_go_sparse_below_their_break_even_density() {
    let mut g = Graph::mlp(&[64, 32, 16, 10], 1).unwrap();
    // Layer 0 at 98% zeros, layer 2 dense, layer 4 all zero.
    for (name, p) in [("0.weight", 0.98), ("4.weight", 1.0)] {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for v in g.param_mut(name).unwrap() {
            if rng.random_bool(p) {
                *v = 0.0;
            }
        }
    }
    let m = SparseModel::new(&g).unwrap();
    assert_eq!(m.sparse_layers(), vec!["0", "4"]);
    let l = &m.layers()[0];
    assert!(l.density < 0.05 && l.kind == "linear", "{l:?}");
    assert!((m.layers()[1].density - 1.0).abs() < 1e-12);
    assert_eq!(m.layers()[2].density, 0.0);
    let none = SparseModel::with_break_even(&g, 0.0, 0.0).unwrap();
    assert!(none.sparse_layers().is_empty());
    let x = inputs(&g, 2, 4);
    assert_close(
        &m.predict(&x, 2).unwrap(),
        &g.predict(&x, 2).unwrap(),
        "auto",
    );
    assert!(SparseModel::with_break_even(&g, f64::NAN, 0.1).is_err());
}

#[test]
fn csr_matches_the_dense_matrix_and_checks_its_parts() {
    let w = DMatrix::from_row_slice(3, 4, &[0., 1., 0., 2., 0., 0., 0., 0., -3., 0., 4., -0.]);
    // The −0.0 at (2, 3) is kept for the file and dropped for the kernels.
    let exact = Csr::from_dense(&w).unwrap();
    assert_eq!(exact.indptr(), &[0, 2, 2, 5]);
    assert_eq!(exact.to_dense().map(f32::to_bits), w.map(f32::to_bits));
    let c = Csr::from_dense_nonzero(&w).unwrap();
    assert_eq!(c.indptr(), &[0, 2, 2, 4]);
    assert_eq!(c.indices(), &[1, 3, 0, 2]);
    assert_eq!(c.values(), &[1., 2., -3., 4.]);
    assert_eq!(c.to_dense(), w);
    let row_major: Vec<f32> = (0..3)
        .flat_map(|r| (0..4).map(move |k| (r, k)))
        .map(|(r, k)| w[(r, k)])
        .collect();
    assert_eq!(Csr::from_row_major(3, 4, &row_major).unwrap(), exact);
    assert!(Csr::from_row_major(3, 5, &row_major).is_err());
    let part = |indptr: Vec<usize>, indices: Vec<u32>, values: Vec<f32>| {
        Csr::from_parts(3, 4, indptr, indices, values)
            .map(|_| ())
            .map_err(|e| e.part)
    };
    assert_eq!(
        part(vec![0, 2, 2, 4], vec![1, 3, 0, 2], vec![1., 2., 3., 4.]),
        Ok(())
    );
    assert_eq!(
        part(vec![0, 2, 4], vec![1, 3, 0, 2], vec![1.; 4]),
        Err("indptr")
    );
    assert_eq!(
        part(vec![0, 3, 2, 4], vec![1, 3, 0, 2], vec![1.; 4]),
        Err("indptr")
    );
    assert_eq!(
        part(vec![0, 9, 2, 4], vec![1, 3, 0, 2], vec![1.; 4]),
        Err("indptr")
    );
    assert_eq!(
        part(vec![1, 2, 2, 4], vec![1, 3, 0, 2], vec![1.; 4]),
        Err("indptr")
    );
    assert_eq!(
        part(vec![0, 2, 2, 4], vec![1, 4, 0, 2], vec![1.; 4]),
        Err("indices")
    );
    assert_eq!(
        part(vec![0, 2, 2, 4], vec![3, 1, 0, 2], vec![1.; 4]),
        Err("indices")
    );
    assert_eq!(
        part(vec![0, 2, 2, 4], vec![1, 1, 0, 2], vec![1.; 4]),
        Err("indices")
    );
    assert_eq!(
        part(vec![0, 2, 2, 4], vec![1, 3, 0, 2], vec![1.; 3]),
        Err("values")
    );
    let nan = vec![1., f32::NAN, 1., 1.];
    assert_eq!(part(vec![0, 2, 2, 4], vec![1, 3, 0, 2], nan), Err("values"));
    let wide = Csr::from_parts(1, u32::MAX as usize + 1, vec![0, 0], vec![], vec![]);
    assert_eq!(wide.map_err(|e| e.part), Err("shape"));
}

/// Parameters' names and exact bits.
fn bits(g: &Graph) -> Vec<(String, Vec<u32>)> {
    g.params()
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.value.iter().map(|v| v.to_bits()).collect(),
            )
        })
        .collect()
}

#[test]
fn csr_files_round_trip_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    for (name, base) in graphs(5) {
        for &p in &[0.0, 0.9, 1.0] {
            let mut g = base.clone();
            sparsify(&mut g, p, 3);
            random_gates(&mut g, 9); // folded into the weights, as in the dense export
            let (csr, dense) = (dir.path().join("m.csr"), dir.path().join("m.st"));
            let written = export_csr(&g, &csr).unwrap();
            assert_eq!(written, std::fs::metadata(&csr).unwrap().len());
            g.export(&dense).unwrap();
            let want = Graph::load(&dense).unwrap();
            let got = load_csr(&csr).unwrap();
            assert_eq!(got.nodes(), want.nodes(), "{name} p={p}");
            assert_eq!(got.input(), want.input(), "{name} p={p}");
            assert_eq!(bits(&got), bits(&want), "{name} p={p}");
            if p >= 0.9 && (name == "mlp" || name == "cnn") {
                let sizes = (written, std::fs::metadata(&dense).unwrap().len());
                assert!(
                    sizes.0 < sizes.1 / 3,
                    "{name} p={p}: CSR {} vs dense {}",
                    sizes.0,
                    sizes.1
                );
            }
            // Writing again gives the same bytes.
            let first = std::fs::read(&csr).unwrap();
            export_csr(&got, &csr).unwrap();
            assert_eq!(std::fs::read(&csr).unwrap(), first, "{name} p={p}");
        }
    }
}

type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn unpack(bytes: &[u8]) -> (Tensors, HashMap<String, String>) {
    let (_, meta) = SafeTensors::read_metadata(bytes).unwrap();
    let meta = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes).unwrap();
    let mut t: Tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    (t, meta)
}

fn pack(t: &Tensors, meta: HashMap<String, String>) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = t
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, Some(meta)).unwrap()
}

fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn set(t: &mut Tensors, name: &str, dtype: Dtype, shape: Vec<usize>, data: Vec<u8>) {
    let e = t.iter_mut().find(|e| e.0 == name).unwrap();
    *e = (name.to_string(), dtype, shape, data);
}

/// A small MLP's CSR file, sparse enough that every row has a few entries or none.
fn small_csr_file() -> Vec<u8> {
    let mut g = Graph::mlp(&[6, 4, 3], 2).unwrap();
    g.param_mut("0.weight").unwrap().copy_from_slice(&[
        // column-major [4, 6]: row 0 reads 1 and 4, row 1 none, row 2 reads 0, 2, 5, row 3 reads 3
        0., 0., 1., 0., 2., 0., 0., 0., 0., 0., 3., 0., 0., 0., 0., 4., 5., 0., 0., 0., 0., 0., 6.,
        0.,
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.csr");
    export_csr(&g, &path).unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn hostile_csr_files_are_refused_by_tensor_name() {
    let good = small_csr_file();
    let path = Path::new("/data/hostile.csr.safetensors");
    let refuse = |bytes: &[u8]| -> String {
        let e = from_csr_bytes(bytes, path).unwrap_err().to_string();
        assert!(e.contains("hostile.csr.safetensors"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        e
    };
    let g = from_csr_bytes(&good, path).unwrap();
    let ip = g.param("0.weight").unwrap();
    assert_eq!(
        Csr::from_dense(&ip.value).unwrap().indptr(),
        &[0, 2, 2, 5, 6]
    );
    let (t, meta) = unpack(&good);
    type Edit = Box<dyn Fn(&mut Tensors, &mut HashMap<String, String>)>;
    let ip_ = |v: &'static [i64]| -> Edit {
        Box::new(move |t, _| set(t, "0.weight.indptr", Dtype::I64, vec![v.len()], i64s(v)))
    };
    let cases: Vec<(&str, &str, Edit)> = vec![
        ("not monotone", "0.weight.indptr", ip_(&[0, 2, 1, 5, 6])),
        ("wrong length", "0.weight.indptr", ip_(&[0, 2, 5, 6])),
        ("not from 0", "0.weight.indptr", ip_(&[1, 2, 2, 5, 6])),
        ("not to nnz", "0.weight.indptr", ip_(&[0, 2, 2, 5, 5])),
        ("past the end", "0.weight.indptr", ip_(&[0, 2, 9, 5, 6])),
        ("negative", "0.weight.indptr", ip_(&[0, 2, -1, 5, 6])),
        (
            "index out of range",
            "0.weight.indices",
            Box::new(|t, _| {
                set(
                    t,
                    "0.weight.indices",
                    Dtype::U32,
                    vec![6],
                    u32s(&[1, 6, 0, 2, 5, 3]),
                )
            }),
        ),
        (
            "unsorted row",
            "0.weight.indices",
            Box::new(|t, _| {
                set(
                    t,
                    "0.weight.indices",
                    Dtype::U32,
                    vec![6],
                    u32s(&[4, 1, 0, 2, 5, 3]),
                )
            }),
        ),
        (
            "duplicate in a row",
            "0.weight.indices",
            Box::new(|t, _| {
                set(
                    t,
                    "0.weight.indices",
                    Dtype::U32,
                    vec![6],
                    u32s(&[1, 4, 0, 2, 2, 3]),
                )
            }),
        ),
        (
            "indices as i64",
            "0.weight.indices",
            Box::new(|t, _| {
                set(
                    t,
                    "0.weight.indices",
                    Dtype::I64,
                    vec![6],
                    i64s(&[1, 4, 0, 2, 5, 3]),
                )
            }),
        ),
        (
            "NaN value",
            "0.weight.values",
            Box::new(|t, _| {
                set(
                    t,
                    "0.weight.values",
                    Dtype::F32,
                    vec![6],
                    f32s(&[1., 2., f32::NAN, 4., 5., 6.]),
                )
            }),
        ),
        (
            "infinite value",
            "0.weight.values",
            Box::new(|t, _| {
                set(
                    t,
                    "0.weight.values",
                    Dtype::F32,
                    vec![6],
                    f32s(&[1., 2., 3., f32::INFINITY, 5., 6.]),
                )
            }),
        ),
        (
            "lengths disagree",
            "0.weight.values",
            Box::new(|t, _| {
                set(
                    t,
                    "0.weight.values",
                    Dtype::F32,
                    vec![5],
                    f32s(&[1., 2., 3., 4., 5.]),
                )
            }),
        ),
        (
            "shape mismatch",
            "0.weight.shape",
            Box::new(|t, _| set(t, "0.weight.shape", Dtype::I64, vec![2], i64s(&[4, 7]))),
        ),
        (
            "shape rank",
            "0.weight.shape",
            Box::new(|t, _| set(t, "0.weight.shape", Dtype::I64, vec![3], i64s(&[4, 6, 1]))),
        ),
        (
            "missing indices",
            "0.weight.indices",
            Box::new(|t, _| t.retain(|e| e.0 != "0.weight.indices")),
        ),
        (
            "dense and CSR",
            "0.weight",
            Box::new(|t, _| t.push(("0.weight".into(), Dtype::F32, vec![4, 6], f32s(&[0.; 24])))),
        ),
        (
            "not a weight",
            "0.bias.weight.indptr",
            Box::new(|t, _| {
                t.push((
                    "0.bias.weight.indptr".into(),
                    Dtype::I64,
                    vec![1],
                    i64s(&[0]),
                ))
            }),
        ),
        (
            "huge claimed width",
            "2.weight",
            Box::new(|t, m| {
                let width = 1i64 << 40;
                let arch = m["architecture"].replace("\"in\":4", &format!("\"in\":{width}"));
                m.insert("architecture".into(), arch);
                set(t, "2.weight.shape", Dtype::I64, vec![2], i64s(&[3, width]));
            }),
        ),
        (
            "not a CSR file",
            "sparse_layout",
            Box::new(|_, m| {
                m.remove("sparse_layout");
            }),
        ),
    ];
    for (what, tensor, edit) in cases {
        let (mut t2, mut m2) = (t.clone(), meta.clone());
        edit(&mut t2, &mut m2);
        let e = refuse(&pack(&t2, m2));
        assert!(e.contains(tensor), "{what}: {e}");
    }
    assert!(refuse(&good[..good.len() / 2]).contains("safetensors"));
}

#[test]
fn the_reader_survives_random_corruption() {
    let good = small_csr_file();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let path = Path::new("fuzzed.csr");
    for _ in 0..3000 {
        let mut b = good.clone();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..b.len());
            b[i] = rng.random();
        }
        if let Err(e) = from_csr_bytes(&b, path) {
            assert!(e.to_string().contains("fuzzed.csr"), "{e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random sizes and sparsity patterns: the CSR copy is the matrix, the sparse path
    /// matches the dense one and the file round-trips.
    #[test]
    fn random_patterns_agree(
        rows in 1usize..24,
        cols in 1usize..40,
        density in 0.0f64..1.0,
        batch in 1usize..10,
        seed in 0u64..1000,
    ) {
        let mut g = Graph::mlp(&[cols, rows, 3], seed).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for name in ["0.weight", "2.weight"] {
            for v in g.param_mut(name).unwrap() {
                if !rng.random_bool(density) {
                    *v = 0.0;
                }
            }
        }
        let w = &g.param("0.weight").unwrap().value;
        prop_assert_eq!(&Csr::from_dense(w).unwrap().to_dense(), w);
        let m = SparseModel::with_break_even(&g, f64::INFINITY, f64::INFINITY).unwrap();
        let x = inputs(&g, batch, seed + 1);
        let (d, s) = (g.predict(&x, batch).unwrap(), m.predict(&x, batch).unwrap());
        let worst = s.iter().zip(d.iter()).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0f32, f32::max);
        prop_assert!(worst <= 1e-5, "differ by {}", worst);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csr");
        export_csr(&g, &path).unwrap();
        let dense = dir.path().join("p.st");
        g.export(&dense).unwrap();
        prop_assert_eq!(bits(&load_csr(&path).unwrap()), bits(&Graph::load(&dense).unwrap()));
    }
}

fn torch_available() -> bool {
    Command::new("python3")
        .args(["-c", "import torch, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// PyTorch reads the CSR file into a dense `state_dict`, loads it with `strict=True` and
/// computes the same eval-mode logits. CI installs torch; elsewhere the test says it skipped.
#[test]
fn csr_files_load_strictly_in_pytorch() {
    if !torch_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install torch for this check"
        );
        eprintln!("torch is not installed: skipped the PyTorch check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import os, sys
import numpy as np
import torch
sys.path.insert(0, os.path.join(sys.argv[1], "python"))
import pruning_game_torch as pgt
d = sys.argv[2]
model, spec = pgt.load_csr(os.path.join(d, "model.csr.safetensors"))
x = torch.from_numpy(np.fromfile(os.path.join(d, "inputs.f32"), dtype="<f4"))
want = torch.from_numpy(np.fromfile(os.path.join(d, "logits.f32"), dtype="<f4"))
torch.set_num_threads(1)
with torch.no_grad():
    got = model(x.reshape([-1] + list(spec["shape"]))).reshape(-1)
err = (got - want).abs().max().item()
scale = max(1.0, want.abs().max().item())
print(f"max |torch - rust| = {err:.3g} (scale {scale:.3g})")
sys.exit(0 if err <= 1e-4 * scale else 1)
"#;
    for (i, (name, mut g)) in graphs(8).into_iter().take(4).enumerate() {
        sparsify(&mut g, 0.9, 20 + i as u64);
        let case = dir.path().join(i.to_string());
        std::fs::create_dir_all(&case).unwrap();
        export_csr(&g, &case.join("model.csr.safetensors")).unwrap();
        let x = inputs(&g, 4, 30 + i as u64);
        let logits = g.predict(&x, 4).unwrap().transpose(); // row-major [batch, classes]
        std::fs::write(case.join("inputs.f32"), f32s(&x)).unwrap();
        std::fs::write(case.join("logits.f32"), f32s(logits.as_slice())).unwrap();
        let out = Command::new("python3")
            .args(["-c", script, env!("CARGO_MANIFEST_DIR")])
            .arg(&case)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
