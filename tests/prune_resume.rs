//! An interrupted and resumed pruning run equals the uninterrupted one (same seed).

use pruning_game::nn::data::{teacher_student, TeacherConfig};
use pruning_game::nn::graph::Graph;
use pruning_game::prune::pipeline::split_holdout;
use pruning_game::prune::{PruneConfig, PruneRun};
use pruning_game::Error;

fn config() -> PruneConfig {
    let mut c = PruneConfig::teacher_default();
    c.training.epochs = 4;
    c.game.gamma = 0.01;
    c.gates.warmup_steps = 20;
    c.gates.refresh_every = 10;
    c.gates.patience = 20;
    c.run.record_every = 5;
    c
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let (train, test) = teacher_student(&TeacherConfig {
        train: 2500,
        test: 200,
        ..TeacherConfig::default()
    })
    .unwrap();
    let (tr, ho) = split_holdout(&train, 500).unwrap();
    let model = Graph::mlp(&[20, 32, 4], 7).unwrap();

    let mut full = PruneRun::new(model.clone(), config()).unwrap();
    full.run(&tr, &ho, Some(&test), None).unwrap();
    let (full_model, full_pruner) = full.finish(&ho).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut first = PruneRun::new(model, config()).unwrap();
    first.run_epoch(&tr, &ho, Some(&test)).unwrap();
    first.run_epoch(&tr, &ho, Some(&test)).unwrap();
    first.save(dir.path()).unwrap();
    drop(first);
    let mut resumed = PruneRun::resume(dir.path(), &config()).unwrap();
    assert_eq!(resumed.epochs_done(), 2);
    resumed
        .run(&tr, &ho, Some(&test), Some(dir.path()))
        .unwrap();
    let (res_model, res_pruner) = resumed.finish(&ho).unwrap();

    assert!(
        !full_pruner.certificates().is_empty(),
        "the run should remove units mid-training"
    );
    assert_eq!(res_model, full_model);
    assert_eq!(
        serde_json::to_string(&res_pruner).unwrap(),
        serde_json::to_string(&full_pruner).unwrap()
    );
}

#[test]
fn resuming_with_another_configuration_is_refused() {
    let (train, _) = teacher_student(&TeacherConfig {
        train: 600,
        test: 100,
        ..TeacherConfig::default()
    })
    .unwrap();
    let (tr, ho) = split_holdout(&train, 100).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut run = PruneRun::new(Graph::mlp(&[20, 8, 4], 1).unwrap(), config()).unwrap();
    run.run_epoch(&tr, &ho, None).unwrap();
    run.save(dir.path()).unwrap();
    let mut other = config();
    other.game.gamma = 0.5;
    assert!(matches!(
        PruneRun::resume(dir.path(), &other),
        Err(Error::ResumeMismatch { .. })
    ));
}
