//! POSIX message queues: `mq:/name`.
//!
//! # Connect protocol
//!
//! A server owns a well-known rendezvous queue named after the endpoint; every client
//! gets a queue pair of its own, which it creates and the server opens:
//!
//! ```text
//!  client (pid C)                                          server (pid S)
//!                                          bind: lock /dev/shm/ipc-rpc-mq.calc.lock,
//!                                                write "S <start>" into it, remove
//!                                                stale queues, create /calc (0600)
//!  1. open /calc for sending         (ENOENT: "no server")
//!  2. read the lock file, pidfd_open(S), check S's start time  (dead: "stale queue")
//!  3. create /calc.C.<start>.<n>.c2s and .s2c (O_CREAT|O_EXCL, 0600)
//!  4. CONNECT{C, start, n} ───────────────── /calc ──────▶ 5. check C's start time,
//!                                                            pidfd_open(C); open both
//!                                                            queues; ACCEPT on .s2c;
//!  6. ◀──────────────── ACCEPT ───────────── .s2c ──────     unlink both names
//!  7. unlink both names (again: whoever gets there first)
//!
//!  frames:  client ── .c2s ──▶ server,   server ── .s2c ──▶ client   (chunked, see below)
//!  close:   each end sends FIN when its last part drops
//! ```
//!
//! After step 6 the queues have no names, only descriptors: a process that dies, even
//! by `SIGKILL`, leaves nothing in the namespace, and the kernel frees a queue when
//! the last descriptor closes. Names exist only while a client connects; if a client
//! dies then, the server removes its names when it takes the request, and a server
//! that binds the endpoint later removes those of dead clients (when `/dev/mqueue` is
//! mounted, see [`MQUEUE_DIR`]).
//!
//! A killed server leaves its rendezvous queue and lock file. The next `bind` removes
//! them; so does a client that sees the server dead (during a call or a connect),
//! after taking the owner lock to make sure no new server has the name. Server and client must run as the same user (every
//! queue is 0600) in the same IPC and pid namespaces, and see the same `/dev/shm`.
//!
//! # Frames
//!
//! A frame up to `msgsize - 1` bytes (8191 by default) is one message: one `mq_send`,
//! one `mq_timedreceive`. Larger frames are split into chunks and joined on receipt.
//! Every message starts with a kind byte:
//!
//! ```text
//! WHOLE 0x01 | frame             FIRST 0x02 | total: u32 LE | first bytes
//! MORE  0x03 | next bytes        FIN   0x04                 (empty: a wake-up)
//! ```
//!
//! A frame over `max_frame` is refused before anything is allocated, and its other
//! chunks are skipped; the receive buffer grows with the chunks that arrive, never
//! with the claimed total. A timed-out `recv` keeps the chunks it has, and the next
//! `recv` continues the frame.
//!
//! A queue holds little, so a sender blocked on a full queue, finding no `recv`
//! running on its side, moves what the peer sends into a private stash (up to
//! `2 × max_frame`) that the next `recv` reads first: two sides blocked sending to
//! each other cannot deadlock.
//!
//! # A dead or departed peer
//!
//! Queues have no end-of-file. Each side knows the other's process by pid and start
//! time and watches it through a pidfd (so a reused pid is never mistaken for the
//! peer). Blocking waits are cut into 200 ms slices; when a slice passes idle, the
//! pidfd is polled once: a dead peer turns into `Closed` within about 200 ms, and the
//! fast path pays nothing for it. A peer that closes while alive sends `FIN`. The
//! [`Closer`](rpc_core::Closer) sets a flag and posts an empty message to its own
//! incoming queue, so a blocked `recv` returns at once.
//!
//! # Limits
//!
//! Linux charges a queue `maxmsg × (msgsize + 96)` bytes against its creator's
//! `RLIMIT_MSGQUEUE` (819200 by default, per user). Each connection queue holds one
//! message of 4096 bytes, so a client costs 2 × 4192 = 8384 bytes and 97 clients fit
//! (the rendezvous queue, 10 × 64-byte requests, costs 1600); when the limit is nearly
//! used up, later clients fall back to smaller messages. Sizes are lowered to
//! `/proc/sys/fs/mqueue/msg_max` and `msgsize_max` when those are smaller. When the
//! OS refuses a queue, the error names the limit (`RLIMIT_MSGQUEUE`/`ulimit -q`,
//! `/proc/sys/fs/mqueue/queues_max`, `msg_max`, `msgsize_max`), its value and how to
//! raise it.
//!
//! `mq_timedreceive` measures its timeout on `CLOCK_REALTIME`: a wall-clock step
//! during a wait lengthens or shortens that one slice.
//!
//! Linux only (pidfd needs 5.3 or later).

pub(crate) mod chunk;
mod conn;
mod handshake;
mod limits;
mod listener;
pub(crate) mod liveness;
pub(crate) mod queue;

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use nix::errno::Errno;
use rpc_core::TransportError;

pub use crate::names::mq::MAX_NAME;
pub use crate::names::reclaim::MQUEUE_DIR;
pub use conn::MqTransport;
pub use listener::MqListener;

use crate::endpoint::{Endpoint, EndpointKind, wrong_kind};
use crate::names::mq::{Direction, Names};
use crate::names::reclaim;
use conn::{Ends, SLICE};
use handshake::{Answer, Connect};
use liveness::{PeerProcess, ProcessId, WatchError};
use queue::{Access, Queue, UnlinkGuard};

/// Connections this process has opened: the `<n>` in queue names.
static CONNECTIONS: AtomicU32 = AtomicU32::new(0);

impl MqTransport {
    /// Connects to the server of `mq:<name>` (its rendezvous queue), with this
    /// client's queues holding `?depth=` messages of `?msgsize=` bytes each (defaults:
    /// 1 of 4096), lowered to what `/proc/sys/fs/mqueue` allows. Deeper queues and
    /// larger messages make large frames faster and take more of the per-user queue
    /// memory limit (`depth × (msgsize + 96)` bytes per queue, two queues per client).
    ///
    /// # Errors
    ///
    /// `Io` whose message says what is wrong: no server (no queue of that name), a
    /// stale queue of a dead server, a queue limit reached (which one, and how to
    /// raise it), the server exiting or refusing during the connect, or no answer
    /// within the endpoint's `connect_timeout` (default 5 s); `Unsupported` for an
    /// endpoint of another kind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rpc_core::Transport as _;
    /// let t = transports::MqTransport::connect(&"mq:/calc?depth=10&msgsize=8192".parse()?)?;
    /// println!("connected to {}", t.peer());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let EndpointKind::Mq { name, opts } = endpoint.kind() else {
            return Err(wrong_kind(endpoint, "MqTransport", "mq:"));
        };
        let max_frame = endpoint.max_frame();
        let peer = format!("mq:{name}");
        let names = Names::new(name).map_err(|m| invalid_name(&peer, m))?;
        let fail = |what: String, kind: io::ErrorKind| TransportError::Io {
            context: format!("{peer}: {what}"),
            source: kind.into(),
        };
        let rendezvous_name = names.rendezvous();
        let rendezvous = Queue::open(&rendezvous_name, Access::Send).map_err(|e| match e {
            Errno::ENOENT => TransportError::NoServer {
                context: format!(
                    "{peer}: no server: queue {rendezvous_name} does not exist; start the server or check the name"
                ),
                source: e.into(),
            },
            e => limits::open_error(e, &format!("{peer}: open queue {rendezvous_name}"), None),
        })?;
        let server = server_process(&names, &peer)?;
        let me = ProcessId::current().map_err(|e| TransportError::Io {
            context: format!("{peer}: read /proc/self/stat"),
            source: e,
        })?;
        let n = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        let c2s = names.connection(me, n, Direction::ClientToServer);
        let s2c = names.connection(me, n, Direction::ServerToClient);
        // Removes the names however this ends; the queues live on in the descriptors.
        let _unlink = UnlinkGuard(vec![c2s.clone(), s2c.clone()]);
        let size = limits::connection_asked(opts.depth(), opts.msgsize());
        let (outgoing, incoming) = create_pair(&c2s, &s2c, &peer, size)?;
        let wake = Queue::open(&s2c, Access::Send)
            .map_err(|e| limits::open_error(e, &format!("{peer}: open queue {s2c}"), None))?;
        let (Some(in_msgsize), Some(out_msgsize)) =
            (checked_msgsize(&incoming), checked_msgsize(&outgoing))
        else {
            return Err(fail(
                "the OS reports unusable queue sizes".into(),
                io::ErrorKind::InvalidData,
            ));
        };

        let timeout = endpoint.connect_timeout();
        let deadline = Instant::now() + timeout;
        let request = Connect { client: me, n }.encode();
        loop {
            match rendezvous.try_send(&request) {
                Ok(()) => break,
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => {
                    return Err(TransportError::Io {
                        context: format!("{peer}: send the connect request"),
                        source: e.into(),
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(fail(
                    format!(
                        "the server's queue stayed full for the connect timeout of {timeout:?}: the server is stopped or overloaded; check that it runs, or raise `connect_timeout` in the endpoint"
                    ),
                    io::ErrorKind::TimedOut,
                ));
            }
            if !matches!(rendezvous.wait_writable(SLICE), Ok(true)) && server.has_exited() {
                return Err(server_exited(&names, &peer));
            }
        }

        let mut buf = vec![0; in_msgsize];
        loop {
            let until = deadline.min(Instant::now() + SLICE);
            match incoming.receive_until(&mut buf, until) {
                Ok(len) => match Answer::decode(&buf[..len]) {
                    Some(Answer::Accept) => break,
                    Some(Answer::Refuse) => {
                        return Err(fail(
                            "the server is shutting down and refused the connection".into(),
                            io::ErrorKind::ConnectionRefused,
                        ));
                    }
                    Some(Answer::OutOfDescriptors) => {
                        return Err(fail(
                            "the server refused the connection: server out of file descriptors; \
                             raise the server's `ulimit -n` (RLIMIT_NOFILE) or close idle connections"
                                .into(),
                            io::ErrorKind::ConnectionRefused,
                        ));
                    }
                    None => {
                        return Err(fail(
                            "the server's answer is not an ipc-rpc mq answer; is it the same version?".into(),
                            io::ErrorKind::InvalidData,
                        ));
                    }
                },
                Err(Errno::ETIMEDOUT | Errno::EINTR) => {
                    if server.has_exited() {
                        return Err(server_exited(&names, &peer));
                    }
                    if Instant::now() >= deadline {
                        return Err(fail(
                            format!(
                                "the server did not answer within the connect timeout of {timeout:?}: it is stopped, overloaded or out of file descriptors; check that it runs, or raise `connect_timeout` in the endpoint"
                            ),
                            io::ErrorKind::TimedOut,
                        ));
                    }
                }
                Err(e) => {
                    return Err(TransportError::Io {
                        context: format!("{peer}: wait for the server's answer"),
                        source: e.into(),
                    });
                }
            }
        }
        Ok(MqTransport {
            ends: Ends {
                incoming,
                wake,
                outgoing,
                in_msgsize,
                out_msgsize,
                peer: server,
                server_names: Some(names),
            },
            peer,
            max_frame,
        })
    }
}

/// The server process, from the pid and start time in its lock file.
fn server_process(names: &Names, peer: &str) -> Result<PeerProcess, TransportError> {
    let lock = names.lock_path();
    let stale = || TransportError::Stale {
        context: format!(
            "{peer}: no server: queue {} is a leftover of a server that is gone (its lock \
             file {} is missing or names a dead process); start the server again, it \
             removes the stale queue",
            names.rendezvous(),
            lock.display()
        ),
        source: io::ErrorKind::ConnectionRefused.into(),
    };
    let stale = || {
        reclaim::mq_if_abandoned(names);
        stale()
    };
    let owner = match std::fs::read_to_string(&lock) {
        Ok(text) => ProcessId::from_text(&text).ok_or_else(stale)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(stale()),
        Err(e) => {
            return Err(TransportError::Io {
                context: format!("{peer}: read the server's lock file {}", lock.display()),
                source: e,
            });
        }
    };
    PeerProcess::open(owner).map_err(|e| match e {
        WatchError::Gone => stale(),
        WatchError::Io(source) => TransportError::Io {
            context: format!(
                "{peer}: cannot watch server process {} (pidfd_open)",
                owner.pid
            ),
            source,
        },
    })
}

fn server_exited(names: &Names, peer: &str) -> TransportError {
    reclaim::mq_if_abandoned(names);
    TransportError::Io {
        context: format!("{peer}: the server exited while we were connecting"),
        source: io::ErrorKind::ConnectionAborted.into(),
    }
}

fn invalid_name(endpoint: &str, message: String) -> TransportError {
    TransportError::Io {
        context: format!("{endpoint}: {message}"),
        source: io::ErrorKind::InvalidInput.into(),
    }
}

/// A queue's `mq_msgsize`, if the chunking can work with it and a peer did not make
/// it absurdly large (the receive buffer is that big).
/// Creates a connection's two queues, falling back to smaller messages while the
/// queue-memory limit refuses the larger ones.
fn create_pair(
    c2s: &str,
    s2c: &str,
    peer: &str,
    first: limits::QueueSize,
) -> Result<(Queue, Queue), TransportError> {
    let mut refused = None;
    for size in limits::connection_sizes(first) {
        let outgoing = match Queue::create(c2s, size, Access::Send) {
            Ok(q) => q,
            Err(nix::errno::Errno::EMFILE) => {
                refused = Some((c2s, size));
                continue;
            }
            Err(e) => {
                return Err(limits::open_error(
                    e,
                    &format!("{peer}: create queue {c2s}"),
                    Some(size),
                ));
            }
        };
        match Queue::create(s2c, size, Access::Receive) {
            Ok(incoming) => return Ok((outgoing, incoming)),
            Err(e) => {
                drop(outgoing);
                let _ = queue::unlink(c2s);
                if e != nix::errno::Errno::EMFILE {
                    return Err(limits::open_error(
                        e,
                        &format!("{peer}: create queue {s2c}"),
                        Some(size),
                    ));
                }
                refused = Some((s2c, size));
            }
        }
    }
    let (name, size) = refused.unwrap_or((c2s, first));
    Err(limits::open_error(
        nix::errno::Errno::EMFILE,
        &format!("{peer}: create queue {name}"),
        Some(size),
    ))
}

fn checked_msgsize(queue: &Queue) -> Option<usize> {
    let msgsize = queue.size().ok()?.msgsize;
    let ok = (chunk::MIN_MSGSIZE as i64..=limits::MAX_PEER_MSGSIZE).contains(&msgsize);
    ok.then_some(msgsize as usize)
}
