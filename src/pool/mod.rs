//! Worker pools: a service served by N child processes, called through one generated
//! client that routes each call to the least-busy live worker.
//!
//! ```no_run
//! use ipc_rpc::ipc_service;
//! use ipc_rpc::pool::Pool;
//!
//! #[ipc_service]
//! pub trait Hasher {
//!     /// A hash of `data` (CPU-bound: worth a process of its own).
//!     fn hash(&self, data: Vec<u8>) -> u64;
//! }
//!
//! struct Fnv;
//! impl Hasher for Fnv {
//!     fn hash(&self, data: Vec<u8>) -> u64 {
//!         data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
//!     }
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // In a worker (this program re-run by the pool): serve, then exit.
//!     ipc_rpc::pool::serve_if_worker(HasherServer::new(Fnv))?;
//!
//!     // In the parent: four workers, over pipe pairs.
//!     let pool = Pool::<HasherClient>::builder().workers(4).spawn()?;
//!     let hasher: &HasherClient = pool.client(); // Clone + Send + Sync, like any client
//!     std::thread::scope(|s| {
//!         for i in 0..4u8 {
//!             s.spawn(move || hasher.hash(vec![i; 1 << 20]));  // four calls, four processes
//!         }
//!     });
//!     pool.shutdown(); // stops, reaps and cleans up every worker
//!     Ok(())
//! }
//! ```
//!
//! - **Workers.** By default the pool re-runs the current executable with no
//!   arguments; [`PoolBuilder::command`] or [`PoolBuilder::command_fn`] run anything
//!   else (a separate worker binary). A worker's `main` starts with
//!   [`serve_if_worker`]. Workers are spawned (fork + exec), never forked copies of the
//!   parent.
//! - **Transport.** Each worker gets a pipe pair, which is also its connection under
//!   the default `pipe` endpoint. With [`PoolBuilder::endpoint`] (`unix:`, `tcp:…:0`,
//!   `fifo:`, `mq:`, `shm:`) every worker serves on an endpoint of its own derived from
//!   it (`unix:/run/h.sock` → `unix:/run/h-<pid>-<pool>-<worker>.sock`) and the pipe
//!   pair stays its link to the pool: it reports its endpoint (the real port, for
//!   TCP), and it exits when the link closes.
//! - **Routing.** A call goes to the live worker with the fewest calls in flight;
//!   with N workers, N concurrent callers keep N processes busy. While no worker is
//!   live (all restarting) a call waits for one, up to its timeout.
//! - **Supervision.** A worker that exits, crashes or is killed is reaped and
//!   replaced; calls in flight on it return `RpcError::Disconnected` naming the worker,
//!   other calls go on. A worker that fails to start, or dies within a second of
//!   starting, is restarted after a back-off that doubles (50 ms, 100 ms, … up to 5 s);
//!   after [`PoolBuilder::max_start_failures`] such failures in a row that slot gives
//!   up, [`Pool::status`] says why, and once every slot gave up calls return
//!   `RpcError::PoolUnavailable` with the last error.
//! - **Shutdown.** [`Pool::shutdown`] or drop: no new calls, every worker is asked to
//!   stop (its link closes), calls in flight get [`PoolBuilder::grace`] to finish, then
//!   the rest are killed; every worker is reaped and its named objects removed. If the
//!   parent dies, even by `kill -9`, each worker sees its link close and exits.

mod error;
mod link;
mod naming;
mod process;
mod worker;

use std::marker::PhantomData;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rpc_core::supervisor::{PoolConfig, StartWorker};
use transports::{Endpoint, EndpointKind};

use crate::ServiceClient;
pub use error::PoolError;
use process::{MakeCommand, Spawner};
pub use rpc_core::supervisor::{WorkerState, WorkerStatus};
pub use worker::serve_if_worker;

/// Numbers this process's pools, for their workers' derived names.
static NEXT_POOL: AtomicU64 = AtomicU64::new(0);

/// Worker processes serving one service, and the client that calls them.
///
/// Dropping the pool shuts it down, like [`Pool::shutdown`]; clients still held after
/// that get `RpcError::PoolUnavailable`.
pub struct Pool<C: ServiceClient> {
    inner: rpc_core::supervisor::Pool,
    client: C,
}

impl<C: ServiceClient> Pool<C> {
    /// A builder with the defaults: one worker per CPU, the current executable
    /// re-run with no arguments, pipe pairs, no call timeout.
    pub fn builder() -> PoolBuilder<C> {
        PoolBuilder {
            workers: None,
            command: None,
            endpoint: Endpoint::new(EndpointKind::Pipe),
            timeout: None,
            config: PoolConfig::default(),
            _client: PhantomData,
        }
    }

    /// The client whose calls go to the pool's workers: the same generated type a
    /// single connection gives. Clone it to hand it to other threads.
    pub fn client(&self) -> &C {
        &self.client
    }

    /// A snapshot of every worker slot: state, pid, calls in flight, starts, last error.
    pub fn status(&self) -> Vec<WorkerStatus> {
        self.inner.status()
    }

    /// The process ids of the workers taking calls now.
    pub fn pids(&self) -> Vec<u32> {
        self.status()
            .iter()
            .filter(|w| w.state == WorkerState::Live)
            .filter_map(|w| w.pid)
            .collect()
    }

    /// Stops every worker: takes no new calls, lets calls in flight finish (up to the
    /// grace period), kills what is left, reaps every worker and removes its named
    /// objects. Returns once all of that is done.
    pub fn shutdown(mut self) {
        self.inner.shutdown();
    }
}

impl<C: ServiceClient> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

/// Settings of a [`Pool`]; [`PoolBuilder::spawn`] starts it.
#[must_use = "a builder does nothing until `spawn` is called"]
pub struct PoolBuilder<C> {
    workers: Option<usize>,
    command: Option<MakeCommand>,
    endpoint: Endpoint,
    timeout: Option<Duration>,
    config: PoolConfig,
    _client: PhantomData<fn() -> C>,
}

impl<C: ServiceClient> PoolBuilder<C> {
    /// Number of worker processes. Default: the number of CPUs.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// The command that starts a worker (a separate worker binary, arguments,
    /// environment). Its program, arguments, environment changes and working
    /// directory are used for every worker; for other settings (stdio, `env_clear`,
    /// uid), or per-worker differences, use [`PoolBuilder::command_fn`].
    /// Default: the current executable, no arguments.
    pub fn command(self, cmd: Command) -> Self {
        self.command_fn(move |_| copy_command(&cmd))
    }

    /// Makes the command for worker `index` (`0..workers`) each time one is started.
    pub fn command_fn(mut self, make: impl Fn(usize) -> Command + Send + Sync + 'static) -> Self {
        self.command = Some(Box::new(make));
        self
    }

    /// The transport: `pipe` (the default), or an endpoint from which each worker's
    /// own is derived: `unix:/dir/name.sock`, `tcp:host:0`, `fifo:/dir/name`,
    /// `mq:/name`, `shm:/name`. Options such as `?max_frame=N` apply to every worker.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// A deadline for every call through [`Pool::client`] (waiting for a live worker
    /// included); past it the call returns `RpcError::Timeout`. Default: none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long shutdown lets calls in flight finish before it kills the workers.
    /// Default 2 s.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.config.grace = grace;
        self
    }

    /// Failed starts in a row (a worker that dies within a second of starting counts)
    /// after which a slot is given up. Default 5.
    pub fn max_start_failures(mut self, n: u32) -> Self {
        self.config.max_start_failures = n.max(1);
        self
    }

    /// The wait before restarting a slot after its first failure; it doubles with
    /// each further failure, up to 5 s. Default 50 ms.
    pub fn restart_backoff(mut self, first: Duration) -> Self {
        self.config.backoff = first;
        self.config.max_backoff = self.config.max_backoff.max(first);
        self
    }

    /// Spawns the workers, waits until each serves, and returns the pool.
    ///
    /// The workers start up in parallel. If one of them does not start, all are
    /// stopped and reaped and the first failure is returned.
    ///
    /// # Errors
    ///
    /// [`PoolError::Config`] for impossible settings (no workers, a fixed TCP port, a
    /// derived name too long), [`PoolError::Unsupported`] if the workers lack the
    /// endpoint's mechanism, [`PoolError::Spawn`] if the command cannot be run,
    /// [`PoolError::Start`] if a worker does not serve (it exited, serves another
    /// service, or did not answer), [`PoolError::Thread`].
    pub fn spawn(self) -> Result<Pool<C>, PoolError> {
        let workers = match self.workers {
            Some(0) => return Err(PoolError::Config("a pool needs at least one worker".into())),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        let command = match self.command {
            Some(make) => make,
            None => {
                let exe = std::env::current_exe().map_err(|e| {
                    PoolError::Config(format!(
                        "cannot find the current executable to run as a worker ({e}); give \
                         the worker command with `command`"
                    ))
                })?;
                Box::new(move |_| Command::new(&exe))
            }
        };
        let spawner = Arc::new(Spawner {
            service: C::SERVICE,
            command,
            endpoint: self.endpoint,
            pool: NEXT_POOL.fetch_add(1, Ordering::Relaxed),
        });

        let mut spawned = Vec::with_capacity(workers);
        for index in 0..workers {
            match spawner.spawn(index) {
                Ok(s) => spawned.push(s),
                Err(e) => {
                    spawned.into_iter().for_each(process::Spawned::abandon);
                    return Err(e);
                }
            }
        }
        let mut started = Vec::with_capacity(workers);
        let mut failure = None;
        for s in spawned {
            if failure.is_some() {
                s.abandon();
                continue;
            }
            match spawner.connect(s) {
                Ok(worker) => started.push(worker),
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            for worker in started {
                drop(worker.client);
                worker.handle.kill();
                worker.handle.wait();
            }
            return Err(e);
        }

        let start: StartWorker = Box::new(move |id| Ok(spawner.start(id.index)?));
        let inner = rpc_core::supervisor::Pool::start(started, start, self.config)
            .map_err(PoolError::Thread)?;
        let client = match self.timeout {
            Some(t) => inner.client().with_timeout(t),
            None => inner.client(),
        };
        Ok(Pool {
            inner,
            client: C::from_client(client),
        })
    }
}

/// What of `cmd` can be copied: program, arguments, environment changes, directory.
fn copy_command(cmd: &Command) -> Command {
    let mut copy = Command::new(cmd.get_program());
    copy.args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => copy.env(key, value),
            None => copy.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        copy.current_dir(dir);
    }
    copy
}
