//! One client's connection on the server: who reads its requests, which calls run,
//! and when it ends.
//!
//! # Who runs a call
//!
//! One thread at a time holds the connection's *reading role*. When it reads a request
//! it runs the call itself, with no hand-off (the sequential path: one thread reads,
//! runs and replies, and a call alone on its connection takes no lock). It keeps the
//! role while the call runs, under the watch counter: if the handler runs long (the
//! `watch` module says how long), the watcher takes the role from it and sends another
//! thread to read on, so a fast call queued behind a slow one is not held up by it. That
//! reader runs the calls it reads itself too (calls beside a slow one cost what calls
//! alone cost, with no hand-off between threads), and is relieved in turn if one of
//! them runs long. A connection whose overlapping calls took long lately (over
//! [`SLOW_CALL_US`], when its client says other calls are in flight: the overlap flag)
//! works the other way round: the thread that reads a call sends another to read on at
//! once, and calls read while others run are handed to the server's thread pool, so
//! that slow handlers run in parallel from the start. Up to `max_in_flight` calls run
//! at once; then reading pauses until one ends (backpressure: the client's requests
//! wait in the transport, in order).
//!
//! Arguments are copied out of the receive buffer (a memory copy of at most
//! [`INLINE_COPY_MAX`] bytes; a byte string received apart is moved, not copied) so
//! that the next reader can use it. Larger arguments received in one piece are used in
//! place and the reading role waits for the call (a copy would cost as much as the
//! transfer).
//!
//! # Idle connections wait in the poller
//!
//! A reader with nothing to read waits a moment ([`LINGER`]: the next request of a
//! caller in a loop comes sooner), then asks its transport how to wait and parks the
//! connection in the server's poller (the `poller` module), which sends a pool thread
//! to read when the connection's descriptor turns readable: an idle connection holds
//! no thread. The handshake is read the same way, so a client that connects and says
//! nothing waits in the poller until [`HANDSHAKE_TIMEOUT`](super::HANDSHAKE_TIMEOUT)
//! ends it. A transport that
//! can only be waited for by a blocked `recv` gets dedicated threads instead.
//!
//! When `max_in_flight` calls run, the reader gives its role up rather than wait with
//! a thread; the first call to end takes it back on its own thread.
//!
//! # Cancellation
//!
//! Each call has a flag that [`crate::server::cancelled`] reads. It is set by the
//! client's cancel frame (sent when its call times out), when the connection ends
//! (the client closed it, was dropped or died), and at shutdown. The calls that run one
//! at a time share one flag, reset per call, so the sequential path allocates nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::buf::Payload;
use crate::dispatch::{Dispatch, ReplySender};
use crate::error::{RemoteError, TransportError};
use crate::transport::{Closer, FrameReceiver, Parts, PeerCredentials, Readiness, WaitFds};
use crate::wire::{self, RequestHeader};

use super::alarm::Alarm;
use super::call;
use super::closed::{ClosedCloser, ClosedReceiver, ClosedSender};
use super::context::Entered;
use super::handshake::{self, HANDSHAKE_MAX_FRAME};
use super::poller::{Poller, Wakeable};
use super::threads::Threads;

/// How long a reader with nothing to read waits on its connection before it parks it
/// in the poller and gives its thread back (at once while jobs wait for a thread).
pub(super) const LINGER: Duration = Duration::from_millis(5);

/// Overlapping calls that take this long on average (µs) make a connection read on as
/// soon as the next overlapping call starts.
const SLOW_CALL_US: u64 = 100;

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

/// What a session needs from its server.
pub(super) struct ServerLink {
    pub(super) dispatch: Arc<dyn Dispatch>,
    pub(super) threads: Threads,
    pub(super) alarm: Arc<Alarm>,
    pub(super) poller: Arc<Poller>,
    pub(super) max_in_flight: usize,
    /// Called once, when the session has ended and nothing of it runs any more.
    pub(super) on_end: Arc<dyn Fn(u64) + Send + Sync>,
}

/// One connection's server side.
pub(super) struct Session {
    id: u64,
    peer: PeerCredentials,
    link: ServerLink,
    replies: Mutex<ReplySender>,
    receiver: Mutex<Box<dyn FrameReceiver>>,
    closer: Mutex<Box<dyn Closer>>,
    state: Mutex<State>,
    /// The handshake is done: requests follow.
    shaken: AtomicBool,
    /// When the handshake must be done by.
    shake_by: Instant,
    /// The transport can only be waited for by a thread blocked in `recv`: readers run
    /// on dedicated threads and never park.
    blocking: AtomicBool,
    /// The watch counter of the call run by the thread that holds the reading role:
    /// odd while its handler runs, even otherwise (its reply being sent counts as done:
    /// a substitute reader would not make that faster). The reply and the end of the
    /// call move it from its odd value to the next; the watcher, which relieves a
    /// connection whose odd value it sees twice in a row, moves it three on, taking the
    /// role from the call (which then runs on its own): so the call can tell, at its
    /// end, whether it still holds the role.
    inline_seq: AtomicU64,
    /// The id of the call run with no lock taken (see `read`), for the watcher's
    /// relief, which then counts it.
    inline_id: AtomicU64,
    /// Calls started and not yet finished, besides one run alone by the role holder
    /// with no lock taken (counted once relieved). Changed under the state's lock;
    /// read without it by the role holder, the only one who starts calls.
    in_flight: AtomicUsize,
    /// The `inline_seq` the watcher saw at its last look.
    watched_seq: AtomicU64,
    /// A moving average of how long this connection's overlapping calls took, in µs.
    recent_us: AtomicU64,
    /// The cancel flag of the call run by the thread that read it.
    inline_cancel: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    /// A thread holds the reading role: it reads requests, runs the call it read
    /// under the watch counter, or was sent to read.
    reading: bool,
    /// The poller waits for the connection's next bytes (nobody reads).
    parked: bool,
    /// `max_in_flight` calls ran, so the reader gave its role up: the next call to end
    /// reads on.
    room_wait: bool,
    /// The cancel flags of the counted calls (see `Session::in_flight`).
    handed: HashMap<u64, Arc<AtomicBool>>,
    /// No more requests will be read.
    ended: bool,
    /// `on_end` was called.
    gone: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Session {
    /// A session over a connection's parts, whose handshake must be done by
    /// `shake_by`; [`Session::start`] starts it.
    pub(super) fn new(
        id: u64,
        peer: PeerCredentials,
        parts: Parts,
        link: ServerLink,
        shake_by: Instant,
    ) -> Arc<Self> {
        let Parts {
            sender,
            receiver,
            closer,
        } = parts;
        Arc::new(Session {
            id,
            peer,
            link,
            replies: Mutex::new(ReplySender {
                sender,
                buf: Vec::with_capacity(256),
            }),
            receiver: Mutex::new(receiver),
            closer: Mutex::new(closer),
            state: Mutex::new(State {
                reading: true,
                ..State::default()
            }),
            shaken: AtomicBool::new(false),
            shake_by,
            blocking: AtomicBool::new(false),
            inline_seq: AtomicU64::new(0),
            inline_id: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            watched_seq: AtomicU64::new(0),
            recent_us: AtomicU64::new(0),
            inline_cancel: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Starts reading: at once if the hello may be there, else once it comes (the
    /// connection waits in the poller meanwhile).
    pub(super) fn start(self: &Arc<Self>) {
        let mut receiver = lock(&self.receiver);
        receiver.set_max_frame(HANDSHAKE_MAX_FRAME);
        let parked = match receiver.prepare_wait() {
            Readiness::WaitOn(fds) => self.park(fds),
            Readiness::Blocking => {
                self.blocking.store(true, Ordering::Relaxed);
                false
            }
            Readiness::Ready => false,
        };
        drop(receiver);
        if !parked {
            self.send_reader();
        }
    }

    /// Runs the reading role (which the caller set) on another thread.
    fn send_reader(self: &Arc<Self>) {
        let me = self.clone();
        let sent = if self.blocking.load(Ordering::Relaxed) {
            self.link.threads.run_dedicated(move || me.read())
        } else {
            self.link.threads.run(move || me.read())
        };
        if sent.is_err() {
            // No thread to be had: nobody will read this connection; end it.
            lock(&self.closer).close();
            self.stop_reading();
        }
    }

    /// Gives the reading role to the poller until one of `fds` turns readable;
    /// `false` if the poller cannot take it (it stopped), and the caller reads on.
    fn park(self: &Arc<Self>, fds: WaitFds<'_>) -> bool {
        let mut state = lock(&self.state);
        let deadline = (!self.shaken.load(Ordering::Acquire)).then_some(self.shake_by);
        let owner: Arc<dyn Wakeable> = self.clone();
        if self.link.poller.arm(self.id, fds, deadline, owner).is_err() {
            self.blocking.store(true, Ordering::Relaxed);
            return false;
        }
        state.reading = false;
        state.parked = true;
        true
    }

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

    /// Ends receiving (a blocked reader returns) and raises every running call's
    /// cancel flag; replies of calls in flight still go out.
    pub(super) fn close(self: &Arc<Self>) {
        self.cancel_all();
        lock(&self.closer).close();
        self.unpark();
    }

    /// Takes the reading role back from the poller, if it has it, and sends a thread
    /// to read (which sees the end, after a close).
    fn unpark(self: &Arc<Self>) {
        let mut state = lock(&self.state);
        if !state.parked {
            return;
        }
        self.link.poller.forget(self.id);
        state.parked = false;
        state.reading = true;
        drop(state);
        self.send_reader();
    }

    /// Like [`Session::close`], and also ends sends blocked on a client that does not
    /// read.
    pub(super) fn abort(self: &Arc<Self>) {
        self.cancel_all();
        lock(&self.closer).abort();
        self.unpark();
    }

    /// Drops the connection's transport, which the calls still running keep alive (a
    /// handler that will not return): the client sees the connection end, and the
    /// transport's OS objects go. Their later sends fail with `Closed`.
    pub(super) fn dispose(&self) {
        self.link.poller.forget(self.id);
        let sender = std::mem::replace(&mut lock(&self.replies).sender, Box::new(ClosedSender));
        drop(sender);
        // A reader still blocked holds the receiver; it ends by itself once the
        // connection is closed, and drops nothing of ours.
        if let Ok(mut receiver) = self.receiver.try_lock() {
            drop(std::mem::replace(&mut *receiver, Box::new(ClosedReceiver)));
        }
        drop(std::mem::replace(
            &mut *lock(&self.closer),
            Box::new(ClosedCloser),
        ));
    }

    /// The watcher's look: the watch counter, whether a call that gave the reading
    /// role up runs now, and whether it is the one that ran at the previous look too
    /// (it has run for at least one tick).
    pub(super) fn look(&self) -> (u64, bool, bool) {
        let seq = self.inline_seq.load(Ordering::SeqCst);
        let before = self.watched_seq.swap(seq, Ordering::Relaxed);
        let running = seq % 2 == 1;
        (seq, running, running && seq == before)
    }

    /// Sends a thread to read on behind the long call the watcher saw (counter value
    /// `seen`), unless that call has ended or given the role up already. The call is
    /// then on its own (counted, if it was not): the counter moves three on, and the
    /// new reader runs the next call itself.
    pub(super) fn relieve(self: &Arc<Self>, seen: u64) {
        let mut state = lock(&self.state);
        if !state.reading || state.parked || state.room_wait || state.ended {
            return;
        }
        // SYNC: AcqRel: Acquire pairs with the role holder's SeqCst store of `seen`, so
        // that `inline_id` below is the relieved call's.
        if self
            .inline_seq
            .compare_exchange(seen, seen + 3, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            // It ended (its thread reads on), or the reply is going out.
            return;
        }
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            // A call run alone with no lock taken: count it from now on, with the
            // connection's own cancel flag (no other call can start before it ends
            // and uncounts itself).
            self.in_flight.store(1, Ordering::Release);
            let id = self.inline_id.load(Ordering::Relaxed);
            state.handed.insert(id, self.inline_cancel.clone());
        }
        drop(state);
        self.send_reader_or_give_back();
    }

    /// Sends a thread to read on at once, before a call that will likely run long
    /// (the caller holds the role, and its call is counted): the role passes to it.
    fn read_on_now(self: &Arc<Self>) {
        self.send_reader_or_give_back();
    }

    /// Runs the reading role on another thread; if none can be had, the role goes
    /// back to the call that held it (`room_wait`: its thread reads on when it ends).
    fn send_reader_or_give_back(self: &Arc<Self>) {
        let me = self.clone();
        let sent = if self.blocking.load(Ordering::Relaxed) {
            self.link.threads.run_dedicated(move || me.read())
        } else {
            self.link.threads.run(move || me.read())
        };
        if sent.is_err() {
            let mut state = lock(&self.state);
            state.reading = false;
            state.room_wait = true;
        }
    }

    /// The reading role: read requests and run or hand them off, until the connection
    /// ends or the role passes to another thread.
    fn read(self: &Arc<Self>) {
        // Arguments of calls run here, copied out of the receive buffer; reused.
        let mut args = Vec::new();
        // Known to be under `max_in_flight` without asking: right after this thread's
        // own call ended with none other in flight (the sequential path skips a lock).
        let mut room = false;
        // A request was just read: the next one may follow at once.
        let mut linger = false;
        let mut clock = LingerClock::default();
        loop {
            if !room && !self.take_room() {
                return;
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
                Err(_) => {
                    drop(receiver);
                    return self.stop_reading();
                }
            };
            if !self.shaken.load(Ordering::Acquire) {
                let hello = frame.into_contiguous();
                let accepted = {
                    let mut out = lock(&self.replies);
                    let ReplySender { sender, buf } = &mut *out;
                    handshake::answer(&hello, &mut **sender, &*self.link.dispatch, buf)
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
                lock(&self.closer).close();
                return self.stop_reading();
            };
            if header.is_cancel() {
                drop(receiver);
                self.cancel(header.id);
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

    /// Counts call `id` as in flight, with `flag` (or a new one) as its cancel flag,
    /// which it returns.
    fn count(&self, id: u64, flag: Option<Arc<AtomicBool>>) -> Arc<AtomicBool> {
        let flag = flag.unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
        let mut state = lock(&self.state);
        self.in_flight.fetch_add(1, Ordering::Release);
        state.handed.insert(id, flag.clone());
        flag
    }

    /// Publishes, for the watcher, that the role holder runs call `id` now: returns the
    /// odd counter value it set. SeqCst pairs with the watcher's parked flag (see
    /// `Alarm::ring`).
    fn watch(&self, id: u64) -> u64 {
        self.inline_id.store(id, Ordering::Relaxed);
        let seq = (self.inline_seq.load(Ordering::Relaxed) + 1) | 1;
        self.inline_seq.store(seq, Ordering::SeqCst);
        self.link.alarm.ring();
        seq
    }

    /// Ends the watch of a call that set `seq`: whether the watcher relieved it (took
    /// the role, counted it) meanwhile.
    fn unwatch(&self, seq: u64) -> bool {
        // The reply usually moved it on already: a load costs less than a swap.
        let now = self.inline_seq.load(Ordering::Relaxed);
        if now == seq + 1 {
            return false;
        }
        match self
            .inline_seq
            .compare_exchange(seq, seq + 1, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => false,
            Err(now) => now != seq + 1,
        }
    }

    /// Whether a call may start; if `max_in_flight` run, gives the reading role up
    /// (the next call to end takes it) and says `false`.
    fn take_room(&self) -> bool {
        let mut state = lock(&self.state);
        if self.in_flight.load(Ordering::Relaxed) < self.link.max_in_flight {
            return true;
        }
        state.reading = false;
        state.room_wait = true;
        false
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
        let _context = Entered::enter(self.peer, deadline, cancel);
        let dispatch = &*self.link.dispatch;
        if let Some(error) = call::run(
            header.id,
            header.method,
            args,
            dispatch,
            &self.replies,
            running,
        ) && call::send_error(header.id, &error, &self.replies).is_err()
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
        if call::send_error(header.id, &RemoteError::Expired { method }, &self.replies).is_err() {
            self.abort();
        }
    }

    /// Raises the cancel flag of call `id`, if it runs.
    fn cancel(&self, id: u64) {
        // A call run alone with no lock taken is not here; its cancel frame can only
        // be read once it has ended, or once it was relieved (and counted).
        if let Some(flag) = lock(&self.state).handed.get(&id) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    fn cancel_all(&self) {
        self.raise_cancel_flags(&lock(&self.state));
    }

    /// Raises the cancel flag of every call that runs (the caller holds the state).
    fn raise_cancel_flags(&self, state: &State) {
        self.inline_cancel.store(true, Ordering::Relaxed);
        for flag in state.handed.values() {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// The reader stops: the connection ended (or failed, or never shook hands).
    fn stop_reading(&self) {
        let mut state = lock(&self.state);
        state.ended = true;
        state.reading = false;
        state.room_wait = false;
        // The client is gone or going: calls still running may stop early.
        self.raise_cancel_flags(&state);
        self.leave(state);
    }

    /// Calls `on_end` if this was the last thing the session ran.
    fn leave(&self, mut state: MutexGuard<'_, State>) {
        if state.ended
            && self.in_flight.load(Ordering::Relaxed) == 0
            && !state.reading
            && !state.parked
            && !state.gone
        {
            state.gone = true;
            drop(state);
            (self.link.on_end)(self.id);
        }
    }
}

impl Wakeable for Session {
    fn wake(self: Arc<Self>) {
        let mut state = lock(&self.state);
        if !state.parked {
            return;
        }
        state.parked = false;
        state.reading = true;
        drop(state);
        self.send_reader();
    }

    fn expire(self: Arc<Self>) {
        // The handshake's time is up (or the server stops): end the connection. The
        // poller has forgotten it; the reader sent sees the end.
        {
            let mut state = lock(&self.state);
            if !state.parked {
                return;
            }
            state.parked = false;
            state.reading = true;
        }
        self.cancel_all();
        lock(&self.closer).close();
        self.send_reader();
    }
}
