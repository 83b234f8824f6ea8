//! The receive path driven by bytes a test or fuzz target writes as the peer (feature
//! `test-util`): a fresh in-memory segment, the server's [`ShmReceiver`] over it, and
//! the client's writer publishing the given bytes into the c2s ring, record headers,
//! lengths and padding included, exactly as a hostile client could.

use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rpc_core::{FrameReceiver, TransportError};

use super::conn::{Conn, ShmReceiver};
use super::index;
use super::ring::Writer;
use super::segment::Segment;

/// How [`receive`] plays the peer.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Ring capacity: a power of two from 4096 (`layout::MIN_CAPACITY`).
    pub capacity: usize,
    /// The receiver's `max_frame`.
    pub max_frame: usize,
    /// Most bytes published at once; the receiver runs between two publishes.
    pub step: usize,
    /// Stored as the ring's tail once every byte is published: a peer lying about
    /// how much it wrote.
    pub lying_tail: Option<u64>,
}

/// Publishes `data` into the c2s ring as the client would, receiving after each
/// publish with a deadline of now, then closes the client's side and receives until
/// an error; `on_frame` sees every frame received.
///
/// Checks on the way, panicking if broken: no frame is longer than `max_frame`, and
/// the receiver's copy buffer never holds more than twice the bytes the peer exposed
/// (what it wrote, plus the whole ring if its tail lies).
///
/// # Errors
///
/// The receiver's last error (`Closed` once an honest stream is drained); `Io` if the
/// segment or socket cannot be made; `Corrupt` if the peer made no progress possible.
pub fn receive(
    data: &[u8],
    peer: Peer,
    mut on_frame: impl FnMut(&[u8]),
) -> Result<(), TransportError> {
    let max_frame32 = u32::try_from(peer.max_frame).unwrap_or(u32::MAX);
    let segment = Segment::create("ipc-rpc-replay", peer.capacity, max_frame32)?;
    let (socket, _client_socket) = UnixStream::pair().map_err(|source| TransportError::Io {
        context: "create a socket pair for the replay".into(),
        source,
    })?;
    let conn = Conn::new(
        segment,
        false,
        socket,
        peer.max_frame,
        Duration::ZERO,
        "replayed peer".into(),
    );
    let mut writer = Writer::new(conn.segment().clone(), true);
    let mut receiver = ShmReceiver::new(conn.clone());
    let capacity = writer.capacity();
    // What the peer can make the receiver see: its bytes, and with a lying tail any
    // stale bytes of the ring.
    let exposed = data.len() + peer.lying_tail.map_or(0, |_| capacity as usize);
    let mut drain = |receiver: &mut ShmReceiver, deadline: Option<Instant>| loop {
        match receiver.recv(deadline) {
            Ok(frame) => {
                assert!(frame.tail.is_none(), "shm frames come whole");
                assert!(frame.head.len() <= peer.max_frame, "a frame over max_frame");
                on_frame(frame.head);
            }
            Err(e) => {
                assert!(
                    receiver.copy_capacity() <= 2 * exposed.max(8),
                    "the receiver reserved more than arrived"
                );
                return e;
            }
        }
    };
    let mut rest = data;
    let mut stuck = false;
    while !rest.is_empty() {
        let n = (rest.len() as u64)
            .min(peer.step.max(1) as u64)
            .min(writer.free()?);
        let mut done = 0;
        while done < n {
            let run = index::run(writer.tail() + done, n - done, capacity);
            writer.write(done, &rest[done as usize..(done + run) as usize])?;
            done += run;
        }
        writer.publish(n)?;
        rest = &rest[n as usize..];
        if n == 0 && stuck {
            return Err(TransportError::Corrupt("the ring stays full"));
        }
        stuck = n == 0;
        match drain(&mut receiver, Some(Instant::now())) {
            TransportError::TimedOut => {}
            e => return Err(e),
        }
    }
    if let Some(tail) = peer.lying_tail {
        // SYNC: Release, paired with the receiver's Acquire load of the tail, as an
        // honest publish.
        writer
            .control()
            .producer
            .tail
            .store(tail, Ordering::Release);
    }
    // SYNC: Release, paired with the receiver's Acquire load of the peer's `closed`.
    conn.peer_side().closed.store(1, Ordering::Release);
    Err(drain(&mut receiver, None))
}
