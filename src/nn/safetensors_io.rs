//! Models in `safetensors`, loadable by PyTorch without conversion.
//!
//! Tensor names follow `torch.nn.Sequential`: `{index}.weight` and `{index}.bias`, where the
//! index counts every layer (activations, pooling and flatten included). All tensors are
//! `f32`; dense weights are `[out, in]`, conv weights `[out, in, kh, kw]`. A gated layer also
//! stores `{index}.gate` (`[units]`) under the index of the linear/conv layer that owns the
//! units, although the gate acts on the following ReLU's output; exported models
//! ([`Model::export`]) fold the gates into the weights and store none.
//!
//! Metadata: `architecture` (a JSON list such as
//! `[{"type":"linear","in":784,"out":512},{"type":"relu"}]`) and `input`
//! (`{"shape":[1,28,28],"scale":…,"mean":…,"std":…}`: `x = (byte*scale - mean)/std`).

use std::collections::HashMap;
use std::path::Path;

use nalgebra::{DMatrix, DVector};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::layers::{Conv2d, Layer, Linear, MaxPool2d};
use super::model::{InputSpec, Model};
use crate::error::{Error, Result};
use crate::io::write_atomic;

/// One entry of the `architecture` metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ArchEntry {
    /// `torch.nn.Linear(in, out)`.
    Linear {
        /// Input features.
        #[serde(rename = "in")]
        inputs: usize,
        /// Output features.
        #[serde(rename = "out")]
        outputs: usize,
    },
    /// `torch.nn.ReLU()`.
    Relu,
    /// `torch.nn.Conv2d(in, out, kernel, stride, padding)`.
    Conv2d {
        /// Input channels.
        #[serde(rename = "in")]
        inputs: usize,
        /// Output channels.
        #[serde(rename = "out")]
        outputs: usize,
        /// Square kernel size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding.
        padding: usize,
    },
    /// `torch.nn.MaxPool2d(kernel)`.
    Maxpool2d {
        /// Window and stride.
        kernel: usize,
    },
    /// `torch.nn.Flatten()`.
    Flatten,
}

impl Model {
    /// The `architecture` metadata of this model.
    pub fn architecture(&self) -> Vec<ArchEntry> {
        self.layers
            .iter()
            .map(|l| match l {
                Layer::Linear(x) => ArchEntry::Linear {
                    inputs: x.in_features(),
                    outputs: x.out_features(),
                },
                Layer::Conv2d(c) => ArchEntry::Conv2d {
                    inputs: c.in_channels,
                    outputs: c.out_channels(),
                    kernel: c.kernel,
                    stride: c.stride,
                    padding: c.padding,
                },
                Layer::Relu => ArchEntry::Relu,
                Layer::MaxPool2d(p) => ArchEntry::Maxpool2d { kernel: p.kernel },
                Layer::Flatten => ArchEntry::Flatten,
            })
            .collect()
    }

    /// Named tensors (`name`, shape, little-endian bytes) of weights, biases and gates.
    pub(crate) fn named_tensors(&self) -> Vec<(String, Vec<usize>, Vec<u8>)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let (w, b, shape) = match l {
                Layer::Linear(x) => (&x.weight, &x.bias, vec![x.out_features(), x.in_features()]),
                Layer::Conv2d(c) => (
                    &c.weight,
                    &c.bias,
                    vec![c.out_channels(), c.in_channels, c.kernel, c.kernel],
                ),
                _ => continue,
            };
            out.push((format!("{i}.weight"), shape, row_major_bytes(w)));
            out.push((
                format!("{i}.bias"),
                vec![b.len()],
                le_bytes(b.iter().copied()),
            ));
            if let Some(g) = l.gate() {
                out.push((
                    format!("{i}.gate"),
                    vec![g.len()],
                    le_bytes(g.iter().copied()),
                ));
            }
        }
        out
    }

    /// Serialises the model (with gates) plus `extra` tensors and metadata.
    pub(crate) fn to_safetensors(
        &self,
        extra: Vec<(String, Vec<usize>, Vec<u8>)>,
        mut meta: HashMap<String, String>,
    ) -> Result<Vec<u8>> {
        let arch = serde_json::to_string(&self.architecture())
            .map_err(|e| Error::invalid("architecture", e.to_string()))?;
        let input = serde_json::to_string(&self.input)
            .map_err(|e| Error::invalid("input", e.to_string()))?;
        meta.insert("architecture".into(), arch);
        meta.insert("input".into(), input);
        meta.insert("format".into(), "pt".into());
        let mut tensors = self.named_tensors();
        tensors.extend(extra);
        let typed: Vec<_> = tensors
            .into_iter()
            .map(|(n, s, d)| (n, Dtype::F32, s, d))
            .collect();
        serialize(&typed, meta)
    }

    /// Saves the model with its gates (atomically: temp file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        if !self.is_finite() {
            return Err(Error::invalid(
                "model",
                "has non-finite parameters; refusing to save",
            ));
        }
        let bytes = self.to_safetensors(Vec::new(), HashMap::new())?;
        write_atomic(path, |w| w.write_all(&bytes))
    }

    /// Saves a plain network for PyTorch: gates folded into weights, no `.gate` tensors.
    pub fn export(&self, path: &Path) -> Result<()> {
        self.exported()?.save(path)
    }

    /// Loads a model saved by [`Model::save`] or [`Model::export`] (or written by PyTorch
    /// with the same names and metadata).
    pub fn load(path: &Path) -> Result<Model> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Model::from_safetensors(&bytes, path)
    }

    /// Parses safetensors bytes; `path` names the source in errors.
    pub fn from_safetensors(bytes: &[u8], path: &Path) -> Result<Model> {
        let st = parse(bytes, path)?;
        model_from(&st.0, &st.1, path)
    }
}

/// Parsed file: tensors and metadata.
pub(crate) fn parse<'a>(
    bytes: &'a [u8],
    path: &Path,
) -> Result<(SafeTensors<'a>, HashMap<String, String>)> {
    let bad = |m: String| Error::ModelFormat {
        path: path.to_path_buf(),
        message: m,
    };
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    Ok((st, meta))
}

/// The `input` metadata of a model file, checked: finite scale and mean, finite non-zero std.
pub(crate) fn read_input_spec(meta: &HashMap<String, String>, path: &Path) -> Result<InputSpec> {
    let bad = |m: String| Error::ModelFormat {
        path: path.to_path_buf(),
        message: m,
    };
    let input: InputSpec = serde_json::from_str(
        meta.get("input")
            .ok_or_else(|| bad("metadata has no input".into()))?,
    )
    .map_err(|e| bad(format!("input: {e}")))?;
    if !(input.std.is_finite()
        && input.std != 0.0
        && input.scale.is_finite()
        && input.mean.is_finite())
    {
        return Err(bad(
            "input: scale, mean and std must be finite and std != 0".into(),
        ));
    }
    Ok(input)
}

/// Reads an `f32` tensor of exactly `shape`.
pub(crate) fn read_f32(
    st: &SafeTensors<'_>,
    name: &str,
    shape: &[usize],
    path: &Path,
) -> Result<Vec<f32>> {
    let bad = |m: String| Error::ModelFormat {
        path: path.to_path_buf(),
        message: m,
    };
    let t = st
        .tensor(name)
        .map_err(|_| bad(format!("missing tensor {name}")))?;
    if t.dtype() != Dtype::F32 {
        return Err(bad(format!(
            "tensor {name}: dtype {:?}, expected F32",
            t.dtype()
        )));
    }
    if t.shape() != shape {
        return Err(bad(format!(
            "tensor {name}: shape {:?}, expected {shape:?}",
            t.shape()
        )));
    }
    let vals: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = vals.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!("tensor {name}: entry {i} is not finite")));
    }
    Ok(vals)
}

fn model_from(st: &SafeTensors<'_>, meta: &HashMap<String, String>, path: &Path) -> Result<Model> {
    let bad = |m: String| Error::ModelFormat {
        path: path.to_path_buf(),
        message: m,
    };
    let arch: Vec<ArchEntry> = serde_json::from_str(
        meta.get("architecture")
            .ok_or_else(|| bad("metadata has no architecture".into()))?,
    )
    .map_err(|e| bad(format!("architecture: {e}")))?;
    let input = read_input_spec(meta, path)?;
    let mut expected_names = Vec::new();
    let mut layers = Vec::with_capacity(arch.len());
    for (i, entry) in arch.iter().enumerate() {
        let gate = |units: usize| -> Result<Option<DVector<f32>>> {
            let name = format!("{i}.gate");
            if st.names().contains(&name.as_str()) {
                Ok(Some(DVector::from_vec(read_f32(
                    st,
                    &name,
                    &[units],
                    path,
                )?)))
            } else {
                Ok(None)
            }
        };
        let layer = match *entry {
            ArchEntry::Linear { inputs, outputs } => {
                let w = read_f32(st, &format!("{i}.weight"), &[outputs, inputs], path)?;
                let b = read_f32(st, &format!("{i}.bias"), &[outputs], path)?;
                Layer::Linear(Linear::new(
                    DMatrix::from_row_slice(outputs, inputs, &w),
                    DVector::from_vec(b),
                    gate(outputs)?,
                )?)
            }
            ArchEntry::Conv2d {
                inputs,
                outputs,
                kernel,
                stride,
                padding,
            } => {
                if kernel == 0 || stride == 0 || inputs == 0 || outputs == 0 {
                    return Err(bad(format!("layer {i}: conv2d sizes must be > 0")));
                }
                let w = read_f32(
                    st,
                    &format!("{i}.weight"),
                    &[outputs, inputs, kernel, kernel],
                    path,
                )?;
                let b = read_f32(st, &format!("{i}.bias"), &[outputs], path)?;
                let wm = DMatrix::from_row_slice(outputs, inputs * kernel * kernel, &w);
                Layer::Conv2d(Conv2d::new(
                    inputs,
                    kernel,
                    stride,
                    padding,
                    wm,
                    DVector::from_vec(b),
                    gate(outputs)?,
                )?)
            }
            ArchEntry::Relu => Layer::Relu,
            ArchEntry::Maxpool2d { kernel } => Layer::MaxPool2d(MaxPool2d::new(kernel)?),
            ArchEntry::Flatten => Layer::Flatten,
        };
        if layer.params().is_some() {
            expected_names.push(format!("{i}.weight"));
            expected_names.push(format!("{i}.bias"));
            if layer.gate().is_some() {
                expected_names.push(format!("{i}.gate"));
            }
        }
        layers.push(layer);
    }
    if let Some(extra) = st
        .names()
        .into_iter()
        .find(|n| !n.starts_with("optim.") && !expected_names.iter().any(|e| e == n))
    {
        return Err(bad(format!(
            "unexpected tensor {extra} (not in the architecture)"
        )));
    }
    Model::new(input, layers).map_err(|e| bad(format!("inconsistent architecture: {e}")))
}

/// A safetensors file of `(name, dtype, shape, little-endian bytes)` tensors and metadata,
/// with its header in sorted order.
pub(crate) fn serialize(
    tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)],
    meta: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(n, dt, s, d)| TensorView::new(*dt, s.clone(), d).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid("tensors", e.to_string()))?;
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::invalid("safetensors", e.to_string()))?;
    sorted_header(bytes)
}

/// The same file with its JSON header's keys in sorted order: `safetensors` writes the
/// metadata from a `HashMap`, so without this the same model gave different bytes in every
/// process. The header keeps its length (same content, other order), so the data offsets and
/// the padding stay valid.
fn sorted_header(mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    let bad = |m: &str| Error::invalid("safetensors", m.to_string());
    let prefix = bytes.get(..8).ok_or_else(|| bad("no header"))?;
    let len = u64::from_le_bytes(prefix.try_into().map_err(|_| bad("no header"))?) as usize;
    let header = bytes.get(8..8 + len).ok_or_else(|| bad("short header"))?;
    let value: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
    let sorted = serde_json::to_vec(&value).map_err(|e| bad(&e.to_string()))?;
    if sorted.len() > len {
        return Err(bad("header grew when its keys were sorted"));
    }
    bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
    bytes[8 + sorted.len()..8 + len].fill(b' ');
    Ok(bytes)
}

fn le_bytes(vals: impl Iterator<Item = f32>) -> Vec<u8> {
    vals.flat_map(|v| v.to_le_bytes()).collect()
}

/// Row-major bytes of a column-major nalgebra matrix.
pub(crate) fn row_major_bytes(m: &DMatrix<f32>) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len() * 4);
    for r in 0..m.nrows() {
        for c in 0..m.ncols() {
            out.extend_from_slice(&m[(r, c)].to_le_bytes());
        }
    }
    out
}
