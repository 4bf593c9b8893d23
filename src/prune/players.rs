//! The players of a graph and what the pruner measures of them.
//!
//! A player group is a prunable, gated [`ChannelGroup`]: one gate entry per channel, and every
//! tensor entry that belongs to a channel. The pruner reads those entries in three sets:
//! * **incoming scale** — the last affine map before the gate: each BatchNorm's `γ` and `β`
//!   when the group has BatchNorm (the producers' rows are then scale-free), else the
//!   producers' rows and biases;
//! * **outgoing** — the consumers' weight columns that read the channel;
//! * **all** — every producer row and bias, every per-channel `γ`/`β`, every outgoing column:
//!   the unit's parameters `θ_i` of the self cost `a_i = α‖θ_i‖²`.

use nalgebra::{DMatrix, DVector};

use super::config::Redundancy;
use crate::error::{Error, Result};
use crate::nn::data::Dataset;
use crate::nn::graph::{ChannelGroup, Graph, GraphGrads, GraphWorkspace, Mode, Op, ParamId};
use crate::nn::LossStats;
use crate::nn::Shape;

/// Where one tensor holds a group's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// Row `c` of a `[channels, k]` matrix (a producer's weights).
    Row(ParamId),
    /// Entry `c` of a vector (bias, `γ`, `β`).
    Entry(ParamId),
    /// Columns `c·per .. (c+1)·per` of a consumer's weights.
    Columns(ParamId, usize),
}

/// The prunable, gated channel groups of `graph`, in graph order.
pub fn players(graph: &Graph) -> Vec<ChannelGroup> {
    graph
        .channel_groups()
        .into_iter()
        .filter(|g| g.prunable() && g.gate.is_some())
        .collect()
}

/// The player group called `name`.
pub fn player(graph: &Graph, name: &str) -> Result<ChannelGroup> {
    players(graph)
        .into_iter()
        .find(|g| g.name == name)
        .ok_or_else(|| Error::invalid("group", format!("{name}: no prunable gated group")))
}

/// The gate vector of a player group.
pub fn gate_id(group: &ChannelGroup) -> ParamId {
    group.gate.unwrap_or(usize::MAX)
}

/// The gates of `group`.
pub fn gates<'g>(graph: &'g Graph, group: &ChannelGroup) -> &'g [f32] {
    graph.params[gate_id(group)].value.as_slice()
}

/// The gates of `group`, writable.
pub fn gates_mut<'g>(graph: &'g mut Graph, group: &ChannelGroup) -> &'g mut [f32] {
    graph.params[gate_id(group)].value.as_mut_slice()
}

/// `∂L/∂s` of `group`'s gates in `grads`.
pub fn gate_gradient<'a>(grads: &'a GraphGrads, group: &ChannelGroup) -> &'a [f32] {
    grads.values()[gate_id(group)].as_slice()
}

fn weight_and_bias(graph: &Graph, node: usize) -> (Option<ParamId>, Option<ParamId>) {
    match &graph.nodes[node].op {
        Op::Linear(d) => (Some(d.weight), d.bias),
        Op::Conv2d(c) => (Some(c.weight), c.bias),
        Op::BatchNorm(b) => (Some(b.weight), Some(b.bias)),
        _ => (None, None),
    }
}

fn batch_norms(graph: &Graph, group: &ChannelGroup) -> Vec<usize> {
    group
        .per_channel
        .iter()
        .copied()
        .filter(|&m| matches!(graph.nodes[m].op, Op::BatchNorm(_)))
        .collect()
}

fn producer_views(graph: &Graph, group: &ChannelGroup, with_bias: bool) -> Vec<View> {
    let mut v = Vec::new();
    for &p in &group.producers {
        let (w, b) = weight_and_bias(graph, p);
        v.extend(w.map(View::Row));
        if with_bias {
            v.extend(b.map(View::Entry));
        }
    }
    v
}

fn batch_norm_views(graph: &Graph, group: &ChannelGroup) -> Vec<View> {
    let mut v = Vec::new();
    for m in batch_norms(graph, group) {
        let (g, b) = weight_and_bias(graph, m);
        v.extend(g.map(View::Entry));
        v.extend(b.map(View::Entry));
    }
    v
}

fn incoming_views(graph: &Graph, group: &ChannelGroup) -> Vec<View> {
    if batch_norms(graph, group).is_empty() {
        producer_views(graph, group, true)
    } else {
        batch_norm_views(graph, group)
    }
}

fn outgoing_views(graph: &Graph, group: &ChannelGroup) -> Vec<View> {
    group
        .consumers
        .iter()
        .filter_map(|c| {
            weight_and_bias(graph, c.node)
                .0
                .map(|w| View::Columns(w, c.per))
        })
        .collect()
}

fn all_views(graph: &Graph, group: &ChannelGroup) -> Vec<View> {
    let mut v = producer_views(graph, group, true);
    v.extend(batch_norm_views(graph, group));
    v.extend(outgoing_views(graph, group));
    v
}

/// Calls `f` on the index of every entry of channel `c` in the values of `view`'s tensor.
fn entries(graph: &Graph, view: View, c: usize, mut f: impl FnMut(ParamId, usize)) {
    match view {
        View::Row(p) => {
            let m = &graph.params[p].value;
            for j in 0..m.ncols() {
                f(p, j * m.nrows() + c);
            }
        }
        View::Entry(p) => f(p, c),
        View::Columns(p, per) => {
            let rows = graph.params[p].value.nrows();
            for i in c * per * rows..(c + 1) * per * rows {
                f(p, i);
            }
        }
    }
}

fn norms_sq_of(graph: &Graph, group: &ChannelGroup, views: &[View]) -> Vec<f64> {
    (0..group.channels)
        .map(|c| {
            let mut sum = 0.0f64;
            for &v in views {
                entries(graph, v, c, |p, i| {
                    sum += (graph.params[p].value.as_slice()[i] as f64).powi(2)
                });
            }
            sum
        })
        .collect()
}

fn scale_views(graph: &mut Graph, group: &ChannelGroup, views: &[View], factors: &[f32]) {
    let mut targets = Vec::new();
    for (c, &k) in factors.iter().enumerate().take(group.channels) {
        for &v in views {
            entries(graph, v, c, |p, i| targets.push((p, i, k)));
        }
    }
    for (p, i, k) in targets {
        graph.params[p].value.as_mut_slice()[i] *= k;
    }
}

/// `‖θ_i‖²` of every channel: all of its parameters.
pub fn norms_sq(graph: &Graph, group: &ChannelGroup) -> Vec<f64> {
    norms_sq_of(graph, group, &all_views(graph, group))
}

/// Norm of every channel's incoming scale entries.
pub fn incoming_norms(graph: &Graph, group: &ChannelGroup) -> Vec<f64> {
    let v = incoming_views(graph, group);
    norms_sq_of(graph, group, &v)
        .into_iter()
        .map(f64::sqrt)
        .collect()
}

/// Norm of every channel's outgoing weights.
pub fn outgoing_norms(graph: &Graph, group: &ChannelGroup) -> Vec<f64> {
    let v = outgoing_views(graph, group);
    norms_sq_of(graph, group, &v)
        .into_iter()
        .map(f64::sqrt)
        .collect()
}

/// L2 norm of every channel's parameters (the group-magnitude criterion).
pub fn magnitudes(graph: &Graph, group: &ChannelGroup) -> Vec<f64> {
    norms_sq(graph, group).into_iter().map(f64::sqrt).collect()
}

/// Multiplies channel `c`'s incoming scale entries by `factors[c]`.
pub fn scale_incoming(graph: &mut Graph, group: &ChannelGroup, factors: &[f32]) {
    let v = incoming_views(graph, group);
    scale_views(graph, group, &v, factors);
}

/// Multiplies channel `c`'s outgoing weights by `factors[c]`.
pub fn scale_outgoing(graph: &mut Graph, group: &ChannelGroup, factors: &[f32]) {
    let v = outgoing_views(graph, group);
    scale_views(graph, group, &v, factors);
}

/// The producers' weight rows of every channel, side by side (`[channels, Σ k]`).
pub fn producer_rows(graph: &Graph, group: &ChannelGroup) -> DMatrix<f32> {
    let views = producer_views(graph, group, false);
    let widths: Vec<usize> = views
        .iter()
        .map(|v| match *v {
            View::Row(p) => graph.params[p].value.ncols(),
            _ => 0,
        })
        .collect();
    let mut out = DMatrix::zeros(group.channels, widths.iter().sum());
    let mut col = 0;
    for (v, w) in views.iter().zip(&widths) {
        if let View::Row(p) = *v {
            let m = &graph.params[p].value;
            out.view_mut((0, col), (group.channels, *w)).copy_from(m);
        }
        col += w;
    }
    out
}

/// `−∂L/∂s` of every player group averaged over `data` in batches of `batch` (evaluation
/// mode: BatchNorm's running statistics), and the loss.
pub fn measure_benefits(
    graph: &Graph,
    groups: &[ChannelGroup],
    data: &Dataset,
    batch: usize,
) -> Result<(Vec<DVector<f64>>, LossStats)> {
    let b = batch.max(1).min(data.len().max(1));
    let mut ws = GraphWorkspace::new(graph, b);
    let mut grads = GraphGrads::new(graph);
    let mut sums: Vec<DVector<f64>> = groups.iter().map(|g| DVector::zeros(g.channels)).collect();
    let n = graph.input_len();
    let mut total = LossStats::default();
    let mut start = 0;
    while start < data.len() {
        let end = (start + b).min(data.len());
        let m = end - start;
        let x = &data.inputs()[start * n..end * n];
        let y = &data.labels()[start..end];
        let s = graph.loss_and_grad(&mut ws, x, y, Mode::Eval, &mut grads)?;
        for (acc, g) in sums.iter_mut().zip(groups) {
            for (a, &v) in acc.iter_mut().zip(gate_gradient(&grads, g)) {
                *a -= v as f64 * m as f64;
            }
        }
        total.loss += s.loss * m as f64;
        total.correct += s.correct;
        total.count += m;
        start = end;
    }
    let count = total.count.max(1) as f64;
    for acc in sums.iter_mut() {
        *acc /= count;
    }
    total.loss /= count;
    Ok((sums, total))
}

/// The gated activations of `group` on `rows` probe samples, one column per channel (every
/// spatial position of an image counts as a sample).
fn activations(
    graph: &Graph,
    group: &ChannelGroup,
    probe: &[f32],
    rows: usize,
) -> Result<DMatrix<f32>> {
    let gate_node = group
        .per_channel
        .iter()
        .copied()
        .find(|&m| matches!(graph.nodes[m].op, Op::Gate(_)))
        .ok_or_else(|| Error::invalid("group", format!("{}: no gate node", group.name)))?;
    let mut ws = GraphWorkspace::new(graph, rows);
    graph.forward(&mut ws, probe, rows, Mode::Eval)?;
    let a = ws.activation(gate_node).unwrap_or(&[]);
    let c = group.channels;
    Ok(match graph.shapes()[gate_node] {
        Shape::Flat(_) => DMatrix::from_row_slice(rows, c, &a[..rows * c]),
        Shape::Image { h, w, .. } => {
            let p = h * w;
            DMatrix::from_fn(rows * p, c, |r, u| a[(r / p) * c * p + u * p + r % p])
        }
    })
}

/// `|cos|` between the rows of `w` (zero diagonal; zero rows give 0).
pub fn row_cosine(w: &DMatrix<f32>) -> DMatrix<f64> {
    let w = w.map(|v| v as f64);
    let norms: Vec<f64> = (0..w.nrows()).map(|i| w.row(i).norm()).collect();
    let gram = &w * w.transpose();
    DMatrix::from_fn(w.nrows(), w.nrows(), |i, j| {
        let d = norms[i] * norms[j];
        if i == j || d <= 0.0 {
            0.0
        } else {
            (gram[(i, j)] / d).abs().min(1.0)
        }
    })
}

/// `|corr|` between the columns of an activation matrix (rows are samples; zero diagonal;
/// a constant column is uncorrelated with everything).
pub fn activation_correlation(a: &DMatrix<f32>) -> DMatrix<f64> {
    let (rows, cols) = (a.nrows(), a.ncols());
    let mut c = a.map(|v| v as f64);
    for j in 0..cols {
        let mean = c.column(j).sum() / rows.max(1) as f64;
        c.column_mut(j).add_scalar_mut(-mean);
    }
    let norms: Vec<f64> = (0..cols).map(|j| c.column(j).norm()).collect();
    let gram = c.transpose() * &c;
    DMatrix::from_fn(cols, cols, |i, j| {
        let d = norms[i] * norms[j];
        if i == j || d <= 1e-12 {
            0.0
        } else {
            (gram[(i, j)] / d).abs().min(1.0)
        }
    })
}

/// The redundancy matrix of `group` measured as `kind` (`probe`: `rows` held-out inputs for
/// activation correlation).
pub fn redundancy(
    graph: &Graph,
    group: &ChannelGroup,
    kind: Redundancy,
    probe: &[f32],
    rows: usize,
) -> Result<DMatrix<f64>> {
    match kind {
        Redundancy::WeightCosine => Ok(row_cosine(&producer_rows(graph, group))),
        Redundancy::ActivationCorrelation => Ok(activation_correlation(&activations(
            graph, group, probe, rows,
        )?)),
    }
}
