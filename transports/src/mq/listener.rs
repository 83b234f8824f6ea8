//! [`MqListener`]: the server side of the connect protocol (see the
//! [module docs](super)).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use rpc_core::{Closer, Listener, Transport, TransportError};

use super::conn::{Ends, MqTransport};
use super::handshake::{Answer, Connect};
use super::liveness::{PeerProcess, ProcessId, WatchError};
use super::queue::{self, Access, Queue, UnlinkGuard};
use super::{checked_msgsize, invalid_name, limits};
use crate::endpoint::{Endpoint, EndpointKind, wrong_kind};
use crate::fd_reserve::{Spare, is_exhaustion};
use crate::names::mq::{Direction, Names};
use crate::names::owner_lock::OwnerLock;
use crate::names::reclaim::mq_stale_connections;

/// A server's rendezvous queue, with the owner lock that makes it ours.
///
/// Binding takes the owner lock (an `flock` held while the server lives), so a live
/// server's name is refused with `AddrInUse`, while a dead server's leftovers (its
/// rendezvous queue, and the queues of clients that died while connecting) are
/// removed. Dropping the listener refuses the clients still waiting in the queue,
/// then removes the queue and the lock file.
#[derive(Debug)]
pub struct MqListener {
    endpoint: Endpoint,
    names: Names,
    rendezvous: Queue,
    /// A non-blocking receiving descriptor, to refuse waiting clients on drop.
    drain: Queue,
    waker: Arc<Waker>,
    buf: Vec<u8>,
    /// Freed to tell a client that the server is out of descriptors.
    spare: Spare,
    // Last: dropped after `Drop::drop` unlinked the queue, so no one binds in between.
    _lock: OwnerLock,
}

#[derive(Debug)]
struct Waker {
    closed: AtomicBool,
    /// A non-blocking sending descriptor of the rendezvous queue.
    queue: Queue,
}

impl Closer for WakerHandle {
    fn close(&self) {
        // SYNC: Release, paired with the Acquire in `MqListener::accept`.
        self.0.closed.store(true, Ordering::Release);
        // A full queue needs no wake-up: `accept` takes a request and sees the flag.
        let _ = self.0.queue.try_send(&[]);
    }
}

struct WakerHandle(Arc<Waker>);

impl MqListener {
    /// Binds the rendezvous queue of `mq:<name>`.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if a live server owns the name; `Io` if the name is too long or the
    /// OS refuses the queue (the message names the limit and how to raise it);
    /// `Unsupported` for an endpoint of another kind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rpc_core::Listener as _;
    /// let listener = transports::MqListener::bind(&"mq:/calc".parse()?)?;
    /// println!("listening on {}", listener.local_endpoint());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let EndpointKind::Mq { name, .. } = endpoint.kind() else {
            return Err(wrong_kind(endpoint, "MqListener", "mq:"));
        };
        let endpoint = endpoint.clone();
        let shown = endpoint.to_string();
        let names = Names::new(name).map_err(|m| invalid_name(&shown, m))?;
        let lock = acquire_lock(&names, &shown)?;
        let io_err = |what: String, source: io::Error| TransportError::Io {
            context: format!("{shown}: {what}"),
            source,
        };
        let me = ProcessId::current().map_err(|e| io_err("read /proc/self/stat".into(), e))?;
        // Clients read the owner from the lock file to watch it while they connect.
        std::fs::write(lock.path(), me.to_text())
            .map_err(|e| io_err(format!("write {}", lock.path().display()), e))?;
        let rendezvous_name = names.rendezvous();
        // We hold the lock, so whatever has our names belongs to a dead server.
        queue::unlink(&rendezvous_name).map_err(|e| {
            io_err(
                format!("remove the stale queue {rendezvous_name} of a dead server"),
                e.into(),
            )
        })?;
        mq_stale_connections(&names);
        let size = limits::rendezvous();
        let rendezvous = Queue::create(&rendezvous_name, size, Access::Receive).map_err(|e| {
            limits::open_error(
                e,
                &format!("{shown}: create queue {rendezvous_name}"),
                Some(size),
            )
        })?;
        let mut unlink_on_error = UnlinkGuard(vec![rendezvous_name.clone()]);
        let open = |access| {
            Queue::open(&rendezvous_name, access).map_err(|e| {
                limits::open_error(e, &format!("{shown}: open queue {rendezvous_name}"), None)
            })
        };
        let waker = Arc::new(Waker {
            closed: AtomicBool::new(false),
            queue: open(Access::Send)?,
        });
        let drain = open(Access::ReceiveNow)?;
        let msgsize = rendezvous
            .size()
            .map_err(|e| io_err(format!("read the size of {rendezvous_name}"), e.into()))?
            .msgsize;
        unlink_on_error.0.clear();
        Ok(MqListener {
            endpoint,
            names,
            rendezvous,
            drain,
            waker,
            buf: vec![0; usize::try_from(msgsize).unwrap_or(0)],
            spare: Spare::new(),
            _lock: lock,
        })
    }

    /// Opens the queue pair of a client that asked to connect. `Ok(None)` when the
    /// request is void (the client died or gave up, or made unusable queues): the
    /// listener goes on with the next request.
    fn admit(&mut self, req: Connect) -> Result<Option<MqTransport>, TransportError> {
        let c2s = self
            .names
            .connection(req.client, req.n, Direction::ClientToServer);
        let s2c = self
            .names
            .connection(req.client, req.n, Direction::ServerToClient);
        // The names go in any case: after the answer the queues live on in the
        // descriptors, and a void request's queues are garbage.
        let _unlink = UnlinkGuard(vec![c2s.clone(), s2c.clone()]);
        let shown = self.endpoint.to_string();
        let peer = match PeerProcess::open(req.client) {
            Ok(p) => p,
            Err(WatchError::Gone) => return Ok(None),
            Err(WatchError::Io(e)) if is_exhaustion(&e) => {
                self.refuse_out_of_descriptors(&s2c, &e);
                return Ok(None);
            }
            Err(WatchError::Io(e)) => {
                return Err(TransportError::Io {
                    context: format!(
                        "{shown}: cannot watch client process {} (pidfd_open)",
                        req.client.pid
                    ),
                    source: e,
                });
            }
        };
        let open = |name: &str, access| match Queue::open(name, access) {
            Ok(q) => Ok(Some(q)),
            Err(Errno::ENOENT | Errno::EACCES) => Ok(None),
            Err(e) => Err((name.to_owned(), e)),
        };
        let opened = (|| {
            Ok((
                open(&c2s, Access::Receive)?,
                open(&c2s, Access::Send)?,
                open(&s2c, Access::Send)?,
            ))
        })();
        let (incoming, wake, outgoing) = match opened {
            Ok(queues) => queues,
            Err((_, e @ (Errno::EMFILE | Errno::ENFILE))) => {
                drop(peer);
                self.refuse_out_of_descriptors(&s2c, &io::Error::from(e));
                return Ok(None);
            }
            Err((name, e)) => {
                return Err(limits::open_error(
                    e,
                    &format!("{shown}: open client queue {name}"),
                    None,
                ));
            }
        };
        let (Some(incoming), Some(wake), Some(outgoing)) = (incoming, wake, outgoing) else {
            return Ok(None);
        };
        let (Some(in_msgsize), Some(out_msgsize)) =
            (checked_msgsize(&incoming), checked_msgsize(&outgoing))
        else {
            return Ok(None);
        };
        if outgoing.try_send(&Answer::Accept.encode()).is_err() {
            return Ok(None);
        }
        self.spare.recovered();
        Ok(Some(MqTransport {
            ends: Ends {
                incoming,
                wake,
                outgoing,
                in_msgsize,
                out_msgsize,
                peer,
                server_names: None,
            },
            peer: format!("{shown} (client pid {})", req.client.pid),
            max_frame: self.endpoint.max_frame(),
        }))
    }
}

impl MqListener {
    /// Tells the client whose reply queue is `s2c` that the server is out of
    /// descriptors (opening that queue with the spare descriptor freed), and says so on
    /// stderr once.
    fn refuse_out_of_descriptors(&mut self, s2c: &str, error: &io::Error) {
        self.spare.exhausted(&self.endpoint.to_string(), error);
        // Without a spare (`None`) the client's connect times out, as before.
        let _ = self.spare.freed(|| {
            if let Ok(q) = Queue::open(s2c, Access::Send) {
                let _ = q.try_send(&Answer::OutOfDescriptors.encode());
            }
        });
    }
}

impl Listener for MqListener {
    fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        loop {
            // SYNC: Acquire, paired with the Release in `WakerHandle::close`.
            if self.waker.closed.load(Ordering::Acquire) {
                return Err(TransportError::Closed);
            }
            let n = match self.rendezvous.receive(&mut self.buf) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    return Err(TransportError::Io {
                        context: format!("{}: wait for connect requests", self.endpoint),
                        source: e.into(),
                    });
                }
            };
            // Anything but a request (a wake-up, garbage) is dropped.
            let Some(req) = Connect::decode(&self.buf[..n]) else {
                continue;
            };
            if let Some(transport) = self.admit(req)? {
                return Ok(Box::new(transport));
            }
        }
    }

    fn closer(&self) -> Result<Box<dyn Closer>, TransportError> {
        Ok(Box::new(WakerHandle(self.waker.clone())))
    }

    fn local_endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }
}

impl Drop for MqListener {
    fn drop(&mut self) {
        // New clients fail to open the name from here on.
        let _ = queue::unlink(&self.names.rendezvous());
        // Clients already waiting hear "refused" now instead of timing out.
        while let Ok(n) = self.drain.receive(&mut self.buf) {
            if let Some(req) = Connect::decode(&self.buf[..n]) {
                let s2c = self
                    .names
                    .connection(req.client, req.n, Direction::ServerToClient);
                if let Ok(q) = Queue::open(&s2c, Access::Send) {
                    let _ = q.try_send(&Answer::Refuse.encode());
                }
            }
        }
    }
}

/// Takes the owner lock. A holder that has not written a live process into the lock
/// file is a client cleaning up after a dead server (see `reclaim::mq_if_abandoned`) or
/// a server starting up: retried for up to [`LOCK_RETRY`] before `AddrInUse`.
fn acquire_lock(names: &Names, endpoint: &str) -> Result<OwnerLock, TransportError> {
    let give_up = Instant::now() + LOCK_RETRY;
    loop {
        match OwnerLock::acquire(names.lock_path(), endpoint) {
            Err(TransportError::AddrInUse { .. }) if Instant::now() < give_up => {
                let owner = std::fs::read_to_string(names.lock_path())
                    .ok()
                    .and_then(|text| ProcessId::from_text(&text));
                if owner.is_some_and(ProcessId::is_alive) {
                    return Err(TransportError::AddrInUse {
                        endpoint: endpoint.to_owned(),
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// How long `bind` waits for a lock holder that has not said it is a live server.
const LOCK_RETRY: Duration = Duration::from_millis(300);
