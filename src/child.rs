//! A service in a child process over an anonymous pipe pair: the parent spawns, the
//! child serves its parent.
//!
//! ```no_run
//! # use ipc_rpc::ipc_service;
//! # #[ipc_service] pub trait Hasher { fn hash(&self, data: Vec<u8>) -> u64; }
//! # struct H; impl Hasher for H { fn hash(&self, d: Vec<u8>) -> u64 { d.len() as u64 } }
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // In the child: serve the parent, then exit when it goes away.
//!     if let Some(server) = ipc_rpc::serve_parent(HasherServer::new(H))? {
//!         server.wait();
//!         return Ok(());
//!     }
//!     // In the parent: start this same program as the child.
//!     let cmd = std::process::Command::new(std::env::current_exe()?);
//!     let (hasher, mut child) = ipc_rpc::spawn_child::<HasherClient>(cmd)?;
//!     println!("{}", hasher.hash(b"abc".to_vec())?);
//!     drop(hasher); // the child sees end-of-file and exits
//!     child.wait()?;
//!     Ok(())
//! }
//! ```

use std::process::{Child, Command};
use std::sync::Arc;

use rpc_core::{Client, Dispatch, RpcError, RunningServer, ServeError, ServiceInfo};
use transports::{Endpoint, EndpointKind, PipeListener, PipeTransport};

use crate::server::ServerHandle;

/// Implemented by every generated `{Trait}Client`: what generic code (spawning,
/// pools) needs to make one from a connection.
pub trait ServiceClient: Clone + Send + Sync + Sized + 'static {
    /// The service's name and methods, with their structure and fingerprints.
    const SERVICE: &'static ServiceInfo;

    /// Wraps a connected, handshaken core client.
    fn from_client(client: Client) -> Self;
}

/// Spawns `cmd` as a child serving `C`'s service on an anonymous pipe pair (the child
/// calls [`serve_parent`]) and returns a connected client and the child.
///
/// The child's stdin, stdout and stderr are left as `cmd` says. When the client (all
/// its clones) is dropped the child sees end-of-file; if the child dies, calls return
/// `RpcError::Disconnected`. Reap the child with `wait`.
///
/// # Errors
///
/// `RpcError::Io` if the child cannot be spawned; the handshake's errors if the child
/// does not serve this service (the child is then killed and reaped).
pub fn spawn_child<C: ServiceClient>(cmd: Command) -> Result<(C, Child), RpcError> {
    spawn_child_with(cmd, &Endpoint::new(EndpointKind::Pipe))
}

/// [`spawn_child`] with the options of a `pipe` endpoint, e.g.
/// `pipe?max_frame=65536&max_in_flight=4`: the child's server ([`serve_parent`]) runs
/// with the same options.
///
/// # Errors
///
/// As [`spawn_child`].
pub fn spawn_child_with<C: ServiceClient>(
    cmd: Command,
    endpoint: &Endpoint,
) -> Result<(C, Child), RpcError> {
    let (child, transport) = spawn_pipe(cmd, endpoint)?;
    match Client::handshake(Box::new(transport), C::SERVICE) {
        Ok(client) => Ok((C::from_client(client), child)),
        Err(e) => {
            reap(child);
            Err(e)
        }
    }
}

/// Spawns `cmd` as a child on a pipe pair made for `endpoint`'s options.
pub(crate) fn spawn_pipe(
    cmd: Command,
    endpoint: &Endpoint,
) -> Result<(Child, PipeTransport), RpcError> {
    PipeTransport::spawn_for(cmd, endpoint).map_err(|e| match e {
        rpc_core::TransportError::Io { context, source } => RpcError::Io { context, source },
        other => RpcError::Connect {
            endpoint: endpoint.to_string(),
            source: other,
        },
    })
}

/// Kills and reaps a child whose handshake failed.
pub(crate) fn reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Connects a client of service `C` to the server at `endpoint`: the generated
/// `{Trait}Client::connect`, for generic code.
///
/// # Errors
///
/// As the generated `connect`.
pub fn connect<C: ServiceClient>(endpoint: &Endpoint) -> Result<C, RpcError> {
    crate::handshake::connect(endpoint, C::SERVICE).map(C::from_client)
}

/// In a child started by [`spawn_child`], serves `service` to the parent over the
/// inherited pipe pair and returns the handle; `None` in any other process.
///
/// [`ServerHandle::wait`] returns when the parent closes its end or exits, so a child
/// whose parent dies (even by `kill -9`) finishes instead of lingering.
///
/// # Errors
///
/// [`ServeError::Listen`] if the inherited descriptors are not usable pipes.
pub fn serve_parent<D: Dispatch>(service: D) -> Result<Option<ServerHandle>, ServeError> {
    let inherited = PipeTransport::inherited().map_err(|e| ServeError::listen("pipe", e))?;
    let Some(transport) = inherited else {
        return Ok(None);
    };
    let listener = PipeListener::from_transport(transport);
    let running = RunningServer::start(Box::new(listener), Arc::new(service))?;
    Ok(Some(ServerHandle::new(running)))
}
