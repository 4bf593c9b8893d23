//! BatchNorm folded into the convolution or linear layer before it, for inference.
//!
//! In evaluation mode a BatchNorm is a fixed per-channel affine map `a (x − μ) + β` with
//! `a = γ / √(σ² + ε)` from its running statistics, so after a producer `x = W z + b` the
//! pair is one producer with rows `a_o w_o` and bias `a_o (b_o − μ_o) + β_o`, and the pass
//! over the activations that BatchNorm costs disappears. Training-mode BatchNorm normalises
//! with each batch's own statistics, which no fixed weight reproduces: a folded graph
//! computes the original's evaluation-mode outputs only, and is not a model to train on.

use super::ops::{Conv, Dense, Op};
use super::{Graph, Node, NodeId, Param, ParamId, ParamKind};
use crate::error::{Error, Result};

impl Graph {
    /// The inference copy of the graph with every BatchNorm folded into its producer where
    /// that is exact: the BatchNorm reads a conv or linear node that nobody else reads and
    /// whose parameters no other node shares. Other BatchNorms stay. Gates are first folded
    /// into the weights and dropped, as [`Graph::export`] does, so the copy has none and
    /// computes what the gated graph does. Evaluation mode only (see the module docs).
    pub fn fold_batchnorm(&self) -> Result<Graph> {
        let g = self.inference_model()?;
        let gates: Vec<Option<NodeId>> = (g.nodes.iter())
            .map(|n| matches!(n.op, Op::Gate(_)).then(|| n.inputs[0]))
            .collect();
        let g = g.without_nodes(&gates, g.params.clone())?;

        let readers = g.consumers();
        let mut users = vec![0usize; g.params.len()];
        for p in g.nodes.iter().flat_map(|n| n.op.param_ids()) {
            users[p] += 1;
        }
        let last = g.nodes.len() - 1;
        let mut nodes = g.nodes.clone();
        let mut params = g.params.clone();
        let mut folded: Vec<Option<NodeId>> = vec![None; nodes.len()];
        for (i, n) in g.nodes.iter().enumerate() {
            let Op::BatchNorm(bn) = &n.op else { continue };
            let p = n.inputs[0];
            let (weight, bias) = match &mut nodes[p].op {
                Op::Conv2d(Conv { weight, bias, .. }) | Op::Linear(Dense { weight, bias }) => {
                    (*weight, bias)
                }
                _ => continue,
            };
            let shared = std::iter::once(weight).chain(*bias).any(|q| users[q] != 1);
            // The output must stay the last node once the BatchNorm is gone.
            if readers[p].len() != 1 || shared || (i == last && p + 1 != i) {
                continue;
            }
            let b = *bias.get_or_insert_with(|| {
                params.push(Param {
                    name: format!("{}.bias", g.nodes[p].name),
                    kind: ParamKind::Weight,
                    value: nalgebra::DMatrix::zeros(params[weight].value.nrows(), 1),
                });
                params.len() - 1
            });
            let v = |q: ParamId, o: usize| f64::from(params[q].value[o]);
            let rows = params[weight].value.nrows();
            let (scale, shift): (Vec<f64>, Vec<f64>) = (0..rows)
                .map(|o| {
                    let a = v(bn.weight, o) / (v(bn.running_var, o) + f64::from(bn.eps)).sqrt();
                    (a, a * (v(b, o) - v(bn.running_mean, o)) + v(bn.bias, o))
                })
                .unzip();
            for o in 0..rows {
                params[weight].value.row_mut(o).scale_mut(scale[o] as f32);
                params[b].value[o] = shift[o] as f32;
            }
            folded[i] = Some(p);
        }
        Graph { nodes, ..g }.without_nodes(&folded, params)
    }

    /// The graph with each node `i` that has `replace[i]` dropped (its readers read that
    /// earlier node instead), on `params`, keeping the parameters still read, renumbered.
    fn without_nodes(&self, replace: &[Option<NodeId>], params: Vec<Param>) -> Result<Graph> {
        let mut moved: Vec<NodeId> = Vec::with_capacity(self.nodes.len());
        let mut nodes: Vec<Node> = Vec::with_capacity(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            match replace[i] {
                Some(r) => moved.push(moved[r]),
                None => {
                    let inputs = n.inputs.iter().map(|&j| moved[j]).collect();
                    nodes.push(Node {
                        inputs,
                        ..n.clone()
                    });
                    moved.push(nodes.len() - 1);
                }
            }
        }
        if moved.last() != Some(&(nodes.len() - 1)) {
            return Err(Error::invalid(
                "graph",
                "dropping nodes would change its output",
            ));
        }
        let mut new_id: Vec<Option<ParamId>> = vec![None; params.len()];
        let mut kept = Vec::new();
        for p in nodes.iter().flat_map(|n| n.op.param_ids()) {
            if new_id[p].is_none() {
                new_id[p] = Some(kept.len());
                kept.push(params[p].clone());
            }
        }
        for n in nodes.iter_mut() {
            let want: Vec<Option<ParamId>> = n.op.param_ids().iter().map(|&p| new_id[p]).collect();
            renumber(&mut n.op, |p| new_id[p].unwrap_or(p));
            // An op with parameters that `renumber` does not know would keep stale ids.
            if n.op.param_ids().into_iter().map(Some).collect::<Vec<_>>() != want {
                return Err(Error::invalid(
                    format!("node {}", n.name),
                    format!("cannot renumber the parameters of a {} node", n.op.kind()),
                ));
            }
        }
        Graph::new(self.input.clone(), nodes, kept)
    }
}

/// Points `op` at parameter `new(p)` wherever it read `p`.
fn renumber(op: &mut Op, new: impl Fn(ParamId) -> ParamId) {
    let ids: Vec<&mut ParamId> = match op {
        Op::Linear(Dense { weight, bias }) | Op::Conv2d(Conv { weight, bias, .. }) => {
            std::iter::once(weight).chain(bias.as_mut()).collect()
        }
        Op::BatchNorm(b) => vec![
            &mut b.weight,
            &mut b.bias,
            &mut b.running_mean,
            &mut b.running_var,
        ],
        Op::Gate(g) => vec![&mut g.gate],
        _ => Vec::new(),
    };
    for p in ids {
        *p = new(*p);
    }
}
