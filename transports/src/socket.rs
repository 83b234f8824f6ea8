//! What UNIX and TCP stream sockets share: splitting a connected socket into framed
//! halves and a closer (`shutdown(SHUT_RD)`, or both sides on abort) that all use its
//! one descriptor, and a wakeable accept.

use std::io;
use std::net::Shutdown;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use rpc_core::{Closer, Parts, TransportError};

use crate::fd_reserve::{FdReserve, is_exhaustion};
use crate::stream::{StreamReceiver, StreamSender, WriteMode};
use crate::stream_socket::StreamSocket;
use crate::wakeup::Wakeup;

/// Closes a connected socket from any thread: `close` shuts its reading side (a blocked
/// `recv` returns end-of-file, replies can still be written), `abort` both sides (a
/// blocked send fails too).
pub(crate) struct SocketCloser<S>(pub(crate) Arc<S>);

impl<S: StreamSocket> Closer for SocketCloser<S> {
    fn close(&self) {
        // Fails only if the socket is already disconnected, which is the goal anyway.
        let _ = self.0.shutdown(Shutdown::Read);
    }

    fn abort(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// Splits a connected socket into framed halves and a closer, all on its one
/// descriptor (no duplicates: a connection costs the server one descriptor).
pub(crate) fn split_socket<S: StreamSocket>(
    stream: S,
    max_frame: usize,
    peer: String,
) -> Result<Parts, TransportError> {
    let stream = Arc::new(stream);
    Ok(Parts {
        receiver: Box::new(
            StreamReceiver::new(stream.clone(), max_frame, peer.clone()).with_socket_timeouts(),
        ),
        closer: Box::new(SocketCloser(stream.clone())),
        sender: Box::new(StreamSender::new(
            stream,
            WriteMode::Socket,
            max_frame,
            peer,
        )),
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
