//! The transport contract every mechanism implements.
//!
//! A transport is a blocking, message-framed, bidirectional channel to exactly one
//! peer. [`Transport::split`] turns it into a [`FrameSender`], a [`FrameReceiver`]
//! and a [`Closer`], so one thread can send while another receives, and any thread
//! can shut the connection.
//!
//! The byte path has one method each way: [`FrameSender::send_parts`] sends a frame
//! given as a head and a tail (the bytes of a byte string that ends it, sent from
//! where they are: never copied into an encoding buffer), and [`FrameReceiver::recv`]
//! returns a [`Payload`], the frame's head borrowed from the receiver's buffer and,
//! where the mechanism received a large tail apart, that tail in a vector of its own.
//!
//! Contract (checked for every transport, `mem` included, by the conformance suite in
//! `transports/tests/conformance.rs`, and end to end by the matrix suite in `tests/`):
//! - frames of `0..=max_frame` bytes arrive whole, in order, unmodified: the bytes
//!   `recv` returns (head, then tail if any) are those `send_parts` was given (head,
//!   then tail), however the transport cut them; a frame taken encoded in place
//!   ([`FrameSender::send_encoded`]) arrives as the bytes its encoder wrote, and one
//!   whose encoder wrote another length the second time is not sent at all (`Corrupt`);
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

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::buf::{FrameBuf, Payload};
use crate::endpoint::Endpoint;
use crate::error::{CodecError, TransportError};

pub(crate) mod closed;
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
            max: max as u64,
        });
    }
    Ok(())
}

/// The sending half of a connection.
///
/// One method to implement, [`FrameSender::send_parts`]: a frame comes as two parts,
/// so that the bytes of a large byte string are never copied into an encoding buffer
/// on the way. Each mechanism gathers them its own way: `writev` on byte streams (which
/// may send a large tail split, see [`FrameReceiver::recv`]), chunks built from both
/// parts on mq, one copy of each part straight into a shared-memory ring. A transport
/// with a buffer of its own may also take large frames encoded in place
/// ([`FrameSender::send_encoded`]).
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

    /// Sends one frame made of `head` followed by `tail`, whole, in one system call
    /// where the mechanism allows, without joining the parts first where it can gather
    /// them. The peer receives the same bytes as if they had been sent joined; a
    /// byte-stream transport may deliver a large `tail` apart (see
    /// [`FrameReceiver::recv`]).
    ///
    /// # Errors
    ///
    /// `FrameTooLarge` for a joined length over the limit (nothing sent, still
    /// usable), `TimedOut` at the deadline ([`FrameSender::set_deadline`]), `Closed`
    /// if the peer is gone or the connection aborted, `Io` otherwise.
    fn send_parts(&mut self, head: &[u8], tail: &[u8]) -> Result<(), TransportError>;

    /// Sends one frame: [`FrameSender::send_parts`] with an empty tail.
    ///
    /// # Errors
    ///
    /// As [`FrameSender::send_parts`].
    fn send(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        self.send_parts(frame, &[])
    }

    /// Sends the frame `encode` writes by encoding it straight into the transport's own
    /// buffer, where it has one that the frame fits (a shared-memory ring), instead of
    /// into the caller's buffer and then across by a copy. `encode` runs twice: once
    /// to count the frame's bytes, once to write them; it must write the same bytes
    /// both times.
    ///
    /// Returns `None` where the transport takes no frame in place (the default; `encode`
    /// is not called) or not this one (`encode` may have counted it); the caller then
    /// encodes into a buffer of its own and sends that. Only
    /// [`send_frame`](crate::codec::send_frame) calls it, for frames over
    /// [`SMALL_FRAME`](crate::codec::SMALL_FRAME) that do not end in a large byte string
    /// (those go by [`FrameSender::send_parts`]): there the copy costs more than
    /// counting, e.g. for a long `String` field.
    ///
    /// # Errors
    ///
    /// `Some(Ok(Err(_)))` if `encode` fails counting (nothing sent); `Some(Err(_))` as
    /// [`FrameSender::send_parts`], and `Corrupt` if the second pass fails or writes
    /// another length.
    fn send_encoded(
        &mut self,
        encode: &mut dyn FnMut(&mut FrameBuf<'_>) -> Result<(), CodecError>,
    ) -> Option<Result<Result<(), CodecError>, TransportError>> {
        let _ = encode;
        None
    }
}

/// The receiving half of a connection.
pub trait FrameReceiver: Send {
    /// Waits for the next frame until `deadline` (forever if `None`) and returns it as a
    /// [`Payload`]: its head borrowed from the receiver (valid until the next call) and,
    /// when the sender sent a large tail apart ([`FrameSender::send_parts`] on a byte
    /// stream or mq), that tail in a vector of its own, received there directly, so
    /// that a decoder keeps it without a copy ([`Payload::take_bytes`]). Other frames
    /// come whole, in `head`. [`Payload::into_contiguous`] joins the parts for callers
    /// that want one slice (a copy when there is a tail).
    ///
    /// [`Payload::take_bytes`]: crate::codec::Payload::take_bytes
    ///
    /// # Errors
    ///
    /// `TimedOut` when the deadline passes, `Closed` when the peer is gone or the
    /// connection was closed, `FrameTooLarge`/`Corrupt` for bad input, `Io` otherwise.
    fn recv(&mut self, deadline: Option<Instant>) -> Result<Payload<'_>, TransportError>;

    /// Refuses, from the next frame on, frames over `max_frame` bytes (at most the
    /// transport's own limit): the server takes only handshake-sized frames from a
    /// peer that has not said who it is yet, then restores the limit.
    fn set_max_frame(&mut self, max_frame: usize);

    /// The transport's own limit: the largest frame it takes (its endpoint's
    /// `max_frame`), which [`FrameReceiver::set_max_frame`] never raises. The handshake
    /// tells the peer, which then sends nothing larger.
    fn frame_limit(&self) -> usize;

    /// Says how a server can wait for this connection's next frame without a thread
    /// of its own: called after a `recv` with a deadline returned `TimedOut`, before
    /// the server parks the connection in its poller (one thread waits on every idle
    /// connection there, with `epoll`).
    ///
    /// - [`Readiness::Ready`]: something may be there already (a whole frame buffered,
    ///   the peer's end seen): the server calls `recv` again at once.
    /// - [`Readiness::WaitOn`]: nothing is there; each descriptor turns readable (or
    ///   reports `POLLHUP`/`POLLERR`) when `recv` may make progress: bytes of a frame
    ///   arrive, or the peer goes, `kill -9` included. The server registers them
    ///   (level-triggered, one shot) while it holds the borrow; the registration goes
    ///   when the receiver closes them. When one fires, it calls `recv` with a
    ///   deadline. A transport may announce the wait to
    ///   its peer (shared memory asks its client to ring the socket instead of the
    ///   futex); the next `recv` ends the announcement. A wake-up may be spurious
    ///   (`recv` then times out again and the server asks again), but a descriptor must
    ///   not stay readable for a cause already seen (a doorbell's bytes are drained
    ///   here), or the server would spin.
    /// - [`Readiness::Blocking`] (the default): the transport cannot be waited for so;
    ///   the server keeps a thread blocked in `recv` for this connection.
    ///
    /// The server does not rely on the descriptors to see its own [`Closer::close`].
    fn prepare_wait(&mut self) -> Readiness<'_> {
        Readiness::Blocking
    }
}

/// How a server waits for a connection that has nothing to read (see
/// [`FrameReceiver::prepare_wait`]).
#[derive(Debug, Clone, Copy)]
pub enum Readiness<'a> {
    /// Call `recv` now: something may be there.
    Ready,
    /// Wait until one of these descriptors turns readable.
    WaitOn(WaitFds<'a>),
    /// Only a thread blocked in `recv` can wait for this connection.
    Blocking,
}

/// One or two descriptors a server's poller waits on for a connection: e.g. a POSIX
/// message queue and a pidfd of its peer process.
#[derive(Debug, Clone, Copy)]
pub struct WaitFds<'a> {
    first: BorrowedFd<'a>,
    second: Option<BorrowedFd<'a>>,
}

impl<'a> WaitFds<'a> {
    /// One descriptor.
    pub fn one(fd: BorrowedFd<'a>) -> Self {
        WaitFds {
            first: fd,
            second: None,
        }
    }

    /// Two descriptors: readiness of either wakes the connection.
    pub fn two(first: BorrowedFd<'a>, second: BorrowedFd<'a>) -> Self {
        WaitFds {
            first,
            second: Some(second),
        }
    }

    /// The descriptors.
    pub fn iter(&self) -> impl Iterator<Item = BorrowedFd<'a>> + use<'a> {
        std::iter::once(self.first).chain(self.second)
    }
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

/// What the OS (or, over TLS, the peer's verified certificate) vouches for about the
/// other end of a connection.
///
/// | transport | pid | uid, gid | subject |
/// |---|---|---|---|
/// | `unix:`, `shm:` | `SO_PEERCRED` at connect | `SO_PEERCRED` | — |
/// | `pipe` (in the child) | the parent | — | — |
/// | `tls:` with a client certificate | — | — | its subject |
/// | `fifo:`, `mq:`, `tcp:` | — | — | — |
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The peer's process id, when the transport knows it.
    pub pid: Option<u32>,
    /// The peer's user id, when the transport knows it.
    pub uid: Option<u32>,
    /// The peer's group id, when the transport knows it.
    pub gid: Option<u32>,
    /// The subject of the certificate the peer showed and the server verified against
    /// its `ca` (mutual TLS), as `CN=client-7,O=Example`; `None` without one.
    pub subject: Option<Arc<str>>,
}

/// A connected transport, before it is split into its parts.
pub trait Transport: Send {
    /// A description of the peer for messages, e.g. `unix:/tmp/calc.sock`.
    fn peer(&self) -> String;

    /// What the OS says about the peer process (see [`PeerCredentials`]).
    fn credentials(&self) -> PeerCredentials {
        PeerCredentials::default()
    }

    /// How long a client's caller whose call overlaps others spins for its reply
    /// before it sleeps: it then polls the receiver for everyone between its looks,
    /// calling [`FrameReceiver::recv`] with a deadline that has passed, which must look
    /// for a frame and return `TimedOut` at once if none is there. Zero (the default)
    /// where a reply takes longer than a wake-up anyway; shared memory, whose replies
    /// come in a microsecond or two where waking a sleeping thread costs tens, says its
    /// spin budget.
    fn wait_spin(&self) -> Duration {
        Duration::ZERO
    }

    /// Finishes the transport's own handshake with the peer, by `deadline`: a server
    /// calls it on an accepted connection (on a pool thread, once
    /// [`Transport::setup_wait`] saw the client's first bytes) before it reads
    /// [`Transport::credentials`] and splits. TLS authenticates the peer here; the
    /// default has nothing to do. [`Transport::split`] finishes it too if it was not
    /// called.
    ///
    /// # Errors
    ///
    /// The handshake's failure (the connection is then dropped): `TimedOut` at the
    /// deadline, `Closed`, or `Io` saying what the peer did wrong.
    fn establish(&mut self, deadline: Instant) -> Result<(), TransportError> {
        let _ = deadline;
        Ok(())
    }

    /// Splits the connection into its sending, receiving and closing parts.
    ///
    /// # Errors
    ///
    /// `Io` if the OS handle could not be duplicated.
    fn split(self: Box<Self>) -> Result<Parts, TransportError>;

    /// Before [`Transport::split`]: descriptors that turn readable when a `split` that
    /// waits for the peer (shared memory reads the client's request) can go on without
    /// waiting, so that a server parks a silent client in its poller instead of a
    /// thread. `None` (the default): `split` does not wait for the peer.
    fn setup_wait(&self) -> Option<WaitFds<'_>> {
        None
    }
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
