//! Bringing a trained model: gates are inserted where the builders put theirs, the gated
//! network computes what the file did, and `prune --init` refuses unsupported, mis-shaped and
//! non-finite files by name, writing nothing.

use std::path::Path;
use std::process::Command;

use pruning_game::nn::graph::Graph;
use pruning_game::nn::InputSpec;
use pruning_game::prune::players::players;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Outputs of the file and of the gated network agree to this relative tolerance (gates at 1
/// multiply by exactly 1; the rest is the same arithmetic).
const TOL: f32 = 1e-6;

fn names(g: &Graph) -> Vec<(String, usize)> {
    players(g)
        .into_iter()
        .map(|p| (p.name, p.channels))
        .collect()
}

fn round_trip(built: &Graph, len: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    built.export(&path).unwrap();
    let loaded = Graph::load(&path).unwrap();
    assert!(!loaded.has_gates(), "an export has no gates");
    let gated = loaded.with_gates().unwrap();
    assert_eq!(names(&gated), names(built));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x: Vec<f32> = (0..8 * len).map(|_| rng.random_range(-1.0..1.0)).collect();
    let (a, b) = (built.predict(&x, 8).unwrap(), gated.predict(&x, 8).unwrap());
    assert!((&a - &b).amax() <= TOL * a.amax().max(1.0));
}

#[test]
fn inserted_gates_match_the_builders_players() {
    round_trip(&Graph::mlp(&[12, 9, 7, 3], 2).unwrap(), 12);
    round_trip(&Graph::small_cnn(&[1, 12, 12], 3, 2).unwrap(), 144);
    let image = InputSpec::identity(vec![1, 12, 12]);
    round_trip(&Graph::bn_cnn(image.clone(), &[4, 6], 3, 2).unwrap(), 144);
    round_trip(&Graph::resnet(8, image, 3, 2).unwrap(), 144);
}

const BIN: &str = env!("CARGO_BIN_EXE_pruning-game");

/// `prune --init FILE` on the teacher task fails with a message naming `what`, and leaves
/// no run folder behind.
fn refused(file: &Path, what: &str) {
    let out = file.parent().unwrap().join("run");
    let o = Command::new(BIN)
        .args(["prune", "--dataset", "teacher", "--epochs", "2", "--init"])
        .arg(file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "accepted {}", file.display());
    assert!(err.contains(what), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !out.exists(),
        "a run folder was written for a refused model"
    );
}

#[test]
fn bad_init_files_are_refused_by_name_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    refused(
        &dir.path().join("missing.safetensors"),
        "missing.safetensors",
    );

    // The teacher task has 20 inputs and 4 classes.
    let wrong_shape = dir.path().join("wide.safetensors");
    Graph::mlp(&[30, 8, 4], 1)
        .unwrap()
        .export(&wrong_shape)
        .unwrap();
    refused(&wrong_shape, "input shape [30]");
    let wrong_classes = dir.path().join("classes.safetensors");
    Graph::mlp(&[20, 8, 5], 1)
        .unwrap()
        .export(&wrong_classes)
        .unwrap();
    refused(&wrong_classes, "5 outputs");

    // The last tensor's last value made NaN (the data section ends the file).
    let nan = dir.path().join("nan.safetensors");
    Graph::mlp(&[20, 8, 4], 1).unwrap().export(&nan).unwrap();
    let mut bytes = std::fs::read(&nan).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&nan, bytes).unwrap();
    refused(&nan, "2.weight: entry 31 is not finite");

    // An op the loader does not know.
    let unknown = dir.path().join("unknown.safetensors");
    Graph::mlp(&[20, 8, 4], 1)
        .unwrap()
        .export(&unknown)
        .unwrap();
    let mut bytes = std::fs::read(&unknown).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"relu")
        .expect("the architecture names its relu");
    bytes[at] = b'g';
    std::fs::write(&unknown, bytes).unwrap();
    refused(&unknown, "gelu");
}
