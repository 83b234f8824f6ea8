//! What UNIX and TCP stream sockets share: splitting a connected socket into framed
//! halves with a `shutdown(SHUT_RD)` closer, and a wakeable accept.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use rpc_core::{Closer, Parts, TransportError};

use crate::fd_reserve::{FdReserve, is_exhaustion};
use crate::stream::{StreamReceiver, StreamSender};
use crate::wakeup::Wakeup;

/// A connected stream socket of std (`UnixStream`, `TcpStream`).
pub(crate) trait StreamSocket: Read + Write + AsFd + Send + Sync + Sized + 'static {
    fn try_clone(&self) -> io::Result<Self>;
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    fn set_nonblocking(&self, on: bool) -> io::Result<()>;
}

impl StreamSocket for UnixStream {
    fn try_clone(&self) -> io::Result<Self> {
        UnixStream::try_clone(self)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        UnixStream::shutdown(self, how)
    }
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        UnixStream::set_nonblocking(self, on)
    }
}

impl StreamSocket for TcpStream {
    fn try_clone(&self) -> io::Result<Self> {
        TcpStream::try_clone(self)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        TcpStream::set_nonblocking(self, on)
    }
}

/// Makes a blocked `recv` on the socket return end-of-file.
struct ShutdownRead<S>(S);

impl<S: StreamSocket> Closer for ShutdownRead<S> {
    fn close(&self) {
        // Fails only if the socket is already disconnected, which is the goal anyway.
        let _ = self.0.shutdown(Shutdown::Read);
    }
}

/// Splits a connected socket: the sender writes on it, the receiver and the closer
/// use duplicates of its descriptor.
pub(crate) fn split_socket<S: StreamSocket>(
    stream: S,
    max_frame: usize,
    peer: String,
) -> Result<Parts, TransportError> {
    let dup = |s: &S| {
        s.try_clone().map_err(|e| TransportError::Io {
            context: format!("duplicate the socket of {peer}"),
            source: e,
        })
    };
    let reader = dup(&stream)?;
    let closer = dup(&stream)?;
    Ok(Parts {
        receiver: Box::new(StreamReceiver::new(reader, max_frame, peer.clone())),
        closer: Box::new(ShutdownRead(closer)),
        sender: Box::new(StreamSender::new(stream, max_frame, peer)),
    })
}

/// Waits for a connection on the non-blocking listener `listener` (or for `wakeup`:
/// `Closed`), accepts it with `accept`, and returns it in blocking mode. Out of file
/// descriptors, connections are refused with the help of `reserve`.
pub(crate) fn accept_blocking<S: StreamSocket, A>(
    listener: BorrowedFd<'_>,
    wakeup: &Wakeup,
    name: &str,
    reserve: &mut FdReserve,
    mut accept: impl FnMut() -> io::Result<(S, A)>,
) -> Result<(S, A), TransportError> {
    loop {
        wakeup.wait_readable(listener, name)?;
        match accept() {
            Ok((stream, addr)) => {
                let Some(stream) = reserve.admit(stream, name) else {
                    continue;
                };
                stream
                    .set_nonblocking(false)
                    .map_err(|e| TransportError::Io {
                        context: format!("{name}: configure an accepted connection"),
                        source: e,
                    })?;
                return Ok((stream, addr));
            }
            // Another thread took it, or the client gave up in between.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e)
                if is_exhaustion(&e)
                    && reserve.refuse_waiting(name, &e, || accept().map(|(s, _)| s)) => {}
            Err(e) => {
                return Err(TransportError::Io {
                    context: format!("{name}: accept"),
                    source: e,
                });
            }
        }
    }
}
