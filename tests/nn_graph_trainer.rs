//! The one training loop on chains: learning the teacher–student task, exact resume from
//! checkpoints, divergence detection, the step hook (gates moved, channels removed), the
//! cosine schedule, and Fashion-MNIST accuracy on a 10k subset.

use pruning_game::nn::data::{fashion_mnist, teacher_student, TeacherConfig};
use pruning_game::nn::graph::train::{evaluate, FitConfig};
use pruning_game::nn::graph::{Graph, RemovalPlan, StepHook, StepRecord, Trainer};
use pruning_game::nn::{DataSource, Dataset, Distill, InputSpec, LrSchedule, OptimizerConfig};
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

fn config(epochs: usize, batch: usize, optimizer: OptimizerConfig) -> FitConfig {
    FitConfig {
        epochs,
        batch_size: batch,
        optimizer,
        schedule: LrSchedule::Constant,
        crop_padding: 0,
        flip: false,
        seed: 5,
    }
}

#[test]
fn mlp_learns_the_teacher_student_task() {
    let (train, test) = task(8000, 11);
    let graph = Graph::mlp(&[20, 32, 4], 1).expect("mlp");
    let before = evaluate(&graph, &test, 256).expect("eval");
    let mut t = Trainer::new(graph, config(30, 64, OptimizerConfig::adam(3e-3))).expect("trainer");
    let mut train_loss = f64::NAN;
    while !t.finished() {
        t.run_epoch(&train, &mut ()).expect("training");
        train_loss = t.running().loss;
    }
    let after = evaluate(t.graph(), &test, 256).expect("eval");
    eprintln!(
        "teacher-student: loss {:.3} -> train {train_loss:.4} / test {:.4}, test acc {:.3}",
        before.loss,
        after.loss,
        after.accuracy()
    );
    assert!(train_loss < 0.1, "train loss {train_loss}");
    assert!(
        after.accuracy() > 0.93,
        "test accuracy {}",
        after.accuracy()
    );
}

fn resume_matches(optimizer: OptimizerConfig, schedule: LrSchedule) {
    let (train, _) = task(1000, 3);
    let cfg = FitConfig {
        schedule,
        ..config(3, 48, optimizer)
    };
    let graph = Graph::mlp(&[20, 16, 8, 4], 2).expect("mlp");
    let mut full = Trainer::new(graph.clone(), cfg.clone()).expect("trainer");
    full.run(&train, &mut (), None).expect("train");

    let dir = tempfile::tempdir().expect("tempdir");
    let ck = dir.path().join("ck.safetensors");
    let mut first = Trainer::new(graph, cfg).expect("trainer");
    // Interrupt mid-epoch (1000 / 48 = 21 steps per epoch).
    for _ in 0..30 {
        first.step(&train).expect("step");
    }
    first.save_checkpoint(&ck).expect("checkpoint");
    drop(first);
    let mut resumed = Trainer::resume(&ck).expect("resume");
    assert_eq!((resumed.epochs_done(), resumed.global_step()), (1, 30));
    resumed.run(&train, &mut (), None).expect("train");
    assert_eq!(resumed.global_step(), full.global_step());
    assert_eq!(
        resumed.graph(),
        full.graph(),
        "resumed run differs from the uninterrupted one"
    );
}

#[test]
fn resume_from_checkpoint_is_exact_with_adam() {
    resume_matches(OptimizerConfig::adam(1e-3), LrSchedule::Constant);
}

#[test]
fn resume_from_checkpoint_is_exact_with_sgd_momentum_and_cosine_schedule() {
    resume_matches(OptimizerConfig::sgd(0.05, 0.9), LrSchedule::Cosine);
}

#[test]
fn divergence_stops_with_a_typed_error_and_writes_nothing() {
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
    let graph = Graph::mlp(&[20, 8, 4], 1).expect("mlp");
    let cfg = config(2, 32, OptimizerConfig::adam(1e-3));
    let mut t = Trainer::new(graph.clone(), cfg).expect("trainer");
    let e = t
        .run(&bad, &mut (), Some(&ck))
        .expect_err("NaN input must stop training");
    assert!(matches!(e, Error::Diverged { epoch: 0, .. }), "{e}");
    assert!(
        !ck.exists(),
        "no checkpoint may be written after divergence"
    );
    // An absurd learning rate also ends in a typed error, not a broken model on disk.
    let mut t =
        Trainer::new(graph, config(5, 32, OptimizerConfig::sgd(1e30, 0.9))).expect("trainer");
    assert!(matches!(
        t.run(&train, &mut (), Some(&ck)),
        Err(Error::Diverged { .. })
    ));
    if ck.exists() {
        let g = Graph::load(&ck).expect("any checkpoint written must be valid");
        assert!(g.is_finite());
    }
}

/// Halves one gate after every step and removes half of the first layer's units once.
struct Shrinker {
    steps: usize,
    removed: bool,
}

impl StepHook for Shrinker {
    fn after_step(&mut self, t: &mut Trainer, record: &StepRecord) -> pruning_game::Result<()> {
        self.steps += 1;
        let g = t
            .gradients()
            .get(t.graph(), "0.gate")
            .expect("layer 0 gated");
        assert_eq!(
            g.len(),
            t.graph().param("0.gate").expect("gated").value.len()
        );
        t.graph_mut().param_mut("2.gate").expect("gated")[0] *= 0.5;
        if record.global_step == 5 && !self.removed {
            self.removed = true;
            let group = t
                .graph()
                .channel_groups()
                .into_iter()
                .find(|g| g.name == "0")
                .expect("layer 0's group");
            let plan = RemovalPlan::new(t.graph(), &group, (0..8).collect())?;
            t.remove_channels(&plan)?;
        }
        Ok(())
    }
}

#[test]
fn the_hook_sees_every_step_and_can_remove_channels() {
    let (train, _) = task(640, 6);
    let graph = Graph::mlp(&[20, 16, 8, 4], 2).expect("mlp");
    let mut t = Trainer::new(graph, config(2, 64, OptimizerConfig::adam(1e-3))).expect("trainer");
    let mut hook = Shrinker {
        steps: 0,
        removed: false,
    };
    t.run(&train, &mut hook, None).expect("train");
    assert_eq!(hook.steps, 20);
    assert_eq!(t.graph().param("0.gate").expect("gated").value.len(), 8);
    assert_eq!(
        t.graph().param("2.weight").expect("linear").value.ncols(),
        8
    );
    assert!(t.graph().param("2.gate").expect("gated").value[0] < 1e-5);
}

#[test]
fn mlp_reaches_80_percent_on_fashion_mnist_subset_in_one_epoch() {
    let Some((train, test)) = fashion_mnist().expect("Fashion-MNIST present but unreadable") else {
        eprintln!(
            "SKIPPED: Fashion-MNIST not found in {}",
            pruning_game::nn::data::FASHION_MNIST_DIR
        );
        return;
    };
    let train = train.take(10_000);
    let graph = Graph::mlp(&[784, 512, 256, 10], 1)
        .expect("mlp")
        .with_input(train.input_spec().clone())
        .expect("input");
    let mut t = Trainer::new(graph, config(1, 64, OptimizerConfig::adam(1e-3))).expect("trainer");
    t.run_epoch(&train, &mut ()).expect("train");
    let acc = evaluate(t.graph(), &test, 500).expect("eval").accuracy();
    eprintln!(
        "Fashion-MNIST 10k subset, 1 epoch: test accuracy {acc:.4}, {:.2}s",
        t.epoch_seconds()
    );
    assert!(acc >= 0.80, "test accuracy {acc}");
}

#[test]
fn cosine_schedule_changes_the_trajectory_and_ends_with_tiny_steps() {
    let (train, _) = task(640, 8);
    let graph = Graph::mlp(&[20, 16, 4], 3).expect("mlp");
    let run = |schedule| {
        let cfg = FitConfig {
            schedule,
            ..config(2, 64, OptimizerConfig::sgd(0.1, 0.0))
        };
        let mut t = Trainer::new(graph.clone(), cfg).expect("trainer");
        let weight = |t: &Trainer| t.graph().param("0.weight").expect("linear").value.clone();
        let mut before = weight(&t);
        let mut last_change = 0.0f32;
        while !t.finished() {
            t.step(&train).expect("step");
            last_change = (weight(&t) - &before).amax();
            before = weight(&t);
        }
        (t.into_graph(), last_change)
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

/// `KL(softmax(t/T) ‖ softmax(z/T))` averaged over the rows of two logit matrices.
fn mean_kl(teacher: &Graph, student: &Graph, data: &Dataset, temperature: f64) -> f64 {
    let n = data.len();
    let (t, s) = (
        teacher.predict(data.inputs(), n).expect("teacher logits"),
        student.predict(data.inputs(), n).expect("student logits"),
    );
    let log_softmax = |row: Vec<f64>| {
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        row.into_iter().map(|v| v - lse).collect::<Vec<f64>>()
    };
    let mut total = 0.0;
    for r in 0..n {
        let scaled = |m: &nalgebra::DMatrix<f32>| {
            log_softmax(m.row(r).iter().map(|&v| v as f64 / temperature).collect())
        };
        let (lt, ls) = (scaled(&t), scaled(&s));
        total += lt
            .iter()
            .zip(&ls)
            .map(|(a, b)| a.exp() * (a - b))
            .sum::<f64>();
    }
    total / n as f64
}

fn distill(weight: f64, temperature: f64) -> Distill {
    Distill {
        weight,
        temperature,
    }
}

/// On the teacher–student task, a narrow student fine-tuned on the soft term alone (at
/// weight 1) ends closer to a wide trained teacher's softened outputs than it started, and
/// closer than the same fine-tune on the labels.
#[test]
fn distillation_moves_the_students_outputs_towards_the_teacher() {
    let (train, test) = task(4000, 12);
    let mut t = Trainer::new(
        Graph::mlp(&[20, 32, 4], 1).expect("mlp"),
        config(10, 64, OptimizerConfig::adam(3e-3)),
    )
    .expect("trainer");
    t.run(&train, &mut (), None).expect("teacher");
    let teacher = t.into_graph();
    let mut s = Trainer::new(
        Graph::mlp(&[20, 4, 4], 2).expect("mlp"),
        config(2, 64, OptimizerConfig::adam(3e-3)),
    )
    .expect("trainer");
    s.run(&train, &mut (), None).expect("student");
    let student = s.into_graph();

    let temperature = 4.0;
    let finetune = |teacher_for: Option<&Graph>| {
        let mut f = Trainer::new(student.clone(), config(3, 64, OptimizerConfig::adam(3e-3)))
            .expect("trainer");
        if let Some(g) = teacher_for {
            f.set_teacher(g.clone(), distill(1.0, temperature))
                .expect("teacher");
        }
        f.run(&train, &mut (), None).expect("fine-tune");
        f.into_graph()
    };
    let before = mean_kl(&teacher, &student, &test, temperature);
    let plain = mean_kl(&teacher, &finetune(None), &test, temperature);
    let distilled = mean_kl(&teacher, &finetune(Some(&teacher)), &test, temperature);
    eprintln!("KL to the teacher at T = {temperature}: {before:.5} -> plain {plain:.5}, distilled {distilled:.5}");
    assert!(distilled < before, "KL {before} -> {distilled}");
    assert!(distilled < plain, "distilled {distilled} vs plain {plain}");
}

/// A teacher at weight 0 trains exactly as no teacher.
#[test]
fn a_teacher_at_weight_zero_changes_nothing() {
    let (train, _) = task(600, 13);
    let cfg = config(2, 50, OptimizerConfig::adam(1e-3));
    let graph = Graph::mlp(&[20, 8, 4], 3).expect("mlp");
    let mut plain = Trainer::new(graph.clone(), cfg.clone()).expect("trainer");
    plain.run(&train, &mut (), None).expect("train");
    let mut zero = Trainer::new(graph, cfg).expect("trainer");
    zero.set_teacher(Graph::mlp(&[20, 16, 4], 4).expect("mlp"), distill(0.0, 2.0))
        .expect("teacher");
    zero.run(&train, &mut (), None).expect("train");
    assert_eq!(zero.graph(), plain.graph());
    assert_eq!(
        zero.running().loss.to_bits(),
        plain.running().loss.to_bits()
    );
}

/// A run distilling from a teacher resumes mid-epoch to the uninterrupted result when given
/// the same teacher and settings again, and refuses to step or to overwrite its checkpoint
/// without it, with another teacher or other settings; a checkpoint written without a
/// teacher refuses one.
#[test]
fn resume_with_a_teacher_is_exact_and_refuses_any_other() {
    let (train, _) = task(1000, 14);
    let cfg = config(3, 48, OptimizerConfig::adam(1e-3));
    let graph = Graph::mlp(&[20, 6, 4], 2).expect("mlp");
    let teacher = Graph::mlp(&[20, 16, 4], 7).expect("mlp");
    let settings = distill(0.5, 3.0);
    let mut full = Trainer::new(graph.clone(), cfg.clone()).expect("trainer");
    full.set_teacher(teacher.clone(), settings)
        .expect("teacher");
    full.run(&train, &mut (), None).expect("train");

    let dir = tempfile::tempdir().expect("tempdir");
    let ck = dir.path().join("ck.safetensors");
    let mut first = Trainer::new(graph.clone(), cfg.clone()).expect("trainer");
    first
        .set_teacher(teacher.clone(), settings)
        .expect("teacher");
    for _ in 0..30 {
        first.step(&train).expect("step");
    }
    first.save_checkpoint(&ck).expect("checkpoint");
    drop(first);

    let refused = |set: &dyn Fn(&mut Trainer)| {
        let mut r = Trainer::resume(&ck).expect("resume");
        let at = r.global_step();
        set(&mut r);
        let e = r
            .step(&train)
            .expect_err("a mismatched teacher must be refused");
        assert!(matches!(e, Error::ResumeMismatch { .. }), "{e}");
        assert_eq!(r.global_step(), at, "a refused step moved the trainer");
        let e = r
            .save_checkpoint(&ck)
            .expect_err("a mismatched teacher must not overwrite the checkpoint");
        assert!(matches!(e, Error::ResumeMismatch { .. }), "{e}");
    };
    refused(&|_| {});
    let other = Graph::mlp(&[20, 16, 4], 8).expect("mlp");
    refused(&|r| r.set_teacher(other.clone(), settings).expect("teacher"));
    refused(&|r| {
        r.set_teacher(teacher.clone(), distill(0.5, 2.0))
            .expect("teacher")
    });
    refused(&|r| {
        r.set_teacher(teacher.clone(), distill(0.25, 3.0))
            .expect("teacher")
    });

    let mut resumed = Trainer::resume(&ck).expect("resume");
    resumed
        .set_teacher(teacher.clone(), settings)
        .expect("teacher");
    resumed.run(&train, &mut (), None).expect("train");
    assert_eq!(resumed.global_step(), full.global_step());
    assert_eq!(
        resumed.graph(),
        full.graph(),
        "resumed run differs from the uninterrupted one"
    );

    let mut plain = Trainer::new(graph, cfg).expect("trainer");
    plain.step(&train).expect("step");
    plain.save_checkpoint(&ck).expect("checkpoint");
    refused(&|r| r.set_teacher(teacher.clone(), settings).expect("teacher"));
}

/// A teacher must take the student's inputs, give its outputs and hold finite values, and
/// the settings must be in range.
#[test]
fn a_teacher_that_does_not_fit_is_refused() {
    let mut t = Trainer::new(
        Graph::mlp(&[20, 6, 4], 2).expect("mlp"),
        config(1, 32, OptimizerConfig::adam(1e-3)),
    )
    .expect("trainer");
    for (teacher, settings, what) in [
        (
            Graph::mlp(&[21, 6, 4], 1),
            distill(0.5, 4.0),
            "teacher inputs",
        ),
        (
            Graph::mlp(&[20, 6, 5], 1),
            distill(0.5, 4.0),
            "teacher outputs",
        ),
        (
            Graph::mlp(&[20, 6, 4], 1),
            distill(1.5, 4.0),
            "distill_weight",
        ),
        (
            Graph::mlp(&[20, 6, 4], 1),
            distill(0.5, 0.0),
            "distill_temperature",
        ),
    ] {
        let e = t
            .set_teacher(teacher.expect("mlp"), settings)
            .expect_err(what);
        assert!(e.to_string().contains(what), "{what}: {e}");
    }
    let mut bad = Graph::mlp(&[20, 6, 4], 1).expect("mlp");
    bad.param_mut("0.weight").expect("weight")[0] = f32::NAN;
    let e = t.set_teacher(bad, distill(0.5, 4.0)).expect_err("NaN");
    assert!(e.to_string().contains("teacher"), "{e}");
}
