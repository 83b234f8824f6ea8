//! The transports of ipc-rpc; [`connect`] and [`listen`] pick one at run time from an
//! [`Endpoint`] (defined in rpc-core's [`endpoint`](rpc_core::endpoint) module,
//! re-exported here with its option types).
//!
//! Every transport is made the same way: `XTransport::connect(&Endpoint)` on the
//! client, `XListener::bind(&Endpoint)` on the server; an endpoint of another kind is
//! refused with `Unsupported`. A `pipe` has no address: the parent spawns the child
//! ([`PipeTransport::spawn`]) and the child binds what it inherited.
//!
//! | endpoint | module | status |
//! |---|---|---|
//! | `unix:/path.sock` | [`uds`] | supported |
//! | `tcp:host:port` | [`tcp`] | supported |
//! | `tls:host:port?cert=…&key=…&ca=…` | `tls` | with feature `tls` (off by default); without it, `Unsupported` |
//! | `pipe` | [`pipe`] | the parent spawns the child ([`PipeTransport::spawn`]) |
//! | `fifo:/dir/name` | [`fifo`] | supported |
//! | `mq:/name` | [`mq`] | supported |
//! | `shm:/name` | [`shm`] | supported |
//!
//! Byte-stream transports share one framing implementation (rpc-core's
//! [`framing`](rpc_core::framing)). Linux only.
//!
//! The feature `test-util` (off by default; the workspace's own tests and fuzz targets
//! turn it on) exposes internals to tests through a hidden `test_util` module; nothing
//! in it is public API.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod endpoint;
mod fd_reserve;
pub mod fifo;
pub mod mq;
mod names;
pub mod pipe;
mod read_waker;
pub mod shm;
pub mod signals;
mod socket;
mod stream;
mod stream_socket;
mod sys;
pub mod tcp;
#[cfg(feature = "test-util")]
#[doc(hidden)]
pub mod test_util;
#[cfg(feature = "tls")]
pub mod tls;
pub mod uds;
mod wakeup;

pub use endpoint::{
    Endpoint, EndpointError, EndpointKind, MqOptions, ShmOptions, TcpOptions, TlsOptions,
    UnixOptions,
};
pub use fifo::{FifoListener, FifoTransport};
pub use mq::{MqListener, MqTransport};
pub use names::reclaim::reclaim_stale;
pub use pipe::{PipeListener, PipeTransport};
pub use shm::{ShmListener, ShmTransport};
pub use tcp::{TcpListener, TcpTransport};
#[cfg(feature = "tls")]
pub use tls::{TlsListener, TlsTransport};
pub use uds::{UdsListener, UdsTransport};

use rpc_core::{Listener, Transport, TransportError};

/// Connects to the server at `endpoint` over the mechanism it names.
///
/// # Errors
///
/// The transport's error (its message names the endpoint and what to do);
/// `Unsupported` for `pipe`, which is connected by spawning the child.
///
/// # Examples
///
/// ```no_run
/// let t = transports::connect(&"unix:/tmp/calc.sock".parse()?)?;
/// println!("connected to {}", t.peer());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn connect(endpoint: &Endpoint) -> Result<Box<dyn Transport>, TransportError> {
    Ok(match endpoint.kind() {
        EndpointKind::Unix { .. } => Box::new(UdsTransport::connect(endpoint)?),
        EndpointKind::Tcp { .. } => Box::new(TcpTransport::connect(endpoint)?),
        EndpointKind::Tls { .. } => tls_connect(endpoint)?,
        EndpointKind::Fifo { .. } => Box::new(FifoTransport::connect(endpoint)?),
        EndpointKind::Shm { .. } => Box::new(ShmTransport::connect(endpoint)?),
        EndpointKind::Mq { .. } => Box::new(MqTransport::connect(endpoint)?),
        EndpointKind::Pipe => {
            return Err(TransportError::Unsupported {
                endpoint: endpoint.to_string(),
                reason: "a pipe has no address to connect to: spawn the server as a child with \
                         `ipc_rpc::spawn_child` (PipeTransport::spawn), which returns the connection"
                    .into(),
            });
        }
        _ => return Err(endpoint::unknown_kind(endpoint)),
    })
}

/// Binds a listener for a server at `endpoint`.
///
/// # Errors
///
/// `AddrInUse` if a live server owns it, otherwise the transport's error.
///
/// # Examples
///
/// ```
/// let listener = transports::listen(&"tcp:127.0.0.1:0".parse()?)?;
/// println!("listening on {}", listener.local_endpoint()); // the port the OS picked
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn listen(endpoint: &Endpoint) -> Result<Box<dyn Listener>, TransportError> {
    Ok(match endpoint.kind() {
        EndpointKind::Unix { .. } => Box::new(UdsListener::bind(endpoint)?),
        EndpointKind::Tcp { .. } => Box::new(TcpListener::bind(endpoint)?),
        EndpointKind::Tls { .. } => tls_listen(endpoint)?,
        EndpointKind::Fifo { .. } => Box::new(FifoListener::bind(endpoint)?),
        EndpointKind::Mq { .. } => Box::new(MqListener::bind(endpoint)?),
        EndpointKind::Shm { .. } => Box::new(ShmListener::bind(endpoint)?),
        EndpointKind::Pipe => Box::new(PipeListener::bind(endpoint)?),
        _ => return Err(endpoint::unknown_kind(endpoint)),
    })
}

#[cfg(feature = "tls")]
fn tls_connect(endpoint: &Endpoint) -> Result<Box<dyn Transport>, TransportError> {
    Ok(Box::new(TlsTransport::connect(endpoint)?))
}

#[cfg(feature = "tls")]
fn tls_listen(endpoint: &Endpoint) -> Result<Box<dyn Listener>, TransportError> {
    Ok(Box::new(TlsListener::bind(endpoint)?))
}

/// Without the `tls` feature: `Unsupported`, saying how to get it (never plain TCP
/// instead).
#[cfg(not(feature = "tls"))]
fn tls_missing(endpoint: &Endpoint) -> TransportError {
    TransportError::Unsupported {
        endpoint: endpoint.to_string(),
        reason: "this build has no TLS: enable the cargo feature `tls` of ipc-rpc (or of \
                 transports)"
            .into(),
    }
}

#[cfg(not(feature = "tls"))]
fn tls_connect(endpoint: &Endpoint) -> Result<Box<dyn Transport>, TransportError> {
    Err(tls_missing(endpoint))
}

#[cfg(not(feature = "tls"))]
fn tls_listen(endpoint: &Endpoint) -> Result<Box<dyn Listener>, TransportError> {
    Err(tls_missing(endpoint))
}
