//! Strict IDX reader (the MNIST file format), gzip-compressed or raw.
//!
//! Layout: a 4-byte magic `00 00 08 nd` (unsigned bytes, `nd` dimensions), `nd` big-endian
//! `u32` sizes, then exactly `prod(sizes)` bytes. Compression is detected from the gzip magic
//! `1f 8b`. Every inconsistency is a typed error that names the file.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest decompressed file accepted (guards against decompression bombs).
const MAX_BYTES: u64 = 1 << 30;

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimension sizes.
    pub dims: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<u8>,
}

/// Reads a whole file, decompressing it if it starts with the gzip magic.
fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .take(MAX_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::DataFormat {
                path: path.to_path_buf(),
                message: format!("corrupt gzip stream: {e}"),
            })?;
        if out.len() as u64 > MAX_BYTES {
            return Err(Error::DataFormat {
                path: path.to_path_buf(),
                message: format!("decompressed size exceeds {MAX_BYTES} bytes"),
            });
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses IDX bytes with `ndims` dimensions; `path` is used in error messages.
pub fn parse_idx(bytes: &[u8], ndims: u8, path: &Path) -> Result<IdxArray> {
    let expected_magic = 0x0000_0800 | ndims as u32;
    if bytes.len() < 4 {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            expected: 4,
            got: bytes.len() as u64,
        });
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != expected_magic {
        return Err(Error::IdxMagic {
            path: path.to_path_buf(),
            expected: expected_magic,
            got: magic,
        });
    }
    let header = 4 + 4 * ndims as usize;
    if bytes.len() < header {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            expected: header as u64,
            got: bytes.len() as u64,
        });
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    if dims.contains(&0) {
        return Err(Error::DataFormat {
            path: path.to_path_buf(),
            message: format!("dimension of size 0 in {dims:?}"),
        });
    }
    let count = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&n| n <= MAX_BYTES)
        .ok_or_else(|| Error::DataFormat {
            path: path.to_path_buf(),
            message: format!("dimensions {dims:?} are too large"),
        })?;
    let expected = header as u64 + count;
    let got = bytes.len() as u64;
    if got < expected {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            expected,
            got,
        });
    }
    if got > expected {
        return Err(Error::DataFormat {
            path: path.to_path_buf(),
            message: format!(
                "{} trailing bytes after the {expected} bytes the header describes",
                got - expected
            ),
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Reads an IDX file of `ndims` dimensions (gzip or raw).
pub fn read_idx(path: &Path, ndims: u8) -> Result<IdxArray> {
    let bytes = read_maybe_gzip(path)?;
    parse_idx(&bytes, ndims, path)
}

/// Reads an image file (`[n, rows, cols]`, magic `0x00000803`).
pub fn read_images(path: &Path) -> Result<IdxArray> {
    read_idx(path, 3)
}

/// Reads a label file (`[n]`, magic `0x00000801`).
pub fn read_labels(path: &Path) -> Result<IdxArray> {
    read_idx(path, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ndims: u8, dims: &[u32]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, ndims];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn parses_valid_and_rejects_each_defect() {
        let p = Path::new("x.idx");
        let mut ok = header(3, &[2, 2, 3]);
        ok.extend((0..12).map(|i| i as u8));
        let a = parse_idx(&ok, 3, p).expect("valid file");
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data[11], 11);
        assert!(matches!(
            parse_idx(&ok[..ok.len() - 1], 3, p),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(parse_idx(&ok, 1, p), Err(Error::IdxMagic { .. })));
        assert!(matches!(
            parse_idx(&ok[..2], 3, p),
            Err(Error::Truncated { .. })
        ));
        let mut extra = ok.clone();
        extra.push(0);
        assert!(matches!(
            parse_idx(&extra, 3, p),
            Err(Error::DataFormat { .. })
        ));
        let zero = header(1, &[0]);
        assert!(matches!(
            parse_idx(&zero, 1, p),
            Err(Error::DataFormat { .. })
        ));
        let huge = header(3, &[u32::MAX, u32::MAX, 2]);
        assert!(matches!(
            parse_idx(&huge, 3, p),
            Err(Error::DataFormat { .. })
        ));
    }
}
