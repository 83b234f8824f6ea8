//! How a server runs its connections: limits and threads, from its endpoint's options.

use crate::endpoint::Endpoint;
use crate::limits::{
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_WORKERS, default_workers,
};

/// How a server runs its connections' calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Calls of one connection that run at once; further requests wait, in order, until
    /// one ends (default [`DEFAULT_MAX_IN_FLIGHT`]; at least 1).
    pub max_in_flight: usize,
    /// Connections taken at once; the next client is refused with a message naming the
    /// limit (default [`DEFAULT_MAX_CONNECTIONS`]; at least 1).
    pub max_connections: usize,
    /// Threads kept to read requests and run calls (default [`default_workers`]).
    pub workers: usize,
    /// The most threads the pool grows to while handlers block (default
    /// [`DEFAULT_MAX_WORKERS`], never under `workers`); past it, calls wait for a
    /// thread.
    pub max_workers: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            workers: default_workers(),
            max_workers: DEFAULT_MAX_WORKERS.max(default_workers()),
        }
    }
}

impl ServerConfig {
    /// What an endpoint's options say (`?max_in_flight=`, `?max_connections=`,
    /// `?workers=`, `?max_workers=`).
    pub fn from_endpoint(endpoint: &Endpoint) -> Self {
        ServerConfig {
            max_in_flight: endpoint.max_in_flight(),
            max_connections: endpoint.max_connections(),
            workers: endpoint.workers(),
            max_workers: endpoint.max_workers(),
        }
    }

    /// This configuration with another `max_in_flight` (at least 1).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }
}
