//! Limits that every layer agrees on: endpoints check `?max_frame=` and
//! `?max_in_flight=`, `?max_connections=`, `?workers=` and `?max_workers=` against them, transports, the stream framing and the server enforce
//! them.

/// Default largest frame: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// The largest frame any endpoint may allow: 2 GiB - 1, what a stream's length prefix
/// can carry (its top bit marks a split frame, see [`framing`](crate::framing)).
pub const MAX_FRAME_LIMIT: usize = (1 << 31) - 1;

/// Calls of one connection that a server runs at once by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;

/// The most calls of one connection an endpoint may let a server run at once.
pub const MAX_IN_FLIGHT_LIMIT: usize = 65_536;

/// Connections a server takes at once by default; the next client is refused.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The most connections an endpoint may let a server take at once.
pub const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;

/// Threads a server keeps to run calls by default: twice the cores, at least 4.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .saturating_mul(2)
        .max(4)
}

/// How long a client waits, by default, for a server to take its connection and answer
/// the handshake.
pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest `connect_timeout` an endpoint may ask for.
pub const CONNECT_TIMEOUT_LIMIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// The most threads a server's pool grows to by default while handlers block.
pub const DEFAULT_MAX_WORKERS: usize = 256;

/// The most threads an endpoint may let a server's pool grow to.
pub const WORKERS_LIMIT: usize = 4096;

/// Silence after which a `tcp:` connection sends its first keepalive probe, by default.
pub const DEFAULT_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long sent data may stay unacknowledged on a `tcp:` connection by default
/// (`TCP_USER_TIMEOUT`) before the connection is given up.
pub const DEFAULT_USER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The longest `keepalive` or `user_timeout` an endpoint may ask for.
pub const KEEPALIVE_LIMIT: std::time::Duration = std::time::Duration::from_secs(7200);
