//! Invalid pruner hyper-parameters are rejected with errors that name the parameter.

use std::process::Command;

use pruning_game::nn::graph::Graph;
use pruning_game::nn::{LrSchedule, OptimizerConfig};
use pruning_game::prune::{EquilibriumPruner, PruneConfig, Redundancy, ScaleSymmetry, TargetScope};
use pruning_game::Error;

fn rejected(config: PruneConfig, name: &str) {
    match config.check() {
        Err(Error::InvalidParameter { name: n, reason }) => {
            assert_eq!(n, name, "wrong parameter named ({reason})");
            assert!(!reason.is_empty());
        }
        other => panic!("{name}: expected InvalidParameter, got {other:?}"),
    }
}

#[test]
fn defaults_are_valid() {
    PruneConfig::default().check().unwrap();
    PruneConfig::teacher_default().check().unwrap();
}

/// The default configuration with `edit` applied.
fn changed(edit: impl FnOnce(&mut PruneConfig)) -> PruneConfig {
    let mut c = PruneConfig::default();
    edit(&mut c);
    c
}

#[test]
fn each_invalid_value_is_rejected_by_name() {
    rejected(changed(|c| c.game.alpha = -1.0), "alpha");
    rejected(changed(|c| c.game.beta = f64::NAN), "beta");
    rejected(changed(|c| c.game.gamma = f64::INFINITY), "gamma");
    rejected(changed(|c| c.gates.gate_lr = 0.0), "gate_lr");
    rejected(changed(|c| c.gates.gate_lr = -0.5), "gate_lr");
    rejected(changed(|c| c.gates.refresh_every = 0), "refresh_every");
    rejected(changed(|c| c.gates.patience = 0), "patience");
    rejected(changed(|c| c.training.epochs = 0), "epochs");
    rejected(changed(|c| c.training.batch_size = 0), "batch_size");
    rejected(
        changed(|c| c.gates.benefit_momentum = 1.0),
        "benefit_momentum",
    );
    rejected(changed(|c| c.price.target_kept = Some(0.0)), "target_kept");
    rejected(changed(|c| c.price.target_kept = Some(1.5)), "target_kept");
    rejected(
        changed(|c| {
            c.gates.symmetry = ScaleSymmetry::WeightDecay;
            c.gates.weight_decay = 0.0;
        }),
        "weight_decay",
    );
    rejected(
        changed(|c| c.price.control_fraction = 1.5),
        "control_fraction",
    );
    rejected(
        changed(|c| c.price.control_fraction = f64::NAN),
        "control_fraction",
    );
    rejected(
        changed(|c| c.training.refit_fraction = 1.0),
        "refit_fraction",
    );
    rejected(
        changed(|c| c.training.refit_fraction = f64::NAN),
        "refit_fraction",
    );
    // Valid on its own, but rounds to every epoch of a one-epoch run.
    rejected(
        changed(|c| {
            c.training.epochs = 1;
            c.training.refit_fraction = 0.6;
        }),
        "refit_fraction",
    );
    assert!(
        changed(|c| c.training.optimizer = OptimizerConfig::adam(-1.0))
            .check()
            .is_err()
    );
}

fn overridden(overrides: &[&str]) -> pruning_game::Result<PruneConfig> {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    PruneConfig::default().with_overrides(&o)
}

#[test]
fn overrides_set_nested_keys_and_reject_what_is_not_a_valid_configuration() {
    let c = overridden(&[
        "schedule=cosine",
        "gamma=0.003",
        "optimizer.lr=0.0005",
        "target_kept=0.25",
        "target_scope=each-layer",
        "redundancy=activation-correlation",
    ])
    .unwrap();
    assert_eq!(c.training.schedule, LrSchedule::Cosine);
    assert_eq!(c.game.gamma, 0.003);
    assert_eq!(c.training.optimizer, OptimizerConfig::adam(5e-4));
    assert_eq!(c.price.target_kept, Some(0.25));
    assert_eq!(c.price.target_scope, TargetScope::EachLayer);
    assert_eq!(c.gates.redundancy, Redundancy::ActivationCorrelation);
    // Everything not overridden keeps its default.
    assert_eq!(
        changed(|d| {
            d.training.schedule = c.training.schedule;
            d.game.gamma = c.game.gamma;
            d.training.optimizer = c.training.optimizer;
            d.price.target_kept = c.price.target_kept;
            d.price.target_scope = c.price.target_scope;
            d.gates.redundancy = c.gates.redundancy;
        }),
        c
    );
    for (bad, name) in [
        ("no_such_key=1", "no_such_key"),
        ("optimizer.nope=1", "optimizer.nope"),
        ("gamma", "override"),
        ("gamma=abc", "gamma"),
        ("schedule=sideways", "schedule"),
        ("optimizer.lr=fast", "optimizer.lr"),
        ("gamma=-1", "gamma"),
        ("patience=0", "patience"),
    ] {
        match overridden(&[bad]) {
            Err(Error::InvalidParameter { name: n, .. }) => assert_eq!(n, name, "{bad}"),
            other => panic!("{bad}: expected InvalidParameter, got {other:?}"),
        }
    }
}

#[test]
fn pruner_rejects_bad_config_and_models_without_gates() {
    let model = Graph::mlp(&[4, 6, 3], 1).unwrap();
    assert!(EquilibriumPruner::new(changed(|c| c.game.gamma = -0.1), &model).is_err());
    let ungated = Graph::mlp(&[4, 3], 1).unwrap();
    assert!(matches!(
        EquilibriumPruner::new(PruneConfig::default(), &ungated),
        Err(Error::NotPrunable { .. })
    ));
}

#[test]
fn config_round_trips_through_json_with_its_seed() {
    let c = changed(|c| {
        c.seed = 1234;
        c.price.target_kept = Some(0.3);
    });
    let text = serde_json::to_string(&c).unwrap();
    let back: PruneConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(back, c);
    assert!(text.contains("1234"));
}

#[test]
fn cli_reports_invalid_hyper_parameters_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value, name) in [
        ("--gamma", "-1", "gamma"),
        ("--gate-lr", "0", "gate_lr"),
        ("--patience", "0", "patience"),
        ("--target-kept", "2", "target_kept"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pruning-game"))
            .args(["prune", flag, value, "--out"])
            .arg(dir.path().join("run"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(name), "{flag} {value}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
