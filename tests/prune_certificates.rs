//! Certificates are consistent: every unit called dominated (T3/T4) has a benefit, measured
//! independently on held-out data by a finite difference of the loss in its gate, below the
//! smallest cost it can face in any equilibrium; T3 units have benefit below γ; margins add up.

use pruning_game::nn::data::{teacher_student, TeacherConfig};
use pruning_game::nn::graph::train::evaluate;
use pruning_game::nn::graph::Graph;
use pruning_game::nn::Dataset;
use pruning_game::prune::pipeline::split_holdout;
use pruning_game::prune::players::{gates_mut, player};
use pruning_game::prune::{PruneConfig, PruneRun};

/// Gate step of the one-sided finite difference at `s_i = 0`.
const FD_STEP: f32 = 1e-3;
/// Agreement between the analytic and finite-difference benefit (absolute part).
const FD_ABS_TOL: f64 = 2e-4;

fn holdout_loss(model: &Graph, data: &Dataset) -> f64 {
    evaluate(model, data, 500).unwrap().loss
}

#[test]
fn dominated_units_really_do_not_pay_for_their_cost() {
    let (train, _) = teacher_student(&TeacherConfig {
        train: 4000,
        test: 100,
        ..TeacherConfig::default()
    })
    .unwrap();
    let mut cfg = PruneConfig::teacher_default();
    cfg.training.epochs = 8;
    cfg.game.gamma = 0.006;
    cfg.gates.warmup_steps = 40;
    // Removal at the end only, so the model the certificates describe is at hand.
    cfg.gates.patience = 1_000_000;
    let (tr, ho) = split_holdout(&train, 800).unwrap();
    let model = Graph::mlp(&[20, 32, 4], 11).unwrap();
    let mut run = PruneRun::new(model, cfg.clone()).unwrap();
    run.run(&tr, &ho, None, None).unwrap();
    let gated = run.graph().clone();
    let gamma_of: std::collections::HashMap<String, f64> = run
        .pruner()
        .kept_units()
        .into_iter()
        .map(|(group, _)| group)
        .zip(run.pruner().gammas())
        .collect();
    let (_, pruner) = run.finish(&ho).unwrap();
    let certs = pruner.certificates();
    assert!(!certs.is_empty(), "the run should remove units");
    let base = holdout_loss(&gated, &ho);
    let mut dominated = 0;
    for c in certs {
        let gamma = gamma_of[&c.group];
        assert!((c.margin - (c.cost - c.benefit)).abs() < 1e-12);
        assert!(
            c.cost >= gamma && c.cost_bound >= gamma && c.cost_bound <= c.cost + 1e-12
                || c.cost_bound > c.cost
        );
        // Independent benefit: −(L(s_i = h) − L(0)) / h on the held-out data.
        let mut m = gated.clone();
        let group = player(&m, &c.group).unwrap();
        gates_mut(&mut m, &group)[c.unit] = FD_STEP;
        let fd = -(holdout_loss(&m, &ho) - base) / FD_STEP as f64;
        assert!(
            (fd - c.benefit).abs() <= FD_ABS_TOL + 0.05 * c.benefit.abs(),
            "unit {}: finite difference {fd} vs certificate {}",
            c.unit,
            c.benefit
        );
        if c.t3 {
            assert!(c.dominated);
            assert!(
                fd < gamma,
                "T3 unit {}: benefit {fd} >= gamma {gamma}",
                c.unit
            );
        }
        if c.dominated {
            dominated += 1;
            assert!(
                fd < c.cost_bound,
                "dominated unit {}: benefit {fd} >= equilibrium cost bound {}",
                c.unit,
                c.cost_bound
            );
        } else {
            assert!(c.benefit >= c.cost_bound);
        }
    }
    assert!(
        dominated > 0,
        "some removed unit should be provably dominated"
    );
}
