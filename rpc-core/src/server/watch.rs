//! The watcher: one thread per server that looks, now and then while calls run, for a
//! call that has run its handler since the previous look with nobody reading its
//! connection behind it, and sends a thread to read. So a call whose handler runs
//! longer than about a [`TICK`] (and at most two) no longer holds up the calls behind
//! it on its connection.
//!
//! While calls run but none runs long, the looks space out (up to [`MAX_TICK`]), so a
//! stream of short calls costs the watcher about a hundred wake-ups a second; after
//! a relief they come every [`TICK`] again. With no call running for a while it
//! sleeps, woken by the next call ([`Alarm`]), so an idle server costs no wake-ups.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use super::alarm::Alarm;
use super::session::Session;
use super::table::Registry;

/// The shortest time between looks.
pub(super) const TICK: Duration = Duration::from_micros(500);

/// The longest time between looks while calls run.
pub(super) const MAX_TICK: Duration = Duration::from_millis(8);

/// Looks without a running call before the watcher sleeps.
const IDLE_LOOKS: u32 = 20;

/// Longest sleep: a safety net should a wake-up be missed.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Runs the watcher until `stop`, or until the server is gone.
pub(super) fn watch(registry: &Weak<Registry>, alarm: &Alarm, stop: &AtomicBool) {
    let mut tick = TICK;
    let mut idle_looks = 0;
    let mut relieve: Vec<(Arc<Session>, u64)> = Vec::new();
    while !stop.load(Ordering::Acquire) {
        thread::sleep(tick);
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let mut running = false;
        for session in registry.lock().sessions.values() {
            let (seq, now, long) = session.look();
            running |= now;
            if long {
                relieve.push((session.clone(), seq));
            }
        }
        tick = if relieve.is_empty() {
            (tick * 2).min(MAX_TICK)
        } else {
            TICK
        };
        for (session, seq) in relieve.drain(..) {
            session.relieve(seq);
        }
        if running {
            idle_looks = 0;
            continue;
        }
        idle_looks += 1;
        if idle_looks >= IDLE_LOOKS {
            idle_looks = 0;
            tick = TICK;
            alarm.sleep(MAX_SLEEP, || {
                stop.load(Ordering::Acquire)
                    || registry.lock().sessions.values().any(|s| s.look().1)
            });
        }
    }
}
