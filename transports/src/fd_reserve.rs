//! A socket listener that stays answerable when its process runs out of file
//! descriptors.
//!
//! Out of descriptors, `accept` fails with `EMFILE` (this process's limit, `ulimit -n`)
//! or `ENFILE` (the system's), and leaves the connection in the backlog: its client
//! would wait for a handshake until it times out, with no word of why. Or `accept`
//! takes the very last descriptor and the connection's set-up fails a moment later,
//! and the client reads "the server closed the connection during the handshake".
//!
//! So each listener keeps one spare descriptor (`/dev/null`). When `accept` fails for
//! want of descriptors, the listener closes the spare, accepts the waiting connection
//! with it, tells the client why in a refusal frame ([`rpc_core::wire::Refusal`]: the
//! client's `connect` fails with "server out of file descriptors"), closes it, and
//! takes the spare again. After every accepted connection it also checks that the
//! connection's set-up will find the descriptors it needs (its `headroom`), and refuses
//! the connection the same way if not. The server says so on stderr once per episode
//! (until a connection is taken again).
//!
//! # References
//!
//! accept(2) `EMFILE`, `ENFILE`; getrlimit(2) `RLIMIT_NOFILE`

use std::fs::File;
use std::io;
use std::net::Shutdown;

use nix::libc;

use crate::stream_socket::StreamSocket;

/// Bytes of a refused client's first frame read (and dropped) before closing, so that
/// a TCP close finds nothing unread and sends FIN after the refusal rather than RST.
const DRAIN_LIMIT: usize = 64 << 10;

/// Whether `e` says the process or the system is out of file descriptors.
pub(crate) fn is_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Whether the process can open `n` more descriptors (each opened and closed again):
/// `Err` (`EMFILE`/`ENFILE`) if not. For set-ups that need descriptors after the
/// connection's own are open.
pub(crate) fn check_headroom(n: usize) -> io::Result<()> {
    (0..n)
        .map(|_| open_spare())
        .collect::<io::Result<Vec<File>>>()
        .map(drop)
}

/// Whether stderr was told, in this episode of exhaustion, that a listener refuses
/// clients for want of descriptors: it says so once, until a connection is taken again.
#[derive(Debug, Default)]
pub(crate) struct ExhaustionLog {
    logged: bool,
}

impl ExhaustionLog {
    /// Says on stderr, once per episode, that `name` refuses clients for want of
    /// descriptors; returns the reason to tell the clients, with what to do.
    pub(crate) fn exhausted(&mut self, name: &str, error: &io::Error) -> &'static str {
        let which = if error.raw_os_error() == Some(libc::ENFILE) {
            "the system's open-file table is full (ENFILE); close files or raise fs.file-max on the server's host"
        } else {
            "it reached its limit of open files (EMFILE); raise the server's `ulimit -n` (RLIMIT_NOFILE) or close idle connections"
        };
        if !self.logged {
            self.logged = true;
            eprintln!(
                "ipc-rpc: {name}: out of file descriptors, refusing new connections until some close: {which}"
            );
        }
        which
    }

    /// A connection was taken again: the episode is over.
    pub(crate) fn recovered(&mut self) {
        self.logged = false;
    }
}

/// One spare descriptor to free when the process is out of them, so that a refused
/// client can still be told why, and the log of the exhaustion.
#[derive(Debug)]
pub(crate) struct Spare {
    file: Option<File>,
    log: ExhaustionLog,
}

impl Spare {
    /// Takes a spare descriptor (none if even that fails; it is retried later).
    pub(crate) fn new() -> Self {
        Spare {
            file: open_spare().ok(),
            log: ExhaustionLog::default(),
        }
    }

    /// Runs `f` with the spare descriptor closed, then takes it again; `None` (and `f`
    /// not run) if there was no spare.
    pub(crate) fn freed<T>(&mut self, f: impl FnOnce() -> T) -> Option<T> {
        drop(self.file.take()?);
        let out = f();
        // Another thread may take the freed number first; then the next exhaustion
        // finds no spare and the listener backs off instead.
        self.file = open_spare().ok();
        Some(out)
    }

    /// See [`ExhaustionLog::exhausted`].
    pub(crate) fn exhausted(&mut self, name: &str, error: &io::Error) -> &'static str {
        self.log.exhausted(name, error)
    }

    /// A connection was taken again: the episode is over (and the spare is taken again
    /// if it was lost).
    pub(crate) fn recovered(&mut self) {
        self.log.recovered();
        if self.file.is_none() {
            self.file = open_spare().ok();
        }
    }
}

/// A socket listener's spare descriptor, and how its refused clients are told.
pub(crate) struct FdReserve {
    spare: Spare,
    /// Whether refused clients get a refusal frame (ipc-rpc handshakes) or only see
    /// the connection close (a rendezvous socket with its own protocol).
    refusal: Refusal,
    /// Descriptors a connection needs after `accept`, besides its own: none for an
    /// ipc-rpc socket (sender, receiver and closer share its one descriptor), one for
    /// a shared-memory rendezvous (the segment it receives).
    headroom: usize,
}

/// How a listener's refused clients are told why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// An ipc-rpc refusal frame, which the client's handshake reports.
    Frame,
    /// An `ERR <reason>` line, as the shared-memory rendezvous answers.
    Line,
}

fn open_spare() -> io::Result<File> {
    // std opens with O_CLOEXEC.
    File::open("/dev/null")
}

impl FdReserve {
    /// A reserve whose refused clients are told why in the form `refusal`, admitting a
    /// connection only while `headroom` more descriptors can be had.
    pub(crate) fn new(refusal: Refusal, headroom: usize) -> Self {
        FdReserve {
            spare: Spare::new(),
            refusal,
            headroom,
        }
    }

    /// Called after `accept` failed with `error` for want of descriptors: uses the
    /// spare to accept and refuse the waiting connection. `false` if there is no spare
    /// to use (the caller reports the error and backs off).
    pub(crate) fn refuse_waiting<S: StreamSocket>(
        &mut self,
        name: &str,
        error: &io::Error,
        accept: impl FnOnce() -> io::Result<S>,
    ) -> bool {
        let mut accepted = None;
        if self.spare.freed(|| accepted = Some(accept())).is_none() {
            return false;
        }
        if let Some(Ok(stream)) = accepted {
            self.refuse(stream, name, error);
        }
        true
    }

    /// Called after `accept` succeeded: gives `stream` back if the process has the
    /// descriptors to set the connection up, otherwise refuses it and returns `None`.
    pub(crate) fn admit<S: StreamSocket>(&mut self, stream: S, name: &str) -> Option<S> {
        if self.spare.file.is_none() {
            self.spare.file = open_spare().ok();
        }
        let probe = match &self.spare.file {
            Some(_) => check_headroom(self.headroom),
            None => Err(io::Error::from_raw_os_error(libc::EMFILE)),
        };
        match probe {
            Err(e) if is_exhaustion(&e) => {
                self.refuse(stream, name, &e);
                None
            }
            _ => {
                self.spare.recovered();
                Some(stream)
            }
        }
    }

    /// Tells the client why (if it speaks ipc-rpc) and closes the connection.
    fn refuse<S: StreamSocket>(&mut self, mut stream: S, name: &str, error: &io::Error) {
        let which = self.spare.exhausted(name, error);
        let reason = format!("server out of file descriptors: {which}");
        // A fresh socket's send buffer is empty: this small write does not block.
        let told = match self.refusal {
            Refusal::Frame => rpc_core::framing::write_frame(
                &mut stream,
                &rpc_core::wire::encode_refusal(&reason),
            ),
            Refusal::Line => writeln!(stream, "ERR {reason}"),
        };
        if told.is_ok() {
            let _ = stream.shutdown(Shutdown::Write);
            drain(&mut stream);
        }
    }
}

/// Reads what the client already sent (its hello), without waiting for more.
fn drain<S: StreamSocket>(stream: &mut S) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < DRAIN_LIMIT {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}
