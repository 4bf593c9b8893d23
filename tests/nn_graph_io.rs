//! Graph files: save/load round trips, exports in PyTorch's layout (sequential chains keep
//! the `torch.nn.Sequential` list), refusals by tensor name, and — where torch is installed —
//! PyTorch loading an exported ResNet strictly through `python/pruning_game_torch.py` and
//! computing the same logits.

use std::process::Command;

use pruning_game::nn::graph::{Graph, Mode};
use pruning_game::nn::{InputSpec, Model};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

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

#[test]
fn chains_export_the_sequential_layout_old_readers_load() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::small_cnn(&[1, 12, 12], 4, 3).unwrap();
    let g = Graph::from_model(&model).unwrap();
    let path = dir.path().join("chain.safetensors");
    g.export(&path).unwrap();
    // The sequential reader takes it, and both agree with the graph.
    let old = Model::load(&path).unwrap();
    let x = inputs(&g, 2, 5);
    let a = old.predict(&x, 2).unwrap();
    let b = g.predict(&x, 2).unwrap();
    assert!((a - b).amax() <= 1e-5);
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    assert!(header.contains(r#"\"type\":\"conv2d\""#), "{header}");
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
/// computes the same eval-mode logits. CI installs torch; elsewhere the test says it skipped.
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
    cases.push(bn);
    for (i, g) in cases.iter().enumerate() {
        let case = dir.path().join(i.to_string());
        std::fs::create_dir_all(&case).unwrap();
        g.export(&case.join("model.safetensors")).unwrap();
        let x = inputs(g, 4, 10 + i as u64);
        let logits = g.predict(&x, 4).unwrap().transpose(); // row-major [batch, classes]
        let le = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
        std::fs::write(case.join("inputs.f32"), le(&x)).unwrap();
        std::fs::write(case.join("logits.f32"), le(logits.as_slice())).unwrap();
        let out = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/torch_graph_check.py"
            ))
            .arg(&case)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "case {i}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
