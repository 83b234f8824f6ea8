//! The transports of ipc-rpc, and [`Endpoint`], which picks one at run time.
//!
//! | endpoint | module | status |
//! |---|---|---|
//! | `unix:/path.sock` | [`uds`] | supported |
//! | `tcp:host:port` | [`tcp`] | supported |
//! | `pipe` | — | not yet: [`connect`]/[`listen`] return `Unsupported` |
//! | `fifo:/dir/name` | — | not yet |
//! | `mq:/name` | [`mq`] | supported |
//! | `shm:/name` | — | not yet |
//!
//! Byte-stream transports share one framing implementation ([`stream`]). Linux only.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod endpoint;
pub mod mq;
pub mod owner_lock;
pub mod stream;
pub mod tcp;
pub mod uds;
pub mod wakeup;

pub use endpoint::{Endpoint, EndpointError, EndpointKind};
pub use mq::{MqListener, MqTransport};
pub use tcp::{TcpListener, TcpTransport};
pub use uds::{UdsListener, UdsTransport};

use rpc_core::{Listener, Transport, TransportError};

/// Connects to the server at `endpoint` over the mechanism it names.
///
/// # Errors
///
/// `Unsupported` for a mechanism this build lacks; otherwise the transport's error
/// (its message names the endpoint and what to do).
///
/// # Examples
///
/// ```no_run
/// let t = transports::connect(&"unix:/tmp/calc.sock".parse()?)?;
/// println!("connected to {}", t.peer());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn connect(endpoint: &Endpoint) -> Result<Box<dyn Transport>, TransportError> {
    match endpoint.kind() {
        EndpointKind::Unix(path) => {
            Ok(Box::new(UdsTransport::connect(path, endpoint.max_frame())?))
        }
        EndpointKind::Tcp { host, port } => Ok(Box::new(TcpTransport::connect(
            host,
            *port,
            endpoint.max_frame(),
        )?)),
        EndpointKind::Mq(name) => Ok(Box::new(MqTransport::connect(name, endpoint.max_frame())?)),
        _ => Err(unsupported(endpoint)),
    }
}

/// Binds a listener for a server at `endpoint`.
///
/// # Errors
///
/// `AddrInUse` if a live server owns it, `Unsupported` for a mechanism this build
/// lacks, otherwise the transport's error.
pub fn listen(endpoint: &Endpoint) -> Result<Box<dyn Listener>, TransportError> {
    match endpoint.kind() {
        EndpointKind::Unix(path) => Ok(Box::new(UdsListener::bind(path, endpoint.clone())?)),
        EndpointKind::Tcp { host, port } => Ok(Box::new(TcpListener::bind(host, *port, endpoint)?)),
        EndpointKind::Mq(name) => Ok(Box::new(MqListener::bind(name, endpoint.clone())?)),
        _ => Err(unsupported(endpoint)),
    }
}

fn unsupported(endpoint: &Endpoint) -> TransportError {
    TransportError::Unsupported {
        endpoint: endpoint.to_string(),
        reason: format!(
            "the `{}` transport is not implemented yet in this version of ipc-rpc; use a `unix:`, `tcp:` or `mq:` endpoint for now",
            endpoint.kind().scheme()
        ),
    }
}
