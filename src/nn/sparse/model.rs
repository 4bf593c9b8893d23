//! [`SparseModel`]: a graph whose sparse Linear and Conv2d layers run from CSR copies of
//! their weights in evaluation mode; every other node runs its own kernel, through the
//! graph's executor and workspace.

use nalgebra::DMatrix;

use super::csr::Csr;
use super::kernels::{conv_forward, linear_forward};
use super::{CONV_BREAK_EVEN_DENSITY, LINEAR_BREAK_EVEN_DENSITY};
use crate::error::{Error, Result};
use crate::nn::conv::ConvGeom;
use crate::nn::graph::{Graph, GraphWorkspace, Mode, Op};
use crate::nn::Shape;

/// The path one Linear or Conv2d node takes, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerChoice {
    /// The node's name (its module path).
    pub node: String,
    /// `linear` or `conv2d`.
    pub kind: &'static str,
    /// Non-zero weights over all weights.
    pub density: f64,
    /// The density below which this kind of layer runs sparse.
    pub break_even: f64,
    /// Whether the node runs from CSR.
    pub sparse: bool,
}

/// A CSR layer: its weight, bias and, for a convolution, its geometry.
#[derive(Debug, Clone)]
struct SparseLayer {
    weight: Csr,
    bias: Option<Vec<f32>>,
    conv: Option<ConvGeom>,
}

/// A graph ready for inference with its sparse layers in CSR; see the module docs.
#[derive(Debug, Clone)]
pub struct SparseModel {
    graph: Graph,
    /// For every node, its CSR layer if it runs sparse.
    layers: Vec<Option<SparseLayer>>,
    choices: Vec<LayerChoice>,
}

impl SparseModel {
    /// The model with each Linear (Conv2d) layer sparse when its density is below
    /// [`LINEAR_BREAK_EVEN_DENSITY`] ([`CONV_BREAK_EVEN_DENSITY`]).
    pub fn new(graph: &Graph) -> Result<SparseModel> {
        SparseModel::with_break_even(graph, LINEAR_BREAK_EVEN_DENSITY, CONV_BREAK_EVEN_DENSITY)
    }

    /// The model with other break-even densities: a layer runs sparse when its density is
    /// below its kind's (`f64::INFINITY` makes every layer sparse, `0.0` none).
    pub fn with_break_even(graph: &Graph, linear: f64, conv: f64) -> Result<SparseModel> {
        if linear.is_nan() || conv.is_nan() {
            return Err(Error::invalid("break-even density", "must not be NaN"));
        }
        let params = graph.params();
        let mut layers = Vec::with_capacity(graph.nodes().len());
        let mut choices = Vec::new();
        for n in graph.nodes() {
            let (w, bias, geom, limit) = match &n.op {
                Op::Linear(d) => (d.weight, d.bias, None, linear),
                Op::Conv2d(c) => {
                    let Shape::Image { h, w, .. } = graph.shapes()[n.inputs[0]] else {
                        return Err(Error::invalid(
                            format!("node {}", n.name),
                            "conv2d reads no image",
                        ));
                    };
                    let g =
                        ConvGeom::of(c.in_channels(params), h, w, c.kernel, c.stride, c.padding);
                    (c.weight, c.bias, Some(g), conv)
                }
                _ => {
                    layers.push(None);
                    continue;
                }
            };
            let weight = Csr::from_dense_nonzero(&params[w].value)
                .map_err(|e| Error::invalid(format!("node {}", n.name), e.to_string()))?;
            let density = weight.density();
            let sparse = density < limit;
            choices.push(LayerChoice {
                node: n.name.clone(),
                kind: n.op.kind(),
                density,
                break_even: limit,
                sparse,
            });
            layers.push(sparse.then(|| SparseLayer {
                weight,
                bias: bias.map(|b| params[b].value.as_slice().to_vec()),
                conv: geom,
            }));
        }
        Ok(SparseModel {
            graph: graph.clone(),
            layers,
            choices,
        })
    }

    /// Every Linear and Conv2d node in graph order, with its density and path.
    pub fn layers(&self) -> &[LayerChoice] {
        &self.choices
    }

    /// Names of the nodes that run from CSR.
    pub fn sparse_layers(&self) -> Vec<&str> {
        self.choices
            .iter()
            .filter(|c| c.sparse)
            .map(|c| c.node.as_str())
            .collect()
    }

    /// The graph it runs (its dense weights included).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Evaluation-mode forward pass of `batch` preprocessed samples in a workspace built for
    /// [`SparseModel::graph`]; returns the logits, `[batch, classes]` row-major.
    pub fn forward<'w>(
        &self,
        ws: &'w mut GraphWorkspace,
        x: &[f32],
        batch: usize,
    ) -> Result<&'w [f32]> {
        self.graph
            .forward_with(ws, x, batch, Mode::Eval, &mut |i, batch, xs, y| {
                let Some(l) = &self.layers[i] else {
                    return false;
                };
                let bias = l.bias.as_deref();
                match &l.conv {
                    Some(g) => conv_forward(&l.weight, bias, g, batch, xs[0], y),
                    None => linear_forward(&l.weight, bias, batch, xs[0], y),
                }
                true
            })
    }

    /// Logits of `batch` samples in evaluation mode, allocating a workspace, as
    /// [`Graph::predict`] does.
    pub fn predict(&self, x: &[f32], batch: usize) -> Result<DMatrix<f32>> {
        let mut ws = GraphWorkspace::new(&self.graph, batch);
        let y = self.forward(&mut ws, x, batch)?;
        Ok(DMatrix::from_row_slice(batch, self.graph.output_len(), y))
    }
}
