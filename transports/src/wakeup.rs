//! Waking a listener blocked in `accept` from another thread: an eventfd polled next
//! to the listening socket.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};
use rpc_core::{Closer, TransportError};

/// An eventfd that, once signalled, stays readable.
#[derive(Clone)]
pub struct Wakeup(Arc<EventFd>);

impl Wakeup {
    /// A new, unsignalled wake-up.
    ///
    /// # Errors
    ///
    /// `Io` if the OS refuses an eventfd (out of file descriptors).
    pub fn new() -> Result<Self, TransportError> {
        let fd =
            EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(|e| {
                TransportError::Io {
                    context: "create an eventfd to wake the listener".into(),
                    source: e.into(),
                }
            })?;
        Ok(Wakeup(Arc::new(fd)))
    }

    /// Blocks until `fd` is readable (`Ok`) or the wake-up was signalled (`Closed`).
    ///
    /// # Errors
    ///
    /// `Closed` once signalled; `Io` if `poll` fails.
    ///
    /// # References
    ///
    /// poll(2), eventfd(2)
    pub fn wait_readable(&self, fd: BorrowedFd<'_>, what: &str) -> Result<(), TransportError> {
        loop {
            let mut fds = [
                PollFd::new(fd, PollFlags::POLLIN),
                PollFd::new(self.0.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {
                    if fds[1].any().unwrap_or(false) {
                        return Err(TransportError::Closed);
                    }
                    if fds[0].any().unwrap_or(false) {
                        return Ok(());
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    return Err(TransportError::Io {
                        context: format!("wait for connections on {what}"),
                        source: io::Error::from(e),
                    });
                }
            }
        }
    }
}

impl Closer for Wakeup {
    fn close(&self) {
        // Cannot fail short of a counter overflow, which 1 per close never reaches.
        let _ = self.0.write(1);
    }
}
