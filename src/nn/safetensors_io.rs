//! The `safetensors` layer under every model file and checkpoint: parsing with errors that
//! name the file, the checked `input` metadata, `f32` tensors read at an exact shape, and
//! files written with a sorted header so the same model gives the same bytes.
//!
//! [`ArchEntry`] is one layer of the sequential `architecture` list (for example
//! `[{"type":"linear","in":784,"out":512},{"type":"relu"}]`), the layout of a
//! `torch.nn.Sequential` whose tensors are `{index}.weight` and `{index}.bias`; graphs that
//! are such chains are written in it (see [`crate::nn::graph`]).

use std::collections::HashMap;
use std::path::Path;

use nalgebra::DMatrix;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::InputSpec;
use crate::error::{Error, Result};

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
