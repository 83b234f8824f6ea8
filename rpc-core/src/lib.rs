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
//! - [`wire`]: the handshake and the request/reply envelope.
//! - [`codec`]: postcard behind [`CodecError`].
//! - [`framing`]: length-prefixed frames over byte streams.
//! - [`transport`]: the contract every mechanism implements, and the in-process
//!   [`transport::mem`] reference.
//! - [`Client`]: calls from many threads multiplexed over one connection, or routed
//!   over a [`pool`] of them.
//! - [`RunningServer`]: accept loop and per-connection threads.
//!
//! Users depend on the `ipc-rpc` facade, not on this crate directly.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod client;
pub mod codec;
pub mod dispatch;
pub mod error;
pub mod framing;
pub mod pool;
pub mod server;
pub mod transport;
pub mod wire;

pub use client::Client;
pub use dispatch::{Dispatch, DispatchError, Reply, ServiceInfo, fingerprint};
pub use error::{BoxError, CodecError, RemoteError, RpcError, ServeError, TransportError};
pub use server::RunningServer;
pub use transport::{
    Closer, FrameReceiver, FrameSender, Listener, Parts, PeerCredentials, Transport,
};
