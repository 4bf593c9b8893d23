//! Gates settle once the ReLU scale symmetry is broken, and do not when it is left unbroken
//! (proofs/S1-scale-symmetry.md). On the teacher–student task the pruner keeps a width
//! within ±20% of the teacher's from a student four times wider.

use pruning_game::nn::data::{teacher_student, TeacherConfig};
use pruning_game::nn::graph::Graph;
use pruning_game::prune::pipeline::split_holdout;
use pruning_game::prune::players::players;
use pruning_game::prune::{Evaluation, PruneConfig, PruneRun, ScaleSymmetry};

/// Evaluations (one per epoch) averaged at the end of the run.
const TAIL: usize = 10;

struct Outcome {
    residual: f64,
    drift: f64,
    kept: usize,
    /// Mean gate and mean outgoing-weight norm of layer 0 at the first and last evaluation.
    gate: (f64, f64),
    outgoing: (f64, f64),
}

fn tail_mean(evals: &[Evaluation], f: impl Fn(&Evaluation) -> f64) -> f64 {
    let tail = &evals[evals.len() - TAIL..];
    tail.iter().map(f).sum::<f64>() / TAIL as f64
}

fn run(symmetry: ScaleSymmetry) -> Outcome {
    let teacher = TeacherConfig::default();
    let (train, _) = teacher_student(&teacher).unwrap();
    // The game alone, for 40 epochs: no refit after it.
    let mut cfg = PruneConfig::teacher_default();
    cfg.gates.symmetry = symmetry;
    cfg.training.epochs = 40;
    cfg.training.refit_fraction = 0.0;
    let (tr, ho) = split_holdout(&train, cfg.run.holdout).unwrap();
    let model = Graph::mlp(
        &[teacher.inputs, 4 * teacher.width, teacher.classes],
        cfg.seed,
    )
    .unwrap();
    let mut run = PruneRun::new(model, cfg).unwrap();
    run.run(&tr, &ho, None, None).unwrap();
    let evals = run.pruner().evaluations().to_vec();
    let (model, _) = run.finish(&ho).unwrap();
    let (first, last) = (&evals[0].layers[0], &evals[evals.len() - 1].layers[0]);
    Outcome {
        residual: tail_mean(&evals, |e| e.layers[0].natural_residual_train),
        drift: tail_mean(&evals, |e| e.layers[0].drift),
        kept: players(&model)[0].channels,
        gate: (first.mean_gate, last.mean_gate),
        outgoing: (first.mean_outgoing_norm, last.mean_outgoing_norm),
    }
}

#[test]
fn gates_settle_only_when_the_scale_symmetry_is_broken() {
    let broken = run(ScaleSymmetry::Normalize);
    let plain = run(ScaleSymmetry::Unbroken);
    eprintln!(
        "normalize: residual {:.3e} drift {:.3e} kept {} gate {:?} outgoing {:?}; \
         unbroken: residual {:.3e} drift {:.3e} kept {} gate {:?} outgoing {:?}",
        broken.residual,
        broken.drift,
        broken.kept,
        broken.gate,
        broken.outgoing,
        plain.residual,
        plain.drift,
        plain.kept,
        plain.gate,
        plain.outgoing
    );
    assert!(broken.residual < 1e-2, "residual {}", broken.residual);
    assert!(broken.residual < 0.5 * plain.residual);
    assert!(broken.drift < 0.5 * plain.drift);
    // The failure the breaking prevents (S1): unbroken, the gates sink while the outgoing
    // weights grow to carry the scale they give up; broken, the gates do not sink. The
    // margins (0.1 of a gate) are a third of the unbroken run's fall over 40 epochs.
    assert!(
        plain.gate.1 < plain.gate.0 - 0.1,
        "unbroken gates {:?}",
        plain.gate
    );
    assert!(
        plain.outgoing.1 > plain.outgoing.0,
        "unbroken outgoing norms {:?}",
        plain.outgoing
    );
    assert!(
        broken.gate.1 > broken.gate.0 - 0.1,
        "broken gates {:?}",
        broken.gate
    );
    // Teacher width 8: keep 8 ± 20%.
    let width = TeacherConfig::default().width as f64;
    assert!(
        (broken.kept as f64 - width).abs() <= 0.2 * width,
        "kept {} units for a teacher of width {width}",
        broken.kept
    );
}
