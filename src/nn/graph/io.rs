//! Graphs in `safetensors`, in PyTorch's own layout.
//!
//! Tensors are named by their `state_dict` keys and shaped as PyTorch shapes them (linear
//! `[out, in]`, conv `[out, in, k, k]`, vectors `[n]`); each BatchNorm also stores PyTorch's
//! `num_batches_tracked` (an `int64` scalar), so `load_state_dict(strict=True)` accepts the
//! file. Metadata `input` is the preprocessing, as for sequential models, and `architecture`
//! is either the sequential list of [`crate::nn::ArchEntry`] — for a chain of linear, conv,
//! ReLU, square max-pool and flatten whose nodes are named `0, 1, …`, so existing readers keep
//! working — or `{"graph": [node, …]}`, each node `{"name", "op", "inputs", …}` with the op's
//! sizes. `python/pruning_game_torch.py` builds the matching `torch.nn.Module` from either.
//!
//! [`Graph::export`] writes the inference model: gates folded and dropped. [`Graph::save`]
//! keeps the gate nodes and their vectors (a run's state); [`Graph::load`] reads both.

use std::collections::HashMap;
use std::path::Path;

use nalgebra::DMatrix;
use safetensors::tensor::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::chain::{chain, Role};
use super::ops::{
    Add, AvgPool, BatchNorm, Conv, Dense, Flatten, Gate, GlobalAvgPool, MaxPool, Op, Pool, Relu,
};
use super::{Graph, Node, Param, ParamKind};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::nn::safetensors_io::{
    parse, read_f32, read_input_spec, row_major_bytes, serialize, ArchEntry,
};

/// One node of the `graph` architecture metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Module path; parameters are `{name}.weight` and so on.
    pub name: String,
    /// Names of the nodes it reads (`input` for the network input).
    #[serde(default)]
    pub inputs: Vec<String>,
    /// The op and its sizes.
    #[serde(flatten)]
    pub op: OpEntry,
}

/// An op and its sizes, as the metadata spells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum OpEntry {
    Input,
    Linear {
        #[serde(rename = "in")]
        inputs: usize,
        #[serde(rename = "out")]
        outputs: usize,
        bias: bool,
    },
    Conv2d {
        #[serde(rename = "in")]
        inputs: usize,
        #[serde(rename = "out")]
        outputs: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    },
    /// `BatchNorm1d` (flat input) or `BatchNorm2d` (images), by `dims`.
    Batchnorm {
        features: usize,
        dims: usize,
        eps: f32,
        momentum: f32,
    },
    Relu,
    Maxpool2d {
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    Avgpool2d {
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    Globalavgpool,
    Flatten,
    Add,
    /// A gate node (only in saved run states, never in exports).
    Gate {
        gate: String,
    },
}

/// Names of a training checkpoint's own tensors (optimiser moments) start with this; a
/// model loader skips them.
pub(crate) const CHECKPOINT_PREFIX: &str = "optim.";

impl Graph {
    /// The suffix-named parameters of `node`, checking they follow the `state_dict` rule.
    fn param_names(&self, node: &Node) -> Result<()> {
        let suffixes: &[&str] = match node.op {
            Op::Linear(_) | Op::Conv2d(_) => &["weight", "bias"],
            Op::BatchNorm(_) => &["weight", "bias", "running_mean", "running_var"],
            _ => return Ok(()),
        };
        for (p, suffix) in node.op.param_ids().into_iter().zip(suffixes) {
            let want = format!("{}.{suffix}", node.name);
            if self.params[p].name != want {
                return Err(Error::invalid(
                    format!("node {}", node.name),
                    format!(
                        "parameter {:?} should be named {want:?} to match PyTorch",
                        self.params[p].name
                    ),
                ));
            }
        }
        Ok(())
    }

    fn entry(&self, i: usize) -> OpEntry {
        let shape = |p: usize| self.params[p].value.shape();
        match &self.nodes[i].op {
            Op::Input => OpEntry::Input,
            Op::Linear(d) => OpEntry::Linear {
                inputs: shape(d.weight).1,
                outputs: shape(d.weight).0,
                bias: d.bias.is_some(),
            },
            Op::Conv2d(c) => OpEntry::Conv2d {
                inputs: c.in_channels(&self.params),
                outputs: shape(c.weight).0,
                kernel: c.kernel,
                stride: c.stride,
                padding: c.padding,
                bias: c.bias.is_some(),
            },
            Op::BatchNorm(b) => OpEntry::Batchnorm {
                features: shape(b.weight).0,
                dims: self.shapes[self.nodes[i].inputs[0]].dims().len().min(2),
                eps: b.eps,
                momentum: b.momentum,
            },
            Op::Relu(_) => OpEntry::Relu,
            Op::MaxPool2d(MaxPool(p)) => OpEntry::Maxpool2d {
                kernel: p.kernel,
                stride: p.stride,
                padding: p.padding,
            },
            Op::AvgPool2d(AvgPool(p)) => OpEntry::Avgpool2d {
                kernel: p.kernel,
                stride: p.stride,
                padding: p.padding,
            },
            Op::GlobalAvgPool(_) => OpEntry::Globalavgpool,
            Op::Flatten(_) => OpEntry::Flatten,
            Op::Add(_) => OpEntry::Add,
            Op::Gate(g) => OpEntry::Gate {
                gate: self.params[g.gate].name.clone(),
            },
        }
    }

    /// The architecture metadata; without gate nodes when `gates` is false (a gate's readers
    /// then read its input).
    fn architecture(&self, gates: bool) -> Result<String> {
        let mut name_of: Vec<String> = Vec::with_capacity(self.nodes.len());
        let mut entries = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            self.param_names(n)?;
            let inputs: Vec<String> = n.inputs.iter().map(|&j| name_of[j].clone()).collect();
            if !gates && matches!(n.op, Op::Gate(_)) {
                name_of.push(inputs[0].clone());
                continue;
            }
            name_of.push(n.name.clone());
            if i > 0 {
                entries.push(NodeEntry {
                    name: n.name.clone(),
                    inputs,
                    op: self.entry(i),
                });
            }
        }
        let json = match sequential(&entries) {
            Some(list) => serde_json::to_string(&list),
            None => serde_json::to_string(&serde_json::json!({ "graph": entries })),
        };
        json.map_err(|e| Error::invalid("architecture", e.to_string()))
    }

    /// FNV-1a (hex) of the network's file with its gates: a fingerprint of its structure
    /// and every parameter.
    pub(crate) fn fingerprint(&self) -> Result<String> {
        let bytes = self.to_safetensors(true, Vec::new(), HashMap::new())?;
        Ok(format!("{:016x}", crate::io::fnv1a(&bytes)))
    }

    /// The file's bytes: the tensors (gates too if `gates`), then `extra` tensors and
    /// metadata entries (a training checkpoint's optimiser moments and counters).
    pub(crate) fn to_safetensors(
        &self,
        gates: bool,
        extra: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
        extra_meta: HashMap<String, String>,
    ) -> Result<Vec<u8>> {
        let (mut tensors, mut meta) = self.file_parts(gates)?;
        tensors.extend(extra);
        meta.extend(extra_meta);
        serialize(&tensors, meta)
    }

    /// The tensors `(name, dtype, PyTorch shape, bytes)` and metadata of the file, before
    /// serialisation (the CSR writer replaces the weights with their sparse parts).
    #[allow(clippy::type_complexity)]
    pub(crate) fn file_parts(
        &self,
        gates: bool,
    ) -> Result<(
        Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
        HashMap<String, String>,
    )> {
        let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for n in &self.nodes {
            let shape_of = |p: usize, dims: Vec<usize>| (p, dims);
            let listed: Vec<(usize, Vec<usize>)> = match &n.op {
                Op::Linear(d) => {
                    let (o, i) = self.params[d.weight].value.shape();
                    std::iter::once(shape_of(d.weight, vec![o, i]))
                        .chain(d.bias.map(|b| (b, vec![o])))
                        .collect()
                }
                Op::Conv2d(c) => {
                    let o = self.params[c.weight].value.nrows();
                    let cin = c.in_channels(&self.params);
                    std::iter::once((c.weight, vec![o, cin, c.kernel, c.kernel]))
                        .chain(c.bias.map(|b| (b, vec![o])))
                        .collect()
                }
                Op::BatchNorm(b) => {
                    let c = self.params[b.weight].value.nrows();
                    tensors.push((
                        format!("{}.num_batches_tracked", n.name),
                        Dtype::I64,
                        vec![],
                        (b.batches_tracked as i64).to_le_bytes().to_vec(),
                    ));
                    b.param_ids_in_order()
                        .into_iter()
                        .map(|p| (p, vec![c]))
                        .collect()
                }
                Op::Gate(g) if gates => vec![(g.gate, vec![self.params[g.gate].value.len()])],
                _ => Vec::new(),
            };
            for (p, dims) in listed {
                let name = &self.params[p].name;
                if !tensors.iter().any(|t| &t.0 == name) {
                    tensors.push((
                        name.clone(),
                        Dtype::F32,
                        dims,
                        row_major_bytes(&self.params[p].value),
                    ));
                }
            }
        }
        let mut meta = HashMap::new();
        meta.insert("architecture".to_string(), self.architecture(gates)?);
        meta.insert(
            "input".to_string(),
            serde_json::to_string(&self.input)
                .map_err(|e| Error::invalid("input", e.to_string()))?,
        );
        meta.insert("format".to_string(), "pt".to_string());
        Ok((tensors, meta))
    }

    fn write(&self, path: &Path, gates: bool) -> Result<()> {
        if !self.is_finite() {
            return Err(Error::invalid(
                "graph",
                "has non-finite parameters; refusing to save",
            ));
        }
        let bytes = self.to_safetensors(gates, Vec::new(), HashMap::new())?;
        write_atomic(path, |w| w.write_all(&bytes))
    }

    /// Saves the graph with its gates (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.write(path, true)
    }

    /// Saves the inference model: gates folded into the weights before them and dropped.
    pub fn export(&self, path: &Path) -> Result<()> {
        self.inference_model()?.write(path, false)
    }

    /// The model [`Graph::export`] writes: a copy with the gates folded into the weights
    /// before them and dropped.
    pub(crate) fn inference_model(&self) -> Result<Graph> {
        let mut g = self.clone();
        g.fold_gates()?;
        Ok(g)
    }

    /// Loads a graph saved by [`Graph::save`] or [`Graph::export`], a sequential model file,
    /// or a file PyTorch wrote with the same names and metadata.
    pub fn load(path: &Path) -> Result<Graph> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Graph::from_safetensors(&bytes, path)
    }

    /// Parses a model file's bytes (`path` names it in errors).
    pub fn from_safetensors(bytes: &[u8], path: &Path) -> Result<Graph> {
        let (st, meta) = parse(bytes, path)?;
        let bad = |m: String| Error::ModelFormat {
            path: path.to_path_buf(),
            message: m,
        };
        let arch = meta
            .get("architecture")
            .ok_or_else(|| bad("metadata has no architecture".into()))?;
        let value: serde_json::Value =
            serde_json::from_str(arch).map_err(|e| bad(format!("architecture: {e}")))?;
        if value.is_array() {
            let layers: Vec<ArchEntry> =
                serde_json::from_value(value).map_err(|e| bad(format!("architecture: {e}")))?;
            return read_chain(&st, &layers, &meta, path);
        }
        #[derive(Deserialize)]
        struct GraphArch {
            graph: Vec<NodeEntry>,
        }
        let arch: GraphArch =
            serde_json::from_value(value).map_err(|e| bad(format!("architecture: {e}")))?;
        let input = read_input_spec(&meta, path)?;
        let mut reader = Reader {
            st: &st,
            path,
            params: Vec::new(),
        };
        let mut nodes = vec![Node {
            name: "input".into(),
            op: Op::Input,
            inputs: Vec::new(),
        }];
        for e in &arch.graph {
            let inputs =
                e.inputs
                    .iter()
                    .map(|n| {
                        nodes.iter().position(|x| &x.name == n).ok_or_else(|| {
                            bad(format!("node {}: reads unknown node {n:?}", e.name))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
            let op = reader.op(e)?;
            nodes.push(Node {
                name: e.name.clone(),
                op,
                inputs,
            });
        }
        let expected: Vec<String> = reader.params.iter().map(|p| p.name.clone()).collect();
        if let Some(extra) = st.names().into_iter().find(|n| {
            !expected.iter().any(|e| e == n)
                && !n.ends_with(".num_batches_tracked")
                && !n.starts_with(CHECKPOINT_PREFIX)
        }) {
            return Err(bad(format!(
                "unexpected tensor {extra} (not in the architecture)"
            )));
        }
        Graph::new(input, nodes, reader.params)
            .map_err(|e| bad(format!("inconsistent architecture: {e}")))
    }
}

/// A file in the sequential layout as its chain: `{i}.weight` and `{i}.bias` of each weight
/// layer in PyTorch's shapes, and its gate `{i}.gate` where the file has one.
fn read_chain(
    st: &SafeTensors<'_>,
    layers: &[ArchEntry],
    meta: &HashMap<String, String>,
    path: &Path,
) -> Result<Graph> {
    let bad = |m: String| Error::ModelFormat {
        path: path.to_path_buf(),
        message: m,
    };
    let input = read_input_spec(meta, path)?;
    let names = st.names();
    let graph = chain(input, layers, |_, role, name, shape| {
        if role == Role::Gate && !names.contains(&name) {
            return Ok(None);
        }
        let values = read_f32(st, name, shape, path)?;
        let cols = shape[1..].iter().product();
        Ok(Some(DMatrix::from_row_slice(shape[0], cols, &values)))
    })
    .map_err(|e| match e {
        e @ Error::ModelFormat { .. } => e,
        e => bad(format!("inconsistent architecture: {e}")),
    })?;
    if let Some(extra) = names
        .iter()
        .find(|n| !n.starts_with(CHECKPOINT_PREFIX) && graph.param(n).is_none())
    {
        return Err(bad(format!(
            "unexpected tensor {extra} (not in the architecture)"
        )));
    }
    Ok(graph)
}

impl BatchNorm {
    fn param_ids_in_order(&self) -> Vec<usize> {
        vec![self.weight, self.bias, self.running_mean, self.running_var]
    }
}

/// Reads the tensors nodes name, in node order.
struct Reader<'a> {
    st: &'a SafeTensors<'a>,
    path: &'a Path,
    params: Vec<Param>,
}

impl Reader<'_> {
    fn tensor(&mut self, name: String, kind: ParamKind, dims: &[usize]) -> Result<usize> {
        if let Some(i) = self.params.iter().position(|p| p.name == name) {
            return Ok(i); // a shared gate vector
        }
        let v = read_f32(self.st, &name, dims, self.path)?;
        let rows = dims.first().copied().unwrap_or(1);
        let cols = dims.iter().skip(1).product::<usize>().max(1);
        let value = DMatrix::from_row_slice(rows, if dims.len() > 1 { cols } else { 1 }, &v);
        self.params.push(Param { name, kind, value });
        Ok(self.params.len() - 1)
    }

    fn op(&mut self, e: &NodeEntry) -> Result<Op> {
        let n = &e.name;
        let w = ParamKind::Weight;
        let bad = |m: &str| Error::ModelFormat {
            path: self.path.to_path_buf(),
            message: format!("node {n}: {m}"),
        };
        Ok(match e.op {
            OpEntry::Input => return Err(bad("only the implicit first node is the input")),
            OpEntry::Linear {
                inputs,
                outputs,
                bias,
            } => {
                let weight = self.tensor(format!("{n}.weight"), w, &[outputs, inputs])?;
                let bias = if bias {
                    Some(self.tensor(format!("{n}.bias"), w, &[outputs])?)
                } else {
                    None
                };
                Op::Linear(Dense { weight, bias })
            }
            OpEntry::Conv2d {
                inputs,
                outputs,
                kernel,
                stride,
                padding,
                bias,
            } => {
                if kernel == 0 || stride == 0 {
                    return Err(bad("kernel and stride must be > 0"));
                }
                let weight =
                    self.tensor(format!("{n}.weight"), w, &[outputs, inputs, kernel, kernel])?;
                let bias = if bias {
                    Some(self.tensor(format!("{n}.bias"), w, &[outputs])?)
                } else {
                    None
                };
                Op::Conv2d(Conv {
                    weight,
                    bias,
                    kernel,
                    stride,
                    padding,
                })
            }
            OpEntry::Batchnorm {
                features,
                eps,
                momentum,
                ..
            } => {
                let batches_tracked = match self.st.tensor(&format!("{n}.num_batches_tracked")) {
                    Ok(t) if t.dtype() == Dtype::I64 && t.data().len() == 8 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(t.data());
                        i64::from_le_bytes(b).max(0) as u64
                    }
                    Ok(_) => return Err(bad("num_batches_tracked must be one int64")),
                    Err(_) => 0,
                };
                Op::BatchNorm(BatchNorm {
                    weight: self.tensor(format!("{n}.weight"), w, &[features])?,
                    bias: self.tensor(format!("{n}.bias"), w, &[features])?,
                    running_mean: self.tensor(
                        format!("{n}.running_mean"),
                        ParamKind::Buffer,
                        &[features],
                    )?,
                    running_var: self.tensor(
                        format!("{n}.running_var"),
                        ParamKind::Buffer,
                        &[features],
                    )?,
                    eps,
                    momentum,
                    batches_tracked,
                })
            }
            OpEntry::Relu => Op::Relu(Relu),
            OpEntry::Maxpool2d {
                kernel,
                stride,
                padding,
            } => Op::MaxPool2d(MaxPool(Pool {
                kernel,
                stride,
                padding,
            })),
            OpEntry::Avgpool2d {
                kernel,
                stride,
                padding,
            } => Op::AvgPool2d(AvgPool(Pool {
                kernel,
                stride,
                padding,
            })),
            OpEntry::Globalavgpool => Op::GlobalAvgPool(GlobalAvgPool),
            OpEntry::Flatten => Op::Flatten(Flatten),
            OpEntry::Add => Op::Add(Add),
            OpEntry::Gate { ref gate } => {
                let len = self
                    .st
                    .tensor(gate)
                    .map_err(|_| bad(&format!("missing gate tensor {gate}")))?
                    .shape()
                    .to_vec();
                Op::Gate(Gate {
                    gate: self.tensor(gate.clone(), ParamKind::Gate, &len)?,
                })
            }
        })
    }
}

/// The sequential list for a chain named `0, 1, …` of the ops `torch.nn.Sequential` files
/// have always held; `None` for anything else.
fn sequential(entries: &[NodeEntry]) -> Option<Vec<ArchEntry>> {
    let mut prev = "input".to_string();
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        if e.name != i.to_string() || e.inputs != [prev.clone()] {
            return None;
        }
        prev = e.name.clone();
        out.push(match e.op {
            OpEntry::Linear {
                inputs,
                outputs,
                bias: true,
            } => ArchEntry::Linear { inputs, outputs },
            OpEntry::Conv2d {
                inputs,
                outputs,
                kernel,
                stride,
                padding,
                bias: true,
            } => ArchEntry::Conv2d {
                inputs,
                outputs,
                kernel,
                stride,
                padding,
            },
            OpEntry::Relu => ArchEntry::Relu,
            OpEntry::Maxpool2d {
                kernel,
                stride,
                padding: 0,
            } if stride == kernel => ArchEntry::Maxpool2d { kernel },
            OpEntry::Flatten => ArchEntry::Flatten,
            _ => return None,
        });
    }
    Some(out)
}
