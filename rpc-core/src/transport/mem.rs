//! An in-process transport: two queues between threads.
//!
//! The reference implementation of the [transport contract](super): unit tests of the
//! client and server use it, and it runs first in the conformance suite.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

use super::{Closer, FrameReceiver, FrameSender, Parts, Transport};
use super::{DEFAULT_MAX_FRAME, check_len};
use crate::buf::Payload;
use crate::error::TransportError;

#[derive(Default)]
struct Queue {
    frames: VecDeque<Vec<u8>>,
    writer_gone: bool,
    reader_closed: bool,
}

#[derive(Default)]
struct Direction {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Direction {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One end of an in-process connection.
pub struct MemTransport {
    sender: MemSender,
    receiver: MemReceiver,
}

/// Two connected ends, each with a 16 MiB frame limit.
///
/// # Examples
///
/// ```
/// use rpc_core::transport::{mem, Transport};
/// let (a, b) = mem::pair();
/// let mut a = Box::new(a).split().unwrap();
/// let mut b = Box::new(b).split().unwrap();
/// a.sender.send(b"ping").unwrap();
/// assert_eq!(b.receiver.recv(None).unwrap().head, b"ping");
/// ```
pub fn pair() -> (MemTransport, MemTransport) {
    pair_with_max_frame(DEFAULT_MAX_FRAME)
}

/// Two connected ends refusing frames over `max_frame` bytes.
pub fn pair_with_max_frame(max_frame: usize) -> (MemTransport, MemTransport) {
    let ab = Arc::new(Direction::default());
    let ba = Arc::new(Direction::default());
    let end = |outgoing: &Arc<Direction>, incoming: &Arc<Direction>| MemTransport {
        sender: MemSender {
            dir: outgoing.clone(),
            max_frame,
        },
        receiver: MemReceiver {
            dir: incoming.clone(),
            current: Vec::new(),
            limit: max_frame,
            max_frame,
        },
    };
    (end(&ab, &ba), end(&ba, &ab))
}

struct MemSender {
    dir: Arc<Direction>,
    max_frame: usize,
}

struct MemReceiver {
    dir: Arc<Direction>,
    current: Vec<u8>,
    /// Frames over this are refused (a sender checks its own limit first).
    max_frame: usize,
    /// The connection's limit, which `set_max_frame` never exceeds.
    limit: usize,
}

struct MemCloser(Arc<Direction>);

impl Transport for MemTransport {
    fn peer(&self) -> String {
        "mem".to_owned()
    }

    fn split(self: Box<Self>) -> Result<Parts, TransportError> {
        let MemTransport { sender, receiver } = *self;
        let closer = MemCloser(receiver.dir.clone());
        Ok(Parts {
            sender: Box::new(sender),
            receiver: Box::new(receiver),
            closer: Box::new(closer),
        })
    }
}

impl FrameSender for MemSender {
    fn send_parts(&mut self, head: &[u8], tail: &[u8]) -> Result<(), TransportError> {
        check_len(head.len() + tail.len(), self.max_frame)?;
        let mut frame = Vec::with_capacity(head.len() + tail.len());
        frame.extend_from_slice(head);
        frame.extend_from_slice(tail);
        let mut q = self.dir.lock();
        if q.reader_closed {
            return Err(TransportError::Closed);
        }
        q.frames.push_back(frame);
        drop(q);
        self.dir.ready.notify_one();
        Ok(())
    }
}

impl Drop for MemSender {
    fn drop(&mut self) {
        self.dir.lock().writer_gone = true;
        self.dir.ready.notify_all();
    }
}

impl FrameReceiver for MemReceiver {
    fn recv(&mut self, deadline: Option<Instant>) -> Result<Payload<'_>, TransportError> {
        let mut q = self.dir.lock();
        loop {
            if q.reader_closed {
                return Err(TransportError::Closed);
            }
            if let Some(frame) = q.frames.pop_front() {
                check_len(frame.len(), self.max_frame)?;
                self.current = frame;
                return Ok(Payload::whole(&self.current));
            }
            if q.writer_gone {
                return Err(TransportError::Closed);
            }
            q = match deadline {
                None => self
                    .dir
                    .ready
                    .wait(q)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(TransportError::TimedOut);
                    }
                    self.dir
                        .ready
                        .wait_timeout(q, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame.min(self.limit);
    }

    fn frame_limit(&self) -> usize {
        self.limit
    }
}

impl Drop for MemReceiver {
    fn drop(&mut self) {
        let mut q = self.dir.lock();
        q.reader_closed = true;
        q.frames.clear();
    }
}

impl Closer for MemCloser {
    fn close(&self) {
        self.0.lock().reader_closed = true;
        self.0.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parts() -> (Parts, Parts) {
        let (a, b) = pair_with_max_frame(8);
        (Box::new(a).split().unwrap(), Box::new(b).split().unwrap())
    }

    #[test]
    fn frames_arrive_in_order_and_oversize_is_refused() {
        let (mut a, mut b) = parts();
        a.sender.send(b"1").unwrap();
        assert!(matches!(
            a.sender.send(&[0; 9]),
            Err(TransportError::FrameTooLarge { len: 9, max: 8 })
        ));
        a.sender.send(b"").unwrap();
        assert_eq!(b.receiver.recv(None).unwrap().head, b"1");
        assert_eq!(b.receiver.recv(None).unwrap().head, b"");
    }

    #[test]
    fn recv_after_peer_drop_drains_then_returns_closed() {
        let (mut a, mut b) = parts();
        a.sender.send(b"last").unwrap();
        drop(a);
        assert_eq!(b.receiver.recv(None).unwrap().head, b"last");
        assert!(matches!(b.receiver.recv(None), Err(TransportError::Closed)));
        assert!(matches!(b.sender.send(b"x"), Err(TransportError::Closed)));
    }

    #[test]
    fn recv_with_past_deadline_times_out_and_stays_usable() {
        let (mut a, mut b) = parts();
        let soon = Instant::now() + Duration::from_millis(10);
        assert!(matches!(
            b.receiver.recv(Some(soon)),
            Err(TransportError::TimedOut)
        ));
        a.sender.send(b"ok").unwrap();
        assert_eq!(
            b.receiver
                .recv(Some(Instant::now() + Duration::from_secs(5)))
                .unwrap()
                .head,
            b"ok"
        );
    }

    #[test]
    fn close_wakes_a_blocked_recv() {
        let (_a, b) = parts();
        let Parts {
            mut receiver,
            closer,
            ..
        } = b;
        let t =
            std::thread::spawn(move || matches!(receiver.recv(None), Err(TransportError::Closed)));
        std::thread::sleep(Duration::from_millis(20));
        closer.close();
        assert!(t.join().unwrap());
    }
}
