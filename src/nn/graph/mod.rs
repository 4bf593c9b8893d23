//! Networks as graphs: a topologically ordered list of nodes, each an op with its inputs.
//!
//! A [`Graph`] holds the input preprocessing, the nodes (node 0 is the input) and one flat
//! list of named parameters. Ops refer to parameters by [`ParamId`], so gradients, optimiser
//! moments and the model itself are lists of the same shape, and one [`RemovalPlan`] cuts
//! all of them alike. Parameter names are PyTorch `state_dict` keys (`layer1.0.conv1.weight`,
//! `layer1.0.bn1.running_var`; a chain uses `torch.nn.Sequential` indices, `0.weight`).
//!
//! Gates are explicit [`Op::Gate`] nodes multiplying each channel by `s_c ∈ [0, 1]`. Several
//! gate nodes may share one gate vector: a residual stream is one set of players across every
//! block that adds into it. The channels that must be removed together are the
//! [`ChannelGroup`]s, derived from the graph in [`groups`].
//!
//! Layouts: activations `[batch, …]` row-major (NCHW for images); a linear weight is a
//! column-major `[out, in]` matrix and a conv weight a column-major `[out, in·k·k]` one (so
//! row `o` is filter `o`, and PyTorch's bytes are the row-major reading of the same matrix).
//! Vectors (biases, BatchNorm statistics, gates) are `[n, 1]` matrices.

mod builders;
mod chain;
mod exec;
mod fold;
mod gating;
pub mod groups;
mod io;
mod ops;
mod optim;
mod surgery;
pub mod train;
pub mod trainer;

use std::collections::HashSet;
use std::fmt;

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

pub use builders::RESNET_DEPTHS;
pub use exec::{GraphGrads, GraphWorkspace};
pub use groups::{ChannelGroup, RemovalPlan};
pub use ops::{
    Add, AvgPool, BatchNorm, Conv, Dense, Flatten, Gate, GlobalAvgPool, MaxPool, Op, Pool, Relu,
};
pub use optim::GraphOptimizer;
pub use trainer::{L1Penalty, StepHook, StepRecord, Trainer};

use super::{InputSpec, Shape};
use crate::error::{Error, Result};

/// Index of a node in [`Graph::nodes`] (node 0 is the input).
pub type NodeId = usize;

/// Index of a parameter in [`Graph::params`].
pub type ParamId = usize;

/// Whether BatchNorm normalises with the batch's statistics (and updates its running ones)
/// or with the running statistics. Every forward pass says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Training: batch statistics.
    Train,
    /// Evaluation: running statistics.
    Eval,
}

/// What a parameter is for, which decides who updates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParamKind {
    /// Trained by the optimiser (weights, biases, BatchNorm's γ and β).
    Weight,
    /// Updated by the forward pass in training mode (BatchNorm's running statistics).
    Buffer,
    /// A participation gate, one entry per channel, moved by the pruner.
    Gate,
}

/// A named tensor of the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The PyTorch `state_dict` key.
    pub name: String,
    /// Who updates it.
    pub kind: ParamKind,
    /// The values (see the module docs for the layout).
    pub value: DMatrix<f32>,
}

/// One node: an op reading the outputs of earlier nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The module path of the op (`layer1.0.conv1`); unique in the graph.
    pub name: String,
    /// What the node computes.
    pub op: Op,
    /// Nodes whose outputs it reads, all earlier in the list.
    pub inputs: Vec<NodeId>,
}

/// A network as a graph of ops with named parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub(crate) input: InputSpec,
    pub(crate) nodes: Vec<Node>,
    pub(crate) params: Vec<Param>,
    /// Output shape of every node.
    pub(crate) shapes: Vec<Shape>,
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.nodes.iter().enumerate() {
            let inputs: Vec<&str> = n
                .inputs
                .iter()
                .map(|&j| self.nodes[j].name.as_str())
                .collect();
            writeln!(
                f,
                "{i:>3} {:<24} {:<12} {:?} <- {}",
                n.name,
                n.op.kind(),
                self.shapes[i].dims(),
                inputs.join(", ")
            )?;
        }
        Ok(())
    }
}

impl Graph {
    /// A graph from nodes and parameters. Node 0 must be the only [`Op::Input`]; every node
    /// reads earlier nodes only; names are unique; every parameter is used; shapes chain from
    /// `input` to a flat output at the last node.
    pub fn new(input: InputSpec, nodes: Vec<Node>, params: Vec<Param>) -> Result<Self> {
        let mut g = Graph {
            input,
            nodes,
            params,
            shapes: Vec::new(),
        };
        g.check_structure()?;
        g.refresh_shapes()?;
        if !matches!(g.shapes.last(), Some(Shape::Flat(_))) {
            return Err(Error::invalid(
                "graph",
                "the last node must produce a flat output (logits)",
            ));
        }
        Ok(g)
    }

    fn check_structure(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::invalid("graph", msg));
        if !matches!(self.nodes.first(), Some(n) if matches!(n.op, Op::Input)) {
            return bad("node 0 must be the input".into());
        }
        let mut names = HashSet::new();
        let mut used = vec![false; self.params.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            if !names.insert(n.name.as_str()) {
                return bad(format!("node name {:?} is used twice", n.name));
            }
            if i > 0 && matches!(n.op, Op::Input) {
                return bad(format!("node {:?}: only node 0 may be the input", n.name));
            }
            if let Some(&j) = n.inputs.iter().find(|&&j| j >= i) {
                return bad(format!(
                    "node {:?} reads node {j}, which is not earlier in the list",
                    n.name
                ));
            }
            let unique: HashSet<_> = n.inputs.iter().collect();
            if unique.len() != n.inputs.len() {
                return bad(format!("node {:?} reads the same node twice", n.name));
            }
            let want = n.op.arity();
            if i > 0 && !want.contains(&n.inputs.len()) {
                return bad(format!(
                    "node {:?} ({}) takes {want:?} inputs, got {}",
                    n.name,
                    n.op.kind(),
                    n.inputs.len()
                ));
            }
            for p in n.op.param_ids() {
                match used.get_mut(p) {
                    Some(u) => *u = true,
                    None => return bad(format!("node {:?} names parameter {p}, absent", n.name)),
                }
            }
        }
        if let Some(p) = used.iter().position(|u| !u) {
            return bad(format!("parameter {:?} is not used", self.params[p].name));
        }
        let mut pnames = HashSet::new();
        for p in &self.params {
            if !pnames.insert(p.name.as_str()) {
                return bad(format!("parameter name {:?} is used twice", p.name));
            }
        }
        Ok(())
    }

    /// Recomputes every node's output shape (after a removal changed parameter shapes).
    pub(crate) fn refresh_shapes(&mut self) -> Result<()> {
        let mut shapes: Vec<Shape> = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let s = match n.op {
                Op::Input => Shape::from_dims(&self.input.shape)?,
                ref op => {
                    let ins: Vec<Shape> = n.inputs.iter().map(|&j| shapes[j]).collect();
                    op.output_shape(&ins, &self.params)
                        .map_err(|e| Error::invalid(format!("node {}", n.name), e.to_string()))?
                }
            };
            shapes.push(s);
        }
        self.shapes = shapes;
        Ok(())
    }

    /// The input preprocessing.
    pub fn input(&self) -> &InputSpec {
        &self.input
    }

    /// The nodes in topological order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The named parameters.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Output shape of every node.
    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// Values per input sample.
    pub fn input_len(&self) -> usize {
        self.shapes[0].numel()
    }

    /// Number of outputs (classes).
    pub fn output_len(&self) -> usize {
        self.shapes[self.shapes.len() - 1].numel()
    }

    /// The parameter called `name` (a `state_dict` key).
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Mutable values of the parameter called `name`; its shape cannot change here.
    pub fn param_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        self.params
            .iter_mut()
            .find(|p| p.name == name)
            .map(|p| p.value.as_mut_slice())
    }

    /// Visits every parameter by name, in the graph's order.
    pub fn visit(&self, mut f: impl FnMut(&str, &Param)) {
        for p in &self.params {
            f(&p.name, p);
        }
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<NodeId> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Nodes reading each node's output.
    pub fn consumers(&self) -> Vec<Vec<NodeId>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &j in &n.inputs {
                out[j].push(i);
            }
        }
        out
    }

    /// Trainable weights and biases (buffers and gates excluded).
    pub fn parameter_count(&self) -> usize {
        self.params
            .iter()
            .filter(|p| p.kind == ParamKind::Weight)
            .map(|p| p.value.len())
            .sum()
    }

    /// Multiply-accumulates of one forward pass for one sample (linear and conv).
    pub fn macs_per_sample(&self) -> usize {
        (0..self.nodes.len()).map(|i| self.macs(i)).sum()
    }

    /// Floating-point operations per sample of a training step's GEMMs: the forward pass,
    /// the weight gradient and the input gradient of every linear and conv node, 2 per
    /// multiply-accumulate; a node reading the network input needs no input gradient.
    pub fn train_flops_per_sample(&self) -> usize {
        (0..self.nodes.len())
            .map(|i| {
                let passes = if self.nodes[i].inputs == [0] { 2 } else { 3 };
                2 * self.macs(i) * passes
            })
            .sum()
    }

    /// Multiply-accumulates of node `i` for one sample.
    fn macs(&self, i: usize) -> usize {
        match &self.nodes[i].op {
            Op::Linear(d) => self.params[d.weight].value.len(),
            Op::Conv2d(c) => {
                let Shape::Image { h, w, .. } = self.shapes[i] else {
                    return 0;
                };
                self.params[c.weight].value.len() * h * w
            }
            _ => 0,
        }
    }

    /// True if every parameter is finite.
    pub fn is_finite(&self) -> bool {
        self.params
            .iter()
            .all(|p| p.value.iter().all(|v| v.is_finite()))
    }
}
