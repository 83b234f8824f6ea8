//! Waiting for the peer: spin briefly, yield, then sleep on a futex in the segment.
//!
//! - **Spin** only while the peer runs on *another* CPU (it publishes its `cpu`): a
//!   wake-up through the kernel (the dominant cost, ~15 µs across vCPUs here) is then
//!   saved. How long depends on the peer: while it says it is `busy` producing what we
//!   wait for (writing a frame, handling our request) up to the long budget (default
//!   1 ms), so a large reply does not cost a sleep and a wake-up; otherwise only the
//!   short budget (`spin_us`, default 20 µs), which catches a tight call loop without
//!   letting idle connections burn a CPU. If the peer shares our CPU, spinning only
//!   burns the time slice it needs, so we stop at once.
//! - **Yield** twice: a peer that shares our CPU and is runnable gets it now.
//! - **Sleep** on the futex word, after announcing it in our `*_sleeping` flag; the
//!   other side wakes us only when it sees that flag, so a busy steady state makes no
//!   system call at all. The sleep is cut into slices; after each expired slice the
//!   peer's liveness is checked (the rendezvous socket reports the peer's death even
//!   after `kill -9`, and pids are not involved), and the deadline.
//! - **Back off after fruitless wake-ups.** The futex word lives in memory the peer
//!   writes, so a hostile peer can bump it (and `FUTEX_WAKE` it) in a loop: each bump
//!   ends our sleep (or makes `FUTEX_WAIT` fail at once with `EAGAIN`), and without a
//!   brake our thread would run in lockstep with the peer's loop. A wake-up that
//!   finds nothing ready is tolerated once (an honest peer can leave one late bump);
//!   from the second in a row on we first sleep a pause that doubles from 50 µs to
//!   10 ms, and check the peer is alive. Under a steady hammer that is ~100 cheap
//!   wake-ups a second; an honest connection never gets there, and no wake-up ever
//!   re-enters the spin phase. The pause only delays the hostile connection itself.
//!
//! - **Or park in a poller** (`ShmReceiver::prepare_wait`, for a server that waits on
//!   all idle connections with one thread): the flag then says [`IN_POLLER`], and the
//!   other side, instead of bumping the futex, writes one byte (the doorbell) to its
//!   end of the rendezvous socket, which the poller waits on.
//!
//! - **Or only look**, when the deadline has already passed: a client's caller that
//!   polls for everyone's replies between its own looks (see `Transport::wait_spin`)
//!   must not spin, yield or sleep here.
//!
//! The announce/re-check on the waiting side and the publish/check on the waking side
//! are each separated by a SeqCst fence, so one of the two always sees the other.

use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::{Duration, Instant};

use rpc_core::TransportError;

use super::layout::{AWAKE, IN_POLLER, ON_FUTEX, Side};
use crate::sys;

/// Longest single futex sleep before the peer's liveness is checked again.
const SLICE: Duration = Duration::from_millis(50);
/// `sched_yield` calls between spinning and sleeping.
const YIELDS: usize = 2;
/// Ready-checks between two looks at the clock and at the peer.
const SPIN_BATCH: usize = 64;
/// Pause before sleeping again after the second fruitless wake-up in a row.
const BACKOFF_FIRST: Duration = Duration::from_micros(50);
/// Longest pause between fruitless wake-ups.
const BACKOFF_MAX: Duration = Duration::from_millis(10);

/// The pause before the next futex sleep after `fruitless` wake-ups in a row that
/// found nothing ready: none for the first, then doubling up to [`BACKOFF_MAX`].
fn backoff(fruitless: u32) -> Duration {
    match fruitless {
        0 | 1 => Duration::ZERO,
        n => BACKOFF_FIRST
            .saturating_mul(1u32.checked_shl(n - 2).unwrap_or(u32::MAX))
            .min(BACKOFF_MAX),
    }
}

/// The futex word one side sleeps on and its "I am asleep" flag.
pub struct SleepOn<'a> {
    pub word: &'a AtomicU32,
    pub flag: &'a AtomicU32,
}

/// What a wait needs of its connection (the connection, `conn::Conn`, implements it:
/// waiting sits below the connection, which uses it).
pub trait Waiting {
    /// This side's shared state.
    fn my_side(&self) -> &Side;
    /// The peer's shared state.
    fn peer_side(&self) -> &Side;
    /// How long to spin while the peer is not busy for us.
    fn spin(&self) -> Duration;
    /// How long to spin while the peer says it is busy producing what we wait for.
    fn spin_busy(&self) -> Duration;
    /// `Closed` once this side closed the connection.
    fn check_open(&self) -> Result<(), TransportError>;
    /// `Closed` once the peer is gone.
    fn check_peer_alive(&self) -> Result<(), TransportError>;
}

/// Waits until `ready` says so, the deadline passes (`TimedOut`) or the connection
/// ends (`Closed`). `ready` may fail (corruption), which ends the wait with its error.
pub fn wait_until(
    conn: &impl Waiting,
    sleep: SleepOn<'_>,
    deadline: Option<Instant>,
    mut ready: impl FnMut() -> Result<bool, TransportError>,
) -> Result<(), TransportError> {
    if ready()? {
        return Ok(());
    }
    let start = Instant::now();
    // A deadline already passed: a look without a wait (a caller polling).
    if deadline.is_some_and(|d| start >= d) {
        return Err(TransportError::TimedOut);
    }
    let me = conn.my_side();
    let peer = conn.peer_side();
    let my_cpu = sys::current_cpu();
    // Written only when it changed: the peer's spin reads this line.
    if me.cpu.load(Ordering::Relaxed) != my_cpu {
        me.cpu.store(my_cpu, Ordering::Relaxed);
    }

    'spin: loop {
        for _ in 0..SPIN_BATCH {
            if ready()? {
                return Ok(());
            }
            std::hint::spin_loop();
        }
        if peer.cpu.load(Ordering::Relaxed) == my_cpu {
            break 'spin;
        }
        let budget = if peer.busy.load(Ordering::Relaxed) != 0 {
            conn.spin_busy()
        } else {
            conn.spin()
        };
        let now = Instant::now();
        if now.duration_since(start) >= budget || deadline.is_some_and(|d| now >= d) {
            break 'spin;
        }
    }
    for _ in 0..YIELDS {
        std::thread::yield_now();
        if ready()? {
            return Ok(());
        }
    }
    let mut fruitless = 0u32;
    loop {
        conn.check_open()?;
        let mut slice = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(TransportError::TimedOut);
                }
                left.min(SLICE)
            }
            None => SLICE,
        };
        let pause = backoff(fruitless).min(slice);
        if !pause.is_zero() {
            // Not a futex sleep: the peer could cut that short.
            std::thread::sleep(pause);
            slice -= pause;
            if slice.is_zero() {
                continue;
            }
        }
        let seq = sleep.word.load(Ordering::Acquire);
        sleep.flag.store(ON_FUTEX, Ordering::Relaxed);
        // SYNC: SeqCst fence, paired with the one in `notify`: either we see the
        // producer's publish below, or it sees our flag and bumps the word.
        fence(Ordering::SeqCst);
        if ready()? {
            sleep.flag.store(AWAKE, Ordering::Relaxed);
            return Ok(());
        }
        let woken = sys::futex_wait(sleep.word, seq, slice);
        sleep.flag.store(AWAKE, Ordering::Relaxed);
        if ready()? {
            return Ok(());
        }
        fruitless = if woken {
            fruitless.saturating_add(1)
        } else {
            0
        };
        if fruitless != 1 {
            // A slice expired, or wake-ups keep bringing nothing: is the peer there?
            conn.check_peer_alive()?;
        }
    }
}

/// After publishing: wakes the other side if it announced it sleeps on `word`, or
/// rings `doorbell` (our end of the rendezvous socket) if it announced it is parked
/// in a poller.
pub fn notify(word: &AtomicU32, their_flag: &AtomicU32, doorbell: impl FnOnce()) {
    // SYNC: SeqCst fence, paired with the one in `wait_until` and in
    // `ShmReceiver::prepare_wait`.
    fence(Ordering::SeqCst);
    match their_flag.load(Ordering::Relaxed) {
        AWAKE => {}
        IN_POLLER => doorbell(),
        // ON_FUTEX, or anything a broken peer wrote: a futex wake costs it nothing.
        _ => {
            word.fetch_add(1, Ordering::Release);
            sys::futex_wake(word, 1);
        }
    }
}

/// Bumps `word` and wakes every sleeper on it, whatever its flag says (closing).
pub fn wake_all(word: &AtomicU32) {
    word.fetch_add(1, Ordering::Release);
    sys::futex_wake(word, i32::MAX);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_tolerates_one_fruitless_wake_then_doubles_up_to_the_cap() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), BACKOFF_FIRST);
        assert_eq!(backoff(3), BACKOFF_FIRST * 2);
        assert_eq!(backoff(9), BACKOFF_FIRST * 128);
        for n in [10, 31, 32, 33, 1000, u32::MAX] {
            assert_eq!(backoff(n), BACKOFF_MAX, "{n}");
        }
    }
}
