//! Termination signals (SIGTERM, SIGINT) as something a thread can wait on: a handler
//! writes the signal's number to a pipe, which [`Termination::wait`] polls beside any
//! other descriptor (a server that ended by itself, for example).
//!
//! The handler does one thing, `write(2)` to a non-blocking pipe, which is
//! async-signal-safe; it keeps `errno`. The handlers are installed on the first
//! [`Termination::install`] and stay until a signal came: then the default disposition
//! is back, so a second Ctrl-C during a slow shutdown ends the process as usual.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::unistd::{pipe2, read};

/// The signals a [`Termination`] waits for.
const SIGNALS: [Signal; 2] = [Signal::SIGTERM, Signal::SIGINT];

/// The write end of the pipe, for the handler (-1 before it exists).
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

/// The pipe: read end kept here, write end leaked to the handler for the process's life.
static PIPE: OnceLock<Result<OwnedFd, Errno>> = OnceLock::new();

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    // The interrupted code's errno is kept (signal-safety(7)).
    let saved = Errno::last_raw();
    let byte = [u8::try_from(signal).unwrap_or(0)];
    // SAFETY: write(2) is async-signal-safe; `fd` is the pipe's write end, open for the
    // process's life (never closed), and `byte` is a valid one-byte buffer. A full pipe
    // (EAGAIN) loses nothing: a byte is already waiting.
    unsafe { libc::write(fd, byte.as_ptr().cast(), 1) };
    Errno::set_raw(saved);
}

/// What ended a [`Termination::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// SIGTERM or SIGINT came.
    Signal(Signal),
    /// The other descriptor turned readable.
    Other,
}

/// A handle on the termination signals of this process.
#[derive(Debug, Clone, Copy)]
pub struct Termination {
    read: BorrowedFd<'static>,
}

impl Termination {
    /// Installs the SIGTERM and SIGINT handlers (once per process; again after a
    /// signal restored the default disposition).
    ///
    /// # Errors
    ///
    /// When the pipe cannot be made or `sigaction` fails.
    pub fn install() -> io::Result<Termination> {
        let read = match PIPE.get_or_init(|| {
            let (read, write) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
            // Leaked on purpose: the handler may write to it at any time.
            WRITE_FD.store(
                std::os::fd::IntoRawFd::into_raw_fd(write),
                Ordering::Relaxed,
            );
            Ok(read)
        }) {
            Ok(read) => read.as_fd(),
            Err(e) => return Err((*e).into()),
        };
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for signal in SIGNALS {
            // SAFETY: `on_signal` only calls async-signal-safe functions (write(2)) and
            // touches an atomic and errno.
            unsafe { sigaction(signal, &action) }?;
        }
        Ok(Termination { read })
    }

    /// Blocks until SIGTERM or SIGINT arrives, or `other` (if given) turns readable.
    /// After a signal, SIGTERM and SIGINT are back to their default disposition.
    ///
    /// # Errors
    ///
    /// When `poll` or `read` fail for another reason than an interruption.
    pub fn wait(&self, other: Option<BorrowedFd<'_>>) -> io::Result<Woken> {
        loop {
            let mut fds = vec![PollFd::new(self.read, PollFlags::POLLIN)];
            if let Some(other) = other {
                fds.push(PollFd::new(other, PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            let other_ready = fds
                .get(1)
                .and_then(PollFd::revents)
                .is_some_and(|r| !r.is_empty());
            let mut byte = [0u8];
            match read(self.read, &mut byte) {
                Ok(1) => {
                    restore_defaults();
                    let signal = Signal::try_from(i32::from(byte[0])).unwrap_or(Signal::SIGTERM);
                    return Ok(Woken::Signal(signal));
                }
                Ok(_) | Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            if other_ready {
                return Ok(Woken::Other);
            }
        }
    }
}

/// Puts SIGTERM and SIGINT back to their default disposition.
fn restore_defaults() {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in SIGNALS {
        // SAFETY: the default disposition installs no handler of ours.
        let _ = unsafe { sigaction(signal, &default) };
    }
}
