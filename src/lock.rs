//! One writer per output folder.
//!
//! Commands that append to files in a folder (a sweep's journal, a merge's results) hold an
//! exclusive lock on that folder for as long as they run. The lock is the operating
//! system's (`flock` on Unix, `LockFileEx` on Windows) taken on a small file inside the
//! folder, [`LOCK_FILE`]: the kernel drops it when the process ends, however it ends
//! (`kill -9` included), so there is never a stale lock to clean up by hand. The file
//! itself carries no meaning and stays after the process exits; deleting it on exit would
//! race with a second process that has already opened it and is about to lock it.
//!
//! A lock file opened read-write works on network file systems too (where Linux turns
//! `flock` into a POSIX record lock, which needs a writable descriptor), which matters for
//! sweeps sharded over a cluster.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file's name inside a locked folder.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a folder, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct FolderLock {
    // Held open for the lock's lifetime; released explicitly on drop (see `Drop`).
    file: File,
    dir: PathBuf,
}

impl Drop for FolderLock {
    /// Unlocks before closing. Closing alone is not enough: a child process forked by another
    /// thread shares the open file description until it execs, and the lock lives as long as
    /// any descriptor of it does, so a second sweep of this process could find its own
    /// folder locked. An explicit unlock releases it for every descriptor at once.
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl FolderLock {
    /// Takes the lock on `dir` (which must exist) without waiting.
    ///
    /// Fails with [`Error::Locked`] if another process holds it, and with [`Error::Io`]
    /// if the lock file cannot be created or the file system cannot lock files.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(FolderLock {
                file,
                dir: dir.into(),
            }),
            Err(TryLockError::WouldBlock) => Err(Error::Locked { path: dir.into() }),
            Err(TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// The locked folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_folder_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = FolderLock::acquire(dir.path()).unwrap();
        // A second open file description, as another process would have.
        let err = FolderLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        drop(first);
        FolderLock::acquire(dir.path()).expect("the lock is free again");
    }
}
