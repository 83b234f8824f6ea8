//! Two anonymous pipes between a parent and the child it spawns: endpoint `pipe`.
//!
//! ```text
//!  parent                                     child (spawned, then exec'd)
//!  ┌───────────────┐  pipe 1: requests  ┌──────────────────────────┐
//!  │ write end ────┼───────────────────▶│ fd 3 (read)              │
//!  │ read end  ◀───┼────────────────────┼ fd 4 (write)             │
//!  └───────────────┘  pipe 2: replies   └──────────────────────────┘
//!             IPC_RPC_PIPE=<parent pid>:3:4:<max_frame> in the child's environment
//! ```
//!
//! - The parent calls [`PipeTransport::spawn`] with a `std::process::Command`: the
//!   child's ends become its descriptors 3 and 4 (dup2 between fork and exec; never a
//!   bare `fork()`), and the environment variable `IPC_RPC_PIPE` says so. Every other
//!   descriptor of ours is close-on-exec, so no other process holds these pipes.
//! - The child calls [`PipeTransport::inherited`], which takes descriptors 3 and 4
//!   once, only if `IPC_RPC_PIPE` names its actual parent (so a grandchild that inherits
//!   the variable is not fooled), and marks them close-on-exec.
//! - When either process exits or is killed, the other reads end-of-file:
//!   `Closed`, that is `RpcError::Disconnected`. A child serving its parent therefore
//!   stops when the parent goes away.
//! - Writes larger than `PIPE_BUF` are not atomic; frames never interleave because
//!   each side sends whole frames under one lock (the client's send lock, the server's
//!   connection thread).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::OFlag;
use nix::unistd::pipe2;
use rpc_core::framing::DEFAULT_MAX_FRAME;
use rpc_core::{Closer, Listener, Parts, Transport, TransportError};

use crate::endpoint::{Endpoint, EndpointKind, wrong_kind};
use crate::read_waker::ReadWaker;
use crate::stream::{StreamReceiver, StreamSender, WriteMode};
use crate::sys;

/// Environment variable telling a child where its pipe ends are and the frame limit:
/// `<parent pid>:3:4:<max_frame>`.
pub const PIPE_ENV: &str = "IPC_RPC_PIPE";

/// Environment variable carrying the parent's `pipe` endpoint with its options (e.g.
/// `pipe?max_in_flight=4`), so that the child's server runs with them
/// ([`PipeTransport::spawn_for`]).
pub const PIPE_ENDPOINT_ENV: &str = "IPC_RPC_PIPE_ENDPOINT";

/// The child's descriptor for reading requests.
const CHILD_READ_FD: RawFd = 3;
/// The child's descriptor for writing replies.
const CHILD_WRITE_FD: RawFd = 4;
/// Parent-side copies of the child's ends are moved at or above this number, so the
/// `dup2` onto 3 and 4 cannot clobber one with the other.
const STAGING_FD: RawFd = 10;

/// Set once this process has taken its inherited pipes.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// One end of a pipe pair.
pub struct PipeTransport {
    reader: File,
    writer: File,
    peer: String,
    max_frame: usize,
    /// The other process: the child (parent side) or the parent (child side).
    peer_pid: Option<u32>,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TransportError {
    let context = context.into();
    move |source| TransportError::Io { context, source }
}

impl PipeTransport {
    /// Spawns `cmd` with a pipe pair and returns the child and the parent's end.
    ///
    /// The child must serve on its end, e.g. with `ipc_rpc::serve_parent`.
    ///
    /// # Errors
    ///
    /// `Io` if the pipes cannot be created or the command cannot be spawned.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let cmd = std::process::Command::new(std::env::current_exe()?);
    /// let (mut child, transport) = transports::PipeTransport::spawn(cmd, 16 << 20)?;
    /// # drop(transport); child.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn(cmd: Command, max_frame: usize) -> Result<(Child, PipeTransport), TransportError> {
        Self::spawn_env(cmd, max_frame, None)
    }

    /// [`PipeTransport::spawn`] for a `pipe` endpoint: the child gets its frame limit
    /// and its other options (`max_in_flight`, `max_connections`), which its server
    /// ([`PipeListener::local_endpoint`]) then runs with.
    ///
    /// # Errors
    ///
    /// As [`PipeTransport::spawn`]; `Unsupported` for an endpoint of another kind.
    pub fn spawn_for(
        cmd: Command,
        endpoint: &Endpoint,
    ) -> Result<(Child, PipeTransport), TransportError> {
        if !matches!(endpoint.kind(), EndpointKind::Pipe) {
            return Err(wrong_kind(endpoint, "PipeTransport::spawn_for", "pipe"));
        }
        Self::spawn_env(cmd, endpoint.max_frame(), Some(endpoint))
    }

    fn spawn_env(
        mut cmd: Command,
        max_frame: usize,
        endpoint: Option<&Endpoint>,
    ) -> Result<(Child, PipeTransport), TransportError> {
        match endpoint {
            Some(endpoint) => cmd.env(PIPE_ENDPOINT_ENV, endpoint.to_string()),
            None => cmd.env_remove(PIPE_ENDPOINT_ENV),
        };
        let program = cmd.get_program().to_string_lossy().into_owned();
        let (to_child_r, to_child_w) =
            pipe2(OFlag::O_CLOEXEC).map_err(|e| io_err("create a pipe")(e.into()))?;
        let (from_child_r, from_child_w) =
            pipe2(OFlag::O_CLOEXEC).map_err(|e| io_err("create a pipe")(e.into()))?;
        let child_read =
            sys::dup_at_least(&to_child_r, STAGING_FD).map_err(io_err("duplicate a pipe end"))?;
        let child_write =
            sys::dup_at_least(&from_child_w, STAGING_FD).map_err(io_err("duplicate a pipe end"))?;
        drop((to_child_r, from_child_w));

        let mut cmd = sys::with_inherited_fds(
            cmd,
            &child_read,
            CHILD_READ_FD,
            &child_write,
            CHILD_WRITE_FD,
        );
        cmd.env(
            PIPE_ENV,
            format!(
                "{}:{CHILD_READ_FD}:{CHILD_WRITE_FD}:{max_frame}",
                std::process::id()
            ),
        );
        let child = cmd
            .spawn()
            .map_err(io_err(format!("spawn `{program}` with a pipe pair")))?;
        // Only the child may hold its ends now: the parent's copies must close, or the
        // parent would never see end-of-file when the child dies.
        drop((child_read, child_write));
        let transport = PipeTransport {
            reader: File::from(from_child_r),
            writer: File::from(to_child_w),
            peer: format!("pipe (child pid {})", child.id()),
            max_frame,
            peer_pid: Some(child.id()),
        };
        Ok((child, transport))
    }

    /// Two connected ends in this process, over two pipes: for tests, and for threads
    /// that want the pipe mechanism without a child.
    ///
    /// # Errors
    ///
    /// `Io` if the pipes cannot be created (out of descriptors).
    ///
    /// # Examples
    ///
    /// ```
    /// use rpc_core::Transport as _;
    /// let (a, b) = transports::PipeTransport::pair(1 << 20)?;
    /// let mut a = Box::new(a).split()?;
    /// let mut b = Box::new(b).split()?;
    /// a.sender.send(b"ping")?;
    /// assert_eq!(b.receiver.recv(None)?.head, b"ping");
    /// # Ok::<(), rpc_core::TransportError>(())
    /// ```
    pub fn pair(max_frame: usize) -> Result<(PipeTransport, PipeTransport), TransportError> {
        let (a_read, b_write) =
            pipe2(OFlag::O_CLOEXEC).map_err(|e| io_err("create a pipe")(e.into()))?;
        let (b_read, a_write) =
            pipe2(OFlag::O_CLOEXEC).map_err(|e| io_err("create a pipe")(e.into()))?;
        let end = |reader, writer, which: &str| PipeTransport {
            reader: File::from(reader),
            writer: File::from(writer),
            peer: format!("pipe ({which} end of an in-process pair)"),
            max_frame,
            peer_pid: Some(std::process::id()),
        };
        Ok((
            end(a_read, a_write, "second"),
            end(b_read, b_write, "first"),
        ))
    }

    /// In a child started by [`PipeTransport::spawn`], takes the inherited pipe pair,
    /// with the parent's frame limit; `None` if this process was not started that way
    /// or already took it.
    ///
    /// # Errors
    ///
    /// `Io` if the variable is set for this process but the descriptors are not pipes.
    pub fn inherited() -> Result<Option<PipeTransport>, TransportError> {
        let Ok(value) = std::env::var(PIPE_ENV) else {
            return Ok(None);
        };
        let mut fields = value.split(':').map(str::parse::<i64>);
        let (Some(Ok(parent)), Some(Ok(read)), Some(Ok(write)), Some(Ok(max_frame)), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(TransportError::Io {
                context: format!(
                    "{PIPE_ENV}={value} is not `<parent pid>:<read fd>:<write fd>:<max_frame>`"
                ),
                source: std::io::ErrorKind::InvalidInput.into(),
            });
        };
        if i64::from(nix::unistd::getppid().as_raw()) != parent {
            return Ok(None); // inherited from a grandparent: not ours
        }
        if TAKEN.swap(true, Ordering::AcqRel) {
            return Ok(None);
        }
        let fd = |n: i64| -> Result<OwnedFd, TransportError> {
            let n = RawFd::try_from(n).map_err(|_| {
                io_err(format!("{PIPE_ENV}: bad descriptor {n}"))(
                    std::io::ErrorKind::InvalidInput.into(),
                )
            })?;
            sys::take_inherited_pipe_fd(n).map_err(io_err(format!(
                "take inherited pipe descriptor {n} ({PIPE_ENV})"
            )))
        };
        let reader = fd(read)?;
        let writer = fd(write)?;
        Ok(Some(PipeTransport {
            reader: File::from(reader),
            writer: File::from(writer),
            peer: format!("pipe (parent pid {parent})"),
            max_frame: usize::try_from(max_frame).unwrap_or(DEFAULT_MAX_FRAME),
            peer_pid: u32::try_from(parent).ok(),
        }))
    }

    /// The descriptor numbers (read, write), for diagnostics.
    pub fn raw_fds(&self) -> (RawFd, RawFd) {
        (self.reader.as_raw_fd(), self.writer.as_raw_fd())
    }
}

impl Transport for PipeTransport {
    fn peer(&self) -> String {
        self.peer.clone()
    }

    fn credentials(&self) -> rpc_core::PeerCredentials {
        rpc_core::PeerCredentials {
            pid: self.peer_pid,
            ..Default::default()
        }
    }

    fn split(self: Box<Self>) -> Result<Parts, TransportError> {
        split_pipe_pair(self.reader, self.writer, self.peer, self.max_frame)
    }
}

/// The parts of a connection over a pair of one-way byte channels (pipes or FIFOs):
/// framing on both, a non-blocking writer (so that sends keep deadlines and can be
/// aborted), and a closer that wakes a read blocked on `reader`.
pub(crate) fn split_pipe_pair(
    reader: File,
    writer: File,
    peer: String,
    max_frame: usize,
) -> Result<Parts, TransportError> {
    set_nonblocking(&writer).map_err(io_err(format!("{peer}: make the write end non-blocking")))?;
    let reader = Arc::new(reader);
    let closed = Arc::new(AtomicBool::new(false));
    let aborted = Arc::new(AtomicBool::new(false));
    let closer = ReadWaker::new(reader.clone(), closed.clone(), aborted.clone());
    Ok(Parts {
        receiver: Box::new(
            StreamReceiver::new(reader, max_frame, peer.clone()).with_close_flag(closed),
        ),
        sender: Box::new(
            StreamSender::new(writer, WriteMode::NonBlocking, max_frame, peer)
                .with_abort_flag(aborted),
        ),
        closer: Box::new(closer),
    })
}

/// Sets `O_NONBLOCK` on a descriptor that only this connection's sender uses.
fn set_nonblocking(file: &File) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(file, FcntlArg::F_GETFL)?);
    fcntl(file, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Serves the one connection inherited from the parent: the first `accept` returns it,
/// later ones return `Closed`, so the server ends when that connection ends.
pub struct PipeListener {
    transport: Option<PipeTransport>,
    endpoint: Endpoint,
}

/// The endpoint a child's server runs with: the parent's (see [`PIPE_ENDPOINT_ENV`]),
/// else `pipe` with the transport's frame limit.
fn endpoint_for(transport: &PipeTransport) -> Endpoint {
    std::env::var(PIPE_ENDPOINT_ENV)
        .ok()
        .and_then(|s| s.parse::<Endpoint>().ok())
        .filter(|ep| {
            matches!(ep.kind(), EndpointKind::Pipe) && ep.max_frame() == transport.max_frame
        })
        .unwrap_or_else(|| {
            let pipe = Endpoint::new(EndpointKind::Pipe);
            if transport.max_frame == pipe.max_frame() {
                pipe
            } else {
                pipe.with_max_frame(transport.max_frame)
            }
        })
}

impl PipeListener {
    /// A listener that hands out `transport` once.
    pub fn from_transport(transport: PipeTransport) -> Self {
        PipeListener {
            endpoint: endpoint_for(&transport),
            transport: Some(transport),
        }
    }

    /// A listener for the pipe pair inherited from the parent.
    ///
    /// # Errors
    ///
    /// `Unsupported` if this process was not started by [`PipeTransport::spawn`].
    pub fn inherited() -> Result<Self, TransportError> {
        match PipeTransport::inherited()? {
            Some(transport) => Ok(PipeListener::from_transport(transport)),
            None => Err(TransportError::Unsupported {
                endpoint: "pipe".into(),
                reason:
                    "this process has no pipe pair from its parent: a `pipe` server is a child \
                         started with `ipc_rpc::spawn_child` (or PipeTransport::spawn)"
                        .into(),
            }),
        }
    }

    /// [`PipeListener::inherited`], for the shape every listener has: a `pipe`
    /// endpoint binds the pair inherited from the parent, with the frame limit the
    /// parent set.
    ///
    /// # Errors
    ///
    /// As [`PipeListener::inherited`]; `Unsupported` for an endpoint of another kind.
    ///
    /// # Examples
    ///
    /// ```
    /// let outside_a_child = transports::PipeListener::bind(&"pipe".parse().unwrap());
    /// assert!(outside_a_child.is_err());
    /// ```
    pub fn bind(endpoint: &Endpoint) -> Result<Self, TransportError> {
        if !matches!(endpoint.kind(), EndpointKind::Pipe) {
            return Err(wrong_kind(endpoint, "PipeListener", "pipe"));
        }
        Self::inherited()
    }
}

struct NothingToWake;

impl Closer for NothingToWake {
    fn close(&self) {}
}

impl Listener for PipeListener {
    fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        match self.transport.take() {
            Some(t) => Ok(Box::new(t)),
            None => Err(TransportError::Closed),
        }
    }

    fn closer(&self) -> Result<Box<dyn Closer>, TransportError> {
        Ok(Box::new(NothingToWake))
    }

    fn local_endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }
}
