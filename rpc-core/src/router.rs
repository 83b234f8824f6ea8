//! Routing calls over a pool's worker connections: each call goes to the live worker
//! with the fewest calls in flight; a call that never reached its worker goes to
//! another one. The slots' life (starting, replacing, giving up) is the
//! supervisor's (a layer up); this module knows of connections only, not of
//! clients or processes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::buf::{FrameBuf, Payload};
use crate::connection::{Connection, Request, SendError};
use crate::dispatch::ServiceInfo;
use crate::error::{CodecError, RpcError};

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
    pub(crate) fn delay(&self, failures: u32) -> Duration {
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

/// What a pool client's calls go through, shared with the supervising threads.
pub(crate) struct Router {
    pub(crate) peer: String,
    pub(crate) service: &'static ServiceInfo,
    pub(crate) config: PoolConfig,
    pub(crate) state: Mutex<State>,
    /// Signalled when a worker goes live or ends, a slot gives up or stops, and at
    /// shutdown.
    pub(crate) changed: Condvar,
}

pub(crate) struct State {
    pub(crate) slots: Vec<Slot>,
    pub(crate) stopping: bool,
    /// Shutdown's grace period is over: a worker published from now on is killed.
    pub(crate) killing: bool,
}

impl State {
    pub(crate) fn all_ended(&self) -> bool {
        self.slots
            .iter()
            .all(|s| matches!(s.state, WorkerState::Stopped | WorkerState::GaveUp))
    }
}

pub(crate) struct Slot {
    /// The worker taking calls.
    pub(crate) live: Option<Arc<Live>>,
    /// The current worker until it ended: live, or being stopped.
    pub(crate) handle: Option<Arc<dyn WorkerHandle>>,
    pub(crate) state: WorkerState,
    pub(crate) starts: u64,
    pub(crate) failures: u32,
    pub(crate) last_error: Option<Arc<str>>,
}

impl Slot {
    pub(crate) fn new() -> Self {
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
pub(crate) struct Live {
    pub(crate) conn: Arc<Connection>,
    /// Calls leased to this worker. Only a routing hint, read and raised under the
    /// router's lock and lowered without it: Relaxed is enough.
    pub(crate) in_flight: AtomicUsize,
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
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
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

    /// A subscription over the least-busy live worker, counted as one of its calls
    /// for as long as it lives.
    pub(crate) fn subscribe<T: serde::de::DeserializeOwned>(
        &self,
        method: u16,
        encode_args: impl Fn(&mut FrameBuf<'_>) -> Result<(), CodecError>,
        deadline: Option<Instant>,
    ) -> Result<crate::connection::Subscription<T>, RpcError> {
        let lease = self.lease(deadline)?;
        let conn = lease.live.conn.clone();
        let live = lease.live.clone();
        crate::connection::Subscription::start(
            conn,
            method,
            encode_args,
            deadline,
            Some(Box::new(lease)),
        )
        .map_err(|e| {
            if live.conn.is_closed() {
                self.worker_lost(&live, e)
            } else {
                e
            }
        })
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
        let RpcError::Disconnected { reason, source, .. } = error else {
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
            source,
        }
    }

    /// Makes a started worker (`handle`, serving `conn`) the slot's current worker,
    /// taking calls unless the pool stops.
    pub(crate) fn publish(
        &self,
        index: usize,
        handle: &Arc<dyn WorkerHandle>,
        conn: Arc<Connection>,
    ) {
        let handle = handle.clone();
        let label: Arc<str> = match handle.pid() {
            Some(pid) => format!("pool worker {index} (pid {pid})").into(),
            None => format!("pool worker {index}").into(),
        };
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
}
