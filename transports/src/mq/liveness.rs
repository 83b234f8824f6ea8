//! Is the peer process still there? Pids are reused, so a process is named by its pid
//! *and* its start time, and watched through a pidfd.
//!
//! [`PeerProcess::open`] opens a pidfd, then re-reads the start time: if it still
//! matches, the pidfd surely refers to the process that was named (a pidfd never
//! changes process, and the start time rules out a reused pid). A pidfd becomes
//! readable when its process exits, even after `SIGKILL`, so
//! [`PeerProcess::has_exited`] is one `poll` with a zero timeout. It is only called
//! when a wait has been idle for a while, never per message.
//!
//! # References
//!
//! proc(5) (`/proc/<pid>/stat`, fields 3 and 22), pidfd_open(2), poll(2)

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::sys;

/// A process: its pid and its start time (clock ticks after boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ProcessId {
    /// The process id.
    pub(crate) pid: u32,
    /// Field 22 of `/proc/<pid>/stat`.
    pub(crate) start: u64,
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    /// Field 3: `R`, `S`, `Z`, ...
    state: char,
    /// Field 22.
    start: u64,
}

/// Parses the fields we need out of a `/proc/<pid>/stat` line. The command name
/// (field 2) is in parentheses and may itself contain spaces and parentheses, so the
/// fields are counted from the last `)`.
fn parse_stat(line: &str) -> Option<Stat> {
    let after_comm = &line[line.rfind(')')? + 1..];
    let mut fields = after_comm.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 is the first after the command; field 22 is 19 further.
    let start = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start })
}

fn stat_of(pid: u32) -> io::Result<Option<Stat>> {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(line) => Ok(parse_stat(&line)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl ProcessId {
    /// This process.
    ///
    /// # Errors
    ///
    /// If `/proc/self/stat` cannot be read (no `/proc` mounted).
    pub(crate) fn current() -> io::Result<ProcessId> {
        static CURRENT: OnceLock<(u32, u64)> = OnceLock::new();
        if let Some(&(pid, start)) = CURRENT.get() {
            // A forked child has another pid; never hand out the parent's identity.
            if pid == std::process::id() {
                return Ok(ProcessId { pid, start });
            }
        }
        let pid = std::process::id();
        let start = stat_of(pid)?
            .ok_or_else(|| io::Error::other("/proc/self/stat is unreadable"))?
            .start;
        let _ = CURRENT.set((pid, start));
        Ok(ProcessId { pid, start })
    }

    /// Whether this exact process (same pid, same start time) is running and not a
    /// zombie. An unreadable `/proc` counts as alive: never declare a live owner dead.
    pub(crate) fn is_alive(self) -> bool {
        match stat_of(self.pid) {
            Ok(Some(stat)) => stat.start == self.start && !matches!(stat.state, 'Z' | 'X' | 'x'),
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// `"<pid> <start>"`, as written into a lock file.
    pub(crate) fn to_text(self) -> String {
        format!("{} {}\n", self.pid, self.start)
    }

    /// Parses [`ProcessId::to_text`].
    pub(crate) fn from_text(text: &str) -> Option<ProcessId> {
        let mut it = text.split_ascii_whitespace();
        let pid = it.next()?.parse().ok()?;
        let start = it.next()?.parse().ok()?;
        it.next().is_none().then_some(ProcessId { pid, start })
    }
}

/// Why a peer process cannot be watched.
#[derive(Debug)]
pub(crate) enum WatchError {
    /// The process has exited (or the pid now belongs to another process).
    Gone,
    /// The OS refused a pidfd (out of file descriptors, no pidfd support).
    Io(io::Error),
}

/// A watched peer process.
#[derive(Debug)]
pub(crate) struct PeerProcess {
    pidfd: OwnedFd,
}

impl PeerProcess {
    /// Starts watching process `id`.
    ///
    /// # Errors
    ///
    /// [`WatchError::Gone`] if it is not running; [`WatchError::Io`] if no pidfd
    /// could be opened.
    pub(crate) fn open(id: ProcessId) -> Result<PeerProcess, WatchError> {
        let pidfd = match sys::pidfd_open(id.pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => return Err(WatchError::Gone),
            Err(e) => return Err(WatchError::Io(e)),
        };
        // Checked after the pidfd exists: from here on the pid cannot be reused while
        // we hold the pidfd, so a matching start time proves it is the right process.
        let peer = PeerProcess { pidfd };
        if !id.is_alive() || peer.has_exited() {
            return Err(WatchError::Gone);
        }
        Ok(peer)
    }

    /// The pidfd: readable once the process has exited (for a server's poller).
    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Whether the process has exited (one `poll` with a zero timeout).
    pub(crate) fn has_exited(&self) -> bool {
        let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
        loop {
            match poll(&mut fds, PollTimeout::ZERO) {
                Ok(n) => return n > 0,
                Err(nix::errno::Errno::EINTR) => {}
                // A pidfd that cannot be polled tells nothing; keep the peer.
                Err(_) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (we ird) (name) S 1 4242 4242 0 -1 4194560 \
                    100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                start: 987654
            })
        );
        assert_eq!(parse_stat("1 (x) Z 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn process_ids_round_trip_as_text() {
        let id = ProcessId {
            pid: 7,
            start: u64::MAX,
        };
        assert_eq!(ProcessId::from_text(&id.to_text()), Some(id));
        for bad in ["", "7", "7 x", "7 8 9", "-1 3"] {
            assert_eq!(ProcessId::from_text(bad), None, "{bad:?}");
        }
    }
}
