//! A service in a child process over an anonymous pipe pair, called from async code
//! (feature `tokio`): [`spawn_child_async`] is [`spawn_child`](crate::spawn_child) for a
//! generated `{Trait}AsyncClient`.

use std::process::{Child, Command};
use std::sync::{Arc, Mutex, PoisonError};

use rpc_core::async_client::AsyncClient;
use rpc_core::{RpcError, ServiceInfo, Transport};
use transports::{Endpoint, EndpointKind};

use crate::child::{reap, spawn_pipe};

/// What a generated `{Trait}AsyncClient` implements, so that [`spawn_child_async`]
/// can make one.
pub trait AsyncServiceClient: Clone + Send + Sync + Sized + 'static {
    /// The service's name and methods, with their structure and fingerprints.
    const SERVICE: &'static ServiceInfo;

    /// Wraps a connected, handshaken core async client.
    fn from_async_client(client: AsyncClient) -> Self;
}

/// Spawns `cmd` as a child serving `C`'s service on an anonymous pipe pair (the child
/// calls [`serve_parent`](crate::serve_parent)) and returns a connected async client
/// and the child. The child is spawned and the handshake made on tokio's blocking
/// pool, so the calling task waits without blocking the runtime.
///
/// When the client (all its clones) is dropped the child sees end-of-file; if the
/// child dies, calls return `RpcError::Disconnected`. Reap the child with `wait`.
///
/// # Errors
///
/// As [`spawn_child`](crate::spawn_child): `RpcError::Io` if the child cannot be
/// spawned; the handshake's errors if the child does not serve this service (the
/// child is then killed and reaped).
///
/// # Examples
///
/// ```no_run
/// # use ipc_rpc::ipc_service;
/// # #[ipc_service] pub trait Worker { fn work(&self, n: u64) -> u64; }
/// # struct W; impl Worker for W { fn work(&self, n: u64) -> u64 { n } }
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     if let Some(server) = ipc_rpc::serve_parent(WorkerServer::new(W))? {
///         server.wait(); // the child: serve the parent until it leaves
///         return Ok(());
///     }
///     let me = std::process::Command::new(std::env::current_exe()?);
///     let (worker, mut child) = ipc_rpc::spawn_child_async::<WorkerAsyncClient>(me).await?;
///     assert_eq!(worker.work(7).await?, 7);
///     drop(worker);
///     child.wait()?;
///     Ok(())
/// }
/// ```
pub async fn spawn_child_async<C: AsyncServiceClient>(
    cmd: Command,
) -> Result<(C, Child), RpcError> {
    spawn_child_async_with(cmd, &Endpoint::new(EndpointKind::Pipe)).await
}

/// [`spawn_child_async`] with the options of a `pipe` endpoint (see
/// [`spawn_child_with`](crate::spawn_child_with)).
///
/// # Errors
///
/// As [`spawn_child_async`].
pub async fn spawn_child_async_with<C: AsyncServiceClient>(
    cmd: Command,
    endpoint: &Endpoint,
) -> Result<(C, Child), RpcError> {
    let spawned: Arc<Mutex<Option<Child>>> = Arc::default();
    let slot = spawned.clone();
    let endpoint = endpoint.clone();
    let connected = AsyncClient::connect_with(C::SERVICE, move || {
        let (child, transport) = spawn_pipe(cmd, &endpoint)?;
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(child);
        Ok(Box::new(transport) as Box<dyn Transport>)
    })
    .await;
    let child = spawned
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match (connected, child) {
        (Ok(client), Some(child)) => Ok((C::from_async_client(client), child)),
        (Err(e), child) => {
            if let Some(child) = child {
                reap(child);
            }
            Err(e)
        }
        (Ok(_), None) => Err(RpcError::Io {
            context: "spawning a pipe child".into(),
            source: std::io::Error::other("the connection was made without its child"),
        }),
    }
}
