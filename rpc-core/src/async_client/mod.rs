//! The async client (cargo feature `tokio`): calls from async tasks that never block
//! the runtime, over the same connections, wire and servers as the blocking
//! [`Client`](crate::Client).
//!
//! # How it waits, and what that costs
//!
//! Each connection has two threads of its own, whatever the transport: a *writer*
//! that sends the frames calls queue, in order, and a *reader* that reads every reply
//! and wakes the task whose call it answers. A call encodes its request into a
//! buffer of its own, queues it, and waits on its slot; no thread is taken per call,
//! and a task never blocks on the connection (it only takes the short locks of the
//! queue and of the call table). So thousands of calls in flight on one client cost
//! two threads, a table entry and an encoded request each.
//!
//! The price, against the blocking client's sequential path (where the calling
//! thread writes its request and reads its own reply): two thread hand-offs per call
//! (to the writer, from the reader; under load they batch), a request buffer
//! allocated per call, and two threads per connection even while it idles. The same
//! code serves every transport, shared memory included (its futex has no descriptor
//! an async runtime could wait on).
//!
//! A call's future owns the call. Dropping it before the reply comes (a cancelled
//! task, a `select!` that took another branch, a passed `with_timeout`) abandons the
//! call: a request still queued is not sent, one already sent is followed by a cancel
//! frame, so the handler sees `cancelled()`, and its late reply is read and dropped.
//!
//! Timers are tokio's: calls with a time-out, and [`AsyncClient::connect_with`], need
//! a tokio runtime with its time driver (`enable_time`, or `enable_all`).

mod call;
mod io;
mod stream;

pub use stream::AsyncSubscription;

use std::sync::Arc;
use std::time::Duration;

use crate::buf::{FrameBuf, Payload};
use crate::codec::encode_bulk_len;
use crate::connection::{HANDSHAKE_TIMEOUT, decode_reply, handshake_parts};
use crate::dispatch::ServiceInfo;
use crate::error::{CodecError, FrameLimit, RpcError};
use crate::transport::Transport;
use crate::wire;

use call::Reply;
use io::{Outgoing, Shared};

/// A connection to a server that async tasks call through; `Clone + Send + Sync`
/// (clones share the connection, which closes when the last clone is dropped).
///
/// Generated `{Trait}AsyncClient` types wrap this; use it directly only to write a
/// stub by hand.
///
/// # Examples
///
/// ```
/// use rpc_core::async_client::AsyncClient;
/// use rpc_core::{ServiceInfo, transport::mem};
///
/// static INFO: ServiceInfo = ServiceInfo { name: "Nothing", methods: &[] };
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (client_end, server_end) = mem::pair();
/// drop(server_end); // nobody answers the handshake
/// let err = AsyncClient::connect_with(&INFO, move || Ok(Box::new(client_end))).await;
/// assert!(err.unwrap_err().is_disconnected());
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncClient {
    owner: Arc<Owner>,
    timeout: Option<Duration>,
}

/// Closes the connection when the last clone of a client goes.
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.shut("the client was dropped".into());
    }
}

/// The least a handshake is given after a connect that took (almost) all of the
/// connect time-out.
const HANDSHAKE_FLOOR: Duration = Duration::from_millis(10);

impl AsyncClient {
    /// Performs the handshake over a connected transport and starts the connection's
    /// two threads. It blocks the calling thread while it waits for the server: in
    /// async code, use [`AsyncClient::connect_with`].
    ///
    /// # Errors
    ///
    /// As [`Client::handshake`](crate::Client::handshake); `Io` if the OS refuses a
    /// thread.
    pub fn handshake(
        transport: Box<dyn Transport>,
        service: &'static ServiceInfo,
    ) -> Result<AsyncClient, RpcError> {
        AsyncClient::handshake_within(transport, service, HANDSHAKE_TIMEOUT)
    }

    /// [`AsyncClient::handshake`], giving up after `timeout` with
    /// [`RpcError::ConnectTimeout`].
    ///
    /// # Errors
    ///
    /// As [`AsyncClient::handshake`].
    pub fn handshake_within(
        transport: Box<dyn Transport>,
        service: &'static ServiceInfo,
        timeout: Duration,
    ) -> Result<AsyncClient, RpcError> {
        let shaken = handshake_parts(transport, service, timeout)?;
        let shared = Shared::start(shaken, service)?;
        Ok(AsyncClient {
            owner: Arc::new(Owner { shared }),
            timeout: None,
        })
    }

    /// Connects with `connect` (e.g. `transports::connect` for an endpoint) and
    /// performs the handshake on tokio's blocking pool, so the calling task waits
    /// without blocking the runtime.
    ///
    /// # Errors
    ///
    /// Whatever `connect` returns, then as [`AsyncClient::handshake`]; `Io` if the
    /// runtime is shutting down.
    pub async fn connect_with(
        service: &'static ServiceInfo,
        connect: impl FnOnce() -> Result<Box<dyn Transport>, RpcError> + Send + 'static,
    ) -> Result<AsyncClient, RpcError> {
        AsyncClient::connect_within(service, HANDSHAKE_TIMEOUT, connect).await
    }

    /// [`AsyncClient::connect_with`], the connect and the handshake together within
    /// `timeout` (what `{Trait}AsyncClient::connect` does with the endpoint's
    /// `connect_timeout`): the handshake gets what the connect left, at least 10 ms.
    ///
    /// # Errors
    ///
    /// As [`AsyncClient::connect_with`]; `ConnectTimeout` once `timeout` passed.
    pub async fn connect_within(
        service: &'static ServiceInfo,
        timeout: Duration,
        connect: impl FnOnce() -> Result<Box<dyn Transport>, RpcError> + Send + 'static,
    ) -> Result<AsyncClient, RpcError> {
        let started = std::time::Instant::now();
        tokio::task::spawn_blocking(move || {
            let transport = connect()?;
            let left = timeout.saturating_sub(started.elapsed());
            AsyncClient::handshake_within(transport, service, left.max(HANDSHAKE_FLOOR))
        })
        .await
        .map_err(|e| RpcError::Io {
            context: "connecting on tokio's blocking pool".into(),
            source: std::io::Error::other(e),
        })?
    }

    /// A client on the same connection whose calls fail with `RpcError::Timeout`
    /// after `timeout` (the server is told, and a late reply is dropped). The
    /// connection stays usable.
    pub fn with_timeout(&self, timeout: Duration) -> AsyncClient {
        AsyncClient {
            owner: self.owner.clone(),
            timeout: Some(timeout),
        }
    }

    /// This client's per-call deadline, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The server's endpoint, as connected to.
    pub fn peer(&self) -> &str {
        &self.owner.shared.peer
    }

    /// The service this client was made for.
    pub fn service(&self) -> &'static ServiceInfo {
        self.owner.shared.service
    }

    /// Whether the connection has failed or closed (every later call returns
    /// `Disconnected`).
    pub fn is_closed(&self) -> bool {
        io::lock(&self.owner.shared.calls).closed.is_some()
    }

    /// Calls method number `method`, as [`Client::call_with`](crate::Client::call_with)
    /// does: `encode_args` writes the arguments (before `bulk`, a byte string that
    /// ends them, sent from where it is), `decode` turns the reply's payload into `R`.
    ///
    /// The arguments are encoded before the first `.await`; dropping the future
    /// abandons the call (see the [module docs](self)).
    ///
    /// # Errors
    ///
    /// See [`RpcError`]; `Timeout` after [`AsyncClient::with_timeout`]'s time-out.
    pub async fn call_with<R>(
        &self,
        method: u16,
        encode_args: impl FnOnce(&mut FrameBuf<'_>) -> Result<(), CodecError>,
        bulk: Option<Vec<u8>>,
        decode: impl FnOnce(Payload<'_>) -> Result<R, CodecError>,
    ) -> Result<R, RpcError> {
        let shared = &self.owner.shared;
        let method = shared.routes.wire_method(method, &shared.peer)?;
        let (reply, overlaps) = Reply::register(shared)?;
        let mut head = Vec::with_capacity(64);
        {
            let mut out = FrameBuf::vec(&mut head);
            wire::encode_request_header(reply.id(), method, self.timeout, overlaps, &mut out)?;
            encode_args(&mut out)?;
            if let Some(bytes) = &bulk {
                encode_bulk_len(bytes.len(), &mut out)?;
            }
        }
        let len = head.len() + bulk.as_ref().map_or(0, Vec::len);
        if let Some(max) = shared.server_limit.filter(|&max| len > max) {
            // Under the server's lower limit, nothing is sent.
            drop(reply);
            return Err(RpcError::FrameTooLarge {
                len: len as u64,
                max: max as u64,
                limit: FrameLimit::ServerRequest,
            });
        }
        let queued = shared.queue(Outgoing {
            call: Some(reply.id()),
            head,
            tail: bulk,
        });
        if !queued {
            // Closed meanwhile: the slot says why.
            drop(reply);
            return Err(self.closed_error());
        }
        let (status, head, tail) = match self.timeout {
            None => reply.await?,
            Some(after) => {
                tokio::time::timeout(after, reply)
                    .await
                    .map_err(|_| RpcError::Timeout {
                        peer: shared.peer.clone(),
                        after,
                    })??
            }
        };
        match decode_reply(
            &shared.peer,
            shared.frame_limit,
            status,
            Payload { head: &head, tail },
            decode,
        ) {
            Err(RpcError::Timeout { peer, .. }) => Err(RpcError::Timeout {
                peer,
                after: self.timeout.unwrap_or_default(),
            }),
            other => other,
        }
    }

    /// Subscribes with subscription method number `method` (one whose last argument is
    /// a `Sink<T>`): `encode_args` writes the arguments before the sink. See
    /// [`AsyncSubscription`].
    ///
    /// # Errors
    ///
    /// `Disconnected` if the connection is closed; a codec error if the arguments do
    /// not encode; `FrameTooLarge` over the server's limit.
    pub async fn subscribe<T: serde::de::DeserializeOwned>(
        &self,
        method: u16,
        encode_args: impl FnOnce(&mut FrameBuf<'_>) -> Result<(), CodecError>,
    ) -> Result<AsyncSubscription<T>, RpcError> {
        AsyncSubscription::start(&self.owner.shared, method, encode_args)
    }

    /// The error of a call on a closed connection.
    fn closed_error(&self) -> RpcError {
        let shared = &self.owner.shared;
        let reason = io::lock(&shared.calls)
            .closed
            .clone()
            .unwrap_or_else(|| "the connection is closed".into());
        RpcError::Disconnected {
            peer: shared.peer.clone(),
            reason,
            source: None,
        }
    }
}

impl std::fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncClient")
            .field("peer", &self.peer())
            .field("service", &self.service().name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
