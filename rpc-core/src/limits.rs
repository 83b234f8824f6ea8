//! Frame size limits that every layer agrees on: endpoints check `?max_frame=` against
//! them, transports and the stream framing enforce them.

/// Default largest frame: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// The largest frame any endpoint may allow: 2 GiB - 1, what a stream's length prefix
/// can carry (its top bit marks a split frame, see [`framing`](crate::framing)).
pub const MAX_FRAME_LIMIT: usize = (1 << 31) - 1;
