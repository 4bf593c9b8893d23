//! Where weight players meet unit players: a unit whose every incoming or every outgoing
//! weight left the game is removed structurally.
//!
//! A unit with no outgoing weight is read by nobody. A unit with no incoming weight emits a
//! constant; where every reader of it is a linear layer, the constant's contribution moves
//! into that layer's bias, so the function is unchanged (a zero constant needs no reader's
//! help). Anything else (a constant read by a convolution, whose zero padding makes the
//! contribution position-dependent) stays.

use crate::error::Result;
use crate::nn::graph::{ChannelGroup, Graph, GraphWorkspace, Mode, Op, RemovalPlan};

/// Units removed from one group.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RemovedUnits {
    /// The group (its first producer's name).
    pub group: String,
    /// Channels before.
    pub before: usize,
    /// Channels removed because every incoming weight left.
    pub no_input: usize,
    /// Channels removed because every outgoing weight left.
    pub no_output: usize,
}

fn weight_of(graph: &Graph, node: usize) -> Option<(usize, Option<usize>)> {
    match &graph.nodes[node].op {
        Op::Linear(d) => Some((d.weight, d.bias)),
        Op::Conv2d(c) => Some((c.weight, c.bias)),
        _ => None,
    }
}

/// True if rows `c` of every producer's weight are zero.
fn no_input(graph: &Graph, g: &ChannelGroup, c: usize) -> bool {
    g.producers.iter().all(|&n| {
        weight_of(graph, n).is_some_and(|(w, _)| {
            let w = &graph.params[w].value;
            (0..w.ncols()).all(|j| w[(c, j)] == 0.0)
        })
    })
}

/// True if the columns of channel `c` in every consumer are zero.
fn no_output(graph: &Graph, g: &ChannelGroup, c: usize) -> bool {
    g.consumers.iter().all(|k| {
        weight_of(graph, k.node).is_some_and(|(w, _)| {
            let w = &graph.params[w].value;
            (c * k.per..(c + 1) * k.per).all(|j| w.column(j).iter().all(|&v| v == 0.0))
        })
    })
}

/// The constant a consumer reads from channel `c` at each of its `per` columns, if it is
/// constant over the probe samples in `ws`.
fn constant_reads(
    graph: &Graph,
    ws: &GraphWorkspace,
    rows: usize,
    reads: usize,
    per: usize,
    c: usize,
) -> Option<Vec<f32>> {
    let a = ws.activation(reads)?;
    let width = graph.shapes()[reads].numel();
    let at = |r: usize, p: usize| a[r * width + c * per + p];
    (0..per)
        .map(|p| {
            let v = at(0, p);
            // Exactly constant: a constant is what a unit without inputs emits.
            (1..rows)
                .all(|r| at(r, p).to_bits() == v.to_bits())
                .then_some(v)
        })
        .collect()
}

/// Removes every unit of `graph`'s prunable groups whose weights all left (see the module
/// docs), judging constants on `rows` probe samples; a group keeps at least one channel.
pub fn remove_dead_units(
    graph: &mut Graph,
    probe: &[f32],
    rows: usize,
) -> Result<Vec<RemovedUnits>> {
    let mut out = Vec::new();
    for g in graph.channel_groups().into_iter().filter(|g| g.prunable()) {
        let mut ws = GraphWorkspace::new(graph, rows);
        graph.forward(&mut ws, probe, rows, Mode::Eval)?;
        let mut drop = Vec::new();
        let (mut from_input, mut from_output) = (0, 0);
        for c in 0..g.channels {
            if no_output(graph, &g, c) {
                drop.push(c);
                from_output += 1;
                continue;
            }
            if !no_input(graph, &g, c) {
                continue;
            }
            let reads: Option<Vec<(usize, usize, Vec<f32>)>> = g
                .consumers
                .iter()
                .map(|k| {
                    let v = constant_reads(graph, &ws, rows, k.reads, k.per, c)?;
                    let linear = matches!(graph.nodes[k.node].op, Op::Linear(_))
                        && weight_of(graph, k.node).is_some_and(|(_, b)| b.is_some());
                    (linear || v.iter().all(|&x| x == 0.0)).then_some((k.node, k.per, v))
                })
                .collect();
            let Some(reads) = reads else { continue };
            for (consumer, per, v) in reads {
                let Some((w, Some(b))) = weight_of(graph, consumer) else {
                    continue;
                };
                let w = &graph.params[w].value;
                let shift: Vec<f32> = (0..w.nrows())
                    .map(|o| (0..per).map(|p| w[(o, c * per + p)] * v[p]).sum())
                    .collect();
                for (bias, s) in graph.params[b].value.iter_mut().zip(shift) {
                    *bias += s;
                }
            }
            drop.push(c);
            from_input += 1;
        }
        // A dropped channel's columns go to zero first: its constant, if any, is in the
        // readers' biases now, so even a channel the group must keep contributes nothing.
        for k in &g.consumers {
            if let Some((w, _)) = weight_of(graph, k.node) {
                let w = &mut graph.params[w].value;
                for &c in &drop {
                    for j in c * k.per..(c + 1) * k.per {
                        w.column_mut(j).fill(0.0);
                    }
                }
            }
        }
        if drop.len() == g.channels {
            // The group keeps its first channel.
            drop.remove(0);
        }
        if !drop.is_empty() {
            let keep: Vec<usize> = (0..g.channels).filter(|c| !drop.contains(c)).collect();
            let plan = RemovalPlan::new(graph, &g, keep)?;
            graph.remove_channels(&plan)?;
        }
        out.push(RemovedUnits {
            group: g.name.clone(),
            before: g.channels,
            no_input: from_input,
            no_output: from_output,
        });
    }
    Ok(out)
}
