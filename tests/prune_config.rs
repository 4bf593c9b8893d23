//! Invalid pruner hyper-parameters are rejected with errors that name the parameter.

use std::process::Command;

use pruning_game::nn::graph::Graph;
use pruning_game::nn::OptimizerConfig;
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

#[test]
fn each_invalid_value_is_rejected_by_name() {
    let d = PruneConfig::default;
    rejected(PruneConfig { alpha: -1.0, ..d() }, "alpha");
    rejected(
        PruneConfig {
            beta: f64::NAN,
            ..d()
        },
        "beta",
    );
    rejected(
        PruneConfig {
            gamma: f64::INFINITY,
            ..d()
        },
        "gamma",
    );
    rejected(
        PruneConfig {
            gate_lr: 0.0,
            ..d()
        },
        "gate_lr",
    );
    rejected(
        PruneConfig {
            gate_lr: -0.5,
            ..d()
        },
        "gate_lr",
    );
    rejected(
        PruneConfig {
            refresh_every: 0,
            ..d()
        },
        "refresh_every",
    );
    rejected(PruneConfig { patience: 0, ..d() }, "patience");
    rejected(PruneConfig { epochs: 0, ..d() }, "epochs");
    rejected(
        PruneConfig {
            batch_size: 0,
            ..d()
        },
        "batch_size",
    );
    rejected(
        PruneConfig {
            benefit_momentum: 1.0,
            ..d()
        },
        "benefit_momentum",
    );
    rejected(
        PruneConfig {
            target_kept: Some(0.0),
            ..d()
        },
        "target_kept",
    );
    rejected(
        PruneConfig {
            target_kept: Some(1.5),
            ..d()
        },
        "target_kept",
    );
    rejected(
        PruneConfig {
            symmetry: ScaleSymmetry::WeightDecay,
            weight_decay: 0.0,
            ..d()
        },
        "weight_decay",
    );
    rejected(
        PruneConfig {
            control_fraction: 1.5,
            ..d()
        },
        "control_fraction",
    );
    rejected(
        PruneConfig {
            control_fraction: f64::NAN,
            ..d()
        },
        "control_fraction",
    );
    rejected(
        PruneConfig {
            refit_fraction: 1.0,
            ..d()
        },
        "refit_fraction",
    );
    rejected(
        PruneConfig {
            refit_fraction: f64::NAN,
            ..d()
        },
        "refit_fraction",
    );
    // Valid on its own, but rounds to every epoch of a one-epoch run.
    rejected(
        PruneConfig {
            epochs: 1,
            refit_fraction: 0.6,
            ..d()
        },
        "refit_fraction",
    );
    assert!(PruneConfig {
        optimizer: OptimizerConfig::adam(-1.0),
        ..d()
    }
    .check()
    .is_err());
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
    assert_eq!(c.schedule, pruning_game::nn::LrSchedule::Cosine);
    assert_eq!(c.gamma, 0.003);
    assert_eq!(c.optimizer, OptimizerConfig::adam(5e-4));
    assert_eq!(c.target_kept, Some(0.25));
    assert_eq!(c.target_scope, TargetScope::EachLayer);
    assert_eq!(c.redundancy, Redundancy::ActivationCorrelation);
    // Everything not overridden keeps its default.
    assert_eq!(
        PruneConfig {
            schedule: c.schedule,
            gamma: c.gamma,
            optimizer: c.optimizer,
            target_kept: c.target_kept,
            target_scope: c.target_scope,
            redundancy: c.redundancy,
            ..PruneConfig::default()
        },
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
    assert!(EquilibriumPruner::new(
        PruneConfig {
            gamma: -0.1,
            ..PruneConfig::default()
        },
        &model
    )
    .is_err());
    let ungated = Graph::mlp(&[4, 3], 1).unwrap();
    assert!(matches!(
        EquilibriumPruner::new(PruneConfig::default(), &ungated),
        Err(Error::NotPrunable { .. })
    ));
}

#[test]
fn config_round_trips_through_json_with_its_seed() {
    let c = PruneConfig {
        seed: 1234,
        target_kept: Some(0.3),
        ..PruneConfig::default()
    };
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
