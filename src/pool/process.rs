//! Worker processes: spawning one, waiting until it serves, and waiting for, stopping
//! and killing it without ever signalling a reused pid.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use rpc_core::client::HANDSHAKE_TIMEOUT;
use rpc_core::supervisor::{NewWorker, WorkerHandle};
use rpc_core::{Client, FrameSender, Parts, RpcError, ServiceInfo, Transport, TransportError};
use transports::{Endpoint, EndpointKind, PipeTransport};

use super::link::{LINK_MAX_FRAME, Report, WORKER_ENV};
use super::{PoolError, naming};

/// Makes the command for worker `index`.
pub(crate) type MakeCommand = Box<dyn Fn(usize) -> Command + Send + Sync>;

/// Starts the workers of one pool.
pub(crate) struct Spawner {
    pub(crate) service: &'static ServiceInfo,
    pub(crate) command: MakeCommand,
    pub(crate) endpoint: Endpoint,
    /// Tells this process's pools apart in derived names.
    pub(crate) pool: u64,
}

/// A worker spawned but not yet serving.
pub(crate) struct Spawned {
    index: usize,
    process: Arc<WorkerProcess>,
    link: PipeTransport,
    endpoint: Endpoint,
}

impl Spawned {
    /// Gives up on this worker: kills and reaps it.
    pub(crate) fn abandon(self) {
        self.process.kill();
        self.process.wait();
    }
}

impl Spawner {
    /// Spawns worker `index` and waits until it serves.
    pub(crate) fn start(&self, index: usize) -> Result<NewWorker, PoolError> {
        self.connect(self.spawn(index)?)
    }

    /// Spawns worker `index`; it still has to report in ([`Spawner::connect`]), so
    /// many can start up at once.
    pub(crate) fn spawn(&self, index: usize) -> Result<Spawned, PoolError> {
        let endpoint = naming::derive(&self.endpoint, self.pool, index)?;
        let mut cmd = (self.command)(index);
        cmd.env(WORKER_ENV, endpoint.to_string());
        let program = cmd.get_program().to_string_lossy().into_owned();
        let over_pipe = matches!(endpoint.kind(), EndpointKind::Pipe);
        let max_frame = if over_pipe {
            endpoint.max_frame()
        } else {
            LINK_MAX_FRAME
        };
        let (child, link) =
            PipeTransport::spawn(cmd, max_frame).map_err(|source| PoolError::Spawn {
                index,
                program,
                source,
            })?;
        let named = (!over_pipe).then(|| endpoint.clone());
        Ok(Spawned {
            index,
            process: Arc::new(WorkerProcess::new(child, named)),
            link,
            endpoint,
        })
    }

    /// Waits until a spawned worker serves, and connects to it. A worker that does not
    /// is killed and reaped, and the error says how it ended.
    pub(crate) fn connect(&self, spawned: Spawned) -> Result<NewWorker, PoolError> {
        let Spawned {
            index,
            process,
            link,
            endpoint,
        } = spawned;
        let connected = if matches!(endpoint.kind(), EndpointKind::Pipe) {
            Client::handshake(Box::new(link), self.service).map_err(Failure::Rpc)
        } else {
            self.connect_named(link, &process)
        };
        let failure = match connected {
            Ok(client) => {
                return Ok(NewWorker {
                    client,
                    handle: process,
                });
            }
            Err(f) => f,
        };
        process.kill();
        let how = process.wait();
        let pid = process.pid.as_raw().unsigned_abs();
        let not_serving = "does its `main` call `ipc_rpc::pool::serve_if_worker` before anything \
                           else, with a server of this service?";
        let (reason, source) = match failure {
            Failure::Unsupported(reason) => {
                return Err(PoolError::Unsupported {
                    endpoint: self.endpoint.to_string(),
                    reason,
                });
            }
            Failure::Serve(error) => (format!("it could not serve on {endpoint}: {error}"), None),
            Failure::Ended => (format!("it {how} before it was ready; {not_serving}"), None),
            Failure::Silent => (
                format!(
                    "it did not report ready within {HANDSHAKE_TIMEOUT:?}, so it was stopped \
                     ({how}); {not_serving}"
                ),
                None,
            ),
            Failure::Rpc(e @ RpcError::Incompatible { .. })
            | Failure::Connect(e @ RpcError::Incompatible { .. }) => {
                ("it serves another service or version".to_owned(), Some(e))
            }
            Failure::Rpc(e @ RpcError::Timeout { .. }) => (
                format!(
                    "it did not answer within {HANDSHAKE_TIMEOUT:?}, so it was stopped ({how})"
                ),
                Some(e),
            ),
            Failure::Rpc(e) => (
                format!("it {how} before it was ready; {not_serving}"),
                Some(e),
            ),
            Failure::Connect(e) => (
                format!("it reported ready, but connecting to it failed; it was stopped ({how})"),
                Some(e),
            ),
        };
        Err(PoolError::Start {
            index,
            pid,
            reason,
            source,
        })
    }

    /// Over a named endpoint: wait for the worker's report, then connect to the
    /// endpoint it reports.
    fn connect_named(
        &self,
        link: PipeTransport,
        process: &WorkerProcess,
    ) -> Result<Client, Failure> {
        let Parts {
            sender,
            mut receiver,
            closer: _,
        } = Box::new(link)
            .split()
            .map_err(|e| Failure::Serve(e.to_string()))?;
        let report = match receiver.recv(Some(Instant::now() + HANDSHAKE_TIMEOUT)) {
            Ok(frame) => Report::decode(&frame.into_contiguous()),
            Err(TransportError::Closed) => return Err(Failure::Ended),
            Err(TransportError::TimedOut) => return Err(Failure::Silent),
            Err(e) => return Err(Failure::Serve(e.to_string())),
        };
        let bound = match report {
            Some(Report::Ready(bound)) => bound,
            Some(Report::Unsupported(reason)) => return Err(Failure::Unsupported(reason)),
            Some(Report::Failed(error)) => return Err(Failure::Serve(error)),
            None => return Err(Failure::Silent),
        };
        let bound: Endpoint = bound
            .parse()
            .map_err(|e: transports::EndpointError| Failure::Serve(e.to_string()))?;
        // Held until the pool stops the worker: its end-of-file is the stop signal.
        process.lock().link = Some(sender);
        crate::__private::connect(&bound, self.service).map_err(Failure::Connect)
    }
}

/// Why a spawned worker is not serving.
enum Failure {
    /// The handshake over its pipe pair failed.
    Rpc(RpcError),
    /// Connecting to the endpoint it reported failed.
    Connect(RpcError),
    /// It reported that the endpoint's mechanism is missing.
    Unsupported(String),
    /// It reported another failure to serve.
    Serve(String),
    /// It ended before it reported.
    Ended,
    /// It said nothing useful in time.
    Silent,
}

/// A worker process, as the pool supervises it.
pub(crate) struct WorkerProcess {
    pid: Pid,
    state: Mutex<ProcessState>,
    /// The worker's own named endpoint, swept once the worker is reaped.
    named: Option<Endpoint>,
}

struct ProcessState {
    /// Until it is reaped; while it is here, the pid is ours to signal.
    child: Option<Child>,
    /// The worker's link (named endpoints only); dropping it asks the worker to stop.
    link: Option<Box<dyn FrameSender>>,
}

impl WorkerProcess {
    fn new(child: Child, named: Option<Endpoint>) -> Self {
        WorkerProcess {
            pid: Pid::from_raw(child.id().cast_signed()),
            state: Mutex::new(ProcessState {
                child: Some(child),
                link: None,
            }),
            named,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ProcessState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl WorkerHandle for WorkerProcess {
    fn pid(&self) -> Option<u32> {
        Some(self.pid.as_raw().unsigned_abs())
    }

    fn wait(&self) -> String {
        // Wait for the exit without reaping, so the pid cannot be reused before `kill`
        // (which holds the lock) learns that the process is gone.
        while waitid(
            Id::Pid(self.pid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        ) == Err(Errno::EINTR)
        {}
        let status = {
            let mut state = self.lock();
            state.link = None;
            state.child.take().map(|mut child| child.wait())
        };
        if let Some(endpoint) = &self.named {
            // Best effort: a replacement that already bound the name owns it now
            // (`AddrInUse`), and binding replaces whatever is still stale.
            let _ = transports::reclaim_stale(endpoint);
        }
        match status {
            Some(Ok(status)) => describe(status),
            Some(Err(e)) => format!("could not be waited for ({e})"),
            None => "had already ended".into(),
        }
    }

    fn request_stop(&self) {
        self.lock().link = None;
    }

    fn kill(&self) {
        let state = self.lock();
        if state.child.is_some() {
            let _ = kill(self.pid, Signal::SIGKILL);
        }
    }
}

/// How a process ended, as a phrase after "the worker".
fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(sig) => {
            let name = Signal::try_from(sig).map_or("", Signal::as_str);
            let core = if status.core_dumped() {
                ", core dumped"
            } else {
                ""
            };
            format!("was killed by signal {sig} ({name}{core})")
        }
        None => format!("ended ({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_read_as_phrases() {
        assert_eq!(
            describe(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe(ExitStatus::from_raw(9)),
            "was killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe(ExitStatus::from_raw(6 | 0x80)),
            "was killed by signal 6 (SIGABRT, core dumped)"
        );
    }
}
