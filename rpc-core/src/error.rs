//! One error type per layer.
//!
//! | layer | type |
//! |---|---|
//! | transport (OS) | [`TransportError`] |
//! | codec | [`CodecError`] |
//! | a failure on the server, sent back as data | [`RemoteError`] |
//! | a client call | [`RpcError`] (what every generated method returns) |
//! | starting a server | [`ServeError`] |
//!
//! Messages are lowercase and say what to do; the underlying cause is in
//! [`std::error::Error::source`], not repeated in the message.

use std::io;
use std::sync::Arc;
use std::time::Duration;

/// A boxed error from a dependency (the serialiser), kept behind our own types.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error and all its sources on one line, `outer: inner: innermost`, for a
/// message that travels as text (to a client, or from a worker to its pool).
///
/// # Examples
///
/// ```
/// use rpc_core::{TransportError, error::chain};
/// let e = TransportError::Io { context: "bind /x.sock".into(), source: std::io::ErrorKind::NotFound.into() };
/// assert_eq!(chain(&e), "bind /x.sock: entity not found");
/// ```
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// An error from a transport: the OS mechanism under a connection or listener.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer closed the connection (EOF, `EPIPE`, `ECONNRESET`), or it was shut down locally.
    #[error("the connection is closed")]
    Closed,
    /// A deadline passed before a whole frame arrived; the transport stays usable.
    #[error("timed out waiting for the peer")]
    TimedOut,
    /// A frame is larger than the connection's `max_frame`; nothing was sent or allocated.
    #[error(
        "frame of {len} bytes exceeds the limit of {max} bytes; send less per call or raise \
         `max_frame` on both sides (endpoint option `?max_frame=N`)"
    )]
    FrameTooLarge {
        /// The frame's length (as claimed by the peer, when receiving).
        len: u64,
        /// The connection's limit.
        max: u64,
    },
    /// The peer sent bytes that break the transport's own framing.
    #[error("corrupt data from the peer: {0}")]
    Corrupt(&'static str),
    /// A live server already owns the endpoint.
    #[error("{endpoint} is in use by a live server; stop that server or pick another endpoint")]
    AddrInUse {
        /// The endpoint that is taken.
        endpoint: String,
    },
    /// The endpoint names a mechanism or option this build cannot use.
    #[error("{endpoint}: {reason}")]
    Unsupported {
        /// The endpoint as written.
        endpoint: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// Nothing serves the endpoint: no socket file, queue or rendezvous of that name,
    /// or nothing listens on the port. `context` says which and what to check.
    #[error("{context}")]
    NoServer {
        /// What was not there, and what to do.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The endpoint's object is a leftover of a server that is gone (killed, crashed):
    /// a socket file nobody listens on, a queue whose owner is dead. Starting the server
    /// again replaces it.
    #[error("{context}")]
    Stale {
        /// Which object, and what to do.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An OS limit refused what the connection needs (descriptors, message-queue
    /// memory, the number of queues): `context` names the limit and how to raise it.
    #[error("{context}")]
    LimitReached {
        /// Which limit, and how to raise it.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The network link to the peer is dead: the kernel gave the connection up
    /// because sent data or keepalive probes went unanswered (`ETIMEDOUT`), or no route
    /// to the peer is left (`EHOSTUNREACH`, `ENETUNREACH`). Like [`TransportError::Closed`]
    /// the connection is over; `context` says which peer and which limit noticed it.
    #[error("{context}")]
    LinkDown {
        /// Which connection, and what noticed it (e.g. the endpoint's `user_timeout`).
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Any other OS error; `context` says which operation on which object failed.
    #[error("{context}")]
    Io {
        /// What we were doing, e.g. `connect to unix:/tmp/x.sock`.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl TransportError {
    /// Classifies an I/O error once, for every transport: a peer that is gone (EOF,
    /// `EPIPE`, `ECONNRESET`, ...) is [`TransportError::Closed`], an expired timed
    /// wait is [`TransportError::TimedOut`], anything else is [`TransportError::Io`]
    /// with `context` describing the operation.
    ///
    /// A Rust binary ignores `SIGPIPE`, so a broken pipe arrives here as `EPIPE`; a C
    /// host that embeds this library must ignore `SIGPIPE` itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use rpc_core::TransportError;
    /// let e = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
    /// assert!(matches!(TransportError::from_io(e, || "write".into()), TransportError::Closed));
    /// ```
    pub fn from_io(err: io::Error, context: impl FnOnce() -> String) -> Self {
        use io::ErrorKind as K;
        match err.kind() {
            K::UnexpectedEof
            | K::BrokenPipe
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected => TransportError::Closed,
            K::WouldBlock | K::TimedOut => TransportError::TimedOut,
            _ => TransportError::Io {
                context: context(),
                source: err,
            },
        }
    }
}

/// An error from the serialiser (postcard), kept behind this type so it can change.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A value could not be serialised.
    #[error("cannot encode {what}")]
    Encode {
        /// What was being encoded (`arguments of add`, `reply header`, ...).
        what: &'static str,
        /// The serialiser's error.
        #[source]
        source: BoxError,
    },
    /// Bytes could not be deserialised into the expected type.
    #[error("cannot decode {what}; both sides must be built from the same service definition")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The serialiser's error.
        #[source]
        source: BoxError,
    },
}

/// A failure on the server side of one call, sent back to the caller as data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The handler panicked; the server caught it and goes on serving.
    #[error("handler `{method}` panicked: {message}")]
    Panic {
        /// The method whose handler panicked.
        method: String,
        /// The panic message.
        message: String,
    },
    /// The server has no method with that index (client and server built from different code).
    #[error("the server has no method #{index}; rebuild client and server from the same trait")]
    UnknownMethod {
        /// The method index the client sent.
        index: u16,
    },
    /// The server could not decode the arguments.
    #[error("the server could not decode the arguments of `{method}`: {detail}")]
    BadArguments {
        /// The method called.
        method: String,
        /// The decoder's message.
        detail: String,
    },
    /// The server could not encode the handler's return value.
    #[error("the server could not encode the reply of `{method}`: {detail}")]
    BadReply {
        /// The method called.
        method: String,
        /// The encoder's message.
        detail: String,
    },
    /// The request reached the server after its caller's deadline had passed, so the
    /// server did not run it.
    #[error("the call to `{method}` reached the server after its deadline; it was not run")]
    Expired {
        /// The method called.
        method: String,
    },
    /// The reply is larger than the connection's `max_frame`.
    #[error("the reply of `{method}` is {len} bytes, over the limit of {max} bytes")]
    ReplyTooLarge {
        /// The method called.
        method: String,
        /// The encoded reply's size.
        len: u64,
        /// The server's `max_frame`.
        max: u64,
    },
}

/// The error of every generated client method and of `connect`.
///
/// Application errors are not here: a method declared `-> Result<T, E>` returns
/// `Result<Result<T, E>, RpcError>`, and the inner `Result` is the handler's own value.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The peer is gone (it exited, crashed, was killed, or closed the connection), or
    /// the connection was closed after a fatal error. Make a new client with `connect`
    /// once a server is back.
    #[error("disconnected from {peer}: {reason}")]
    Disconnected {
        /// The endpoint of the server.
        peer: Arc<str>,
        /// What ended the connection.
        reason: Arc<str>,
        /// The transport's error that ended it, where one did (shared by every call
        /// the connection failed).
        #[source]
        source: Option<Arc<TransportError>>,
    },
    /// The server refused the connection and said why (e.g. it is at its
    /// `max_connections`, or out of file descriptors); nothing was set up. Try again
    /// later, or change what the reason names.
    #[error("the server at {peer} refused the connection: {reason}")]
    Refused {
        /// The endpoint of the server.
        peer: Arc<str>,
        /// The server's reason, as it sent it.
        reason: String,
    },
    /// The call's deadline passed; the client stays usable and a late reply is discarded.
    #[error(
        "no reply from {peer} within {after:?}; the call may still run on the server; raise the \
         deadline with `with_timeout`"
    )]
    Timeout {
        /// The endpoint of the server.
        peer: Arc<str>,
        /// The deadline that passed.
        after: Duration,
    },
    /// An OS error that is not a disconnect.
    #[error("{context}")]
    Io {
        /// What failed.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Arguments or a reply could not be (de)serialised.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The request or the reply is larger than a `max_frame`: this client's, or the
    /// server's (each side tells the other its own at the handshake). Nothing of it
    /// was sent: a request is refused before it is written, a reply held back by the
    /// server, which answers this call with this error instead. The connection stays
    /// usable; `limit` says whose limit and which message.
    #[error("{} of {len} bytes exceeds {} max_frame of {max} bytes; {}", limit.message(), limit.owner(), limit.advice())]
    FrameTooLarge {
        /// The message's size.
        len: u64,
        /// The limit it exceeds.
        max: u64,
        /// Whose limit, and which message.
        limit: FrameLimit,
    },
    /// The server serves another service, or another version of this one.
    #[error(
        "incompatible service: this client is {client} but the server at {peer} is {server}; build \
         both from the same #[ipc_service] trait"
    )]
    Incompatible {
        /// The endpoint of the server.
        peer: Arc<str>,
        /// This side: service name and protocol.
        client: String,
        /// The server's service name and protocol.
        server: String,
    },
    /// This method cannot be called on this server: it has no method of that name (it
    /// runs an older version of the service), or that method's arguments or reply
    /// have another structure (see `rpc_core::schema`). Only this call fails: the
    /// connection and the methods both sides agree on stay usable.
    #[error("{}", method_mismatch(peer, service, method, client, server.as_deref()))]
    MethodMismatch {
        /// The endpoint of the server.
        peer: Arc<str>,
        /// The service's name.
        service: &'static str,
        /// The method's name.
        method: &'static str,
        /// This client's signature of it.
        client: Box<str>,
        /// The server's, if it has a method of that name.
        server: Option<Box<str>>,
    },
    /// The handler panicked on the server; the server goes on serving.
    #[error("handler `{method}` panicked on the server: {message}")]
    RemotePanic {
        /// The method whose handler panicked.
        method: String,
        /// The panic message.
        message: String,
    },
    /// Another failure on the server side of this call.
    #[error(transparent)]
    Remote(RemoteError),
    /// The server did not take the connection, or did not answer the handshake, within
    /// the endpoint's `connect_timeout`: it is stopped, overloaded, unreachable, or not
    /// an ipc-rpc server. `detail` says which step got no answer and what to check.
    #[error("cannot connect to {endpoint} within {after:?}: {detail}")]
    ConnectTimeout {
        /// The endpoint as written.
        endpoint: String,
        /// The time-out that passed.
        after: Duration,
        /// Which step got no answer, and what to check.
        detail: String,
    },
    /// Nothing serves the endpoint (no socket file, queue or rendezvous of that name,
    /// nothing listening on the port): start the server, or check the address.
    #[error("cannot connect to {endpoint}: {detail}")]
    NoServer {
        /// The endpoint as written.
        endpoint: String,
        /// What was not there, and what to do.
        detail: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The endpoint's object is a leftover of a server that is gone (a socket file
    /// nobody listens on, a queue whose owner died): start the server again, which
    /// replaces it.
    #[error("cannot connect to {endpoint}: {detail}")]
    Stale {
        /// The endpoint as written.
        endpoint: String,
        /// Which object, and what to do.
        detail: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An OS limit refused what the connection needs: `detail` names it and how to
    /// raise it.
    #[error("cannot connect to {endpoint}: {detail}")]
    LimitReached {
        /// The endpoint as written.
        endpoint: String,
        /// Which limit, and how to raise it.
        detail: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Connecting failed.
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// The endpoint as written.
        endpoint: String,
        /// Why.
        #[source]
        source: TransportError,
    },
    /// No worker of a pool can take the call: the pool was shut down, or every worker
    /// failed to start again and again and the pool stopped restarting them. The
    /// reason says which, with the last start-up error.
    #[error("{pool}: {reason}")]
    PoolUnavailable {
        /// The pool, e.g. ``worker pool of `Hasher` ``.
        pool: Arc<str>,
        /// Why no worker can take the call, and what to do.
        reason: Arc<str>,
    },
    /// The server sent bytes that are not a valid reply.
    #[error("protocol error from {peer}: {detail}; is it an ipc-rpc server of the same version?")]
    Protocol {
        /// The endpoint of the server.
        peer: Arc<str>,
        /// What was wrong.
        detail: &'static str,
    },
}

/// Which `max_frame` a message exceeded ([`RpcError::FrameTooLarge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameLimit {
    /// A request over this client's own limit (its endpoint's `?max_frame=`).
    ClientRequest,
    /// A request over the server's limit, learned at the handshake.
    ServerRequest,
    /// A reply over this client's limit: the server answered with this error instead.
    ClientReply,
    /// A reply over the server's own limit.
    ServerReply,
}

impl FrameLimit {
    fn message(self) -> &'static str {
        match self {
            FrameLimit::ClientRequest | FrameLimit::ServerRequest => "request",
            FrameLimit::ClientReply | FrameLimit::ServerReply => "reply",
        }
    }

    fn owner(self) -> &'static str {
        match self {
            FrameLimit::ClientRequest | FrameLimit::ClientReply => "this client's",
            FrameLimit::ServerRequest | FrameLimit::ServerReply => "the server's",
        }
    }

    fn advice(self) -> &'static str {
        match self {
            FrameLimit::ClientRequest => {
                "send less per call, or raise `max_frame` in this client's endpoint (`?max_frame=N`, \
                 e.g. `64M`)"
            }
            FrameLimit::ServerRequest => {
                "nothing was sent; send less per call, or raise `max_frame` in the server's \
                 endpoint (`?max_frame=N`)"
            }
            FrameLimit::ClientReply => {
                "the server did not send it; ask for less per call, or raise `max_frame` in this \
                 client's endpoint (`?max_frame=N`)"
            }
            FrameLimit::ServerReply => {
                "ask for less per call, or raise `max_frame` in the server's endpoint \
                 (`?max_frame=N`)"
            }
        }
    }
}

impl RpcError {
    /// Whether this error means the connection is gone and a new client is needed.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RpcError::Disconnected { .. })
    }
}

/// An error starting a server.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A live server already owns the endpoint.
    #[error("{endpoint} is in use by a live server; stop that server or pick another endpoint")]
    AddrInUse {
        /// The endpoint.
        endpoint: String,
    },
    /// Binding or listening failed for another reason.
    #[error("cannot listen on {endpoint}")]
    Listen {
        /// The endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: TransportError,
    },
    /// The OS refused a thread for the accept loop.
    #[error("cannot start the server's accept thread")]
    Thread(#[source] io::Error),
}

impl ServeError {
    /// Wraps a transport error from binding `endpoint`, lifting `AddrInUse`.
    pub fn listen(endpoint: impl Into<String>, source: TransportError) -> Self {
        match source {
            TransportError::AddrInUse { endpoint } => ServeError::AddrInUse { endpoint },
            source => ServeError::Listen {
                endpoint: endpoint.into(),
                source,
            },
        }
    }
}

/// Writes `error` as `Debug` shows this crate's errors: its message, then the chain of
/// its causes. A `main` that returns `Result<(), Box<dyn Error>>` prints an error's
/// `Debug` form, and it should say what happened and what to do, not dump a struct
/// (match on the variants to tell errors apart). `{:#?}` writes the same.
///
/// # Errors
///
/// When the formatter fails.
///
/// # Examples
///
/// ```
/// let e = rpc_core::TransportError::AddrInUse { endpoint: "unix:/tmp/x.sock".into() };
/// assert_eq!(format!("{e:?}"), e.to_string());
/// ```
pub fn debug_as_display(
    error: &dyn std::error::Error,
    f: &mut std::fmt::Formatter<'_>,
) -> std::fmt::Result {
    write!(f, "{error}")?;
    let mut cause = error.source();
    if cause.is_some() {
        f.write_str("\n\nCaused by:")?;
    }
    while let Some(c) = cause {
        write!(f, "\n    {c}")?;
        cause = c.source();
    }
    Ok(())
}

/// `Debug` as [`debug_as_display`] writes it, for each of these errors.
macro_rules! debug_as_display {
    ($($error:ty),* $(,)?) => {
        $(
            impl std::fmt::Debug for $error {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    debug_as_display(self, f)
                }
            }
        )*
    };
}

debug_as_display!(TransportError, CodecError, RpcError, ServeError);

/// The text of [`RpcError::MethodMismatch`].
fn method_mismatch(
    peer: &str,
    service: &str,
    method: &str,
    client: &str,
    server: Option<&str>,
) -> String {
    match server {
        Some(server) => format!(
            "`{service}::{method}` differs between this client and the server at {peer}: \
             the client has `{client}`, the server `{server}`; build both from the same \
             version of the types (see \"Versions and compatible changes\" in the README); the other \
             methods work"
        ),
        None => format!(
            "the server at {peer} has no method `{service}::{method}` (the client's is \
             `{client}`): it runs an older version of `{service}`; upgrade the server or do \
             not call `{method}` there; the other methods work"
        ),
    }
}

#[cfg(test)]
mod method_mismatch_tests {
    /// The message sends the reader to a README section: it exists, under that name.
    #[test]
    fn the_readme_section_the_message_names_exists() {
        let text = super::method_mismatch("unix:/x", "Jobs", "f", "f() -> u8", Some("f() -> u16"));
        let section = "Versions and compatible changes";
        assert!(
            text.contains(&format!("see \"{section}\" in the README")),
            "{text}"
        );
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&format!("\n## {section}\n")),
            "README has no `## {section}`"
        );
    }
}
