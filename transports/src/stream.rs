//! The one framing implementation for byte-stream transports (UNIX socket, TCP, and
//! later pipes and FIFOs): [`StreamSender`] and [`StreamReceiver`] over any file
//! descriptor that reads and writes bytes.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rpc_core::codec::Payload;
use rpc_core::framing::{FrameReader, check_len, write_frame, write_frame_parts};
use rpc_core::{FrameReceiver, FrameSender, TransportError};

/// Sends length-prefixed frames on a byte stream: one `writev` per frame.
pub struct StreamSender<W> {
    writer: W,
    max_frame: usize,
    peer: String,
}

impl<W: Write + Send> StreamSender<W> {
    /// Frames written to `writer`, refusing frames over `max_frame`; `peer` names the
    /// other side in error messages.
    pub fn new(writer: W, max_frame: usize, peer: String) -> Self {
        StreamSender {
            writer,
            max_frame,
            peer,
        }
    }
}

impl<W: Write + Send> FrameSender for StreamSender<W> {
    fn send(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        check_len(frame.len(), self.max_frame)?;
        write_frame(&mut self.writer, frame)
            .map_err(|e| TransportError::from_io(e, || format!("write to {}", self.peer)))
    }

    fn send_parts(&mut self, head: &[u8], tail: &[u8]) -> Result<(), TransportError> {
        check_len(head.len() + tail.len(), self.max_frame)?;
        write_frame_parts(&mut self.writer, head, tail)
            .map_err(|e| TransportError::from_io(e, || format!("write to {}", self.peer)))
    }
}

/// Receives length-prefixed frames from a byte stream into a reused buffer.
pub struct StreamReceiver<R> {
    reader: R,
    frames: FrameReader,
    peer: String,
    closed: Option<Arc<AtomicBool>>,
}

impl<R: Read + AsFd + Send> StreamReceiver<R> {
    /// Frames read from `reader`, refusing frames over `max_frame`.
    pub fn new(reader: R, max_frame: usize, peer: String) -> Self {
        StreamReceiver {
            reader,
            frames: FrameReader::new(max_frame),
            peer,
            closed: None,
        }
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
        if let Some(deadline) = self.deadline {
            wait_readable(self.reader, deadline, self.peer)?;
        }
        loop {
            let result = read();
            if is_closed() {
                return Err(TransportError::Closed);
            }
            match result {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let peer = self.peer;
                    return Err(TransportError::from_io(e, || format!("read from {peer}")));
                }
            }
        }
    }
}

impl<R: Read + AsFd + Send> StreamReceiver<R> {
    fn source(&mut self, deadline: Option<Instant>) -> (Source<'_, R>, &mut FrameReader) {
        let source = Source {
            reader: &self.reader,
            closed: self.closed.as_deref(),
            deadline,
            peer: &self.peer,
        };
        (source, &mut self.frames)
    }
}

impl<R: Read + AsFd + Send> FrameReceiver for StreamReceiver<R> {
    fn recv(&mut self, deadline: Option<Instant>) -> Result<&[u8], TransportError> {
        let (source, frames) = self.source(deadline);
        frames.next_frame(|buf| source.read(buf))
    }

    fn recv_split(&mut self, deadline: Option<Instant>) -> Result<Payload<'_>, TransportError> {
        let (source, frames) = self.source(deadline);
        frames.next_split(
            |buf| source.read(buf),
            |tail, max| source.read_tail(tail, max),
        )
    }

    fn has_buffered_frame(&self) -> bool {
        self.frames.has_buffered_frame()
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
        if left.is_zero() {
            return Err(TransportError::TimedOut);
        }
        // Round up so that a wake-up never comes before the deadline.
        let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
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
    fn recv(&mut self, deadline: Option<Instant>) -> Result<&[u8], TransportError> {
        self.inner.recv(deadline)
    }

    fn has_buffered_frame(&self) -> bool {
        self.inner.has_buffered_frame()
    }
}
