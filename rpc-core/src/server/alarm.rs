//! How a connection whose call runs long wakes the watcher, which sleeps while no call
//! runs anywhere (so an idle server costs no timer wake-ups).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, Thread};
use std::time::Duration;

/// The watcher's doorbell.
#[derive(Default)]
pub(super) struct Alarm {
    parked: AtomicBool,
    watcher: OnceLock<Thread>,
}

impl Alarm {
    /// Names the thread that [`Alarm::ring`] wakes; the first call wins.
    pub(super) fn set_watcher(&self, thread: Thread) {
        let _ = self.watcher.set(thread);
    }

    /// Wakes the watcher if it sleeps. The caller published its call's start (a
    /// `SeqCst` store) first: either the watcher's last look saw it, or this sees the
    /// watcher parked.
    #[inline]
    pub(super) fn ring(&self) {
        if self.parked.load(Ordering::SeqCst)
            && let Some(t) = self.watcher.get()
        {
            t.unpark();
        }
    }

    /// Parks the watcher (for at most `max`) unless `busy` finds work after the parked
    /// flag went up.
    pub(super) fn sleep(&self, max: Duration, busy: impl FnOnce() -> bool) {
        self.parked.store(true, Ordering::SeqCst);
        if !busy() {
            thread::park_timeout(max);
        }
        self.parked.store(false, Ordering::SeqCst);
    }
}
