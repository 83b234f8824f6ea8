//! Frames over a TLS session: the handshake, and the sending and receiving halves
//! that share one rustls connection.
//!
//! The two halves lock the rustls state only to encrypt or decrypt, never across a
//! system call that waits: the sender encrypts a whole frame into its own buffer under
//! the lock and writes the ciphertext without it; the receiver reads ciphertext from
//! the socket without it and decrypts under it. So a peer that does not read never
//! keeps this side from reading (the two sides of a connection may both be sending
//! large frames at once). Only the sender writes to the socket, so records go out in
//! the order they were sealed; what the receiver makes rustls queue (a key update's
//! answer) leaves with the next frame.

use std::io::{self, BufRead, IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rpc_core::codec::Payload;
use rpc_core::framing::{FrameReader, Prefix, check_len};
use rpc_core::{FrameReceiver, FrameSender, Readiness, TransportError, WaitFds};
use rustls::Connection;

use super::errors::{handshake_error, session_error};
use crate::stream::{Stopped, StreamSender, WriteMode, socket_error, wait_readable};

/// The rustls state of one connection, shared by its two halves.
pub(super) type Session = Arc<Mutex<Connection>>;

pub(super) fn lock(session: &Session) -> MutexGuard<'_, Connection> {
    session.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ciphertext read from the socket per system call, at most.
const READ_CHUNK: usize = 64 * 1024;

/// A TLS record's first two bytes: a handshake record, protocol version 3.x.
const TLS_HANDSHAKE: [u8; 2] = [0x16, 0x03];

/// Runs the handshake on `sock` until it is done, `deadline` passes (`TimedOut`) or it
/// fails (`Io`, saying why in words a user acts on). A server first checks that the
/// client speaks TLS at all, and tells a plain `tcp:` client, in an ipc-rpc refusal
/// it can read, where it connected.
pub(super) fn handshake(
    conn: &mut Connection,
    sock: &TcpStream,
    deadline: Instant,
    peer: &str,
) -> Result<(), TransportError> {
    let is_server = matches!(conn, Connection::Server(_));
    let mut checked = !is_server;
    loop {
        while conn.wants_write() {
            conn.write_tls(&mut &*sock)
                .map_err(|e| socket_error(e, peer, "TLS handshake: write to"))?;
        }
        if !conn.is_handshaking() {
            return Ok(());
        }
        wait_readable(sock, deadline, peer)?;
        if !checked {
            refuse_plain_client(sock, peer)?;
            checked = true;
        }
        match conn.read_tls(&mut &*sock) {
            Ok(0) => return Err(handshake_error(peer, is_server, None)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(handshake_error(peer, is_server, None));
            }
            Err(e) => return Err(socket_error(e, peer, "TLS handshake: read from")),
        }
        if let Err(e) = conn.process_new_packets() {
            // The alert that tells the peer why, if it still listens.
            while conn.wants_write() {
                if conn.write_tls(&mut &*sock).is_err() {
                    break;
                }
            }
            return Err(handshake_error(peer, is_server, Some(e)));
        }
    }
}

/// On a server: a client whose first bytes are not a TLS handshake record (a plain
/// `tcp:` client's hello) gets an ipc-rpc refusal saying this endpoint speaks TLS, and
/// the connection ends.
fn refuse_plain_client(sock: &TcpStream, peer: &str) -> Result<(), TransportError> {
    let mut first = [0u8; 2];
    let n = loop {
        match sock.peek(&mut first) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => break other.map_err(|e| socket_error(e, peer, "read from"))?,
        }
    };
    if n == 0 || first[..n] == TLS_HANDSHAKE[..n] {
        return Ok(());
    }
    let refusal = rpc_core::wire::encode_refusal(
        "this endpoint speaks TLS: connect with `tls:host:port?ca=…` (the authority that \
         signed the server's certificate), not `tcp:`",
    );
    // Best effort: the client may be gone already.
    let _ = rpc_core::framing::write_frame(&mut &*sock, &refusal);
    Err(TransportError::Io {
        context: format!("{peer}: a client spoke plain ipc-rpc to this TLS endpoint; refused"),
        source: io::Error::new(io::ErrorKind::InvalidData, "not a TLS handshake"),
    })
}

/// Sends frames: encrypts each into `out` under the session's lock, then writes it.
pub(super) struct TlsSender {
    session: Session,
    /// Writes ciphertext to the socket, with the deadline and the closer's abort.
    raw: StreamSender<Arc<TcpStream>>,
    max_frame: usize,
    deadline: Option<Instant>,
    peer: String,
    /// Ciphertext sealed and not yet written from `sent` on: a frame cut short by its
    /// deadline, finished by the next send (it cannot be unsealed).
    out: Vec<u8>,
    sent: usize,
}

impl TlsSender {
    pub(super) fn new(
        session: Session,
        sock: Arc<TcpStream>,
        max_frame: usize,
        peer: String,
    ) -> Self {
        TlsSender {
            session,
            raw: StreamSender::new(sock, WriteMode::Socket, max_frame, peer.clone()),
            max_frame,
            deadline: None,
            peer,
            out: Vec::new(),
            sent: 0,
        }
    }

    /// Writes the sealed bytes not yet written; `TimedOut` (keeping the rest) at the
    /// deadline.
    fn flush(&mut self) -> Result<(), TransportError> {
        if self.sent == self.out.len() {
            return Ok(());
        }
        let result = self
            .raw
            .write_all(&mut [IoSlice::new(&self.out[self.sent..])]);
        match result {
            Ok(()) => {
                self.out.clear();
                self.sent = 0;
                Ok(())
            }
            Err(Stopped { error, written }) => {
                self.sent += written;
                Err(error)
            }
        }
    }

    /// Seals the frame `head` + `tail` (and anything rustls queued) into `out`.
    fn seal(&mut self, head: &[u8], tail: &[u8]) -> Result<(), TransportError> {
        let prefix = Prefix::new(head.len(), tail.len()).map_err(|e| TransportError::Io {
            context: format!("frame for {}", self.peer),
            source: e,
        })?;
        let mut conn = lock(&self.session);
        let sealed = (|| {
            let mut plain = conn.writer();
            plain.write_all(prefix.bytes())?;
            plain.write_all(head)?;
            plain.write_all(tail)?;
            while conn.wants_write() {
                conn.write_tls(&mut self.out)?;
            }
            Ok(())
        })();
        sealed.map_err(|e: io::Error| TransportError::Io {
            context: format!("encrypt a frame for {}", self.peer),
            source: e,
        })
    }
}

impl FrameSender for TlsSender {
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
        self.raw.set_deadline(deadline);
    }

    fn has_backlog(&self) -> bool {
        self.sent < self.out.len()
    }

    fn send_parts(&mut self, head: &[u8], tail: &[u8]) -> Result<(), TransportError> {
        check_len(head.len() + tail.len(), self.max_frame)?;
        self.flush()?;
        // A sealed frame must go out: with a deadline, seal only once the socket takes
        // bytes, so that a frame not started is not sent at all.
        if self.deadline.is_some() {
            self.raw.wait_writable()?;
        }
        self.seal(head, tail)?;
        self.flush()
    }
}

/// Receives frames: reads ciphertext without the session's lock, decrypts under it.
pub(super) struct TlsReceiver {
    session: Session,
    sock: Arc<TcpStream>,
    frames: FrameReader,
    max_frame: usize,
    peer: String,
    /// Ciphertext read from the socket and not yet given to rustls: `raw[fed..end]`.
    /// Once made, `raw` keeps its length ([`READ_CHUNK`]), so a read writes into it
    /// without zeroing it first.
    raw: Vec<u8>,
    fed: usize,
    end: usize,
    /// The socket reached its end (or was shut down by the closer).
    eof: bool,
}

impl TlsReceiver {
    pub(super) fn new(
        session: Session,
        sock: Arc<TcpStream>,
        max_frame: usize,
        peer: String,
    ) -> Self {
        TlsReceiver {
            session,
            sock,
            frames: FrameReader::new(max_frame),
            max_frame,
            peer,
            raw: Vec::new(),
            fed: 0,
            end: 0,
            eof: false,
        }
    }
}

/// What a receiver's reads need, borrowed apart from its frame reader.
struct Pull<'a> {
    session: &'a Session,
    sock: &'a TcpStream,
    peer: &'a str,
    raw: &'a mut Vec<u8>,
    fed: &'a mut usize,
    end: &'a mut usize,
    eof: &'a mut bool,
    deadline: Option<Instant>,
}

impl Pull<'_> {
    /// Runs `take` on the decrypted bytes until it takes some (or the stream ends:
    /// 0), decrypting buffered and then new ciphertext as needed.
    fn plaintext(
        &mut self,
        mut take: impl FnMut(&mut dyn BufRead) -> io::Result<usize>,
    ) -> Result<usize, TransportError> {
        loop {
            {
                let mut conn = lock(self.session);
                match take(&mut conn.reader()) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The peer closed without `close_notify`: the end of the stream
                    // all the same (the framing catches a torn frame).
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => {
                        return Err(TransportError::Io {
                            context: format!("read decrypted bytes from {}", self.peer),
                            source: e,
                        });
                    }
                }
                if *self.fed < *self.end {
                    let n = conn
                        .read_tls(&mut &self.raw[*self.fed..*self.end])
                        .map_err(|e| TransportError::Io {
                            context: format!("buffer TLS records from {}", self.peer),
                            source: e,
                        })?;
                    *self.fed += n;
                    conn.process_new_packets()
                        .map_err(|e| session_error(self.peer, e))?;
                    continue;
                }
                if *self.eof {
                    // Tells rustls the stream ended: the next `take` sees the end.
                    let _ = conn.read_tls(&mut io::empty());
                    let _ = conn.process_new_packets();
                    return match take(&mut conn.reader()) {
                        Ok(n) => Ok(n),
                        Err(_) => Ok(0),
                    };
                }
            }
            self.read_socket()?;
        }
    }

    /// Reads the next ciphertext from the socket, waiting until the deadline.
    fn read_socket(&mut self) -> Result<(), TransportError> {
        if let Some(deadline) = self.deadline {
            wait_readable(self.sock, deadline, self.peer)?;
        }
        *self.fed = 0;
        *self.end = 0;
        if self.raw.len() < READ_CHUNK {
            self.raw.resize(READ_CHUNK, 0);
        }
        let got = loop {
            match (&*self.sock).read(&mut self.raw[..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        match got {
            Ok(n) => {
                *self.end = n;
                *self.eof = n == 0;
                Ok(())
            }
            Err(e) => Err(socket_error(e, self.peer, "read from")),
        }
    }
}

impl TlsReceiver {
    fn pull(&mut self, deadline: Option<Instant>) -> (Pull<'_>, &mut FrameReader) {
        let pull = Pull {
            session: &self.session,
            sock: &self.sock,
            peer: &self.peer,
            raw: &mut self.raw,
            fed: &mut self.fed,
            end: &mut self.end,
            eof: &mut self.eof,
            deadline,
        };
        (pull, &mut self.frames)
    }
}

impl FrameReceiver for TlsReceiver {
    fn recv(&mut self, deadline: Option<Instant>) -> Result<Payload<'_>, TransportError> {
        let (pull, frames) = self.pull(deadline);
        let pull = std::cell::RefCell::new(pull);
        frames.next_split(
            |buf| pull.borrow_mut().plaintext(|r| r.read(buf)),
            |tail, max| {
                pull.borrow_mut().plaintext(|r| {
                    let chunk = r.fill_buf()?;
                    if chunk.is_empty() {
                        return Ok(0);
                    }
                    let spare = tail.capacity() - tail.len();
                    let n = chunk
                        .len()
                        .min(max)
                        .min(if spare == 0 { max } else { spare });
                    tail.extend_from_slice(&chunk[..n]);
                    r.consume(n);
                    Ok(n)
                })
            },
        )
    }

    fn set_max_frame(&mut self, max_frame: usize) {
        self.frames.set_max_frame(max_frame.min(self.max_frame));
    }

    fn frame_limit(&self) -> usize {
        self.max_frame
    }

    fn prepare_wait(&mut self) -> Readiness<'_> {
        if self.frames.has_buffered_frame() || self.fed < self.end || self.eof {
            return Readiness::Ready;
        }
        // Decrypted bytes that no frame took yet: `recv` takes them without the socket.
        let decrypted = {
            let mut conn = lock(&self.session);
            let mut reader = conn.reader();
            matches!(reader.fill_buf(), Ok(b) if !b.is_empty())
        };
        if decrypted {
            return Readiness::Ready;
        }
        // An idle connection keeps no read buffer (64 KiB): it is made again when
        // bytes come, once per wake-up, not per call.
        self.raw = Vec::new();
        self.fed = 0;
        self.end = 0;
        Readiness::WaitOn(WaitFds::one(self.sock.as_fd()))
    }
}
