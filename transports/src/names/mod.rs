//! Every name ipc-rpc puts in the OS, built and checked in one place, for every
//! transport; the owner lock ([`owner_lock`]) and the removal of what a dead owner
//! left ([`reclaim`]) live next to it.
//!
//! Two prefixes are in use, both kept as they are: servers already running and users'
//! scripts (and `tests/leftovers.rs`, which looks for `ipc-rpc…`) know these names.
//!
//! | prefix | used by |
//! |---|---|
//! | [`SHM_PREFIX`] `ipc-rpc.` | shm: the rendezvous socket's abstract name, the memory files' names; what older versions left in /dev/shm (rendezvous socket and lock, version 1 segments) |
//! | [`MQ_LOCK_PREFIX`] `ipc-rpc-mq.` | mq: the server's owner lock file |
//!
//! Every name, for the endpoints `shm:/calc`, `mq:/calc`, `fifo:/run/calc` and
//! `unix:/run/calc.sock`:
//!
//! | kind | object | name | built by |
//! |---|---|---|---|
//! | shm | rendezvous socket (abstract: no file, gone with the server; binding it twice fails, so no lock) | `@ipc-rpc.calc.sock` | [`shm::Names::rendezvous`] |
//! | shm | what versions before the abstract rendezvous left | `/dev/shm/ipc-rpc.calc.sock`, `….sock.lock` | [`shm::Names::legacy_socket`] |
//! | shm | memory file (memfd, not in any directory) | `ipc-rpc.calc` | [`shm::Names::stem`] |
//! | shm | a version 1 segment a crash left | `/dev/shm/ipc-rpc.calc.<pid>.<n>` | [`shm::Names::owns_segment`] |
//! | mq | rendezvous queue | `/calc` | [`mq::Names::rendezvous`] |
//! | mq | a connection's queues | `/calc.<pid>.<start>.<n>.c2s`, `….s2c` | [`mq::Names::connection`] |
//! | mq | owner lock (holds `<pid> <start>`) | `/dev/shm/ipc-rpc-mq.calc.lock` | [`mq::Names::lock_path`] |
//! | fifo | endpoint directory (0700) | `/run/calc/` | the endpoint's path |
//! | fifo | owner lock | `/run/calc/lock` | [`fifo::LOCK`] |
//! | fifo | rendezvous FIFO | `/run/calc/connect` | [`fifo::CONNECT`] |
//! | fifo | a connecting client's FIFOs | `/run/calc/<pid>-<n>.c2s`, `….s2c` | [`fifo::pair_paths`] |
//! | unix | socket | `/run/calc.sock` | the endpoint's path |
//! | unix | owner lock | `/run/calc.sock.lock` | [`uds::lock_path`] |
//!
//! In mq names `<pid>` and `<start>` identify the client process (its pid and its
//! start time in clock ticks since boot, field 22 of `/proc/<pid>/stat`), `<n>` counts
//! its connections. The mq lock file lives in `/dev/shm`, or in the temp dir where
//! there is no `/dev/shm`. Every mq name fits `NAME_MAX` (255 bytes), which leaves at
//! most [`mq::MAX_NAME`] bytes for the endpoint's own name.

pub(crate) mod owner_lock;
pub(crate) mod reclaim;

/// Prefix of every shm object's name: `ipc-rpc.<name>` is the stem.
pub(crate) const SHM_PREFIX: &str = "ipc-rpc.";
/// Prefix of the mq owner lock file: `ipc-rpc-mq.<name>.lock`.
pub(crate) const MQ_LOCK_PREFIX: &str = "ipc-rpc-mq.";
/// Where shm's rendezvous socket and lock, and mq's lock, live.
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// Names of a shared-memory endpoint (`shm:/calc`).
pub(crate) mod shm {
    use rpc_core::TransportError;

    use crate::names::{SHM_DIR, SHM_PREFIX};

    /// The names derived from an endpoint's `/name`.
    pub(crate) struct Names {
        /// `ipc-rpc.<name>`: prefix of every object of this endpoint.
        stem: String,
    }

    impl Names {
        /// The names of `shm:<name>`; `endpoint` is the endpoint as shown in errors.
        ///
        /// # Errors
        ///
        /// `Unsupported` when the rendezvous socket's path would be too long.
        pub(crate) fn new(name: &str, endpoint: &str) -> Result<Self, TransportError> {
            let bare = name.trim_start_matches('/');
            let stem = format!("{SHM_PREFIX}{bare}");
            let socket = format!("{SHM_DIR}/{stem}.sock");
            if socket.len() > crate::endpoint::MAX_UNIX_PATH {
                return Err(TransportError::Unsupported {
                    endpoint: endpoint.to_owned(),
                    reason: format!(
                        "the name is too long: its rendezvous socket {socket} would exceed {} bytes; use a shorter name",
                        crate::endpoint::MAX_UNIX_PATH
                    ),
                });
            }
            Ok(Names { stem })
        }

        /// `ipc-rpc.<name>`: the name given to the memory files of this endpoint.
        pub(crate) fn stem(&self) -> &str {
            &self.stem
        }

        /// The rendezvous socket's name in the abstract namespace:
        /// `ipc-rpc.<name>.sock` (`@ipc-rpc.<name>.sock` in `ss -x`). Nothing of it is
        /// in the file system, so a crash leaves nothing.
        pub(crate) fn rendezvous(&self) -> String {
            format!("{}.sock", self.stem)
        }

        /// Where versions before the abstract rendezvous kept it:
        /// `/dev/shm/ipc-rpc.<name>.sock` (and its lock beside it), removed by
        /// `reclaim_stale` when a crash left them.
        pub(crate) fn legacy_socket(&self) -> String {
            format!("{SHM_DIR}/{}.sock", self.stem)
        }

        /// Whether /dev/shm object `segment` is one an older ipc-rpc (request version 1)
        /// made for this endpoint and a crash left behind.
        pub(crate) fn owns_segment(&self, segment: &str) -> bool {
            segment
                .strip_prefix('/')
                .and_then(|s| s.strip_prefix(self.stem.as_str()))
                .and_then(|s| s.strip_prefix('.'))
                .and_then(|s| s.split_once('.'))
                .is_some_and(|(pid, n)| {
                    let digits = |t: &str| {
                        !t.is_empty() && t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit())
                    };
                    digits(pid) && digits(n)
                })
        }
    }
}

/// Names of a POSIX message queue endpoint (`mq:/calc`).
pub(crate) mod mq {
    use std::path::PathBuf;

    use crate::mq::liveness::ProcessId;
    use crate::names::{MQ_LOCK_PREFIX, SHM_DIR};

    /// `NAME_MAX` on Linux: the longest queue name after the `/` and the longest file name.
    const NAME_MAX: usize = 255;

    /// The longest per-connection suffix: `.` u32 `.` u64 `.` u32 `.c2s`.
    const SUFFIX_MAX: usize = 1 + 10 + 1 + 20 + 1 + 10 + 4;

    /// Lock file name after the endpoint's name ([`MQ_LOCK_PREFIX`](crate::names::MQ_LOCK_PREFIX) before it).
    const LOCK_SUFFIX: &str = ".lock";

    /// The longest endpoint name (after the `/`) the mq transport accepts.
    pub const MAX_NAME: usize = NAME_MAX - SUFFIX_MAX;

    /// Which way a connection queue carries messages.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Direction {
        /// Client to server.
        ClientToServer,
        /// Server to client.
        ServerToClient,
    }

    impl Direction {
        fn tag(self) -> &'static str {
            match self {
                Direction::ClientToServer => "c2s",
                Direction::ServerToClient => "s2c",
            }
        }
    }

    /// The names that belong to one endpoint.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct Names {
        /// The endpoint's name without its leading `/`.
        bare: String,
    }

    impl Names {
        /// The names for endpoint name `name` (`/calc`).
        ///
        /// # Errors
        ///
        /// A sentence saying what is wrong with the name: no leading `/`, another `/`, a
        /// NUL byte, empty, or too long for the derived names.
        pub(crate) fn new(name: &str) -> Result<Self, String> {
            let Some(bare) = name.strip_prefix('/') else {
                return Err(format!("the queue name `{name}` must start with `/`"));
            };
            if bare.is_empty() || bare.contains('/') || bare.contains('\0') {
                return Err(format!(
                    "the queue name `{name}` must be `/` followed by one or more characters other than `/` and NUL"
                ));
            }
            if bare.len() > MAX_NAME {
                return Err(format!(
                    "the queue name is {} bytes; the mq transport allows at most {MAX_NAME} (per-connection queue names add up to {SUFFIX_MAX} bytes to it and must fit NAME_MAX = {NAME_MAX}); use a shorter name",
                    bare.len()
                ));
            }
            Ok(Names {
                bare: bare.to_owned(),
            })
        }

        /// The rendezvous queue: `/calc`.
        pub(crate) fn rendezvous(&self) -> String {
            format!("/{}", self.bare)
        }

        /// A connection queue: `/calc.<pid>.<start>.<n>.<c2s|s2c>`.
        pub(crate) fn connection(&self, client: ProcessId, n: u32, dir: Direction) -> String {
            format!(
                "/{}.{}.{}.{n}.{}",
                self.bare,
                client.pid,
                client.start,
                dir.tag()
            )
        }

        /// The owner lock file: `/dev/shm/ipc-rpc-mq.calc.lock` (temp dir without `/dev/shm`).
        pub(crate) fn lock_path(&self) -> PathBuf {
            let dir = if std::path::Path::new(SHM_DIR).is_dir() {
                PathBuf::from(SHM_DIR)
            } else {
                std::env::temp_dir()
            };
            dir.join(format!("{MQ_LOCK_PREFIX}{}{LOCK_SUFFIX}", self.bare))
        }

        /// If `entry` (a file name in `/dev/mqueue`, without `/`) is a connection queue of
        /// this endpoint, the client process that created it.
        pub(crate) fn parse_connection(&self, entry: &str) -> Option<(ProcessId, u32, Direction)> {
            let rest = entry.strip_prefix(&self.bare)?.strip_prefix('.')?;
            let mut fields = rest.split('.');
            let pid = fields.next()?.parse().ok()?;
            let start = fields.next()?.parse().ok()?;
            let n = fields.next()?.parse().ok()?;
            let dir = match fields.next()? {
                "c2s" => Direction::ClientToServer,
                "s2c" => Direction::ServerToClient,
                _ => return None,
            };
            if fields.next().is_some() {
                return None;
            }
            Some((ProcessId { pid, start }, n, dir))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const ID: ProcessId = ProcessId {
            pid: 42,
            start: 1234,
        };

        #[test]
        fn names_are_derived_from_the_endpoint() {
            let n = Names::new("/calc").unwrap();
            assert_eq!(n.rendezvous(), "/calc");
            assert_eq!(
                n.connection(ID, 7, Direction::ClientToServer),
                "/calc.42.1234.7.c2s"
            );
            assert_eq!(
                n.connection(ID, 7, Direction::ServerToClient),
                "/calc.42.1234.7.s2c"
            );
            let lock = n.lock_path();
            assert_eq!(
                lock.file_name().unwrap().to_str().unwrap(),
                "ipc-rpc-mq.calc.lock"
            );
        }

        #[test]
        fn connection_names_parse_back_and_others_do_not() {
            let n = Names::new("/calc").unwrap();
            for dir in [Direction::ClientToServer, Direction::ServerToClient] {
                let name = n.connection(ID, 9, dir);
                assert_eq!(n.parse_connection(&name[1..]), Some((ID, 9, dir)));
            }
            for other in [
                "calc",
                "calc.42.1234.7",
                "calc.42.1234.7.c2s.x",
                "calc.x.1234.7.c2s",
                "calc.42.1234.7.up",
                "calculator.42.1234.7.c2s",
                "other.42.1234.7.c2s",
            ] {
                assert_eq!(n.parse_connection(other), None, "{other}");
            }
        }

        #[test]
        fn the_longest_names_fit_name_max() {
            let longest = "x".repeat(MAX_NAME);
            let n = Names::new(&format!("/{longest}")).unwrap();
            let worst = ProcessId {
                pid: u32::MAX,
                start: u64::MAX,
            };
            let name = n.connection(worst, u32::MAX, Direction::ServerToClient);
            assert_eq!(name.len() - 1, NAME_MAX);
            assert!(MQ_LOCK_PREFIX.len() + MAX_NAME + LOCK_SUFFIX.len() <= NAME_MAX);
            let err = Names::new(&format!("/{longest}x")).unwrap_err();
            assert!(err.contains(&format!("at most {MAX_NAME}")), "{err}");
        }

        #[test]
        fn bad_names_say_what_to_write() {
            assert!(Names::new("calc").unwrap_err().contains("start with `/`"));
            assert!(Names::new("/").unwrap_err().contains("one or more"));
            assert!(Names::new("/a/b").unwrap_err().contains("other than `/`"));
        }
    }
}

/// Names inside a FIFO endpoint's directory (`fifo:/run/calc`).
pub(crate) mod fifo {
    use std::path::{Path, PathBuf};

    /// Name of the rendezvous FIFO inside the endpoint directory.
    pub const CONNECT: &str = "connect";
    /// Name of the owner lock inside the endpoint directory.
    pub const LOCK: &str = "lock";
    /// Suffix of a client's request FIFO.
    pub const C2S: &str = "c2s";
    /// Suffix of a client's reply FIFO.
    pub const S2C: &str = "s2c";

    /// The FIFO pair of client `id` in `dir`: (request FIFO, reply FIFO).
    pub fn pair_paths(dir: &Path, id: &str) -> (PathBuf, PathBuf) {
        (
            dir.join(format!("{id}.{C2S}")),
            dir.join(format!("{id}.{S2C}")),
        )
    }

    /// Whether `id` has the `<digits>-<digits>` form (so it cannot name another path).
    pub fn valid_id(id: &str) -> bool {
        let Some((pid, n)) = id.split_once('-') else {
            return false;
        };
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        digits(pid) && digits(n)
    }

    /// Whether a directory entry is a client FIFO a dead server may have left.
    pub fn is_client_fifo(name: &str) -> bool {
        name.rsplit_once('.')
            .is_some_and(|(id, suffix)| (suffix == C2S || suffix == S2C) && valid_id(id))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn ids_are_digits_dash_digits() {
            assert!(valid_id("1-0"));
            for bad in ["", "1", "-1", "1-", "a-1", "1-2-3", "1/2-3", "1-2\n"] {
                assert!(!valid_id(bad), "{bad:?}");
            }
            assert!(is_client_fifo("10-2.c2s") && is_client_fifo("10-2.s2c"));
            assert!(
                !is_client_fifo("connect") && !is_client_fifo("lock") && !is_client_fifo("x.c2s")
            );
        }
    }
}

/// Names of a UNIX socket endpoint (`unix:/run/calc.sock`), and of shm's rendezvous
/// socket.
pub(crate) mod uds {
    use std::path::{Path, PathBuf};

    /// The owner lock next to socket `path`: `<path>.lock`.
    pub(crate) fn lock_path(path: &Path) -> PathBuf {
        PathBuf::from(format!("{}.lock", path.display()))
    }
}
