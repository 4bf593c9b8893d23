//! File helpers shared by every module that writes results.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes a file atomically: the bytes go to a temporary file in the same folder, which is
/// flushed to disk and then renamed over `path`. A reader never sees a half-written file and
/// an interrupted write leaves the previous version intact.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("path", format!("{} names no file", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut writer = std::io::BufWriter::new(file);
        write(&mut writer)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(source) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, source));
    }
    Ok(())
}

/// Serialises `value` as pretty JSON and writes it atomically to `path`.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })
}

/// Reads a whole file, naming it in the error.
pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Whether `name` is a temporary file of [`write_atomic`] (`.NAME.PID.tmp`), which only a
/// process killed mid-write leaves behind.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Deletes the temporaries a killed process left in `dir`. Call it with the folder locked
/// ([`crate::lock::FolderLock`]), so that no live writer owns them.
pub fn remove_stale_temporaries(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if is_temporary(&entry.file_name().to_string_lossy()) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// FNV-1a, 64 bit, continued from `hash`: a stable hash (unlike `DefaultHasher`, fixed
/// across Rust versions) for fingerprints and checksums. Start from [`FNV_OFFSET`].
pub fn fnv1a_extend(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The starting value of [`fnv1a_extend`].
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a of `bytes` (see [`fnv1a_extend`]).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_extend(FNV_OFFSET, bytes)
}

/// Metadata key of a sealed safetensors file's checksum.
pub const DIGEST_KEY: &str = "digest";

/// The digest's value while the file is being sealed: as many characters as the digest, so
/// sealing changes no offset.
pub const DIGEST_PLACEHOLDER: &str = "0000000000000000";

/// The byte range of the digest's value in a safetensors file's header: the one occurrence
/// of `"digest":"` followed by 16 characters and a quote.
fn digest_range(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    let header_len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let header = bytes.get(8..8usize.checked_add(usize::try_from(header_len).ok()?)?)?;
    let key = format!("\"{DIGEST_KEY}\":\"");
    let key = key.as_bytes();
    let mut found = header
        .windows(key.len())
        .enumerate()
        .filter(|(_, w)| w == &key);
    let (at, _) = found.next()?;
    if found.next().is_some() {
        return None;
    }
    let start = 8 + at + key.len();
    let end = start + DIGEST_PLACEHOLDER.len();
    (bytes.get(end) == Some(&b'"')).then_some(start..end)
}

/// The checksum of a safetensors file: FNV-1a of every byte, the digest's own value read as
/// the placeholder.
fn digest_of(bytes: &[u8], range: &std::ops::Range<usize>) -> u64 {
    let h = fnv1a_extend(FNV_OFFSET, &bytes[..range.start]);
    let h = fnv1a_extend(h, DIGEST_PLACEHOLDER.as_bytes());
    fnv1a_extend(h, &bytes[range.end..])
}

/// Seals a safetensors file written with [`DIGEST_PLACEHOLDER`] under [`DIGEST_KEY`] in its
/// metadata: the placeholder becomes the checksum of the whole file, so
/// [`verify_sealed`] refuses any byte changed afterwards (weights, state or header).
pub fn seal(bytes: &mut [u8]) -> Result<()> {
    let range = digest_range(bytes)
        .ok_or_else(|| Error::invalid("checkpoint", "no digest placeholder to seal"))?;
    let digest = format!("{:016x}", digest_of(bytes, &range));
    bytes[range].copy_from_slice(digest.as_bytes());
    Ok(())
}

/// Checks the checksum [`seal`] wrote; `path` names the file in the error.
pub fn verify_sealed(bytes: &[u8], path: &Path) -> Result<()> {
    let refuse = |message: String| Error::Format {
        path: path.into(),
        message,
    };
    let range = digest_range(bytes).ok_or_else(|| {
        refuse(format!(
            "no `{DIGEST_KEY}` in the metadata: not a checkpoint of this version, or edited"
        ))
    })?;
    let stored = std::str::from_utf8(&bytes[range.clone()]).unwrap_or_default();
    let actual = format!("{:016x}", digest_of(bytes, &range));
    if stored != actual {
        return Err(refuse(format!(
            "checksum mismatch (stored {stored}, contents {actual}): the file was changed or \
             damaged after it was written"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file shaped like a safetensors header with the placeholder in its metadata.
    fn file(meta_value: &str, data: &[u8]) -> Vec<u8> {
        let header = format!(
            "{{\"__metadata__\":{{\"note\":\"{meta_value}\",\"{DIGEST_KEY}\":\"{DIGEST_PLACEHOLDER}\"}}}}"
        );
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        bytes
    }

    #[test]
    fn a_sealed_file_verifies_and_any_flipped_byte_is_refused() {
        let mut bytes = file("state", &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(verify_sealed(&bytes, Path::new("f")).is_err(), "unsealed");
        seal(&mut bytes).unwrap();
        verify_sealed(&bytes, Path::new("f")).unwrap();
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= bit;
                assert!(
                    verify_sealed(&bad, Path::new("f")).is_err(),
                    "byte {i} bit {bit:#x} flipped unnoticed"
                );
            }
        }
    }

    #[test]
    fn truncated_or_headerless_files_are_refused_not_panics() {
        let mut bytes = file("x", &[9; 16]);
        seal(&mut bytes).unwrap();
        for n in 0..bytes.len() {
            assert!(verify_sealed(&bytes[..n], Path::new("f")).is_err(), "{n}");
        }
        assert!(seal(&mut file("x", &[])[..20]).is_err());
    }
}
