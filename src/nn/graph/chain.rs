//! Chains: the networks a `torch.nn.Sequential` of linear, conv, ReLU, square max-pool and
//! flatten layers describes, named `0, 1, …` by the sequential list of [`ArchEntry`]. Its two
//! users differ only in where the parameters come from: the MLP and small-CNN builders draw
//! them, the reader of sequential model files takes them from the file.
//!
//! A linear or conv layer followed by ReLU may be gated. A sequential file stores the gate
//! as `{index}.gate` on the layer that owns the units; in the chain the gate node of that
//! name multiplies the channels after the ReLU and any max pooling, before the next weight
//! layer or flatten.

use nalgebra::DMatrix;

use super::builders::Builder;
use super::ops::{Conv, Dense, Flatten, MaxPool, Op, Pool};
use super::{Graph, ParamId, ParamKind};
use crate::error::{Error, Result};
use crate::nn::safetensors_io::ArchEntry;
use crate::nn::InputSpec;

/// What a chain asks its parameter source for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A layer's weight, `[out, in]` or `[out, in, k, k]`; required.
    Weight,
    /// A layer's bias `[out]`; required.
    Bias,
    /// A layer's gate `[out]`; `None` leaves the layer ungated.
    Gate,
}

/// The chain of `layers` reading `input`. `source(layer, role, name, shape)` gives each
/// tensor as a `[shape[0], Π shape[1..]]` matrix (vectors `[n, 1]`). Tensors are asked for
/// in layer order and, within a layer, weight, bias, gate, so a source drawing random
/// weights draws them in that order.
pub(crate) fn chain<F>(input: InputSpec, layers: &[ArchEntry], mut source: F) -> Result<Graph>
where
    F: FnMut(usize, Role, &str, &[usize]) -> Result<Option<DMatrix<f32>>>,
{
    let mut c = Chain {
        b: Builder::new(input, 0),
        pending: None,
    };
    let mut at = 0;
    for (i, layer) in layers.iter().enumerate() {
        let name = i.to_string();
        let next = layers.get(i + 1);
        at = match *layer {
            ArchEntry::Linear { inputs, outputs } => {
                let (weight, bias) = c.unit(&mut source, i, &[outputs, inputs], next)?;
                c.b.node(name, Op::Linear(Dense { weight, bias }), &[at])
            }
            ArchEntry::Conv2d {
                inputs,
                outputs,
                kernel,
                stride,
                padding,
            } => {
                if kernel == 0 || stride == 0 {
                    return Err(sizes(i, "conv2d"));
                }
                let shape = [outputs, inputs, kernel, kernel];
                let (weight, bias) = c.unit(&mut source, i, &shape, next)?;
                let op = Op::Conv2d(Conv {
                    weight,
                    bias,
                    kernel,
                    stride,
                    padding,
                });
                c.b.node(name, op, &[at])
            }
            ArchEntry::Relu => c.b.relu(&name, at),
            ArchEntry::Maxpool2d { kernel } => {
                if kernel == 0 {
                    return Err(sizes(i, "maxpool2d"));
                }
                let op = Op::MaxPool2d(MaxPool(Pool::square(kernel)));
                c.b.node(name, op, &[at])
            }
            ArchEntry::Flatten => c.b.node(name, Op::Flatten(Flatten), &[at]),
        };
        // The gate closes the unit's per-channel chain: after the ReLU and any pooling,
        // before the next weight layer or flatten.
        let per_channel = |l: Option<&ArchEntry>| {
            matches!(l, Some(ArchEntry::Relu | ArchEntry::Maxpool2d { .. }))
        };
        if per_channel(Some(layer)) && !per_channel(next) {
            if let Some((owner, gate)) = c.pending.take() {
                at = c.b.gate(&format!("{owner}.gate"), at, gate);
            }
        }
    }
    c.b.finish()
}

/// A chain under construction: the builder and the gate waiting for its unit's ReLU.
struct Chain {
    b: Builder,
    pending: Option<(usize, ParamId)>,
}

impl Chain {
    /// The weight, bias and (if the source has one) gate of weight layer `i`.
    fn unit<F>(
        &mut self,
        source: &mut F,
        i: usize,
        shape: &[usize],
        next: Option<&ArchEntry>,
    ) -> Result<(ParamId, Option<ParamId>)>
    where
        F: FnMut(usize, Role, &str, &[usize]) -> Result<Option<DMatrix<f32>>>,
    {
        if shape.contains(&0) {
            return Err(sizes(i, "layer"));
        }
        let units = [shape[0]];
        let mut take = |role: Role, suffix: &str, shape: &[usize]| -> Result<_> {
            let name = format!("{i}.{suffix}");
            Ok(source(i, role, &name, shape)?.map(|m| (name, m)))
        };
        let missing = |what: &str| Error::invalid("chain", format!("layer {i}: no {what}"));
        let (wn, w) = take(Role::Weight, "weight", shape)?.ok_or_else(|| missing("weight"))?;
        let (bn, bias) = take(Role::Bias, "bias", &units)?.ok_or_else(|| missing("bias"))?;
        let gate = take(Role::Gate, "gate", &units)?;
        let weight = self.b.param(wn, ParamKind::Weight, w);
        let bias = self.b.param(bn, ParamKind::Weight, bias);
        if let Some((gn, g)) = gate {
            if !matches!(next, Some(ArchEntry::Relu)) {
                return Err(Error::invalid(
                    "chain",
                    format!("layer {i}: a gated layer must be followed by relu"),
                ));
            }
            self.pending = Some((i, self.b.param(gn, ParamKind::Gate, g)));
        }
        Ok((weight, Some(bias)))
    }
}

fn sizes(layer: usize, what: &str) -> Error {
    Error::invalid("chain", format!("layer {layer}: {what} sizes must be > 0"))
}
