//! Waking a thread blocked in `read` on a pipe or FIFO, which have no `shutdown`.
//!
//! The closer sets a flag, then writes one byte into the pipe through a new write end
//! opened at `/proc/self/fd/<n>` (Linux re-opens a pipe's inode like a FIFO). The
//! blocked `read` returns, sees the flag and reports `Closed`; the byte is never taken
//! for data. The fast path pays one atomic load per read, no extra system call.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rpc_core::{Closer, TransportError};

/// Closes the receiving side of a pipe or FIFO from any thread.
pub struct ReadWaker {
    closed: Arc<AtomicBool>,
    /// A duplicate of the read end, so `/proc/self/fd/<n>` names this pipe for as long
    /// as the waker lives (the receiver's own descriptor number could be reused).
    read_end: OwnedFd,
}

impl ReadWaker {
    /// A waker for the pipe whose read end is `read_end`, sharing `closed` with the
    /// receiver (see `StreamReceiver::with_close_flag`).
    ///
    /// # Errors
    ///
    /// `Io` if the descriptor cannot be duplicated.
    pub fn new(
        read_end: &impl std::os::fd::AsFd,
        closed: Arc<AtomicBool>,
    ) -> Result<Self, TransportError> {
        let read_end = read_end
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| TransportError::Io {
                context: "duplicate a pipe descriptor for its closer".into(),
                source: e,
            })?;
        Ok(ReadWaker { closed, read_end })
    }
}

impl Closer for ReadWaker {
    fn close(&self) {
        // SYNC: Release, paired with the Acquire load in StreamReceiver::recv.
        if self.closed.swap(true, Ordering::Release) {
            return;
        }
        let path = format!("/proc/self/fd/{}", self.read_end.as_raw_fd());
        // Non-blocking: if the pipe is full the reader is not blocked and will see the
        // flag at its next read; if it fails otherwise the flag still ends the next read.
        if let Ok(mut w) = OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(path)
        {
            let _ = w.write(&[0]);
        }
    }
}
