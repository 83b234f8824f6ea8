//! What can keep a pool from starting.

use rpc_core::{RpcError, TransportError};

/// Why [`PoolBuilder::spawn`](super::PoolBuilder::spawn) could not start a pool.
///
/// Once a pool runs, its calls fail with [`RpcError`] instead: `Disconnected` for a
/// call on a worker that died, `PoolUnavailable` when no worker can be started.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The builder's settings cannot make a pool.
    #[error("invalid worker pool settings: {0}")]
    Config(String),
    /// The workers cannot serve on this kind of endpoint: this build lacks the
    /// mechanism.
    #[error("workers cannot serve on {endpoint}: {reason}")]
    Unsupported {
        /// The pool's endpoint, as configured.
        endpoint: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// A worker process could not be spawned.
    #[error("cannot spawn worker {index} (`{program}`)")]
    Spawn {
        /// The worker's slot.
        index: usize,
        /// The program of the worker command.
        program: String,
        /// The OS error.
        #[source]
        source: TransportError,
    },
    /// A worker was spawned but did not start serving; it was stopped and reaped.
    #[error("worker {index} (pid {pid}) did not start: {reason}")]
    Start {
        /// The worker's slot.
        index: usize,
        /// Its process id (the process is gone).
        pid: u32,
        /// What happened, and what to check.
        reason: String,
        /// The error of the connection to it, if it got that far.
        #[source]
        source: Option<RpcError>,
    },
    /// The OS refused a thread to supervise the workers; they were stopped.
    #[error("cannot start a thread to supervise the workers")]
    Thread(#[source] std::io::Error),
}

impl std::fmt::Debug for PoolError {
    /// The message and its causes, as `rpc_core::error::debug_as_display` writes errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        rpc_core::error::debug_as_display(self, f)
    }
}
