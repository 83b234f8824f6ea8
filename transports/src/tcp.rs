//! TCP: `tcp:host:port`, with `TCP_NODELAY` on every connection.
//!
//! TCP has no authentication and no encryption: bind loopback (`127.0.0.1`, `[::1]`)
//! unless every host that can reach the port is trusted, and put a TLS tunnel or an
//! SSH forward in front of it otherwise.

use std::io;
use std::net::{TcpListener as StdTcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rpc_core::{Closer, Listener, Parts, Transport, TransportError};

use crate::endpoint::{Endpoint, EndpointKind, wrong_kind};
use crate::fd_reserve::{FdReserve, Refusal};
use crate::socket::{accept_blocking, split_socket};
use crate::wakeup::Wakeup;

/// A connected TCP stream.
pub struct TcpTransport {
    stream: TcpStream,
    peer: String,
    max_frame: usize,
}

impl TcpTransport {
    /// Connects to `tcp:<host>:<port>` and turns Nagle's algorithm off, trying each
    /// address the host resolves to until one answers, all within the endpoint's
    /// `connect_timeout` (default 5 s).
    ///
    /// # Errors
    ///
    /// `Io` saying whether the connection was refused (no server), got no answer
    /// within `connect_timeout` (kind `TimedOut`), or why else it failed;
    /// `Unsupported` for an endpoint of another kind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rpc_core::Transport as _;
    /// let t = transports::TcpTransport::connect(&transports::Endpoint::tcp("127.0.0.1", 7000))?;
    /// println!("connected to {}", t.peer());
    /// # Ok::<(), rpc_core::TransportError>(())
    /// ```
    pub fn connect(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let EndpointKind::Tcp { host, port } = endpoint.kind() else {
            return Err(wrong_kind(endpoint, "TcpTransport", "tcp:"));
        };
        let (host, port) = (host.as_str(), *port);
        let peer = Endpoint::tcp(host, port).to_string();
        let stream = connect_within(host, port, endpoint.connect_timeout(), &peer)?;
        stream
            .set_nodelay(true)
            .map_err(|source| TransportError::Io {
                context: format!("{peer}: turn Nagle's algorithm off (TCP_NODELAY)"),
                source,
            })?;
        Ok(TcpTransport {
            stream,
            peer,
            max_frame: endpoint.max_frame(),
        })
    }
}

/// A TCP connection to `host:port`, to each address it resolves to in turn, all
/// within `timeout` (a host that drops SYNs would otherwise hold `connect` for about
/// two minutes).
fn connect_within(
    host: &str,
    port: u16,
    timeout: Duration,
    peer: &str,
) -> Result<TcpStream, TransportError> {
    let fail = |hint: String, source: io::Error| TransportError::Io {
        context: format!("{peer}: {hint}"),
        source,
    };
    let deadline = Instant::now() + timeout;
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve `{host}`"), e))?;
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            TransportError::NoServer {
                context: format!(
                    "{peer}: connection refused at {addr}: no server listens on that port; start the server or check the address"
                ),
                source: e,
            }
        }
        Some((addr, e)) if e.kind() == io::ErrorKind::TimedOut || Instant::now() >= deadline => {
            fail(
                format!(
                    "no answer from {addr} within the connect timeout of {timeout:?}: is the host up \
                     and the port reachable (a firewall dropping packets looks like this)? Raise \
                     `connect_timeout` in the endpoint for a slow network"
                ),
                io::Error::new(io::ErrorKind::TimedOut, e),
            )
        }
        Some((addr, e)) => fail(format!("connect to {addr} failed"), e),
        None => fail(
            format!("`{host}` resolves to no address"),
            io::Error::new(io::ErrorKind::NotFound, "no address"),
        ),
    })
}

impl Transport for TcpTransport {
    fn peer(&self) -> String {
        self.peer.clone()
    }

    fn split(self: Box<Self>) -> Result<Parts, TransportError> {
        split_socket(self.stream, self.max_frame, self.peer)
    }
}

/// A listening TCP socket.
pub struct TcpListener {
    listener: StdTcpListener,
    endpoint: Endpoint,
    wakeup: Wakeup,
    reserve: FdReserve,
}

impl TcpListener {
    /// Binds `tcp:<host>:<port>`; port 0 picks a free port, reported by
    /// `local_endpoint`.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if the port is taken; `Unsupported` for an endpoint of another
    /// kind; `Io` otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use rpc_core::Listener as _;
    /// let listener = transports::TcpListener::bind(&transports::Endpoint::tcp("127.0.0.1", 0))?;
    /// let transports::EndpointKind::Tcp { port, .. } = listener.local_endpoint().kind().clone()
    /// else {
    ///     unreachable!()
    /// };
    /// assert_ne!(port, 0);
    /// # Ok::<(), rpc_core::TransportError>(())
    /// ```
    pub fn bind(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let EndpointKind::Tcp { host, port } = endpoint.kind() else {
            return Err(wrong_kind(endpoint, "TcpListener", "tcp:"));
        };
        let (host, port) = (host.as_str(), *port);
        let io_err = |what: &str, source: io::Error| TransportError::Io {
            context: format!("{endpoint}: {what}"),
            source,
        };
        let listener = StdTcpListener::bind((host, port)).map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => TransportError::AddrInUse {
                endpoint: endpoint.to_string(),
            },
            _ => io_err("bind", e),
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| io_err("make the listener non-blocking", e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| io_err("read the bound address", e))?;
        let endpoint = endpoint.with_kind(EndpointKind::Tcp {
            host: bound.ip().to_string(),
            port: bound.port(),
        });
        Ok(TcpListener {
            listener,
            endpoint,
            wakeup: Wakeup::new()?,
            reserve: FdReserve::new(Refusal::Frame, 0),
        })
    }
}

impl Listener for TcpListener {
    fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        let name = self.endpoint.to_string();
        let listener = &self.listener;
        let (stream, addr) = accept_blocking(
            listener.as_fd(),
            &self.wakeup,
            &name,
            &mut self.reserve,
            || listener.accept(),
        )?;
        stream.set_nodelay(true).map_err(|e| TransportError::Io {
            context: format!("{name}: turn Nagle's algorithm off for a connection"),
            source: e,
        })?;
        Ok(Box::new(TcpTransport {
            stream,
            peer: format!("{name} (client {addr})"),
            max_frame: self.endpoint.max_frame(),
        }))
    }

    fn closer(&self) -> Result<Box<dyn Closer>, TransportError> {
        Ok(Box::new(self.wakeup.clone()))
    }

    fn local_endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, getsockname, listen, socket,
    };

    use super::*;

    /// A host that drops the SYN (here: a listener whose accept queue is full, which
    /// Linux answers by dropping it) holds a plain `connect` for about two minutes; ours
    /// gives up at the endpoint's `connect_timeout` and says what did not answer.
    #[test]
    fn a_connect_nobody_answers_ends_at_the_connect_timeout() {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
        listen(&fd, Backlog::new(0).unwrap()).unwrap();
        let port = getsockname::<SockaddrIn>(fd.as_raw_fd()).unwrap().port();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        // Fill the accept queue (nobody accepts) until a SYN goes unanswered.
        let mut held = Vec::new();
        while let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            held.push(s);
            assert!(held.len() < 64, "the accept queue never filled");
        }
        let endpoint: Endpoint = format!("tcp:127.0.0.1:{port}?connect_timeout=300ms")
            .parse()
            .unwrap();
        let started = Instant::now();
        let err = TcpTransport::connect(&endpoint).err().unwrap();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(3),
            "{took:?}"
        );
        let TransportError::Io { context, source } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(source.kind(), io::ErrorKind::TimedOut, "{err:?}");
        assert!(
            context.contains("no answer from 127.0.0.1")
                && context.contains("300ms")
                && context.contains("connect_timeout"),
            "{context}"
        );
    }
}
