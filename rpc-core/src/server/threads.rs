//! The server's threads: one pool that runs connections' readers and the calls they
//! hand off, `workers` threads kept, growing on demand up to `max_workers`.
//!
//! A job goes to an idle thread if there is one, else to a new thread while fewer than
//! `workers` live; else it waits in a queue, in order, for the next thread to come
//! free. Jobs are mostly short (a request read, a fast call), so a burst of them is
//! better served by the threads there are than by new ones; but a job that waited
//! [`STARVE`] at the head of the queue (every thread is in a handler that blocks) makes
//! the pool's grower thread start one more, up to `max_workers`. A thread beyond the
//! first `workers` that is idle for [`IDLE_EXIT`] ends; [`Threads::stop`] ends the
//! others once idle.
//! Threads are never joined: a handler that never returns keeps its thread, and a
//! shutdown does not wait for it past its grace period.
//!
//! A connection whose transport can only be waited for by a thread blocked in `recv`
//! ([`Readiness::Blocking`](crate::transport::Readiness::Blocking)) gets a dedicated
//! thread outside the pool ([`Threads::run_dedicated`]): it would otherwise hold a
//! pool thread for its whole life.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread;
use std::time::Duration;

/// How long a thread waits for work before it ends.
pub(super) const IDLE_EXIT: Duration = Duration::from_secs(10);

/// How long a job may wait at the head of the queue before the pool grows.
pub(super) const STARVE: Duration = Duration::from_micros(500);

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A pool of threads; cloning shares it.
#[derive(Clone)]
pub(super) struct Threads {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    /// Threads kept when idle.
    keep: usize,
    /// The most threads alive at once.
    max: usize,
    state: Mutex<State>,
    work: Condvar,
    /// Wakes the grower when jobs wait with no idle thread.
    starving: Condvar,
    /// Jobs wait in the queue for a thread (mirrors `State::queue.len() > 0`, read
    /// without the lock by readers deciding how long to linger).
    pressed: AtomicBool,
    /// Threads running a job.
    busy: AtomicUsize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    idle: usize,
    live: usize,
    /// Jobs taken from the queue so far: the head job's number.
    taken: u64,
    /// The grower thread runs.
    grower: bool,
    /// [`Threads::stop`] ran: idle threads end.
    stopped: bool,
}

impl Threads {
    /// An empty pool whose threads are called `name`, keeping `keep` threads and
    /// growing to at most `max` (at least 1).
    pub(super) fn new(name: String, keep: usize, max: usize) -> Self {
        Threads {
            shared: Arc::new(Shared {
                name,
                keep,
                max: max.max(keep).max(1),
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                starving: Condvar::new(),
                pressed: AtomicBool::new(false),
                busy: AtomicUsize::new(0),
            }),
        }
    }

    /// Whether jobs wait for a thread, or more threads run jobs than the pool keeps: a
    /// reader with nothing to read should then give its thread back at once rather
    /// than linger (so lingering never grows the pool past `workers`).
    pub(super) fn pressed(&self) -> bool {
        self.shared.pressed.load(Ordering::Relaxed)
            || self.shared.busy.load(Ordering::Relaxed) > self.shared.keep
    }

    /// Runs `job` on a thread of its own, outside the pool and its cap.
    ///
    /// # Errors
    ///
    /// When the OS refuses a new thread; `job` is dropped.
    pub(super) fn run_dedicated(&self, job: impl FnOnce() + Send + 'static) -> io::Result<()> {
        thread::Builder::new()
            .name(self.shared.name.clone())
            .spawn(job)
            .map(drop)
    }

    /// Threads alive (running a job or idle).
    #[cfg(test)]
    pub(super) fn live(&self) -> usize {
        self.shared.lock().live
    }

    /// Runs `job` on an idle thread, or a new one, or queues it when `max` threads
    /// live.
    ///
    /// # Errors
    ///
    /// When no thread is idle and the OS refuses a new one; `job` is dropped.
    pub(super) fn run(&self, job: impl FnOnce() + Send + 'static) -> io::Result<()> {
        self.run_or_return(job)
            .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "the OS refused a new thread"))
    }

    /// Like [`Threads::run`], but gives `job` back when no thread can run it, so that
    /// the caller can run it itself.
    pub(super) fn run_or_return<F: FnOnce() + Send + 'static>(&self, job: F) -> Result<(), F> {
        let mut state = self.shared.lock();
        if state.idle > state.queue.len() || state.live >= self.shared.keep {
            state.queue.push_back(Box::new(job));
            if state.queue.len() > state.idle {
                self.shared.pressed.store(true, Ordering::Relaxed);
                if state.live < self.shared.max {
                    self.start_grower(&mut state);
                    self.shared.starving.notify_one();
                }
            }
            drop(state);
            self.shared.work.notify_one();
            return Ok(());
        }
        state.live += 1;
        drop(state);
        // The job travels to the new thread through a slot it can be taken back from
        // if the thread does not start.
        let slot = Arc::new(Mutex::new(Some(job)));
        let theirs = slot.clone();
        if self
            .shared
            .spawn(move || theirs.lock().unwrap_or_else(PoisonError::into_inner).take())
            .is_err()
        {
            self.shared.lock().live -= 1;
            let job = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            return job.map_or(Ok(()), Err);
        }
        Ok(())
    }

    /// Ends the threads once idle, and the grower; jobs already queued still run.
    pub(super) fn stop(&self) {
        self.shared.lock().stopped = true;
        self.shared.work.notify_all();
        self.shared.starving.notify_all();
    }

    /// Starts the grower thread, if it does not run.
    fn start_grower(&self, state: &mut State) {
        if state.grower || state.stopped {
            return;
        }
        let weak = Arc::downgrade(&self.shared);
        let started = thread::Builder::new()
            .name(format!("{} grow", self.shared.name))
            .spawn(move || grow(&weak));
        state.grower = started.is_ok();
    }
}

/// The grower: while jobs wait with no idle thread, starts one more thread each time
/// the job at the head of the queue has waited [`STARVE`].
fn grow(weak: &Weak<Shared>) {
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let mut state = shared.lock();
        if state.stopped {
            state.grower = false;
            return;
        }
        if !shared.starved(&state) {
            // Waits bounded, so that a pool dropped meanwhile lets this thread end.
            let (_state, _) = shared
                .starving
                .wait_timeout(state, IDLE_EXIT)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        let head = state.taken;
        drop(state);
        thread::sleep(STARVE);
        let mut state = shared.lock();
        if state.taken == head && shared.starved(&state) && !state.stopped {
            state.live += 1;
            drop(state);
            if shared.spawn(|| None::<Job>).is_err() {
                shared.lock().live -= 1;
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Jobs wait that no idle thread will take, and the pool may grow.
    fn starved(&self, state: &State) -> bool {
        state.queue.len() > state.idle && state.live < self.max
    }

    /// Starts a pool thread (counted in `live` by the caller) that first runs the job
    /// `first` gives, if any, then serves the queue.
    fn spawn<F: FnOnce() + Send + 'static>(
        self: &Arc<Self>,
        first: impl FnOnce() -> Option<F> + Send + 'static,
    ) -> io::Result<()> {
        let shared = self.clone();
        thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || {
                if let Some(job) = first() {
                    shared.run_job(job);
                }
                shared.serve();
            })
            .map(drop)
    }

    fn run_job(&self, job: impl FnOnce()) {
        self.busy.fetch_add(1, Ordering::Relaxed);
        job();
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }

    /// Takes jobs until none comes for [`IDLE_EXIT`].
    fn serve(&self) {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                state.taken += 1;
                if state.queue.is_empty() {
                    self.pressed.store(false, Ordering::Relaxed);
                }
                drop(state);
                self.run_job(job);
                state = self.lock();
                continue;
            }
            state.idle += 1;
            let (next, timeout) = self
                .work
                .wait_timeout_while(state, IDLE_EXIT, |s| s.queue.is_empty() && !s.stopped)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            state.idle -= 1;
            if state.stopped && state.queue.is_empty() {
                state.live -= 1;
                return;
            }
            if timeout.timed_out() && state.queue.is_empty() && state.live > self.keep {
                state.live -= 1;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn jobs_run_and_idle_threads_are_reused() {
        let threads = Threads::new("test".into(), 1, 64);
        let (tx, rx) = mpsc::channel();
        for i in 0..4 {
            let tx = tx.clone();
            threads.run(move || tx.send(i).unwrap()).unwrap();
        }
        let mut got: Vec<i32> = (0..4).map(|_| rx.recv().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 3]);
        // Every thread is idle now (or about to be): a new job needs no new thread.
        loop {
            let state = threads.shared.lock();
            if state.idle == state.live {
                break;
            }
            drop(state);
            thread::yield_now();
        }
        let before = threads.live();
        let tx2 = tx.clone();
        threads.run(move || tx2.send(9).unwrap()).unwrap();
        assert_eq!(rx.recv().unwrap(), 9);
        assert_eq!(threads.live(), before);
    }

    #[test]
    fn past_workers_the_pool_grows_only_for_starved_jobs_and_never_past_max() {
        let threads = Threads::new("test".into(), 1, 2);
        let (hold_tx, hold_rx) = mpsc::channel::<()>();
        let hold_rx = Arc::new(Mutex::new(hold_rx));
        let (started_tx, started_rx) = mpsc::channel::<()>();
        for _ in 0..2 {
            let hold_rx = hold_rx.clone();
            let started_tx = started_tx.clone();
            threads
                .run(move || {
                    started_tx.send(()).unwrap();
                    let _ = hold_rx.lock().unwrap().recv();
                })
                .unwrap();
        }
        // The second job starved behind the first (which blocks): the grower started
        // a second thread for it.
        for _ in 0..2 {
            started_rx
                .recv_timeout(Duration::from_secs(5))
                .expect("both blocking jobs run");
        }
        assert_eq!(threads.live(), 2);
        let (tx, rx) = mpsc::channel();
        for i in 0..3 {
            let tx = tx.clone();
            threads.run(move || tx.send(i).unwrap()).unwrap();
        }
        thread::sleep(STARVE * 10);
        assert_eq!(threads.live(), 2, "no thread past max_workers");
        assert!(threads.pressed());
        assert!(rx.try_recv().is_err(), "queued until a thread comes free");
        hold_tx.send(()).unwrap();
        let got: Vec<i32> = (0..3).map(|_| rx.recv().unwrap()).collect();
        assert_eq!(got, [0, 1, 2], "in order");
        drop(hold_tx);
        threads.stop();
    }

    #[test]
    fn a_burst_of_short_jobs_does_not_grow_the_pool_past_workers() {
        let threads = Threads::new("test".into(), 2, 64);
        let (tx, rx) = mpsc::channel();
        for i in 0..1000 {
            let tx = tx.clone();
            threads.run(move || tx.send(i).unwrap()).unwrap();
        }
        for _ in 0..1000 {
            rx.recv_timeout(Duration::from_secs(5))
                .expect("every job runs");
        }
        // Short jobs never wait STARVE at the head of the queue on an idle machine; on
        // a loaded one a few may: the pool stays far below one thread per job.
        assert!(
            threads.live() < 16,
            "{} threads for 1000 short jobs",
            threads.live()
        );
        threads.stop();
    }

    #[test]
    fn a_blocked_job_does_not_hold_up_the_next() {
        let threads = Threads::new("test".into(), 1, 64);
        let (hold_tx, hold_rx) = mpsc::channel::<()>();
        threads
            .run(move || {
                let _ = hold_rx.recv();
            })
            .unwrap();
        let (tx, rx) = mpsc::channel();
        threads.run(move || tx.send(1).unwrap()).unwrap();
        assert_eq!(rx.recv().unwrap(), 1);
        drop(hold_tx);
    }
}
