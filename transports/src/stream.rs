//! The one framing implementation for byte-stream transports (UNIX socket, TCP, pipes
//! and FIFOs): [`StreamSender`] and [`StreamReceiver`] over any file descriptor that
//! reads and writes bytes.

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, sendmsg, setsockopt, sockopt};
use nix::sys::time::TimeVal;
use rpc_core::codec::Payload;
use rpc_core::framing::{FrameReader, Prefix, check_len};
use rpc_core::{FrameReceiver, FrameSender, Readiness, TransportError, WaitFds};

/// How often a sender blocked on a full pipe looks at its abort flag (pipes and FIFOs
/// have no `shutdown` that would wake it).
const ABORT_TICK: Duration = Duration::from_millis(20);

/// How a stream sender writes without blocking, so that a send can wait with a
/// deadline and be woken by the closer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteMode {
    /// A socket: `sendmsg`, with `MSG_DONTWAIT` while a deadline is set, leaving the
    /// descriptor (shared with the receiver) in blocking mode.
    Socket,
    /// A descriptor of its own in non-blocking mode (a pipe's or FIFO's write end):
    /// `writev`.
    NonBlocking,
}

/// Sends length-prefixed frames on a byte stream: one `writev` (or `sendmsg`) per
/// frame when the peer keeps up.
///
/// When the peer's buffer is full the sender waits with `poll`, until the deadline of
/// [`FrameSender::set_deadline`] (`TimedOut`), the peer's departure (`Closed`), or the
/// closer's abort (`Closed`). A frame cut short by its deadline is kept in `backlog`
/// and finished by the next send, before anything else.
pub struct StreamSender<W> {
    fd: W,
    mode: WriteMode,
    max_frame: usize,
    peer: String,
    deadline: Option<Instant>,
    /// The unsent rest of a frame whose send timed out half-way.
    backlog: Vec<u8>,
    /// Set by the closer's `abort` where no OS call wakes a blocked writer.
    aborted: Option<Arc<AtomicBool>>,
}

/// Why a write stopped, and how many bytes it had written by then.
pub(crate) struct Stopped {
    pub(crate) error: TransportError,
    pub(crate) written: usize,
}

impl<W: AsFd + Send> StreamSender<W> {
    /// Frames written to `fd`, refusing frames over `max_frame`; `peer` names the other
    /// side in error messages.
    pub(crate) fn new(fd: W, mode: WriteMode, max_frame: usize, peer: String) -> Self {
        StreamSender {
            fd,
            mode,
            max_frame,
            peer,
            deadline: None,
            backlog: Vec::new(),
            aborted: None,
        }
    }

    /// Makes a blocked send check `aborted` every [`ABORT_TICK`] and end with `Closed`
    /// once it is set.
    pub(crate) fn with_abort_flag(mut self, aborted: Arc<AtomicBool>) -> Self {
        self.aborted = Some(aborted);
        self
    }

    fn is_aborted(&self) -> bool {
        // SYNC: Acquire, paired with the Release store in the closer's `abort`.
        self.aborted
            .as_ref()
            .is_some_and(|a| a.load(Ordering::Acquire))
    }

    /// One gathering write: non-blocking, except on a socket while there is no
    /// deadline (a blocked socket send ends when the closer shuts the socket down, and
    /// blocking in the kernel costs fewer system calls than `poll` rounds for a frame
    /// larger than the socket's buffer).
    fn write_now(&self, bufs: &[IoSlice<'_>]) -> nix::Result<usize> {
        match self.mode {
            WriteMode::Socket => sendmsg::<()>(
                self.fd.as_fd().as_raw_fd(),
                bufs,
                &[],
                if self.deadline.is_some() {
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL
                } else {
                    MsgFlags::MSG_NOSIGNAL
                },
                None,
            ),
            WriteMode::NonBlocking => nix::sys::uio::writev(&self.fd, bufs),
        }
    }

    /// Writes all of `bufs`, waiting for room while the peer's buffer is full.
    pub(crate) fn write_all(&self, mut bufs: &mut [IoSlice<'_>]) -> Result<(), Stopped> {
        let mut written = 0;
        let stop = |error, written| Stopped { error, written };
        while !bufs.is_empty() {
            if self.is_aborted() {
                return Err(stop(TransportError::Closed, written));
            }
            match self.write_now(bufs) {
                Ok(0) => {
                    let e = io::ErrorKind::WriteZero.into();
                    return Err(stop(self.io_error(e), written));
                }
                Ok(n) => {
                    written += n;
                    IoSlice::advance_slices(&mut bufs, n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    if let Err(e) = self.wait_writable() {
                        return Err(stop(e, written));
                    }
                }
                Err(e) => return Err(stop(self.io_error(e.into()), written)),
            }
        }
        Ok(())
    }

    /// Waits until the descriptor takes bytes again, the deadline passes (`TimedOut`),
    /// or the closer aborted (`Closed`).
    pub(crate) fn wait_writable(&self) -> Result<(), TransportError> {
        loop {
            let mut wait = match self.deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Err(TransportError::TimedOut),
                },
            };
            if self.aborted.is_some() {
                wait = Some(wait.map_or(ABORT_TICK, |w| w.min(ABORT_TICK)));
            }
            let timeout = match wait {
                None => PollTimeout::NONE,
                // Round up so that a wake-up never comes before the deadline.
                Some(w) => PollTimeout::try_from(
                    i32::try_from(w.as_micros().div_ceil(1000)).unwrap_or(i32::MAX),
                )
                .unwrap_or(PollTimeout::MAX),
            };
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLOUT)];
            match poll(&mut fds, timeout) {
                // Writable, or an error or hang-up that the next write reports.
                Ok(n) if n > 0 => return Ok(()),
                Ok(_) | Err(Errno::EINTR) => {
                    if self.is_aborted() {
                        return Err(TransportError::Closed);
                    }
                }
                Err(e) => {
                    return Err(TransportError::Io {
                        context: format!("wait for room to write to {}", self.peer),
                        source: e.into(),
                    });
                }
            }
        }
    }

    fn io_error(&self, e: io::Error) -> TransportError {
        if self.mode == WriteMode::Socket {
            return socket_error(e, &self.peer, "write to");
        }
        TransportError::from_io(e, || format!("write to {}", self.peer))
    }

    /// Writes what is left of a frame cut short by its deadline; `TimedOut` again
    /// (keeping the rest) if the deadline passes first.
    fn flush_backlog(&mut self) -> Result<(), TransportError> {
        if self.backlog.is_empty() {
            return Ok(());
        }
        let backlog = std::mem::take(&mut self.backlog);
        match self.write_all(&mut [IoSlice::new(&backlog)]) {
            Ok(()) => Ok(()),
            Err(Stopped { error, written }) => {
                self.backlog = backlog;
                self.backlog.drain(..written);
                Err(error)
            }
        }
    }

    /// Sends the frame `head` + `tail` after any backlog: whole when nothing stops it;
    /// not at all when the deadline passes before its first byte; else its rest is
    /// kept for the next send.
    fn send_frame(&mut self, head: &[u8], tail: &[u8]) -> Result<(), TransportError> {
        check_len(head.len() + tail.len(), self.max_frame)?;
        self.flush_backlog()?;
        let prefix = Prefix::new(head.len(), tail.len()).map_err(|e| self.io_error(e))?;
        let mut slices = [
            IoSlice::new(prefix.bytes()),
            IoSlice::new(head),
            IoSlice::new(tail),
        ];
        // No empty iovec for the kernel to walk when there is no tail.
        let used = if tail.is_empty() { 2 } else { 3 };
        match self.write_all(&mut slices[..used]) {
            Ok(()) => Ok(()),
            Err(Stopped { error, written }) => {
                if written > 0 && matches!(error, TransportError::TimedOut) {
                    let mut rest = [prefix.bytes(), head, tail].concat();
                    rest.drain(..written);
                    self.backlog = rest;
                }
                Err(error)
            }
        }
    }
}

impl<W: AsFd + Send> FrameSender for StreamSender<W> {
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    fn send_parts(&mut self, head: &[u8], tail: &[u8]) -> Result<(), TransportError> {
        self.send_frame(head, tail)
    }
}

/// Receives length-prefixed frames from a byte stream into a reused buffer.
pub struct StreamReceiver<R> {
    reader: R,
    frames: FrameReader,
    /// The connection's own frame limit, which `set_max_frame` never exceeds.
    max_frame: usize,
    peer: String,
    closed: Option<Arc<AtomicBool>>,
    /// On a socket: the receive time-out (`SO_RCVTIMEO`) set on it, zero for none. A
    /// read with a deadline then blocks in the kernel bounded by it, one system call,
    /// instead of `poll` then `read`.
    rcvtimeo: Option<Cell<Duration>>,
}

impl<R: AsFd + Send> StreamReceiver<R> {
    /// Frames read from `reader`, refusing frames over `max_frame`.
    pub fn new(reader: R, max_frame: usize, peer: String) -> Self {
        StreamReceiver {
            reader,
            frames: FrameReader::new(max_frame),
            max_frame,
            peer,
            closed: None,
            rcvtimeo: None,
        }
    }

    /// Makes reads with a deadline use the socket's receive time-out (`SO_RCVTIMEO`)
    /// instead of `poll`: `reader` must be a blocking stream socket that only this
    /// receiver reads (the time-out applies to every read of the socket).
    pub(crate) fn with_socket_timeouts(mut self) -> Self {
        self.rcvtimeo = Some(Cell::new(Duration::ZERO));
        self
    }

    /// Makes every read check `closed` when it returns: for mechanisms without
    /// `shutdown` (pipes, FIFOs), whose closer sets the flag and then wakes the read.
    pub fn with_close_flag(mut self, closed: Arc<AtomicBool>) -> Self {
        self.closed = Some(closed);
        self
    }
}

/// Where a stream receiver's reads come from, for one `recv`: waits for data until
/// `deadline`, retries interrupted reads, and reports `Closed` once the close flag is
/// set.
struct Source<'a, R> {
    reader: &'a R,
    closed: Option<&'a AtomicBool>,
    deadline: Option<Instant>,
    peer: &'a str,
    /// The socket's receive time-out, where the reader is a socket.
    rcvtimeo: Option<&'a Cell<Duration>>,
}

/// The receive time-out for a read that must end within `left`: three quarters of it
/// in whole milliseconds, so that the kernel's rounding up to its tick seldom passes
/// the deadline (a time-out that fires first is followed by `poll` for the rest);
/// `None` under 2 ms, where `poll` alone is as cheap.
fn idle_timeout(left: Duration) -> Option<Duration> {
    let ms = (left.as_millis() * 3 / 4).min(u128::from(u32::MAX));
    (ms >= 1 && left >= Duration::from_millis(2)).then(|| Duration::from_millis(ms as u64))
}

impl<R: AsFd> Source<'_, R> {
    /// Reads into `buf`.
    fn read(&self, buf: &mut [u8]) -> Result<usize, TransportError> {
        self.once(|| nix::unistd::read(self.reader, buf).map_err(io::Error::from))
    }

    /// Reads at most `max` bytes onto the end of `tail`, into its spare capacity.
    fn read_tail(&self, tail: &mut Vec<u8>, max: usize) -> Result<usize, TransportError> {
        self.once(|| crate::sys::read_append(self.reader, tail, max))
    }

    fn once(&self, mut read: impl FnMut() -> io::Result<usize>) -> Result<usize, TransportError> {
        // SYNC: Acquire, paired with the Release store in ReadWaker::close.
        let is_closed = || self.closed.is_some_and(|c| c.load(Ordering::Acquire));
        if is_closed() {
            return Err(TransportError::Closed);
        }
        match (self.deadline, self.rcvtimeo) {
            (Some(deadline), Some(set)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match idle_timeout(left) {
                    // The time-out set fits this deadline: kept, no system call. The
                    // server's constant `now + 5 ms` keeps one value for good.
                    Some(_)
                        if !set.get().is_zero() && set.get() <= left && set.get() * 2 >= left => {}
                    Some(t) => self.set_rcvtimeo(set, t)?,
                    None => wait_readable(self.reader, deadline, self.peer)?,
                }
            }
            (Some(deadline), None) => wait_readable(self.reader, deadline, self.peer)?,
            // No deadline: a time-out left from an earlier read would wake us for
            // nothing every few milliseconds.
            (None, Some(set)) if !set.get().is_zero() => self.set_rcvtimeo(set, Duration::ZERO)?,
            (None, _) => {}
        }
        loop {
            let result = read();
            if is_closed() {
                return Err(TransportError::Closed);
            }
            match result {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The receive time-out fired (or a wake-up found nothing): the rest of
                // the deadline with `poll`, then read again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.rcvtimeo.is_some() => {
                    match self.deadline {
                        Some(deadline) => wait_readable(self.reader, deadline, self.peer)?,
                        // Not ours: no time-out is set without a deadline.
                        None => return Err(TransportError::TimedOut),
                    }
                }
                Err(e) if self.rcvtimeo.is_some() => {
                    return Err(socket_error(e, self.peer, "read from"));
                }
                Err(e) => {
                    let peer = self.peer;
                    return Err(TransportError::from_io(e, || format!("read from {peer}")));
                }
            }
        }
    }

    /// Sets the socket's receive time-out (`Duration::ZERO`: none) and notes it in `set`.
    fn set_rcvtimeo(&self, set: &Cell<Duration>, timeout: Duration) -> Result<(), TransportError> {
        let tv = TimeVal::new(
            timeout.as_secs() as nix::libc::time_t,
            nix::libc::suseconds_t::from(timeout.subsec_micros() as i32),
        );
        setsockopt(&self.reader.as_fd(), sockopt::ReceiveTimeout, &tv).map_err(|e| {
            TransportError::Io {
                context: format!("set the receive time-out of the socket to {}", self.peer),
                source: e.into(),
            }
        })?;
        set.set(timeout);
        Ok(())
    }
}

impl<R: AsFd + Send> StreamReceiver<R> {
    fn source(&mut self, deadline: Option<Instant>) -> (Source<'_, R>, &mut FrameReader) {
        let source = Source {
            reader: &self.reader,
            closed: self.closed.as_deref(),
            deadline,
            peer: &self.peer,
            rcvtimeo: self.rcvtimeo.as_ref(),
        };
        (source, &mut self.frames)
    }
}

impl<R: AsFd + Send> FrameReceiver for StreamReceiver<R> {
    fn recv(&mut self, deadline: Option<Instant>) -> Result<Payload<'_>, TransportError> {
        let (source, frames) = self.source(deadline);
        frames.next_split(
            |buf| source.read(buf),
            |tail, max| source.read_tail(tail, max),
        )
    }

    fn set_max_frame(&mut self, max_frame: usize) {
        self.frames.set_max_frame(max_frame.min(self.max_frame));
    }

    fn frame_limit(&self) -> usize {
        self.max_frame
    }

    fn prepare_wait(&mut self) -> Readiness<'_> {
        if self.frames.has_buffered_frame() {
            return Readiness::Ready;
        }
        // A frame's bytes, or the end of the stream, make the descriptor readable; a
        // partly buffered frame waits for its rest there too.
        Readiness::WaitOn(WaitFds::one(self.reader.as_fd()))
    }
}

/// A socket's read or write error (`what` is `read from` or `write to`): a connection
/// the kernel gave up because the network link died is `LinkDown` (a socket's
/// `ETIMEDOUT` comes only from unanswered data or keepalive probes, never from a
/// receive time-out, which is `EAGAIN`); anything else as `TransportError::from_io`.
pub(crate) fn socket_error(e: io::Error, peer: &str, what: &str) -> TransportError {
    let hint = match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ETIMEDOUT) => {
            "no answer to sent data or keepalive probes within the endpoint's `user_timeout`"
        }
        Some(Errno::EHOSTUNREACH | Errno::ENETUNREACH | Errno::EHOSTDOWN | Errno::ENETDOWN) => {
            "no route to the peer any more"
        }
        _ => return TransportError::from_io(e, || format!("{what} {peer}")),
    };
    TransportError::LinkDown {
        context: format!(
            "{what} {peer}: the link is down ({hint}); the connection is over, connect again \
             once the network is back"
        ),
        source: e,
    }
}

/// Waits until `fd` is readable (data, end of stream or error) or `deadline` passes.
///
/// # Errors
///
/// `TimedOut` when the deadline passes first; `Io` if `poll` fails.
///
/// # References
///
/// poll(2)
pub fn wait_readable(fd: impl AsFd, deadline: Instant, peer: &str) -> Result<(), TransportError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Round up so that a wake-up never comes before the deadline. A deadline that
        // has passed still looks once (a zero time-out): what is there is taken.
        let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) if left.is_zero() => return Err(TransportError::TimedOut),
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => return Ok(()),
            Err(e) => {
                return Err(TransportError::Io {
                    context: format!("wait for data from {peer}"),
                    source: e.into(),
                });
            }
        }
    }
}

/// A receiver that keeps `guard` alive as long as it lives: e.g. file names to remove
/// when the connection ends.
pub struct WithGuard<G> {
    inner: Box<dyn FrameReceiver>,
    _guard: G,
}

impl<G: Send> WithGuard<G> {
    /// Wraps `inner`; `guard` drops with it.
    pub fn new(inner: Box<dyn FrameReceiver>, guard: G) -> Self {
        WithGuard {
            inner,
            _guard: guard,
        }
    }
}

impl<G: Send> FrameReceiver for WithGuard<G> {
    fn recv(&mut self, deadline: Option<Instant>) -> Result<Payload<'_>, TransportError> {
        self.inner.recv(deadline)
    }

    fn set_max_frame(&mut self, max_frame: usize) {
        self.inner.set_max_frame(max_frame);
    }

    fn frame_limit(&self) -> usize {
        self.inner.frame_limit()
    }

    fn prepare_wait(&mut self) -> Readiness<'_> {
        self.inner.prepare_wait()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_given_up_on_a_dead_link_is_link_down_and_a_time_out_stays_timed_out() {
        let dead = socket_error(Errno::ETIMEDOUT.into(), "tcp:h:1", "read from");
        assert!(matches!(dead, TransportError::LinkDown { .. }), "{dead:?}");
        assert!(
            dead.to_string()
                .starts_with("read from tcp:h:1: the link is down")
        );
        let unreachable = socket_error(Errno::EHOSTUNREACH.into(), "tcp:h:1", "write to");
        assert!(matches!(unreachable, TransportError::LinkDown { .. }));
        let timeout = socket_error(Errno::EAGAIN.into(), "tcp:h:1", "read from");
        assert!(matches!(timeout, TransportError::TimedOut), "{timeout:?}");
        let reset = socket_error(Errno::ECONNRESET.into(), "tcp:h:1", "read from");
        assert!(matches!(reset, TransportError::Closed), "{reset:?}");
    }

    #[test]
    fn idle_timeout_is_three_quarters_in_whole_ms_and_none_under_two_ms() {
        let ms = Duration::from_millis;
        assert_eq!(idle_timeout(Duration::ZERO), None);
        assert_eq!(idle_timeout(Duration::from_micros(1999)), None);
        assert_eq!(idle_timeout(ms(2)), Some(ms(1)));
        assert_eq!(idle_timeout(ms(5)), Some(ms(3)));
        assert_eq!(idle_timeout(ms(1000)), Some(ms(750)));
        // Never longer than what is left.
        for us in (2000..20_000).step_by(37) {
            let left = Duration::from_micros(us);
            assert!(idle_timeout(left).unwrap() <= left, "{left:?}");
        }
    }
}
