//! Strict IDX reader (the MNIST file format), gzip-compressed or raw.
//!
//! Layout: a 4-byte magic `00 00 08 nd` (unsigned bytes, `nd` dimensions), `nd` big-endian
//! `u32` sizes, then exactly `prod(sizes)` bytes. Compression is detected from the gzip magic
//! `1f 8b`. Every inconsistency is a typed error that names the file.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest array accepted, in bytes after decompression (a guard against decompression
/// bombs and corrupt headers; Fashion-MNIST's largest file holds 47 MB). Checked from the
/// header, before the data is read or inflated.
pub const MAX_BYTES: u64 = 1 << 30;

/// Largest image accepted, in pixels (`rows × cols` of a 3-dimensional file): 1024 × 1024.
/// The networks built on a data set have a first layer that grows with it, and a header
/// claiming 4096 × 4096 images is far more likely corrupt than meant.
pub const MAX_IMAGE_PIXELS: u64 = 1 << 20;

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimension sizes.
    pub dims: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<u8>,
}

/// How the bytes reach the parser: the length of a raw stream is known before reading it,
/// that of a gzip stream only once it is inflated.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Raw { len: u64 },
    Gzip,
}

/// Reads up to `n` bytes (fewer only at the end of the stream). `n` has been checked
/// against the limits before this allocates it.
fn read_up_to(reader: &mut dyn Read, n: u64, stream: Stream, path: &Path) -> Result<Vec<u8>> {
    // A raw stream's length is known to hold the `n` bytes; a gzip stream may end early, so
    // its buffer grows with what actually inflates rather than with what the header claims.
    let capacity = match stream {
        Stream::Raw { .. } => n,
        Stream::Gzip => n.min(1 << 20),
    };
    let mut buf = Vec::with_capacity(capacity as usize);
    reader
        .take(n)
        .read_to_end(&mut buf)
        .map_err(|e| match stream {
            Stream::Gzip => Error::DataFormat {
                path: path.to_path_buf(),
                message: format!("corrupt gzip stream: {e}"),
            },
            Stream::Raw { .. } => Error::io(path, e),
        })?;
    Ok(buf)
}

/// Parses an IDX stream: header first, then — once the header's sizes are known to be
/// within the limits — exactly the data it describes.
fn read_stream(reader: &mut dyn Read, ndims: u8, stream: Stream, path: &Path) -> Result<IdxArray> {
    let file = || path.to_path_buf();
    let magic_bytes = read_up_to(reader, 4, stream, path)?;
    if magic_bytes.len() < 4 {
        return Err(Error::Truncated {
            path: file(),
            expected: 4,
            got: magic_bytes.len() as u64,
        });
    }
    let expected_magic = 0x0000_0800 | ndims as u32;
    let magic = u32::from_be_bytes([
        magic_bytes[0],
        magic_bytes[1],
        magic_bytes[2],
        magic_bytes[3],
    ]);
    if magic != expected_magic {
        return Err(Error::IdxMagic {
            path: file(),
            expected: expected_magic,
            got: magic,
        });
    }
    let header = 4 + 4 * ndims as u64;
    let sizes = read_up_to(reader, header - 4, stream, path)?;
    if (sizes.len() as u64) < header - 4 {
        return Err(Error::Truncated {
            path: file(),
            expected: header,
            got: 4 + sizes.len() as u64,
        });
    }
    let dims: Vec<usize> = sizes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    if dims.contains(&0) {
        return Err(Error::DataFormat {
            path: file(),
            message: format!("dimension of size 0 in {dims:?}"),
        });
    }
    if ndims == 3 {
        let pixels = dims[1] as u64 * dims[2] as u64;
        if pixels > MAX_IMAGE_PIXELS {
            return Err(Error::TooLarge {
                path: file(),
                field: "image rows × cols".into(),
                value: format!("{} × {}", dims[1], dims[2]),
                reason: format!(
                    "{pixels} pixels per image, more than the limit of {MAX_IMAGE_PIXELS}"
                ),
            });
        }
    }
    // Up to 255 sizes below 2^32: multiply while the product stays within the limit.
    let mut count: u64 = 1;
    for &d in &dims {
        count = match count.checked_mul(d as u64) {
            Some(c) if c <= MAX_BYTES => c,
            _ => {
                return Err(Error::TooLarge {
                    path: file(),
                    field: "dimensions".into(),
                    value: format!("{dims:?}"),
                    reason: format!("the data would need more than the limit of {MAX_BYTES} bytes"),
                })
            }
        };
    }
    let expected = header + count;
    if let Stream::Raw { len } = stream {
        if len < expected {
            return Err(Error::Truncated {
                path: file(),
                expected,
                got: len,
            });
        }
        if len > expected {
            return Err(trailing(path, len - expected, expected));
        }
    }
    let data = read_up_to(reader, count, stream, path)?;
    if (data.len() as u64) < count {
        return Err(Error::Truncated {
            path: file(),
            expected,
            got: header + data.len() as u64,
        });
    }
    if let Stream::Gzip = stream {
        // One byte more than the header describes is enough to refuse the file; reading on
        // would inflate whatever a corrupt or hostile stream holds.
        let more = read_up_to(reader, 1, stream, path)?;
        if !more.is_empty() {
            return Err(Error::DataFormat {
                path: file(),
                message: format!(
                    "the inflated data runs past the {expected} bytes the header describes"
                ),
            });
        }
    }
    Ok(IdxArray { dims, data })
}

fn trailing(path: &Path, extra: u64, expected: u64) -> Error {
    Error::DataFormat {
        path: path.to_path_buf(),
        message: format!("{extra} trailing bytes after the {expected} bytes the header describes"),
    }
}

/// Parses IDX bytes with `ndims` dimensions; `path` is used in error messages.
pub fn parse_idx(bytes: &[u8], ndims: u8, path: &Path) -> Result<IdxArray> {
    let stream = Stream::Raw {
        len: bytes.len() as u64,
    };
    read_stream(&mut &bytes[..], ndims, stream, path)
}

/// Parses IDX bytes that may be gzip-compressed (detected from the gzip magic `1f 8b`),
/// inflating no more than the header describes.
pub fn parse_idx_maybe_gzip(bytes: &[u8], ndims: u8, path: &Path) -> Result<IdxArray> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut decoder = flate2::read::MultiGzDecoder::new(bytes);
        read_stream(&mut decoder, ndims, Stream::Gzip, path)
    } else {
        parse_idx(bytes, ndims, path)
    }
}

/// Reads an IDX file of `ndims` dimensions (gzip or raw). The header is read and checked
/// first; only then is the data read (or inflated), and never more than the header claims.
pub fn read_idx(path: &Path, ndims: u8) -> Result<IdxArray> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let start = read_up_to(&mut file, 2, Stream::Raw { len }, path)?;
    let gzip = start == [0x1f, 0x8b];
    let mut reader = std::io::BufReader::new(std::io::Cursor::new(start).chain(file));
    if gzip {
        let mut decoder = flate2::read::MultiGzDecoder::new(reader);
        read_stream(&mut decoder, ndims, Stream::Gzip, path)
    } else {
        read_stream(&mut reader, ndims, Stream::Raw { len }, path)
    }
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
            Err(Error::TooLarge { .. })
        ));
    }
}
