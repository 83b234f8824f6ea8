//! The watcher: one thread per server that looks, every [`TICK`] while calls run, for
//! a call that has run longer than [`LONG_CALL`] with nobody reading its connection
//! behind it, and sends a thread to read. It sleeps while no call runs, woken by the
//! next one ([`Alarm`]), so an idle server costs no wake-ups.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::alarm::Alarm;
use super::session::{LONG_CALL, Session};
use super::table::Registry;

/// How often the watcher looks while calls run.
pub(super) const TICK: Duration = LONG_CALL;

/// Looks without finding a running call, before the watcher sleeps.
const IDLE_LOOKS: u32 = 100;

/// Longest sleep: a safety net should a wake-up be missed.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Runs the watcher until `stop`, or until the server is gone.
pub(super) fn watch(registry: &Weak<Registry>, alarm: &Alarm, epoch: Instant, stop: &AtomicBool) {
    let long = LONG_CALL.as_micros() as u64;
    let mut idle_looks = 0;
    let mut relieve: Vec<Arc<Session>> = Vec::new();
    while !stop.load(Ordering::Acquire) {
        thread::sleep(TICK);
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let now = Instant::now().saturating_duration_since(epoch).as_micros() as u64 + 1;
        let mut running = false;
        for session in registry.lock().sessions.values() {
            let since = session.inline_since();
            if since != 0 {
                running = true;
                if now.saturating_sub(since) >= long {
                    relieve.push(session.clone());
                }
            }
        }
        for session in relieve.drain(..) {
            session.relieve();
        }
        if running {
            idle_looks = 0;
            continue;
        }
        idle_looks += 1;
        if idle_looks >= IDLE_LOOKS {
            idle_looks = 0;
            alarm.sleep(MAX_SLEEP, || {
                stop.load(Ordering::Acquire)
                    || registry
                        .lock()
                        .sessions
                        .values()
                        .any(|s| s.inline_since() != 0)
            });
        }
    }
}
