//! What UNIX and TCP stream sockets share: splitting a connected socket into framed
//! halves and a closer (`shutdown(SHUT_RD)`, or both sides on abort) that all use its
//! one descriptor, and a wakeable accept.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};

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

/// Connects a UNIX stream socket to `addr` (a path, or an abstract name), waiting up to
/// `timeout` while the server's
/// listen backlog is full (a server that is stopped or does not accept fills it, and a
/// blocking `connect` would then wait for ever). Returns the socket in blocking mode;
/// an `io::Error` of kind `TimedOut` when the backlog stayed full.
pub(crate) fn connect_unix(addr: &UnixAddr, timeout: Duration) -> io::Result<UnixStream> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(100);
    loop {
        match connect(fd.as_raw_fd(), addr) {
            Ok(()) => break,
            Err(Errno::EINTR) => {}
            // A UNIX socket says EAGAIN, not EINPROGRESS, while the backlog is full.
            Err(Errno::EAGAIN) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the server's listen backlog stayed full for {timeout:?}"),
                    ));
                }
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(stream)
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

#[cfg(test)]
mod tests {
    use nix::sys::socket::{Backlog, bind, listen};

    use super::*;

    /// A UNIX listener that takes no connection (a stopped server) fills its backlog;
    /// a blocking `connect` would then wait for ever, ours gives up at its time-out.
    #[test]
    fn a_unix_connect_to_a_full_backlog_ends_at_the_timeout() {
        let dir = std::env::temp_dir().join(format!("ipc-rpc-backlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        bind(fd.as_raw_fd(), &UnixAddr::new(&path).unwrap()).unwrap();
        listen(&fd, Backlog::new(0).unwrap()).unwrap();
        let mut held = Vec::new();
        let timeout = Duration::from_millis(200);
        let outcome = loop {
            let started = Instant::now();
            match connect_unix(&UnixAddr::new(&path).unwrap(), timeout) {
                Ok(s) => held.push(s),
                Err(e) => break (e, started.elapsed()),
            }
            assert!(held.len() < 64, "the backlog never filled");
        };
        std::fs::remove_dir_all(&dir).unwrap();
        let (e, took) = outcome;
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains("backlog stayed full"), "{e}");
        assert!(took >= timeout && took < timeout * 10, "{took:?}");
    }
}
