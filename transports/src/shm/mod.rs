//! Shared-memory rings: `shm:/name`, many clients, one segment per client; the fast
//! path makes no system call.
//!
//! ```text
//!   client                                 server (shm:/calc)
//!   ──────                                 ──────
//!   connect @ipc-rpc.calc.sock         ──▶ accept, check the client's uid (rendezvous:
//!   check the server's uid                                  an abstract UNIX socket,
//!   memfd_create "ipc-rpc.calc"                             nothing in the file system)
//!     (CLOEXEC, ALLOW_SEALING); ftruncate;
//!     seal SHRINK|GROW|SEAL; mmap;
//!     header, magic stored last
//!   "IPCRSHM2\n" + the fd (SCM_RIGHTS) ──▶ check: one fd, tmpfs, seals,
//!                                           size = a valid layout; mmap;
//!                                           magic/version/capacity; close the fd
//!                                      ◀── "OK\n"  (or "ERR <why>\n": that client only)
//!   ═════ requests and replies through the two rings of the segment (layout.rs) ═════
//!   the socket stays open: the liveness link, and the doorbell of a parked receiver
//! ```
//!
//! Choices, and why:
//! - **Rendezvous over a UNIX socket** rather than a control segment: the kernel
//!   queues concurrent connects, checks permissions (the socket is 0600) and, best of
//!   all, closes the socket when either process dies, even by `kill -9`. That is the
//!   liveness signal: immune to pid reuse, checked whenever a futex sleep slice
//!   expires (50 ms) or a wake-up brings nothing, so a dead peer becomes `Closed`
//!   within about that.
//! - **The segment is an anonymous memory file passed by descriptor**, so no
//!   connection puts anything in /dev/shm and no crash, at any point, leaks a
//!   segment: it lives while a descriptor or a mapping of it does. (Servers still
//!   sweep `ipc-rpc.<name>.*` objects in /dev/shm at bind: leftovers of the version
//!   1 protocol, which named segments there.)
//! - **The peer is untrusted**: header, indices and lengths are checked before use
//!   (see `conn.rs` and `index.rs`); corruption is `Corrupt`, never undefined behaviour,
//!   and ends that connection only.
//! - **No SIGBUS from a peer.** An access to a shared mapping faults with SIGBUS, which
//!   kills the whole process, when the page has no backing: the file was truncated
//!   under the mapping, or the page cannot be allocated. The server maps only a file
//!   sealed with `F_SEAL_SHRINK | F_SEAL_GROW` (and `F_SEAL_SEAL`, so the set is
//!   final), checked with `F_GET_SEALS` before mapping, and whose `fstat` size matches
//!   the layout: `ftruncate` by anyone then fails with `EPERM`. Hugetlbfs memory files
//!   (whose page pool can run dry) are refused (`fstatfs` must say tmpfs). What is
//!   left is the kernel failing to allocate a tmpfs page at all (e.g. strict
//!   overcommit, `vm.overcommit_memory=2`, exhausted, after the peer punched a hole
//!   with `fallocate`): a peer can only use that on a system already out of
//!   committable memory, where anonymous memory meets the OOM killer instead. We
//!   install no SIGBUS handler: resuming after one inside Rust code is not sound.
//! - **A peer cannot hold a server thread busy.** Bumping the futex word we sleep on
//!   (with or without `FUTEX_WAKE`) wakes us, but a wake-up that brings nothing backs
//!   off (see `wait.rs`): our CPU stays a small fraction of what the peer burns.
//! - **A client cannot hold a server thread in its set-up.** The server parks a
//!   connection until its request starts to arrive (`setup_wait`); a request then
//!   dribbled byte by byte fails after 100 ms.
//! - **An idle connection costs no thread.** A server's receiver parks in the server's
//!   poller (`prepare_wait`): it announces so in its sleeping flag, and the client then
//!   rings the rendezvous socket (one byte, the doorbell) when it publishes, instead of
//!   the futex. The socket is also readable when the client dies, so the same wait
//!   covers liveness. A client that floods the doorbell only wakes the poller; each
//!   wake-up drains it.
//! - Both sides run as the same user (0600), so a hostile peer could still ptrace us:
//!   the uid is the trust boundary.
//!
//! Options: `?ring=<bytes>` (power of two, 4 KiB to 1 GiB, default 2 MiB: a 1 MiB
//! frame fits whole and is decoded in place) and `?spin_us=<µs>` (how long a waiter
//! spins while the peer runs on another CPU; default 20 µs; 0 never spins).

pub(crate) mod conn;
pub(crate) mod index;
pub(crate) mod layout;
#[cfg(feature = "test-util")]
pub(crate) mod replay;
mod ring;
pub(crate) mod segment;
mod wait;

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rpc_core::{Closer, Listener, Parts, Transport, TransportError, WaitFds};

use crate::endpoint::{Endpoint, EndpointKind, wrong_kind};
use crate::names::reclaim;
use crate::names::shm::Names;
use crate::socket::connect_unix;
use crate::sys;
use crate::uds::{UdsListener, allows, peer_credentials};
use conn::{Conn, ShmCloser, ShmReceiver, ShmSender};
use nix::sys::socket::UnixAddr;
use segment::Segment;

pub use crate::endpoint::ShmOptions;

/// A connect request: this line, with the segment's descriptor attached. Version 2:
/// the segment is a sealed memory file passed by descriptor (version 1 sent a
/// /dev/shm name).
const REQUEST: &str = "IPCRSHM2";
/// Longest request line a server reads.
const MAX_REQUEST: usize = 256;
/// How long either side waits for the other during connection setup.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the rest of a request may take once its first bytes came: a client sends
/// it in one message, so only a hostile one dribbles it (and would hold the server's
/// set-up thread for [`SETUP_TIMEOUT`] per byte).
const REQUEST_REST_TIMEOUT: Duration = Duration::from_millis(100);
/// Default spin budget.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// What a connection of an `shm:` endpoint runs with: its options, defaults filled in.
#[derive(Debug, Clone, Copy)]
struct Settings {
    /// Bytes per ring.
    ring: usize,
    /// Largest frame.
    max_frame: usize,
    /// Spin budget while the peer runs elsewhere.
    spin: Duration,
}

impl Settings {
    /// The settings of `shm:` options `opts` with frames of up to `max_frame`.
    fn new(opts: &ShmOptions, max_frame: usize) -> Self {
        Settings {
            ring: opts.ring().unwrap_or(layout::DEFAULT_CAPACITY),
            max_frame: max_frame.min(u32::MAX as usize - 1),
            spin: opts.spin().unwrap_or(DEFAULT_SPIN),
        }
    }
}

/// A connected shared-memory transport (either side).
pub struct ShmTransport {
    conn: std::sync::Arc<Conn>,
}

impl ShmTransport {
    /// Connects to the server of `shm:<name>`, with rings of `?ring=` bytes (default
    /// 2 MiB) and a spin budget of `?spin_us=` (default 20 µs).
    ///
    /// # Errors
    ///
    /// `Io` if no server listens, the segment cannot be created (out of memory or
    /// descriptors), or the server refuses it (its reason is in the message);
    /// `Unsupported` for a name too long or an endpoint of another kind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rpc_core::Transport as _;
    /// let t = transports::ShmTransport::connect(&"shm:/calc?ring=65536".parse()?)?;
    /// println!("connected to {}", t.peer());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let EndpointKind::Shm { name, opts } = endpoint.kind() else {
            return Err(wrong_kind(endpoint, "ShmTransport", "shm:"));
        };
        let options = Settings::new(opts, endpoint.max_frame());
        let peer = format!("shm:{name}");
        let names = Names::new(name, &peer)?;
        let io_err = |what: &str| {
            let context = format!("{peer}: {what}");
            move |source: io::Error| TransportError::Io { context, source }
        };
        let timeout = endpoint.connect_timeout();
        let addr = UnixAddr::new_abstract(names.rendezvous().as_bytes())
            .map_err(|e| io_err("name the rendezvous socket")(e.into()))?;
        let socket = connect_unix(&addr, timeout).map_err(|e| {
            let hint = match e.kind() {
                // An abstract name nobody listens on: refused, and nothing can be stale.
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    return TransportError::NoServer {
                        context: format!("{peer}: no server: nothing listens on its rendezvous socket; start the server or check the name"),
                        source: e,
                    };
                }
                io::ErrorKind::PermissionDenied => "permission denied: the endpoint belongs to another user",
                io::ErrorKind::TimedOut => "the server takes no connection (stopped or overloaded); check that it runs, or raise `connect_timeout` in the endpoint",
                _ => "cannot reach the server's rendezvous socket",
            };
            io_err(hint)(e)
        })?;
        // Anyone can bind an abstract name first: the memory goes only to a server of
        // this user (or root, or a user the endpoint allows).
        let server_uid = peer_credentials(&socket).uid;
        if !server_uid.is_some_and(|uid| uid == 0 || allows(endpoint, uid)) {
            return Err(TransportError::Io {
                context: format!(
                    "{peer}: the process listening on the rendezvous runs as uid {}, neither this \
                     user nor one the endpoint allows (`?allow_uid=`): refusing to hand it this \
                     connection's memory",
                    server_uid.map_or_else(|| "unknown".to_owned(), |u| u.to_string())
                ),
                source: io::ErrorKind::PermissionDenied.into(),
            });
        }
        let segment = Segment::create(names.stem(), options.ring, options.max_frame as u32)?;
        let answer = (|| {
            socket.set_read_timeout(Some(timeout))?;
            let fd = segment.fd().ok_or(io::ErrorKind::InvalidInput)?;
            let sent = sys::send_with_fd(&socket, format!("{REQUEST}\n").as_bytes(), fd);
            // A server that refuses at once (out of descriptors) may have answered and
            // closed before our request went: its answer says more than our EPIPE.
            let mut line = String::new();
            let answered = BufReader::new(&socket).take_line(&mut line);
            match (sent, answered) {
                (_, Ok(())) if line.starts_with("ERR") => {}
                (Err(e), _) | (Ok(()), Err(e)) => return Err(e),
                (Ok(()), Ok(())) => {}
            }
            socket.set_read_timeout(None)?;
            Ok(line)
        })();
        let answer = answer.map_err(|e| {
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                io_err(&format!(
                    "the server did not answer the segment set-up within the connect timeout of \
                     {timeout:?}: it is stopped or overloaded; check that it runs, or raise \
                     `connect_timeout` in the endpoint"
                ))(io::ErrorKind::TimedOut.into())
            } else {
                io_err("set up the shared segment with the server")(e)
            }
        })?;
        if answer.trim_end() != "OK" {
            return Err(TransportError::Io {
                context: format!(
                    "{peer}: the server refused the segment: {}",
                    answer.trim_end()
                ),
                source: io::ErrorKind::ConnectionRefused.into(),
            });
        }
        Ok(ShmTransport {
            conn: Conn::new(segment, true, socket, options.max_frame, options.spin, peer),
        })
    }

    /// The segment's descriptor on the creating (client) side; `None` on the server.
    /// For tests that play a hostile client (e.g. try to `ftruncate` it), through
    /// `test_util::shm::segment_fd`.
    #[cfg(feature = "test-util")]
    pub(crate) fn segment_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.conn.segment_fd()
    }

    /// This side's end of the rendezvous socket, through `test_util::shm::socket_fd`
    /// (for tests that ring the doorbell as a hostile peer).
    #[cfg(feature = "test-util")]
    pub(crate) fn socket_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.conn.socket_fd()
    }
}

/// Reads one line of at most 256 bytes.
trait TakeLine {
    fn take_line(&mut self, line: &mut String) -> io::Result<()>;
}

impl<R: io::Read> TakeLine for BufReader<R> {
    fn take_line(&mut self, line: &mut String) -> io::Result<()> {
        let n = io::Read::take(&mut *self, 256).read_line(line)?;
        if n == 0 || !line.ends_with('\n') {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

/// Reads a client's request: one line of at most [`MAX_REQUEST`] bytes and the
/// descriptor sent with it, if any; more than one fails the request (they close when
/// dropped). Its first bytes are waited for as long as the socket's read time-out
/// says, the rest at most [`REQUEST_REST_TIMEOUT`].
fn read_request(socket: &UnixStream) -> io::Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut line = Vec::new();
    let mut fds = Vec::new();
    let mut buf = [0u8; MAX_REQUEST];
    while !line.contains(&b'\n') {
        let room = MAX_REQUEST - line.len();
        if room == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request line too long",
            ));
        }
        let (n, got) = sys::recv_with_fds(socket, &mut buf[..room])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line.is_empty() {
            socket.set_read_timeout(Some(REQUEST_REST_TIMEOUT))?;
        }
        line.extend_from_slice(&buf[..n]);
        fds.extend(got);
        if fds.len() > 1 {
            // Refused at once: a client could otherwise fill our descriptor table.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more than one descriptor sent",
            ));
        }
    }
    Ok((line, fds.pop()))
}

impl Transport for ShmTransport {
    fn peer(&self) -> String {
        self.conn.peer().to_owned()
    }

    fn wait_spin(&self) -> Duration {
        self.conn.spin()
    }

    fn split(self: Box<Self>) -> Result<Parts, TransportError> {
        Ok(Parts {
            sender: Box::new(ShmSender::new(self.conn.clone())),
            receiver: Box::new(ShmReceiver::new(self.conn.clone())),
            closer: Box::new(ShmCloser(self.conn)),
        })
    }
}

/// A shared-memory server's rendezvous.
pub struct ShmListener {
    rendezvous: UdsListener,
    endpoint: Endpoint,
    options: Settings,
}

impl ShmListener {
    /// Binds `shm:<name>`: its rendezvous socket, owner lock, and a sweep of segments
    /// a dead server's clients left.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if a live server owns the name; `Unsupported` for a name too long
    /// or an endpoint of another kind; `Io` otherwise.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rpc_core::Listener as _;
    /// let listener = transports::ShmListener::bind(&"shm:/calc".parse()?)?;
    /// println!("listening on {}", listener.local_endpoint());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let EndpointKind::Shm { name, opts } = endpoint.kind() else {
            return Err(wrong_kind(endpoint, "ShmListener", "shm:"));
        };
        let names = Names::new(name, &endpoint.to_string())?;
        let rendezvous = UdsListener::bind_abstract(&names.rendezvous(), endpoint.clone())?;
        reclaim::shm_segments(&names);
        Ok(ShmListener {
            rendezvous,
            options: Settings::new(opts, endpoint.max_frame()),
            endpoint: endpoint.clone(),
        })
    }
}

/// A client that connected to the rendezvous and has yet to offer its segment.
struct Offered {
    socket: UnixStream,
    credentials: rpc_core::PeerCredentials,
    endpoint: String,
    options: Settings,
}

impl Offered {
    /// Takes the segment the client offers; `Err` refuses that client only.
    fn set_up(self) -> Result<ShmTransport, TransportError> {
        let Offered {
            mut socket,
            credentials,
            endpoint: name,
            options,
        } = self;
        let io_err = |e: io::Error| TransportError::Io {
            context: format!("{name}: set up a client's segment"),
            source: e,
        };
        socket
            .set_read_timeout(Some(SETUP_TIMEOUT))
            .map_err(io_err)?;
        let expected = format!("{REQUEST}\n");
        let fd = match read_request(&socket) {
            Ok((line, Some(fd))) if line == expected.as_bytes() => fd,
            // Gone, silent past the time-out, or the socket failed: nobody to answer.
            Err(e) if e.kind() != io::ErrorKind::InvalidData => return Err(io_err(e)),
            _ => {
                let _ = socket.write_all(
                    b"ERR not an ipc-rpc shm request of this version (IPCRSHM2 and one descriptor)\n",
                );
                return Err(TransportError::Corrupt("bad shm connect request"));
            }
        };
        let segment = match Segment::open(fd) {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(socket, "ERR {e}");
                return Err(e);
            }
        };
        socket.write_all(b"OK\n").map_err(io_err)?;
        socket.set_read_timeout(None).map_err(io_err)?;
        // The kernel's word for the pid (SO_PEERCRED); the header's only as a fallback.
        let pid = credentials
            .pid
            .unwrap_or_else(|| segment.control().header.client_pid.load(Ordering::Relaxed));
        Ok(ShmTransport {
            conn: Conn::new(
                segment,
                false,
                socket,
                options.max_frame,
                options.spin,
                format!("{name} (client pid {pid})"),
            ),
        })
    }
}

impl Transport for Offered {
    fn peer(&self) -> String {
        format!("{} (client)", self.endpoint)
    }

    fn credentials(&self) -> rpc_core::PeerCredentials {
        self.credentials.clone()
    }

    fn split(self: Box<Self>) -> Result<Parts, TransportError> {
        Box::new(self.set_up()?).split()
    }

    /// The rendezvous socket: readable once the client's request arrived (or the
    /// client went), so that `split` reads it without waiting.
    fn setup_wait(&self) -> Option<WaitFds<'_>> {
        Some(WaitFds::one(self.socket.as_fd()))
    }
}

impl Listener for ShmListener {
    fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        let (socket, credentials) = self.rendezvous.accept_stream()?;
        // The set-up (the client's request, mapping its segment) happens in `split`,
        // which the server runs on the connection's own thread (or once `setup_wait`'s
        // socket is readable): a slow or silent client never holds up the accept loop.
        Ok(Box::new(Offered {
            socket,
            credentials,
            endpoint: self.endpoint.to_string(),
            options: self.options,
        }))
    }

    fn closer(&self) -> Result<Box<dyn Closer>, TransportError> {
        self.rendezvous.closer()
    }

    fn local_endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }
}
