//! Flow control of a connection's subscriptions on the server: how many events each
//! may still send (its credit), and whether its subscriber is gone.
//!
//! The client buffers a bounded number of events per subscription and tells the server
//! how many (in the request); it grants credit back as its user consumes them (credit
//! frames, see `wire`). A sink with no credit left waits here, on its own condition
//! variable: the connection's reader only adds credit and never waits for a subscriber,
//! so a subscriber that stops reading holds up nothing but its own sink.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a subscription takes no more events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// The subscriber dropped its subscription (a cancel frame came).
    Dropped,
    /// The connection ended: the client closed it, was dropped or died, or the server
    /// is shutting down.
    Disconnected,
    /// The handler panicked: the subscriber was sent `RemotePanic`.
    Panicked,
}

/// What waiting for credit came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// One credit was taken: send one event.
    Go,
    /// No credit came by the deadline (or, with no wait, there was none).
    Full,
    /// The subscription takes no more events.
    Gone(Gone),
}

#[derive(Debug)]
struct State {
    credit: u64,
    gone: Option<Gone>,
    /// The final reply was sent, or must not be (ended by a cancel or a panic).
    ended: bool,
}

/// One subscription's credit and state.
#[derive(Debug)]
pub struct Flow {
    id: u64,
    state: Mutex<State>,
    credit_came: Condvar,
}

impl Flow {
    /// The id of the call this subscription answers.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Takes one credit, waiting for one until `until` (`None`: not at all).
    pub fn take(&self, until: Option<Instant>) -> Wait {
        let mut state = lock(&self.state);
        loop {
            if let Some(gone) = state.gone {
                return Wait::Gone(gone);
            }
            if state.credit > 0 {
                state.credit -= 1;
                return Wait::Go;
            }
            let Some(left) = until.and_then(|u| u.checked_duration_since(Instant::now())) else {
                return Wait::Full;
            };
            if left.is_zero() {
                return Wait::Full;
            }
            state = self
                .credit_came
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Gives back a credit taken for an event that was not sent.
    pub fn give_back(&self) {
        lock(&self.state).credit += 1;
    }

    /// Why the subscription takes no more events, if it does not.
    pub fn gone(&self) -> Option<Gone> {
        lock(&self.state).gone
    }

    /// Marks the subscription ended for `why` (keeps an earlier reason) and wakes a
    /// sink waiting for credit.
    pub fn close(&self, why: Gone) {
        let mut state = lock(&self.state);
        state.gone.get_or_insert(why);
        drop(state);
        self.credit_came.notify_all();
    }

    /// Marks the final reply as sent (or not to be sent); whether the caller is the
    /// one to send it (it was not yet).
    pub fn end(&self) -> bool {
        !std::mem::replace(&mut lock(&self.state).ended, true)
    }

    fn grant(&self, events: u32) {
        let mut state = lock(&self.state);
        state.credit = state.credit.saturating_add(u64::from(events));
        drop(state);
        self.credit_came.notify_all();
    }
}

/// The open subscriptions of one connection, by call id.
#[derive(Debug, Default)]
pub struct Flows {
    open: Mutex<HashMap<u64, Arc<Flow>>>,
    /// The connection ended: a subscription opened now is gone at once.
    ended: Mutex<bool>,
}

impl Flows {
    /// Opens subscription `id` with `window` events of credit.
    pub fn open(&self, id: u64, window: u32) -> Arc<Flow> {
        let gone = (*lock(&self.ended)).then_some(Gone::Disconnected);
        let flow = Arc::new(Flow {
            id,
            state: Mutex::new(State {
                credit: u64::from(window),
                gone,
                ended: false,
            }),
            credit_came: Condvar::new(),
        });
        lock(&self.open).insert(id, flow.clone());
        flow
    }

    /// Whether any subscription of the connection is open.
    pub fn any_open(&self) -> bool {
        !lock(&self.open).is_empty()
    }

    /// Forgets subscription `id` (its last sink is gone).
    pub fn remove(&self, id: u64) {
        lock(&self.open).remove(&id);
    }

    /// Adds credit to subscription `id`; a credit for an unknown id is ignored (the
    /// subscription ended meanwhile).
    pub fn grant(&self, id: u64, events: u32) {
        let flow = lock(&self.open).get(&id).cloned();
        if let Some(flow) = flow {
            flow.grant(events);
        }
    }

    /// Ends subscription `id` because its subscriber dropped it; the flow, if it was
    /// open and its final reply is still to be sent (the caller sends it).
    pub fn cancel(&self, id: u64) -> Option<Arc<Flow>> {
        let flow = lock(&self.open).get(&id).cloned()?;
        flow.close(Gone::Dropped);
        flow.end().then_some(flow)
    }

    /// Ends every subscription: the connection ended.
    pub fn close_all(&self) {
        *lock(&self.ended) = true;
        let flows: Vec<Arc<Flow>> = lock(&self.open).values().cloned().collect();
        for flow in flows {
            flow.close(Gone::Disconnected);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn credit_is_taken_granted_and_waited_for() {
        let flows = Flows::default();
        let flow = flows.open(3, 1);
        assert_eq!(flow.take(None), Wait::Go);
        assert_eq!(flow.take(None), Wait::Full);
        let soon = Some(Instant::now() + Duration::from_millis(10));
        assert_eq!(flow.take(soon), Wait::Full);
        flows.grant(3, 2);
        assert_eq!(flow.take(None), Wait::Go);
        let waiter = {
            let flow = flow.clone();
            std::thread::spawn(move || flow.take(Some(Instant::now() + Duration::from_secs(5))))
        };
        assert_eq!(waiter.join().unwrap(), Wait::Go);
        let waiter = {
            let flow = flow.clone();
            std::thread::spawn(move || flow.take(Some(Instant::now() + Duration::from_secs(5))))
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(flows.cancel(3).is_some());
        assert_eq!(waiter.join().unwrap(), Wait::Gone(Gone::Dropped));
        assert!(flows.cancel(3).is_none(), "the final reply goes once");
        flows.close_all();
        assert_eq!(flow.gone(), Some(Gone::Dropped));
        assert_eq!(flows.open(4, 8).take(None), Wait::Gone(Gone::Disconnected));
    }
}
