//! The transport contract every mechanism implements.
//!
//! A transport is a blocking, message-framed, bidirectional channel to exactly one
//! peer. [`Transport::split`] turns it into a [`FrameSender`], a [`FrameReceiver`]
//! and a [`Closer`], so one thread can send while another receives, and any thread
//! can shut the connection.
//!
//! Contract (checked for every transport, `mem` included, by the conformance suite in
//! `transports/tests/conformance.rs`, and end to end by the matrix suite in `tests/`):
//! - frames of `0..=max_frame` bytes arrive whole, in order, unmodified;
//! - sending a larger frame fails with `FrameTooLarge` and leaves the transport usable;
//!   receiving one fails with `FrameTooLarge` before anything is allocated for it;
//! - after the peer is gone, `recv` returns `Closed` (once frames already sent are
//!   drained), and `send` returns `Closed`; never a hang;
//! - `recv` with a deadline returns `TimedOut` when it passes, and stays usable: a
//!   frame that was half received is continued by the next `recv`;
//! - a send with a deadline ([`FrameSender::set_deadline`]) returns `TimedOut` when it
//!   passes, and stays usable: a frame not started is not sent; a frame half sent is
//!   kept and finished, before anything else, by the next send;
//! - memory is committed only for bytes that arrived: a claimed length alone never
//!   makes the receiver allocate it; [`FrameReceiver::set_max_frame`] lowers the limit
//!   (the server's handshake takes small frames only);
//! - [`Closer::close`] makes a blocked or later `recv` return `Closed`;
//!   [`Closer::abort`] also makes a blocked or later send return `Closed`;
//! - dropping the parts removes every named OS object the transport created.

use std::time::Instant;

use crate::buf::{FrameBuf, Payload};
use crate::endpoint::Endpoint;
use crate::error::{CodecError, TransportError};

pub mod mem;

pub use crate::limits::DEFAULT_MAX_FRAME;

/// Checks a frame length against a limit.
///
/// # Errors
///
/// [`TransportError::FrameTooLarge`] when `len > max`.
pub fn check_len(len: usize, max: usize) -> Result<(), TransportError> {
    if len > max {
        return Err(TransportError::FrameTooLarge {
            len: len as u64,
            max,
        });
    }
    Ok(())
}

/// Writes a frame's bytes into a [`FrameBuf`] (see [`FrameSender::send_in_place`]).
pub type WriteFrame<'w> = dyn FnMut(&mut FrameBuf<'_>) -> Result<(), CodecError> + 'w;

/// The sending half of a connection.
pub trait FrameSender: Send {
    /// Makes later sends give up with `TimedOut` at `deadline` (`None`: wait as long
    /// as the peer lives). A send that times out having written part of its frame keeps
    /// the rest, and the next send writes it first, so the peer never sees a torn frame.
    ///
    /// The default ignores the deadline: for transports whose sends never wait.
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        let _ = deadline;
    }

    /// Whether a frame cut short by its deadline waits to be finished by the next send
    /// (the peer will then receive it whole).
    fn has_backlog(&self) -> bool {
        false
    }

    /// Sends one frame, whole, in one system call where the mechanism allows.
    ///
    /// # Errors
    ///
    /// `FrameTooLarge` (nothing sent, still usable), `Closed` if the peer is gone,
    /// `Io` otherwise.
    fn send(&mut self, frame: &[u8]) -> Result<(), TransportError>;

    /// Whether [`FrameSender::send_in_place`] encodes straight into the transport's own
    /// buffer (a shared-memory ring), so that an encoder should count the frame's size
    /// first and skip its own buffer.
    fn writes_in_place(&self) -> bool {
        false
    }

    /// Sends a frame of exactly `len` bytes that `write` encodes straight into the
    /// transport's buffer where it has one; otherwise into a temporary vector that is
    /// then sent.
    ///
    /// # Errors
    ///
    /// As [`FrameSender::send`]; `Corrupt` if `write` fails or writes other than `len`
    /// bytes (an encoder whose output changed between counting and writing).
    fn send_in_place(
        &mut self,
        len: usize,
        write: &mut WriteFrame<'_>,
    ) -> Result<(), TransportError> {
        let mut frame = Vec::with_capacity(len);
        write(&mut FrameBuf::vec(&mut frame))
            .map_err(|_| TransportError::Corrupt("the encoder failed on its second pass"))?;
        self.send(&frame)
    }

    /// Sends one frame made of `head` followed by `tail`, without joining them first
    /// where the mechanism can gather (`writev`). A byte-stream transport may send a
    /// large `tail` so that the receiver takes it into a vector of its own
    /// ([`FrameReceiver::recv_split`]); the frame's bytes are the same either way.
    ///
    /// The default encodes both in place ([`FrameSender::send_in_place`]).
    ///
    /// # Errors
    ///
    /// As [`FrameSender::send`], for the joined length.
    fn send_parts(&mut self, head: &[u8], tail: &[u8]) -> Result<(), TransportError> {
        let mut both = |out: &mut FrameBuf<'_>| {
            out.put(head)?;
            out.put(tail)
        };
        self.send_in_place(head.len() + tail.len(), &mut both)
    }
}

/// The receiving half of a connection.
pub trait FrameReceiver: Send {
    /// Waits for the next frame until `deadline` (forever if `None`) and returns it.
    /// The slice is valid until the next call.
    ///
    /// # Errors
    ///
    /// `TimedOut` when the deadline passes, `Closed` when the peer is gone or the
    /// connection was closed, `FrameTooLarge`/`Corrupt` for bad input, `Io` otherwise.
    fn recv(&mut self, deadline: Option<Instant>) -> Result<&[u8], TransportError>;

    /// Like [`FrameReceiver::recv`], but a frame the sender split
    /// ([`FrameSender::send_parts`]) may come back as its head, borrowed, and its tail
    /// in a vector of its own, received there directly, so that a decoder can keep the
    /// tail without copying it. The default returns every frame whole.
    ///
    /// # Errors
    ///
    /// As [`FrameReceiver::recv`].
    fn recv_split(&mut self, deadline: Option<Instant>) -> Result<Payload<'_>, TransportError> {
        self.recv(deadline).map(Payload::whole)
    }

    /// Whether another whole frame is already buffered, so `recv` will not block.
    fn has_buffered_frame(&self) -> bool {
        false
    }

    /// Refuses, from the next frame on, frames over `max_frame` bytes (at most the
    /// transport's own limit): the server takes only handshake-sized frames from a
    /// peer that has not said who it is yet, then restores the limit.
    fn set_max_frame(&mut self, max_frame: usize);
}

/// Shuts a connection (or a listener) from any thread.
pub trait Closer: Send + Sync {
    /// Makes a blocked or later `recv` (or `accept`) return `Closed`. Idempotent.
    /// Sends still go through: replies of calls in flight can still be written.
    fn close(&self);

    /// Like [`Closer::close`], and also makes a send blocked on a peer that does not
    /// read (or a later one) return `Closed`. Idempotent.
    ///
    /// The default only closes: for transports whose blocked sends already end on
    /// `close`.
    fn abort(&self) {
        self.close();
    }
}

/// The three parts of a connection.
pub struct Parts {
    /// Sends frames to the peer.
    pub sender: Box<dyn FrameSender>,
    /// Receives frames from the peer.
    pub receiver: Box<dyn FrameReceiver>,
    /// Shuts the receiving side from another thread.
    pub closer: Box<dyn Closer>,
}

/// What the OS vouches for about the process at the other end of a connection.
///
/// | transport | pid | uid, gid |
/// |---|---|---|
/// | `unix:`, `shm:` | `SO_PEERCRED` at connect | `SO_PEERCRED` |
/// | `pipe` (in the child) | the parent | — |
/// | `fifo:`, `mq:`, `tcp:` | — | — |
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The peer's process id, when the transport knows it.
    pub pid: Option<u32>,
    /// The peer's user id, when the transport knows it.
    pub uid: Option<u32>,
    /// The peer's group id, when the transport knows it.
    pub gid: Option<u32>,
}

/// A connected transport, before it is split into its parts.
pub trait Transport: Send {
    /// A description of the peer for messages, e.g. `unix:/tmp/calc.sock`.
    fn peer(&self) -> String;

    /// What the OS says about the peer process (see [`PeerCredentials`]).
    fn credentials(&self) -> PeerCredentials {
        PeerCredentials::default()
    }

    /// Splits the connection into its sending, receiving and closing parts.
    ///
    /// # Errors
    ///
    /// `Io` if the OS handle could not be duplicated.
    fn split(self: Box<Self>) -> Result<Parts, TransportError>;
}

/// Accepts connections for a server.
pub trait Listener: Send {
    /// Blocks until a client connects.
    ///
    /// # Errors
    ///
    /// `Closed` after the listener's [`Closer`] was used; `Io` for OS errors (which
    /// may be passing, e.g. too many open files).
    fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError>;

    /// A handle that makes a blocked `accept` return `Closed`.
    ///
    /// # Errors
    ///
    /// `Io` if the OS refused the wake-up object.
    fn closer(&self) -> Result<Box<dyn Closer>, TransportError>;

    /// The endpoint as bound (with the real port for `tcp:…:0`).
    fn local_endpoint(&self) -> Endpoint;
}
