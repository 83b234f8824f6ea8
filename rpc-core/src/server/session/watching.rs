//! The watch counter: the call the reading role's holder runs, as the watcher sees it,
//! and the relief that takes the role from a call that runs long.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Session, lock};

impl Session {
    /// The watcher's look: the watch counter, whether a call that gave the reading
    /// role up runs now, and whether it is the one that ran at the previous look too
    /// (it has run for at least one tick).
    pub(in crate::server) fn look(&self) -> (u64, bool, bool) {
        let seq = self.inline_seq.load(Ordering::SeqCst);
        let before = self.watched_seq.swap(seq, Ordering::Relaxed);
        let running = seq % 2 == 1;
        (seq, running, running && seq == before)
    }

    /// Sends a thread to read on behind the long call the watcher saw (counter value
    /// `seen`), unless that call has ended or given the role up already. The call is
    /// then on its own (counted, if it was not): the counter moves three on, and the
    /// new reader runs the next call itself.
    pub(in crate::server) fn relieve(self: &Arc<Self>, seen: u64) {
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
    pub(super) fn read_on_now(self: &Arc<Self>) {
        self.send_reader_or_give_back();
    }

    /// Runs the reading role on another thread; if none can be had, the role goes
    /// back to the call that held it (`room_wait`: its thread reads on when it ends).
    fn send_reader_or_give_back(self: &Arc<Self>) {
        if !self.spawn_reader() {
            let mut state = lock(&self.state);
            state.reading = false;
            state.room_wait = true;
        }
    }

    /// Publishes, for the watcher, that the role holder runs call `id` now: returns the
    /// odd counter value it set. SeqCst pairs with the watcher's parked flag (see
    /// `Alarm::ring`).
    pub(super) fn watch(&self, id: u64) -> u64 {
        self.inline_id.store(id, Ordering::Relaxed);
        let seq = (self.inline_seq.load(Ordering::Relaxed) + 1) | 1;
        self.inline_seq.store(seq, Ordering::SeqCst);
        self.link.alarm.ring();
        seq
    }

    /// Ends the watch of a call that set `seq`: whether the watcher relieved it (took
    /// the role, counted it) meanwhile.
    pub(super) fn unwatch(&self, seq: u64) -> bool {
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
}
