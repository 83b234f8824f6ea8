//! The core of ipc-rpc: everything between a generated stub and an OS transport.
//!
//! ```text
//!  generated {Trait}Client          generated {Trait}Server<S>: Dispatch
//!          │                                   ▲
//!        Client ── wire (envelope) ──────── server loop
//!          │        codec (postcard)           │
//!          ▼                                   │
//!  FrameSender / FrameReceiver  ◀── transport (framing for streams) ──▶  Listener
//! ```
//!
//! # Module map
//!
//! Layers from the bottom up. A module imports only modules on lower lines (the
//! `layers` test in `tests/layers.rs` checks it); modules on one line do not import
//! each other.
//!
//! | layer | modules | what |
//! |---|---|---|
//! | 0 | [`error`], [`limits`] | one error type per layer; frame, in-flight and connection limits |
//! | 1 | [`buf`], [`endpoint`], [`schema`] | [`buf::FrameBuf`] (where encoders write) and [`buf::Payload`] (a received frame left to decode); [`Endpoint`]: a mechanism, its address and its options, parsed and written as a string; [`ServiceInfo`]: a service's methods, their structure and fingerprints, and where a client's methods go on a server ([`schema::MethodRoutes`]) |
//! | 2 | [`transport`] (+ [`transport::mem`]) | the contract every mechanism implements; a [`Listener`] reports its [`Endpoint`] |
//! | 3 | [`framing`], [`codec`] | length-prefixed frames on byte streams; postcard behind [`CodecError`] |
//! | 4 | [`wire`], [`flow`] | the handshake and the request/reply envelope (deadline, overlap flag, cancel, subscription events and credit); a connection's subscriptions' credit on the server |
//! | 5 | [`dispatch`] | what a generated `{Trait}Server` implements; replies |
//! | 5½ | [`sink`] | [`Sink`]: where a subscription's handler sends its events, from any thread |
//! | 6 | [`connection`] | one connection's request/reply mechanics: ids, multiplexing, deadlines, the drainer |
//! | 7 | [`router`] | spreading calls over a pool's worker connections |
//! | 8 | [`client`], `async_client` | [`Client`]: over one connection or a router; with feature `tokio`, `AsyncClient`: calls from async tasks, over one connection |
//! | 9 | [`server`], [`supervisor`] | [`RunningServer`]: accept loop, per-connection reading and calls run at once, a bounded thread pool, the poller where idle connections wait (`epoll`), the watcher, handlers' [`server::deadline`] and [`server::cancelled`]; worker pools ([`supervisor::Pool`]), whose processes the facade's `pool` spawns |
//!
//! Users depend on the `ipc-rpc` facade, not on this crate directly.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod error;
pub mod limits;
#[doc(hidden)]
pub mod log;

pub mod buf;
pub mod endpoint;
pub mod schema;

pub mod transport;

pub mod codec;
pub mod framing;

pub mod flow;
pub mod wire;

pub mod dispatch;

pub mod sink;

pub mod connection;

pub mod router;

pub mod client;

#[cfg(feature = "tokio")]
pub mod async_client;

pub mod server;
pub mod supervisor;

pub use client::{Client, Subscription};
pub use dispatch::{Dispatch, DispatchError, Reply};
pub use endpoint::{Endpoint, EndpointError, EndpointKind};
pub use error::{
    BoxError, CodecError, FrameLimit, RemoteError, RpcError, ServeError, TransportError,
};
pub use schema::{MethodInfo, Schema, ServiceInfo};
pub use server::RunningServer;
pub use sink::{Sink, SinkError};
pub use transport::{
    Closer, FrameReceiver, FrameSender, Listener, Parts, PeerCredentials, Readiness, Transport,
    WaitFds,
};
