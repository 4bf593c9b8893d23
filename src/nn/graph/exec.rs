//! Forward and backward passes over a graph, in a workspace allocated once per batch size.
//!
//! Forward runs the nodes in order; backward runs them in reverse. A node read by several
//! consumers (a residual block's input) receives the sum of their gradients: the first
//! consumer to run backward writes its buffer, later ones add to it. Gate gradients are
//! cleared first because gate vectors may be shared; every other gradient is overwritten.

use nalgebra::DMatrix;

use super::ops::{BufferSizes, Buffers, Bwd, Fwd};
use super::{Graph, Mode, ParamKind};
use crate::error::{Error, Result};
use crate::nn::loss::{distill_xent, softmax_xent};
use crate::nn::{Distill, LossStats, Shape};

/// A node computed outside its kernel: `(node, batch, inputs, output)`, `true` if it wrote
/// the output (see [`Graph::forward_with`]).
pub(crate) type NodeOverride<'a> = dyn FnMut(usize, usize, &[&[f32]], &mut [f32]) -> bool + 'a;

/// Gradients of the mean loss, one matrix per parameter of the graph (same shapes).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphGrads {
    pub(crate) values: Vec<DMatrix<f32>>,
}

impl GraphGrads {
    /// Zero gradients shaped like `graph`'s parameters.
    pub fn new(graph: &Graph) -> Self {
        GraphGrads {
            values: graph
                .params
                .iter()
                .map(|p| DMatrix::zeros(p.value.nrows(), p.value.ncols()))
                .collect(),
        }
    }

    /// The gradient of the parameter called `name`.
    pub fn get(&self, graph: &Graph, name: &str) -> Option<&DMatrix<f32>> {
        let i = graph.params.iter().position(|p| p.name == name)?;
        self.values.get(i)
    }

    /// Every gradient, in the graph's parameter order.
    pub fn values(&self) -> &[DMatrix<f32>] {
        &self.values
    }

    /// True if every entry is finite.
    pub fn is_finite(&self) -> bool {
        self.values.iter().all(|m| m.iter().all(|v| v.is_finite()))
    }
}

/// Preallocated activations, gradients and op buffers for batches of up to `capacity`.
#[derive(Debug, Clone)]
pub struct GraphWorkspace {
    capacity: usize,
    batch: usize,
    mode: Mode,
    shapes: Vec<Shape>,
    acts: Vec<Vec<f32>>,
    dacts: Vec<Vec<f32>>,
    bufs: Vec<Buffers>,
}

impl GraphWorkspace {
    /// Buffers for `graph` and batches of at most `capacity` samples.
    pub fn new(graph: &Graph, capacity: usize) -> Self {
        let cap = capacity.max(1);
        let shapes = graph.shapes.clone();
        let acts = shapes.iter().map(|s| vec![0.0; cap * s.numel()]).collect();
        let dacts = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i == 0 {
                    Vec::new()
                } else {
                    vec![0.0; cap * s.numel()]
                }
            })
            .collect();
        let bufs = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let ins: Vec<Shape> = n.inputs.iter().map(|&j| shapes[j]).collect();
                let BufferSizes {
                    saved,
                    index,
                    partial,
                } = n.op.kernel().buffers(&ins, shapes[i], cap);
                Buffers {
                    saved: vec![0.0; saved],
                    index: vec![0; index],
                    partial: vec![0.0; partial],
                }
            })
            .collect();
        GraphWorkspace {
            capacity: cap,
            batch: 0,
            mode: Mode::Eval,
            shapes,
            acts,
            dacts,
            bufs,
        }
    }

    /// Largest batch this workspace accepts.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Output of node `node` from the last forward pass, `[batch, numel]` row-major.
    pub fn activation(&self, node: usize) -> Option<&[f32]> {
        let s = self.shapes.get(node)?;
        Some(&self.acts[node][..self.batch * s.numel()])
    }

    /// The logits of the last forward pass, `[batch, classes]` row-major.
    pub fn output(&self) -> &[f32] {
        let last = self.acts.len() - 1;
        &self.acts[last][..self.batch * self.shapes[last].numel()]
    }
}

impl Graph {
    fn check_ws(&self, ws: &GraphWorkspace, batch: usize, x_len: usize) -> Result<()> {
        if ws.shapes != self.shapes {
            return Err(Error::invalid(
                "workspace",
                "built for a different graph shape; create a new GraphWorkspace",
            ));
        }
        if batch > ws.capacity {
            return Err(Error::invalid(
                "batch",
                format!("{batch} exceeds the workspace capacity {}", ws.capacity),
            ));
        }
        check_len("input", batch * self.input_len(), x_len)
    }

    /// Forward pass of `batch` preprocessed samples in `mode`; returns the logits. In
    /// training mode BatchNorm uses batch statistics; call [`Graph::update_running_stats`]
    /// afterwards to move the running ones, as PyTorch's forward does.
    pub fn forward<'w>(
        &self,
        ws: &'w mut GraphWorkspace,
        x: &[f32],
        batch: usize,
        mode: Mode,
    ) -> Result<&'w [f32]> {
        self.forward_with(ws, x, batch, mode, &mut |_, _, _, _| false)
    }

    /// [`Graph::forward`] where `custom(node, batch, inputs, output)` may compute a node
    /// itself (the sparse path's CSR layers): when it returns `true` the node's kernel is
    /// skipped. The output slice has room for the workspace's capacity.
    pub(crate) fn forward_with<'w>(
        &self,
        ws: &'w mut GraphWorkspace,
        x: &[f32],
        batch: usize,
        mode: Mode,
        custom: &mut NodeOverride<'_>,
    ) -> Result<&'w [f32]> {
        self.check_ws(ws, batch, x.len())?;
        ws.batch = batch;
        ws.mode = mode;
        ws.acts[0][..x.len()].copy_from_slice(x);
        for (i, node) in self.nodes.iter().enumerate().skip(1) {
            let (lo, hi) = ws.acts.split_at_mut(i);
            let xs: Vec<&[f32]> = node.inputs.iter().map(|&j| lo[j].as_slice()).collect();
            if custom(i, batch, &xs, &mut hi[0]) {
                continue;
            }
            let in_shapes: Vec<Shape> = node.inputs.iter().map(|&j| self.shapes[j]).collect();
            node.op.kernel().forward(Fwd {
                batch,
                x: &xs,
                in_shapes: &in_shapes,
                y: &mut hi[0],
                params: &self.params,
                buf: &mut ws.bufs[i],
                mode,
            });
        }
        Ok(ws.output())
    }

    /// Lets every op update its state from the last training-mode pass in `ws`: BatchNorm
    /// moves its running statistics (`r ← (1 − m) r + m · batch`, unbiased variance).
    pub fn update_running_stats(&mut self, ws: &GraphWorkspace) -> Result<()> {
        if ws.mode != Mode::Train || ws.shapes != self.shapes {
            return Err(Error::invalid(
                "workspace",
                "running statistics need the last training-mode pass of this graph",
            ));
        }
        let shapes = &self.shapes;
        for (i, node) in self.nodes.iter_mut().enumerate().skip(1) {
            let input = shapes[node.inputs[0]];
            if let Some(k) = node.op.kernel_mut() {
                k.after_training_pass(&mut self.params, input, ws.batch, &ws.bufs[i]);
            }
        }
        Ok(())
    }

    /// Forward and backward pass with the mean softmax cross-entropy against `labels`;
    /// fills `grads` and returns the batch's loss and accuracy.
    pub fn loss_and_grad(
        &self,
        ws: &mut GraphWorkspace,
        x: &[f32],
        labels: &[u32],
        mode: Mode,
        grads: &mut GraphGrads,
    ) -> Result<LossStats> {
        self.loss_and_grad_with(ws, x, labels, mode, grads, |logits, classes, d| {
            softmax_xent(logits, labels, classes, Some(d))
        })
    }

    /// [`Graph::loss_and_grad`] with the distillation loss of [`Distill`] against `labels`
    /// and `teacher`, the teacher's logits of the same samples (`[batch, classes]`); the
    /// returned loss is the distillation loss.
    #[allow(clippy::too_many_arguments)]
    pub fn distill_loss_and_grad(
        &self,
        ws: &mut GraphWorkspace,
        x: &[f32],
        labels: &[u32],
        teacher: &[f32],
        distill: Distill,
        mode: Mode,
        grads: &mut GraphGrads,
    ) -> Result<LossStats> {
        self.loss_and_grad_with(ws, x, labels, mode, grads, |logits, classes, d| {
            distill_xent(logits, teacher, labels, classes, distill, Some(d))
        })
    }

    /// Forward pass, `loss(logits, classes, dlogits)` (which writes the loss's gradient
    /// w.r.t. the logits), and backward pass.
    fn loss_and_grad_with(
        &self,
        ws: &mut GraphWorkspace,
        x: &[f32],
        labels: &[u32],
        mode: Mode,
        grads: &mut GraphGrads,
        loss: impl FnOnce(&[f32], usize, &mut [f32]) -> Result<LossStats>,
    ) -> Result<LossStats> {
        let batch = labels.len();
        self.forward(ws, x, batch, mode)?;
        if grads.values.len() != self.params.len()
            || grads
                .values
                .iter()
                .zip(&self.params)
                .any(|(g, p)| g.shape() != p.value.shape())
        {
            return Err(Error::invalid(
                "gradients",
                "built for a different graph; create new GraphGrads",
            ));
        }
        let last = self.nodes.len() - 1;
        let classes = self.output_len();
        let stats = loss(
            &ws.acts[last][..batch * classes],
            classes,
            &mut ws.dacts[last][..batch * classes],
        )?;
        self.backward(ws, grads);
        Ok(stats)
    }

    /// Backward pass from the output gradient already in the workspace.
    fn backward(&self, ws: &mut GraphWorkspace, grads: &mut GraphGrads) {
        for (g, p) in grads.values.iter_mut().zip(&self.params) {
            if p.kind == ParamKind::Gate {
                g.fill(0.0);
            }
        }
        let n = self.nodes.len();
        let mut written = vec![false; n];
        written[n - 1] = true;
        for i in (1..n).rev() {
            if !written[i] {
                continue; // nothing downstream reads this node
            }
            let node = &self.nodes[i];
            let (lo, hi) = ws.dacts.split_at_mut(i);
            let mut slots: Vec<Option<&mut Vec<f32>>> = lo.iter_mut().map(Some).collect();
            let dx: Vec<Option<(&mut [f32], bool)>> = node
                .inputs
                .iter()
                .map(|&j| {
                    if j == 0 {
                        return None; // the input needs no gradient
                    }
                    let acc = written[j];
                    written[j] = true;
                    slots[j].take().map(|d| (d.as_mut_slice(), acc))
                })
                .collect();
            let xs: Vec<&[f32]> = node.inputs.iter().map(|&j| ws.acts[j].as_slice()).collect();
            let in_shapes: Vec<Shape> = node.inputs.iter().map(|&j| self.shapes[j]).collect();
            node.op.kernel().backward(Bwd {
                batch: ws.batch,
                x: &xs,
                in_shapes: &in_shapes,
                dy: &hi[0],
                params: &self.params,
                grads: &mut grads.values,
                dx,
                buf: &mut ws.bufs[i],
                mode: ws.mode,
            });
        }
    }

    /// Loss and accuracy of one batch in evaluation mode.
    pub fn evaluate_batch(
        &self,
        ws: &mut GraphWorkspace,
        x: &[f32],
        labels: &[u32],
    ) -> Result<LossStats> {
        let logits = self.forward(ws, x, labels.len(), Mode::Eval)?;
        softmax_xent(logits, labels, self.output_len(), None)
    }

    /// Logits of `batch` samples in evaluation mode, allocating a workspace.
    pub fn predict(&self, x: &[f32], batch: usize) -> Result<DMatrix<f32>> {
        let mut ws = GraphWorkspace::new(self, batch);
        let y = self.forward(&mut ws, x, batch, Mode::Eval)?;
        Ok(DMatrix::from_row_slice(batch, self.output_len(), y))
    }
}

pub(crate) fn check_len(field: &str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(Error::LengthMismatch {
            field: field.to_string(),
            expected,
            got,
        });
    }
    Ok(())
}
