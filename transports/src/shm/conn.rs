//! One connection over a segment: the frame sender (producer of the outgoing ring),
//! the frame receiver (consumer of the incoming ring), and the closer.
//!
//! Records are 8-byte aligned: a header (`len: u32`, 4 bytes unused) then the payload
//! padded to 8. A frame whose record fits in the ring is written whole and contiguous
//! (after a skip record when it would cross the end), so the receiver decodes it in
//! place; a larger frame streams through the ring in pieces while the receiver copies
//! it out. The sender copies a frame's two parts (`send_parts`) straight from where they
//! are into its record, or encodes a large frame straight into it (`send_encoded`:
//! counted first, so that the record is reserved once). Lengths are checked against
//! `max_frame` and the ring; indices and ranges are checked by the ring
//! (`shm/ring.rs`).

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, recv, send};
use rpc_core::codec::{FrameBuf, Payload};
use rpc_core::framing::check_len;
use rpc_core::{
    Closer, CodecError, FrameReceiver, FrameSender, Readiness, TransportError, WaitFds,
};

use super::index::{self, HEADER, Placement};
use super::layout::{AWAKE, ControlPage, IN_POLLER, PAD_RECORD, Side};
use super::ring::{Reader, Writer};
use super::segment::Segment;
use super::wait::{SleepOn, Waiting, notify, wait_until, wake_all};

/// Longest spin while the peer is busy producing what we wait for.
const SPIN_BUSY: Duration = Duration::from_millis(1);
/// Most `recv` calls one drain of the doorbell makes: a peer that rings faster than we
/// drain cannot keep us in the loop (the socket then stays readable, and the server
/// paces its wake-ups).
const DRAIN_ROUNDS: usize = 16;

/// What both halves and the closer share.
pub struct Conn {
    segment: Arc<Segment>,
    is_client: bool,
    /// The rendezvous connection, kept open as the liveness link (the kernel closes it
    /// when the peer dies, however it dies) and as the doorbell of a side parked in a
    /// poller: a byte on it says "look at the ring" (see `wait::notify`).
    socket: UnixStream,
    closed: AtomicBool,
    /// Set once the rendezvous socket reported the peer's end closed: the peer process
    /// is gone (or broke the protocol); what it published is still received.
    peer_dead: AtomicBool,
    /// Set by the closer's `close`: receiving ends, sending goes on (replies of calls
    /// in flight), until `abort` or the drop closes everything.
    receiving_closed: AtomicBool,
    max_frame: usize,
    spin: Duration,
    peer: String,
}

impl Conn {
    /// A connection over `segment`, from the client's or the server's side.
    pub fn new(
        segment: Segment,
        is_client: bool,
        socket: UnixStream,
        max_frame: usize,
        spin: Duration,
        peer: String,
    ) -> Arc<Self> {
        let conn = Conn {
            segment: Arc::new(segment),
            is_client,
            socket,
            closed: AtomicBool::new(false),
            peer_dead: AtomicBool::new(false),
            receiving_closed: AtomicBool::new(false),
            max_frame,
            spin,
            peer,
        };
        Arc::new(conn)
    }

    fn control(&self) -> &ControlPage {
        self.segment.control()
    }

    /// The mapped segment, for the replay driver that writes as the peer.
    #[cfg(feature = "test-util")]
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    /// The segment's descriptor, on the side that created it (for tests).
    #[cfg(feature = "test-util")]
    pub(crate) fn segment_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.segment.fd()
    }

    /// Our end of the rendezvous socket (for tests that ring it as a hostile peer).
    #[cfg(feature = "test-util")]
    pub(crate) fn socket_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Our side's line.
    pub fn my_side(&self) -> &Side {
        if self.is_client {
            &self.control().client
        } else {
            &self.control().server
        }
    }

    /// The peer's side line.
    pub fn peer_side(&self) -> &Side {
        if self.is_client {
            &self.control().server
        } else {
            &self.control().client
        }
    }

    /// The spin budget while the peer is not busy for us.
    pub fn spin(&self) -> Duration {
        self.spin
    }

    /// The spin budget while the peer is busy producing what we wait for.
    pub fn spin_busy(&self) -> Duration {
        if self.spin.is_zero() {
            Duration::ZERO
        } else {
            self.spin.max(SPIN_BUSY)
        }
    }

    /// Says whether we produce something the peer waits for.
    ///
    /// Written only when it changes: the peer spins reading this line, and every write
    /// takes the line back from it (the next fence waits for that).
    fn set_busy(&self, busy: bool) {
        let flag = &self.my_side().busy;
        let busy = u32::from(busy);
        if flag.load(Ordering::Relaxed) != busy {
            flag.store(busy, Ordering::Relaxed);
        }
    }

    /// The peer's description for messages.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    fn writer(&self) -> Writer {
        Writer::new(self.segment.clone(), self.is_client)
    }

    fn reader(&self) -> Reader {
        Reader::new(self.segment.clone(), !self.is_client)
    }

    /// `Closed` if either side closed the connection.
    pub fn check_open(&self) -> Result<(), TransportError> {
        // SYNC: Acquire, paired with the Release store of `closed` in Conn::close.
        if self.closed.load(Ordering::Acquire)
            || self.peer_side().closed.load(Ordering::Acquire) != 0
        {
            return Err(TransportError::Closed);
        }
        Ok(())
    }

    /// `Closed` if the peer process is gone: its end of the rendezvous socket closed
    /// (`POLLHUP`, reported even with doorbell bytes still unread). Doorbell bytes alone
    /// say nothing and are left for the receiver parked on them (a peer that only shut
    /// down its writing half is found by that receiver's drain, at end-of-file).
    pub fn check_peer_alive(&self) -> Result<(), TransportError> {
        let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
        let ended = PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) | Err(Errno::EINTR) => Ok(()),
            // Only doorbell bytes. (Flags nix does not know count as the end.)
            Ok(_) if fds[0].revents().is_some_and(|r| !r.intersects(ended)) => Ok(()),
            _ => {
                self.peer_dead.store(true, Ordering::Release);
                Err(TransportError::Closed)
            }
        }
    }

    /// Whether the rendezvous socket reported the peer gone (see `check_peer_alive`).
    fn peer_dead(&self) -> bool {
        // SYNC: Acquire, paired with the Release stores in `check_peer_alive` and
        // `drain_doorbell`.
        self.peer_dead.load(Ordering::Acquire)
    }

    /// Wakes the peer parked in a poller: one byte on our end of the socket. A full
    /// socket buffer (`EAGAIN`) is readable already; a peer gone needs no wake-up.
    fn ring_doorbell(&self) {
        let _ = send(
            self.socket.as_raw_fd(),
            &[1],
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        );
    }

    /// Reads the doorbell bytes waiting on our end of the socket, without blocking, so
    /// that it turns readable again only for a new ring. Notes the peer's end if the
    /// socket reports it (end-of-file or an error).
    fn drain_doorbell(&self) {
        let mut buf = [0u8; 256];
        for _ in 0..DRAIN_ROUNDS {
            match recv(self.socket.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) if n > 0 => {}
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                // End of file, or the socket failed: the peer is gone.
                Ok(_) | Err(_) => {
                    // SYNC: Release, paired with the Acquire load in `peer_dead`.
                    self.peer_dead.store(true, Ordering::Release);
                    return;
                }
            }
        }
    }

    /// Ends receiving on our side (a waiting or later `recv` returns `Closed`); sends
    /// go on.
    pub fn close_receiving(&self) {
        // SYNC: Release, paired with the Acquire load in the receiver's wait.
        self.receiving_closed.store(true, Ordering::Release);
        let ctl = self.control();
        for word in [&ctl.c2s.producer.data_seq, &ctl.s2c.producer.data_seq] {
            wake_all(word);
        }
    }

    /// Marks the connection closed on our side and wakes every waiter of both sides.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // SYNC: Release, paired with the Acquire load in the peer's check_open (and in
        // its `prepare_wait`, which a ring after this store reaches in any case).
        self.my_side().closed.store(1, Ordering::Release);
        let ctl = self.control();
        for word in [
            &ctl.c2s.producer.data_seq,
            &ctl.c2s.consumer.space_seq,
            &ctl.s2c.producer.data_seq,
            &ctl.s2c.consumer.space_seq,
        ] {
            wake_all(word);
        }
        // A peer parked in a poller waits on the socket, not on a futex word.
        self.ring_doorbell();
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.close();
    }
}

impl Waiting for Conn {
    fn my_side(&self) -> &Side {
        Conn::my_side(self)
    }
    fn peer_side(&self) -> &Side {
        Conn::peer_side(self)
    }
    fn spin(&self) -> Duration {
        Conn::spin(self)
    }
    fn spin_busy(&self) -> Duration {
        Conn::spin_busy(self)
    }
    fn check_open(&self) -> Result<(), TransportError> {
        Conn::check_open(self)
    }
    fn check_peer_alive(&self) -> Result<(), TransportError> {
        Conn::check_peer_alive(self)
    }
}

/// Producer of the outgoing ring.
pub struct ShmSender {
    conn: Arc<Conn>,
    ring: Writer,
    /// Sends give up at this instant (see `FrameSender::set_deadline`).
    deadline: Option<Instant>,
    /// A streamed frame cut short by its deadline: its unsent bytes and the padding
    /// that ends its record, written by the next send before anything else.
    backlog: Option<(Vec<u8>, u64)>,
}

impl ShmSender {
    /// The sending half of `conn`.
    pub fn new(conn: Arc<Conn>) -> Self {
        let ring = conn.writer();
        ShmSender {
            conn,
            ring,
            deadline: None,
            backlog: None,
        }
    }

    fn wait_free(&self, need: u64) -> Result<(), TransportError> {
        let ctl = self.ring.control();
        wait_until(
            &*self.conn,
            SleepOn {
                word: &ctl.consumer.space_seq,
                flag: &ctl.producer.producer_sleeping,
            },
            self.deadline,
            || {
                self.conn.check_open()?;
                Ok(self.ring.free()? >= need)
            },
        )
    }

    fn publish(&mut self, n: u64) -> Result<(), TransportError> {
        self.ring.publish(n)?;
        let ctl = self.ring.control();
        notify(
            &ctl.producer.data_seq,
            &ctl.consumer.consumer_sleeping,
            || self.conn.ring_doorbell(),
        );
        Ok(())
    }
}

impl FrameSender for ShmSender {
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    fn has_backlog(&self) -> bool {
        self.backlog.is_some()
    }

    fn send_parts(&mut self, head: &[u8], tail: &[u8]) -> Result<(), TransportError> {
        self.sending(head.len() + tail.len(), |s| s.send_record(head, tail))
    }

    fn send_encoded(
        &mut self,
        encode: &mut dyn FnMut(&mut FrameBuf<'_>) -> Result<(), CodecError>,
    ) -> Option<Result<Result<(), CodecError>, TransportError>> {
        let mut count = FrameBuf::counter();
        if let Err(e) = encode(&mut count) {
            return Some(Ok(Err(e)));
        }
        let len = count.len();
        if let Err(e) = check_len(len, self.conn.max_frame) {
            return Some(Err(e));
        }
        // A frame larger than the ring streams through it from the caller's buffer.
        if index::record(len as u64) > self.ring.capacity() {
            return None;
        }
        Some(
            self.sending(len, |s| s.encode_record(len as u64, encode))
                .map(Ok),
        )
    }
}

impl ShmSender {
    /// Runs `send` for a frame of `len` bytes, once its length and the connection are
    /// checked and a frame cut short before is finished, saying meanwhile that we
    /// produce something the peer waits for.
    fn sending(
        &mut self,
        len: usize,
        send: impl FnOnce(&mut Self) -> Result<(), TransportError>,
    ) -> Result<(), TransportError> {
        check_len(len, self.conn.max_frame)?;
        self.conn.check_open()?;
        self.conn.set_busy(true);
        let sent = self.flush_backlog().and_then(|()| send(self));
        // Done producing: a client now waits for the reply; a server for the next request.
        self.conn.set_busy(false);
        sent
    }

    /// Encodes a frame of `len` bytes (counted by the caller) straight into a record
    /// reserved for it, which fits the ring.
    fn encode_record(
        &mut self,
        len: u64,
        encode: &mut dyn FnMut(&mut FrameBuf<'_>) -> Result<(), CodecError>,
    ) -> Result<(), TransportError> {
        let Placement::Whole { pad, record } =
            index::placement(self.ring.tail(), len, self.ring.capacity())
        else {
            return Err(TransportError::Corrupt(
                "a frame larger than the ring cannot be encoded in place",
            ));
        };
        self.pad(pad)?;
        self.wait_free(record)?;
        self.ring.write_u32(0, len as u32)?;
        let written = self.ring.fill(HEADER, len, |space| {
            let mut buf = FrameBuf::slice(space);
            encode(&mut buf).map(|()| buf.len())
        })?;
        // Nothing is published unless the second pass wrote what the first counted.
        match written {
            Ok(n) if n as u64 == len => self.publish(record),
            Ok(_) => Err(TransportError::Corrupt(
                "the encoder wrote another length on its second pass",
            )),
            Err(_) => Err(TransportError::Corrupt(
                "the encoder failed on its second pass",
            )),
        }
    }

    /// Writes a skip record of `pad` bytes (to the end of the ring), if any.
    fn pad(&mut self, pad: u64) -> Result<(), TransportError> {
        if pad > 0 {
            self.wait_free(pad)?;
            self.ring.write_u32(0, PAD_RECORD)?;
            self.publish(pad)?;
        }
        Ok(())
    }

    /// Writes the record of the frame `head` then `tail`, each part copied once,
    /// straight from where it is into the ring: reserved whole when the record fits,
    /// else streamed through the ring as room appears.
    fn send_record(&mut self, head: &[u8], tail: &[u8]) -> Result<(), TransportError> {
        let len = (head.len() + tail.len()) as u64;
        match index::placement(self.ring.tail(), len, self.ring.capacity()) {
            Placement::Whole { pad, record } => {
                self.pad(pad)?;
                self.wait_free(record)?;
                self.ring.write_u32(0, len as u32)?;
                self.ring.write(HEADER, head)?;
                if !tail.is_empty() {
                    self.ring.write(HEADER + head.len() as u64, tail)?;
                }
                self.publish(record)?;
            }
            Placement::Streamed => {
                self.wait_free(HEADER)?;
                self.ring.write_u32(0, len as u32)?;
                self.publish(HEADER)?;
                let pad = index::padded(len) - len;
                if let Err((e, sent)) = self.stream(&[head, tail], pad) {
                    if matches!(e, TransportError::TimedOut) {
                        self.backlog = Some((unsent(&[head, tail], sent), pad));
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Streams `parts` one after the other (the rest of a record whose header is
    /// published) as room appears, then its `pad`. On failure, returns how many bytes
    /// of `parts` went.
    fn stream(&mut self, parts: &[&[u8]], pad: u64) -> Result<(), (TransportError, usize)> {
        let mut sent = 0;
        for bytes in parts {
            let mut done = 0;
            while done < bytes.len() {
                let step = (|| {
                    self.wait_free(1)?;
                    let want = self.ring.free()?.min((bytes.len() - done) as u64);
                    let n = index::run(self.ring.tail(), want, self.ring.capacity()) as usize;
                    self.ring.write(0, &bytes[done..done + n])?;
                    self.publish(n as u64)?;
                    Ok(n)
                })();
                let n = step.map_err(|e| (e, sent))?;
                done += n;
                sent += n;
            }
        }
        if pad > 0 {
            self.wait_free(pad).map_err(|e| (e, sent))?;
            self.publish(pad).map_err(|e| (e, sent))?;
        }
        Ok(())
    }

    /// Finishes a frame whose send timed out half-way; `TimedOut` again, keeping the
    /// rest, if this send's deadline passes first.
    fn flush_backlog(&mut self) -> Result<(), TransportError> {
        let Some((bytes, pad)) = self.backlog.take() else {
            return Ok(());
        };
        match self.stream(&[&bytes], pad) {
            Ok(()) => Ok(()),
            Err((e, sent)) => {
                if matches!(e, TransportError::TimedOut) {
                    self.backlog = Some((bytes[sent..].to_vec(), pad));
                }
                Err(e)
            }
        }
    }
}

/// The bytes of `parts`, one after the other, past the first `sent`.
fn unsent(parts: &[&[u8]], mut sent: usize) -> Vec<u8> {
    let mut rest = Vec::new();
    for part in parts {
        let skip = sent.min(part.len());
        rest.extend_from_slice(&part[skip..]);
        sent -= skip;
    }
    rest
}

/// Consumer of the incoming ring.
pub struct ShmReceiver {
    conn: Arc<Conn>,
    ring: Reader,
    /// Bytes of the record lent out by the last `recv`, released at the next.
    lent: u64,
    /// A frame larger than the ring being copied out: its length.
    streaming: Option<u64>,
    /// The streamed frame's bytes so far.
    buf: Vec<u8>,
    /// Frames over this are refused (at most the connection's `max_frame`).
    max_frame: usize,
    /// Our `consumer_sleeping` flag says [`IN_POLLER`] (set by `prepare_wait`, ended by
    /// the next `recv`).
    parked: bool,
}

impl ShmReceiver {
    /// The receiving half of `conn`.
    pub fn new(conn: Arc<Conn>) -> Self {
        let ring = conn.reader();
        ShmReceiver {
            max_frame: conn.max_frame,
            conn,
            ring,
            lent: 0,
            streaming: None,
            buf: Vec::new(),
            parked: false,
        }
    }

    /// Ends a poller wait announced by `prepare_wait`: the peer goes back to the futex.
    /// Coming from the poller with nothing in the ring, the wake-up may have been the
    /// peer's death: one `poll` of the socket notes it, so that this `recv` returns
    /// `Closed` at once instead of after its deadline.
    fn unpark(&mut self) {
        if !self.parked {
            return;
        }
        self.parked = false;
        self.ring
            .control()
            .consumer
            .consumer_sleeping
            .store(AWAKE, Ordering::Relaxed);
        if self.ring.available().is_ok_and(|n| n == 0) {
            let _ = self.conn.check_peer_alive();
        }
    }

    fn wait_available(&self, need: u64, deadline: Option<Instant>) -> Result<(), TransportError> {
        let ctl = self.ring.control();
        wait_until(
            &*self.conn,
            SleepOn {
                word: &ctl.producer.data_seq,
                flag: &ctl.consumer.consumer_sleeping,
            },
            deadline,
            || {
                // SYNC: Acquire, paired with the Release stores in `close` and
                // `close_receiving`.
                if self.conn.closed.load(Ordering::Acquire)
                    || self.conn.receiving_closed.load(Ordering::Acquire)
                {
                    return Err(TransportError::Closed);
                }
                let available = self.ring.available()?;
                if available >= need {
                    return Ok(true);
                }
                // A peer that closed (or died) after its last frame: drain first, then
                // Closed. Having seen its end, the ring is read again: a peer publishes
                // its last frame before it closes (the Acquire pairs with its Release),
                // so a frame and the end that both landed after the first read are not
                // taken for the end alone.
                if self.conn.peer_side().closed.load(Ordering::Acquire) != 0
                    || self.conn.peer_dead()
                {
                    if self.ring.available()? < need {
                        return Err(TransportError::Closed);
                    }
                    return Ok(true);
                }
                Ok(false)
            },
        )
    }

    fn release(&mut self, n: u64) -> Result<(), TransportError> {
        self.ring.release(n)?;
        let ctl = self.ring.control();
        notify(
            &ctl.consumer.space_seq,
            &ctl.producer.producer_sleeping,
            || self.conn.ring_doorbell(),
        );
        Ok(())
    }

    /// Copies the rest of a streamed frame of `len` bytes into `buf`.
    fn stream_out(&mut self, len: u64, deadline: Option<Instant>) -> Result<(), TransportError> {
        while (self.buf.len() as u64) < len {
            self.wait_available(1, deadline)?;
            let want = (len - self.buf.len() as u64).min(self.ring.available()?);
            let n = index::run(self.ring.head(), want, self.ring.capacity());
            self.buf.extend_from_slice(self.ring.peek(0, n)?);
            self.release(n)?;
        }
        let pad = index::padded(len) - len;
        if pad > 0 {
            self.wait_available(pad, deadline)?;
            self.release(pad)?;
        }
        Ok(())
    }

    /// A server that received a request now produces its reply: the client may spin.
    fn handling(&self) {
        if !self.conn.is_client {
            self.conn.set_busy(true);
        }
    }

    /// Bytes reserved for copying frames larger than the ring out (the replay checks
    /// that a peer's length claim reserves nothing beyond what arrived).
    #[cfg(feature = "test-util")]
    pub(crate) fn copy_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Fails the connection for good: the peer broke the protocol.
    fn broken(&self, e: TransportError) -> TransportError {
        self.conn.close();
        e
    }
}

impl FrameReceiver for ShmReceiver {
    fn recv(&mut self, deadline: Option<Instant>) -> Result<Payload<'_>, TransportError> {
        self.next_frame(deadline).map(Payload::whole)
    }

    fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame.min(self.conn.max_frame);
    }

    fn frame_limit(&self) -> usize {
        self.conn.max_frame
    }

    /// Parks the connection on the rendezvous socket: announces [`IN_POLLER`] in our
    /// `consumer_sleeping` flag, so that the peer rings the socket (one byte) when it
    /// publishes, instead of bumping the futex. `Ready` when anything is in the ring
    /// (a frame, or the rest of one being streamed), when either side closed, or when
    /// the socket reports the peer gone (`kill -9` included); the next `recv` then
    /// returns the frame, or `Closed` at once. Doorbell bytes of earlier rings are
    /// drained first, so the socket turns readable only for a new ring or the peer's
    /// end.
    fn prepare_wait(&mut self) -> Readiness<'_> {
        // The last frame is done with (its borrow ended): its room goes back now, not
        // at the next `recv`, and it no longer counts as available.
        if self.lent > 0 {
            let lent = std::mem::take(&mut self.lent);
            if self.release(lent).is_err() {
                // Corrupt indices: the next `recv` reports it.
                return Readiness::Ready;
            }
        }
        self.conn.drain_doorbell();
        let flag = &self.ring.control().consumer.consumer_sleeping;
        flag.store(IN_POLLER, Ordering::Relaxed);
        self.parked = true;
        // SYNC: SeqCst fence, paired with the one in `wait::notify`: either we see the
        // peer's publish (or close) below, or it sees our flag and rings.
        fence(Ordering::SeqCst);
        let nothing = self.ring.available().is_ok_and(|n| n == 0)
            && self.conn.check_open().is_ok()
            // SYNC: Acquire, paired with the Release store in `close_receiving`.
            && !self.conn.receiving_closed.load(Ordering::Acquire)
            && !self.conn.peer_dead();
        if !nothing {
            self.unpark();
            return Readiness::Ready;
        }
        Readiness::WaitOn(WaitFds::one(self.conn.socket.as_fd()))
    }
}

impl ShmReceiver {
    /// The next frame, whole: lent from the ring when its record fits, else copied out
    /// into `buf` (the sender streamed it).
    fn next_frame(&mut self, deadline: Option<Instant>) -> Result<&[u8], TransportError> {
        self.unpark();
        if self.lent > 0 {
            let lent = std::mem::take(&mut self.lent);
            self.release(lent)?;
        }
        if let Some(len) = self.streaming {
            self.stream_out(len, deadline)?;
            self.streaming = None;
            self.handling();
            return Ok(&self.buf);
        }
        let capacity = self.ring.capacity();
        loop {
            self.wait_available(HEADER, deadline)?;
            let len = self.ring.read_u32(0)?;
            if len == PAD_RECORD {
                let skip = index::to_end(self.ring.head(), capacity);
                self.wait_available(skip, deadline)?;
                self.release(skip)?;
                continue;
            }
            let len = u64::from(len);
            check_len(len as usize, self.max_frame).map_err(|e| self.broken(e))?;
            let record = index::record(len);
            if record <= capacity {
                self.wait_available(record, deadline)?;
                // Checks that the record does not cross the end before lending it.
                self.ring.peek(0, record).map_err(|e| self.broken(e))?;
                self.lent = record;
                self.handling();
                return self.ring.peek(HEADER, len);
            }
            self.release(HEADER)?;
            self.buf.clear();
            self.streaming = Some(len);
            self.stream_out(len, deadline)?;
            self.streaming = None;
            self.handling();
            return Ok(&self.buf);
        }
    }
}

/// Closes the connection from any thread: `close` ends receiving, `abort` everything.
pub struct ShmCloser(pub Arc<Conn>);

impl Closer for ShmCloser {
    fn close(&self) {
        self.0.close_receiving();
    }

    fn abort(&self) {
        self.0.close();
    }
}
