//! The CSR model file: [`Graph::export`]'s inference model with every Linear and Conv2d
//! weight `{w}` (`{node}.weight`) replaced by four tensors — `{w}.indptr` (`i64`, rows + 1),
//! `{w}.indices` (`u32`, one column per stored entry), `{w}.values` (`f32`, same length) and
//! `{w}.shape` (`i64`, the dense PyTorch shape) — plus the metadata `sparse_layout = "csr"`.
//! Every other tensor and metadata entry is the dense export's.
//!
//! The reader checks every part (see [`Csr::from_parts`]) and the shape against the
//! architecture before it allocates the dense weight, rebuilds the dense tensors and hands
//! the file to the dense loader, which checks the rest as for any model file.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors};

use super::csr::Csr;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::nn::graph::{Graph, Op};
use crate::nn::safetensors_io::{parse, serialize};

/// Metadata key marking a CSR model file, and its value.
const LAYOUT_KEY: &str = "sparse_layout";
const LAYOUT: &str = "csr";

/// The four parts of a CSR weight, by tensor-name suffix.
const PARTS: [&str; 4] = ["indptr", "indices", "values", "shape"];

type Tensor = (String, Dtype, Vec<usize>, Vec<u8>);

/// Writes `graph`'s inference model to `path` (atomically) with its Linear and Conv2d
/// weights in CSR; returns the bytes written.
pub fn export_csr(graph: &Graph, path: &Path) -> Result<u64> {
    let g = graph.inference_model()?;
    if !g.is_finite() {
        return Err(Error::invalid(
            "graph",
            "has non-finite parameters; refusing to save",
        ));
    }
    let weights: HashSet<usize> = g
        .nodes()
        .iter()
        .filter_map(|n| match &n.op {
            Op::Linear(d) => Some(d.weight),
            Op::Conv2d(c) => Some(c.weight),
            _ => None,
        })
        .collect();
    let (tensors, mut meta) = g.file_parts(false)?;
    let mut out: Vec<Tensor> = Vec::with_capacity(tensors.len() + 3 * weights.len());
    for t in tensors {
        let Some(p) = weights
            .iter()
            .map(|&p| &g.params()[p])
            .find(|p| p.name == t.0)
        else {
            out.push(t);
            continue;
        };
        let csr = Csr::from_dense(&p.value)
            .map_err(|e| Error::invalid(format!("tensor {}", t.0), e.to_string()))?;
        let i64s = |v: &mut dyn Iterator<Item = usize>| -> Vec<u8> {
            v.flat_map(|x| (x as i64).to_le_bytes()).collect()
        };
        let nnz = csr.nnz();
        let name = &t.0;
        out.push((
            format!("{name}.indptr"),
            Dtype::I64,
            vec![csr.rows() + 1],
            i64s(&mut csr.indptr().iter().copied()),
        ));
        out.push((
            format!("{name}.indices"),
            Dtype::U32,
            vec![nnz],
            csr.indices().iter().flat_map(|c| c.to_le_bytes()).collect(),
        ));
        out.push((
            format!("{name}.values"),
            Dtype::F32,
            vec![nnz],
            csr.values().iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
        out.push((
            format!("{name}.shape"),
            Dtype::I64,
            vec![t.2.len()],
            i64s(&mut t.2.iter().copied()),
        ));
    }
    meta.insert(LAYOUT_KEY.to_string(), LAYOUT.to_string());
    let bytes = serialize(&out, meta)?;
    write_atomic(path, |w| w.write_all(&bytes))?;
    Ok(bytes.len() as u64)
}

/// Loads a file written by [`export_csr`] as the dense graph it stores. Every part is
/// checked; a bad file is a one-line error naming the file and the tensor.
pub fn load_csr(path: &Path) -> Result<Graph> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    from_csr_bytes(&bytes, path)
}

/// Parses a CSR model file's bytes (`path` names it in errors).
pub fn from_csr_bytes(bytes: &[u8], path: &Path) -> Result<Graph> {
    let bad = |m: String| Error::ModelFormat {
        path: path.to_path_buf(),
        message: m,
    };
    let (st, mut meta) = parse(bytes, path)?;
    if meta.get(LAYOUT_KEY).map(String::as_str) != Some(LAYOUT) {
        return Err(bad(format!(
            "not a CSR model file (metadata {LAYOUT_KEY} is not \"{LAYOUT}\")"
        )));
    }
    meta.remove(LAYOUT_KEY);
    let arch = meta
        .get("architecture")
        .ok_or_else(|| bad("metadata has no architecture".into()))?;
    let shapes = weight_shapes(arch).map_err(|m| bad(format!("architecture: {m}")))?;
    let mut names = st.names();
    names.sort();
    let mut done = HashSet::new();
    let mut tensors: Vec<Tensor> = Vec::with_capacity(names.len());
    for name in names {
        if let Some(base) = csr_base(name) {
            if done.insert(base.to_string()) {
                if st.names().contains(&base) {
                    return Err(bad(format!("tensor {base}: stored both dense and as CSR")));
                }
                let want = shapes.get(base).ok_or_else(|| {
                    bad(format!(
                        "tensor {name}: {base} is not a linear or conv weight of the architecture"
                    ))
                })?;
                let dense = read_weight(&st, base, want).map_err(bad)?;
                tensors.push((base.to_string(), Dtype::F32, want.clone(), dense));
            }
            continue;
        }
        let t = st
            .tensor(name)
            .map_err(|e| bad(format!("tensor {name}: {e}")))?;
        tensors.push((
            name.to_string(),
            t.dtype(),
            t.shape().to_vec(),
            t.data().to_vec(),
        ));
    }
    let dense = serialize(&tensors, meta).map_err(|e| bad(e.to_string()))?;
    Graph::from_safetensors(&dense, path)
}

/// `{w}` when `name` is `{w}.{part}` for a CSR part and `{w}` ends in `.weight`.
fn csr_base(name: &str) -> Option<&str> {
    let (base, part) = name.rsplit_once('.')?;
    (PARTS.contains(&part) && base.ends_with(".weight")).then_some(base)
}

/// The dense PyTorch shape of every Linear and Conv2d weight the architecture metadata
/// names (sequential list or graph).
fn weight_shapes(arch: &str) -> std::result::Result<HashMap<String, Vec<usize>>, String> {
    let v: serde_json::Value = serde_json::from_str(arch).map_err(|e| e.to_string())?;
    let (entries, key) = match (&v, v.get("graph")) {
        (serde_json::Value::Array(a), _) => (a, "type"),
        (_, Some(serde_json::Value::Array(a))) => (a, "op"),
        _ => return Err("neither a layer list nor a graph".into()),
    };
    let mut out = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let size = |k: &str| e.get(k).and_then(|x| x.as_u64()).map(|x| x as usize);
        let name = match key {
            "op" => match e.get("name").and_then(|n| n.as_str()) {
                Some(n) => n.to_string(),
                None => continue,
            },
            _ => i.to_string(),
        };
        let dims = match e.get(key).and_then(|k| k.as_str()) {
            Some("linear") => vec![size("out"), size("in")],
            Some("conv2d") => {
                let k = size("kernel");
                vec![size("out"), size("in"), k, k]
            }
            _ => continue,
        };
        if let Some(dims) = dims.into_iter().collect::<Option<Vec<usize>>>() {
            out.insert(format!("{name}.weight"), dims);
        }
    }
    Ok(out)
}

/// Little-endian integers of one tensor of `dtype` (`i64` or `u32`), one dimension.
fn ints(st: &SafeTensors<'_>, name: &str, dtype: Dtype) -> std::result::Result<Vec<u64>, String> {
    let t = st
        .tensor(name)
        .map_err(|_| format!("missing tensor {name}"))?;
    if t.dtype() != dtype {
        return Err(format!(
            "tensor {name}: dtype {:?}, expected {dtype:?}",
            t.dtype()
        ));
    }
    if t.shape().len() != 1 {
        return Err(format!(
            "tensor {name}: shape {:?}, expected one dimension",
            t.shape()
        ));
    }
    let out = match dtype {
        Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
            .enumerate()
            .map(|(k, v)| {
                u64::try_from(v).map_err(|_| format!("tensor {name}: entry {k} is negative ({v})"))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?,
        _ => t
            .data()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap_or_default()) as u64)
            .collect(),
    };
    Ok(out)
}

/// The dense row-major bytes of CSR weight `base`, whose PyTorch shape must be `want`.
fn read_weight(
    st: &SafeTensors<'_>,
    base: &str,
    want: &[usize],
) -> std::result::Result<Vec<u8>, String> {
    let shape = ints(st, &format!("{base}.shape"), Dtype::I64)?;
    if shape.len() != want.len() || shape.iter().zip(want).any(|(&a, &b)| a != b as u64) {
        return Err(format!(
            "tensor {base}.shape: {shape:?}, the architecture says {want:?}"
        ));
    }
    let rows = want[0];
    let cols = want[1..]
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| format!("tensor {base}.shape: {want:?} overflows"))?;
    let numel = rows
        .checked_mul(cols)
        .ok_or_else(|| format!("tensor {base}.shape: {want:?} overflows"))?;
    let indptr = ints(st, &format!("{base}.indptr"), Dtype::I64)?
        .into_iter()
        .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
        .collect();
    let indices: Vec<u32> = ints(st, &format!("{base}.indices"), Dtype::U32)?
        .into_iter()
        .map(|v| v as u32)
        .collect();
    let vname = format!("{base}.values");
    let t = st
        .tensor(&vname)
        .map_err(|_| format!("missing tensor {vname}"))?;
    if t.dtype() != Dtype::F32 || t.shape().len() != 1 {
        return Err(format!(
            "tensor {vname}: {:?} {:?}, expected one-dimensional F32",
            t.dtype(),
            t.shape()
        ));
    }
    let values: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    let csr = Csr::from_parts(rows, cols, indptr, indices, values)
        .map_err(|e| format!("tensor {base}.{}: {}", e.part, e.reason))?;
    let mut dense: Vec<f32> = Vec::new();
    dense
        .try_reserve_exact(numel)
        .map_err(|_| format!("tensor {base}.shape: {want:?} is too large to allocate"))?;
    dense.resize(numel, 0.0);
    csr.write_row_major(&mut dense);
    Ok(dense.iter().flat_map(|v| v.to_le_bytes()).collect())
}
