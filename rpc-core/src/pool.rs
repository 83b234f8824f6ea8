//! Worker pools: one [`Client`] whose calls are spread over many servers, with dead
//! servers replaced.
//!
//! This module knows nothing of processes or transports. Whoever builds a pool (the
//! `ipc-rpc` facade, which spawns processes) hands it the workers it started and a
//! closure that starts one more; each worker is a connected single-connection
//! [`Client`] plus a [`WorkerHandle`] to wait for, stop and kill whatever serves it.
//!
//! ```text
//!  Pool::client() ─▶ Client ─▶ Router ── lease: the live worker with the fewest calls in flight
//!                                 │
//!            one supervising thread per slot: publish ─▶ handle.wait() ─▶ retire ─▶ (back off) ─▶ start again
//! ```
//!
//! Contract:
//! - a call goes to a live worker with the fewest calls in flight (ties: the lowest
//!   index); while no worker is live it waits for one, up to the call's deadline;
//! - a call that never reached its worker (the worker's connection was already
//!   closed, or writing the request failed: the worker died before the pool noticed)
//!   is routed to another worker; a call in flight (its request written) on a worker
//!   that dies returns `RpcError::Disconnected` naming the worker; other calls go on
//!   (a request written whole into a dead worker's buffers, e.g. a TCP socket's or a
//!   pipe's just before its reader died, counts as in flight: nothing tells it apart);
//! - a worker that ends is replaced at once; a start that fails, or a worker that
//!   ends within [`PoolConfig::min_uptime`], counts as a failure: the next start
//!   waits [`PoolConfig::backoff`], doubling up to [`PoolConfig::max_backoff`], and
//!   after [`PoolConfig::max_start_failures`] failures in a row the slot gives up; once
//!   every slot gave up, calls return `RpcError::PoolUnavailable` with the last error;
//! - [`Pool::shutdown`] (or drop) takes no more calls, drops the pool's connections
//!   and asks every worker to stop, waits [`PoolConfig::grace`] for calls in flight to
//!   finish, kills the workers still running, and returns once every worker ended.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::client::{Client, Request, SendError, Shared};
use crate::codec::{FrameBuf, Payload};
use crate::dispatch::ServiceInfo;
use crate::error::{BoxError, CodecError, RpcError, chain};

/// Which worker a start is for: its slot, and how many starts that slot had before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerId {
    /// The slot, `0..workers`.
    pub index: usize,
    /// Starts of this slot before this one (0 for its first worker).
    pub generation: u64,
}

/// What the pool needs of whatever serves a worker's connection (a child process).
pub trait WorkerHandle: Send + Sync {
    /// The worker's process id, if it is a process.
    fn pid(&self) -> Option<u32>;

    /// Blocks until the worker has ended (by itself, after [`request_stop`] or
    /// [`kill`]) and what it held is released (a process is reaped); returns how it
    /// ended as a phrase after "the worker", e.g. `exited with status 3`. The pool
    /// calls it exactly once per worker.
    ///
    /// [`request_stop`]: WorkerHandle::request_stop
    /// [`kill`]: WorkerHandle::kill
    fn wait(&self) -> String;

    /// Asks the worker to finish its calls in flight and end; returns at once.
    fn request_stop(&self);

    /// Ends the worker now; returns at once. Harmless once it has ended.
    fn kill(&self);
}

/// A started worker: a connected, handshaken single-connection client, and its handle.
pub struct NewWorker {
    /// The connection to the worker (from `Client::handshake`).
    pub client: Client,
    /// What serves that connection.
    pub handle: Arc<dyn WorkerHandle>,
}

/// Starts one more worker for a slot; called by the pool's supervising threads.
pub type StartWorker = Box<dyn Fn(WorkerId) -> Result<NewWorker, BoxError> + Send + Sync>;

/// How a pool supervises its workers.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Failed starts in a row after which a slot is given up. Default 5.
    pub max_start_failures: u32,
    /// Wait before the start after a failure; doubles per further failure. Default 50 ms.
    pub backoff: Duration,
    /// Longest wait between starts. Default 5 s.
    pub max_backoff: Duration,
    /// A worker that ends sooner than this after it was started counts as a failed
    /// start. Default 1 s.
    pub min_uptime: Duration,
    /// How long shutdown waits for workers to finish their calls before killing them.
    /// Default 2 s.
    pub grace: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_start_failures: 5,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            min_uptime: Duration::from_secs(1),
            grace: Duration::from_secs(2),
        }
    }
}

impl PoolConfig {
    /// The wait before the next start after `failures` failures in a row.
    fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// Where a slot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerState {
    /// Taking calls.
    Live,
    /// A worker is being started.
    Starting,
    /// The worker ended; the next start waits for its back-off.
    Restarting,
    /// Starts failed [`PoolConfig::max_start_failures`] times in a row; no more tries.
    GaveUp,
    /// The pool shut down.
    Stopped,
}

/// A snapshot of one slot of a pool.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerStatus {
    /// The slot, `0..workers`.
    pub index: usize,
    /// Where the slot is in its life.
    pub state: WorkerState,
    /// The current worker's process id, if it has one.
    pub pid: Option<u32>,
    /// Calls in flight on the current worker.
    pub in_flight: usize,
    /// Workers this slot started (or tried to), the first one included.
    pub starts: u64,
    /// Why the last start failed or the last worker ended early, if one did.
    pub last_error: Option<String>,
}

/// A pool of workers serving one service, and the threads supervising them.
///
/// Dropping it shuts it down, like [`Pool::shutdown`].
pub struct Pool {
    router: Arc<Router>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Supervises `workers` (already started and connected), starting replacements
    /// with `start`, and returns the pool.
    ///
    /// # Errors
    ///
    /// The OS error if a supervising thread cannot be started; every worker is then
    /// stopped.
    ///
    /// # Panics
    ///
    /// If `workers` is empty, or one of them is not a single-connection client (a
    /// pool's own client cannot be a worker).
    ///
    /// # Examples
    ///
    /// See the facade's `ipc_rpc::pool::Pool`, which spawns worker processes.
    pub fn start(
        workers: Vec<NewWorker>,
        start: StartWorker,
        config: PoolConfig,
    ) -> Result<Pool, std::io::Error> {
        assert!(!workers.is_empty(), "a pool needs at least one worker");
        assert!(
            workers.iter().all(|w| w.client.connection().is_some()),
            "a pool's workers must be single-connection clients"
        );
        let service = workers[0].client.service();
        let router = Arc::new(Router {
            peer: format!("worker pool of `{}`", service.name),
            service,
            start,
            config,
            state: Mutex::new(State {
                slots: (0..workers.len()).map(|_| Slot::new()).collect(),
                stopping: false,
                killing: false,
            }),
            changed: Condvar::new(),
        });
        let mut pool = Pool {
            router: router.clone(),
            threads: Vec::with_capacity(workers.len()),
        };
        let mut workers = workers.into_iter().enumerate();
        while let Some((index, worker)) = workers.next() {
            // Published before its thread runs, so the pool is usable on return.
            router.publish(index, &worker);
            let supervisor = router.clone();
            let handle = worker.handle.clone();
            let spawned = thread::Builder::new()
                .name(format!("ipc-rpc pool worker {index}"))
                .spawn(move || supervisor.supervise(index, worker));
            match spawned {
                Ok(thread) => pool.threads.push(thread),
                Err(e) => {
                    {
                        let mut state = router.lock();
                        for slot in &mut state.slots[index..] {
                            *slot = Slot::new();
                            slot.state = WorkerState::Stopped;
                        }
                    }
                    for h in std::iter::once(handle).chain(workers.map(|(_, w)| w.handle)) {
                        h.kill();
                        h.wait();
                    }
                    pool.shutdown();
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    /// A client whose calls are routed over the pool's live workers.
    pub fn client(&self) -> Client {
        Client::over_pool(self.router.clone())
    }

    /// A snapshot of every slot.
    pub fn status(&self) -> Vec<WorkerStatus> {
        let state = self.router.lock();
        state
            .slots
            .iter()
            .enumerate()
            .map(|(index, slot)| WorkerStatus {
                index,
                state: slot.state,
                pid: slot.handle.as_ref().and_then(|h| h.pid()),
                in_flight: slot
                    .live
                    .as_ref()
                    .map_or(0, |l| l.in_flight.load(Ordering::Relaxed)),
                starts: slot.starts,
                last_error: slot.last_error.as_deref().map(str::to_owned),
            })
            .collect()
    }

    /// Stops the pool: takes no more calls, asks every worker to stop, waits up to
    /// [`PoolConfig::grace`] for them to finish their calls, kills the rest, and returns
    /// once every worker ended. Idempotent.
    pub fn shutdown(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        let router = &*self.router;
        let handles: Vec<_> = {
            let mut state = router.lock();
            state.stopping = true;
            // Dropping the connections ends the workers whose connection is their
            // only link (pipes) once the calls in flight on them finish.
            state.slots.iter_mut().for_each(|s| s.live = None);
            router.changed.notify_all();
            state
                .slots
                .iter()
                .filter_map(|s| s.handle.clone())
                .collect()
        };
        for h in &handles {
            h.request_stop();
        }
        let deadline = Instant::now() + router.config.grace;
        let stubborn: Vec<_> = {
            let mut state = router.lock();
            while !state.all_ended() {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                state = router
                    .changed
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            state.killing = true;
            state
                .slots
                .iter()
                .filter_map(|s| s.handle.clone())
                .collect()
        };
        for h in stubborn {
            h.kill();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("service", &self.router.service.name)
            .field("workers", &self.status())
            .finish()
    }
}

/// What a pool client's calls go through, shared with the supervising threads.
pub(crate) struct Router {
    peer: String,
    service: &'static ServiceInfo,
    start: StartWorker,
    config: PoolConfig,
    state: Mutex<State>,
    /// Signalled when a worker goes live or ends, a slot gives up or stops, and at
    /// shutdown.
    changed: Condvar,
}

struct State {
    slots: Vec<Slot>,
    stopping: bool,
    /// Shutdown's grace period is over: a worker published from now on is killed.
    killing: bool,
}

impl State {
    fn all_ended(&self) -> bool {
        self.slots
            .iter()
            .all(|s| matches!(s.state, WorkerState::Stopped | WorkerState::GaveUp))
    }
}

struct Slot {
    /// The worker taking calls.
    live: Option<Arc<Live>>,
    /// The current worker until it ended: live, or being stopped.
    handle: Option<Arc<dyn WorkerHandle>>,
    state: WorkerState,
    starts: u64,
    failures: u32,
    last_error: Option<Arc<str>>,
}

impl Slot {
    fn new() -> Self {
        Slot {
            live: None,
            handle: None,
            state: WorkerState::Starting,
            starts: 1,
            failures: 0,
            last_error: None,
        }
    }
}

/// A worker taking calls.
struct Live {
    conn: Arc<Shared>,
    /// Calls leased to this worker. Only a routing hint, read and raised under the
    /// router's lock and lowered without it: Relaxed is enough.
    in_flight: AtomicUsize,
    index: usize,
    /// `pool worker 2 (pid 1234)`, the peer in its errors.
    label: Arc<str>,
}

/// A call's hold on a worker: counted in its calls in flight until dropped.
struct Lease {
    live: Arc<Live>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.live.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Router {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    pub(crate) fn service(&self) -> &'static ServiceInfo {
        self.service
    }

    pub(crate) fn is_closed(&self) -> bool {
        let state = self.lock();
        state.stopping || state.slots.iter().all(|s| s.state == WorkerState::GaveUp)
    }

    /// One call over the least-busy live worker.
    pub(crate) fn call<R>(
        &self,
        request: Request<impl Fn(&mut FrameBuf<'_>) -> Result<(), CodecError>>,
        decode: impl FnOnce(Payload<'_>) -> Result<R, CodecError>,
        deadline: Option<Instant>,
    ) -> Result<R, RpcError> {
        let mut request = request;
        loop {
            let lease = self.lease(deadline)?;
            let conn = &*lease.live.conn;
            let Ok(mut call) = conn.register() else {
                // The worker is gone and nothing was sent: another one takes the call.
                self.retire(&lease.live);
                continue;
            };
            match conn.send_request(&mut call, request, deadline) {
                Ok(()) => {}
                // The worker died before the pool noticed; the request did not reach
                // it (not whole, so it cannot have run): another one takes the call.
                Err(SendError::Undelivered(_, unsent)) => {
                    drop(call);
                    self.retire(&lease.live);
                    request = unsent;
                    continue;
                }
                Err(SendError::Refused(e)) => return Err(e),
            }
            let result = conn.wait_reply(&mut call, decode, deadline);
            drop(call);
            return match result {
                Err(e) if conn.is_closed() => Err(self.worker_lost(&lease.live, e)),
                other => other,
            };
        }
    }

    /// Takes the live worker with the fewest calls in flight, waiting for one while
    /// none is live.
    fn lease(&self, deadline: Option<Instant>) -> Result<Lease, RpcError> {
        let mut state = self.lock();
        loop {
            if state.stopping {
                return Err(self.unavailable(
                    "the pool was shut down; start a new pool to make more calls".into(),
                ));
            }
            let least_busy = state
                .slots
                .iter()
                .filter_map(|s| s.live.as_ref())
                .min_by_key(|l| l.in_flight.load(Ordering::Relaxed));
            if let Some(live) = least_busy {
                live.in_flight.fetch_add(1, Ordering::Relaxed);
                return Ok(Lease { live: live.clone() });
            }
            if state.slots.iter().all(|s| s.state == WorkerState::GaveUp) {
                let last = state
                    .slots
                    .iter()
                    .rev()
                    .find_map(|s| s.last_error.clone())
                    .unwrap_or_else(|| "unknown".into());
                return Err(self.unavailable(format!(
                    "no worker is running: every worker failed to start {} times in a row, \
                     the last with: {last}; fix the worker and start a new pool",
                    self.config.max_start_failures
                )));
            }
            state = match deadline {
                None => self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(RpcError::Timeout {
                            peer: self.peer.as_str().into(),
                            after: Duration::ZERO,
                        });
                    }
                    self.changed
                        .wait_timeout(state, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    fn unavailable(&self, reason: String) -> RpcError {
        RpcError::PoolUnavailable {
            pool: self.peer.as_str().into(),
            reason: reason.into(),
        }
    }

    /// Takes a worker whose connection closed out of the routing, and makes sure it
    /// ends (its supervising thread then starts a replacement).
    fn retire(&self, live: &Arc<Live>) {
        let handle = {
            let mut state = self.lock();
            let slot = &mut state.slots[live.index];
            if !slot.live.as_ref().is_some_and(|l| Arc::ptr_eq(l, live)) {
                return;
            }
            slot.live = None;
            slot.handle.clone()
        };
        // A worker whose connection broke but which still runs would never be replaced.
        if let Some(h) = handle {
            h.kill();
        }
    }

    /// The error of a call whose worker's connection closed under it.
    fn worker_lost(&self, live: &Arc<Live>, error: RpcError) -> RpcError {
        self.retire(live);
        let RpcError::Disconnected { reason, .. } = error else {
            return error;
        };
        let next = if self.lock().stopping {
            "the pool is shutting down"
        } else {
            "the pool starts a replacement: retry the call if running it twice is safe"
        };
        RpcError::Disconnected {
            peer: live.label.clone(),
            reason: format!("{reason}; {next}").into(),
        }
    }

    /// Makes `worker` the slot's current worker, taking calls unless the pool stops.
    fn publish(&self, index: usize, worker: &NewWorker) {
        let handle = worker.handle.clone();
        let label: Arc<str> = match handle.pid() {
            Some(pid) => format!("pool worker {index} (pid {pid})").into(),
            None => format!("pool worker {index}").into(),
        };
        let conn = worker
            .client
            .connection()
            .expect("checked when the worker was started")
            .clone();
        let mut state = self.lock();
        let (stopping, killing) = (state.stopping, state.killing);
        let slot = &mut state.slots[index];
        slot.handle = Some(handle.clone());
        if stopping {
            drop(state);
            handle.request_stop();
            if killing {
                handle.kill();
            }
            return;
        }
        slot.state = WorkerState::Live;
        slot.live = Some(Arc::new(Live {
            conn,
            in_flight: AtomicUsize::new(0),
            index,
            label,
        }));
        self.changed.notify_all();
    }

    /// A slot's supervising thread: waits for its worker to end, then starts the next,
    /// until the pool stops or the slot gives up.
    fn supervise(&self, index: usize, first: NewWorker) {
        let mut worker = first;
        let mut generation = 0;
        loop {
            let started = Instant::now();
            let handle = worker.handle.clone();
            drop(worker);
            let how = handle.wait();
            let early = started.elapsed() < self.config.min_uptime;
            let label = match handle.pid() {
                Some(pid) => format!("worker {index} (pid {pid})"),
                None => format!("worker {index}"),
            };
            let reason = format!("{label} {how}");
            let ended = {
                let mut state = self.lock();
                let slot = &mut state.slots[index];
                slot.handle = None;
                let live = slot.live.take();
                if early {
                    slot.failures += 1;
                    slot.last_error =
                        Some(format!("{reason} {:?} after it started", started.elapsed()).into());
                } else {
                    slot.failures = 0;
                }
                slot.state = WorkerState::Restarting;
                self.changed.notify_all();
                live
            };
            if let Some(live) = ended {
                live.conn.shut(format!("the {reason}").into());
            }
            worker = loop {
                if !self.wait_to_start(index) {
                    return;
                }
                generation += 1;
                let started = (self.start)(WorkerId { index, generation }).and_then(|w| {
                    if w.client.connection().is_some() {
                        Ok(w)
                    } else {
                        Err("a worker's client must be a single connection".into())
                    }
                });
                match started {
                    Ok(w) => {
                        self.publish(index, &w);
                        break w;
                    }
                    Err(e) => {
                        let mut state = self.lock();
                        let slot = &mut state.slots[index];
                        slot.failures += 1;
                        slot.last_error = Some(chain(&*e).into());
                        slot.state = WorkerState::Restarting;
                    }
                }
            };
        }
    }

    /// Waits out the slot's back-off; `false` if the pool stops or the slot gives up
    /// (the thread then ends).
    fn wait_to_start(&self, index: usize) -> bool {
        let mut state = self.lock();
        let failures = state.slots[index].failures;
        let until = Instant::now() + self.config.delay(failures);
        loop {
            if state.stopping {
                state.slots[index].state = WorkerState::Stopped;
                self.changed.notify_all();
                return false;
            }
            if failures >= self.config.max_start_failures {
                state.slots[index].state = WorkerState::GaveUp;
                self.changed.notify_all();
                return false;
            }
            let now = Instant::now();
            if failures == 0 || now >= until {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let slot = &mut state.slots[index];
        slot.state = WorkerState::Starting;
        slot.starts += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_frame;
    use crate::dispatch::{Dispatch, DispatchError, Reply};
    use crate::server::RunningServer;
    use crate::transport::mem::{self, MemTransport};
    use crate::transport::{Closer, Listener, Transport};
    use crate::{ServeError, TransportError};
    use std::sync::Barrier;
    use std::sync::atomic::AtomicU64;

    static INFO: ServiceInfo = ServiceInfo {
        name: "Nap",
        fingerprint: 42,
        methods: &["nap"],
    };

    /// Sleeps the given milliseconds, then answers with its worker number; counts
    /// the calls it is running.
    struct Nap(u64, Arc<AtomicUsize>);

    impl Dispatch for Nap {
        fn info(&self) -> &'static ServiceInfo {
            &INFO
        }

        fn dispatch(
            &self,
            _method: u16,
            mut args: Payload<'_>,
            reply: &mut Reply<'_>,
        ) -> Result<(), DispatchError> {
            let ms: u64 = args
                .decode_prefix("ms")
                .map_err(DispatchError::BadArguments)?;
            self.1.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(ms));
            self.1.fetch_sub(1, Ordering::SeqCst);
            reply.send_ok(&self.0)
        }
    }

    fn nap(client: &Client, ms: u64) -> Result<u64, RpcError> {
        client.call(0, |buf| encode_frame(&ms, buf, "ms"))
    }

    struct OneShot(Option<MemTransport>);

    struct NoWake;

    impl Closer for NoWake {
        fn close(&self) {}
    }

    impl Listener for OneShot {
        fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
            self.0
                .take()
                .map(|t| Box::new(t) as Box<dyn Transport>)
                .ok_or(TransportError::Closed)
        }
        fn closer(&self) -> Result<Box<dyn Closer>, TransportError> {
            Ok(Box::new(NoWake))
        }
        fn local_endpoint(&self) -> String {
            "mem".into()
        }
    }

    /// A worker in a thread: `kill` breaks its connection at once, `request_stop`
    /// lets it finish; `stubborn` ignores `request_stop`.
    struct Fake {
        ended: Mutex<Option<&'static str>>,
        cv: Condvar,
        server: Mutex<Option<RunningServer>>,
        conn: Arc<Shared>,
        stubborn: bool,
        running: Arc<AtomicUsize>,
    }

    impl Fake {
        fn end(&self, how: &'static str) {
            let mut ended = self.ended.lock().unwrap();
            ended.get_or_insert(how);
            self.cv.notify_all();
        }
    }

    impl WorkerHandle for Fake {
        fn pid(&self) -> Option<u32> {
            None
        }
        fn wait(&self) -> String {
            let how = {
                let mut ended = self.ended.lock().unwrap();
                while ended.is_none() {
                    ended = self.cv.wait(ended).unwrap();
                }
                ended.unwrap()
            };
            if let Some(mut server) = self.server.lock().unwrap().take() {
                server.shutdown();
            }
            how.into()
        }
        fn request_stop(&self) {
            if !self.stubborn {
                self.end("stopped");
            }
        }
        fn kill(&self) {
            self.conn.shut("killed".into());
            self.end("was killed");
        }
    }

    fn fake(id: u64, stubborn: bool) -> Result<(NewWorker, Arc<Fake>), ServeError> {
        let (client_end, server_end) = mem::pair();
        let running = Arc::new(AtomicUsize::new(0));
        let service = Arc::new(Nap(id, running.clone()));
        let server = RunningServer::start(Box::new(OneShot(Some(server_end))), service)?;
        let client = Client::handshake(Box::new(client_end), &INFO).unwrap();
        let handle = Arc::new(Fake {
            ended: Mutex::new(None),
            cv: Condvar::new(),
            server: Mutex::new(Some(server)),
            conn: client.connection().unwrap().clone(),
            stubborn,
            running,
        });
        Ok((
            NewWorker {
                client,
                handle: handle.clone(),
            },
            handle,
        ))
    }

    /// A pool of `n` fakes; replacements are numbered from 100 on.
    fn pool(n: u64, config: PoolConfig) -> (Pool, Vec<Arc<Fake>>) {
        let (workers, fakes) = (0..n).map(|i| fake(i, false).unwrap()).unzip();
        let next = AtomicU64::new(100);
        let start: StartWorker =
            Box::new(move |_| Ok(fake(next.fetch_add(1, Ordering::Relaxed), false)?.0));
        (Pool::start(workers, start, config).unwrap(), fakes)
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn concurrent_calls_go_to_distinct_workers() {
        let (pool, _) = pool(3, PoolConfig::default());
        let client = pool.client();
        let barrier = Arc::new(Barrier::new(3));
        let ids: Vec<u64> = (0..3)
            .map(|_| {
                let (client, barrier) = (client.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    nap(&client, 200).unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2], "{ids:?}");
        // Idle again: a lone call goes to the lowest slot.
        assert_eq!(nap(&client, 0).unwrap(), 0);
    }

    #[test]
    fn a_killed_worker_fails_its_calls_and_is_replaced() {
        let (pool, fakes) = pool(2, PoolConfig::default());
        let client = pool.client();
        let in_flight = {
            let client = client.clone();
            thread::spawn(move || nap(&client, 300))
        };
        wait_for("the call to run", || {
            fakes[0].running.load(Ordering::SeqCst) == 1
        });
        // The other worker goes on serving meanwhile.
        assert_eq!(nap(&client, 0).unwrap(), 1);
        fakes[0].kill();
        let err = in_flight.join().unwrap().unwrap_err();
        match &err {
            RpcError::Disconnected { peer, reason } => {
                assert_eq!(&**peer, "pool worker 0");
                assert!(reason.contains("replacement"), "{reason}");
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
        wait_for("the replacement", || {
            let s = &pool.status()[0];
            s.state == WorkerState::Live && s.starts == 2
        });
        let mut seen: Vec<u64> = (0..20).map(|_| nap(&client, 0).unwrap()).collect();
        seen.dedup();
        assert_eq!(seen, [100]);
    }

    #[test]
    fn failing_starts_back_off_then_give_up() {
        let config = PoolConfig {
            max_start_failures: 3,
            backoff: Duration::from_millis(40),
            min_uptime: Duration::from_secs(60),
            ..PoolConfig::default()
        };
        let (first, fake0) = fake(0, false).unwrap();
        let start: StartWorker = Box::new(|_| Err("the worker binary is missing".into()));
        let pool = Pool::start(vec![first], start, config).unwrap();
        let client = pool.client();
        let began = Instant::now();
        fake0.kill(); // an early death: failure 1; then two failed starts
        let err = nap(&client, 0).unwrap_err();
        let took = began.elapsed();
        match &err {
            RpcError::PoolUnavailable { reason, .. } => {
                assert!(reason.contains("the worker binary is missing"), "{reason}");
                assert!(reason.contains("3 times"), "{reason}");
            }
            other => panic!("expected PoolUnavailable, got {other:?}"),
        }
        // Back-off 40 ms, then 80 ms, before the two starts.
        assert!(took >= Duration::from_millis(120), "gave up after {took:?}");
        let status = &pool.status()[0];
        assert_eq!(
            (status.state, status.starts),
            (WorkerState::GaveUp, 3),
            "{status:?}"
        );
        assert!(client.is_closed());
    }

    #[test]
    fn shutdown_stops_workers_and_later_calls_fail() {
        let (mut pool, fakes) = pool(2, PoolConfig::default());
        let client = pool.client();
        assert_eq!(nap(&client, 0).unwrap(), 0);
        pool.shutdown();
        for f in &fakes {
            assert_eq!(*f.ended.lock().unwrap(), Some("stopped"));
        }
        assert!(matches!(
            nap(&client, 0),
            Err(RpcError::PoolUnavailable { .. })
        ));
        assert!(
            pool.status()
                .iter()
                .all(|s| s.state == WorkerState::Stopped)
        );
    }

    #[test]
    fn shutdown_kills_a_worker_that_does_not_stop() {
        let (stubborn, fake0) = fake(0, true).unwrap();
        let config = PoolConfig {
            grace: Duration::from_millis(50),
            ..PoolConfig::default()
        };
        let mut pool = Pool::start(vec![stubborn], Box::new(|_| Err("no".into())), config).unwrap();
        pool.shutdown();
        assert_eq!(*fake0.ended.lock().unwrap(), Some("was killed"));
    }

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let c = PoolConfig {
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            ..PoolConfig::default()
        };
        let ms: Vec<u128> = (1..6).map(|f| c.delay(f).as_millis()).collect();
        assert_eq!(ms, [10, 20, 40, 50, 50]);
    }
}
