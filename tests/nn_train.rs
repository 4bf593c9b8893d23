//! Training: learning the teacher–student task, exact resume from checkpoints, divergence
//! detection, observer hooks, and Fashion-MNIST accuracy on a 10k subset.

use pruning_game::nn::data::{fashion_mnist, teacher_student, TeacherConfig};
use pruning_game::nn::{
    evaluate, DataSource, Dataset, History, InputSpec, LrSchedule, Model, Observer,
    OptimizerConfig, StepContext, TrainConfig, Trainer,
};
use pruning_game::Error;

fn task(train: usize, seed: u64) -> (Dataset, Dataset) {
    teacher_student(&TeacherConfig {
        train,
        test: 1000,
        seed,
        ..TeacherConfig::default()
    })
    .expect("task")
}

fn config(epochs: usize, batch: usize, optimizer: OptimizerConfig) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: batch,
        optimizer,
        seed: 5,
        progress: false,
        ..TrainConfig::default()
    }
}

#[test]
fn nn_mlp_learns_the_teacher_student_task() {
    let (train, test) = task(8000, 11);
    let model = Model::mlp(&[20, 32, 4], 1).expect("mlp");
    let before = evaluate(&model, &test, 256).expect("eval");
    let mut t = Trainer::new(model, config(30, 64, OptimizerConfig::adam(3e-3))).expect("trainer");
    let records = t.run(&train, Some(&test), &mut ()).expect("training");
    let last = records.last().expect("epochs ran");
    let test_stats = last.test.expect("test evaluated");
    eprintln!(
        "teacher-student: loss {:.3} -> train {:.4} / test {:.4}, test acc {:.3}",
        before.loss,
        last.train.loss,
        test_stats.loss,
        test_stats.accuracy()
    );
    assert!(last.train.loss < 0.1, "train loss {}", last.train.loss);
    assert!(
        test_stats.accuracy() > 0.93,
        "test accuracy {}",
        test_stats.accuracy()
    );
}

fn resume_matches(optimizer: OptimizerConfig, schedule: LrSchedule) {
    let (train, _) = task(1000, 3);
    let cfg = TrainConfig {
        schedule,
        ..config(3, 48, optimizer)
    };
    let model = Model::mlp(&[20, 16, 8, 4], 2).expect("mlp");
    let mut full = Trainer::new(model.clone(), cfg.clone()).expect("trainer");
    full.run(&train, None, &mut ()).expect("train");

    let dir = tempfile::tempdir().expect("tempdir");
    let ck = dir.path().join("ck.safetensors");
    let mut first = Trainer::new(model, cfg).expect("trainer");
    // Interrupt mid-epoch (1000 / 48 = 21 steps per epoch).
    for _ in 0..30 {
        first.step(&train).expect("step");
    }
    first.save_checkpoint(&ck).expect("checkpoint");
    drop(first);
    let mut resumed = Trainer::resume(&ck).expect("resume");
    assert_eq!(resumed.position(), (1, 9));
    resumed.run(&train, None, &mut ()).expect("train");
    assert_eq!(resumed.global_step(), full.global_step());
    assert_eq!(
        resumed.model(),
        full.model(),
        "resumed run differs from the uninterrupted one"
    );
}

#[test]
fn nn_resume_from_checkpoint_is_exact_with_adam() {
    resume_matches(OptimizerConfig::adam(1e-3), LrSchedule::Constant);
}

#[test]
fn nn_resume_from_checkpoint_is_exact_with_sgd_momentum_and_cosine_schedule() {
    resume_matches(OptimizerConfig::sgd(0.05, 0.9), LrSchedule::Cosine);
}

#[test]
fn nn_divergence_stops_with_a_typed_error_and_writes_nothing() {
    let (train, _) = task(300, 4);
    let mut x = train.inputs().to_vec();
    x[100] = f32::NAN;
    let bad = Dataset::new(
        x,
        train.labels().to_vec(),
        train.shape().to_vec(),
        train.classes(),
        InputSpec::identity(vec![20]),
        DataSource::TeacherStudent(TeacherConfig::default()),
    )
    .expect("dataset");
    let dir = tempfile::tempdir().expect("tempdir");
    let ck = dir.path().join("ck.safetensors");
    let cfg = TrainConfig {
        checkpoint: Some(ck.clone()),
        ..config(2, 32, OptimizerConfig::adam(1e-3))
    };
    let mut t = Trainer::new(Model::mlp(&[20, 8, 4], 1).expect("mlp"), cfg).expect("trainer");
    let e = t
        .run(&bad, None, &mut ())
        .expect_err("NaN input must stop training");
    assert!(matches!(e, Error::Diverged { epoch: 0, .. }), "{e}");
    assert!(
        !ck.exists(),
        "no checkpoint may be written after divergence"
    );
    // An absurd learning rate also ends in a typed error, not a broken model on disk.
    let cfg = TrainConfig {
        checkpoint: Some(ck.clone()),
        ..config(5, 32, OptimizerConfig::sgd(1e30, 0.9))
    };
    let mut t = Trainer::new(Model::mlp(&[20, 8, 4], 1).expect("mlp"), cfg).expect("trainer");
    assert!(matches!(
        t.run(&train, None, &mut ()),
        Err(Error::Diverged { .. })
    ));
    if ck.exists() {
        let m = Model::load(&ck).expect("any checkpoint written must be valid");
        assert!(m.is_finite());
    }
}

/// Halves one gate after every step and removes half the first layer once.
struct Shrinker {
    steps: usize,
    removed: bool,
}

impl Observer for Shrinker {
    fn on_step(&mut self, ctx: &mut StepContext<'_>) -> pruning_game::Result<()> {
        self.steps += 1;
        let g = ctx.grads.gate(0).expect("layer 0 gated");
        assert_eq!(g.len(), ctx.model.gate(0).expect("gated").len());
        ctx.model.gate_mut(2).expect("gated")[0] *= 0.5;
        if ctx.record.global_step == 5 && !self.removed {
            self.removed = true;
            let keep: Vec<usize> = (0..8).collect();
            ctx.remove_units(0, keep);
        }
        Ok(())
    }
}

#[test]
fn nn_observer_sees_every_step_and_can_remove_units() {
    let (train, test) = task(640, 6);
    let mut t = Trainer::new(
        Model::mlp(&[20, 16, 8, 4], 2).expect("mlp"),
        config(2, 64, OptimizerConfig::adam(1e-3)),
    )
    .expect("trainer");
    let mut obs = Shrinker {
        steps: 0,
        removed: false,
    };
    t.run(&train, Some(&test), &mut obs).expect("train");
    assert_eq!(obs.steps, 20);
    assert_eq!(t.model().gate(0).expect("gated").len(), 8);
    assert!(t.model().gate(2).expect("gated")[0] < 1e-5);
    let mut h = History {
        keep_steps: true,
        ..History::default()
    };
    t.set_epochs(3);
    t.run(&train, Some(&test), &mut h).expect("train");
    assert_eq!((h.steps.len(), h.epochs.len()), (10, 1));
    assert_eq!(h.epochs[0].epoch, 2);
}

#[test]
fn nn_mlp_reaches_80_percent_on_fashion_mnist_subset_in_one_epoch() {
    let Some((train, test)) = fashion_mnist().expect("Fashion-MNIST present but unreadable") else {
        eprintln!(
            "SKIPPED: Fashion-MNIST not found in {}",
            pruning_game::nn::data::FASHION_MNIST_DIR
        );
        return;
    };
    let train = train.take(10_000);
    let model = Model::mlp(&[784, 512, 256, 10], 1)
        .expect("mlp")
        .with_input(train.input_spec().clone())
        .expect("input");
    let mut t = Trainer::new(model, config(1, 64, OptimizerConfig::adam(1e-3))).expect("trainer");
    let rec = t.run(&train, Some(&test), &mut ()).expect("train");
    let acc = rec[0].test.expect("evaluated").accuracy();
    eprintln!(
        "Fashion-MNIST 10k subset, 1 epoch: test accuracy {acc:.4}, {:.2}s",
        rec[0].seconds
    );
    assert!(acc >= 0.80, "test accuracy {acc}");
}

#[test]
fn nn_cosine_schedule_changes_the_trajectory_and_ends_with_tiny_steps() {
    let (train, _) = task(640, 8);
    let model = Model::mlp(&[20, 16, 4], 3).expect("mlp");
    let run = |schedule| {
        let cfg = TrainConfig {
            schedule,
            ..config(2, 64, OptimizerConfig::sgd(0.1, 0.0))
        };
        let mut t = Trainer::new(model.clone(), cfg).expect("trainer");
        let mut before = t.model().clone();
        let mut last_change = 0.0f32;
        while !t.finished() {
            t.step(&train).expect("step");
            let (w1, _) = t.model().layers()[0].params().expect("linear");
            let (w0, _) = before.layers()[0].params().expect("linear");
            last_change = (w1 - w0).amax();
            before = t.model().clone();
        }
        (t.into_model(), last_change)
    };
    let (constant, c_last) = run(LrSchedule::Constant);
    let (cosine, k_last) = run(LrSchedule::Cosine);
    assert_ne!(constant, cosine);
    // The last of 20 steps has scale (1 + cos(19π/20)) / 2 ≈ 0.006.
    assert!(
        k_last < 0.05 * c_last,
        "cosine last step {k_last} vs constant {c_last}"
    );
}
