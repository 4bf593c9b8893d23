//! Model structure: unit ids, save/load round trips, malformed files, gate folding and
//! structural removal (outputs preserved to 1e-5).

use std::path::Path;

use pruning_game::nn::{InputSpec, Layer, Model, UnitId, Workspace};
use pruning_game::Error;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Outputs of equivalent networks differ only by `f32` summation order.
const OUTPUT_TOL: f32 = 1e-5;

fn randn(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.sample(StandardNormal)).collect()
}

fn outputs(model: &Model, x: &[f32], batch: usize) -> Vec<f32> {
    let mut ws = Workspace::new(model, batch);
    model.forward(&mut ws, x, batch).expect("forward").to_vec()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn random_gates(model: &mut Model, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for l in model.gated_layers() {
        for s in model.gate_mut(l).expect("gated") {
            *s = if rng.random_bool(0.3) {
                0.0
            } else {
                rng.random_range(0.1..1.0)
            };
        }
    }
}

fn small_cnn() -> Model {
    Model::small_cnn(&[1, 12, 12], 4, 7).expect("valid cnn")
}

#[test]
fn nn_unit_ids_round_trip_and_cover_gated_layers() {
    let m = Model::mlp(&[6, 5, 4, 3], 1).expect("mlp");
    assert_eq!(m.gated_layers(), vec![0, 2]);
    let units = m.units();
    assert_eq!(units.len(), 9);
    let id: UnitId = "layer2.unit3".parse().expect("parses");
    assert_eq!(id, UnitId { layer: 2, unit: 3 });
    assert_eq!(id.to_string(), "layer2.unit3");
    assert!("layer2unit3".parse::<UnitId>().is_err());
    assert!(matches!(
        m.gate(1),
        Err(Error::NotPrunable { layer: 1, .. })
    ));
    assert!(matches!(
        m.gate(4),
        Err(Error::NotPrunable { layer: 4, .. })
    ));
    assert_eq!(m.unit_incoming(id).expect("unit").len(), 5);
    assert_eq!(m.unit_outgoing(id).expect("unit").len(), 3);
    let cnn = small_cnn();
    // Conv channel 5 of layer 3 feeds 5*5... here 1x1 positions after the second pool.
    let out = cnn
        .unit_outgoing(UnitId { layer: 3, unit: 5 })
        .expect("unit");
    let per = match cnn.shapes()[6] {
        pruning_game::nn::Shape::Image { h, w, .. } => h * w,
        _ => 0,
    };
    assert_eq!(out.len(), 128 * per);
}

#[test]
fn nn_save_load_round_trip_keeps_gates_and_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, mut m) in [Model::mlp(&[8, 6, 5, 3], 3).expect("mlp"), small_cnn()]
        .into_iter()
        .enumerate()
    {
        random_gates(&mut m, 10 + i as u64);
        let p = dir.path().join(format!("m{i}.safetensors"));
        m.save(&p).expect("save");
        let back = Model::load(&p).expect("load");
        assert_eq!(back, m);
        // Export: gates folded, none stored, same outputs.
        let e = dir.path().join(format!("e{i}.safetensors"));
        m.export(&e).expect("export");
        let plain = Model::load(&e).expect("load export");
        assert!(plain.gated_layers().is_empty());
        let x = randn(5, 4 * m.input_len());
        assert!(max_diff(&outputs(&m, &x, 4), &outputs(&plain, &x, 4)) < OUTPUT_TOL);
    }
}

#[test]
fn nn_export_uses_torch_names_layouts_and_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = small_cnn()
        .with_input(InputSpec {
            shape: vec![1, 12, 12],
            scale: 1.0 / 255.0,
            mean: 0.5,
            std: 0.25,
        })
        .expect("input");
    let p = dir.path().join("cnn.safetensors");
    m.save(&p).expect("save");
    let bytes = std::fs::read(&p).expect("read");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let mut names = st.names();
    names.sort();
    assert_eq!(
        names,
        vec![
            "0.bias", "0.gate", "0.weight", "3.bias", "3.gate", "3.weight", "7.bias", "7.gate",
            "7.weight", "9.bias", "9.weight"
        ]
    );
    assert_eq!(
        st.tensor("3.weight").expect("conv").shape(),
        &[64, 32, 3, 3]
    );
    assert_eq!(st.tensor("9.weight").expect("linear").shape(), &[4, 128]);
    // Row-major [out, in, kh, kw]: element (o=1, c=2, ky=0, kx=1) of layer 3.
    let w = st.tensor("3.weight").expect("conv");
    let (o, ch) = (1, 2);
    let off = ((o * 32 + ch) * 9 + 1) * 4;
    let v = f32::from_le_bytes(w.data()[off..off + 4].try_into().expect("4 bytes"));
    let Layer::Conv2d(c) = &m.layers()[3] else {
        panic!("layer 3 is conv")
    };
    assert!((v - c.weight()[(1, 2 * 9 + 1)]).abs() < f32::EPSILON);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
    let meta = meta.metadata().clone().expect("metadata");
    let arch: serde_json::Value = serde_json::from_str(&meta["architecture"]).expect("json");
    assert_eq!(
        arch[0],
        serde_json::json!({"type":"conv2d","in":1,"out":32,"kernel":3,"stride":1,"padding":0})
    );
    assert_eq!(arch[2], serde_json::json!({"type":"maxpool2d","kernel":2}));
    assert_eq!(arch[6], serde_json::json!({"type":"flatten"}));
    let input: serde_json::Value = serde_json::from_str(&meta["input"]).expect("json");
    assert_eq!(input["shape"], serde_json::json!([1, 12, 12]));
}

fn expect_model_format(bytes: &[u8]) {
    match Model::from_safetensors(bytes, Path::new("bad.safetensors")) {
        Err(Error::ModelFormat { path, .. }) => assert_eq!(path, Path::new("bad.safetensors")),
        other => panic!("expected ModelFormat, got {other:?}"),
    }
}

#[test]
fn nn_malformed_safetensors_are_typed_errors() {
    let m = Model::mlp(&[5, 4, 3], 2).expect("mlp");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("m.safetensors");
    m.save(&p).expect("save");
    let good = std::fs::read(&p).expect("read");
    // Truncations at several points.
    for cut in [0, 4, 8, 20, good.len() / 2, good.len() - 1] {
        expect_model_format(&good[..cut]);
    }
    // Random bytes.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for len in [1usize, 16, 200, 4096] {
        let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        expect_model_format(&junk);
    }
    // Header claiming a huge size.
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    expect_model_format(&huge);
    // Wrong tensor shape: a model saved with other widths under this architecture.
    let other = Model::mlp(&[5, 3, 3], 2).expect("mlp");
    let mut tensors = Vec::new();
    let bytes_other = {
        other.save(&p).expect("save");
        std::fs::read(&p).expect("read")
    };
    let st = safetensors::SafeTensors::deserialize(&bytes_other).expect("valid");
    for (n, t) in st.tensors() {
        tensors.push((n, t));
    }
    let (_, meta) = safetensors::SafeTensors::read_metadata(&good).expect("header");
    let swapped = safetensors::serialize(tensors, meta.metadata().clone()).expect("serialize");
    expect_model_format(&swapped);
    // Missing metadata.
    let st = safetensors::SafeTensors::deserialize(&good).expect("valid");
    let bare = safetensors::serialize(st.tensors(), None).expect("serialize");
    expect_model_format(&bare);
    // Missing file: an Io error naming it.
    assert!(matches!(
        Model::load(&dir.path().join("absent")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn nn_fold_gates_preserves_outputs() {
    for (seed, mut m) in [
        (1u64, Model::mlp(&[7, 9, 6, 3], 4).expect("mlp")),
        (2, small_cnn()),
    ] {
        random_gates(&mut m, seed);
        let x = randn(seed, 5 * m.input_len());
        let before = outputs(&m, &x, 5);
        m.fold_gates().expect("fold");
        for l in m.gated_layers() {
            assert!(m
                .gate(l)
                .expect("gated")
                .iter()
                .all(|&s| (s - 1.0).abs() < f32::EPSILON));
        }
        assert!(max_diff(&before, &outputs(&m, &x, 5)) < OUTPUT_TOL);
    }
}

#[test]
fn nn_removing_zero_gated_units_preserves_outputs() {
    for (seed, mut m) in [
        (3u64, Model::mlp(&[7, 9, 6, 3], 5).expect("mlp")),
        (4, small_cnn()),
    ] {
        random_gates(&mut m, seed);
        let x = randn(seed, 5 * m.input_len());
        let before = outputs(&m, &x, 5);
        let params_before = m.parameter_count();
        for l in m.gated_layers() {
            let keep: Vec<usize> = m
                .gate(l)
                .expect("gated")
                .iter()
                .enumerate()
                .filter(|(_, &s)| s > 0.0)
                .map(|(i, _)| i)
                .collect();
            m.remove_units(l, &keep).expect("remove");
            assert_eq!(m.gate(l).expect("gated").len(), keep.len());
        }
        assert!(m.parameter_count() < params_before);
        assert!(
            max_diff(&before, &outputs(&m, &x, 5)) < OUTPUT_TOL,
            "outputs changed"
        );
        // The shrunk model still saves and loads.
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("pruned.safetensors");
        m.save(&p).expect("save");
        assert_eq!(Model::load(&p).expect("load"), m);
    }
}

#[test]
fn nn_removal_rejects_bad_keep_lists() {
    let mut m = Model::mlp(&[4, 5, 3], 1).expect("mlp");
    assert!(m.remove_units(0, &[]).is_err());
    assert!(m.remove_units(0, &[2, 1]).is_err());
    assert!(m.remove_units(0, &[0, 5]).is_err());
    assert!(m.remove_units(2, &[0]).is_err());
}

#[test]
fn nn_activations_have_one_column_per_unit() {
    let m = small_cnn();
    let x = randn(1, 3 * m.input_len());
    let mut ws = Workspace::new(&m, 3);
    let a = m.activations(&mut ws, &x, 3, 0).expect("acts");
    assert_eq!(a.ncols(), 32);
    assert_eq!(a.nrows(), 3 * 10 * 10);
    assert!(a.iter().all(|&v| v >= 0.0));
    let d = m.activations(&mut ws, &x, 3, 7).expect("acts");
    assert_eq!((d.nrows(), d.ncols()), (3, 128));
}

#[test]
fn nn_gradients_do_not_depend_on_thread_count() {
    // Large enough that GEMMs and the conv weight-gradient reduction are split over threads.
    let m = Model::small_cnn(&[1, 28, 28], 10, 3).expect("cnn");
    let x = randn(8, 16 * m.input_len());
    let y: Vec<u32> = (0..16).map(|i| i % 10).collect();
    let run = || {
        let mut ws = Workspace::new(&m, 16);
        let mut g = pruning_game::nn::Gradients::new(&m);
        m.loss_and_grad(&mut ws, &x, &y, &mut g).expect("grad");
        g
    };
    let par = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("pool")
        .install(run);
    let seq = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool")
        .install(run);
    for l in 0..m.layers().len() {
        let (Some(a), Some(b)) = (par.layer(l), seq.layer(l)) else {
            continue;
        };
        let scale = b.weight.amax().max(1e-6);
        assert!(
            (&a.weight - &b.weight).amax() / scale < 1e-4,
            "layer {l} weight gradient"
        );
        assert!(
            (&a.bias - &b.bias).amax() <= 1e-4 * b.bias.amax().max(1e-6),
            "layer {l} bias gradient"
        );
        if let (Some(ga), Some(gb)) = (&a.gate, &b.gate) {
            assert!(
                (ga - gb).amax() <= 1e-4 * gb.amax().max(1e-6),
                "layer {l} gate gradient"
            );
        }
    }
}

/// A fresh draw of a pruned architecture: the same layer shapes and gated units, new weights
/// within the He-uniform bound of each layer's own (reduced) fan-in, the same for the same
/// seed and different for another.
#[test]
fn reinitialized_keeps_the_architecture_and_draws_for_each_fan_in() {
    let mut cnn = Model::small_cnn(&[1, 12, 12], 3, 4).unwrap();
    cnn.remove_units(0, &[0, 5, 9]).unwrap();
    let mut mlp = Model::mlp(&[30, 40, 20, 5], 4).unwrap();
    mlp.remove_units(0, &[1, 2, 3, 10]).unwrap();
    for model in [cnn, mlp] {
        let fresh = model.reinitialized(11).unwrap();
        assert_eq!(fresh.shapes(), model.shapes());
        assert_eq!(fresh.gated_layers(), model.gated_layers());
        assert_eq!(fresh.parameter_count(), model.parameter_count());
        assert_eq!(
            fresh,
            model.reinitialized(11).unwrap(),
            "not determined by the seed"
        );
        assert_ne!(fresh, model.reinitialized(12).unwrap());
        for (old, new) in model.layers().iter().zip(fresh.layers()) {
            let (Some((w_old, _)), Some((w, b))) = (old.params(), new.params()) else {
                continue;
            };
            assert_ne!(w_old, w, "weights were not redrawn");
            let fan_in = w.ncols() as f32;
            let bound = (6.0 / fan_in).sqrt();
            assert!(
                w.iter().all(|v| v.abs() <= bound),
                "beyond sqrt(6/{fan_in})"
            );
            // A draw for the full fan-in would stay below 0.8 of the bound of the reduced one.
            assert!(w.amax() > 0.8 * bound, "drawn for another fan-in");
            assert!(b.iter().all(|&v| v == 0.0));
        }
        for l in fresh.gated_layers() {
            assert!(fresh.gate(l).unwrap().iter().all(|&g| g == 1.0));
        }
    }
}
