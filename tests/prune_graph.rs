//! The pruner on graphs with BatchNorm and residual streams: its players are the channel
//! groups, its normalisation keeps the function, its removals keep the outputs, and a short
//! run on a ResNet trains, plays and removes with certificates.

mod common;

use common::images;
use nalgebra::DMatrix;
use pruning_game::nn::graph::{Graph, Mode};
use pruning_game::nn::{Dataset, InputSpec};
use pruning_game::prune::players::{gates, gates_mut, players};
use pruning_game::prune::{PruneConfig, PruneRun};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Outputs agree to this relative tolerance: `f32` evaluation-mode passes of an 8-layer
/// network whose removed channels contribute exact zeros; what differs is summation order.
const OUTPUT_TOL: f32 = 1e-5;

fn resnet(seed: u64) -> Graph {
    Graph::resnet(8, InputSpec::identity(vec![1, 12, 12]), 4, seed).unwrap()
}

fn logits(g: &Graph, data: &Dataset, n: usize) -> DMatrix<f32> {
    let mut ws = pruning_game::nn::graph::GraphWorkspace::new(g, n);
    let y = g
        .forward(&mut ws, &data.inputs()[..n * 144], n, Mode::Eval)
        .unwrap();
    DMatrix::from_row_slice(n, g.output_len(), y)
}

/// The players of a ResNet are its inner block channels and its residual streams.
#[test]
fn resnet_players_are_the_inner_channels_and_the_streams() {
    let names: Vec<String> = players(&resnet(1)).into_iter().map(|g| g.name).collect();
    assert_eq!(
        names,
        [
            "conv1",
            "layer1.0.conv1",
            "layer2.0.conv1",
            "layer2.0.conv2",
            "layer3.0.conv1",
            "layer3.0.conv2"
        ]
    );
}

/// Channels at gate 0 in every group, residual streams included, leave through the pruner's
/// final removal and the eval-mode outputs stay those of the gated network.
#[test]
fn final_removal_of_zero_gates_keeps_resnet_outputs() {
    let data = images(64, 3);
    let mut g = resnet(2);
    // Trained BatchNorm statistics, so that a wrong cut would show.
    let mut warm =
        pruning_game::nn::graph::Trainer::new(g.clone(), PruneConfig::default().train_config(1))
            .unwrap();
    warm.run(&data, &mut (), None).unwrap();
    g = warm.into_graph();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for group in players(&g) {
        for s in gates_mut(&mut g, &group).iter_mut() {
            *s = if rng.random_bool(0.3) {
                0.0
            } else {
                rng.random_range(0.2..1.0)
            };
        }
    }
    let zeros: usize = players(&g)
        .iter()
        .map(|p| gates(&g, p).iter().filter(|&&s| s == 0.0).count())
        .sum();
    let before = logits(&g, &data, 32);
    let run = PruneRun::new(g.clone(), PruneConfig::default()).unwrap();
    let (pruned, pruner) = run.finish(&data).unwrap();
    assert_eq!(pruner.certificates().len(), zeros);
    let after = logits(&pruned, &data, 32);
    let scale = before.amax().max(1.0);
    assert!(
        (&after - &before).amax() <= OUTPUT_TOL * scale,
        "outputs moved by {}",
        (&after - &before).amax()
    );
    assert!(pruned.parameter_count() < g.parameter_count());
    assert!(pruned.macs_per_sample() < g.macs_per_sample());
}

/// A short game on a ResNet: gates move, some reach 0 and leave with certificates, every
/// stream still has a channel, and the pruned network's outputs are what its gates say.
#[test]
fn a_short_game_prunes_a_resnet_with_certificates() {
    let train = images(600, 5);
    let holdout = images(200, 6);
    let mut config = PruneConfig::default();
    config.training.epochs = 6;
    config.training.refit_fraction = 0.0;
    config.game.gamma = 0.02;
    config.game.beta = 0.0;
    config.gates.warmup_steps = 10;
    config.gates.refresh_every = 5;
    config.gates.patience = 5;
    config.training.batch_size = 32;
    let mut run = PruneRun::new(resnet(7), config).unwrap();
    run.run(&train, &holdout, Some(&holdout), None).unwrap();
    let evals = run.pruner().evaluations().to_vec();
    assert_eq!(evals.len(), 6);
    assert!(evals.iter().all(|e| e.layers.len() == 6));
    let (pruned, pruner) = run.finish(&holdout).unwrap();
    let certs = pruner.certificates();
    assert!(!certs.is_empty(), "a price of 0.02 should remove channels");
    for c in certs {
        assert!((c.margin - (c.cost - c.benefit)).abs() < 1e-12);
    }
    for group in players(&pruned) {
        assert!(group.channels >= 1, "{} lost every channel", group.name);
    }
    // The residual streams lose channels too (they are players like any other).
    let streams = ["conv1", "layer2.0.conv2", "layer3.0.conv2"];
    assert!(
        certs.iter().any(|c| streams.contains(&c.group.as_str())),
        "no stream channel left: {:?}",
        pruner.kept_units()
    );
    let mut folded = pruned.clone();
    folded.fold_gates().unwrap();
    let (a, b) = (logits(&pruned, &holdout, 50), logits(&folded, &holdout, 50));
    assert!((&a - &b).amax() <= OUTPUT_TOL * a.amax().max(1.0));
}
