//! Invalid pruner hyper-parameters are rejected with errors that name the parameter.

use std::process::Command;

use pruning_game::nn::graph::Graph;
use pruning_game::nn::{LrSchedule, OptimizerConfig};
use pruning_game::prune::{
    DataSettings, EquilibriumPruner, GameSettings, GateDynamics, GateStep, PriceControl,
    PruneConfig, Redundancy, RunSettings, ScaleSymmetry, TargetSchedule, TargetScope,
    TrainingSchedule,
};
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
    rejected(changed(|c| c.run.record_every = 0), "record_every");
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
    rejected(changed(|c| c.gates.weight_decay = -0.1), "weight_decay");
    rejected(changed(|c| c.price.price_gain = 0.0), "price_gain");
    rejected(
        changed(|c| c.price.control_fraction = 1.5),
        "control_fraction",
    );
    rejected(
        changed(|c| c.price.control_fraction = f64::NAN),
        "control_fraction",
    );
    rejected(
        changed(|c| c.training.finetune_lr_scale = 0.0),
        "finetune_lr_scale",
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
    rejected(
        changed(|c| c.training.distill_weight = -0.5),
        "distill_weight",
    );
    rejected(
        changed(|c| c.training.distill_weight = 1.01),
        "distill_weight",
    );
    rejected(
        changed(|c| c.training.distill_weight = f64::NAN),
        "distill_weight",
    );
    // Checked even with distillation off, so a bad value never waits for the day it is used.
    rejected(
        changed(|c| c.training.distill_temperature = 0.0),
        "distill_temperature",
    );
    rejected(
        changed(|c| {
            c.training.distill_weight = 0.5;
            c.training.distill_temperature = f64::INFINITY;
        }),
        "distill_temperature",
    );
    assert!(
        changed(|c| c.training.optimizer = OptimizerConfig::adam(-1.0))
            .check()
            .is_err()
    );
}

/// Distillation is off by default and on exactly when its weight is above 0.
#[test]
fn distillation_is_off_by_default_and_set_by_its_keys() {
    assert_eq!(PruneConfig::default().training.distillation(), None);
    assert_eq!(PruneConfig::teacher_default().training.distillation(), None);
    let c = overridden(&["distill_weight=0.7", "distill_temperature=2"]).unwrap();
    let d = c.training.distillation().expect("on");
    assert_eq!((d.weight, d.temperature), (0.7, 2.0));
    let dense = Graph::mlp(&[4, 6, 3], 1).unwrap();
    assert!(c.teacher(&dense).is_some());
    assert!(PruneConfig::default().teacher(&dense).is_none());
    for (bad, name) in [
        ("distill_weight=2", "distill_weight"),
        ("distill_weight=-0.1", "distill_weight"),
        ("distill_weight=lots", "distill_weight"),
        ("distill_temperature=0", "distill_temperature"),
        ("distill_temperature=-3", "distill_temperature"),
        ("distill.weight=0.5", "distill.weight"),
    ] {
        match overridden(&[bad]) {
            Err(e @ Error::InvalidParameter { .. }) => {
                let text = e.to_string();
                assert!(text.contains(name), "{bad}: {text}");
                assert_eq!(text.lines().count(), 1, "{bad}: {text}");
            }
            other => panic!("{bad}: expected InvalidParameter, got {other:?}"),
        }
    }
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

/// `--set` reaches a field of every group by its flat key, as named in `config.json`; the
/// group names are no keys, and a refused key gives a one-line error naming it.
#[test]
fn overrides_reach_every_group_by_its_flat_key() {
    let c = overridden(&[
        "beta=0.01",
        "gate_step=rms-normalized",
        "target_schedule=cubic",
        "record_every=3",
        "refit_fraction=0.5",
        "schedule=cosine",
        "flip=true",
        "seed=9",
    ])
    .unwrap();
    let expected = changed(|d| {
        d.game.beta = 0.01;
        d.gates.gate_step = GateStep::RmsNormalized;
        d.price.target_schedule = TargetSchedule::Cubic;
        d.run.record_every = 3;
        d.training.refit_fraction = 0.5;
        d.training.schedule = LrSchedule::Cosine;
        d.data.flip = true;
        d.seed = 9;
    });
    assert_eq!(c, expected);
    for bad in [
        "no_such_key=1",
        "game.alpha=1",
        "training=1",
        "weight_game.alpha=1",
    ] {
        let key = bad.split_once('=').unwrap().0;
        match overridden(&[bad]) {
            Err(e @ Error::InvalidParameter { .. }) => {
                let text = e.to_string();
                assert_eq!(text, format!("invalid {key}: no such configuration key"));
                assert_eq!(text.lines().count(), 1);
            }
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

/// A configuration with every field away from its default (enums on another variant).
fn every_field_changed() -> PruneConfig {
    PruneConfig {
        game: GameSettings {
            alpha: 0.25,
            beta: 0.5,
            gamma: 0.125,
        },
        gates: GateDynamics {
            gate_lr: 0.75,
            gate_step: GateStep::RmsNormalized,
            refresh_every: 7,
            patience: 11,
            redundancy: Redundancy::ActivationCorrelation,
            symmetry: ScaleSymmetry::WeightDecay,
            weight_decay: 0.375,
            benefit_momentum: 0.5,
            warmup_steps: 13,
        },
        price: PriceControl {
            gamma_ramp_steps: 17,
            target_kept: Some(0.3),
            target_scope: TargetScope::Network,
            target_schedule: TargetSchedule::Cubic,
            price_gain: 0.625,
            control_fraction: 0.875,
        },
        run: RunSettings {
            remove: false,
            holdout: 19,
            record_every: 23,
        },
        training: TrainingSchedule {
            epochs: 29,
            refit_fraction: 0.0625,
            finetune_epochs: 31,
            finetune_lr_scale: 0.1,
            batch_size: 37,
            optimizer: OptimizerConfig::sgd(0.05, 0.9),
            schedule: LrSchedule::Cosine,
            distill_weight: 0.375,
            distill_temperature: 2.5,
        },
        data: DataSettings {
            crop_padding: 4,
            flip: true,
        },
        seed: 12345,
    }
}

/// Pins the on-disk format: every run folder's `config.json` holds this flat object, and
/// `--resume` compares against it, so grouping the fields must not move or rename a key.
/// The strings were produced by the code before the fields were grouped (one line per
/// group here only for reading), with the keys added since at the end of their group
/// (`distill_weight`, `distill_temperature`; folders saved without them read their
/// defaults); the pretty form written to disk follows from the same serialisation.
#[test]
fn saved_json_is_the_flat_object_from_before_the_grouping() {
    let default = concat!(
        r#"{"alpha":0.0001,"beta":0.0001,"gamma":0.002,"#,
        r#""gate_lr":1.0,"gate_step":"gradient","refresh_every":50,"patience":100,"redundancy":"weight-cosine","symmetry":"normalize","weight_decay":0.1,"benefit_momentum":0.9,"warmup_steps":200,"#,
        r#""gamma_ramp_steps":0,"target_kept":null,"target_scope":"each-layer","target_schedule":"immediate","price_gain":0.5,"control_fraction":0.8,"#,
        r#""remove":true,"holdout":2000,"record_every":25,"#,
        r#""epochs":5,"refit_fraction":0.2,"finetune_epochs":1,"finetune_lr_scale":1.0,"batch_size":128,"optimizer":{"kind":"adam","lr":0.001,"beta1":0.9,"beta2":0.999,"eps":1e-8},"schedule":"constant","distill_weight":0.0,"distill_temperature":4.0,"#,
        r#""crop_padding":0,"flip":false,"#,
        r#""seed":42}"#,
    );
    let custom = concat!(
        r#"{"alpha":0.25,"beta":0.5,"gamma":0.125,"#,
        r#""gate_lr":0.75,"gate_step":"rms-normalized","refresh_every":7,"patience":11,"redundancy":"activation-correlation","symmetry":"weight-decay","weight_decay":0.375,"benefit_momentum":0.5,"warmup_steps":13,"#,
        r#""gamma_ramp_steps":17,"target_kept":0.3,"target_scope":"network","target_schedule":"cubic","price_gain":0.625,"control_fraction":0.875,"#,
        r#""remove":false,"holdout":19,"record_every":23,"#,
        r#""epochs":29,"refit_fraction":0.0625,"finetune_epochs":31,"finetune_lr_scale":0.1,"batch_size":37,"optimizer":{"kind":"sgd","lr":0.05,"momentum":0.9,"weight_decay":0.0},"schedule":"cosine","distill_weight":0.375,"distill_temperature":2.5,"#,
        r#""crop_padding":4,"flip":true,"#,
        r#""seed":12345}"#,
    );
    let teacher = concat!(
        r#"{"alpha":0.0001,"beta":0.002,"gamma":0.004,"#,
        r#""gate_lr":1.0,"gate_step":"gradient","refresh_every":20,"patience":40,"redundancy":"weight-cosine","symmetry":"normalize","weight_decay":0.1,"benefit_momentum":0.9,"warmup_steps":100,"#,
        r#""gamma_ramp_steps":0,"target_kept":null,"target_scope":"each-layer","target_schedule":"immediate","price_gain":0.5,"control_fraction":0.8,"#,
        r#""remove":true,"holdout":1000,"record_every":10,"#,
        r#""epochs":50,"refit_fraction":0.2,"finetune_epochs":2,"finetune_lr_scale":1.0,"batch_size":128,"optimizer":{"kind":"adam","lr":0.001,"beta1":0.9,"beta2":0.999,"eps":1e-8},"schedule":"constant","distill_weight":0.0,"distill_temperature":4.0,"#,
        r#""crop_padding":0,"flip":false,"#,
        r#""seed":42}"#,
    );
    for (config, json) in [
        (PruneConfig::default(), default),
        (every_field_changed(), custom),
        (PruneConfig::teacher_default(), teacher),
    ] {
        assert_eq!(serde_json::to_string(&config).unwrap(), json);
        let back: PruneConfig = serde_json::from_str(json).unwrap();
        assert_eq!(back, config);
    }
}

/// A saved configuration missing keys (an older run folder, a hand-written file) reads with
/// the defaults for them, whichever group they belong to.
#[test]
fn missing_keys_read_as_their_defaults() {
    let empty: PruneConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, PruneConfig::default());
    let some: PruneConfig =
        serde_json::from_str(r#"{"gamma": 0.003, "holdout": 10, "flip": true, "seed": 7}"#)
            .unwrap();
    let expected = changed(|c| {
        c.game.gamma = 0.003;
        c.run.holdout = 10;
        c.data.flip = true;
        c.seed = 7;
    });
    assert_eq!(some, expected);
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

/// A distillation setting out of range is refused by its key, in one line, before the run
/// writes anything: the output folder is not even created.
#[test]
fn cli_refuses_bad_distillation_settings_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    for (set, name) in [
        ("distill_weight=1.5", "distill_weight"),
        ("distill_weight=-1", "distill_weight"),
        ("distill_weight=NaN", "distill_weight"),
        ("distill_temperature=0", "distill_temperature"),
        ("distill_temperature=inf", "distill_temperature"),
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_pruning-game"))
            .args(["prune", "--dataset", "teacher", "--set", set, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(!run.status.success(), "{set} was accepted");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(name), "{set}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            !out.exists(),
            "{set}: the refused run created {}",
            out.display()
        );
    }
}
