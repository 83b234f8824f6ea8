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
//! [`SLOW_CALL_US`](reading::SLOW_CALL_US), when its client says other calls are in flight: the overlap flag)
//! works the other way round: the thread that reads a call sends another to read on at
//! once, and calls read while others run are handed to the server's thread pool, so
//! that slow handlers run in parallel from the start. Up to `max_in_flight` calls run
//! at once; then reading pauses until one ends (backpressure: the client's requests
//! wait in the transport, in order).
//!
//! Arguments are copied out of the receive buffer (a memory copy of at most
//! [`INLINE_COPY_MAX`](reading::INLINE_COPY_MAX) bytes; a byte string received apart is moved, not copied) so
//! that the next reader can use it. Larger arguments received in one piece are used in
//! place and the reading role waits for the call (a copy would cost as much as the
//! transfer).
//!
//! # Idle connections wait in the poller
//!
//! A reader with nothing to read waits a moment ([`LINGER`](reading::LINGER): the next request of a
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

mod reading;
mod watching;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::dispatch::{Dispatch, PushLink, ReplySender};
use crate::transport::{Closer, FrameReceiver, Parts, PeerCredentials, Readiness, WaitFds};

use super::alarm::Alarm;
use super::handshake::HANDSHAKE_MAX_FRAME;
use super::poller::{Poller, Wakeable};
use super::threads::Threads;
use crate::transport::closed::{ClosedCloser, ClosedReceiver, ClosedSender};

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
    peer: Arc<PeerCredentials>,
    link: ServerLink,
    /// The reply sender, shared with the connection's subscriptions' sinks, and those
    /// subscriptions' credit.
    push: PushLink,
    receiver: Mutex<Box<dyn FrameReceiver>>,
    closer: Mutex<Box<dyn Closer>>,
    state: Mutex<State>,
    /// The handshake is done: requests follow.
    shaken: AtomicBool,
    /// When the handshake must be done by.
    shake_by: Instant,
    /// The largest frame this side takes (the transport's `max_frame`), told to the
    /// client at the handshake.
    frame_limit: usize,
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
    /// Requests read while `max_in_flight` calls ran (the reader went on reading for
    /// the connection's subscriptions' credit), in order: the calls that end start them.
    stashed: std::collections::VecDeque<Stashed>,
    /// Their bytes, at most about `reading::STASH_MAX`.
    stashed_bytes: usize,
    /// The cancel flags of the counted calls (see `Session::in_flight`).
    handed: HashMap<u64, Arc<AtomicBool>>,
    /// No more requests will be read.
    ended: bool,
    /// `on_end` was called.
    gone: bool,
}

/// A request waiting for room (see `State::stashed`).
struct Stashed {
    header: crate::wire::RequestHeader,
    head: Vec<u8>,
    tail: Option<Vec<u8>>,
    deadline: Option<Instant>,
}

impl Stashed {
    /// Its bytes, as counted against `reading::STASH_MAX`.
    fn len(&self) -> usize {
        self.head.len() + self.tail.as_ref().map_or(0, Vec::len)
    }
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
        let frame_limit = receiver.frame_limit();
        Arc::new(Session {
            id,
            peer: Arc::new(peer),
            link,
            frame_limit,
            push: PushLink {
                replies: Arc::new(Mutex::new(ReplySender {
                    sender,
                    buf: Vec::with_capacity(256),
                    peer_limit: None,
                })),
                flows: Arc::default(),
            },
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
        if !self.spawn_reader() {
            // No thread to be had: nobody will read this connection; end it.
            lock(&self.closer).close();
            self.stop_reading();
        }
    }

    /// Starts the reading role on a pool thread (on a dedicated one for a transport
    /// that only a blocked `recv` can wait for); whether a thread could be had.
    fn spawn_reader(self: &Arc<Self>) -> bool {
        let me = self.clone();
        let sent = if self.blocking.load(Ordering::Relaxed) {
            self.link.threads.run_dedicated(move || me.read())
        } else {
            self.link.threads.run(move || me.read())
        };
        sent.is_ok()
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
        let sender =
            std::mem::replace(&mut lock(&self.push.replies).sender, Box::new(ClosedSender));
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

    /// Ends subscription `id` (its subscriber dropped it): its sinks' sends fail, and
    /// its final reply goes now.
    fn unsubscribe(&self, id: u64) {
        if let Some(flow) = self.push.flows.cancel(id) {
            crate::sink::send_end(&self.push, &flow);
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

    /// Raises the cancel flag of every call that runs (the caller holds the state), and
    /// ends the connection's subscriptions (their sinks' sends fail).
    fn raise_cancel_flags(&self, state: &State) {
        self.push.flows.close_all();
        self.inline_cancel.store(true, Ordering::Relaxed);
        for flag in state.handed.values() {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// What the OS says about the client (for the log).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(super) fn peer(&self) -> &PeerCredentials {
        &self.peer
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
            crate::__event!(info, connection = self.id, "connection closed");
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
