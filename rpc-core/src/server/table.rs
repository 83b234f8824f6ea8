//! The server's open connections, for shutdown, the watcher and `connection_count`.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::session::Session;

/// Every connection past its set-up, and how many are still being set up.
#[derive(Default)]
pub(super) struct Table {
    pub(super) next_id: u64,
    pub(super) shutting_down: bool,
    /// Connections accepted whose set-up (transport split, shared-memory mapping) has
    /// not finished.
    pub(super) starting: usize,
    pub(super) sessions: HashMap<u64, Arc<Session>>,
    /// The accept loop ended: no connection comes any more.
    accept_ended: bool,
}

impl Table {
    fn is_empty(&self) -> bool {
        self.starting == 0 && self.sessions.is_empty()
    }
}

/// The table, and a signal for when it empties.
#[derive(Default)]
pub(super) struct Registry {
    table: Mutex<Table>,
    emptied: Condvar,
}

impl Registry {
    pub(super) fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes a connection (or a set-up that failed, for `None`), waking
    /// [`Registry::wait_empty`] when it was the last.
    pub(super) fn remove(&self, id: Option<u64>) {
        let mut table = self.lock();
        match id {
            Some(id) => {
                table.sessions.remove(&id);
            }
            None => table.starting -= 1,
        }
        if table.is_empty() {
            self.emptied.notify_all();
        }
    }

    /// Notes that the accept loop ended, waking [`Registry::wait_finished`] if no
    /// connection is left.
    pub(super) fn end_accepting(&self) {
        let mut table = self.lock();
        table.accept_ended = true;
        if table.is_empty() {
            self.emptied.notify_all();
        }
    }

    /// Waits until the accept loop ended and no connection is left: the server runs
    /// no more.
    pub(super) fn wait_finished(&self) {
        let mut table = self.lock();
        while !(table.accept_ended && table.is_empty()) {
            table = self
                .emptied
                .wait(table)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Waits until no connection is open or being set up, at most until `deadline`
    /// (`None`: for ever); whether it emptied.
    pub(super) fn wait_empty(&self, deadline: Option<Instant>) -> bool {
        let mut table = self.lock();
        while !table.is_empty() {
            let left = match deadline {
                None => Duration::from_secs(3600),
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
            };
            table = self
                .emptied
                .wait_timeout(table, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}
