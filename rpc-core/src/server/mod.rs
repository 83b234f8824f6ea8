//! The server: an accept loop (`accept`), per connection a session whose reader runs
//! the calls it reads (`session` says who runs what), a bounded thread pool (`threads`),
//! a poller where idle connections wait without a thread (`poller`), and a watcher that
//! relieves calls that run long (`watch`).
//!
//! A call runs on the thread that read it: no hand-off. Calls of one connection that
//! overlap run at once, up to `max_in_flight`; a slow call does not hold up the calls
//! behind it. A panicking handler becomes `RemoteError::Panic` for that caller only; a
//! frame that is not a valid request ends that connection only.
//!
//! Inside a handler, [`current_peer`], [`deadline`] and [`cancelled`] describe the call.

mod accept;
mod alarm;
mod call;
mod config;
mod context;
mod handshake;
mod poller;
mod session;
mod table;
mod threads;
mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::dispatch::Dispatch;
use crate::endpoint::Endpoint;
use crate::error::{ServeError, TransportError};
use crate::transport::{Closer, Listener};

use accept::Accept;
use alarm::Alarm;
pub use config::ServerConfig;
pub use context::{cancelled, current_peer, deadline};
pub use handshake::{HANDSHAKE_MAX_FRAME, HANDSHAKE_TIMEOUT};
use poller::Poller;
use session::Session;
use table::Registry;
use threads::Threads;

/// How long [`RunningServer::shutdown`] lets calls in flight finish and write their
/// replies before it aborts the connections still open (a client that leaves a large
/// reply unread would otherwise hold the shutdown for ever).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// After the grace period, how long a shutdown waits for aborted connections to end
/// before it returns anyway (a handler that never returns keeps its thread).
pub const ABORT_WAIT: Duration = Duration::from_secs(1);

pub use crate::limits::{
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_WORKERS, default_workers,
};

/// Pause after a failed `accept` (e.g. out of file descriptors) before the next try.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// A running server: accept loop, connections, the thread pool that runs their calls.
///
/// Dropping it shuts it down (see [`RunningServer::shutdown`]).
pub struct RunningServer {
    endpoint: Endpoint,
    stopping: Arc<AtomicBool>,
    listener_closer: Box<dyn Closer>,
    accept_thread: Option<JoinHandle<()>>,
    watcher: Option<JoinHandle<()>>,
    poller: Arc<Poller>,
    threads: Threads,
    registry: Arc<Registry>,
    /// `shutdown` ran: a second one (e.g. on drop) returns at once.
    shut_down: bool,
}

impl RunningServer {
    /// Starts serving `dispatch` on `listener` in background threads, configured by the
    /// options of the listener's endpoint ([`ServerConfig::from_endpoint`]).
    ///
    /// # Errors
    ///
    /// [`ServeError::Listen`] if the listener's wake-up handle cannot be made,
    /// [`ServeError::Thread`] if the accept thread cannot start.
    ///
    /// # Examples
    ///
    /// See the facade's `ipc_rpc::serve`, which binds the listener from an endpoint.
    pub fn start(
        listener: Box<dyn Listener>,
        dispatch: Arc<dyn Dispatch>,
    ) -> Result<Self, ServeError> {
        let config = ServerConfig::from_endpoint(&listener.local_endpoint());
        Self::start_with(listener, dispatch, config)
    }

    /// [`RunningServer::start`] with a configuration.
    ///
    /// # Errors
    ///
    /// As [`RunningServer::start`].
    pub fn start_with(
        mut listener: Box<dyn Listener>,
        dispatch: Arc<dyn Dispatch>,
        config: ServerConfig,
    ) -> Result<Self, ServeError> {
        let endpoint = listener.local_endpoint();
        let listener_closer = listener
            .closer()
            .map_err(|e| ServeError::listen(endpoint.to_string(), e))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let registry = Arc::new(Registry::default());
        let alarm = Arc::new(Alarm::default());
        let watcher = {
            let registry = Arc::downgrade(&registry);
            let alarm = alarm.clone();
            let stopping = stopping.clone();
            thread::Builder::new()
                .name(format!("ipc-rpc watch {endpoint}"))
                .spawn(move || watch::watch(&registry, &alarm, &stopping))
                .map_err(ServeError::Thread)?
        };
        alarm.set_watcher(watcher.thread().clone());
        let poller =
            Poller::start(format!("ipc-rpc poll {endpoint}")).map_err(ServeError::Thread)?;
        let threads = Threads::new(
            format!("ipc-rpc {endpoint}"),
            config.workers.max(1),
            config.max_workers,
        );
        let accept_thread = {
            let stopping = stopping.clone();
            let accept = Arc::new(Accept {
                threads: threads.clone(),
                registry: registry.clone(),
                dispatch,
                alarm: alarm.clone(),
                poller: poller.clone(),
                config,
            });
            thread::Builder::new()
                .name(format!("ipc-rpc accept {endpoint}"))
                .spawn(move || {
                    while !stopping.load(Ordering::Acquire) {
                        match listener.accept() {
                            Ok(transport) => accept.open(transport),
                            Err(TransportError::Closed) => break,
                            Err(_) => thread::sleep(ACCEPT_BACKOFF),
                        }
                    }
                    // The listener drops here, removing its named objects.
                    drop(listener);
                    accept.registry.end_accepting();
                })
                .map_err(ServeError::Thread)?
        };
        Ok(RunningServer {
            endpoint,
            stopping,
            listener_closer,
            accept_thread: Some(accept_thread),
            watcher: Some(watcher),
            poller,
            threads,
            registry,
            shut_down: false,
        })
    }

    /// A wait, for another thread, that returns once this server runs no more: its
    /// accept loop ended (a `pipe` server's one connection closed, a listener failed,
    /// or shutdown) and every connection ended.
    pub fn finished_waiter(&self) -> impl FnOnce() + Send + 'static {
        let registry = self.registry.clone();
        move || registry.wait_finished()
    }

    /// The endpoint as bound (the listener's [`Listener::local_endpoint`]).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Number of connections currently open.
    pub fn connection_count(&self) -> usize {
        self.registry.lock().sessions.len()
    }

    /// Stops accepting, lets calls in flight finish and send their replies for up to
    /// [`SHUTDOWN_GRACE`], then aborts the connections still open (a send blocked on a
    /// client that does not read fails) and waits [`ABORT_WAIT`] more for them to end,
    /// then returns. The listener's named objects are removed. Idempotent.
    ///
    /// Handlers see [`cancelled`] from the start of the shutdown. A handler still
    /// running at the end is not waited for: it keeps its thread, and its reply is
    /// discarded; its connection's objects go when it returns.
    pub fn shutdown(&mut self) {
        self.shutdown_timeout(SHUTDOWN_GRACE);
    }

    /// [`RunningServer::shutdown`] with a grace period of `grace`.
    pub fn shutdown_timeout(&mut self, grace: Duration) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        if let Some(accept_thread) = self.accept_thread.take() {
            self.stopping.store(true, Ordering::Release);
            self.listener_closer.close();
            let _ = accept_thread.join();
        }
        // Set-ups and refusals waiting in the poller end; parked connections are
        // closed below like the others.
        self.poller.stop();
        self.close_connections(grace);
        self.stop_watcher();
        // The pool's kept threads end once idle (a handler that never returns keeps
        // its thread).
        self.threads.stop();
    }

    /// Blocks until the accept loop ends (a single-connection listener such as an
    /// inherited pipe has no more to give, or the listener failed) and every open
    /// connection has ended by itself.
    pub fn wait(mut self) {
        if let Some(accept_thread) = self.accept_thread.take() {
            let _ = accept_thread.join();
        }
        self.registry.wait_empty(None);
    }

    fn close_connections(&mut self, grace: Duration) {
        let sessions: Vec<Arc<Session>> = {
            let mut table = self.registry.lock();
            table.shutting_down = true;
            table.sessions.values().cloned().collect()
        };
        for session in &sessions {
            session.close();
        }
        // Connections still in set-up see `shutting_down` when it ends and close.
        if self.registry.wait_empty(Some(Instant::now() + grace)) {
            return;
        }
        // Past the grace period: whatever still runs is blocked on a client (or in a
        // handler): end its sends too.
        let sessions: Vec<Arc<Session>> = self.registry.lock().sessions.values().cloned().collect();
        for session in &sessions {
            session.abort();
        }
        if self.registry.wait_empty(Some(Instant::now() + ABORT_WAIT)) {
            return;
        }
        // Handlers that do not return keep their connections: take those away from
        // them, so that their clients see the end and their OS objects go.
        let sessions: Vec<Arc<Session>> = self.registry.lock().sessions.values().cloned().collect();
        for session in &sessions {
            session.dispose();
        }
    }

    fn stop_watcher(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            self.stopping.store(true, Ordering::Release);
            watcher.thread().unpark();
            let _ = watcher.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
