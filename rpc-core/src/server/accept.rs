//! Taking a new connection: the `max_connections` limit, the transport's set-up, the
//! session's start; and the refusal of a client over the limit.
//!
//! Nothing here holds a thread while it waits for a client. A transport whose set-up
//! reads the client's request (shared memory) is parked in the poller until that
//! request is there ([`Transport::setup_wait`]); the handshake is read by the
//! session's reader (see the `session` module). A refused client's connection waits
//! in the poller, at most [`REFUSAL_LINGER`], until the client has read the reason
//! and left.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::dispatch::Dispatch;
use crate::error::TransportError;
use crate::transport::{Parts, Readiness, Transport};

use super::alarm::Alarm;
use super::config::ServerConfig;
use super::handshake::{HANDSHAKE_MAX_FRAME, HANDSHAKE_TIMEOUT};
use super::poller::{Poller, Wakeable};
use super::session::{ServerLink, Session};
use super::table::Registry;
use super::threads::Threads;

/// How long a refused client gets to read its refusal and leave before the server
/// closes the connection.
pub(super) const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// How long one look for a refused client's leaving may wait for its bytes.
const DRAIN_WAIT: Duration = Duration::from_millis(1);

/// What the accept loop needs to open connections.
pub(super) struct Accept {
    pub(super) threads: Threads,
    pub(super) registry: Arc<Registry>,
    pub(super) dispatch: Arc<dyn Dispatch>,
    pub(super) alarm: Arc<Alarm>,
    pub(super) poller: Arc<Poller>,
    pub(super) config: ServerConfig,
}

/// What a connection's set-up leads to.
#[derive(Clone, Copy)]
enum Then {
    /// A session.
    Serve,
    /// The refusal of a client over `max_connections` (the limit).
    Refuse(usize),
}

impl Accept {
    /// Takes a connection: serves it, or refuses it when `max_connections` are open.
    pub(super) fn open(self: &Arc<Self>, transport: Box<dyn Transport>) {
        let max = self.config.max_connections.max(1);
        let (id, then) = {
            let mut table = self.registry.lock();
            if table.shutting_down {
                return;
            }
            table.next_id += 1;
            let id = table.next_id;
            if table.starting + table.sessions.len() >= max {
                (id, Then::Refuse(max))
            } else {
                table.starting += 1;
                (id, Then::Serve)
            }
        };
        self.set_up(id, transport, then);
    }

    /// Splits the transport once it can be without waiting for the client: at once,
    /// or when the poller sees the client's set-up request.
    fn set_up(self: &Arc<Self>, id: u64, transport: Box<dyn Transport>, then: Then) {
        let by = Instant::now() + HANDSHAKE_TIMEOUT;
        if transport.setup_wait().is_none() {
            return self.finish_on_pool(id, transport, by, then);
        }
        let pending = Arc::new(Pending {
            accept: Arc::downgrade(self),
            id,
            by,
            then,
            transport: Mutex::new(Some(transport)),
        });
        // Registered while the pending set-up holds the transport (and so its
        // descriptors): a wake-up that comes at once waits for this lock.
        let slot = pending
            .transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let armed = slot
            .as_ref()
            .and_then(|t| t.setup_wait())
            .is_some_and(|fds| self.poller.arm(id, fds, Some(by), pending.clone()).is_ok());
        drop(slot);
        if !armed && let Some(transport) = pending.take() {
            self.finish_on_pool(id, transport, by, then);
        }
    }

    fn finish_on_pool(
        self: &Arc<Self>,
        id: u64,
        transport: Box<dyn Transport>,
        by: Instant,
        then: Then,
    ) {
        let me = self.clone();
        if self
            .threads
            .run(move || me.finish(id, transport, by, then))
            .is_err()
        {
            self.abandon(then);
        }
    }

    /// Forgets a set-up that will not finish.
    fn abandon(&self, then: Then) {
        if let Then::Serve = then {
            self.registry.remove(None);
        }
    }

    fn finish(self: &Arc<Self>, id: u64, transport: Box<dyn Transport>, by: Instant, then: Then) {
        match then {
            Then::Serve => self.serve(id, transport, by),
            Then::Refuse(max) => self.refuse(id, transport, max),
        }
    }

    /// Splits the transport and starts its session.
    fn serve(self: &Arc<Self>, id: u64, mut transport: Box<dyn Transport>, shake_by: Instant) {
        // A TLS handshake authenticates the client here; one that fails ends this
        // connection only.
        if transport.establish(shake_by).is_err() {
            self.registry.remove(None);
            return;
        }
        let peer = transport.credentials();
        // Splitting may do the transport's own set-up (shared memory maps the
        // client's segment, with a time-out).
        let Ok(parts) = transport.split() else {
            self.registry.remove(None);
            return;
        };
        let weak: Weak<Registry> = Arc::downgrade(&self.registry);
        let link = ServerLink {
            dispatch: self.dispatch.clone(),
            threads: self.threads.clone(),
            alarm: self.alarm.clone(),
            poller: self.poller.clone(),
            max_in_flight: self.config.max_in_flight.max(1),
            on_end: Arc::new(move |id| {
                if let Some(registry) = weak.upgrade() {
                    registry.remove(Some(id));
                }
            }),
        };
        let session = Session::new(id, peer, parts, link, shake_by);
        {
            let mut table = self.registry.lock();
            if table.shutting_down {
                drop(table);
                session.close();
                self.registry.remove(None);
                return;
            }
            table.sessions.insert(id, session.clone());
            table.starting -= 1;
            crate::__event!(
                info,
                connection = id,
                peer_pid = ?session.peer().pid,
                peer_uid = ?session.peer().uid,
                open = table.sessions.len(),
                "connection opened"
            );
        }
        session.start();
    }

    /// Tells a client over the limit why it cannot connect, then lets its connection
    /// wait in the poller until the client has read that and left (at most
    /// [`REFUSAL_LINGER`]): a transport whose set-up the client finishes after this
    /// (FIFOs) would otherwise see its names removed instead of the reason.
    fn refuse(&self, id: u64, transport: Box<dyn Transport>, max: usize) {
        let Ok(mut parts) = transport.split() else {
            return;
        };
        let reason = format!(
            "server at max_connections={max}; try again once others disconnect, or raise \
             `max_connections` on the server's endpoint"
        );
        crate::__event!(warn, connection = id, "connection refused: {reason}");
        let until = Instant::now() + REFUSAL_LINGER;
        parts.sender.set_deadline(Some(until));
        if parts
            .sender
            .send(&crate::wire::encode_refusal(&reason))
            .is_err()
        {
            return;
        }
        parts.receiver.set_max_frame(HANDSHAKE_MAX_FRAME);
        let refused = Arc::new(Refused {
            id,
            until,
            poller: self.poller.clone(),
            threads: self.threads.clone(),
            parts: Mutex::new(Some(parts)),
        });
        refused.linger();
    }
}

/// A connection whose set-up waits in the poller for the client's request.
struct Pending {
    accept: Weak<Accept>,
    id: u64,
    by: Instant,
    then: Then,
    transport: Mutex<Option<Box<dyn Transport>>>,
}

impl Pending {
    fn take(&self) -> Option<Box<dyn Transport>> {
        self.transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl Wakeable for Pending {
    fn wake(self: Arc<Self>) {
        let Some(transport) = self.take() else {
            return;
        };
        match self.accept.upgrade() {
            Some(accept) => accept.finish_on_pool(self.id, transport, self.by, self.then),
            None => drop(transport),
        }
    }

    fn expire(self: Arc<Self>) {
        // The client did not finish its set-up in time (or the server stops).
        drop(self.take());
        if let Some(accept) = self.accept.upgrade() {
            accept.abandon(self.then);
        }
    }
}

/// A refused client's connection, waiting for the client to leave.
struct Refused {
    id: u64,
    until: Instant,
    poller: Arc<Poller>,
    threads: Threads,
    parts: Mutex<Option<Parts>>,
}

impl Refused {
    /// Reads (and drops) what the client still sends; parks the connection again if
    /// the client is still there and time is left, else drops it.
    fn linger(self: &Arc<Self>) {
        let mut slot = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(parts) = slot.as_mut() else {
            return;
        };
        let wait = loop {
            match parts.receiver.recv(Some(Instant::now() + DRAIN_WAIT)) {
                Ok(_) => {}
                Err(TransportError::TimedOut) => match parts.receiver.prepare_wait() {
                    Readiness::Ready => {}
                    wait => break wait,
                },
                Err(_) => break Readiness::Blocking,
            }
            if Instant::now() >= self.until {
                break Readiness::Blocking;
            }
        };
        let parked = match wait {
            Readiness::WaitOn(fds) if Instant::now() < self.until => self
                .poller
                .arm(self.id, fds, Some(self.until), self.clone())
                .is_ok(),
            _ => false,
        };
        if !parked {
            // The client left, the time is up, or there is no way to wait: close.
            slot.take();
        }
    }
}

impl Wakeable for Refused {
    fn wake(self: Arc<Self>) {
        let me = self.clone();
        if self.threads.run(move || me.linger()).is_err() {
            self.parts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        }
    }

    fn expire(self: Arc<Self>) {
        self.parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}
