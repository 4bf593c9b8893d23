//! Gates for a network trained elsewhere: every channel group that may be pruned gets one
//! gate vector, read by a gate node at the end of each of its producers' per-channel chains.
//!
//! From each producer (linear or conv) the chain follows per-channel ops (BatchNorm, ReLU,
//! pooling) while each is the only reader of the one before; the gate goes after the last of
//! them — before the next producer, an add, a flatten, or a value read twice. That is where
//! the builders put theirs: after ReLU and pooling in a chain, after a block's second
//! BatchNorm before its add, after the stem's ReLU where the stream begins. A gate at 1
//! changes nothing, so the gated network computes what the file did.

use nalgebra::DMatrix;

use super::ops::{Flow, Gate, Op};
use super::{Graph, Node, NodeId, Param, ParamKind};
use crate::error::Result;

impl Graph {
    /// True if the graph has at least one gate node.
    pub fn has_gates(&self) -> bool {
        self.nodes.iter().any(|n| matches!(n.op, Op::Gate(_)))
    }

    /// The graph with gates inserted for every group that can be pruned (see the module
    /// docs); a graph that already has gates is returned as it is.
    pub fn with_gates(&self) -> Result<Graph> {
        if self.has_gates() {
            return Ok(self.clone());
        }
        let readers = self.consumers();
        let end_of_chain = |p: NodeId| {
            let mut at = p;
            loop {
                match readers[at].as_slice() {
                    [next] if self.nodes[*next].op.kernel().flow() == Flow::PerChannel => {
                        at = *next
                    }
                    _ => return at,
                }
            }
        };
        let output = self.nodes.len() - 1;
        // (node after which a gate goes, name of the group's gate vector)
        let mut after: Vec<(NodeId, String)> = Vec::new();
        for group in self.channel_groups() {
            let ends: Vec<NodeId> = group.producers.iter().map(|&p| end_of_chain(p)).collect();
            if ends.contains(&output) || group.consumers.is_empty() {
                continue; // the network's outputs
            }
            for e in ends {
                if !after.iter().any(|(n, _)| *n == e) {
                    after.push((e, group.name.clone()));
                }
            }
        }
        let mut params = self.params.clone();
        let mut nodes: Vec<Node> = Vec::with_capacity(self.nodes.len() + after.len());
        let mut moved: Vec<NodeId> = Vec::with_capacity(self.nodes.len());
        let mut gate_nodes = 0usize;
        for (i, n) in self.nodes.iter().enumerate() {
            nodes.push(Node {
                name: n.name.clone(),
                op: n.op.clone(),
                inputs: n.inputs.iter().map(|&j| moved[j]).collect(),
            });
            moved.push(nodes.len() - 1);
            if let Some((_, group)) = after.iter().find(|(e, _)| *e == i) {
                let name = format!("{group}.gate");
                let gate = match params.iter().position(|p| p.name == name) {
                    Some(p) => p,
                    None => {
                        let channels = self.shapes[i].dims()[0];
                        params.push(Param {
                            name: name.clone(),
                            kind: ParamKind::Gate,
                            value: DMatrix::from_element(channels, 1, 1.0),
                        });
                        params.len() - 1
                    }
                };
                let node_name = if gate_nodes == 0 || !nodes.iter().any(|m| m.name == name) {
                    name
                } else {
                    format!("{name}.{i}")
                };
                gate_nodes += 1;
                nodes.push(Node {
                    name: node_name,
                    op: Op::Gate(Gate { gate }),
                    inputs: vec![nodes.len() - 1],
                });
                moved[i] = nodes.len() - 1;
            }
        }
        Graph::new(self.input.clone(), nodes, params)
    }
}
