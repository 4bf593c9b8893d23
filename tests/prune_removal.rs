//! Structural removal: the rebuilt network has fewer units and the same outputs as the gated
//! network (MLP neurons and CNN filters).

use pruning_game::nn::data::{teacher_student, TeacherConfig};
use pruning_game::nn::graph::{Graph, Op};
use pruning_game::nn::{DataSource, Dataset, InputSpec};
use pruning_game::prune::pipeline::split_holdout;
use pruning_game::prune::players::{gates, gates_mut, players};
use pruning_game::prune::{PruneConfig, PruneRun};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Outputs of the pruned network match the gated one to this absolute tolerance.
const OUTPUT_TOL: f32 = 1e-5;

fn max_abs_diff(a: &Graph, b: &Graph, x: &[f32], n: usize) -> f32 {
    let ya = a.predict(x, n).unwrap();
    let yb = b.predict(x, n).unwrap();
    (ya - yb).abs().max()
}

#[test]
fn mlp_removal_after_gate_play_preserves_outputs() {
    let (train, test) = teacher_student(&TeacherConfig {
        train: 2000,
        test: 200,
        ..TeacherConfig::default()
    })
    .unwrap();
    let mut cfg = PruneConfig::teacher_default();
    cfg.training.epochs = 8;
    cfg.game.gamma = 0.01;
    cfg.gates.warmup_steps = 20;
    cfg.gates.patience = 1_000_000;
    let (tr, ho) = split_holdout(&train, 400).unwrap();
    let model = Graph::mlp(&[20, 32, 16, 4], 3).unwrap();
    let mut run = PruneRun::new(model, cfg).unwrap();
    run.run(&tr, &ho, None, None).unwrap();
    let gated = run.graph().clone();
    let zeros: usize = players(&gated)
        .iter()
        .map(|g| gates(&gated, g).iter().filter(|&&s| s == 0.0).count())
        .sum();
    assert!(zeros > 0, "the run should have driven some gates to 0");
    let (pruned, pruner) = run.finish(&ho).unwrap();
    assert_eq!(pruner.certificates().len(), zeros);
    let mut exported = pruned.clone();
    exported.fold_gates().unwrap();
    assert!(exported.parameter_count() < gated.parameter_count());
    let units_before: usize = players(&gated).iter().map(|g| g.channels).sum();
    let units_after: usize = players(&pruned).iter().map(|g| g.channels).sum();
    assert_eq!(units_after, units_before - zeros);
    let n = test.len();
    let d = max_abs_diff(&gated, &exported, test.inputs(), n);
    assert!(d <= OUTPUT_TOL, "max output difference {d}");
}

#[test]
fn cnn_filter_removal_drops_next_input_channels_and_preserves_outputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let n = 40;
    let x: Vec<f32> = (0..n * 144).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y: Vec<u32> = (0..n).map(|_| rng.random_range(0..3)).collect();
    let data = Dataset::new(
        x,
        y,
        vec![1, 12, 12],
        3,
        InputSpec::identity(vec![1, 12, 12]),
        DataSource::Subset {
            parent: Box::new(DataSource::Idx {
                dir: "random".into(),
                split: "test".into(),
            }),
            len: n,
        },
    )
    .unwrap();
    let mut model = Graph::small_cnn(&[1, 12, 12], 3, 9).unwrap();
    let groups = players(&model);
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, vec!["0", "3", "7"]);
    // Partial gates everywhere, and some exactly 0 (the units to remove).
    for g in &groups {
        for (i, s) in gates_mut(&mut model, g).iter_mut().enumerate() {
            *s = if i % 3 == 1 {
                0.0
            } else {
                0.3 + 0.05 * (i % 7) as f32
            };
        }
    }
    let gated = model.clone();
    let run = PruneRun::new(model, PruneConfig::default()).unwrap();
    let (pruned, pruner) = run.finish(&data).unwrap();
    let removed = pruner.certificates().len();
    assert_eq!(
        removed,
        (0..32).filter(|i| i % 3 == 1).count()
            + (0..64).filter(|i| i % 3 == 1).count()
            + (0..128).filter(|i| i % 3 == 1).count()
    );
    let mut exported = pruned.clone();
    exported.fold_gates().unwrap();
    let conv = |name: &str| {
        let node = exported.node(name).unwrap();
        assert!(matches!(exported.nodes()[node].op, Op::Conv2d(_)));
        exported.shapes()[node].dims()[0]
    };
    assert_eq!(conv("0"), 32 - 11);
    assert_eq!(conv("3"), 64 - 21);
    let w3 = exported.param("3.weight").unwrap().value.ncols();
    assert_eq!(
        w3,
        conv("0") * 9,
        "conv 3 should read only the kept filters of conv 0"
    );
    let d = max_abs_diff(&gated, &exported, data.inputs(), n);
    assert!(d <= OUTPUT_TOL, "max output difference {d}");
}
