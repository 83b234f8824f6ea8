//! The transports of ipc-rpc, and [`Endpoint`], which picks one at run time.
//!
//! | endpoint | module | status |
//! |---|---|---|
//! | `unix:/path.sock` | [`uds`] | supported |
//! | `tcp:host:port` | [`tcp`] | supported |
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
mod socket;
mod stream;
mod stream_socket;
mod sys;
pub mod tcp;
#[cfg(feature = "test-util")]
#[doc(hidden)]
pub mod test_util;
pub mod uds;
mod wakeup;

pub use endpoint::{Endpoint, EndpointError, EndpointKind};
pub use fifo::{FifoListener, FifoTransport};
pub use mq::{MqListener, MqTransport};
pub use names::reclaim::reclaim_stale;
pub use pipe::{PipeListener, PipeTransport};
pub use shm::{ShmListener, ShmTransport};
pub use tcp::{TcpListener, TcpTransport};
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
    let max_frame = endpoint.max_frame();
    match endpoint.kind() {
        EndpointKind::Unix(path) => Ok(Box::new(UdsTransport::connect(path, max_frame)?)),
        EndpointKind::Tcp { host, port } => {
            Ok(Box::new(TcpTransport::connect(host, *port, max_frame)?))
        }
        EndpointKind::Fifo(dir) => Ok(Box::new(FifoTransport::connect(dir, max_frame)?)),
        EndpointKind::Shm(name) => Ok(Box::new(ShmTransport::connect(
            name,
            shm::ShmOptions::from_endpoint(endpoint),
        )?)),
        EndpointKind::Mq(name) => Ok(Box::new(MqTransport::connect_sized(
            name,
            max_frame,
            endpoint.mq_depth(),
            endpoint.mq_msgsize(),
        )?)),
        EndpointKind::Pipe => Err(TransportError::Unsupported {
            endpoint: endpoint.to_string(),
            reason: "a pipe has no address to connect to: spawn the server as a child with \
                     `ipc_rpc::spawn_child` (PipeTransport::spawn), which returns the connection"
                .into(),
        }),
        _ => Err(endpoint::unknown_kind(endpoint)),
    }
}

/// Binds a listener for a server at `endpoint`.
///
/// # Errors
///
/// `AddrInUse` if a live server owns it, otherwise the transport's error.
pub fn listen(endpoint: &Endpoint) -> Result<Box<dyn Listener>, TransportError> {
    match endpoint.kind() {
        EndpointKind::Unix(path) => Ok(Box::new(UdsListener::bind(path, endpoint.clone())?)),
        EndpointKind::Tcp { host, port } => Ok(Box::new(TcpListener::bind(host, *port, endpoint)?)),
        EndpointKind::Fifo(dir) => Ok(Box::new(FifoListener::bind(dir, endpoint.clone())?)),
        EndpointKind::Mq(name) => Ok(Box::new(MqListener::bind(name, endpoint.clone())?)),
        EndpointKind::Shm(name) => Ok(Box::new(ShmListener::bind(name, endpoint.clone())?)),
        EndpointKind::Pipe => Ok(Box::new(PipeListener::inherited()?)),
        _ => Err(endpoint::unknown_kind(endpoint)),
    }
}
