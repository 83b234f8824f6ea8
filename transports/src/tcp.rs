//! TCP: `tcp:host:port`, with `TCP_NODELAY` on every connection.
//!
//! TCP has no authentication and no encryption: bind loopback (`127.0.0.1`, `[::1]`)
//! unless every host that can reach the port is trusted, and put a TLS tunnel or an
//! SSH forward in front of it otherwise.

use std::io;
use std::net::{Shutdown, TcpListener as StdTcpListener, TcpStream};
use std::os::fd::AsFd;

use rpc_core::{Closer, Listener, Parts, Transport, TransportError};

use crate::endpoint::{Endpoint, EndpointKind};
use crate::stream::{StreamReceiver, StreamSender};
use crate::wakeup::Wakeup;

/// A connected TCP stream.
pub struct TcpTransport {
    stream: TcpStream,
    peer: String,
    max_frame: usize,
}

impl TcpTransport {
    /// Connects to `host:port` and turns Nagle's algorithm off.
    ///
    /// # Errors
    ///
    /// `Io` saying whether the connection was refused (no server) or why else it failed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rpc_core::Transport as _;
    /// let t = transports::TcpTransport::connect("127.0.0.1", 7000, 16 << 20)?;
    /// println!("connected to {}", t.peer());
    /// # Ok::<(), rpc_core::TransportError>(())
    /// ```
    pub fn connect(host: &str, port: u16, max_frame: usize) -> Result<Self, TransportError> {
        let peer = Endpoint::tcp(host, port).to_string();
        let io_err = |e: io::Error| {
            let hint = match e.kind() {
                io::ErrorKind::ConnectionRefused => {
                    "connection refused: no server listens on that port"
                }
                _ => "connect failed",
            };
            TransportError::Io {
                context: format!("{peer}: {hint}"),
                source: e,
            }
        };
        let stream = TcpStream::connect((host, port)).map_err(io_err)?;
        stream.set_nodelay(true).map_err(io_err)?;
        Ok(TcpTransport {
            stream,
            peer,
            max_frame,
        })
    }
}

struct ShutdownRead(TcpStream);

impl Closer for ShutdownRead {
    fn close(&self) {
        // Fails only if the socket is already disconnected, which is the goal anyway.
        let _ = self.0.shutdown(Shutdown::Read);
    }
}

impl Transport for TcpTransport {
    fn peer(&self) -> String {
        self.peer.clone()
    }

    fn split(self: Box<Self>) -> Result<Parts, TransportError> {
        let dup = |s: &TcpStream| {
            s.try_clone().map_err(|e| TransportError::Io {
                context: format!("duplicate the socket of {}", self.peer),
                source: e,
            })
        };
        let reader = dup(&self.stream)?;
        let closer = dup(&self.stream)?;
        Ok(Parts {
            receiver: Box::new(StreamReceiver::new(
                reader,
                self.max_frame,
                self.peer.clone(),
            )),
            closer: Box::new(ShutdownRead(closer)),
            sender: Box::new(StreamSender::new(self.stream, self.max_frame, self.peer)),
        })
    }
}

/// A listening TCP socket.
pub struct TcpListener {
    listener: StdTcpListener,
    endpoint: Endpoint,
    wakeup: Wakeup,
}

impl TcpListener {
    /// Binds `host:port`; port 0 picks a free port, reported by `local_endpoint`.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if the port is taken; `Io` otherwise.
    pub fn bind(host: &str, port: u16, endpoint: &Endpoint) -> Result<Self, TransportError> {
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
        })
    }
}

impl Listener for TcpListener {
    fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        let name = self.endpoint.to_string();
        loop {
            self.wakeup.wait_readable(self.listener.as_fd(), &name)?;
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    let configure = |e| TransportError::Io {
                        context: format!("{name}: configure an accepted connection"),
                        source: e,
                    };
                    stream.set_nonblocking(false).map_err(configure)?;
                    stream.set_nodelay(true).map_err(configure)?;
                    return Ok(Box::new(TcpTransport {
                        stream,
                        peer: format!("{name} (client {addr})"),
                        max_frame: self.endpoint.max_frame(),
                    }));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    return Err(TransportError::Io {
                        context: format!("{name}: accept"),
                        source: e,
                    });
                }
            }
        }
    }

    fn closer(&self) -> Result<Box<dyn Closer>, TransportError> {
        Ok(Box::new(self.wakeup.clone()))
    }

    fn local_endpoint(&self) -> String {
        self.endpoint.to_string()
    }
}
