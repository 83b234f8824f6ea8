//! Worker pools: one [`Client`] whose calls are spread over many servers (through the
//! [router](crate::router)), with dead servers replaced by supervising threads.
//!
//! (The `ipc-rpc` facade's `pool` module is the *process* pool built on this: it
//! spawns the worker processes and hands them over as [`NewWorker`]s.)
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

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::client::Client;
use crate::connection::Connection;
use crate::error::{BoxError, chain};
pub use crate::router::{PoolConfig, WorkerHandle, WorkerState};
use crate::router::{Router, Slot, State};

/// Which worker a start is for: its slot, and how many starts that slot had before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerId {
    /// The slot, `0..workers`.
    pub index: usize,
    /// Starts of this slot before this one (0 for its first worker).
    pub generation: u64,
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
        let start = Arc::new(start);
        let router = Arc::new(Router {
            peer: format!("worker pool of `{}`", service.name),
            service,
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
            router.publish(index, &worker.handle, worker_connection(&worker));
            let supervisor = router.clone();
            let start = start.clone();
            let handle = worker.handle.clone();
            let spawned = thread::Builder::new()
                .name(format!("ipc-rpc pool worker {index}"))
                .spawn(move || supervise(&supervisor, &start, index, worker));
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
        Client::over_router(self.router.clone())
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

/// The connection of a started worker (checked to be a single-connection client when
/// it was handed over).
fn worker_connection(worker: &NewWorker) -> Arc<Connection> {
    worker
        .client
        .connection()
        .expect("checked when the worker was started")
        .clone()
}

/// A slot's supervising thread: waits for its worker to end, then starts the next,
/// until the pool stops or the slot gives up.
fn supervise(router: &Router, start: &StartWorker, index: usize, first: NewWorker) {
    let mut worker = first;
    let mut generation = 0;
    loop {
        let started = Instant::now();
        let handle = worker.handle.clone();
        drop(worker);
        let how = handle.wait();
        let early = started.elapsed() < router.config.min_uptime;
        let label = match handle.pid() {
            Some(pid) => format!("worker {index} (pid {pid})"),
            None => format!("worker {index}"),
        };
        let reason = format!("{label} {how}");
        let ended = {
            let mut state = router.lock();
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
            router.changed.notify_all();
            live
        };
        if let Some(live) = ended {
            live.conn.shut(format!("the {reason}").into());
        }
        crate::__event!(
            warn,
            worker = index,
            "pool: the {reason}; starting a replacement"
        );
        worker = loop {
            if !wait_to_start(router, index) {
                return;
            }
            generation += 1;
            let started = (start)(WorkerId { index, generation }).and_then(|w| {
                if w.client.connection().is_some() {
                    Ok(w)
                } else {
                    Err("a worker's client must be a single connection".into())
                }
            });
            match started {
                Ok(w) => {
                    crate::__event!(info, worker = index, generation, pid = ?w.handle.pid(), "pool: worker replaced");
                    router.publish(index, &w.handle, worker_connection(&w));
                    break w;
                }
                Err(e) => {
                    crate::__event!(warn, worker = index, error = %chain(&*e), "pool: a worker failed to start");
                    let mut state = router.lock();
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
fn wait_to_start(router: &Router, index: usize) -> bool {
    let mut state = router.lock();
    let failures = state.slots[index].failures;
    let until = Instant::now() + router.config.delay(failures);
    loop {
        if state.stopping {
            state.slots[index].state = WorkerState::Stopped;
            router.changed.notify_all();
            return false;
        }
        if failures >= router.config.max_start_failures {
            state.slots[index].state = WorkerState::GaveUp;
            router.changed.notify_all();
            return false;
        }
        let now = Instant::now();
        if failures == 0 || now >= until {
            break;
        }
        state = router
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::Payload;
    use crate::codec::encode_frame;
    use crate::dispatch::ServiceInfo;
    use crate::dispatch::{Dispatch, DispatchError, Reply};
    use crate::error::RpcError;
    use crate::server::RunningServer;
    use crate::transport::mem::{self, MemTransport};
    use crate::transport::{Closer, Listener, Transport};
    use crate::{ServeError, TransportError};
    use std::sync::Barrier;
    use std::sync::atomic::AtomicU64;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    static INFO: ServiceInfo = ServiceInfo {
        name: "Nap",
        methods: &[crate::schema::MethodInfo::new(
            "nap",
            &[crate::schema::Arg {
                name: "ms",
                schema: <u64 as crate::schema::Schema>::SCHEMA,
            }],
            <u64 as crate::schema::Schema>::SCHEMA,
        )],
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
        fn local_endpoint(&self) -> crate::Endpoint {
            // In process, one connection: no kind names that; a pipe comes closest.
            crate::Endpoint::new(crate::EndpointKind::Pipe)
        }
    }

    /// A worker in a thread: `kill` breaks its connection at once, `request_stop`
    /// lets it finish; `stubborn` ignores `request_stop`.
    struct Fake {
        ended: Mutex<Option<&'static str>>,
        cv: Condvar,
        server: Mutex<Option<RunningServer>>,
        conn: Arc<Connection>,
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

    /// With the `tracing` feature, a worker's death, its replacement and a failed
    /// start are logged.
    #[cfg(feature = "tracing")]
    #[test]
    fn worker_replacements_are_logged() {
        use crate::log::recorder::{install, logged};
        install();
        let (pool, fakes) = pool(1, PoolConfig::default());
        fakes[0].kill();
        logged(&[
            "WARN ipc_rpc:",
            "pool: the worker 0",
            "starting a replacement",
        ]);
        logged(&[
            "INFO ipc_rpc:",
            "pool: worker replaced",
            "worker=0",
            "generation=1",
        ]);
        drop(pool);
        let (first, fake) = fake(7, false).unwrap();
        let pool = Pool::start(
            vec![first],
            Box::new(|_| Err("no luck".into())),
            PoolConfig::default(),
        )
        .unwrap();
        fake.kill();
        logged(&["WARN ipc_rpc:", "pool: a worker failed to start", "no luck"]);
        drop(pool);
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
            RpcError::Disconnected { peer, reason, .. } => {
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
