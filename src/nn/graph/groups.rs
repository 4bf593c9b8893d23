//! Channel groups — the players — and the one removal plan that cuts them.
//!
//! Every node's output channels belong to a *channel space*: a producer (linear, conv) opens
//! a new one; per-channel ops (BatchNorm, ReLU, pooling, gates) and flatten keep their
//! input's; an add merges its inputs' spaces into one (union-find). A group is one merged
//! space: its **producers** own the channels as weight rows, its **per-channel** nodes own one
//! entry per channel (BatchNorm γ, β and running statistics; the gate), and its **consumers**
//! read the channels as weight columns (`per` columns each: 1 for a dense input, `k²` for a
//! conv, `h·w` after a flatten). Removing channels of a group is one [`RemovalPlan`], applied
//! alike to the parameters, their gradients and the optimiser's moments.
//!
//! A group is prunable when it is neither the input nor the output, has one gate vector, and
//! every value its consumers read has passed a gate (so a channel at gate 0 is exactly zero
//! where it is read, and cutting it changes no output).

use nalgebra::DMatrix;

use super::ops::{Flow, Op, Zero};
use super::{Graph, NodeId, ParamId};
use crate::error::{Error, Result};
use crate::nn::Shape;

/// A node that reads a group's channels through its weight columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumer {
    /// The linear or conv node.
    pub node: NodeId,
    /// The node it reads the channels from.
    pub reads: NodeId,
    /// Weight columns per channel.
    pub per: usize,
}

/// Channels that must be removed together, with every tensor that has their axis.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelGroup {
    /// The name of the group's first producer (`layer1.0.conv1`).
    pub name: String,
    /// Number of channels.
    pub channels: usize,
    /// The gate vector (one entry per channel), if the group is gated.
    pub gate: Option<ParamId>,
    /// Linear/conv nodes whose output rows are the channels.
    pub producers: Vec<NodeId>,
    /// Per-channel nodes with parameters (BatchNorm, gates).
    pub per_channel: Vec<NodeId>,
    /// Nodes reading the channels.
    pub consumers: Vec<Consumer>,
    /// Why the group cannot be pruned, if it cannot.
    pub fixed: Option<String>,
}

impl ChannelGroup {
    /// True if channels of this group may be removed.
    pub fn prunable(&self) -> bool {
        self.fixed.is_none()
    }
}

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn add(&mut self) -> usize {
        self.0.push(self.0.len());
        self.0.len() - 1
    }
    fn find(&mut self, mut a: usize) -> usize {
        while self.0[a] != a {
            self.0[a] = self.0[self.0[a]];
            a = self.0[a];
        }
        a
    }
    fn union(&mut self, a: usize, b: usize) -> usize {
        let (a, b) = (self.find(a), self.find(b));
        let root = a.min(b);
        self.0[a.max(b)] = root;
        root
    }
}

impl Graph {
    /// The channel groups of the graph, ordered by their first producer.
    pub fn channel_groups(&self) -> Vec<ChannelGroup> {
        let n = self.nodes.len();
        let mut uf = UnionFind(Vec::new());
        // (space, features per channel) of every node's output; whether it passed a gate.
        let mut space = vec![(0usize, 1usize); n];
        let mut gated = vec![false; n];
        let mut source = None;
        let mut producers: Vec<(usize, NodeId)> = Vec::new();
        let mut members: Vec<(usize, NodeId)> = Vec::new();
        let mut consumers: Vec<(usize, Consumer)> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let first = node.inputs.first().copied();
            match node.op.kernel().flow() {
                Flow::Source => {
                    let s = uf.add();
                    source = Some(s);
                    space[i] = (s, 1);
                }
                Flow::Produce => {
                    let j = first.unwrap_or(0);
                    let (s, per) = space[j];
                    let k2 = match &node.op {
                        Op::Conv2d(c) => c.kernel * c.kernel,
                        _ => 1,
                    };
                    consumers.push((
                        s,
                        Consumer {
                            node: i,
                            reads: j,
                            per: per * k2,
                        },
                    ));
                    let out = uf.add();
                    producers.push((out, i));
                    space[i] = (out, 1);
                }
                Flow::PerChannel => {
                    let j = first.unwrap_or(0);
                    space[i] = space[j];
                    gated[i] = match node.op.kernel().zero() {
                        Zero::Makes => true,
                        Zero::Keeps => gated[j],
                        Zero::Breaks => false,
                    };
                    if !node.op.param_ids().is_empty() {
                        members.push((space[j].0, i));
                    }
                }
                Flow::Flatten => {
                    let j = first.unwrap_or(0);
                    let hw = match self.shapes[j] {
                        Shape::Image { h, w, .. } => h * w,
                        Shape::Flat(_) => 1,
                    };
                    space[i] = (space[j].0, space[j].1 * hw);
                    gated[i] = gated[j];
                }
                Flow::Merge => {
                    let mut root = space[node.inputs[0]].0;
                    for &j in &node.inputs[1..] {
                        root = uf.union(root, space[j].0);
                    }
                    space[i] = (root, space[node.inputs[0]].1);
                    gated[i] = node.inputs.iter().all(|&j| gated[j]);
                }
            }
        }
        let output = uf.find(space[n - 1].0);
        let source = source.map(|s| uf.find(s));
        let mut groups: Vec<(usize, ChannelGroup)> = Vec::new();
        for &(s, p) in &producers {
            let root = uf.find(s);
            if let Some((_, g)) = groups.iter_mut().find(|(r, _)| *r == root) {
                g.producers.push(p);
                continue;
            }
            groups.push((
                root,
                ChannelGroup {
                    name: self.nodes[p].name.clone(),
                    channels: self.shapes[p].dims()[0],
                    gate: None,
                    producers: vec![p],
                    per_channel: Vec::new(),
                    consumers: Vec::new(),
                    fixed: None,
                },
            ));
        }
        for &(s, m) in &members {
            let root = uf.find(s);
            if let Some((_, g)) = groups.iter_mut().find(|(r, _)| *r == root) {
                g.per_channel.push(m);
            }
        }
        for &(s, c) in &consumers {
            let root = uf.find(s);
            if let Some((_, g)) = groups.iter_mut().find(|(r, _)| *r == root) {
                g.consumers.push(c);
            }
        }
        for (root, g) in groups.iter_mut() {
            g.fixed = self.why_fixed(*root, g, output, source, &gated);
        }
        groups.into_iter().map(|(_, g)| g).collect()
    }

    fn why_fixed(
        &self,
        root: usize,
        g: &mut ChannelGroup,
        output: usize,
        source: Option<usize>,
        gated: &[bool],
    ) -> Option<String> {
        if root == output {
            return Some("its channels are the network's outputs".into());
        }
        if Some(root) == source {
            return Some("its channels are the network's inputs".into());
        }
        let gates: Vec<ParamId> = g
            .per_channel
            .iter()
            .filter_map(|&m| match self.nodes[m].op {
                Op::Gate(gt) => Some(gt.gate),
                _ => None,
            })
            .collect();
        match gates.split_first() {
            None => return Some("it has no gate".into()),
            Some((&first, rest)) if rest.iter().all(|&p| p == first) => g.gate = Some(first),
            Some(_) => return Some("its gate nodes read different gate vectors".into()),
        }
        if g.producers
            .iter()
            .any(|&p| self.shapes[p].dims()[0] != g.channels)
        {
            return Some("its producers disagree on the channel count".into());
        }
        if let Some(c) = g.consumers.iter().find(|c| !gated[c.reads]) {
            return Some(format!(
                "{} reads its channels before they pass a gate",
                self.nodes[c.node].name
            ));
        }
        None
    }
}

/// Which axis of a tensor carries a group's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    /// Row `c` (producer weights, biases, per-channel vectors).
    Rows,
    /// Columns `c·per .. (c+1)·per` (consumer weights).
    Columns(usize),
}

/// The removal of some channels of one group: which entries of which tensors go.
#[derive(Debug, Clone, PartialEq)]
pub struct RemovalPlan {
    group: String,
    keep: Vec<usize>,
    cuts: Vec<(ParamId, Axis)>,
}

impl RemovalPlan {
    /// Keeps the channels `keep` (strictly increasing, non-empty, below the group's count)
    /// of a prunable `group`, removing the others.
    pub fn new(graph: &Graph, group: &ChannelGroup, keep: Vec<usize>) -> Result<Self> {
        if let Some(why) = &group.fixed {
            return Err(Error::invalid(
                format!("group {}", group.name),
                format!("cannot be pruned: {why}"),
            ));
        }
        if keep.is_empty() {
            return Err(Error::invalid(
                format!("group {}", group.name),
                "at least one channel must stay",
            ));
        }
        if keep.windows(2).any(|w| w[0] >= w[1]) || keep.last() >= Some(&group.channels) {
            return Err(Error::invalid(
                format!("group {}", group.name),
                format!(
                    "kept channels must be strictly increasing and < {}",
                    group.channels
                ),
            ));
        }
        let mut cuts: Vec<(ParamId, Axis)> = Vec::new();
        let mut push = |p: ParamId, a: Axis| {
            if !cuts.contains(&(p, a)) {
                cuts.push((p, a));
            }
        };
        for &n in group.producers.iter().chain(&group.per_channel) {
            for p in graph.nodes[n].op.param_ids() {
                push(p, Axis::Rows);
            }
        }
        for c in &group.consumers {
            let weight = match &graph.nodes[c.node].op {
                Op::Linear(d) => d.weight,
                Op::Conv2d(k) => k.weight,
                _ => continue,
            };
            push(weight, Axis::Columns(c.per));
        }
        Ok(RemovalPlan {
            group: group.name.clone(),
            keep,
            cuts,
        })
    }

    /// The kept channels.
    pub fn keep(&self) -> &[usize] {
        &self.keep
    }

    /// Cuts `tensors` — a list shaped like the graph's parameters (the parameters, their
    /// gradients, or an optimiser moment) — to the kept channels. An empty list (a moment an
    /// optimiser does not keep) is left as it is.
    pub fn apply(&self, tensors: &mut [DMatrix<f32>]) -> Result<()> {
        if tensors.is_empty() {
            return Ok(());
        }
        for &(p, axis) in &self.cuts {
            let t = tensors.get_mut(p).ok_or_else(|| {
                Error::invalid("removal plan", "tensor list shorter than the parameters")
            })?;
            let cut = match axis {
                Axis::Rows => {
                    if t.nrows() < self.keep.len() {
                        return Err(self.mismatch());
                    }
                    DMatrix::from_fn(self.keep.len(), t.ncols(), |r, c| t[(self.keep[r], c)])
                }
                Axis::Columns(per) => {
                    let cols: Vec<usize> = self
                        .keep
                        .iter()
                        .flat_map(|&k| k * per..(k + 1) * per)
                        .collect();
                    if cols.last().is_some_and(|&c| c >= t.ncols()) {
                        return Err(self.mismatch());
                    }
                    DMatrix::from_fn(t.nrows(), cols.len(), |r, c| t[(r, cols[c])])
                }
            };
            *t = cut;
        }
        Ok(())
    }

    fn mismatch(&self) -> Error {
        Error::invalid(
            format!("group {}", self.group),
            "a tensor is smaller than the plan expects (applied twice?)",
        )
    }
}
