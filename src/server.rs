//! `serve`: bind an endpoint and run a service on it in background threads.

use std::os::fd::AsFd;
use std::sync::Arc;

use rpc_core::{Dispatch, RunningServer, ServeError};

use transports::Endpoint;
use transports::signals::{Termination, Woken};

/// A running server. Dropping it shuts it down, like [`ServerHandle::shutdown`].
pub struct ServerHandle {
    running: RunningServer,
}

/// Binds `endpoint` and serves `service` (a generated `{Trait}Server`) on it in
/// background threads: an accept loop, a pool of worker threads that run calls, and
/// one thread that waits on every idle connection.
///
/// # Errors
///
/// [`ServeError::AddrInUse`] if a live server owns the endpoint; [`ServeError::Listen`]
/// for any other failure to bind (its source says why: missing directory,
/// unsupported mechanism, ...).
///
/// # Examples
///
/// ```
/// # use ipc_rpc::ipc_service;
/// # #[ipc_service] trait Ping { fn ping(&self); }
/// # struct P; impl Ping for P { fn ping(&self) {} }
/// let server = ipc_rpc::serve(&"tcp:127.0.0.1:0".parse().unwrap(), PingServer::new(P)).unwrap();
/// let taken = ipc_rpc::serve(&server.endpoint(), PingServer::new(P));
/// assert!(matches!(taken, Err(ipc_rpc::ServeError::AddrInUse { .. })));
/// ```
pub fn serve<D: Dispatch>(endpoint: &Endpoint, service: D) -> Result<ServerHandle, ServeError> {
    let listener =
        transports::listen(endpoint).map_err(|e| ServeError::listen(endpoint.to_string(), e))?;
    let running = RunningServer::start(listener, Arc::new(service))?;
    Ok(ServerHandle::new(running))
}

/// Removes what a server that died without shutting down (`kill -9`, a crash, a power
/// cut) left at `endpoint`: its socket file and lock file, FIFO directory, message
/// queues, shared-memory rendezvous. Refuses, and touches nothing, while a live server
/// holds the endpoint. `pipe` and `tcp:` leave nothing behind; for them it does
/// nothing. A server binding the endpoint does the same on its own: this is for a
/// dead server's objects that nobody is about to serve again.
///
/// # Errors
///
/// [`ServeError::AddrInUse`] while a live server owns the endpoint;
/// [`ServeError::Listen`] when its objects cannot be inspected or removed (the
/// source says why).
///
/// # Examples
///
/// ```
/// # use ipc_rpc::ipc_service;
/// # #[ipc_service] trait Ping { fn ping(&self); }
/// # struct P; impl Ping for P { fn ping(&self) {} }
/// let dir = std::env::temp_dir().join(format!("ipc-rpc-doc-cleanup-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let ep: ipc_rpc::Endpoint = format!("unix:{}/ping.sock", dir.display()).parse()?;
/// let server = ipc_rpc::serve(&ep, PingServer::new(P))?;
/// // A live server's endpoint is refused:
/// assert!(matches!(ipc_rpc::cleanup(&ep), Err(ipc_rpc::ServeError::AddrInUse { .. })));
/// server.shutdown();
/// ipc_rpc::cleanup(&ep)?; // nothing left: nothing to do
/// std::fs::remove_dir(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn cleanup(endpoint: &Endpoint) -> Result<(), ServeError> {
    transports::reclaim_stale(endpoint).map_err(|e| ServeError::listen(endpoint.to_string(), e))
}

impl ServerHandle {
    pub(crate) fn new(running: RunningServer) -> Self {
        ServerHandle { running }
    }

    /// The endpoint as bound: for `tcp:…:0`, the port the OS picked.
    pub fn endpoint(&self) -> Endpoint {
        self.running.endpoint().clone()
    }

    /// Number of client connections open now.
    pub fn connection_count(&self) -> usize {
        self.running.connection_count()
    }

    /// Stops accepting, lets calls in flight finish and send their replies for up to
    /// [`rpc_core::server::SHUTDOWN_GRACE`] (2 s), then ends the connections still
    /// blocked on a client (one that does not read its reply), waits up to
    /// [`rpc_core::server::ABORT_WAIT`] (1 s) more, and returns, having removed the
    /// endpoint's named objects (socket file, lock file). Handlers see
    /// [`crate::cancelled`] from the start; one that never returns is not waited for
    /// (it keeps its thread; its reply is discarded).
    pub fn shutdown(mut self) {
        self.running.shutdown();
    }

    /// [`ServerHandle::shutdown`] with a grace period of `grace` for calls in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ipc_rpc::ipc_service;
    /// # #[ipc_service] trait Ping { fn ping(&self); }
    /// # struct P; impl Ping for P { fn ping(&self) {} }
    /// let server = ipc_rpc::serve(&"tcp:127.0.0.1:0".parse().unwrap(), PingServer::new(P)).unwrap();
    /// server.shutdown_timeout(std::time::Duration::from_millis(100));
    /// ```
    pub fn shutdown_timeout(mut self, grace: std::time::Duration) {
        self.running.shutdown_timeout(grace);
    }

    /// Blocks while the server runs: until no more connections can come (a `pipe`
    /// server's one connection ended; a listener failed) and every connection ended.
    /// A socket server runs until the process is stopped.
    pub fn wait(self) {
        self.running.wait();
    }

    /// Serves until SIGTERM or SIGINT (Ctrl-C) arrives, then shuts down as
    /// [`ServerHandle::shutdown`] does (calls in flight finish, the endpoint's named
    /// objects are removed) and says which signal it was. It also returns, with
    /// [`Stopped::Finished`], when the server ends by itself: a `pipe` child's parent
    /// closed its end or died. What `main` of a server process calls last.
    ///
    /// It handles SIGTERM and SIGINT for the whole process while it waits; once one
    /// came, both are back to their default disposition, so a second Ctrl-C during a
    /// slow shutdown ends the process at once.
    ///
    /// # Errors
    ///
    /// When the signal handlers cannot be installed or the wait fails; the server is
    /// shut down in that case too.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ipc_rpc::ipc_service;
    /// # #[ipc_service] trait Ping { fn ping(&self); }
    /// # struct P; impl Ping for P { fn ping(&self) {} }
    /// let server = ipc_rpc::serve(&"unix:/tmp/ping.sock".parse()?, PingServer::new(P))?;
    /// let stopped = server.wait_for_signal()?;
    /// eprintln!("stopped: {stopped:?}"); // the socket file is gone
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for_signal(mut self) -> std::io::Result<Stopped> {
        let woken = wait_signal_or(self.running.finished_waiter());
        self.running.shutdown();
        match woken? {
            Woken::Signal(signal) => Ok(Stopped::Signal(signal.as_str())),
            Woken::Other => Ok(Stopped::Finished),
        }
    }
}

/// Why [`ServerHandle::wait_for_signal`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stopped {
    /// This signal came (`"SIGTERM"` or `"SIGINT"`); the server was shut down.
    Signal(&'static str),
    /// The server ended by itself (a `pipe` child's parent is gone).
    Finished,
}

/// Waits for SIGTERM or SIGINT, or for `finished` (run on a thread of its own) to
/// return.
fn wait_signal_or(finished: impl FnOnce() + Send + 'static) -> std::io::Result<Woken> {
    let termination = Termination::install()?;
    let (done, ended) = nix::unistd::pipe().map_err(std::io::Error::from)?;
    std::thread::Builder::new()
        .name("ipc-rpc wait".into())
        .spawn(move || {
            finished();
            // Closing the write end makes the read end readable (end of file).
            drop(ended);
        })?;
    termination.wait(Some(done.as_fd()))
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("endpoint", &self.running.endpoint().to_string())
            .finish_non_exhaustive()
    }
}
