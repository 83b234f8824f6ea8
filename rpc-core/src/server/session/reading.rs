//! The reading role's loop: read a request, run it here (the sequential path, with no
//! lock when it is alone) or beside the calls that run long, or hand it to the pool;
//! linger a moment, then park the connection in the poller.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::buf::Payload;
use crate::dispatch::ReplySender;
use crate::error::{RemoteError, TransportError};
use crate::transport::Readiness;
use crate::wire::{self, RequestHeader};

use super::super::call;
use super::super::context::Entered;
use super::super::handshake;
use super::{Session, Stashed, lock};

/// The most bytes of requests a connection's reader keeps while it reads on for its
/// subscriptions at `max_in_flight` (see `Session::take_room`); past that it stops
/// reading until a call ends, as without subscriptions.
pub(super) const STASH_MAX: usize = 1 << 20;

/// What [`Session::take_room`] found.
enum Room {
    /// Under `max_in_flight`: a call may start.
    Free,
    /// At `max_in_flight`, with subscriptions open: read their control frames only.
    ControlOnly,
    /// At `max_in_flight`: the reader gave its role up.
    Full,
    /// A request kept for want of room (see `Session::stash`): start it before reading
    /// on.
    Stashed(Stashed),
}

/// How long a reader with nothing to read waits on its connection before it parks it
/// in the poller and gives its thread back (at once while jobs wait for a thread).
pub(super) const LINGER: Duration = Duration::from_millis(5);

/// Overlapping calls that take this long on average (µs) make a connection read on as
/// soon as the next overlapping call starts.
pub(super) const SLOW_CALL_US: u64 = 100;

/// Arguments up to this size are copied out of the receive buffer so that reading can
/// go on while their call runs.
pub(super) const INLINE_COPY_MAX: usize = 64 << 10;

/// Requests a lingering reader takes between two looks at the clock: its wait ends
/// [`LINGER`] after the look, not after each request (a look costs as much as a few
/// percent of a shared-memory call). A caller slower than that may find its
/// connection parked a little early, which costs one pass through the poller.
const CLOCK_REUSE: u32 = 16;

/// The end of a lingering reader's wait, read from the clock every [`CLOCK_REUSE`]
/// requests.
#[derive(Default)]
struct LingerClock {
    until: Option<Instant>,
    uses: u32,
}

impl LingerClock {
    fn until(&mut self) -> Instant {
        match self.until {
            Some(until) if self.uses > 0 => {
                self.uses -= 1;
                until
            }
            _ => {
                let until = Instant::now() + LINGER;
                self.until = Some(until);
                self.uses = CLOCK_REUSE;
                until
            }
        }
    }

    fn reset(&mut self) {
        self.until = None;
    }
}

impl Session {
    /// How long the next `recv` may wait before the reader parks the connection:
    /// [`LINGER`] right after a request (the caller's next one tends to follow at
    /// once), unless more threads are busy than the pool keeps; else it only takes
    /// what is there (a reader sent by the poller, a handshake).
    fn read_deadline(&self, linger: bool, clock: &mut LingerClock) -> Option<Instant> {
        let shaken = self.shaken.load(Ordering::Acquire);
        if self.blocking.load(Ordering::Relaxed) {
            return (!shaken).then_some(self.shake_by);
        }
        let until = if linger && !self.link.threads.pressed() {
            clock.until()
        } else {
            clock.reset();
            Instant::now()
        };
        Some(if shaken {
            until
        } else {
            until.min(self.shake_by)
        })
    }

    /// The reading role: read requests and run or hand them off, until the connection
    /// ends or the role passes to another thread.
    pub(super) fn read(self: &Arc<Self>) {
        // Arguments of calls run here, copied out of the receive buffer; reused.
        let mut args = Vec::new();
        // Known to be under `max_in_flight` without asking: right after this thread's
        // own call ended with none other in flight (the sequential path skips a lock).
        let mut room = false;
        // A request was just read: the next one may follow at once.
        let mut linger = false;
        let mut clock = LingerClock::default();
        // `max_in_flight` calls run, but the connection has subscriptions: read on for
        // their credit and cancels (a handler waiting for credit is one of the calls
        // that run), and keep the next request for when a call ends.
        let mut control_only = false;
        loop {
            if !room || control_only {
                match self.take_room() {
                    Room::Free => control_only = false,
                    Room::ControlOnly => control_only = true,
                    Room::Full => return,
                    Room::Stashed(Stashed {
                        header,
                        head,
                        tail,
                        deadline,
                    }) => {
                        // Read while there was no room, which a call that ended made.
                        let cancel = self.count(header.id, None);
                        self.hand_off(header, head, tail, deadline, cancel);
                        room = false;
                        continue;
                    }
                }
            }
            room = true;
            let mut receiver = lock(&self.receiver);
            let frame = match receiver.recv(self.read_deadline(linger, &mut clock)) {
                Ok(frame) => frame,
                Err(TransportError::TimedOut) => {
                    linger = false;
                    clock.reset();
                    if !self.shaken.load(Ordering::Acquire) && Instant::now() >= self.shake_by {
                        // Said nothing (or not all of its hello) in time.
                        drop(receiver);
                        return self.stop_reading();
                    }
                    match receiver.prepare_wait() {
                        Readiness::Ready => {}
                        Readiness::WaitOn(fds) => {
                            // The receiver lends the descriptors while they are
                            // registered.
                            if self.park(fds) {
                                return;
                            }
                        }
                        Readiness::Blocking => self.blocking.store(true, Ordering::Relaxed),
                    }
                    continue;
                }
                Err(e) => {
                    drop(receiver);
                    if !matches!(e, TransportError::Closed) {
                        // An oversized or malformed frame, an I/O error: this
                        // connection only ends.
                        crate::__event!(warn, connection = self.id, error = %e, "connection ended");
                    }
                    return self.stop_reading();
                }
            };
            if !self.shaken.load(Ordering::Acquire) {
                let hello = frame.into_contiguous();
                let accepted = {
                    let mut out = lock(&self.push.replies);
                    let ReplySender {
                        sender,
                        buf,
                        peer_limit,
                    } = &mut *out;
                    let client_limit = handshake::answer(
                        &hello,
                        &mut **sender,
                        &*self.link.dispatch,
                        buf,
                        self.frame_limit,
                    )
                    // Named `_why`: without the `tracing` feature the event is nothing.
                    .map_err(|_why| {
                        crate::__event!(warn, connection = self.id, "handshake rejected: {_why}");
                    })
                    .ok();
                    // Replies over the client's limit become an error for that call.
                    *peer_limit = client_limit.filter(|&n| n < self.frame_limit);
                    client_limit.is_some()
                };
                drop(hello);
                if !accepted {
                    drop(receiver);
                    return self.stop_reading();
                }
                receiver.set_max_frame(usize::MAX);
                self.shaken.store(true, Ordering::Release);
                continue;
            }
            room = false;
            linger = true;
            let Ok((header, head)) = wire::decode_request_header(frame.head) else {
                // Not a request: this connection only ends.
                drop(receiver);
                crate::__event!(
                    warn,
                    connection = self.id,
                    "connection ended: a frame that is not a request"
                );
                lock(&self.closer).close();
                return self.stop_reading();
            };
            if header.is_cancel() {
                drop(receiver);
                self.cancel(header.id);
                self.unsubscribe(header.id);
                room = true;
                continue;
            }
            if header.is_credit() {
                let credit = wire::decode_credit(head);
                drop(receiver);
                match credit {
                    Ok(events) => self.push.flows.grant(header.id, events),
                    Err(_) => {
                        crate::__event!(
                            warn,
                            connection = self.id,
                            "connection ended: a malformed credit frame"
                        );
                        lock(&self.closer).close();
                        return self.stop_reading();
                    }
                }
                room = true;
                continue;
            }
            let deadline = header.deadline.and_then(|d| Instant::now().checked_add(d));
            if header.deadline == Some(Duration::ZERO) {
                drop(receiver);
                self.expired(header);
                room = true;
                continue;
            }
            if control_only {
                let stashed = Stashed {
                    header,
                    head: head.to_vec(),
                    tail: frame.tail,
                    deadline,
                };
                drop(receiver);
                self.stash(stashed);
                continue;
            }
            let alone = self.in_flight.load(Ordering::Acquire) == 0;
            let slow = self.recent_us.load(Ordering::Relaxed) >= SLOW_CALL_US;
            let timed = header.overlaps.then(Instant::now);
            if alone && !(header.overlaps && slow) {
                // The sequential path: run it here, holding the role, with no lock.
                self.inline_cancel.store(false, Ordering::Relaxed);
                let relieved = if head.len() <= INLINE_COPY_MAX {
                    args.clear();
                    args.extend_from_slice(head);
                    let tail = frame.tail;
                    drop(receiver);
                    let seq = self.watch(header.id);
                    let payload = Payload { head: &args, tail };
                    let cancel = &self.inline_cancel;
                    self.run(
                        header,
                        payload,
                        deadline,
                        cancel,
                        Some((&self.inline_seq, seq)),
                    );
                    self.unwatch(seq)
                } else {
                    // Used in place, holding the receiver: the watcher is not told, so
                    // no reader comes to wait for the receive buffer this call holds.
                    let payload = Payload {
                        head,
                        tail: frame.tail,
                    };
                    self.run(header, payload, deadline, &self.inline_cancel, None);
                    drop(receiver);
                    false
                };
                if let Some(started) = timed {
                    self.note_duration(started);
                }
                if !relieved {
                    room = true;
                    continue;
                }
                // The watcher counted it and sent another reader (or, if it could not,
                // left the role for this thread to take back).
                if self.finish_handed(header.id) {
                    room = false;
                    continue;
                }
                return;
            }
            if !alone && (slow || head.len() > INLINE_COPY_MAX) {
                // Calls overlap and this connection's overlapping calls ran long lately
                // (or its arguments are too large to copy out): hand it to the pool and
                // read on.
                let cancel = self.count(header.id, None);
                let head = head.to_vec();
                let tail = frame.tail;
                drop(receiver);
                self.hand_off(header, head, tail, deadline, cancel);
                continue;
            }
            args.clear();
            args.extend_from_slice(head);
            let tail = frame.tail;
            drop(receiver);
            let payload = Payload { head: &args, tail };
            if alone {
                // Alone, but the client has other calls in flight and this connection's
                // overlapping calls ran long lately: send a reader on at once rather
                // than when the watcher finds this one running long, and run it here,
                // counted.
                let cancel = self.count(header.id, Some(self.inline_cancel.clone()));
                cancel.store(false, Ordering::Relaxed);
                self.read_on_now();
                self.run(header, payload, deadline, &cancel, None);
                if let Some(started) = timed {
                    self.note_duration(started);
                }
                if self.finish_handed(header.id) {
                    room = false;
                    continue;
                }
                return;
            }
            // Beside calls that run long (the watcher sent this thread to read past
            // them): counted, with a cancel flag of its own, but run here, holding the
            // role, with no hand-off; relieved in turn if it runs long.
            let cancel = self.count(header.id, None);
            let seq = self.watch(header.id);
            self.run(
                header,
                payload,
                deadline,
                &cancel,
                Some((&self.inline_seq, seq)),
            );
            let relieved = self.unwatch(seq);
            if let Some(started) = timed {
                self.note_duration(started);
            }
            if relieved {
                if self.finish_handed(header.id) {
                    room = false;
                    continue;
                }
                return;
            }
            let mut state = lock(&self.state);
            self.in_flight.fetch_sub(1, Ordering::Release);
            state.handed.remove(&header.id);
            room = self.in_flight.load(Ordering::Relaxed) < self.link.max_in_flight;
        }
    }

    /// Whether a call may start. If `max_in_flight` run: with subscriptions open,
    /// the reader reads on for their control frames only; else it gives the reading
    /// role up (the next call to end takes it).
    fn take_room(&self) -> Room {
        let mut state = lock(&self.state);
        if self.in_flight.load(Ordering::Relaxed) < self.link.max_in_flight {
            return match state.stashed.pop_front() {
                Some(stashed) => {
                    state.stashed_bytes -= stashed.len();
                    Room::Stashed(stashed)
                }
                None => Room::Free,
            };
        }
        if state.stashed_bytes < STASH_MAX && self.push.flows.any_open() {
            return Room::ControlOnly;
        }
        state.reading = false;
        state.room_wait = true;
        Room::Full
    }

    /// Keeps a request read while `max_in_flight` calls run, after those kept before
    /// it: the calls that end start them, in order (see `take_room`).
    fn stash(&self, stashed: Stashed) {
        let mut state = lock(&self.state);
        state.stashed_bytes += stashed.len();
        state.stashed.push_back(stashed);
    }

    /// Runs a call on a pool thread (or here, if no thread can be had).
    fn hand_off(
        self: &Arc<Self>,
        header: RequestHeader,
        head: Vec<u8>,
        tail: Option<Vec<u8>>,
        deadline: Option<Instant>,
        cancel: Arc<AtomicBool>,
    ) {
        let me = self.clone();
        let job = move || {
            let started = Instant::now();
            let payload = Payload { head: &head, tail };
            me.run(header, payload, deadline, &cancel, None);
            me.note_duration(started);
            if me.finish_handed(header.id) {
                me.read();
            }
        };
        if let Err(job) = self.link.threads.run_or_return(job) {
            job();
        }
    }

    /// Folds an overlapping call's duration into `recent_us` (a moving average).
    fn note_duration(&self, started: Instant) {
        let took = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u64;
        let recent = self.recent_us.load(Ordering::Relaxed);
        self.recent_us
            .store((recent * 3 + took) / 4, Ordering::Relaxed);
    }

    /// Ends a counted call whose thread does not hold the role; `true` when this
    /// thread is to take it and read on (the reader had given it up for want of room,
    /// or no thread could be had to read).
    fn finish_handed(&self, id: u64) -> bool {
        let mut state = lock(&self.state);
        self.in_flight.fetch_sub(1, Ordering::Release);
        state.handed.remove(&id);
        if state.room_wait && !state.ended {
            state.room_wait = false;
            state.reading = true;
            return true;
        }
        if state.parked && !state.stashed.is_empty() && !state.ended {
            // Requests wait for the room this call made, and the reader parked the
            // connection: take the role back from the poller and start them.
            self.link.poller.forget(self.id);
            state.parked = false;
            state.reading = true;
            return true;
        }
        self.leave(state);
        false
    }

    /// Runs one call on this thread with its context set, and sends the error reply if
    /// the handler sent none.
    fn run(
        self: &Arc<Self>,
        header: RequestHeader,
        args: Payload<'_>,
        deadline: Option<Instant>,
        cancel: &Arc<AtomicBool>,
        running: Option<(&AtomicU64, u64)>,
    ) {
        let _context = Entered::enter(&self.peer, deadline, cancel);
        let dispatch = &*self.link.dispatch;
        if let Some(error) = call::run(
            header.id,
            header.method,
            args,
            dispatch,
            &self.push,
            running,
        ) && call::send_error(header.id, &error, &self.push.replies).is_err()
        {
            // The connection cannot carry replies any more: end it.
            self.abort();
        }
    }

    /// Answers a request that arrived with no time left, without running it.
    fn expired(self: &Arc<Self>, header: RequestHeader) {
        let method = self
            .link
            .dispatch
            .info()
            .method_name(header.method)
            .to_owned();
        if call::send_error(
            header.id,
            &RemoteError::Expired { method },
            &self.push.replies,
        )
        .is_err()
        {
            self.abort();
        }
    }

    /// Counts call `id` as in flight, with `flag` (or a new one) as its cancel flag,
    /// which it returns.
    fn count(&self, id: u64, flag: Option<Arc<AtomicBool>>) -> Arc<AtomicBool> {
        let flag = flag.unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
        let mut state = lock(&self.state);
        self.in_flight.fetch_add(1, Ordering::Release);
        state.handed.insert(id, flag.clone());
        flag
    }
}
