//! UNIX stream sockets: `unix:/path.sock`.
//!
//! The socket file is created 0600 (the mode is set on the socket before `bind`, so
//! there is no moment when others may connect). An owner lock at `<path>.lock` tells a
//! live server from a stale file: binding over a crashed server's socket replaces it,
//! binding over a live one fails with `AddrInUse`. Both files are removed when the
//! listener drops.
//!
//! The server reads each client's uid from the kernel (`SO_PEERCRED`) and by default
//! accepts only its own; `?allow_uid=1000,1001` widens that. Handlers see the caller's
//! pid and uid through `ipc_rpc::peer()`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket,
};
use nix::sys::stat::{Mode, fchmod};
use rpc_core::{Closer, Listener, Parts, PeerCredentials, Transport, TransportError};

use crate::endpoint::{Endpoint, EndpointKind, wrong_kind};
use crate::fd_reserve::{FdReserve, Refusal};
use crate::names::owner_lock::OwnerLock;
use crate::names::uds::lock_path;
use crate::socket::{accept_blocking, connect_unix, split_socket};
use crate::wakeup::Wakeup;

/// Pending connections the kernel queues before `accept`.
const BACKLOG: i32 = 128;

/// A connected UNIX stream socket.
pub struct UdsTransport {
    stream: UnixStream,
    peer: String,
    max_frame: usize,
    credentials: PeerCredentials,
}

impl UdsTransport {
    /// Connects to the server of `unix:<path>`.
    ///
    /// # Errors
    ///
    /// `Io` saying whether no server is there (no file, or a stale file), or access
    /// was denied; `Unsupported` for an endpoint of another kind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rpc_core::Transport as _;
    /// let t = transports::UdsTransport::connect(&transports::Endpoint::unix("/tmp/calc.sock"))?;
    /// println!("connected to {}", t.peer());
    /// # Ok::<(), rpc_core::TransportError>(())
    /// ```
    pub fn connect(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let EndpointKind::Unix { path, .. } = endpoint.kind() else {
            return Err(wrong_kind(endpoint, "UdsTransport", "unix:"));
        };
        let peer = format!("unix:{path}");
        let addr = UnixAddr::new(Path::new(path)).map_err(|e| connect_error(e.into(), &peer))?;
        let stream =
            connect_unix(&addr, endpoint.connect_timeout()).map_err(|e| connect_error(e, &peer))?;
        Ok(UdsTransport {
            stream,
            peer,
            max_frame: endpoint.max_frame(),
            credentials: PeerCredentials::default(),
        })
    }
}

fn connect_error(e: io::Error, peer: &str) -> TransportError {
    let hint = match e.kind() {
        io::ErrorKind::NotFound => {
            return TransportError::NoServer {
                context: format!(
                    "{peer}: no server: the socket file does not exist; start the server or check the path"
                ),
                source: e,
            };
        }
        io::ErrorKind::ConnectionRefused => {
            return TransportError::Stale {
                context: format!(
                    "{peer}: no server is listening: the socket file is a leftover of a server that is gone; start the server (it replaces the file)"
                ),
                source: e,
            };
        }
        io::ErrorKind::PermissionDenied => "permission denied: the socket belongs to another user",
        io::ErrorKind::TimedOut => {
            "the server takes no connection (stopped or overloaded); check that it runs, or raise \
             `connect_timeout` in the endpoint"
        }
        _ => "connect failed",
    };
    TransportError::Io {
        context: format!("{peer}: {hint}"),
        source: e,
    }
}

impl Transport for UdsTransport {
    fn peer(&self) -> String {
        self.peer.clone()
    }

    fn credentials(&self) -> PeerCredentials {
        self.credentials.clone()
    }

    fn split(self: Box<Self>) -> Result<Parts, TransportError> {
        split_socket(self.stream, self.max_frame, self.peer)
    }
}

/// A listening UNIX socket that owns its socket file.
pub struct UdsListener {
    listener: UnixListener,
    /// The socket file, removed on drop; `None` for an abstract socket (nothing in the
    /// file system).
    path: Option<PathBuf>,
    endpoint: Endpoint,
    wakeup: Wakeup,
    /// Out of descriptors, clients of `unix:` get a refusal frame.
    reserve: FdReserve,
    /// The same for a shared-memory rendezvous socket's clients, which get an
    /// `ERR server out of file descriptors: …` line instead.
    rendezvous_reserve: FdReserve,
    _lock: Option<OwnerLock>,
}

impl UdsListener {
    /// Binds `unix:<path>`, replacing a stale socket file.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if a live server owns the path; `Io` if the path exists and is not
    /// a socket, its directory is missing, or the OS refuses the socket;
    /// `Unsupported` for an endpoint of another kind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rpc_core::Listener as _;
    /// let listener = transports::UdsListener::bind(&"unix:/tmp/calc.sock".parse()?)?;
    /// println!("listening on {}", listener.local_endpoint());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let EndpointKind::Unix { path, .. } = endpoint.kind() else {
            return Err(wrong_kind(endpoint, "UdsListener", "unix:"));
        };
        Self::bind_socket(PathBuf::from(path), endpoint.clone())
    }

    /// Binds a socket at `path` for `endpoint`: its own `unix:` endpoint, or the
    /// `shm:` endpoint whose rendezvous it is.
    pub(crate) fn bind_socket(path: PathBuf, endpoint: Endpoint) -> Result<Self, TransportError> {
        let io_err = |what: &str, source: io::Error| TransportError::Io {
            context: format!("{endpoint}: {what}"),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(io_err(
                &format!(
                    "directory {} does not exist; create it first",
                    dir.display()
                ),
                io::ErrorKind::NotFound.into(),
            ));
        }
        let lock = OwnerLock::acquire(lock_path(&path), &endpoint.to_string())?;
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_socket() => {
                std::fs::remove_file(&path)
                    .map_err(|e| io_err("remove the stale socket file", e))?;
            }
            Ok(_) => {
                return Err(io_err(
                    "the path exists and is not a socket; refusing to replace it (remove it or pick another path)",
                    io::ErrorKind::AlreadyExists.into(),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspect the socket path", e)),
        }
        let fd = owner_only_socket(&path).map_err(|e| io_err("bind", e))?;
        let listener = UnixListener::from(fd);
        listener
            .set_nonblocking(true)
            .map_err(|e| io_err("make the listener non-blocking", e))?;
        // Belt and braces: if the kernel ignored the pre-bind mode, fix it now.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err("restrict the socket file to its owner", e))?;
        Ok(UdsListener {
            listener,
            path: Some(path),
            endpoint,
            wakeup: Wakeup::new()?,
            reserve: FdReserve::new(Refusal::Frame, 0),
            rendezvous_reserve: FdReserve::new(Refusal::Line, 1),
            _lock: Some(lock),
        })
    }

    /// Binds the abstract socket `name` (Linux: no file, nothing left after a crash,
    /// and the name is free again as soon as the socket closes, so no owner lock is
    /// needed: a second bind fails with `AddrInUse`). It has no permission bits:
    /// every connection's uid is checked at accept (see `accept_stream`).
    pub(crate) fn bind_abstract(name: &str, endpoint: Endpoint) -> Result<Self, TransportError> {
        let io_err = |what: &str, source: io::Error| TransportError::Io {
            context: format!("{endpoint}: {what}"),
            source,
        };
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| io_err("create the rendezvous socket", e.into()))?;
        let addr = UnixAddr::new_abstract(name.as_bytes())
            .map_err(|e| io_err("name the rendezvous socket", e.into()))?;
        bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).map_err(|e| match e {
            nix::errno::Errno::EADDRINUSE => TransportError::AddrInUse {
                endpoint: endpoint.to_string(),
            },
            e => io_err("bind the rendezvous socket", e.into()),
        })?;
        listen(
            &fd,
            Backlog::new(BACKLOG).map_err(|e| io_err("listen", e.into()))?,
        )
        .map_err(|e| io_err("listen", e.into()))?;
        let listener = UnixListener::from(fd);
        listener
            .set_nonblocking(true)
            .map_err(|e| io_err("make the listener non-blocking", e))?;
        Ok(UdsListener {
            listener,
            path: None,
            endpoint,
            wakeup: Wakeup::new()?,
            reserve: FdReserve::new(Refusal::Frame, 0),
            rendezvous_reserve: FdReserve::new(Refusal::Line, 1),
            _lock: None,
        })
    }
}

/// The kernel's word on who is at the other end of `stream` (`SO_PEERCRED`).
///
/// # References
///
/// unix(7) `SO_PEERCRED`
pub(crate) fn peer_credentials(stream: &UnixStream) -> PeerCredentials {
    match nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials) {
        Ok(c) => PeerCredentials {
            pid: u32::try_from(c.pid()).ok(),
            uid: Some(c.uid()),
            gid: Some(c.gid()),
            subject: None,
        },
        Err(_) => PeerCredentials::default(),
    }
}

/// socket(2) + fchmod(2) 0600 + bind(2) + listen(2): the file is born owner-only.
fn owner_only_socket(path: &Path) -> io::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    fchmod(fd.as_fd(), Mode::from_bits_truncate(0o600))?;
    let addr = UnixAddr::new(path)?;
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr)?;
    listen(&fd, Backlog::new(BACKLOG)?)?;
    Ok(fd)
}

impl UdsListener {
    /// Accepts the next connection as a plain stream (for transports that use a UNIX
    /// socket as their rendezvous).
    ///
    /// # Errors
    ///
    /// `Closed` once the listener's closer was used; `Io` otherwise.
    pub(crate) fn accept_stream(
        &mut self,
    ) -> Result<(UnixStream, PeerCredentials), TransportError> {
        self.accept_checked(false)
    }

    /// Accepts the next connection of an allowed user; out of descriptors, refuses
    /// connections, with a refusal frame if `ipc_rpc_clients`.
    fn accept_checked(
        &mut self,
        ipc_rpc_clients: bool,
    ) -> Result<(UnixStream, PeerCredentials), TransportError> {
        let name = self.endpoint.to_string();
        let listener = &self.listener;
        let reserve = if ipc_rpc_clients {
            &mut self.reserve
        } else {
            &mut self.rendezvous_reserve
        };
        loop {
            let (stream, _) =
                accept_blocking(listener.as_fd(), &self.wakeup, &name, reserve, || {
                    listener.accept()
                })?;
            let credentials = peer_credentials(&stream);
            // Another user's process (possible only if the socket file was made
            // accessible to it) is closed at once, before it can send a byte.
            if credentials
                .uid
                .is_some_and(|uid| allows(&self.endpoint, uid))
            {
                return Ok((stream, credentials));
            }
            rpc_core::__event!(
                warn,
                peer_pid = ?credentials.pid,
                peer_uid = ?credentials.uid,
                "{}: connection refused: its user is neither the server's nor one `allow_uid` names",
                self.endpoint
            );
        }
    }
}

/// Whether user `uid` may connect to `endpoint` (`unix:`, or `shm:` for its rendezvous).
pub(crate) fn allows(endpoint: &Endpoint, uid: u32) -> bool {
    let allowed = match endpoint.kind() {
        EndpointKind::Unix { opts, .. } => opts.allowed_uids(),
        EndpointKind::Shm { opts, .. } => opts.allowed_uids(),
        _ => &[],
    };
    uid == nix::unistd::geteuid().as_raw() || allowed.contains(&uid)
}

impl Listener for UdsListener {
    fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        let (stream, credentials) = self.accept_checked(true)?;
        Ok(Box::new(UdsTransport {
            stream,
            peer: format!("{} (client)", self.endpoint),
            max_frame: self.endpoint.max_frame(),
            credentials,
        }))
    }

    fn closer(&self) -> Result<Box<dyn Closer>, TransportError> {
        Ok(Box::new(self.wakeup.clone()))
    }

    fn local_endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }
}

impl Drop for UdsListener {
    fn drop(&mut self) {
        // The owner lock (a field) is released after this, so nobody binds in between.
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}
