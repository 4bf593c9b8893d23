//! Breaking the scale symmetry of gated channels (`proofs/S1-scale-symmetry.md`).
//!
//! A gate multiplies its channel after a positively homogeneous map, so
//! `(s_i, θ_in,i, θ_out,i) → (s_i k, θ_in,i / k_in, θ_out,i / k_out)` with `k = k_in k_out`
//! leaves the network's function unchanged: without a rule, gates drift to 0 while the
//! weights around them grow. [`ScaleSymmetry::Normalize`] returns each channel's incoming
//! scale (the BatchNorm `γ, β` before the gate, or the producers' rows and biases) and its
//! outgoing weights to their initial norms after every step, and the gate absorbs the ratio —
//! unless that would take it past 1, when it stops at 1 and the outgoing weights keep the
//! excess. The gate is then the channel's only free scale.
//!
//! A group whose every consumer feeds a BatchNorm has one more symmetry: all of its gates
//! scaled by one factor change nothing, because the BatchNorms after the consumers undo it.
//! Along that direction the benefits cancel (`Σ_i s_i b_i = 0`), so any price pushes every
//! gate of the group down together until the network breaks. `Normalize` removes it too:
//! after each gate step the group's gates are divided by their largest value, so they live
//! on `max_i s_i = 1` — each channel's gate is its participation relative to the group's
//! strongest channel.

use super::config::ScaleSymmetry;
use super::players::{
    gates, gates_mut, incoming_norms, outgoing_norms, scale_incoming, scale_outgoing,
};
use super::pruner::EquilibriumPruner;
use super::state::GroupState;
use crate::nn::graph::{ChannelGroup, Graph, Op, ParamKind};

impl EquilibriumPruner {
    /// The configured rule, once per step.
    pub(super) fn break_symmetry(&self, graph: &mut Graph, groups: &[ChannelGroup]) {
        match self.config.gates.symmetry {
            ScaleSymmetry::WeightDecay => {
                let factor = (1.0
                    - self.config.training.weight_lr() * self.config.gates.weight_decay)
                    as f32;
                decay_weights(graph, groups, factor);
            }
            ScaleSymmetry::Normalize => {
                for (l, g) in self.groups.iter().zip(groups) {
                    normalize(graph, g, l);
                }
            }
            ScaleSymmetry::Unbroken => {}
        }
    }
}

/// The function-preserving rescaling of [`ScaleSymmetry::Normalize`] for one group:
/// `θ_in ← θ_in ρ_in/‖θ_in‖`, and the gate absorbs `k = (‖θ_in‖/ρ_in)(‖θ_out‖/ρ_out)`
/// while `θ_out` returns to `ρ_out` — unless `s k > 1`, then `s = 1` and `θ_out` keeps the
/// excess.
pub(super) fn normalize(graph: &mut Graph, group: &ChannelGroup, l: &GroupState) {
    let rin = incoming_norms(graph, group);
    let rout = outgoing_norms(graph, group);
    let mut s: Vec<f32> = gates(graph, group).to_vec();
    let mut scale_in = vec![1.0f32; s.len()];
    let mut scale_out = vec![1.0f32; s.len()];
    for i in 0..s.len() {
        if rin[i] <= 0.0
            || rout[i] <= 0.0
            || l.rho_in[i] <= 0.0
            || l.rho_out[i] <= 0.0
            || l.is_protected(i)
        {
            continue;
        }
        let c_in = l.rho_in[i] / rin[i];
        let gate = s[i] as f64;
        let k = (rin[i] / l.rho_in[i]) * (rout[i] / l.rho_out[i]);
        let gate_new = (gate * k).min(1.0);
        scale_in[i] = c_in as f32;
        scale_out[i] = if gate == 0.0 {
            (l.rho_out[i] / rout[i]) as f32
        } else {
            (gate / (gate_new * c_in)) as f32
        };
        s[i] = gate_new as f32;
    }
    scale_incoming(graph, group, &scale_in);
    scale_outgoing(graph, group, &scale_out);
    gates_mut(graph, group).copy_from_slice(&s);
}

/// The (consumer, BatchNorm) pairs of `group` when its channels reach weights only through
/// ReLU, pooling, flatten and adds, and every consumer's one reader is a BatchNorm — the case
/// of the collective symmetry (a bias before BatchNorm is subtracted with the batch mean, so
/// it does not matter); `None` otherwise.
pub(super) fn downstream_batch_norms(
    graph: &Graph,
    group: &ChannelGroup,
) -> Option<Vec<(usize, usize)>> {
    let readers = graph.consumers();
    let mut stack: Vec<usize> = group
        .per_channel
        .iter()
        .copied()
        .filter(|&m| matches!(graph.nodes[m].op, Op::Gate(_)))
        .collect();
    let mut seen = vec![false; graph.nodes.len()];
    let mut pairs = Vec::new();
    while let Some(at) = stack.pop() {
        for &r in &readers[at] {
            if std::mem::replace(&mut seen[r], true) {
                continue;
            }
            match &graph.nodes[r].op {
                Op::Linear(_) | Op::Conv2d(_) => match readers[r].as_slice() {
                    [bn] if matches!(graph.nodes[*bn].op, Op::BatchNorm(_)) => pairs.push((r, *bn)),
                    _ => return None,
                },
                Op::Relu(_)
                | Op::MaxPool2d(_)
                | Op::AvgPool2d(_)
                | Op::GlobalAvgPool(_)
                | Op::Flatten(_)
                | Op::Add(_)
                | Op::Gate(_) => stack.push(r),
                _ => return None,
            }
        }
    }
    (!pairs.is_empty()).then_some(pairs)
}

impl EquilibriumPruner {
    /// The collective half of [`ScaleSymmetry::Normalize`], right after the gates' step:
    /// each group read only through BatchNorm has its gates divided by their largest value.
    /// Training-mode passes normalise with batch statistics, so the function is unchanged;
    /// the running statistics are left alone, because every pass they average over sees
    /// gates normalised this way (rescaling them too would compound with the price's pull on
    /// every step, and did: running variances of 1e11 within three epochs).
    pub(super) fn normalize_groups(&self, graph: &mut Graph, groups: &[ChannelGroup]) {
        if self.config.gates.symmetry != ScaleSymmetry::Normalize {
            return;
        }
        for (l, g) in self.groups.iter().zip(groups) {
            if l.protected.is_some() || downstream_batch_norms(graph, g).is_none() {
                continue;
            }
            let top = gates(graph, g).iter().copied().fold(0.0f32, f32::max);
            if top > 0.0 && top < 1.0 {
                gates_mut(graph, g)
                    .iter_mut()
                    .for_each(|v| *v = (*v / top).min(1.0));
            }
        }
    }
}

/// Multiplies every trainable weight by `factor`, and the biases of the player groups'
/// producers (the biases of the output layer keep their scale, as plain weight decay on the
/// players' parameters would).
fn decay_weights(graph: &mut Graph, groups: &[ChannelGroup], factor: f32) {
    let mut exempt = Vec::new();
    for n in &graph.nodes {
        if let Op::Linear(d) = &n.op {
            exempt.extend(d.bias);
        }
        if let Op::Conv2d(c) = &n.op {
            exempt.extend(c.bias);
        }
    }
    for g in groups {
        for &p in &g.producers {
            match &graph.nodes[p].op {
                Op::Linear(d) => exempt.retain(|&b| Some(b) != d.bias),
                Op::Conv2d(c) => exempt.retain(|&b| Some(b) != c.bias),
                _ => {}
            }
        }
    }
    for (i, p) in graph.params.iter_mut().enumerate() {
        if p.kind == ParamKind::Weight && !exempt.contains(&i) {
            p.value.iter_mut().for_each(|v| *v *= factor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::graph::train::FitConfig;
    use crate::nn::graph::Trainer;
    use crate::nn::{DataSource, Dataset, InputSpec};
    use crate::prune::players::players;
    use crate::prune::{EquilibriumPruner, PruneConfig};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Outputs before and after the normalising rescaling agree to this tolerance (relative
    /// to the largest logit: `f32` products rescaled by factors of order 1).
    const TOL: f32 = 1e-5;

    /// Weights away from their initial norms and gates off 1 (one at 0, some whose rescaled
    /// value would pass 1), in every group.
    fn disturb(graph: &mut Graph) {
        for (k, p) in graph.params.iter_mut().enumerate() {
            match p.kind {
                ParamKind::Weight => {
                    for (i, v) in p.value.iter_mut().enumerate() {
                        *v = *v * (0.5 + ((i + k) % 5) as f32 * 0.4) + 0.01 * (i % 3) as f32;
                    }
                }
                ParamKind::Gate => {
                    for (i, v) in p.value.iter_mut().enumerate() {
                        *v = [0.0, 0.3, 0.9, 0.6][i % 4];
                    }
                }
                ParamKind::Buffer => {}
            }
        }
    }

    fn assert_normalisation_keeps_outputs(mut graph: Graph, x: &[f32], n: usize) -> Graph {
        let pruner = EquilibriumPruner::new(PruneConfig::default(), &graph).unwrap();
        disturb(&mut graph);
        let before = graph.predict(x, n).unwrap();
        let groups = pruner.resolve(&graph).unwrap();
        pruner.break_symmetry(&mut graph, &groups);
        let after = graph.predict(x, n).unwrap();
        let scale = before.amax().max(1.0);
        assert!(
            (&before - &after).amax() <= TOL * scale,
            "outputs moved by {}",
            (&before - &after).amax()
        );
        // Incoming norms are held in every group; outgoing norms exactly in the last one (a
        // deeper group's incoming normalisation rescales the columns of a shallower one).
        let last = pruner.groups.len() - 1;
        for (k, (l, g)) in pruner.groups.iter().zip(&groups).enumerate() {
            let (rin, rout) = (incoming_norms(&graph, g), outgoing_norms(&graph, g));
            let s = gates(&graph, g);
            for i in 0..rin.len() {
                assert!((rin[i] - l.rho_in[i]).abs() < 1e-4 * l.rho_in[i].max(1.0));
                if k == last && s[i] < 1.0 {
                    assert!((rout[i] - l.rho_out[i]).abs() < 1e-4 * l.rho_out[i].max(1.0));
                }
            }
        }
        graph
    }

    #[test]
    fn normalisation_preserves_the_function() {
        let graph = Graph::mlp(&[5, 7, 6, 3], 4).unwrap();
        let x: Vec<f32> = (0..4 * 5)
            .map(|k| ((k * 7 % 11) as f32 - 5.0) / 3.0)
            .collect();
        assert_normalisation_keeps_outputs(graph, &x, 4);
    }

    /// With BatchNorm the incoming scale is `γ, β`; on a ResNet, residual streams included,
    /// the rescaling keeps the evaluation-mode outputs (trained running statistics).
    #[test]
    fn normalisation_preserves_a_resnet_with_batch_norm() {
        let input = InputSpec::identity(vec![1, 12, 12]);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let n = 32;
        let x: Vec<f32> = (0..n * 144).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y: Vec<u32> = (0..n).map(|_| rng.random_range(0..3)).collect();
        let data = Dataset::new(
            x.clone(),
            y,
            vec![1, 12, 12],
            3,
            input.clone(),
            DataSource::Subset {
                parent: Box::new(DataSource::Idx {
                    dir: "random".into(),
                    split: "train".into(),
                }),
                len: n,
            },
        )
        .unwrap();
        let graph = Graph::resnet(8, input, 3, 1).unwrap();
        let fc = FitConfig {
            epochs: 1,
            batch_size: 16,
            crop_padding: 0,
            flip: false,
            ..FitConfig::default()
        };
        let mut t = Trainer::new(graph, fc).unwrap();
        t.run(&data, &mut (), None).unwrap();
        let graph = t.into_graph();
        let groups = players(&graph);
        let invariant: Vec<bool> = groups
            .iter()
            .map(|g| downstream_batch_norms(&graph, g).is_some())
            .collect();
        // Every group but the last stream (read by the classifier) feeds BatchNorms only.
        assert_eq!(invariant, [true, true, true, true, true, false]);
        let mut normalized = assert_normalisation_keeps_outputs(graph, &x, n);
        // The collective rescaling keeps training-mode outputs (batch statistics) and puts
        // the largest gate of every BatchNorm-read group at 1.
        let pruner = EquilibriumPruner::new(PruneConfig::default(), &normalized).unwrap();
        let train_logits = |g: &Graph| {
            let mut ws = crate::nn::graph::GraphWorkspace::new(g, n);
            g.forward(&mut ws, &x, n, crate::nn::graph::Mode::Train)
                .unwrap()
                .to_vec()
        };
        let before = train_logits(&normalized);
        pruner.normalize_groups(&mut normalized, &groups);
        let after = train_logits(&normalized);
        let scale = before.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let moved = before
            .iter()
            .zip(&after)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            moved <= 1e-4 * scale,
            "training-mode outputs moved by {moved}"
        );
        for (g, _) in groups.iter().zip(invariant).filter(|(_, inv)| *inv) {
            let top = gates(&normalized, g).iter().copied().fold(0.0f32, f32::max);
            assert_eq!(
                top.to_bits(),
                1.0f32.to_bits(),
                "{}: largest gate {top}",
                g.name
            );
        }
    }
}
