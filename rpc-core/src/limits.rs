//! Limits that every layer agrees on: endpoints check `?max_frame=` and
//! `?max_in_flight=` and `?max_connections=` against them, transports, the stream framing and the server enforce
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
