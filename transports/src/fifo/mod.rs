//! FIFO pairs: `fifo:/dir/name`, many clients, each with its own pair of FIFOs.
//!
//! The endpoint path is a directory the server creates owner-only (0700):
//!
//! ```text
//! fifo:/run/calc  →  /run/calc/            0700, created by the server
//!                     ├── lock              owner lock (flock) of the live server
//!                     ├── connect           rendezvous FIFO 0600, read by the server
//!                     ├── <id>.c2s          a connecting client's request FIFO  ┐ unlinked once
//!                     └── <id>.s2c          its reply FIFO                      ┘ both ends are open
//!
//! request on `connect` (one atomic write, < PIPE_BUF):  "CONNECT <id>\n"
//! <id> = <client pid>-<counter>, digits and one dash only
//! ```
//!
//! Connecting:
//!
//! 1. the client makes `<id>.c2s` and `<id>.s2c` (0600) and opens `s2c` for reading;
//! 2. it writes `CONNECT <id>` to the rendezvous FIFO (one atomic write);
//! 3. the server opens `s2c` for writing, then `c2s` for reading (in that order: the
//!    client's next step succeeds only once the server holds both), and runs the
//!    connection;
//! 4. the client opens `c2s` for writing and unlinks both names: from here on nothing
//!    of the connection exists in the file system.
//!
//! Both sides' first read is the handshake, made with a deadline (poll), so neither
//! mistakes "the writer has not opened yet" for end-of-file. After that, end-of-file
//! is the peer's death or departure: `Closed`. A client killed before step 4 leaves
//! its pair behind only until the server notices (its connection ends) or until the
//! next server binds the endpoint, which sweeps the directory.

pub(crate) mod rendezvous;

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;
use nix::sys::stat::Mode;
use rpc_core::{Closer, Listener, Parts, Transport, TransportError};

use crate::endpoint::{Endpoint, EndpointKind, wrong_kind};
use crate::fd_reserve::{ExhaustionLog, check_headroom, is_exhaustion};
use crate::names::fifo::{CONNECT, LOCK, pair_paths};
use crate::names::owner_lock::OwnerLock;
use crate::names::reclaim;
use crate::pipe::split_pipe_pair;
use crate::wakeup::Wakeup;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> TransportError {
    let context = context.into();
    move |source| TransportError::Io { context, source }
}

fn mkfifo(path: &Path) -> io::Result<()> {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600))?;
    // mkfifo applies the umask, which can only remove bits; make it exactly 0600.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

fn open_fifo(path: &Path, write: bool) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.file_type().is_fifo() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a FIFO"));
    }
    Ok(file)
}

fn set_blocking(file: &File) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(file.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(file.as_fd(), FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Removes a client's FIFO pair when dropped (on every failure path of connect).
struct PairNames(PathBuf, PathBuf);

impl Drop for PairNames {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(&self.1);
    }
}

/// A connected FIFO pair.
pub struct FifoTransport {
    reader: File,
    writer: File,
    peer: String,
    max_frame: usize,
    /// Server side: the pair's names, removed when the connection ends if the client
    /// did not get to it.
    names: Option<PairNames>,
}

impl FifoTransport {
    /// Connects to the FIFO server of `fifo:<dir>` (its endpoint directory).
    ///
    /// # Errors
    ///
    /// `Io` saying that no server is there (no rendezvous FIFO, or nobody reading it),
    /// that it did not answer within 5 s, or why the FIFOs could not be made;
    /// `Unsupported` for an endpoint of another kind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rpc_core::Transport as _;
    /// let t = transports::FifoTransport::connect(&"fifo:/tmp/calc".parse()?)?;
    /// println!("connected to {}", t.peer());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let EndpointKind::Fifo { path } = endpoint.kind() else {
            return Err(wrong_kind(endpoint, "FifoTransport", "fifo:"));
        };
        let max_frame = endpoint.max_frame();
        let dir = Path::new(path);
        let peer = format!("fifo:{path}");
        let connect_path = dir.join(CONNECT);
        let mut rendezvous = match open_fifo(&connect_path, true) {
            Ok(f) => f,
            Err(e) => {
                let hint = match e.raw_os_error() {
                    Some(libc::ENOENT) => {
                        return Err(TransportError::NoServer {
                            context: format!(
                                "{peer}: no server: the rendezvous FIFO does not exist; start the server or check the path"
                            ),
                            source: e,
                        });
                    }
                    Some(libc::ENXIO) => {
                        return Err(TransportError::Stale {
                            context: format!(
                                "{peer}: no server is reading the rendezvous FIFO: it is a leftover of a server that is gone; start the server (it replaces it)"
                            ),
                            source: e,
                        });
                    }
                    Some(libc::EACCES) => "permission denied: the endpoint belongs to another user",
                    _ => "cannot open the rendezvous FIFO",
                };
                return Err(io_err(format!("{peer}: {hint}"))(e));
            }
        };
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let (c2s, s2c) = pair_paths(dir, &id);
        for p in [&c2s, &s2c] {
            // A leftover of an earlier process with our pid: ours to replace.
            let _ = std::fs::remove_file(p);
        }
        let names = PairNames(c2s.clone(), s2c.clone());
        for p in [&c2s, &s2c] {
            mkfifo(p).map_err(io_err(format!("{peer}: create FIFO {}", p.display())))?;
        }
        let reader =
            open_fifo(&s2c, false).map_err(io_err(format!("{peer}: open {}", s2c.display())))?;
        let timeout = endpoint.connect_timeout();
        let deadline = Instant::now() + timeout;
        let request = rendezvous::request(&id);
        loop {
            match rendezvous.write(&request) {
                Ok(n) if n == request.len() => break,
                Ok(_) => return Err(TransportError::Corrupt("short write of a connect request")),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io_err(format!(
                        "{peer}: the server's rendezvous FIFO stayed full for the connect timeout of {timeout:?}: it is stopped or overloaded; check that it runs, or raise `connect_timeout` in the endpoint"
                    ))(io::ErrorKind::TimedOut.into()));
                }
                Err(e) => return Err(io_err(format!("{peer}: send the connect request"))(e)),
            }
        }
        drop(rendezvous);
        let mut pause = Duration::from_micros(20);
        let writer = loop {
            match open_fifo(&c2s, true) {
                Ok(f) => break f,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) && Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    let e = io::Error::new(io::ErrorKind::TimedOut, e);
                    return Err(io_err(format!(
                        "{peer}: the server did not take the connection within the connect timeout of {timeout:?}: it is stopped or overloaded; check that it runs, or raise `connect_timeout` in the endpoint"
                    ))(e));
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return Err(io_err(format!(
                        "{peer}: the server removed this connection's FIFOs instead of opening them: it is shutting down, or it could not open them (probably server out of file descriptors: raise the server's `ulimit -n` or close idle connections)"
                    ))(e));
                }
                Err(e) => return Err(io_err(format!("{peer}: open {}", c2s.display()))(e)),
            }
        };
        set_blocking(&reader).map_err(io_err(format!("{peer}: configure the reply FIFO")))?;
        set_blocking(&writer).map_err(io_err(format!("{peer}: configure the request FIFO")))?;
        drop(names); // both ends are open: the names are no longer needed
        Ok(FifoTransport {
            reader,
            writer,
            peer,
            max_frame,
            names: None,
        })
    }
}

impl Transport for FifoTransport {
    fn peer(&self) -> String {
        self.peer.clone()
    }

    fn split(self: Box<Self>) -> Result<Parts, TransportError> {
        let FifoTransport {
            reader,
            writer,
            peer,
            max_frame,
            names,
        } = *self;
        let mut parts = split_pipe_pair(reader, writer, peer, max_frame)?;
        if let Some(names) = names {
            parts.receiver = Box::new(crate::stream::WithGuard::new(parts.receiver, names));
        }
        Ok(parts)
    }
}

/// A FIFO server's endpoint directory and rendezvous FIFO.
pub struct FifoListener {
    dir: PathBuf,
    endpoint: Endpoint,
    rendezvous: File,
    pending: Vec<u8>,
    wakeup: Wakeup,
    lock: Option<OwnerLock>,
    /// Says once per episode that the process is out of descriptors.
    exhaustion: ExhaustionLog,
}

impl FifoListener {
    /// Creates (or takes over from a dead server) the endpoint directory of
    /// `fifo:<dir>`.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if a live server owns it; `Io` if the path exists and is not our
    /// directory, or the FIFO cannot be made; `Unsupported` for an endpoint of
    /// another kind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rpc_core::Listener as _;
    /// let listener = transports::FifoListener::bind(&"fifo:/tmp/calc".parse()?)?;
    /// println!("listening on {}", listener.local_endpoint());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(endpoint: &Endpoint) -> Result<Self, TransportError> {
        let EndpointKind::Fifo { path } = endpoint.kind() else {
            return Err(wrong_kind(endpoint, "FifoListener", "fifo:"));
        };
        let dir = PathBuf::from(path);
        let endpoint = endpoint.clone();
        let name = endpoint.to_string();
        claim_dir(&dir, &name)?;
        let lock = OwnerLock::acquire(dir.join(LOCK), &name)?;
        reclaim::fifo_dir(&dir);
        let connect = dir.join(CONNECT);
        mkfifo(&connect).map_err(io_err(format!("{name}: create the rendezvous FIFO")))?;
        // Opened for reading and writing, so it never reports end-of-file between clients.
        let rendezvous = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&connect)
            .map_err(io_err(format!("{name}: open the rendezvous FIFO")))?;
        Ok(FifoListener {
            dir,
            endpoint,
            rendezvous,
            pending: Vec::with_capacity(rendezvous::MAX_REQUEST * 4),
            wakeup: Wakeup::new()?,
            lock: Some(lock),
            exhaustion: ExhaustionLog::default(),
        })
    }

    /// Opens the FIFO pair of client `id`; on failure removes it and returns `None`
    /// (the client's connect then fails at once, naming the probable cause).
    fn open_pair(&mut self, id: &str) -> Option<FifoTransport> {
        let (c2s, s2c) = pair_paths(&self.dir, id);
        let names = PairNames(c2s.clone(), s2c.clone());
        // The reply FIFO first: the client opens the request FIFO for writing only once
        // we hold it for reading, and that must mean the connection is fully set up.
        // Room for the pair is checked first, so that the client never sees a FIFO
        // open for a moment.
        let opened = check_headroom(2).and_then(|()| {
            let writer = open_fifo(&s2c, true)?;
            Ok((writer, open_fifo(&c2s, false)?))
        });
        let (writer, reader) = match opened {
            Ok(pair) => {
                self.exhaustion.recovered();
                pair
            }
            Err(e) => {
                if is_exhaustion(&e) {
                    self.exhaustion.exhausted(&self.endpoint.to_string(), &e);
                }
                return None;
            }
        };
        set_blocking(&reader).ok()?;
        set_blocking(&writer).ok()?;
        Some(FifoTransport {
            reader,
            writer,
            peer: format!("{} (client {id})", self.endpoint),
            max_frame: self.endpoint.max_frame(),
            names: Some(names),
        })
    }
}

/// Makes `dir` an owner-only directory of this user: creates it, or takes the one
/// there. Another server may create it between our look and our `mkdir`; then the
/// directory is looked at again like one that was there all along, so that the race
/// is decided by the owner lock (the loser gets `AddrInUse`), not by `mkdir`.
fn claim_dir(dir: &Path, name: &str) -> Result<(), TransportError> {
    // A second look can only find it gone again if the winner made it and then
    // removed it (it shut down at once); a few rounds cover that.
    let mut rounds = 3;
    loop {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw() => {
                return std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(io_err(format!(
                        "{name}: restrict the endpoint directory to its owner"
                    )));
            }
            Ok(_) => {
                return Err(io_err(format!(
                    "{name}: the path exists and is not a directory of this user; a FIFO endpoint is a directory the server creates"
                ))(io::ErrorKind::AlreadyExists.into()));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match DirBuilder::new().mode(0o700).create(dir) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && rounds > 0 => {
                        rounds -= 1;
                    }
                    Err(e) => {
                        return Err(io_err(format!(
                            "{name}: create the endpoint directory (does its parent exist?)"
                        ))(e));
                    }
                }
            }
            Err(e) => return Err(io_err(format!("{name}: inspect the endpoint path"))(e)),
        }
    }
}

impl Listener for FifoListener {
    fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        let name = self.endpoint.to_string();
        let mut buf = [0u8; 512];
        loop {
            match rendezvous::next_request(&mut self.pending) {
                Ok(Some(id)) => {
                    if let Some(t) = self.open_pair(&id) {
                        return Ok(Box::new(t));
                    }
                    continue;
                }
                Ok(None) => continue,
                Err(()) => {}
            }
            self.wakeup.wait_readable(self.rendezvous.as_fd(), &name)?;
            match self.rendezvous.read(&mut buf) {
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(io_err(format!("{name}: read the rendezvous FIFO"))(e)),
            }
        }
    }

    fn closer(&self) -> Result<Box<dyn Closer>, TransportError> {
        Ok(Box::new(self.wakeup.clone()))
    }

    fn local_endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }
}

impl Drop for FifoListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.join(CONNECT));
        reclaim::fifo_dir(&self.dir);
        drop(self.lock.take());
        // Succeeds once the directory is empty; a connecting client's pair keeps it.
        let _ = std::fs::remove_dir(&self.dir);
    }
}
