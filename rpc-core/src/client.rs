//! The client: the handle generated stubs call through, over one connection (see
//! [`crate::connection`] for how calls multiplex, deadlines and the drainer) or over a
//! [router](crate::router) that spreads calls over a pool's workers; the generated stubs
//! cannot tell the difference. Many threads may share one [`Client`] (it is
//! `Clone + Send + Sync`; clones share the connection or the router).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::codec::{FrameBuf, Payload};
pub use crate::connection::HANDSHAKE_TIMEOUT;
pub use crate::connection::Subscription;
use crate::connection::{self, Connection, Request};
use crate::dispatch::ServiceInfo;
use crate::error::{CodecError, RpcError};
use crate::router::Router;
use crate::transport::Transport;

/// A connection to a server, or a pool of them, shared by any number of threads.
///
/// Generated `{Trait}Client` types wrap this; use it directly only to write a stub by
/// hand.
#[derive(Clone)]
pub struct Client {
    backend: Backend,
    timeout: Option<Duration>,
}

/// What a client's calls go through: a match per call, nothing more.
#[derive(Clone)]
enum Backend {
    Connection(Arc<Connection>),
    Pool(Arc<Router>),
}

impl Client {
    /// Performs the handshake over a connected transport and returns a client.
    ///
    /// # Errors
    ///
    /// `Incompatible` if the server runs another service, signature or protocol
    /// version; `Protocol` if it is not an ipc-rpc server; `Disconnected`/`Io` if the
    /// connection fails (`Disconnected` with the server's reason if it refused the
    /// connection, e.g. "server out of file descriptors"); `ConnectTimeout` if no answer comes within [`HANDSHAKE_TIMEOUT`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rpc_core::{Client, ServiceInfo, transport::mem};
    /// static INFO: ServiceInfo = ServiceInfo { name: "Nothing", methods: &[] };
    /// let (client_end, server_end) = mem::pair();
    /// drop(server_end); // nobody answers the handshake
    /// assert!(Client::handshake(Box::new(client_end), &INFO).unwrap_err().is_disconnected());
    /// ```
    pub fn handshake(
        transport: Box<dyn Transport>,
        service: &'static ServiceInfo,
    ) -> Result<Client, RpcError> {
        Client::handshake_within(transport, service, HANDSHAKE_TIMEOUT)
    }

    /// [`Client::handshake`], giving up after `timeout` with
    /// [`RpcError::ConnectTimeout`] (what `connect` does with the endpoint's
    /// `connect_timeout`, less the time the transport took to connect).
    ///
    /// # Errors
    ///
    /// As [`Client::handshake`], `ConnectTimeout` instead of `Timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rpc_core::{Client, RpcError, ServiceInfo, transport::mem};
    /// static INFO: ServiceInfo = ServiceInfo { name: "Nothing", methods: &[] };
    /// let (client_end, _server_end) = mem::pair(); // connected, but never answers
    /// let e = Client::handshake_within(Box::new(client_end), &INFO, Duration::from_millis(50));
    /// assert!(matches!(e, Err(RpcError::ConnectTimeout { .. })));
    /// ```
    pub fn handshake_within(
        transport: Box<dyn Transport>,
        service: &'static ServiceInfo,
        timeout: Duration,
    ) -> Result<Client, RpcError> {
        Ok(Client {
            backend: Backend::Connection(connection::handshake(transport, service, timeout)?),
            timeout: None,
        })
    }

    /// A client whose calls go through a pool's router.
    pub(crate) fn over_router(router: Arc<Router>) -> Client {
        Client {
            backend: Backend::Pool(router),
            timeout: None,
        }
    }

    /// The connection under a single-connection client; `None` for a pool client.
    pub(crate) fn connection(&self) -> Option<&Arc<Connection>> {
        match &self.backend {
            Backend::Connection(shared) => Some(shared),
            Backend::Pool(_) => None,
        }
    }

    /// A client on the same connection (or pool) whose calls fail with
    /// `RpcError::Timeout` after `timeout`. The connection stays usable; a late reply
    /// is discarded.
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            backend: self.backend.clone(),
            timeout: Some(timeout),
        }
    }

    /// Closes the connection for this client and every clone of it (those made with
    /// `clone` and [`Client::with_timeout`] share it): calls waiting for a reply and
    /// every later call fail with `Disconnected`, and the server sees the connection
    /// end at once (a `pipe` child whose parent closes its client exits, even while a
    /// clone lives on). Closing twice is harmless. A pool's client has no connection of
    /// its own (the pool owns its workers'): there it does nothing; shut the pool down.
    pub fn close(&self) {
        if let Backend::Connection(conn) = &self.backend {
            conn.close("the client was closed (Client::close)".into());
        }
    }

    /// This client's per-call deadline, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The server's endpoint, as connected to; for a pool, a description of the pool.
    pub fn peer(&self) -> &str {
        match &self.backend {
            Backend::Connection(conn) => conn.peer(),
            Backend::Pool(router) => router.peer(),
        }
    }

    /// The service this client was made for.
    pub fn service(&self) -> &'static ServiceInfo {
        match &self.backend {
            Backend::Connection(conn) => conn.service(),
            Backend::Pool(router) => router.service(),
        }
    }

    /// Whether the connection has failed or was closed ([`Client::close`], on this
    /// client or a clone): every later call returns `Disconnected`; or, for a pool, whether the pool can take no more calls (it was shut down or
    /// gave up restarting every worker).
    pub fn is_closed(&self) -> bool {
        match &self.backend {
            Backend::Connection(shared) => shared.is_closed(),
            Backend::Pool(router) => router.is_closed(),
        }
    }

    /// Calls method number `method`: `encode_args` writes the arguments (it may run
    /// more than once: a large request is counted before it is encoded into a
    /// shared-memory ring, and a pool resends a request that never reached its worker),
    /// the reply is decoded as `R`.
    ///
    /// # Errors
    ///
    /// See [`RpcError`].
    pub fn call<R: DeserializeOwned>(
        &self,
        method: u16,
        encode_args: impl Fn(&mut FrameBuf<'_>) -> Result<(), CodecError>,
    ) -> Result<R, RpcError> {
        self.call_with(method, encode_args, None, |p| p.decode_all("reply"))
    }

    /// Calls method number `method` like [`Client::call`], with two ways around copies
    /// of large byte strings:
    ///
    /// - `bulk`, if given, is the last argument, a byte string: `encode_args` writes
    ///   the arguments before it, and the transport sends `bulk`'s bytes from where
    ///   they are (the same bytes on the wire as encoding it);
    /// - `decode` turns the reply's payload into `R`, and may take a split frame's
    ///   tail whole ([`Payload::take_bytes`]).
    ///
    /// The arguments (`encode_args`, which owns them in generated code, and `bulk`)
    /// are dropped as soon as the request is written.
    ///
    /// # Errors
    ///
    /// See [`RpcError`].
    pub fn call_with<R>(
        &self,
        method: u16,
        encode_args: impl Fn(&mut FrameBuf<'_>) -> Result<(), CodecError>,
        bulk: Option<Vec<u8>>,
        decode: impl FnOnce(Payload<'_>) -> Result<R, CodecError>,
    ) -> Result<R, RpcError> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let request = Request {
            method,
            encode_args,
            bulk,
        };
        let result = match &self.backend {
            Backend::Connection(shared) => shared.call(request, decode, deadline),
            Backend::Pool(router) => router.call(request, decode, deadline),
        };
        match result {
            Err(RpcError::Timeout { peer, .. }) => Err(RpcError::Timeout {
                peer,
                after: self.timeout.unwrap_or_default(),
            }),
            other => other,
        }
    }
}

impl Client {
    /// Subscribes with subscription method number `method` (one whose last argument is
    /// a `Sink<T>`): `encode_args` writes the arguments before the sink. The request
    /// goes within this client's timeout, if it has one; the events then come for as
    /// long as the server sends them (see [`Subscription`]). Over a pool, the
    /// subscription stays with the worker it went to.
    ///
    /// # Errors
    ///
    /// As [`Client::call`], for sending the request.
    pub fn subscribe<T: DeserializeOwned>(
        &self,
        method: u16,
        encode_args: impl Fn(&mut FrameBuf<'_>) -> Result<(), CodecError>,
    ) -> Result<Subscription<T>, RpcError> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let result = match &self.backend {
            Backend::Connection(shared) => {
                Subscription::start(shared.clone(), method, encode_args, deadline, None)
            }
            Backend::Pool(router) => router.subscribe(method, encode_args, deadline),
        };
        match result {
            Err(RpcError::Timeout { peer, .. }) => Err(RpcError::Timeout {
                peer,
                after: self.timeout.unwrap_or_default(),
            }),
            other => other,
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer())
            .field("service", &self.service().name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
