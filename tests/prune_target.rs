//! Target mode: one price for the network or one per layer, and removal during training
//! never below the target count of the units priced together.

use pruning_game::nn::data::{teacher_student, TeacherConfig};
use pruning_game::nn::graph::Graph;
use pruning_game::prune::pipeline::split_holdout;
use pruning_game::prune::players::players;
use pruning_game::prune::{PruneConfig, PruneRun, TargetScope};

const TARGET: f64 = 0.3;

/// Runs target mode on a two-hidden-layer student; returns the prices and the units left per
/// layer before the final removal.
fn run(scope: TargetScope) -> (Vec<f64>, Vec<usize>, Vec<usize>) {
    let (train, test) = teacher_student(&TeacherConfig {
        train: 3000,
        test: 200,
        ..TeacherConfig::default()
    })
    .unwrap();
    let (tr, ho) = split_holdout(&train, 500).unwrap();
    let model = Graph::mlp(&[20, 32, 24, 4], 3).unwrap();
    let sizes: Vec<usize> = players(&model).iter().map(|g| g.channels).collect();
    let mut config = PruneConfig::teacher_default();
    config.training.epochs = 8;
    config.price.target_kept = Some(TARGET);
    config.price.target_scope = scope;
    config.gates.warmup_steps = 20;
    config.gates.refresh_every = 5;
    config.gates.patience = 10;
    let mut r = PruneRun::new(model, config).unwrap();
    r.run(&tr, &ho, Some(&test), None).unwrap();
    let cal = r.pruner().calibration().expect("target mode calibrates");
    assert_eq!(cal.initial_gamma.len(), sizes.len());
    assert!(cal.adjustments > 0);
    // The predictions are equilibria of the measured games (Newton's certificate).
    assert!(
        cal.prediction_residual < 1e-8,
        "{}",
        cal.prediction_residual
    );
    let left: Vec<usize> = r
        .pruner()
        .kept_units()
        .iter()
        .map(|(_, u)| u.len())
        .collect();
    // The floors must bind for the test to mean anything: units were removed in training.
    assert!(
        left.iter().zip(&sizes).any(|(l, s)| l < s),
        "{scope:?}: nothing removed"
    );
    (r.pruner().gammas(), left, sizes)
}

#[test]
fn network_scope_shares_one_price_and_keeps_the_network_target() {
    let (gammas, left, sizes) = run(TargetScope::Network);
    assert!(gammas.windows(2).all(|w| w[0] == w[1]), "{gammas:?}");
    let floor = (TARGET * sizes.iter().sum::<usize>() as f64).ceil() as usize;
    assert!(left.iter().sum::<usize>() >= floor, "{left:?} of {sizes:?}");
}

#[test]
fn each_layer_scope_prices_layers_apart_and_keeps_each_layer_target() {
    let (gammas, left, sizes) = run(TargetScope::EachLayer);
    assert!(gammas.windows(2).any(|w| w[0] != w[1]), "{gammas:?}");
    for (l, s) in left.iter().zip(&sizes) {
        assert!(
            *l >= (TARGET * *s as f64).ceil() as usize,
            "{left:?} of {sizes:?}"
        );
    }
}

/// A target the games cannot reach is reported, in `report.json` and on stderr, with the
/// reason; a reached one is not.
#[test]
fn a_missed_target_is_reported_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let run = |beta: &str, name: &str| {
        let out = dir.path().join(name);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_pruning-game"))
            .args([
                "prune",
                "--dataset",
                "teacher",
                "--epochs",
                "10",
                "--target-kept",
            ])
            .args(["0.9", "--beta", beta, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success());
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        let notes: Vec<String> = report["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        let kept = report["kept_fraction"].as_f64().unwrap();
        (kept, notes, String::from_utf8_lossy(&o.stderr).to_string())
    };
    // Strong competition removes most units at any price: the target 0.9 is out of reach.
    let (kept, notes, stderr) = run("0.05", "strong");
    assert!(kept < 0.8, "{kept}");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("below the target 0.9"), "{notes:?}");
    assert!(notes[0].contains("even at gamma = 0"), "{notes:?}");
    assert!(stderr.contains(&format!("note: {}", notes[0])), "{stderr}");
    // Without competition nothing pushes units out, and the run says nothing about it.
    let (kept, notes, _) = run("0", "free");
    assert!(kept >= 0.81, "{kept}");
    assert!(notes.is_empty(), "{notes:?}");
}
