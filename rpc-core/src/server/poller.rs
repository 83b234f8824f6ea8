//! The poller: one thread that waits, with `epoll`, on every connection that has
//! nothing to read, so that an idle connection costs no thread.
//!
//! A reader with nothing to read for a moment asks its transport how to wait
//! ([`FrameReceiver::prepare_wait`](crate::transport::FrameReceiver::prepare_wait))
//! and parks its connection here ([`Poller::arm`]) with the descriptors it got. Each
//! is registered level-triggered and one-shot (`EPOLLIN | EPOLLONESHOT`): when one
//! turns readable the kernel disarms it and the poller wakes its owner
//! ([`Wakeable::wake`]), which sends a pool thread to read. A deadline (a handshake
//! not yet made, a set-up the client has not finished) makes the poller call
//! [`Wakeable::expire`] when it passes while the owner is still parked.
//!
//! Registrations are made while the owner lends its descriptors, and never deleted:
//! the kernel drops one when its descriptor closes, and a one-shot registration that
//! fired stays disarmed until the next park modifies it. An event for an owner no
//! longer parked (it was closed, or a second descriptor fired late) finds no entry
//! and is ignored, so no descriptor has to outlive its borrow.
//!
//! # Why nix's `epoll`, not mio
//!
//! - One-shot, level-triggered registration is what a parked connection needs: it
//!   fires once, and a connection re-parked with bytes already waiting fires at once.
//!   mio offers edge-triggered registration only, which would need a read after every
//!   re-arm to be sure nothing was missed.
//! - The descriptors come from transports as raw descriptors of many kinds (sockets,
//!   pipes, FIFOs, message queues, pidfds); `epoll` takes them all, and mio would wrap
//!   each in a `SourceFd` to the same end.
//! - nix is already a dependency of the transports; mio would be a new one for a
//!   Linux-only library that needs none of its portability.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::transport::WaitFds;

/// The token of the poller's own wake-up descriptor.
const WAKER: u64 = u64::MAX;

/// Events taken per `epoll_wait`.
const BATCH: usize = 64;

/// Something parked in the poller: a connection, or a set-up waiting for its client.
pub(super) trait Wakeable: Send + Sync {
    /// One of its descriptors turned readable (it has been disarmed, and forgotten
    /// by the poller unless re-armed).
    fn wake(self: Arc<Self>);
    /// Its deadline passed while it was parked (it has been disarmed and forgotten).
    fn expire(self: Arc<Self>);
}

/// The poller of one server.
pub(super) struct Poller {
    epoll: Epoll,
    waker: EventFd,
    state: Mutex<State>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    parked: HashMap<u64, Parked>,
    /// Deadlines of parked entries, earliest first (stale ones are skipped).
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    stopped: bool,
}

struct Parked {
    owner: Arc<dyn Wakeable>,
    deadline: Option<Instant>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Poller {
    /// A poller and its thread, called `name`.
    pub(super) fn start(name: String) -> io::Result<Arc<Self>> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let waker = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        epoll.add(waker.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKER))?;
        let poller = Arc::new(Poller {
            epoll,
            waker,
            state: Mutex::new(State::default()),
            thread: Mutex::new(None),
        });
        let runner = poller.clone();
        let handle = thread::Builder::new()
            .name(name)
            .spawn(move || runner.run())?;
        *poller.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        Ok(poller)
    }

    /// Parks `owner` under `id` until one of `fds` turns readable (or `deadline`
    /// passes), replacing what was parked under `id`.
    ///
    /// # Errors
    ///
    /// When the poller has stopped (`ESHUTDOWN`) or `epoll_ctl` fails; nothing is
    /// parked then, and the caller keeps the connection.
    pub(super) fn arm(
        &self,
        id: u64,
        fds: WaitFds<'_>,
        deadline: Option<Instant>,
        owner: Arc<dyn Wakeable>,
    ) -> io::Result<()> {
        let mut state = lock(&self.state);
        if state.stopped {
            return Err(Errno::ESHUTDOWN.into());
        }
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT;
        for fd in fds.iter() {
            let mut event = EpollEvent::new(flags, id);
            // Parked before: re-arm the registration. New: add it.
            match self.epoll.modify(fd, &mut event) {
                Err(Errno::ENOENT) => self.epoll.add(fd, event),
                done => done,
            }
            .inspect_err(|_| {
                state.parked.remove(&id);
            })?;
        }
        let earlier = deadline.is_some_and(|d| {
            state
                .timers
                .peek()
                .is_none_or(|Reverse((next, _))| d < *next)
        });
        if let Some(d) = deadline {
            state.timers.push(Reverse((d, id)));
        }
        state.parked.insert(id, Parked { owner, deadline });
        drop(state);
        if earlier {
            // The poller sleeps until its earliest deadline: make it look again.
            let _ = self.waker.write(1);
        }
        Ok(())
    }

    /// Forgets `id`: an event for it is ignored from now on.
    pub(super) fn forget(&self, id: u64) {
        let gone = lock(&self.state).parked.remove(&id);
        drop(gone);
    }

    /// Stops the thread and expires everything still parked (set-ups are dropped,
    /// connections closed by their owners). Later [`Poller::arm`] calls fail.
    pub(super) fn stop(&self) {
        let parked: Vec<Parked> = {
            let mut state = lock(&self.state);
            state.stopped = true;
            state.timers.clear();
            state.parked.drain().map(|(_, p)| p).collect()
        };
        let _ = self.waker.write(1);
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle
            && handle.thread().id() != thread::current().id()
        {
            let _ = handle.join();
        }
        for p in parked {
            p.owner.expire();
        }
    }

    /// The poller thread: waits, wakes owners whose descriptors turned readable,
    /// expires owners whose deadlines passed.
    fn run(&self) {
        let mut events = [EpollEvent::empty(); BATCH];
        let mut woken: Vec<Arc<dyn Wakeable>> = Vec::new();
        let mut expired: Vec<Arc<dyn Wakeable>> = Vec::new();
        loop {
            let timeout = match self.next_deadline() {
                None if lock(&self.state).stopped => return,
                None => EpollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    // Round up so that a wake-up never comes before the deadline.
                    let ms = left.as_micros().div_ceil(1000);
                    EpollTimeout::try_from(Duration::from_millis(
                        u64::try_from(ms).unwrap_or(u64::MAX).min(60_000),
                    ))
                    .unwrap_or(EpollTimeout::NONE)
                }
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(_) => {
                    // Cannot happen with a valid epoll descriptor; do not spin.
                    thread::sleep(Duration::from_millis(10));
                    0
                }
            };
            {
                let mut state = lock(&self.state);
                if state.stopped {
                    return;
                }
                for event in &events[..n] {
                    let id = event.data();
                    if id == WAKER {
                        let _ = self.waker.read();
                        continue;
                    }
                    // A second descriptor of the entry may stay armed; if it fires
                    // later, it finds no entry (or wakes a re-parked owner early,
                    // which reads nothing and parks again).
                    if let Some(parked) = state.parked.remove(&id) {
                        woken.push(parked.owner);
                    }
                }
                let now = Instant::now();
                while let Some(Reverse((d, id))) = state.timers.peek().copied() {
                    if d > now {
                        break;
                    }
                    state.timers.pop();
                    if state.parked.get(&id).is_some_and(|p| p.deadline == Some(d))
                        && let Some(parked) = state.parked.remove(&id)
                    {
                        expired.push(parked.owner);
                    }
                }
            }
            for owner in woken.drain(..) {
                owner.wake();
            }
            for owner in expired.drain(..) {
                owner.expire();
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut state = lock(&self.state);
        // Drop stale timers (their entry woke or was re-armed) so that they cause no
        // wake-up of their own.
        while let Some(Reverse((d, id))) = state.timers.peek().copied() {
            if state.parked.get(&id).is_some_and(|p| p.deadline == Some(d)) {
                return Some(d);
            }
            state.timers.pop();
        }
        None
    }
}
