//! The shared segment of one connection: a header, one line per side, and two rings.
//!
//! ```text
//! offset    size   what                                        written by
//! 0         128    SegmentHeader: magic, version, capacity,    the client, before
//!                  max_frame, client pid                       publishing `magic`
//! 128       128    Side (client): cpu, busy, closed            the client
//! 256       128    Side (server): cpu, busy, closed            the server
//! 384       256    RingControl c2s: ProducerLine | ConsumerLine
//! 640       256    RingControl s2c: ProducerLine | ConsumerLine
//! 4096      C      c2s data (requests)
//! 4096+C    C      s2c data (replies)
//!
//! ProducerLine (128): tail u64 | data_seq u32 | producer_sleeping u32   ← producer
//! ConsumerLine (128): head u64 | space_seq u32 | consumer_sleeping u32  ← consumer
//! ```
//!
//! Each line is written by one side only (the `*_seq` futex words are bumped by the
//! other side to wake the sleeper), and lines are 128 bytes apart so the two
//! processes never write the same cache line (x86 prefetches lines in pairs).
//! Everything shared is an atomic of fixed width; there is no `usize` and no pointer.
//! `magic` is stored last with Release and loaded first with Acquire.

use std::sync::atomic::{AtomicU32, AtomicU64};

/// "IPCRSHM1" little-endian: a segment of ours.
pub const MAGIC: u64 = u64::from_le_bytes(*b"IPCRSHM1");
/// Bumped on any change of this layout, of the record format or of the wake-up
/// protocol. Version 2: a `*_sleeping` flag may say [`IN_POLLER`] (ring the rendezvous
/// socket instead of the futex); a version 1 peer would only bump the futex.
pub const LAYOUT_VERSION: u32 = 2;

/// A `*_sleeping` flag's value while its side is awake.
pub const AWAKE: u32 = 0;
/// A `*_sleeping` flag's value while its side sleeps on the futex word.
pub const ON_FUTEX: u32 = 1;
/// A `*_sleeping` flag's value while its side is parked in a server's poller, waiting
/// on its end of the rendezvous socket: the other side wakes it by writing a byte
/// (the doorbell) to its own end instead of bumping the futex word.
pub const IN_POLLER: u32 = 2;

/// Offset of the first ring's data: one page of control structures before it.
pub const DATA_OFFSET: usize = 4096;
/// Smallest ring: one page.
pub const MIN_CAPACITY: usize = 4096;
/// Largest ring: 1 GiB.
pub const MAX_CAPACITY: usize = 1 << 30;
/// Default ring: 2 MiB, so a 1 MiB frame fits whole and is read in place.
pub const DEFAULT_CAPACITY: usize = 2 << 20;

/// Set in a record header's length to mean "skip to the end of the ring".
pub const PAD_RECORD: u32 = u32::MAX;

/// Fixed facts about the segment, written once by the client.
#[repr(C, align(128))]
pub struct SegmentHeader {
    /// [`MAGIC`], stored last.
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`].
    pub version: AtomicU32,
    /// Bytes in each ring; a power of two.
    pub capacity: AtomicU32,
    /// The client's frame limit.
    pub max_frame: AtomicU32,
    /// The client's process id, for messages only (never trusted for liveness).
    pub client_pid: AtomicU32,
}

/// What one side says about itself; written by that side only.
#[repr(C, align(128))]
pub struct Side {
    /// CPU the side last ran on (`sched_getcpu`), to avoid spinning against a peer
    /// that shares our CPU.
    pub cpu: AtomicU32,
    /// 1 while the side produces something the other waits for: writing a frame, or
    /// (server) handling a request it received. A waiter spins longer while it is set.
    pub busy: AtomicU32,
    /// 1 once the side closed the connection.
    pub closed: AtomicU32,
}

/// Written by the producer of a ring.
#[repr(C, align(128))]
pub struct ProducerLine {
    /// Bytes ever published into the ring (monotonic).
    pub tail: AtomicU64,
    /// Futex word the consumer sleeps on; bumped by the producer to wake it.
    pub data_seq: AtomicU32,
    /// [`ON_FUTEX`] while the producer sleeps waiting for space, else [`AWAKE`].
    pub producer_sleeping: AtomicU32,
}

/// Written by the consumer of a ring.
#[repr(C, align(128))]
pub struct ConsumerLine {
    /// Bytes ever consumed from the ring (monotonic).
    pub head: AtomicU64,
    /// Futex word the producer sleeps on; bumped by the consumer to wake it.
    pub space_seq: AtomicU32,
    /// [`ON_FUTEX`] while the consumer sleeps waiting for data, [`IN_POLLER`] while
    /// it is parked in a poller, else [`AWAKE`].
    pub consumer_sleeping: AtomicU32,
}

/// The control block of one ring.
#[repr(C)]
pub struct RingControl {
    /// Written by the producer.
    pub producer: ProducerLine,
    /// Written by the consumer.
    pub consumer: ConsumerLine,
}

/// The control page at the start of the segment.
#[repr(C)]
pub struct ControlPage {
    /// Fixed facts.
    pub header: SegmentHeader,
    /// The client's line.
    pub client: Side,
    /// The server's line.
    pub server: Side,
    /// Requests.
    pub c2s: RingControl,
    /// Replies.
    pub s2c: RingControl,
}

const _: () = {
    assert!(size_of::<SegmentHeader>() == 128);
    assert!(size_of::<Side>() == 128);
    assert!(size_of::<ProducerLine>() == 128);
    assert!(size_of::<ConsumerLine>() == 128);
    assert!(size_of::<RingControl>() == 256);
    assert!(size_of::<ControlPage>() == 896);
    assert!(size_of::<ControlPage>() <= DATA_OFFSET);
    assert!(std::mem::offset_of!(ControlPage, c2s) == 384);
    assert!(std::mem::offset_of!(ControlPage, s2c) == 640);
};

/// Total segment size for rings of `capacity` bytes.
pub const fn segment_len(capacity: usize) -> usize {
    DATA_OFFSET + 2 * capacity
}

/// Offset of the c2s (`client_to_server = true`) or s2c ring's data.
pub const fn data_offset(capacity: usize, client_to_server: bool) -> usize {
    if client_to_server {
        DATA_OFFSET
    } else {
        DATA_OFFSET + capacity
    }
}

/// Whether `capacity` is an acceptable ring size.
pub const fn valid_capacity(capacity: usize) -> bool {
    capacity.is_power_of_two() && capacity >= MIN_CAPACITY && capacity <= MAX_CAPACITY
}
