//! What a handler can ask about the call it runs: who called, how long the caller still
//! waits, and whether it gave up.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::transport::PeerCredentials;

thread_local! {
    /// The caller of the call this thread runs, or of its last one (kept, like
    /// `CANCEL`, so that a connection's calls cost no copy each); read only while
    /// `IN_CALL`.
    static PEER: RefCell<Option<Arc<PeerCredentials>>> = const { RefCell::new(None) };
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The cancel flag of the call this thread runs, or of its last one (kept so that
    /// a connection's calls, which share one flag while they run one at a time, cost no
    /// reference count each); read only while `IN_CALL`.
    static CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
    static IN_CALL: Cell<bool> = const { Cell::new(false) };
}

/// Inside a handler: what the OS says about the calling process (its pid and uid where
/// the transport knows them; see [`PeerCredentials`]). `None` outside a handler.
///
/// # Examples
///
/// ```
/// // Outside a server's handler there is no caller.
/// assert!(rpc_core::server::current_peer().is_none());
/// ```
pub fn current_peer() -> Option<PeerCredentials> {
    if !IN_CALL.with(Cell::get) {
        return None;
    }
    PEER.with(|p| p.borrow().as_deref().cloned())
}

/// Inside a handler: how long the caller still waits for this call's reply, counted
/// from now (zero once it has passed). `None` when the caller set no deadline, and
/// outside a handler.
///
/// # Examples
///
/// ```
/// assert!(rpc_core::server::deadline().is_none());
/// ```
pub fn deadline() -> Option<Duration> {
    DEADLINE
        .with(Cell::get)
        .map(|d| d.saturating_duration_since(Instant::now()))
}

/// Inside a handler: whether the caller gave up on this call: its deadline passed and
/// it said so, its client was dropped or closed, its process died, or the server is
/// shutting down. A long handler checks it now and then and stops early; its return
/// value is then discarded. `false` outside a handler.
///
/// # Examples
///
/// ```
/// assert!(!rpc_core::server::cancelled());
/// ```
pub fn cancelled() -> bool {
    if !IN_CALL.with(Cell::get) {
        return false;
    }
    let flagged = CANCEL.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    });
    flagged
        || DEADLINE
            .with(Cell::get)
            .is_some_and(|d| Instant::now() >= d)
}

/// The context of one call, set on the thread that runs it while the guard lives.
pub(super) struct Entered(());

impl Entered {
    pub(super) fn enter(
        peer: &Arc<PeerCredentials>,
        deadline: Option<Instant>,
        cancel: &Arc<AtomicBool>,
    ) -> Self {
        PEER.with(|p| {
            let mut slot = p.borrow_mut();
            match &*slot {
                Some(current) if Arc::ptr_eq(current, peer) => {}
                _ => *slot = Some(peer.clone()),
            }
        });
        DEADLINE.with(|d| d.set(deadline));
        CANCEL.with(|c| {
            let mut slot = c.borrow_mut();
            match &*slot {
                Some(current) if Arc::ptr_eq(current, cancel) => {}
                _ => *slot = Some(cancel.clone()),
            }
        });
        IN_CALL.with(|i| i.set(true));
        Entered(())
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        IN_CALL.with(|i| i.set(false));
        DEADLINE.with(|d| d.set(None));
    }
}
