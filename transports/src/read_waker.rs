//! Waking a thread blocked in `read` on a pipe or FIFO, which have no `shutdown`; and
//! ending a send blocked on a peer that does not read.
//!
//! The closer sets a flag, then writes one byte into the pipe through a new write end
//! opened at `/proc/self/fd/<n>` (Linux re-opens a pipe's inode like a FIFO). The
//! blocked `read` returns, sees the flag and reports `Closed`; the byte is never taken
//! for data. The fast path pays one atomic load per read, no extra system call.
//!
//! `abort` sets a second flag, which a sender blocked on a full pipe reads between
//! short `poll` slices (its descriptor is non-blocking) and then returns `Closed`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rpc_core::Closer;

/// Closes the receiving side of a pipe or FIFO from any thread, and on `abort` its
/// sending side too.
pub struct ReadWaker {
    closed: Arc<AtomicBool>,
    aborted: Arc<AtomicBool>,
    /// The read end, shared with the receiver, so `/proc/self/fd/<n>` names this pipe
    /// for as long as the waker lives (no duplicate descriptor: a connection costs two).
    read_end: Arc<File>,
}

impl ReadWaker {
    /// A waker for the pipe whose read end is `read_end`, sharing `closed` with the
    /// receiver (see `StreamReceiver::with_close_flag`) and `aborted` with the sender
    /// (see `StreamSender::with_abort_flag`).
    pub fn new(read_end: Arc<File>, closed: Arc<AtomicBool>, aborted: Arc<AtomicBool>) -> Self {
        ReadWaker {
            closed,
            aborted,
            read_end,
        }
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

    fn abort(&self) {
        // SYNC: Release, paired with the Acquire load in StreamSender::is_aborted; the
        // blocked sender polls with a short tick and sees it.
        self.aborted.store(true, Ordering::Release);
        self.close();
    }
}
