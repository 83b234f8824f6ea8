//! One connection's request/reply mechanics, shared by a single-connection client and
//! by the router's workers: request ids, concurrent calls over one connection,
//! deadlines.
//!
//! Calls multiplex by request id. There is no background thread: the first caller
//! waiting for a reply reads the connection for everyone, hands replies that belong to
//! other callers over to them, and passes the reading role on when its own reply
//! arrives. A lone caller therefore writes its request and reads its own reply itself,
//! with no thread hand-off, and its reply is decoded straight out of the receive
//! buffer.
//!
//! A call whose deadline passes while its reply is still owed (the request went, or
//! will go with the next send) leaves the reply to a *drainer*: a thread started on
//! the connection's first such time-out, which reads while no caller does and discards
//! owed replies, so that a server never blocks writing a reply that nobody reads. It
//! ends once nothing is owed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::buf::{FrameBuf, Payload};
use crate::codec::{decode_prefix, encode_bulk_len, encode_into, send_frame};
use crate::dispatch::ServiceInfo;
use crate::error::{CodecError, FrameLimit, RemoteError, RpcError, TransportError};
use crate::transport::closed::{ClosedCloser, ClosedReceiver, ClosedSender};
use crate::transport::{Closer, FrameReceiver, FrameSender, Parts, Transport};
use crate::wire::{self, Hello, MAGIC, PROTOCOL_VERSION, Preamble, STATUS_ERR, STATUS_OK, Welcome};

use crate::schema::{MethodRoutes, ServerMethod};
pub use crate::wire::HANDSHAKE_TIMEOUT;

mod events;
pub use events::Subscription;

/// How long a call that timed out tries to tell the server it gave up.
const CANCEL_SEND_TIMEOUT: Duration = Duration::from_millis(20);

/// How long the drainer reads before it looks again whether it is still needed.
const DRAIN_SLICE: Duration = Duration::from_millis(100);

/// One connection: what every clone of a single-connection client (or a router's
/// worker slot) shares.
pub(crate) struct Connection {
    /// This connection, for the drainer thread (which must not keep it alive).
    me: Weak<Connection>,
    peer: Arc<str>,
    service: &'static ServiceInfo,
    sending: Mutex<Sending>,
    receiver: Mutex<Box<dyn FrameReceiver>>,
    calls: Mutex<Calls>,
    next_id: AtomicU64,
    /// Aborts the transport; a stand-in once [`Connection::close`] dropped it.
    closer: Mutex<Box<dyn Closer>>,
    /// A moving average, in µs, of how long readers that handed others their replies
    /// waited for their own (see [`YIELD_AFTER`]).
    reader_wait_us: AtomicU64,
    /// How long a caller waiting for a reply that another caller reads spins before it
    /// sleeps ([`Transport::wait_spin`]).
    wait_spin: Duration,
    /// Moves on whenever a spinning caller may have something to do: the reading role
    /// freed, the connection closed (a reply handed over says so in `handed`). A
    /// spinning caller watches it instead of the lock.
    news: AtomicU64,
    /// Callers spinning now for their reply or for news (see
    /// [`Connection::poll_for_reply`]), counted under the calls' lock; while none
    /// does, `news` and `handed` are not written.
    spinning: AtomicU32,
    /// Where a reader tells a spinning caller that its reply was handed over: the
    /// call's id in slot `id % HANDED_SLOTS`. Two calls in flight in one slot may miss
    /// their word here; they sleep after their spin, and the unpark that comes with
    /// the reply wakes them.
    handed: [AtomicU64; HANDED_SLOTS],
    /// Moves on (under the calls' lock) whenever a polling caller, which does not hold
    /// the reading role, handed a frame over: a caller that took the role, and looked
    /// for its reply under the lock before it held the receiver, looks again when this
    /// moved meanwhile (its reply may be among them, and would never come again).
    polled: AtomicU64,
    /// The server's `max_frame` (from its welcome) where it is under this side's: a
    /// request over it is refused before anything is sent.
    server_limit: Option<usize>,
    /// This side's own `max_frame` (the transport's).
    frame_limit: usize,
    /// Where this client's methods are on the server (learned from its welcome).
    routes: MethodRoutes,
}

/// Slots of [`Connection::handed`].
const HANDED_SLOTS: usize = 64;

/// How long a caller polling for its reply ([`Connection::poll_for_reply`]) spins
/// before it yields its CPU between looks: a few round trips of shared memory, where
/// a reply from a server on another CPU comes in 1–2 µs.
const POLL_TIGHT: Duration = Duration::from_micros(4);

struct Sending {
    sender: Box<dyn FrameSender>,
    buf: Vec<u8>,
}

#[derive(Default)]
struct Calls {
    /// A caller is reading replies for everyone.
    reading: bool,
    /// Why the connection is dead, once it is, and the transport's error that ended it.
    closed: Option<(Arc<str>, Option<Arc<TransportError>>)>,
    pending: HashMap<u64, Pending, ById>,
    /// Calls that gave up while their reply is owed: it is read and dropped.
    owed: HashSet<u64, ById>,
    /// The drainer thread, while one runs.
    drainer: Option<Thread>,
}

#[derive(Default)]
struct Pending {
    waiter: Option<Thread>,
    reply: Option<Handed>,
    /// Its caller gave the reading role up because its own reply was slow to come
    /// (see [`YIELD_AFTER`]): it is picked to read again only if nobody else waits.
    yielded: bool,
    /// A subscription's events, read and not yet taken (see `events`); `None` for a
    /// plain call (boxed: a plain call's entry stays as small as before).
    #[expect(
        clippy::box_collection,
        reason = "one pointer in every call's entry, not a VecDeque's four words"
    )]
    events: Option<Box<VecDeque<Handed>>>,
}

/// Replies a reader hands over to other callers in a row, its own not among them,
/// before it passes the reading role to another waiting caller, if it has also waited
/// longer than its connection's readers usually wait for their own reply (four times
/// the recent average, at least [`YIELD_WAIT`]): a caller whose own call runs long (a
/// slow handler beside fast ones) would otherwise read for everyone, and each reply
/// would cost waking it and then the reply's owner. A reply that comes next is more
/// likely another caller's. A reader whose own reply is about due keeps the role:
/// passing it costs a wake-up (calls that are all slow alike pass it rarely).
const YIELD_AFTER: u32 = 2;

/// The shortest wait for its own reply after which a reader passes the role on (see
/// [`YIELD_AFTER`]).
const YIELD_WAIT: Duration = Duration::from_micros(100);

/// Why a client ends a connection whose server sent a subscription more events than
/// it had credit for.
pub(crate) const OVER_CREDIT: &str =
    "the server sent a subscription more events than its credit (it ignores flow control)";

/// A reply handed from the reading caller to its owner: status, head, split tail.
type Handed = (u8, Vec<u8>, Option<Vec<u8>>);

/// Hashes the calls' maps by call id with one multiplication, not SipHash (three
/// lookups a call): their keys are the ids this side numbered in order, and a peer's
/// reply id only looks up, never inserts, so no peer can choose colliding keys.
type ById = BuildHasherDefault<IdHasher>;

/// See [`ById`].
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    /// Fibonacci hashing: the multiplication spreads consecutive ids over the high
    /// bits, which the map's control bytes take.
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection whose handshake succeeded, before a client takes its parts: the
/// blocking [`Connection`] or the async client.
pub(crate) struct Handshaken {
    pub(crate) peer: Arc<str>,
    pub(crate) parts: Parts,
    pub(crate) wait_spin: Duration,
    /// The buffer the hello was encoded in, for the requests to reuse.
    pub(crate) buf: Vec<u8>,
    /// This side's own `max_frame` (the transport's).
    pub(crate) frame_limit: usize,
    /// The server's `max_frame` where it is under this side's.
    pub(crate) server_limit: Option<usize>,
    /// Where this client's methods are on the server.
    pub(crate) routes: MethodRoutes,
}

/// Performs the client's half of the handshake over a connected transport, within
/// `timeout`, and returns the connection (see `Client::handshake`, which documents the
/// errors).
pub(crate) fn handshake(
    transport: Box<dyn Transport>,
    service: &'static ServiceInfo,
    timeout: Duration,
) -> Result<Arc<Connection>, RpcError> {
    let shaken = handshake_parts(transport, service, timeout)?;
    Ok(Arc::new_cyclic(|me| Connection {
        server_limit: shaken.server_limit,
        frame_limit: shaken.frame_limit,
        routes: shaken.routes,
        me: me.clone(),
        peer: shaken.peer,
        service,
        sending: Mutex::new(Sending {
            sender: shaken.parts.sender,
            buf: shaken.buf,
        }),
        receiver: Mutex::new(shaken.parts.receiver),
        calls: Mutex::new(Calls::default()),
        next_id: AtomicU64::new(1),
        closer: Mutex::new(shaken.parts.closer),
        reader_wait_us: AtomicU64::new(0),
        wait_spin: shaken.wait_spin,
        news: AtomicU64::new(0),
        spinning: AtomicU32::new(0),
        handed: [const { AtomicU64::new(u64::MAX) }; HANDED_SLOTS],
        polled: AtomicU64::new(0),
    }))
}

/// The client's half of the handshake over a connected transport: the connection's
/// parts once the server accepted it (see `Client::handshake`, which documents the
/// errors).
pub(crate) fn handshake_parts(
    transport: Box<dyn Transport>,
    service: &'static ServiceInfo,
    timeout: Duration,
) -> Result<Handshaken, RpcError> {
    let peer: Arc<str> = transport.peer().into();
    let deadline = Instant::now() + timeout;
    let silent = || RpcError::ConnectTimeout {
        endpoint: peer.to_string(),
        after: timeout,
        detail: "the server took the connection but did not answer the handshake: it is \
                 stopped (SIGSTOP?), overloaded, or not an ipc-rpc server; check that it runs, \
                 or raise `connect_timeout` in the endpoint (e.g. `?connect_timeout=10s`)"
            .into(),
    };
    let wait_spin = transport.wait_spin();
    let closed = |what: &str| RpcError::Disconnected {
        peer: peer.clone(),
        reason: format!("the server closed the connection during the handshake ({what})").into(),
        source: None,
    };
    let Parts {
        mut sender,
        mut receiver,
        closer,
    } = transport.split().map_err(|e| transport_error(&peer, e))?;
    let frame_limit = receiver.frame_limit();
    // The welcome lists the server's methods: it may be larger than a hello, and
    // comes from the server this client chose, so it is held to this side's own limit.
    receiver.set_max_frame(frame_limit);
    sender.set_deadline(Some(deadline));

    let mut buf = Vec::with_capacity(256);
    let hello = Hello {
        magic: MAGIC,
        protocol: PROTOCOL_VERSION,
        service: service.name,
        max_frame: frame_limit as u64,
    };
    encode_into(&hello, &mut buf, "handshake")?;
    if let Err(e) = sender.send(&buf) {
        return Err(match e {
            // A server that refuses connections may have said why and closed
            // before our hello arrived.
            TransportError::Closed => {
                refused(&mut *receiver, &peer).unwrap_or_else(|| closed("sending hello"))
            }
            TransportError::TimedOut => silent(),
            e => transport_error(&peer, e),
        });
    }

    let frame = receiver
        .recv(Some(deadline))
        .map_err(|e| match e {
            TransportError::Closed => closed("waiting for its welcome"),
            TransportError::TimedOut => silent(),
            TransportError::FrameTooLarge { .. } | TransportError::Corrupt(_) => {
                RpcError::Protocol {
                    peer: peer.clone(),
                    detail: "the handshake reply is not an ipc-rpc frame",
                }
            }
            e => transport_error(&peer, e),
        })?
        .into_contiguous();
    if let Some(reason) = wire::decode_refusal(&frame) {
        return Err(refusal_error(&peer, &reason));
    }
    let not_welcome = |peer| RpcError::Protocol {
        peer,
        detail: "the handshake reply is not an ipc-rpc welcome",
    };
    let preamble = match decode_prefix::<Preamble>(&mut &frame[..], "welcome") {
        Ok(p) if p.magic == MAGIC => p,
        _ => return Err(not_welcome(peer)),
    };
    if preamble.protocol != PROTOCOL_VERSION {
        // Another version's welcome may have another shape: its version is enough.
        return Err(RpcError::Incompatible {
            client: format!("{service}, protocol {PROTOCOL_VERSION}"),
            server: format!("protocol {} (another ipc-rpc release)", preamble.protocol),
            peer,
        });
    }
    let Ok(welcome) = decode_prefix::<Welcome<'_>>(&mut &frame[..], "welcome") else {
        return Err(not_welcome(peer));
    };
    if !welcome.accepted || welcome.protocol != PROTOCOL_VERSION || welcome.service != service.name
    {
        return Err(RpcError::Incompatible {
            client: format!("`{}`, protocol {PROTOCOL_VERSION}", service.name),
            server: format!("`{}`, protocol {}", welcome.service, welcome.protocol),
            peer,
        });
    }
    let routes = MethodRoutes::new(
        service,
        welcome.methods.iter().map(|m| ServerMethod {
            name: m.name,
            fingerprint: m.fingerprint,
            signature: m.signature,
        }),
    );

    let server_limit = usize::try_from(welcome.max_frame).unwrap_or(usize::MAX);
    receiver.set_max_frame(usize::MAX);
    sender.set_deadline(None);
    Ok(Handshaken {
        peer,
        parts: Parts {
            sender,
            receiver,
            closer,
        },
        frame_limit,
        server_limit: (server_limit < frame_limit).then_some(server_limit),
        wait_spin,
        buf,
        routes,
    })
}

/// What a call sends: its method, its arguments, and the byte string that ends them.
pub(crate) struct Request<F> {
    pub(crate) method: u16,
    pub(crate) encode_args: F,
    pub(crate) bulk: Option<Vec<u8>>,
}

/// Removes a call's entry when the call ends, however it ends, and makes sure that
/// if nobody is reading, a waiting caller is woken to take the reading role: the
/// role is never left unclaimed while callers wait.
pub(crate) struct CallGuard<'a> {
    shared: &'a Connection,
    id: u64,
    reading: bool,
    /// The call gave up while its reply is owed: the drainer reads it.
    owed: bool,
    /// Other calls of this connection were in flight when it started: the server is
    /// told, so that it reads on while it runs this one.
    overlaps: bool,
    /// Until when its caller may spin for the reply, once it waited (see
    /// [`Connection::wait_turn`]).
    spin_until: Option<Instant>,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        let mut calls = lock(&self.shared.calls);
        if self.reading {
            calls.reading = false;
            self.shared.tell();
        }
        self.shared.forget(calls, self.id, self.owed);
    }
}

impl Connection {
    /// Removes call `id`'s entry (its caller left); if its reply is `owed` (it gave up
    /// waiting while the reply is on its way), has the drainer read it. Then, if nobody
    /// reads, wakes whoever should.
    #[inline]
    fn forget(&self, mut calls: MutexGuard<'_, Calls>, id: u64, owed: bool) {
        calls.pending.remove(&id);
        let start_drainer = owed && calls.closed.is_none() && {
            calls.owed.insert(id);
            calls.drainer.is_none()
        };
        let next = if calls.reading {
            None
        } else {
            next_reader(&calls)
        };
        if start_drainer {
            calls.drainer = self.start_drainer();
        }
        drop(calls);
        if let Some(t) = next {
            t.unpark();
        }
    }
}

/// A caller other than call `id`'s that waits for its reply and did not pass the
/// reading role on itself (see [`YIELD_AFTER`]).
fn quicker_waiter(calls: &Calls, id: u64) -> Option<Thread> {
    calls
        .pending
        .iter()
        .find(|(other, p)| **other != id && p.reply.is_none() && p.waiter.is_some() && !p.yielded)
        .and_then(|(_, p)| p.waiter.clone())
}

/// Whom to wake when the reading role is free: a caller still waiting for its reply
/// or else, while replies are owed, the drainer.
///
/// A caller picked to read may have left (its deadline passed) without taking the
/// role; checking on every exit, not only the reader's, covers it.
fn next_reader(calls: &Calls) -> Option<Thread> {
    let waiting = || {
        calls
            .pending
            .values()
            .filter(|p| p.reply.is_none() && p.waiter.is_some())
    };
    waiting()
        .find(|p| !p.yielded)
        .or_else(|| waiting().next())
        .and_then(|p| p.waiter.clone())
        .or_else(|| {
            if calls.owed.is_empty() {
                None
            } else {
                calls.drainer.clone()
            }
        })
}

/// Why a request was not sent.
pub(crate) enum SendError<F> {
    /// Writing it failed and the connection is now closed. The server never runs it:
    /// it got nothing, or the start of a frame it cannot parse. The request is given
    /// back, for a pool to send to another worker.
    Undelivered(RpcError, Request<F>),
    /// It was not sent and must not be sent elsewhere: its encoding failed or it is too
    /// large (another connection would refuse it too), or its deadline passed (if part
    /// of it went, the transport finishes it with its next send: it is delivered).
    Refused(RpcError),
}

impl<F> SendError<F> {
    pub(crate) fn into_error(self) -> RpcError {
        match self {
            SendError::Undelivered(e, _) | SendError::Refused(e) => e,
        }
    }
}

enum Turn {
    Reply(Handed),
    /// This caller took the reading role; `polled` as it was then.
    Read {
        polled: u64,
    },
    /// Spin until `until`, polling for everyone (see [`Connection::poll_for_reply`]).
    Poll {
        seen: u64,
        until: Instant,
    },
    Failed(RpcError),
}

/// How a wait for a call's reply ended.
enum Ended<R> {
    /// Its reply came: the result it carries.
    Replied(Result<R, RpcError>),
    /// No reply will come for this caller: the connection failed, or its deadline
    /// passed (the reply is then owed).
    Failed(RpcError),
}

impl Connection {
    /// The server's endpoint, as connected to.
    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    /// The service this connection was made for.
    pub(crate) fn service(&self) -> &'static ServiceInfo {
        self.service
    }

    /// One call over this connection.
    #[inline]
    pub(crate) fn call<R>(
        &self,
        request: Request<impl Fn(&mut FrameBuf<'_>) -> Result<(), CodecError>>,
        decode: impl FnOnce(Payload<'_>) -> Result<R, CodecError>,
        deadline: Option<Instant>,
    ) -> Result<R, RpcError> {
        let mut call = self.register()?;
        self.send_and_wait(&mut call, request, decode, deadline)
    }

    /// The rest of a registered call: send the request, then wait for the reply or
    /// read it.
    #[inline]
    pub(crate) fn send_and_wait<R>(
        &self,
        call: &mut CallGuard<'_>,
        request: Request<impl Fn(&mut FrameBuf<'_>) -> Result<(), CodecError>>,
        decode: impl FnOnce(Payload<'_>) -> Result<R, CodecError>,
        deadline: Option<Instant>,
    ) -> Result<R, RpcError> {
        // `request` owns the arguments: they are dropped as soon as it is written, so
        // that a large argument's memory is free again (and reused, warm) by the time
        // the reply is decoded.
        self.send_request(call, request, deadline)
            .map_err(SendError::into_error)?;
        self.wait_reply(call, decode, deadline)
    }

    /// The rest of a call whose request was sent: wait for the reply or read it.
    #[inline]
    pub(crate) fn wait_reply<R>(
        &self,
        call: &mut CallGuard<'_>,
        decode: impl FnOnce(Payload<'_>) -> Result<R, CodecError>,
        deadline: Option<Instant>,
    ) -> Result<R, RpcError> {
        // Only now may this caller read for everyone: a reader blocked in `send` (the
        // server's buffer full because it is blocked writing replies nobody reads)
        // would deadlock the connection.
        let mut decode = Some(decode);
        let ended = loop {
            match self.wait_turn(call, deadline) {
                Turn::Reply((status, head, tail)) => {
                    let decode = decode.take().expect("decoded once");
                    break Ended::Replied(self.decode_reply(
                        status,
                        Payload { head: &head, tail },
                        decode,
                    ));
                }
                Turn::Read { polled } => {
                    match self.read_replies(call.id, &mut decode, deadline, polled) {
                        Some(ended) => break ended,
                        // Passed the reading role on: wait for the reply, or the role.
                        None => call.reading = false,
                    }
                }
                Turn::Poll { seen, until } => {
                    if let Some(ended) = self.poll_for_reply(call.id, seen, until, &mut decode) {
                        break ended;
                    }
                }
                Turn::Failed(e) => break Ended::Failed(e),
            }
        };
        match ended {
            Ended::Replied(result) => result,
            Ended::Failed(e) => {
                if matches!(e, RpcError::Timeout { .. }) {
                    call.owed = true;
                    self.cancel(call.id);
                }
                Err(e)
            }
        }
    }

    /// Tells the server that the caller of call `id` gave up, so that its handler sees
    /// `cancelled()`. Best effort: a connection whose sends are stuck skips it (the
    /// server then learns it when the connection ends).
    fn cancel(&self, id: u64) {
        crate::__event!(info, peer = %self.peer, call = id, "call timed out; telling the server");
        let Ok(mut sending) = self.sending.try_lock() else {
            return;
        };
        let Sending { sender, buf } = &mut *sending;
        sender.set_deadline(Some(Instant::now() + CANCEL_SEND_TIMEOUT));
        buf.clear();
        if wire::encode_cancel(id, &mut FrameBuf::vec(buf)).is_ok() {
            let _ = sender.send(buf);
        }
    }

    /// Moves `news` on for a spinning caller (the caller holds the calls' lock). With
    /// none spinning it costs a load, not a write: the sequential path frees the
    /// reading role on every call. A caller that starts spinning just after this look
    /// misses the news; it looks again under the lock after its spin, and it set its
    /// `waiter` first, so the unpark that comes with the news is not lost either.
    fn tell(&self) {
        if self.spinning.load(Ordering::Relaxed) != 0 {
            // SYNC: Release, paired with the Acquire load of the spinning caller, which
            // then takes the lock and looks.
            self.news.fetch_add(1, Ordering::Release);
        }
    }

    /// Spins, with other calls in flight, until call `id`'s reply comes, `news` moves
    /// on from `seen` (the reading role may be free, the connection closed), or `until`
    /// passes: like a caller on a connection of its own spinning on its transport, so
    /// that a reply costs no wake-up, and nobody holds the reading role while it waits
    /// (a reader that lost its CPU would hold up every caller). Between its looks at
    /// its slot in `handed` it reads, when no other caller does, every reply already
    /// there: its own it decodes with `decode`, and the others it hands over. After
    /// [`POLL_TIGHT`] it yields its CPU between looks: the server or the other callers
    /// may need it. `None` when it should look again under the lock. The caller was
    /// counted in `spinning` by [`Connection::wait_turn`]; this ends the count.
    fn poll_for_reply<R, D>(
        &self,
        id: u64,
        seen: u64,
        until: Instant,
        decode: &mut Option<D>,
    ) -> Option<Ended<R>>
    where
        D: FnOnce(Payload<'_>) -> Result<R, CodecError>,
    {
        let slot = &self.handed[(id % HANDED_SLOTS as u64) as usize];
        let start = Instant::now();
        let tight_until = start + POLL_TIGHT;
        let ended = loop {
            // SYNC: Acquire, paired with the Release stores of a reader that handed the
            // reply over (taken under the lock), or moved `news` on.
            if slot.load(Ordering::Acquire) == id || self.news.load(Ordering::Acquire) != seen {
                break None;
            }
            if let Ok(mut receiver) = self.receiver.try_lock()
                && let Some(ended) = self.poll_replies(&mut **receiver, id, start, decode)
            {
                break Some(ended);
            }
            let now = Instant::now();
            if now >= until {
                break None;
            }
            if now >= tight_until {
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        };
        self.spinning.fetch_sub(1, Ordering::Release);
        ended
    }

    /// Reads the replies already there, without waiting (`past` is an instant that
    /// has passed: as the deadline, the transport looks and does not wait), handing
    /// other callers theirs, until call `mine`'s comes (decoded with `decode`, taken
    /// then). `None` once nothing more is there.
    fn poll_replies<R, D>(
        &self,
        receiver: &mut dyn FrameReceiver,
        mine: u64,
        past: Instant,
        decode: &mut Option<D>,
    ) -> Option<Ended<R>>
    where
        D: FnOnce(Payload<'_>) -> Result<R, CodecError>,
    {
        loop {
            let frame = match receiver.recv(Some(past)) {
                Ok(frame) => frame,
                Err(TransportError::TimedOut) => return None,
                Err(e) => return Some(Ended::Failed(self.fail(e))),
            };
            if let Some(ended) = self.take_reply(frame, mine, decode) {
                return Some(ended);
            }
            // SYNC: Release, paired with the Acquire load in `polled_since`; made while
            // this caller holds the receiver, so a reader that takes it next sees it.
            self.polled.fetch_add(1, Ordering::Release);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.calls).closed.is_some()
    }

    /// Closes the connection from outside a call: every waiting and later call
    /// returns `Disconnected` with `reason`. Keeps an earlier reason.
    pub(crate) fn shut(&self, reason: Arc<str>) {
        self.shut_by(reason, None);
    }

    /// Closes the connection for good, from outside a call ([`crate::Client::close`]):
    /// like [`Connection::shut`], then drops the transport's sending and receiving
    /// ends, so that the server sees the connection end at once even where aborting does
    /// not reach it (a pipe, FIFO or queue ends for the peer when its descriptors close).
    pub(crate) fn close(&self, reason: Arc<str>) {
        self.shut(reason);
        // Aborted: a caller blocked in `send` or `recv` returns and lets go.
        let sender = std::mem::replace(&mut lock(&self.sending).sender, Box::new(ClosedSender));
        let receiver = std::mem::replace(&mut *lock(&self.receiver), Box::new(ClosedReceiver));
        // A queue's end says `FIN` to the peer once all its parts are gone.
        let closer = std::mem::replace(&mut *lock(&self.closer), Box::new(ClosedCloser));
        drop((sender, receiver, closer));
    }

    /// [`Connection::shut`], with the transport's error that ended the connection as
    /// the `Disconnected` errors' source.
    fn shut_by(&self, reason: Arc<str>, cause: Option<Arc<TransportError>>) {
        let waiters: Vec<Thread> = {
            let mut calls = lock(&self.calls);
            if calls.closed.is_none() {
                calls.closed = Some((reason, cause));
            }
            self.tell();
            calls
                .pending
                .values()
                .filter_map(|p| p.waiter.clone())
                .collect()
        };
        // Abort, not close: callers blocked sending must end too.
        lock(&self.closer).abort();
        for t in waiters {
            t.unpark();
        }
    }

    fn disconnected(&self, (reason, cause): &(Arc<str>, Option<Arc<TransportError>>)) -> RpcError {
        RpcError::Disconnected {
            peer: self.peer.clone(),
            reason: reason.clone(),
            source: cause.clone(),
        }
    }

    /// Takes a request id and registers the call; fails, having sent nothing, if the
    /// connection is closed.
    pub(crate) fn register(&self) -> Result<CallGuard<'_>, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut calls = lock(&self.calls);
        if let Some(closed) = &calls.closed {
            return Err(self.disconnected(closed));
        }
        calls.pending.insert(id, Pending::default());
        let overlaps = calls.pending.len() > 1;
        Ok(CallGuard {
            shared: self,
            id,
            reading: false,
            owed: false,
            overlaps,
            spin_until: None,
        })
    }

    /// Sends a call's request, giving up at `deadline` (`Timeout`; the reply is then owed
    /// if part of the request went, since the transport finishes it with its next
    /// send); on a failed send, gives the request back (see [`SendError`]).
    pub(crate) fn send_request<F>(
        &self,
        call: &mut CallGuard<'_>,
        request: Request<F>,
        deadline: Option<Instant>,
    ) -> Result<(), SendError<F>>
    where
        F: Fn(&mut FrameBuf<'_>) -> Result<(), CodecError>,
    {
        let id = call.id;
        let overlaps = call.overlaps;
        let wire_method = match self.routes.wire_method(request.method, &self.peer) {
            Ok(at) => at,
            Err(e) => return Err(SendError::Refused(e)),
        };
        let Request {
            method,
            encode_args,
            bulk,
        } = request;
        let bulk_bytes = bulk.as_deref();
        // What the server is told: how long this caller still waits.
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut sending = lock(&self.sending);
        let Sending { sender, buf } = &mut *sending;
        sender.set_deadline(deadline);
        let write = |out: &mut FrameBuf<'_>| {
            wire::encode_request_header(id, wire_method, remaining, overlaps, out)?;
            encode_args(out)?;
            match bulk_bytes {
                Some(bytes) => encode_bulk_len(bytes.len(), out),
                None => Ok(()),
            }
        };
        let tail = bulk_bytes.unwrap_or_default();
        match send_frame(&mut **sender, buf, write, tail, self.server_limit) {
            Ok(encoded) => encoded.map_err(|e| SendError::Refused(e.into())),
            Err(TransportError::FrameTooLarge { len, max }) => {
                Err(SendError::Refused(RpcError::FrameTooLarge {
                    len,
                    max,
                    limit: if self.server_limit.is_some_and(|l| l as u64 == max) {
                        FrameLimit::ServerRequest
                    } else {
                        FrameLimit::ClientRequest
                    },
                }))
            }
            Err(TransportError::TimedOut) => {
                call.owed = sender.has_backlog();
                Err(SendError::Refused(RpcError::Timeout {
                    peer: self.peer.clone(),
                    after: Duration::ZERO,
                }))
            }
            Err(e) => Err(SendError::Undelivered(
                self.fail(e),
                Request {
                    method,
                    encode_args,
                    bulk,
                },
            )),
        }
    }

    /// Waits until this call's reply was handed over, or until it may read itself.
    ///
    /// Over a transport whose replies come sooner than a sleeping thread wakes
    /// ([`Transport::wait_spin`]), a caller whose call overlaps others spins for its
    /// reply first, for up to `wait_spin`, polling for everyone ([`Turn::Poll`]); a
    /// lone caller takes the reading role at once and spins in the transport.
    fn wait_turn(&self, call: &mut CallGuard<'_>, deadline: Option<Instant>) -> Turn {
        let mut calls = lock(&self.calls);
        loop {
            let closed = calls.closed.clone();
            let reader_free = !calls.reading;
            let crowded = calls.pending.len() > 1;
            let Some(pending) = calls.pending.get_mut(&call.id) else {
                unreachable!("a call's entry lives until its guard drops")
            };
            if let Some(handed) = pending.reply.take() {
                // No longer waiting: a reader passing its role on must not pick this
                // call (its reply taken, it looks like a parked waiter), or the role
                // goes to a thread that will not read and the real waiters sleep on.
                pending.waiter = None;
                return Turn::Reply(handed);
            }
            if let Some(closed) = closed {
                return Turn::Failed(self.disconnected(&closed));
            }
            let yielded = pending.yielded;
            let poll_until = if crowded && !self.wait_spin.is_zero() {
                let now = Instant::now();
                let until = *call.spin_until.get_or_insert(now + self.wait_spin);
                let until = deadline.map_or(until, |d| d.min(until));
                (now < until).then_some(until)
            } else {
                None
            };
            let may_read = reader_free && poll_until.is_none();
            if may_read && !yielded {
                pending.waiter = None;
                return self.take_role(&mut calls, call);
            }
            // A caller that passed the role on because its own reply is slow leaves it
            // to one that waits for a quicker one, while one still waits: taking it
            // back, it would read (and sleep, and be woken) for them again.
            let defer_to = if may_read {
                quicker_waiter(&calls, call.id)
            } else {
                None
            };
            let Some(pending) = calls.pending.get_mut(&call.id) else {
                unreachable!("a call's entry lives until its guard drops")
            };
            if may_read && defer_to.is_none() {
                pending.waiter = None;
                return self.take_role(&mut calls, call);
            }
            // Decided under the lock: had we been picked to read meanwhile, we took
            // the role above; if we leave now, our guard hands the role on.
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => {
                        return Turn::Failed(RpcError::Timeout {
                            peer: self.peer.clone(),
                            after: Duration::ZERO,
                        });
                    }
                },
            };
            if pending.waiter.is_none() {
                pending.waiter = Some(thread::current());
            }
            if let Some(until) = poll_until {
                // Counted under the lock: whoever hands this call's reply over or frees
                // the role after this (under the lock too) tells it so.
                self.spinning.fetch_add(1, Ordering::Relaxed);
                let seen = self.news.load(Ordering::Relaxed);
                return Turn::Poll { seen, until };
            }
            drop(calls);
            if let Some(t) = defer_to {
                t.unpark();
            }
            match left {
                None => thread::park(),
                Some(left) => thread::park_timeout(left),
            }
            calls = lock(&self.calls);
        }
    }

    /// Gives `call`'s caller the reading role (the caller holds the calls' lock).
    fn take_role(&self, calls: &mut Calls, call: &mut CallGuard<'_>) -> Turn {
        calls.reading = true;
        call.reading = true;
        Turn::Read {
            polled: self.polled.load(Ordering::Relaxed),
        }
    }

    /// Reads replies for every caller until this call's own arrives, decoded with
    /// `decode` (taken then); `None` if it passed the reading role on first (see
    /// [`YIELD_AFTER`]).
    fn read_replies<R, D>(
        &self,
        id: u64,
        decode: &mut Option<D>,
        deadline: Option<Instant>,
        mut polled: u64,
    ) -> Option<Ended<R>>
    where
        D: FnOnce(Payload<'_>) -> Result<R, CodecError>,
    {
        let mut receiver = lock(&self.receiver);
        let mut handed = 0;
        // Since the first reply handed over: read from the clock only then.
        let mut waiting_since: Option<Instant> = None;
        loop {
            // Without the receiver (before it took it, or while it offered the role),
            // a polling caller may have read this call's reply.
            if let Some((status, head, tail)) = self.polled_since(&mut polled, id) {
                let decode = decode.take().expect("decoded once");
                let payload = Payload { head: &head, tail };
                return Some(Ended::Replied(self.decode_reply(status, payload, decode)));
            }
            let frame = match receiver.recv(deadline) {
                Ok(frame) => frame,
                Err(TransportError::TimedOut) => {
                    return Some(Ended::Failed(RpcError::Timeout {
                        peer: self.peer.clone(),
                        after: Duration::ZERO,
                    }));
                }
                Err(e) => {
                    drop(receiver);
                    return Some(Ended::Failed(self.fail(e)));
                }
            };
            match self.take_reply(frame, id, decode) {
                Some(replied @ Ended::Replied(_)) => {
                    if let Some(since) = waiting_since {
                        self.note_reader_wait(since.elapsed());
                    }
                    return Some(replied);
                }
                Some(failed) => {
                    drop(receiver);
                    return Some(failed);
                }
                None => {}
            }
            handed += 1;
            let since = *waiting_since.get_or_insert_with(Instant::now);
            if handed >= YIELD_AFTER && since.elapsed() >= self.yield_wait() {
                handed = 0;
                drop(receiver);
                if self.pass_role_on(id) {
                    return None;
                }
                receiver = lock(&self.receiver);
            }
        }
    }

    /// A frame read for call `mine`: its own reply decoded with `decode` (taken then),
    /// or `None` once another caller's was handed over. A malformed header, or events
    /// past a subscription's credit, end the connection (`Failed`).
    fn take_reply<R, D>(
        &self,
        frame: Payload<'_>,
        mine: u64,
        decode: &mut Option<D>,
    ) -> Option<Ended<R>>
    where
        D: FnOnce(Payload<'_>) -> Result<R, CodecError>,
    {
        let Ok((id, status, head)) = wire::decode_response_header(frame.head) else {
            let corrupt = TransportError::Corrupt("malformed reply header");
            return Some(Ended::Failed(self.fail(corrupt)));
        };
        if id == mine {
            let payload = Payload {
                head,
                tail: frame.tail,
            };
            let decode = decode.take().expect("decoded once");
            return Some(Ended::Replied(self.decode_reply(status, payload, decode)));
        }
        self.hand_over(id, status, head, frame.tail)
            .err()
            .map(Ended::Failed)
    }

    /// The reply handed over to call `id` by a polling caller since `polled` was read
    /// (see [`Connection::polled`]), taken; `polled` moves on. One load while nobody
    /// polls.
    fn polled_since(&self, polled: &mut u64, id: u64) -> Option<Handed> {
        // SYNC: Acquire, paired with the Release increment in `hand_over`, made under
        // the lock after the reply was stored.
        let now = self.polled.load(Ordering::Acquire);
        if now == *polled {
            return None;
        }
        *polled = now;
        lock(&self.calls).pending.get_mut(&id)?.reply.take()
    }

    /// How long a reader hands others their replies before it passes the role on.
    fn yield_wait(&self) -> Duration {
        let usual = Duration::from_micros(self.reader_wait_us.load(Ordering::Relaxed));
        usual.saturating_mul(4).max(YIELD_WAIT)
    }

    /// Folds a reader's wait for its own reply into `reader_wait_us`.
    fn note_reader_wait(&self, waited: Duration) {
        let waited = waited.as_micros().min(u128::from(u32::MAX)) as u64;
        let recent = self.reader_wait_us.load(Ordering::Relaxed);
        self.reader_wait_us
            .store((recent * 7 + waited) / 8, Ordering::Relaxed);
    }

    /// Passes the reading role from call `id` to another waiting caller, if one that
    /// did not pass it on itself waits; whether it did.
    fn pass_role_on(&self, id: u64) -> bool {
        let mut calls = lock(&self.calls);
        let Some(next) = quicker_waiter(&calls, id) else {
            return false;
        };
        if let Some(me) = calls.pending.get_mut(&id) {
            me.yielded = true;
        }
        calls.reading = false;
        drop(calls);
        next.unpark();
        true
    }

    /// Gives a reply read for another call to its owner; drops one nobody waits for
    /// (its call timed out). Fails the connection, and says so, if the server sent a
    /// subscription more events than its credit.
    fn hand_over(
        &self,
        id: u64,
        status: u8,
        head: &[u8],
        tail: Option<Vec<u8>>,
    ) -> Result<(), RpcError> {
        let mut calls = lock(&self.calls);
        if let Some(p) = calls.pending.get_mut(&id) {
            let handed = (status, head.to_vec(), tail);
            match &mut p.events {
                Some(queue) if status == wire::STATUS_EVENT => {
                    if queue.len() >= crate::sink::EVENT_WINDOW as usize {
                        // More than the credit it was given: a server that ignores
                        // flow control cannot make this client buffer without bound.
                        drop(calls);
                        return Err(self.fail(TransportError::Corrupt(OVER_CREDIT)));
                    }
                    queue.push_back(handed);
                }
                _ => p.reply = Some(handed),
            }
            if self.spinning.load(Ordering::Relaxed) != 0 {
                // SYNC: Release, paired with the Acquire load of the spinning caller,
                // which then takes its reply under the lock.
                self.handed[(id % HANDED_SLOTS as u64) as usize].store(id, Ordering::Release);
            }
            if let Some(t) = &p.waiter {
                t.unpark();
            }
        } else if status != wire::STATUS_EVENT {
            // A dropped subscription's events come before its final reply.
            calls.owed.remove(&id);
        }
        Ok(())
    }

    /// Starts the drainer thread; `None` if no thread can be had (owed replies are
    /// then read by the next caller, as before).
    fn start_drainer(&self) -> Option<Thread> {
        let me = self.me.clone();
        thread::Builder::new()
            .name("ipc-rpc drainer".into())
            .spawn(move || drain(&me))
            .ok()
            .map(|handle| handle.thread().clone())
    }

    /// Reads, for up to [`DRAIN_SLICE`], replies owed to calls that gave up, handing
    /// other callers' replies over; the caller holds the reading role.
    fn drain_slice(&self) {
        let mut receiver = lock(&self.receiver);
        let until = Instant::now() + DRAIN_SLICE;
        while !lock(&self.calls).owed.is_empty() {
            let frame = match receiver.recv(Some(until)) {
                Ok(frame) => frame,
                Err(TransportError::TimedOut) => return,
                Err(e) => {
                    drop(receiver);
                    self.fail(e);
                    return;
                }
            };
            let Ok((id, status, head)) = wire::decode_response_header(frame.head) else {
                drop(receiver);
                self.fail(TransportError::Corrupt("malformed reply header"));
                return;
            };
            if self.hand_over(id, status, head, frame.tail).is_err() {
                return;
            }
        }
    }

    fn decode_reply<R>(
        &self,
        status: u8,
        payload: Payload<'_>,
        decode: impl FnOnce(Payload<'_>) -> Result<R, CodecError>,
    ) -> Result<R, RpcError> {
        decode_reply(&self.peer, self.frame_limit, status, payload, decode)
    }

    /// Marks the connection dead, wakes every waiting caller, and returns this
    /// caller's error.
    fn fail(&self, cause: TransportError) -> RpcError {
        let (reason, cause, error) = failure(&self.peer, cause);
        self.shut_by(reason, cause);
        error
    }
}

/// A reply's status and payload as the caller's result: decoded with `decode`, or the
/// error the server sent; `frame_limit` (this side's `max_frame`) tells whose limit a
/// reply the server held back went over.
pub(crate) fn decode_reply<R>(
    peer: &Arc<str>,
    frame_limit: usize,
    status: u8,
    payload: Payload<'_>,
    decode: impl FnOnce(Payload<'_>) -> Result<R, CodecError>,
) -> Result<R, RpcError> {
    match status {
        STATUS_OK => Ok(decode(payload)?),
        STATUS_ERR => Err(match payload.decode_all::<RemoteError>("remote error")? {
            RemoteError::Panic { method, message } => RpcError::RemotePanic { method, message },
            RemoteError::ReplyTooLarge { len, max, .. } => RpcError::FrameTooLarge {
                len,
                max,
                // The server held back a reply over our limit, or over its own.
                limit: if max == frame_limit as u64 {
                    FrameLimit::ClientReply
                } else {
                    FrameLimit::ServerReply
                },
            },
            RemoteError::Expired { .. } => RpcError::Timeout {
                peer: peer.clone(),
                after: Duration::ZERO,
            },
            other => RpcError::Remote(other),
        }),
        _ => Err(RpcError::Protocol {
            peer: peer.clone(),
            detail: "unknown reply status",
        }),
    }
}

/// What a transport failure that ends a connection means: the reason every call is
/// told, the error that is its source (shared by them all), and this caller's error.
/// Every call fails `Disconnected`, except over a frame too large (`FrameTooLarge`)
/// or that breaks the protocol (`Protocol`).
pub(crate) fn failure(
    peer: &Arc<str>,
    cause: TransportError,
) -> (Arc<str>, Option<Arc<TransportError>>, RpcError) {
    let reason: Arc<str> = match &cause {
        TransportError::Closed => {
            "the server closed the connection (it exited, crashed or shut down)".into()
        }
        TransportError::LinkDown { .. } => crate::error::chain(&cause).into(),
        other => format!("the connection failed: {other}").into(),
    };
    let disconnected = |source: Option<Arc<TransportError>>| RpcError::Disconnected {
        peer: peer.clone(),
        reason: reason.clone(),
        source,
    };
    match cause {
        TransportError::Closed => (reason.clone(), None, disconnected(None)),
        // A reply over our limit (a server of this version holds those back).
        TransportError::FrameTooLarge { len, max } => (
            reason,
            None,
            RpcError::FrameTooLarge {
                len,
                max,
                limit: FrameLimit::ClientReply,
            },
        ),
        TransportError::Corrupt(detail) => (
            reason,
            None,
            RpcError::Protocol {
                peer: peer.clone(),
                detail,
            },
        ),
        other => {
            let source = Some(Arc::new(other));
            let error = disconnected(source.clone());
            (reason, source, error)
        }
    }
}

/// The drainer: reads owed replies whenever no caller reads, until none is owed or the
/// connection is closed or dropped. Holds the connection only while reading.
fn drain(me: &Weak<Connection>) {
    loop {
        let Some(shared) = me.upgrade() else {
            return;
        };
        {
            let mut calls = lock(&shared.calls);
            if calls.closed.is_some() || calls.owed.is_empty() {
                calls.drainer = None;
                return;
            }
            if calls.reading {
                drop(calls);
                drop(shared);
                // A reader passing its role on wakes us (see `next_reader`).
                thread::park_timeout(DRAIN_SLICE);
                continue;
            }
            calls.reading = true;
        }
        shared.drain_slice();
        let mut calls = lock(&shared.calls);
        calls.reading = false;
        let next = calls
            .pending
            .values()
            .find(|p| p.reply.is_none() && p.waiter.is_some())
            .and_then(|p| p.waiter.clone());
        drop(calls);
        if let Some(t) = next {
            t.unpark();
        }
    }
}

/// How long a client whose hello could not be sent looks for a refusal frame.
const REFUSAL_WAIT: Duration = Duration::from_millis(200);

/// The error of a refusal frame already waiting on `receiver`, if there is one.
fn refused(receiver: &mut dyn FrameReceiver, peer: &Arc<str>) -> Option<RpcError> {
    let frame = receiver.recv(Some(Instant::now() + REFUSAL_WAIT)).ok()?;
    wire::decode_refusal(&frame.into_contiguous()).map(|reason| refusal_error(peer, &reason))
}

/// The error of a server's refusal saying `reason`.
fn refusal_error(peer: &Arc<str>, reason: &str) -> RpcError {
    RpcError::Refused {
        peer: peer.clone(),
        reason: reason.to_owned(),
    }
}

/// Maps a transport error outside a call (connect, split) to an `RpcError`.
fn transport_error(peer: &Arc<str>, e: TransportError) -> RpcError {
    match e {
        TransportError::Closed => RpcError::Disconnected {
            peer: peer.clone(),
            reason: "the connection is closed".into(),
            source: None,
        },
        e @ TransportError::LinkDown { .. } => RpcError::Disconnected {
            peer: peer.clone(),
            reason: crate::error::chain(&e).into(),
            source: Some(Arc::new(e)),
        },
        TransportError::TimedOut => RpcError::Timeout {
            peer: peer.clone(),
            after: Duration::ZERO,
        },
        TransportError::FrameTooLarge { len, max } => RpcError::FrameTooLarge {
            len,
            max,
            limit: FrameLimit::ClientReply,
        },
        TransportError::Corrupt(detail) => RpcError::Protocol {
            peer: peer.clone(),
            detail,
        },
        TransportError::Io { context, source } => RpcError::Io { context, source },
        other => RpcError::Connect {
            endpoint: peer.to_string(),
            source: other,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io;

    use super::*;
    use crate::dispatch::ServiceInfo;
    use crate::transport::Closer;

    static INFO: ServiceInfo = ServiceInfo {
        name: "Nothing",
        methods: &[],
    };

    /// A connection whose receiver hands out `frames`, then fails with an I/O error.
    struct Scripted(VecDeque<Vec<u8>>, Vec<u8>);

    impl FrameReceiver for Scripted {
        fn recv(&mut self, _: Option<Instant>) -> Result<Payload<'_>, TransportError> {
            match self.0.pop_front() {
                Some(frame) => {
                    self.1 = frame;
                    Ok(Payload::whole(&self.1))
                }
                None => Err(TransportError::Io {
                    context: "read from the test connection".into(),
                    source: io::ErrorKind::ConnectionAborted.into(),
                }),
            }
        }
        fn set_max_frame(&mut self, _: usize) {}
        fn frame_limit(&self) -> usize {
            1 << 20
        }
    }

    struct Sink;

    impl FrameSender for Sink {
        fn send_parts(&mut self, _: &[u8], _: &[u8]) -> Result<(), TransportError> {
            Ok(())
        }
    }

    impl Closer for Sink {
        fn close(&self) {}
    }

    struct Fake(Scripted);

    impl Transport for Fake {
        fn peer(&self) -> String {
            "fake:1".into()
        }
        fn split(self: Box<Self>) -> Result<Parts, TransportError> {
            Ok(Parts {
                sender: Box::new(Sink),
                receiver: Box::new(self.0),
                closer: Box::new(Sink),
            })
        }
    }

    /// Calls method 0 with no arguments, for a `()` reply.
    fn call_method_0(conn: &Connection) -> Result<(), RpcError> {
        let request = Request {
            method: 0,
            encode_args: |_: &mut FrameBuf<'_>| Ok(()),
            bulk: None,
        };
        conn.call(request, |p| p.decode_all::<()>("reply"), None)
    }

    /// A transport error that ends a connection is the source of the `Disconnected`
    /// error every call then gets, the failing one and the later ones.
    #[test]
    fn disconnected_keeps_the_transport_error_that_ended_the_connection() {
        let welcome = wire::test_welcome(INFO.name);
        let fake = Fake(Scripted(VecDeque::from([welcome]), Vec::new()));
        let conn = handshake(Box::new(fake), &INFO, Duration::from_secs(1)).unwrap();
        for _ in 0..2 {
            let err = call_method_0(&conn).unwrap_err();
            let RpcError::Disconnected { source, .. } = &err else {
                panic!("{err:?}");
            };
            let cause = source.as_deref().expect("a source");
            assert!(matches!(cause, TransportError::Io { .. }), "{cause:?}");
            let shown = format!("{err:?}");
            assert!(
                shown.contains("Caused by:") && shown.contains("connection aborted"),
                "{shown}"
            );
        }
    }

    /// A server that sends a subscription more events than its credit ends the
    /// connection (the client would otherwise buffer without bound): the other
    /// subscription, whose reader handed them over, gets a protocol error saying why,
    /// and later calls `Disconnected` with that reason.
    #[test]
    fn events_past_the_credit_end_the_connection() {
        let mut frames = VecDeque::new();
        let welcome = wire::test_welcome(INFO.name);
        frames.push_back(welcome);
        // Subscription 1 gets one event more than the window, before anything for 2.
        for n in 0..=crate::sink::EVENT_WINDOW {
            let mut frame = Vec::new();
            let mut out = FrameBuf::vec(&mut frame);
            wire::encode_response_header(1, wire::STATUS_EVENT, &mut out).unwrap();
            crate::codec::encode_frame(&n, &mut out, "event").unwrap();
            frames.push_back(frame);
        }
        let fake = Fake(Scripted(frames, Vec::new()));
        let conn = handshake(Box::new(fake), &INFO, Duration::from_secs(1)).unwrap();
        let no_args = |_: &mut FrameBuf<'_>| Ok(());
        let first = Subscription::<u32>::start(conn.clone(), 0, no_args, None, None).unwrap();
        let mut second = Subscription::<u32>::start(conn.clone(), 0, no_args, None, None).unwrap();
        let err = second.next().expect("an error, not the end").unwrap_err();
        assert!(matches!(err, RpcError::Protocol { .. }), "{err:?}");
        assert!(
            err.to_string().contains("more events than its credit"),
            "{err}"
        );
        // The connection is closed for every later call, saying why.
        let later = Subscription::<u32>::start(conn.clone(), 0, no_args, None, None).unwrap_err();
        assert!(
            later.to_string().contains("more events than its credit"),
            "{later}"
        );
        drop(first);
    }

    /// A reply that says the server did not run the call because its deadline had
    /// passed is a `Timeout` for its caller, but it is the reply: nothing more is owed,
    /// so no drainer is started to wait for one.
    #[test]
    fn an_expired_reply_is_a_timeout_that_owes_nothing() {
        let mut frames = VecDeque::from([wire::test_welcome(INFO.name)]);
        let mut frame = Vec::new();
        let mut out = FrameBuf::vec(&mut frame);
        wire::encode_response_header(1, STATUS_ERR, &mut out).unwrap();
        let expired = RemoteError::Expired { method: "m".into() };
        crate::codec::encode_frame(&expired, &mut out, "error").unwrap();
        frames.push_back(frame);
        let fake = Fake(Scripted(frames, Vec::new()));
        let conn = handshake(Box::new(fake), &INFO, Duration::from_secs(1)).unwrap();
        let err = call_method_0(&conn).unwrap_err();
        assert!(matches!(err, RpcError::Timeout { .. }), "{err:?}");
        let calls = lock(&conn.calls);
        assert!(calls.owed.is_empty(), "{:?}", calls.owed);
        assert!(calls.drainer.is_none());
    }
}
