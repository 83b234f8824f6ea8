//! TLS over TCP: `tls:host:port?cert=…&key=…&ca=…` (feature `tls`, off by default),
//! by rustls with the *ring* crypto provider: ring builds with the C compiler alone,
//! where aws-lc-rs, rustls's other provider, needs CMake too.
//!
//! | side | `cert` + `key` (PEM) | `ca` (PEM) |
//! |---|---|---|
//! | server | its certificate chain and key: required | clients must show a certificate signed by it (mutual TLS); without `ca`, any client may connect |
//! | client | its certificate, shown to a server that asks (mutual TLS) | the server's certificate must be signed by it and valid for `host`: required |
//!
//! There is no switch that skips the server's verification. A client verifies the
//! server's certificate against `ca` and the host name (or IP address) it connects to;
//! a server with `ca` verifies each client's certificate against it, and a handler sees
//! its subject (`CN=…,O=…`) in [`PeerCredentials::subject`](rpc_core::PeerCredentials)
//! (`ipc_rpc::peer()`). Each failure is refused at the handshake with an error that
//! says what is wrong (wrong authority, expired or not yet valid, issued for another
//! name, no client certificate, a plain `tcp:` peer on the other side); the server
//! drops that one connection and serves everyone else. A plain `tcp:` client that
//! reaches a `tls:` server is refused with a reason it can read.
//!
//! The connection under TLS is a `tcp:` one: `connect_timeout` bounds the connect
//! and the handshake, and `keepalive`/`user_timeout` notice a dead link (see
//! [`tcp`](crate::tcp)). A server runs the handshake on a pool thread once the
//! client's first bytes are there, bounded by the handshake time-out; a client that
//! connects and says nothing costs no thread.
//!
//! Frames are the stream framing of the other byte-stream transports, inside TLS
//! records. The cost over `tcp:` is the encryption (AES-GCM or ChaCha20-Poly1305,
//! hardware-assisted where the CPU has it) and one copy of each frame into the
//! sender's buffer of sealed records.

mod config;
mod errors;
mod io;
mod subject;

use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc_core::endpoint::TlsOptions;
use rpc_core::{Closer, Listener, Parts, PeerCredentials, Transport, TransportError, WaitFds};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, Connection, ServerConfig, ServerConnection};

use crate::endpoint::{Endpoint, EndpointKind, wrong_kind};
use crate::socket::SocketCloser;
use crate::tcp::{TcpListener, connect_within, tune};

/// How long a server gives a client to finish the TLS handshake when it splits a
/// connection nobody established (the server calls [`Transport::establish`] with its
/// own handshake deadline first).
const HANDSHAKE_TIME: Duration = Duration::from_secs(5);

/// A TLS connection, handshake done (client) or about to be (server).
pub struct TlsTransport {
    stream: TcpStream,
    conn: Connection,
    peer: String,
    max_frame: usize,
    established: bool,
}

/// The `tcp:` endpoint under a `tls:` one.
fn tcp_endpoint(endpoint: &Endpoint, host: &str, port: u16, opts: &TlsOptions) -> Endpoint {
    endpoint.with_kind(EndpointKind::Tcp {
        host: host.to_owned(),
        port,
        opts: opts.tcp().clone(),
    })
}

impl TlsTransport {
    /// Connects to `tls:<host>:<port>` and runs the TLS handshake, all within the
    /// endpoint's `connect_timeout`: the server's certificate must be signed by `ca`
    /// and valid for `host`; `cert`/`key`, if given, are shown to a server that asks.
    ///
    /// # Errors
    ///
    /// `Unsupported` without `ca` or for an endpoint of another kind; `Io` for a file
    /// that cannot be read, a refused handshake (the message says why: wrong
    /// authority, expired, another name, a plain `tcp:` server, …), or as
    /// [`TcpTransport::connect`](crate::TcpTransport::connect).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rpc_core::Transport as _;
    /// let ep = "tls:db1.example:7000?ca=/etc/calc/ca.pem".parse()?;
    /// let t = transports::TlsTransport::connect(&ep)?;
    /// println!("connected to {}", t.peer());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let EndpointKind::Tls { host, port, opts } = endpoint.kind() else {
            return Err(wrong_kind(endpoint, "TlsTransport", "tls:"));
        };
        let started = Instant::now();
        let peer = Endpoint::tls(host.as_str(), *port, TlsOptions::default()).to_string();
        let config = config::client(&endpoint.to_string(), opts)?;
        let name = ServerName::try_from(host.clone()).map_err(|e| TransportError::Io {
            context: format!("{peer}: `{host}` is not a host name or IP address TLS can check"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        let timeout = endpoint.connect_timeout();
        let stream = connect_within(host, *port, timeout, &peer)?;
        tune(&stream, opts.tcp()).map_err(|(what, source)| TransportError::Io {
            context: format!("{peer}: set {what} on the connection"),
            source,
        })?;
        let conn = ClientConnection::new(config, name).map_err(|e| TransportError::Io {
            context: format!("{peer}: start a TLS session"),
            source: std::io::Error::other(e),
        })?;
        let mut transport = TlsTransport::new(stream, Connection::Client(conn), peer, endpoint);
        transport.establish(started + timeout)?;
        Ok(transport)
    }

    fn new(stream: TcpStream, mut conn: Connection, peer: String, endpoint: &Endpoint) -> Self {
        // A whole frame is sealed at once (see `io`): no limit on what rustls buffers.
        conn.set_buffer_limit(None);
        TlsTransport {
            stream,
            conn,
            peer,
            max_frame: endpoint.max_frame(),
            established: false,
        }
    }
}

impl Transport for TlsTransport {
    fn peer(&self) -> String {
        self.peer.clone()
    }

    fn credentials(&self) -> PeerCredentials {
        let subject = self
            .conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(subject::subject);
        PeerCredentials {
            subject: subject.map(Arc::from),
            ..PeerCredentials::default()
        }
    }

    fn establish(&mut self, deadline: Instant) -> Result<(), TransportError> {
        if !self.established {
            io::handshake(&mut self.conn, &self.stream, deadline, &self.peer)?;
            self.established = true;
        }
        Ok(())
    }

    fn setup_wait(&self) -> Option<WaitFds<'_>> {
        (!self.established).then(|| WaitFds::one(self.stream.as_fd()))
    }

    fn split(mut self: Box<Self>) -> Result<Parts, TransportError> {
        self.establish(Instant::now() + HANDSHAKE_TIME)?;
        let TlsTransport {
            stream,
            conn,
            peer,
            max_frame,
            ..
        } = *self;
        let sock = Arc::new(stream);
        let session = Arc::new(Mutex::new(conn));
        Ok(Parts {
            sender: Box::new(io::TlsSender::new(
                session.clone(),
                sock.clone(),
                max_frame,
                peer.clone(),
            )),
            receiver: Box::new(io::TlsReceiver::new(session, sock.clone(), max_frame, peer)),
            closer: Box::new(SocketCloser(sock)),
        })
    }
}

/// A listening TLS endpoint: a TCP listener and the server's TLS configuration, read
/// once at bind.
pub struct TlsListener {
    tcp: TcpListener,
    config: Arc<ServerConfig>,
    endpoint: Endpoint,
}

impl TlsListener {
    /// Binds `tls:<host>:<port>` with the certificate and key of `cert`/`key`, and
    /// client verification against `ca` if given; port 0 picks a free port, reported
    /// by `local_endpoint`.
    ///
    /// # Errors
    ///
    /// `Unsupported` without `cert`/`key` or for an endpoint of another kind; `Io`
    /// for a file that cannot be read or a key that does not match; as
    /// [`TcpListener::bind`] otherwise.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rpc_core::Listener as _;
    /// let ep = "tls:0.0.0.0:7000?cert=/etc/calc/server.pem&key=/etc/calc/server.key".parse()?;
    /// let listener = transports::TlsListener::bind(&ep)?;
    /// println!("listening on {}", listener.local_endpoint());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let EndpointKind::Tls { host, port, opts } = endpoint.kind() else {
            return Err(wrong_kind(endpoint, "TlsListener", "tls:"));
        };
        let config = config::server(&endpoint.to_string(), opts)?;
        let tcp = TcpListener::bind(&tcp_endpoint(endpoint, host, *port, opts))?;
        let bound = match tcp.local_endpoint().kind() {
            EndpointKind::Tcp { host, port, .. } => endpoint.with_kind(EndpointKind::Tls {
                host: host.clone(),
                port: *port,
                opts: opts.clone(),
            }),
            _ => endpoint.clone(),
        };
        Ok(TlsListener {
            tcp,
            config,
            endpoint: bound,
        })
    }
}

impl Listener for TlsListener {
    fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        let (stream, peer) = self.tcp.accept_stream()?;
        let peer = peer.replacen("tcp:", "tls:", 1);
        let conn = ServerConnection::new(self.config.clone()).map_err(|e| TransportError::Io {
            context: format!("{peer}: start a TLS session"),
            source: std::io::Error::other(e),
        })?;
        Ok(Box::new(TlsTransport::new(
            stream,
            Connection::Server(conn),
            peer,
            &self.endpoint,
        )))
    }

    fn closer(&self) -> Result<Box<dyn Closer>, TransportError> {
        self.tcp.closer()
    }

    fn local_endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }
}
