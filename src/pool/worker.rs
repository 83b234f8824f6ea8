//! The worker side: one call at the top of `main`.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rpc_core::{Dispatch, Parts, RunningServer, ServeError, Transport, TransportError};
use transports::{Endpoint, EndpointKind, PipeListener, PipeTransport};

use super::link::{Report, WORKER_ENV};

/// How long a worker told to stop waits for its calls in flight before it exits anyway.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// In a process started by a [`Pool`](super::Pool), serves `service` to the pool until
/// the pool stops it or goes away, then exits the process; in any other process,
/// returns `Ok(())` at once.
///
/// Call it first thing in `main` (before anything with side effects), so a worker
/// does nothing but serve:
///
/// ```no_run
/// # use ipc_rpc::ipc_service;
/// # #[ipc_service] pub trait Hasher { fn hash(&self, data: Vec<u8>) -> u64; }
/// # struct H; impl Hasher for H { fn hash(&self, d: Vec<u8>) -> u64 { d.len() as u64 } }
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     ipc_rpc::pool::serve_if_worker(HasherServer::new(H))?; // a worker never gets past this
///     // ... the parent: build the pool and make calls
///     # Ok(())
/// }
/// ```
///
/// A worker exits with status 0 when the pool closes its link (shutdown, or the pool
/// process died, even by `kill -9`), after its calls in flight finish (at most 5 s
/// over a named endpoint) and its named objects are removed.
///
/// # Errors
///
/// Only in a worker that cannot serve (e.g. it cannot bind its endpoint, or its
/// mechanism is missing in this build): the error is reported to the pool, which
/// reports it in turn, and `main` should return it (`?`), ending the process.
pub fn serve_if_worker<D: Dispatch>(service: D) -> Result<(), ServeError> {
    let Ok(endpoint) = std::env::var(WORKER_ENV) else {
        return Ok(());
    };
    // `None` in a process that inherited the variable from a grandparent.
    let inherited = PipeTransport::inherited().map_err(|e| ServeError::listen("pipe", e))?;
    let Some(link) = inherited else {
        return Ok(());
    };
    let endpoint: Endpoint = endpoint.parse().map_err(|e: transports::EndpointError| {
        ServeError::listen(
            endpoint.clone(),
            TransportError::Io {
                context: format!("{WORKER_ENV}={endpoint} is not an endpoint"),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            },
        )
    })?;
    if matches!(endpoint.kind(), EndpointKind::Pipe) {
        let listener = PipeListener::from_transport(link);
        RunningServer::start(Box::new(listener), Arc::new(service))?.wait();
        std::process::exit(0);
    }
    serve_named(&endpoint, link, service)
}

/// Serves on the worker's own endpoint and holds its link to the pool until it closes.
fn serve_named<D: Dispatch>(
    endpoint: &Endpoint,
    link: PipeTransport,
    service: D,
) -> Result<(), ServeError> {
    let Parts {
        mut sender,
        mut receiver,
        closer: _,
    } = Box::new(link)
        .split()
        .map_err(|e| ServeError::listen("pipe", e))?;
    let server = match crate::serve(endpoint, service) {
        Ok(server) => server,
        Err(e) => {
            let _ = sender.send(&Report::from_serve_error(&e).encode());
            return Err(e);
        }
    };
    if sender
        .send(&Report::Ready(server.endpoint().to_string()).encode())
        .is_ok()
    {
        // The pool never writes: this returns at end-of-file, when it stops us or dies.
        while receiver.recv(None).is_ok() {}
    }
    // A handler that never returns must not keep an orphan alive.
    thread::spawn(|| {
        thread::sleep(EXIT_GRACE);
        std::process::exit(0);
    });
    server.shutdown();
    std::process::exit(0);
}
