//! The liveness token of a named object's owner: an exclusive `flock` on a lock file
//! next to the object, held for the owner's lifetime.
//!
//! The kernel drops the lock when the owner dies, even by `kill -9`, so "can I take
//! the lock?" tells a stale object from a live one without trusting pids (which the
//! OS reuses).

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rpc_core::TransportError;

/// A held owner lock; dropping it removes the lock file and releases the lock.
#[derive(Debug)]
pub struct OwnerLock {
    path: PathBuf,
    _file: File,
}

impl OwnerLock {
    /// Takes the lock at `path` (created 0600 if missing).
    ///
    /// # Errors
    ///
    /// `AddrInUse { endpoint }` when a live owner holds it; `Io` if the lock file cannot
    /// be created or locked.
    ///
    /// # References
    ///
    /// flock(2)
    pub fn acquire(path: PathBuf, endpoint: &str) -> Result<Self, TransportError> {
        let io_err = |what: &str, source| TransportError::Io {
            context: format!("{what} lock file {} for {endpoint}", path.display()),
            source,
        };
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(nix::libc::O_CLOEXEC)
                .open(&path)
                .map_err(|e| io_err("create", e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(TransportError::AddrInUse {
                        endpoint: endpoint.to_owned(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io_err("lock", e)),
            }
            // The previous owner may have unlinked the file between our open and our
            // lock; then we hold a lock nobody else can see. Retry on the new file.
            let ours = file.metadata().map_err(|e| io_err("inspect", e))?;
            match std::fs::metadata(&path) {
                Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {
                    return Ok(OwnerLock { path, _file: file });
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("inspect", e)),
            }
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock, so a newcomer never locks a file that is
        // about to disappear (it re-checks the inode after locking).
        let _ = std::fs::remove_file(&self.path);
    }
}
