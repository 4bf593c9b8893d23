//! The binary game file: safetensors with named arrays, for games too large for JSON.
//!
//! | tensor | dtype | shape | meaning |
//! |---|---|---|---|
//! | `benefit` | F64 | `[N]` | `b` |
//! | `self_cost` | F64 | `[N]` or `[1]` | `a ≥ 0` (`[1]`: the same for every player) |
//! | `participation_cost` | F64 | `[N]` or `[1]` | `γ ≥ 0` |
//! | `upper` | F64 | `[N]` or `[1]` | `u > 0`; optional, default 1 |
//! | `indptr`, `indices`, `values` | I64/I32/U64/U32, I32/I64/U32/U64, F64 | `[N+1]`, `[nnz]`, `[nnz]` | sparse `C` in compressed sparse rows (SciPy's `csr_matrix` arrays) |
//! | `competition` | F64 | `[N, N]` | dense `C`, row-major |
//!
//! At most one of the two competition forms; neither means no competition. The header's
//! `__metadata__` holds `"format": "pruning-game"` and `"version": "1"`. The full
//! description, with NumPy/SciPy code, is `docs/game-binary-format.md`.
//!
//! **Reading is streamed.** The header is read and checked first — its length against the
//! file, every tensor's byte range against the data section, shape against dtype and range —
//! so that a hostile header cannot make the reader allocate more than the file holds. Each
//! tensor is then read straight into the vector the game keeps; the peak is the game plus
//! one tensor's bytes. Values are validated as in the JSON reader ([`PruningGame::new`],
//! [`CsrMatrix::from_csr`]); errors name the file and the tensor.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use serde::Deserialize;

use super::{Competition, CsrMatrix, PruningGame};
use crate::error::{Error, Result};

/// `__metadata__.format` of a game file.
pub const FORMAT_NAME: &str = "pruning-game";
/// `__metadata__.version` written by this version.
pub const FORMAT_VERSION: &str = "1";

/// Largest header accepted: the header of a game is a few hundred bytes.
const MAX_HEADER: u64 = 1 << 20;

/// The tensor names this reader knows.
const KNOWN: [&str; 8] = [
    "benefit",
    "self_cost",
    "participation_cost",
    "upper",
    "indptr",
    "indices",
    "values",
    "competition",
];

/// Whether `bytes` (the start of a file) look like a safetensors file: an 8-byte
/// little-endian header length followed by `{`.
pub fn looks_like_safetensors(bytes: &[u8]) -> bool {
    bytes.len() >= 9
        && bytes[8] == b'{'
        && u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8])) > 1
}

#[derive(Debug, Deserialize)]
struct TensorEntry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// A checked header entry: where its bytes are and what they hold.
#[derive(Debug, Clone)]
struct Tensor {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Absolute file offset of the first byte.
    start: u64,
    len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dtype {
    F64,
    I64,
    I32,
    U64,
    U32,
}

impl Dtype {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "F64" => Dtype::F64,
            "I64" => Dtype::I64,
            "I32" => Dtype::I32,
            "U64" => Dtype::U64,
            "U32" => Dtype::U32,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
            Dtype::I32 | Dtype::U32 => 4,
        }
    }
}

/// Bytes one thread reads at a time from a large tensor.
const READ_PIECE: usize = 8 << 20;

/// A reader over one open file with its checked header.
struct Reader<'p> {
    path: &'p Path,
    file: File,
    tensors: BTreeMap<String, Tensor>,
}

impl<'p> Reader<'p> {
    fn format(&self, message: impl Into<String>) -> Error {
        format_error(self.path, message)
    }

    fn open(path: &'p Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut prefix = [0u8; 8];
        if file_len < 8 {
            return Err(Error::Truncated {
                path: path.to_path_buf(),
                expected: 8,
                got: file_len,
            });
        }
        file.read_exact(&mut prefix)
            .map_err(|e| Error::io(path, e))?;
        let header_len = u64::from_le_bytes(prefix);
        if header_len > MAX_HEADER {
            return Err(format_error(
                path,
                format!("safetensors header claims {header_len} bytes; a game header is at most {MAX_HEADER}"),
            ));
        }
        if 8 + header_len > file_len {
            return Err(Error::Truncated {
                path: path.to_path_buf(),
                expected: 8 + header_len,
                got: file_len,
            });
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header)
            .map_err(|e| Error::io(path, e))?;
        let data_start = 8 + header_len;
        let data_len = file_len - data_start;
        let tensors = parse_header(path, &header, data_start, data_len)?;
        Ok(Reader {
            path,
            file,
            tensors,
        })
    }

    fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    fn require(&self, name: &str) -> Result<Tensor> {
        self.get(name)
            .cloned()
            .ok_or_else(|| self.format(format!("missing tensor `{name}`")))
    }

    /// Reads the tensor's bytes straight into `out` (whose size the header check matched).
    /// Reads the tensor's bytes. Large tensors are read in pieces on every thread: most of
    /// the time of a read from the page cache goes to faulting in the fresh pages, and the
    /// threads fault in their pieces side by side (a 128 MB matrix in about half the time).
    fn read_into(&mut self, tensor: &Tensor, out: &mut [u8]) -> Result<()> {
        #[cfg(unix)]
        if out.len() >= 2 * READ_PIECE {
            use std::os::unix::fs::FileExt;
            let file = &self.file;
            return out
                .par_chunks_mut(READ_PIECE)
                .enumerate()
                .try_for_each(|(k, piece)| {
                    file.read_exact_at(piece, tensor.start + (k * READ_PIECE) as u64)
                })
                .map_err(|e| Error::io(self.path, e));
        }
        self.file
            .seek(SeekFrom::Start(tensor.start))
            .and_then(|_| self.file.read_exact(out))
            .map_err(|e| Error::io(self.path, e))
    }

    /// The tensor's elements as `T`, read without an intermediate copy (little-endian file,
    /// converted in place on a big-endian machine by `from_le`).
    fn elements<T: bytemuck::Pod + Default + Send + Sync>(
        &mut self,
        tensor: &Tensor,
        from_le: impl Fn(T) -> T + Sync + Send,
    ) -> Result<Vec<T>> {
        let count = tensor.len / std::mem::size_of::<T>();
        let mut values = vec![T::default(); count];
        self.read_into(tensor, bytemuck::cast_slice_mut(&mut values))?;
        if cfg!(target_endian = "big") {
            values.par_iter_mut().for_each(|v| *v = from_le(*v));
        }
        Ok(values)
    }

    /// A 1-D F64 tensor.
    fn floats(&mut self, tensor: &Tensor) -> Result<Vec<f64>> {
        if tensor.dtype != Dtype::F64 {
            return Err(self.format(format!(
                "tensor `{}` has dtype {:?}; expected F64",
                tensor.name, tensor.dtype
            )));
        }
        self.elements(tensor, |v: f64| f64::from_bits(u64::from_le(v.to_bits())))
    }

    /// A 1-D integer tensor, every value checked to be in `0..=max`, each cast by `cast`.
    ///
    /// Plain loops: one pass over memory each, which a thread pool shared with other work
    /// only slows down.
    fn integers<T>(
        &mut self,
        tensor: &Tensor,
        max: u64,
        cast: impl Fn(u64) -> T,
    ) -> Result<Vec<T>> {
        let name = tensor.name.clone();
        let out_of_range = |k: usize, value: String| {
            format_error(
                self.path,
                format!("{name}[{k}] = {value} is outside 0..={max}"),
            )
        };
        match tensor.dtype {
            Dtype::F64 => Err(self.format(format!(
                "tensor `{}` has dtype F64; expected an integer dtype (I32, I64, U32, U64)",
                tensor.name
            ))),
            Dtype::I64 | Dtype::U64 => {
                let signed = tensor.dtype == Dtype::I64;
                let wide: Vec<u64> = self.elements(tensor, u64::from_le)?;
                // A negative I64 reads as a u64 above 2^63, far above any limit.
                if let Some(k) = wide.iter().position(|&v| v > max) {
                    let value = if signed {
                        (wide[k] as i64).to_string()
                    } else {
                        wide[k].to_string()
                    };
                    return Err(out_of_range(k, value));
                }
                Ok(wide.into_iter().map(cast).collect())
            }
            Dtype::I32 | Dtype::U32 => {
                let signed = tensor.dtype == Dtype::I32;
                let narrow: Vec<u32> = self.elements(tensor, u32::from_le)?;
                // A negative I32 reads as a u32 above 2^31.
                let limit = if signed {
                    max.min(i32::MAX as u64)
                } else {
                    max.min(u32::MAX as u64)
                };
                if let Some(k) = narrow.iter().position(|&v| v as u64 > limit) {
                    let value = if signed {
                        (narrow[k] as i32).to_string()
                    } else {
                        narrow[k].to_string()
                    };
                    return Err(out_of_range(k, value));
                }
                Ok(narrow.into_iter().map(|v| cast(v as u64)).collect())
            }
        }
    }

    /// A per-player vector: shape `[n]`, or `[1]` for one value for all.
    fn per_player(&mut self, name: &str, n: usize, default: Option<f64>) -> Result<DVector<f64>> {
        let tensor = match (self.get(name).cloned(), default) {
            (Some(t), _) => t,
            (None, Some(v)) => return Ok(DVector::from_element(n, v)),
            (None, None) => return Err(self.format(format!("missing tensor `{name}`"))),
        };
        match tensor.shape.as_slice() {
            [len] if *len == n || *len == 1 => {}
            shape => {
                return Err(self.format(format!(
                    "tensor `{name}` has shape {shape:?}; expected [{n}] (one per player) or [1]"
                )))
            }
        }
        let values = self.floats(&tensor)?;
        Ok(if values.len() == 1 && n != 1 {
            DVector::from_element(n, values[0])
        } else {
            DVector::from_vec(values)
        })
    }
}

fn format_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Checks the header: JSON, known names, supported dtypes, and byte ranges that tile the data
/// section and match their shapes.
fn parse_header(
    path: &Path,
    header: &[u8],
    data_start: u64,
    data_len: u64,
) -> Result<BTreeMap<String, Tensor>> {
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| format_error(path, format!("safetensors header: {e}")))?;
    let mut tensors = BTreeMap::new();
    for (name, value) in raw {
        if name == "__metadata__" {
            let metadata: BTreeMap<String, String> = serde_json::from_value(value)
                .map_err(|e| format_error(path, format!("__metadata__: {e}")))?;
            match metadata.get("format").map(String::as_str) {
                Some(FORMAT_NAME) | None => {}
                Some(other) => {
                    return Err(format_error(
                        path,
                        format!("__metadata__.format is `{other}`, not a {FORMAT_NAME} game"),
                    ))
                }
            }
            continue;
        }
        if !KNOWN.contains(&name.as_str()) {
            return Err(format_error(
                path,
                format!(
                    "unknown tensor `{name}`; a game file holds {}",
                    KNOWN.join(", ")
                ),
            ));
        }
        let entry: TensorEntry = serde_json::from_value(value)
            .map_err(|e| format_error(path, format!("tensor `{name}`: {e}")))?;
        let dtype = Dtype::parse(&entry.dtype).ok_or_else(|| {
            format_error(
                path,
                format!(
                    "tensor `{name}` has dtype {}; expected F64 (or an integer dtype for indptr/indices)",
                    entry.dtype
                ),
            )
        })?;
        let [begin, end] = entry.data_offsets;
        if begin > end || end > data_len {
            return Err(Error::Truncated {
                path: path.to_path_buf(),
                expected: data_start.saturating_add(end),
                got: data_start + data_len,
            });
        }
        let count = entry
            .shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .and_then(|c| c.checked_mul(dtype.size() as u64));
        if count != Some(end - begin) {
            return Err(format_error(
                path,
                format!(
                    "tensor `{name}`: shape {:?} of {} needs {} bytes, its data_offsets span {}",
                    entry.shape,
                    entry.dtype,
                    count.map_or_else(|| "more than 2^64".to_string(), |c| c.to_string()),
                    end - begin
                ),
            ));
        }
        let shape = entry
            .shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| format_error(path, format!("tensor `{name}`: shape too large")))?;
        tensors.insert(
            name.clone(),
            Tensor {
                name,
                dtype,
                shape,
                start: data_start + begin,
                // end − begin ≤ the file length, which fits in memory addresses on 64-bit.
                len: usize::try_from(end - begin)
                    .map_err(|_| format_error(path, "tensor larger than the address space"))?,
            },
        );
    }
    Ok(tensors)
}

/// Names the file in an error that does not already carry a path.
pub(crate) fn with_path(path: &Path, error: Error) -> Error {
    match error {
        Error::Io { .. } | Error::Format { .. } | Error::Truncated { .. } => error,
        other => format_error(path, other.to_string()),
    }
}

impl PruningGame {
    /// Reads and validates a binary (safetensors) game file; see the module docs.
    pub fn read_safetensors(path: &Path) -> Result<Self> {
        let mut reader = Reader::open(path)?;
        let benefit = reader.require("benefit")?;
        let n = match benefit.shape.as_slice() {
            [n] => *n,
            shape => {
                return Err(reader.format(format!(
                    "tensor `benefit` has shape {shape:?}; expected [N], one entry per player"
                )))
            }
        };
        if n == 0 {
            return Err(with_path(path, Error::EmptyGame));
        }
        let sparse = ["indptr", "indices", "values"]
            .iter()
            .filter(|name| reader.get(name).is_some())
            .count();
        let dense = reader.get("competition").cloned();
        let mut known_symmetry = None;
        let competition = match (sparse, dense) {
            (0, None) => Competition::None,
            (0, Some(t)) => {
                if t.shape != [n, n] {
                    return Err(reader.format(format!(
                        "tensor `competition` has shape {:?}; expected [{n}, {n}]",
                        t.shape
                    )));
                }
                if t.dtype != Dtype::F64 {
                    return Err(reader.format(format!(
                        "tensor `competition` has dtype {:?}; expected F64",
                        t.dtype
                    )));
                }
                // The file stores rows, nalgebra columns: read as columns (the transpose),
                // and transpose in place unless the matrix is its own transpose.
                let mut matrix = DMatrix::from_vec(n, n, reader.floats(&t)?);
                let symmetric = super::competition::dense_is_symmetric(&matrix);
                if !symmetric {
                    super::competition::transpose_square_in_place(matrix.as_mut_slice(), n);
                }
                known_symmetry = Some(symmetric);
                Competition::dense(matrix).map_err(|e| with_path(path, e))?
            }
            (3, None) => {
                let indptr = reader.require("indptr")?;
                let indices = reader.require("indices")?;
                let values = reader.require("values")?;
                for t in [&indptr, &indices, &values] {
                    if t.shape.len() != 1 {
                        return Err(reader.format(format!(
                            "tensor `{}` has shape {:?}; expected one dimension",
                            t.name, t.shape
                        )));
                    }
                }
                if indptr.shape[0] != n + 1 {
                    return Err(with_path(
                        path,
                        Error::LengthMismatch {
                            field: "indptr (players + 1)".into(),
                            expected: n + 1,
                            got: indptr.shape[0],
                        },
                    ));
                }
                let nnz = indices.shape[0];
                if values.shape[0] != nnz {
                    return Err(with_path(
                        path,
                        Error::LengthMismatch {
                            field: "values (one per entry of indices)".into(),
                            expected: nnz,
                            got: values.shape[0],
                        },
                    ));
                }
                // Both bounds fit the target types: nnz ≤ the file length, n − 1 < 2^32 (checked
                // by the CSR constructor's player limit first).
                if n > u32::MAX as usize {
                    return Err(with_path(
                        path,
                        Error::invalid("players", format!("{n} exceeds the sparse limit of 2^32 - 1")),
                    ));
                }
                let offsets: Vec<usize> =
                    reader.integers(&indptr, nnz as u64, |v| v as usize)?;
                let columns: Vec<u32> =
                    reader.integers(&indices, n as u64 - 1, |v| v as u32)?;
                let values = reader.floats(&values)?;
                let c = CsrMatrix::from_csr(n, offsets, columns, values)
                    .map_err(|e| with_path(path, e))?;
                Competition::Sparse(c)
            }
            _ => {
                return Err(reader.format(
                    "competition must be either `competition` (dense) or all three of `indptr`, `indices`, `values` (sparse)",
                ))
            }
        };
        let benefit_values = DVector::from_vec(reader.floats(&benefit)?);
        let self_cost = reader.per_player("self_cost", n, None)?;
        let participation_cost = reader.per_player("participation_cost", n, None)?;
        let upper = reader.per_player("upper", n, Some(1.0))?;
        let game = PruningGame::new(
            benefit_values,
            self_cost,
            participation_cost,
            upper,
            competition,
        )
        .map_err(|e| with_path(path, e))?;
        Ok(match known_symmetry {
            Some(symmetric) => game.with_known_symmetry(symmetric),
            None => game,
        })
    }

    /// Writes the game as a binary (safetensors) game file, atomically; see the module docs.
    ///
    /// Per-player values that are the same for every player are written as `[1]`; sparse
    /// competition as `indptr` (I64), `indices` (I32 while the game has fewer than 2^31
    /// players, else I64) and `values`; dense as `competition`, row-major.
    pub fn write_safetensors(&self, path: &Path) -> Result<()> {
        let n = self.benefit().len();
        let mut layout: Vec<(&str, &str, Vec<usize>, Payload<'_>)> = Vec::new();
        layout.push((
            "benefit",
            "F64",
            vec![n],
            Payload::Floats(self.benefit().as_slice()),
        ));
        for (name, values) in [
            ("self_cost", self.self_cost()),
            ("participation_cost", self.participation_cost()),
            ("upper", self.upper_bounds()),
        ] {
            let first = values[0];
            let uniform = values.iter().all(|v| v.to_bits() == first.to_bits());
            if name == "upper" && uniform && first.to_bits() == 1.0f64.to_bits() {
                continue;
            }
            let slice = if uniform {
                &values.as_slice()[..1]
            } else {
                values.as_slice()
            };
            layout.push((name, "F64", vec![slice.len()], Payload::Floats(slice)));
        }
        match self.competition() {
            Competition::None => {}
            Competition::Dense(m) => {
                layout.push(("competition", "F64", vec![n, n], Payload::RowMajor(m)));
            }
            Competition::Sparse(c) => {
                let nnz = c.nnz();
                layout.push((
                    "indptr",
                    "I64",
                    vec![n + 1],
                    Payload::Offsets(c.row_offsets()),
                ));
                let wide = n > i32::MAX as usize;
                layout.push((
                    "indices",
                    if wide { "I64" } else { "I32" },
                    vec![nnz],
                    Payload::Columns(c.columns(), wide),
                ));
                layout.push(("values", "F64", vec![nnz], Payload::Floats(c.values())));
            }
        }
        let mut header = serde_json::Map::new();
        header.insert(
            "__metadata__".into(),
            serde_json::json!({"format": FORMAT_NAME, "version": FORMAT_VERSION}),
        );
        let mut offset = 0usize;
        for (name, dtype, shape, payload) in &layout {
            let len = payload.bytes();
            header.insert(
                (*name).into(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len]}),
            );
            offset += len;
        }
        let mut header = serde_json::to_vec(&serde_json::Value::Object(header))
            .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
        // Pad with spaces so that the data starts 8-byte aligned, as safetensors writers do.
        while header.len() % 8 != 0 {
            header.push(b' ');
        }
        crate::io::write_atomic(path, |w| {
            w.write_all(&(header.len() as u64).to_le_bytes())?;
            w.write_all(&header)?;
            for (_, _, _, payload) in &layout {
                payload.write(w)?;
            }
            Ok(())
        })
    }
}

/// The data of one tensor, written little-endian in chunks.
enum Payload<'a> {
    Floats(&'a [f64]),
    RowMajor(&'a DMatrix<f64>),
    Offsets(&'a [usize]),
    Columns(&'a [u32], bool),
}

/// Values per write: large enough that the system call cost vanishes.
const CHUNK: usize = 1 << 16;

impl Payload<'_> {
    fn bytes(&self) -> usize {
        match self {
            Payload::Floats(v) => 8 * v.len(),
            Payload::RowMajor(m) => 8 * m.len(),
            Payload::Offsets(v) => 8 * v.len(),
            Payload::Columns(v, wide) => (if *wide { 8 } else { 4 }) * v.len(),
        }
    }

    fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        let mut buffer = Vec::with_capacity(8 * CHUNK);
        let flush = |buffer: &mut Vec<u8>, w: &mut dyn Write| -> std::io::Result<()> {
            w.write_all(buffer)?;
            buffer.clear();
            Ok(())
        };
        match self {
            Payload::Floats(values) => {
                for chunk in values.chunks(CHUNK) {
                    chunk
                        .iter()
                        .for_each(|v| buffer.extend_from_slice(&v.to_le_bytes()));
                    flush(&mut buffer, w)?;
                }
            }
            Payload::RowMajor(m) => {
                for i in 0..m.nrows() {
                    m.row(i)
                        .iter()
                        .for_each(|v| buffer.extend_from_slice(&v.to_le_bytes()));
                    flush(&mut buffer, w)?;
                }
            }
            Payload::Offsets(values) => {
                for chunk in values.chunks(CHUNK) {
                    chunk
                        .iter()
                        .for_each(|&v| buffer.extend_from_slice(&(v as i64).to_le_bytes()));
                    flush(&mut buffer, w)?;
                }
            }
            Payload::Columns(values, wide) => {
                for chunk in values.chunks(CHUNK) {
                    for &v in chunk {
                        if *wide {
                            buffer.extend_from_slice(&(v as i64).to_le_bytes());
                        } else {
                            buffer.extend_from_slice(&(v as i32).to_le_bytes());
                        }
                    }
                    flush(&mut buffer, w)?;
                }
            }
        }
        Ok(())
    }
}
