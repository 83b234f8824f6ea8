//! Optional logs: with the cargo feature `tracing` (the facade crate's `tracing`
//! feature turns it on), [`__event!`](crate::__event) emits a `tracing` event with the
//! target `ipc_rpc`; without it, it expands to nothing, so its arguments cost nothing.
//! One macro for every crate of the workspace: which it is was decided when rpc-core
//! was built.
//!
//! Events: a server's connections opened and closed (with the peer's pid and uid
//! where the transport knows them), connections refused (`max_connections`, a user
//! not allowed), handshakes rejected and why, connections ended by a bad frame, handler
//! panics; a client's connects, failed connects and time-outs; a pool's worker
//! replacements.

/// Emits a `tracing` event at `$level` (`info`, `warn`, ...) with target `ipc_rpc`,
/// when rpc-core was built with the `tracing` feature.
#[cfg(feature = "tracing")]
#[macro_export]
#[doc(hidden)]
macro_rules! __event {
    ($level:ident, $($rest:tt)+) => {
        $crate::log::__tracing::$level!(target: "ipc_rpc", $($rest)+)
    };
}

/// Expands to nothing: rpc-core was built without the `tracing` feature.
#[cfg(not(feature = "tracing"))]
#[macro_export]
#[doc(hidden)]
macro_rules! __event {
    ($level:ident, $($rest:tt)+) => {{}};
}

#[cfg(feature = "tracing")]
#[doc(hidden)]
pub use tracing as __tracing;

/// A `tracing` subscriber that keeps every event as a line of text, for the
/// workspace's own tests of the events (not public API).
#[cfg(feature = "tracing")]
#[doc(hidden)]
pub mod recorder {
    use std::fmt::Write as _;
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// Every event of this process, as `LEVEL target: message field=value ...`.
    static EVENTS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

    fn events() -> &'static Mutex<Vec<String>> {
        EVENTS.get_or_init(Mutex::default)
    }

    /// Records every event of the process (installed once, as the global default).
    pub fn install() {
        let _ = tracing::subscriber::set_global_default(Recorder);
    }

    /// Waits, up to 5 s, for an event whose line contains every one of `parts`, and
    /// returns it.
    ///
    /// # Panics
    ///
    /// When none comes, listing the events there were.
    pub fn logged(parts: &[&str]) -> String {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let seen = events()
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if let Some(line) = seen.iter().find(|l| parts.iter().all(|p| l.contains(p))) {
                return line.clone();
            }
            assert!(
                Instant::now() < until,
                "no event with {parts:?} among:\n{}",
                seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    struct Recorder;

    struct Line(String);

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, " {value:?}");
            } else {
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
    }

    impl Subscriber for Recorder {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let meta = event.metadata();
            let mut line = Line(format!("{} {}:", meta.level(), meta.target()));
            event.record(&mut line);
            events()
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(line.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}
