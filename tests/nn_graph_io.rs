//! Graph files: save/load round trips, exports in PyTorch's layout (sequential chains keep
//! the `torch.nn.Sequential` list), refusals by tensor name, and — where torch is installed —
//! PyTorch loading exported ResNets (pruned, and with BatchNorm folded) strictly through
//! `python/pruning_game_torch.py` and computing the same logits.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use common::random_gates;
use pruning_game::nn::graph::{Graph, Mode, RemovalPlan};
use pruning_game::nn::InputSpec;
use pruning_game::Error;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::json;

/// A ResNet-8 with BatchNorm statistics and gates away from their defaults.
fn resnet(seed: u64) -> Graph {
    let mut g = Graph::resnet(8, InputSpec::fashion_mnist(), 10, seed).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let names: Vec<String> = g.params().iter().map(|p| p.name.clone()).collect();
    for name in names {
        let v = g.param_mut(&name).unwrap();
        if name.ends_with("running_var") || name.contains("gate") {
            v.iter_mut().for_each(|x| *x = rng.random_range(0.3..1.5));
        } else if name.ends_with("running_mean") || name.ends_with(".bias") {
            v.iter_mut().for_each(|x| *x = rng.random_range(-0.3..0.3));
        }
    }
    g
}

fn inputs(g: &Graph, batch: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..batch * g.input_len())
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

#[test]
fn saved_graphs_load_with_their_gates_and_exports_without() {
    let dir = tempfile::tempdir().unwrap();
    let g = resnet(1);
    let x = inputs(&g, 3, 2);
    let want = g.predict(&x, 3).unwrap();
    g.save(&dir.path().join("state.safetensors")).unwrap();
    let back = Graph::load(&dir.path().join("state.safetensors")).unwrap();
    assert_eq!(back.params().len(), g.params().len());
    for p in g.params() {
        // Compared by name: the reader lists shared gate vectors where it first meets them.
        assert!(
            back.param(&p.name) == Some(p),
            "{} differs after loading",
            p.name
        );
    }
    assert_eq!(back.predict(&x, 3).unwrap(), want);
    g.export(&dir.path().join("model.safetensors")).unwrap();
    let exported = Graph::load(&dir.path().join("model.safetensors")).unwrap();
    assert!(exported.params().iter().all(|p| !p.name.contains("gate")));
    assert!(exported.nodes().iter().all(|n| n.op.kind() != "gate"));
    let got = exported.predict(&x, 3).unwrap();
    assert!((got - &want).amax() <= 1e-5 * want.amax().max(1.0));
    // The layout PyTorch expects.
    for key in [
        "conv1.weight",
        "bn1.running_var",
        "layer2.0.downsample.0.weight",
        "layer3.0.bn2.bias",
        "fc.weight",
    ] {
        assert!(exported.param(key).is_some(), "{key}");
    }
    assert_eq!(
        exported.param("conv1.weight").unwrap().value.shape(),
        (16, 9)
    );
}

/// A file in the sequential layout as the sequential model wrote it before chains were
/// graphs: every parameter of `g` (`{i}.weight`, `{i}.bias`, `{i}.gate`) in PyTorch's shape
/// (a conv weight of `arch` as `[out, in, k, k]`), and `arch` as the `architecture`.
fn sequential_file(g: &Graph, arch: &serde_json::Value) -> Vec<u8> {
    let layers = arch.as_array().unwrap();
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = g
        .params()
        .iter()
        .map(|p| {
            let m = &p.value;
            let (r, c) = m.shape();
            let index: usize = p.name.split('.').next().unwrap().parse().unwrap();
            let conv = layers.get(index).filter(|l| l["type"] == "conv2d");
            let shape = match (p.name.ends_with(".weight"), conv) {
                (false, _) => vec![r],
                (true, Some(l)) => {
                    let k = l["kernel"].as_u64().unwrap() as usize;
                    vec![r, c / (k * k), k, k]
                }
                (true, None) => vec![r, c],
            };
            let bytes: Vec<u8> = (0..r)
                .flat_map(|i| (0..c).map(move |j| m[(i, j)]))
                .flat_map(f32::to_le_bytes)
                .collect();
            (p.name.clone(), shape, bytes)
        })
        .collect();
    let views: Vec<_> = data
        .iter()
        .map(|(n, shape, bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes).unwrap();
            (n.clone(), view)
        })
        .collect();
    let meta = HashMap::from([
        ("architecture".to_string(), arch.to_string()),
        (
            "input".to_string(),
            serde_json::to_string(g.input()).unwrap(),
        ),
    ]);
    safetensors::serialize(views, Some(meta)).unwrap()
}

/// The MLP and the small CNN with their `architecture` lists in the sequential layout.
fn chains() -> Vec<(Graph, serde_json::Value)> {
    let conv = |i: usize, o: usize| json!({"type": "conv2d", "in": i, "out": o, "kernel": 3, "stride": 1, "padding": 0});
    let linear = |i: usize, o: usize| json!({"type": "linear", "in": i, "out": o});
    let relu = json!({"type": "relu"});
    let pool = json!({"type": "maxpool2d", "kernel": 2});
    vec![
        (
            Graph::mlp(&[5, 4, 3], 2).unwrap(),
            json!([linear(5, 4), relu, linear(4, 3)]),
        ),
        (
            Graph::small_cnn(&[1, 12, 12], 4, 7).unwrap(),
            json!([
                conv(1, 32),
                relu,
                pool,
                conv(32, 64),
                relu,
                pool,
                {"type": "flatten"},
                linear(64, 128),
                relu,
                linear(128, 4)
            ]),
        ),
    ]
}

/// Files in the sequential layout (gates included, as run states were saved) load as the
/// chains the builders make, and chains export that layout without gates, which loads back
/// to the same outputs.
#[test]
fn sequential_files_load_as_chains_and_chains_export_them() {
    let dir = tempfile::tempdir().unwrap();
    for (mut g, arch) in chains() {
        random_gates(&mut g, 3);
        let old = sequential_file(&g, &arch);
        let back = Graph::from_safetensors(&old, Path::new("old.safetensors")).unwrap();
        assert_eq!(back, g);
        let path = dir.path().join("chain.safetensors");
        g.export(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        let written: serde_json::Value = serde_json::from_str(&meta["architecture"]).unwrap();
        assert_eq!(written, arch);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert!(st.names().iter().all(|n| !n.ends_with("gate")));
        let plain = Graph::load(&path).unwrap();
        let x = inputs(&g, 3, 5);
        let (a, b) = (g.predict(&x, 3).unwrap(), plain.predict(&x, 3).unwrap());
        assert!((&a - &b).amax() <= 1e-5 * (1.0 + a.amax()), "{a} vs {b}");
    }
}

fn expect_model_format(bytes: &[u8]) -> String {
    match Graph::from_safetensors(bytes, Path::new("bad.safetensors")) {
        Err(Error::ModelFormat { path, message }) => {
            assert_eq!(path, Path::new("bad.safetensors"));
            message
        }
        other => panic!("expected ModelFormat, got {other:?}"),
    }
}

/// Whatever is wrong with a sequential file, the error is a `ModelFormat` naming it.
#[test]
fn malformed_sequential_files_are_typed_errors() {
    let (g, arch) = chains().remove(0);
    let good = sequential_file(&g, &arch);
    assert!(Graph::from_safetensors(&good, Path::new("good.safetensors")).is_ok());
    for cut in [0, 4, 8, 20, good.len() / 2, good.len() - 1] {
        expect_model_format(&good[..cut]);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for len in [1usize, 16, 200, 4096] {
        let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        expect_model_format(&junk);
    }
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    expect_model_format(&huge);
    // Tensors of other widths under this architecture.
    let other = sequential_file(&Graph::mlp(&[5, 3, 3], 2).unwrap(), &arch);
    let st = SafeTensors::deserialize(&other).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&good).unwrap();
    let swapped = safetensors::serialize(st.tensors(), meta.metadata().clone()).unwrap();
    let m = expect_model_format(&swapped);
    assert!(m.contains("0.weight") && m.contains("shape"), "{m}");
    // No metadata.
    let st = SafeTensors::deserialize(&good).unwrap();
    let bare = safetensors::serialize(st.tensors(), None).unwrap();
    expect_model_format(&bare);
    // A tensor the architecture does not have, a missing one, a gate before no ReLU, a
    // zero-sized kernel.
    let stray: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut tensors = SafeTensors::deserialize(&good).unwrap().tensors();
    let view = TensorView::new(Dtype::F32, vec![2], &stray).unwrap();
    tensors.push(("9.weight".to_string(), view));
    let extra = safetensors::serialize(tensors, meta.metadata().clone()).unwrap();
    let m = expect_model_format(&extra);
    assert!(m.contains("unexpected tensor 9.weight"), "{m}");
    let three =
        json!([arch[0], arch[1], arch[2], {"type": "relu"}, {"type": "linear", "in": 3, "out": 3}]);
    let m = expect_model_format(&sequential_file(&g, &three));
    assert!(m.contains("missing tensor 4.weight"), "{m}");
    let no_relu = json!([arch[0], {"type": "flatten"}, arch[2]]);
    let m = expect_model_format(&sequential_file(&g, &no_relu));
    assert!(
        m.contains("layer 0") && m.contains("followed by relu"),
        "{m}"
    );
    let zero =
        json!([{"type": "conv2d", "in": 1, "out": 2, "kernel": 0, "stride": 1, "padding": 0}]);
    let meta = HashMap::from([
        ("architecture".to_string(), zero.to_string()),
        (
            "input".to_string(),
            r#"{"shape":[1,4,4],"scale":1.0,"mean":0.0,"std":1.0}"#.into(),
        ),
    ]);
    let empty: Vec<(String, TensorView)> = Vec::new();
    let m = expect_model_format(&safetensors::serialize(empty, Some(meta)).unwrap());
    assert!(m.contains("layer 0") && m.contains("sizes"), "{m}");
    // A missing file: an Io error naming it.
    assert!(matches!(
        Graph::load(Path::new("/nonexistent/absent.safetensors")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn malformed_files_are_refused_by_tensor_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    resnet(4).export(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap().to_string();
    // Rename a tensor: the architecture then misses it and the file has an unknown one.
    let renamed = header.replacen("layer1.0.conv2.weight", "layer1.0.conv9.weight", 1);
    let mut edited = bytes[..8].to_vec();
    edited.extend_from_slice(renamed.as_bytes());
    edited.extend_from_slice(&bytes[8 + n..]);
    let e = Graph::from_safetensors(&edited, &path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m.safetensors") && e.contains("layer1.0.conv2.weight"),
        "{e}"
    );
    // A non-finite weight.
    let mut g = resnet(4);
    g.param_mut("fc.bias").unwrap()[3] = f32::NAN;
    let e = g.export(&path).unwrap_err().to_string();
    assert!(e.contains("non-finite"), "{e}");
    // Truncated.
    let e = Graph::from_safetensors(&bytes[..bytes.len() / 2], &path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("m.safetensors"), "{e}");
}

fn torch_available() -> bool {
    Command::new("python3")
        .args(["-c", "import torch, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// PyTorch builds the module from the metadata, loads the export with `strict=True`, and
/// computes the same eval-mode logits, also for a pruned ResNet and for exports with
/// BatchNorm folded; the unpruned ResNets' graphs are `pruning_game_torch.resnet`'s. CI
/// installs torch; elsewhere the test says it skipped.
#[test]
fn exports_load_strictly_in_pytorch() {
    if !torch_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install torch for this check"
        );
        eprintln!("torch is not installed: skipped the PyTorch check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cases = vec![resnet(7), resnet(8)];
    // A trained-looking BN-CNN chain too (eval mode after a training-mode pass).
    let mut bn = Graph::bn_cnn(InputSpec::fashion_mnist(), &[8, 16], 10, 3).unwrap();
    let x = inputs(&bn, 16, 1);
    let mut ws = pruning_game::nn::graph::GraphWorkspace::new(&bn, 16);
    bn.forward(&mut ws, &x, 16, Mode::Train).unwrap();
    bn.update_running_stats(&ws).unwrap();
    // Both with their BatchNorms folded: convs that gained a bias, no BatchNorm left.
    let folded = [
        resnet(9).fold_batchnorm().unwrap(),
        bn.fold_batchnorm().unwrap(),
    ];
    assert!(folded
        .iter()
        .all(|g| g.nodes().iter().all(|n| n.op.kind() != "batchnorm")));
    cases.push(bn);
    // A pruned ResNet: random channels out of every prunable group, residual streams too.
    let mut pruned = resnet(9);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for group in pruned.channel_groups().into_iter().filter(|g| g.prunable()) {
        let group = pruned
            .channel_groups()
            .into_iter()
            .find(|g| g.name == group.name)
            .unwrap();
        let keep: Vec<usize> = (0..group.channels)
            .filter(|&c| c == 0 || rng.random_bool(0.6))
            .collect();
        let plan = RemovalPlan::new(&pruned, &group, keep).unwrap();
        pruned.remove_channels(&plan).unwrap();
    }
    assert!(pruned.parameter_count() < resnet(9).parameter_count());
    cases.push(pruned);
    cases.extend(folded);
    for (i, g) in cases.iter().enumerate() {
        let case = dir.path().join(i.to_string());
        std::fs::create_dir_all(&case).unwrap();
        g.export(&case.join("model.safetensors")).unwrap();
        let x = inputs(g, 4, 10 + i as u64);
        let logits = g.predict(&x, 4).unwrap().transpose(); // row-major [batch, classes]
        let le = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
        std::fs::write(case.join("inputs.f32"), le(&x)).unwrap();
        std::fs::write(case.join("logits.f32"), le(logits.as_slice())).unwrap();
        let mut check = Command::new("python3");
        check
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/torch_graph_check.py"
            ))
            .arg(&case);
        if i < 2 {
            // The ResNets: also the Python module's own ResNet-8, node for node.
            check.args(["--resnet", "8"]);
        }
        let out = check.output().unwrap();
        assert!(
            out.status.success(),
            "case {i}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
