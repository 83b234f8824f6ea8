//! A connected queue pair: [`MqTransport`] and the parts it splits into.
//!
//! Fast path: a frame up to 8 KiB is one `mq_send` on one side and one
//! `mq_timedreceive` on the other; liveness costs nothing per message. A wait is cut
//! into slices of [`SLICE`]; only when a slice passes with nothing to do is the peer's
//! pidfd polled (dead peer → `Closed`) and the closer's flag read.
//!
//! Flow control: a queue holds little (one message by default), so a side blocked
//! sending to a full queue must never wait for a peer that is itself blocked sending
//! to us — with no one reading either queue, both would wait forever (e.g. a client
//! thread sending a large request while the server sends a large reply, and the
//! client's reading role is held by that same thread). So a blocked sender that finds
//! no one receiving takes the incoming messages off the queue into a stash (up to
//! twice `max_frame`), and the receiver takes the stash first: the order is kept and
//! the peer can always finish its frame.
//!
//! Parked in a server's poller (`prepare_wait`), the receiver waits on the incoming
//! queue's descriptor and the peer's pidfd. Meanwhile a blocked sender stashes nothing:
//! the messages stay queued, keeping the descriptor readable, so the poller wakes and
//! its `recv` reads them (the reading a stash stands in for).
//!
//! Closing: when the last part of a connection end drops, it sends `FIN` to the peer
//! (unless the peer is gone already). If the peer's queue is full, a "linger" thread
//! sends it once there is room, and ends then or when the peer process exits; it
//! holds no named object. A peer blocked sending to a closed end is not stuck: its
//! blocked sender stashes what arrives (see above), finds the `FIN` there and returns
//! `Closed`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use rpc_core::codec::Payload;
use rpc_core::framing::check_len;
use rpc_core::{
    Closer, FrameReceiver, FrameSender, Parts, Readiness, Transport, TransportError, WaitFds,
};

use super::chunk::{self, Assembler, FIN, Step};
use super::liveness::PeerProcess;
use super::queue::Queue;
use crate::names::mq::Names;
use crate::names::reclaim::mq_if_abandoned;

/// The longest a wait goes without checking the peer's liveness and the closer.
pub(crate) const SLICE: Duration = Duration::from_millis(200);

/// What a finished handshake hands over: one side's view of a connection.
#[derive(Debug)]
pub(crate) struct Ends {
    /// The queue this side receives from (blocking descriptor).
    pub(crate) incoming: Queue,
    /// A non-blocking sending descriptor of `incoming`, for wake-ups.
    pub(crate) wake: Queue,
    /// The queue this side sends to (non-blocking descriptor).
    pub(crate) outgoing: Queue,
    /// `mq_msgsize` of `incoming`.
    pub(crate) in_msgsize: usize,
    /// `mq_msgsize` of `outgoing`.
    pub(crate) out_msgsize: usize,
    /// The process at the other end.
    pub(crate) peer: PeerProcess,
    /// On a client: the server's names, removed if the server is seen dead and no
    /// other server has taken them (see `mq_if_abandoned`).
    pub(crate) server_names: Option<Names>,
}

/// One end of an mq connection: a queue pair to one peer process.
///
/// Made by [`MqTransport::connect`](super::MqTransport::connect) on the client and by
/// [`MqListener`](super::MqListener)'s `accept` on the server; used through
/// [`Transport::split`].
#[derive(Debug)]
pub struct MqTransport {
    pub(crate) ends: Ends,
    pub(crate) peer: String,
    pub(crate) max_frame: usize,
}

/// State shared by the parts of one connection end.
#[derive(Debug)]
struct Shared {
    /// Taken only by `Drop`.
    ends: Option<Ends>,
    peer_name: String,
    /// Set by the closer.
    closed: AtomicBool,
    /// Set by the closer's `abort`: sends end too.
    aborted: AtomicBool,
    /// Set once the peer's `FIN` arrived or its process was seen dead.
    peer_gone: AtomicBool,
    /// Whoever holds this takes messages off `incoming`: the receiver during `recv`,
    /// or a blocked sender when no `recv` runs.
    inbox: Mutex<Inbox>,
    /// Most bytes a blocked sender stashes.
    stash_cap: usize,
}

/// Messages taken off the incoming queue by a blocked sender, oldest first.
#[derive(Debug, Default)]
struct Inbox {
    stash: VecDeque<Vec<u8>>,
    bytes: usize,
    /// The receiver is parked in a server's poller on the incoming queue's descriptor
    /// (`prepare_wait`, until the next `recv`): a blocked sender then leaves the queue
    /// alone, so that what arrives keeps the descriptor readable and wakes the poller
    /// (whose `recv` does the reading a stash would otherwise stand in for).
    parked: bool,
}

impl Shared {
    fn ends(&self) -> &Ends {
        self.ends
            .as_ref()
            .expect("the ends live until Shared drops")
    }

    fn io_error(&self, what: &str, e: Errno) -> TransportError {
        TransportError::Io {
            context: format!("{what} {}", self.peer_name),
            source: e.into(),
        }
    }

    /// Marks the peer gone and returns `Closed`.
    fn gone(&self) -> TransportError {
        // SYNC: Release, paired with the Acquire loads in `push` and `Drop for Shared`.
        self.peer_gone.store(true, Ordering::Release);
        TransportError::Closed
    }

    /// The peer process was seen dead: cleans up after a dead server, returns `Closed`.
    fn peer_died(&self) -> TransportError {
        if let Some(names) = &self.ends().server_names {
            mq_if_abandoned(names);
        }
        self.gone()
    }

    /// Sends one message; when the queue is full, waits for room in slices, giving
    /// up with `Closed` when the peer dies or the closer was used, with `TimedOut` at
    /// `deadline`, and stashing what the peer sends meanwhile if no `recv` is running
    /// and the receiver is not parked. The inbox is held only while draining, never
    /// across a wait, so a `recv` (or `prepare_wait`) never waits for a blocked send.
    fn push(&self, msg: &[u8], deadline: Option<Instant>) -> Result<(), TransportError> {
        let ends = self.ends();
        loop {
            match ends.outgoing.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(self.io_error("send to", e)),
            }
            loop {
                // SYNC: Acquire, paired with the Release in `MqCloser::abort` and `gone`.
                if self.aborted.load(Ordering::Acquire) || self.peer_gone.load(Ordering::Acquire) {
                    return Err(TransportError::Closed);
                }
                let inbox: Option<MutexGuard<'_, Inbox>> = match self.inbox.try_lock() {
                    Ok(guard) => Some(guard),
                    Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                    Err(TryLockError::WouldBlock) => None,
                };
                let draining = match inbox {
                    Some(mut inbox) if !inbox.parked => self.drain(&mut inbox),
                    _ => false,
                };
                let incoming = draining.then_some(&ends.incoming);
                let slice = match deadline {
                    None => SLICE,
                    Some(d) => match d.checked_duration_since(Instant::now()) {
                        Some(left) if !left.is_zero() => left.min(SLICE),
                        _ => return Err(TransportError::TimedOut),
                    },
                };
                match ends.outgoing.wait_room_or_message(incoming, slice) {
                    Ok((true, _)) => break,
                    Ok((false, true)) | Err(Errno::EINTR) => {}
                    Ok((false, false)) if ends.peer.has_exited() => return Err(self.peer_died()),
                    Ok((false, false)) => {}
                    Err(e) => return Err(self.io_error("wait for room to send to", e)),
                }
            }
        }
    }

    /// Moves waiting incoming messages into the stash; `false` once the stash is full.
    fn drain(&self, inbox: &mut Inbox) -> bool {
        let ends = self.ends();
        let mut buf = vec![0; ends.in_msgsize];
        while inbox.bytes < self.stash_cap {
            // A deadline already passed: take what is there, never wait.
            match ends.incoming.receive_until(&mut buf, Instant::now()) {
                Ok(n) => {
                    if buf[..n].first() == Some(&FIN) {
                        // Stop sending now; the receiver still gets the FIN in order.
                        self.gone();
                    }
                    inbox.bytes += n;
                    inbox.stash.push_back(buf[..n].to_vec());
                }
                Err(Errno::EINTR) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let Some(ends) = self.ends.take() else {
            return;
        };
        // SYNC: Acquire, paired with the Release in `Shared::gone`.
        if self.peer_gone.load(Ordering::Acquire) || ends.peer.has_exited() {
            return;
        }
        if ends.outgoing.try_send(&[FIN]) != Err(Errno::EAGAIN) {
            return;
        }
        // The peer's queue is full: a thread sends the FIN once the peer makes room.
        // If no thread can be had, the peer notices when this process exits.
        let _ = std::thread::Builder::new()
            .name("ipc-rpc mq linger".into())
            .spawn(move || linger(ends));
    }
}

/// Sends `FIN` once the peer's queue has room; ends early if the peer exits.
fn linger(ends: Ends) {
    loop {
        match ends.outgoing.wait_writable(SLICE) {
            Ok(true) => match ends.outgoing.try_send(&[FIN]) {
                Ok(()) => return,
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(_) => return,
            },
            Ok(false) | Err(Errno::EINTR) => {}
            Err(_) => return,
        }
        if ends.peer.has_exited() {
            return;
        }
    }
}

impl Transport for MqTransport {
    fn peer(&self) -> String {
        self.peer.clone()
    }

    fn split(self: Box<Self>) -> Result<Parts, TransportError> {
        let MqTransport {
            ends,
            peer,
            max_frame,
        } = *self;
        let (in_msgsize, out_msgsize) = (ends.in_msgsize, ends.out_msgsize);
        let shared = Arc::new(Shared {
            ends: Some(ends),
            peer_name: peer,
            closed: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            peer_gone: AtomicBool::new(false),
            inbox: Mutex::new(Inbox::default()),
            stash_cap: max_frame.saturating_mul(2),
        });
        Ok(Parts {
            sender: Box::new(MqSender {
                msgsize: out_msgsize,
                scratch: Vec::with_capacity(out_msgsize),
                deadline: None,
                backlog: VecDeque::new(),
                // A 4-byte total in `FIRST` messages bounds every frame.
                max_frame: max_frame.min(u32::MAX as usize),
                shared: shared.clone(),
            }),
            receiver: Box::new(MqReceiver {
                parked: false,
                msg: vec![0; in_msgsize],
                assembler: Assembler::new(max_frame),
                max_frame,
                fin: false,
                shared: shared.clone(),
            }),
            closer: Box::new(MqCloser(shared)),
        })
    }
}

struct MqSender {
    msgsize: usize,
    scratch: Vec<u8>,
    max_frame: usize,
    /// Sends give up at this instant (see `FrameSender::set_deadline`).
    deadline: Option<Instant>,
    /// The unsent chunks of a frame cut short by its deadline, sent first by the next
    /// send.
    backlog: VecDeque<Vec<u8>>,
    shared: Arc<Shared>,
}

impl MqSender {
    /// Sends the chunks of a frame cut short earlier; `TimedOut` again, keeping the
    /// rest, if the deadline passes first.
    fn flush_backlog(&mut self) -> Result<(), TransportError> {
        while let Some(msg) = self.backlog.front() {
            self.shared.push(msg, self.deadline)?;
            self.backlog.pop_front();
        }
        Ok(())
    }
}

impl FrameSender for MqSender {
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    fn send_parts(&mut self, head: &[u8], tail: &[u8]) -> Result<(), TransportError> {
        check_len(head.len() + tail.len(), self.max_frame)?;
        // SYNC: Acquire, paired with the Release in `Shared::gone`.
        if self.shared.peer_gone.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        self.flush_backlog()?;
        let (shared, deadline, backlog) = (&*self.shared, self.deadline, &mut self.backlog);
        // Once a chunk went, a deadline no longer drops the frame: the rest is kept.
        let mut started = false;
        let mut cut = false;
        chunk::split_parts(head, tail, self.msgsize, &mut self.scratch, |msg| {
            if !cut {
                match shared.push(msg, deadline) {
                    Ok(()) => {
                        started = true;
                        return Ok(());
                    }
                    Err(TransportError::TimedOut) if started => cut = true,
                    Err(e) => return Err(e),
                }
            }
            backlog.push_back(msg.to_vec());
            Ok(())
        })?;
        if cut {
            return Err(TransportError::TimedOut);
        }
        Ok(())
    }
}

struct MqReceiver {
    /// One message; as long as the incoming queue's `mq_msgsize`.
    msg: Vec<u8>,
    assembler: Assembler,
    /// The connection's frame limit, which `set_max_frame` never exceeds.
    max_frame: usize,
    /// The peer's `FIN` arrived or it died: every later `recv` is `Closed`.
    fin: bool,
    /// `prepare_wait` parked the receiver; the next `recv` ends that.
    parked: bool,
    shared: Arc<Shared>,
}

/// What one receive completed.
enum Got {
    /// A frame in one message: bytes `1..n` of the message buffer.
    Whole(usize),
    /// A frame joined from chunks, in the assembler.
    Joined,
}

impl MqReceiver {
    fn next(&mut self, deadline: Option<Instant>) -> Result<Got, TransportError> {
        let MqReceiver {
            msg,
            assembler,
            fin,
            parked,
            shared,
            ..
        } = self;
        let mut inbox = shared.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        inbox.parked = false;
        // Woken by the poller, the wake-up may be the peer's exit (its pidfd): then what
        // is queued is taken without waiting, and an empty queue means `Closed` now, not
        // at the deadline.
        let exited = std::mem::take(parked) && shared.ends().peer.has_exited();
        loop {
            // SYNC: Acquire, paired with the Release in `MqCloser::close`.
            if *fin || shared.closed.load(Ordering::Acquire) {
                return Err(TransportError::Closed);
            }
            let received = match inbox.stash.pop_front() {
                Some(stashed) => {
                    inbox.bytes -= stashed.len();
                    msg[..stashed.len()].copy_from_slice(&stashed);
                    Ok(stashed.len())
                }
                None => {
                    let now = Instant::now();
                    let until = match deadline {
                        _ if exited => now,
                        None => now + SLICE,
                        Some(d) => d.min(now + SLICE),
                    };
                    shared.ends().incoming.receive_until(msg, until)
                }
            };
            match received {
                Ok(n) => match assembler.feed(&msg[..n])? {
                    Step::Whole => return Ok(Got::Whole(n)),
                    Step::Joined => return Ok(Got::Joined),
                    Step::Partial | Step::Wake => {}
                    Step::Fin => {
                        *fin = true;
                        return Err(shared.gone());
                    }
                },
                Err(Errno::ETIMEDOUT) => {
                    // Nothing arrived for a while: the queue is empty, so a dead peer
                    // has nothing left for us.
                    if shared.ends().peer.has_exited() {
                        *fin = true;
                        return Err(shared.peer_died());
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(TransportError::TimedOut);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(shared.io_error("receive from", e)),
            }
        }
    }
}

impl FrameReceiver for MqReceiver {
    fn recv(&mut self, deadline: Option<Instant>) -> Result<Payload<'_>, TransportError> {
        match self.next(deadline)? {
            Got::Whole(n) => Ok(Payload::whole(&self.msg[1..n])),
            Got::Joined => {
                let (head, tail) = self.assembler.split_frame();
                Ok(Payload { head, tail })
            }
        }
    }

    fn set_max_frame(&mut self, max_frame: usize) {
        self.assembler.set_max_frame(max_frame.min(self.max_frame));
    }

    fn frame_limit(&self) -> usize {
        self.max_frame
    }

    /// `WaitOn` the incoming queue (readable while a message is queued: a frame, a
    /// chunk of one, the peer's `FIN`) and the peer's pidfd (readable once the peer
    /// process exited, `kill -9` included); `Ready` when a blocked send stashed
    /// messages or the connection ended. A frame partly joined waits for its next
    /// chunk on the queue like any other message.
    fn prepare_wait(&mut self) -> Readiness<'_> {
        let shared = &*self.shared;
        // SYNC: Acquire, paired with the Release in `MqCloser::close`.
        if self.fin || shared.closed.load(Ordering::Acquire) {
            return Readiness::Ready;
        }
        // Held by a send only while it drains the queue, which does not wait.
        let mut inbox = shared.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        if !inbox.stash.is_empty() {
            return Readiness::Ready;
        }
        inbox.parked = true;
        self.parked = true;
        let ends = shared.ends();
        Readiness::WaitOn(WaitFds::two(ends.incoming.as_fd(), ends.peer.as_fd()))
    }
}

struct MqCloser(Arc<Shared>);

impl Closer for MqCloser {
    fn close(&self) {
        // SYNC: Release, paired with the Acquire in `MqReceiver::recv`.
        self.0.closed.store(true, Ordering::Release);
        // Wakes a receiver blocked on an empty queue at once; a full queue needs no
        // wake-up (the receiver has messages to take, then sees the flag) and a failed
        // send leaves the slice timeout as the bound.
        let _ = self.0.ends().wake.try_send(&[]);
    }

    fn abort(&self) {
        // SYNC: Release, paired with the Acquire in `Shared::push`, whose wait slices
        // (`SLICE`) bound how long a blocked send takes to see it.
        self.0.aborted.store(true, Ordering::Release);
        self.close();
    }
}
