//! Every name the mq transport puts in the OS, built and checked in one place.
//!
//! For the endpoint `mq:/calc`:
//!
//! | object | name |
//! |---|---|
//! | rendezvous queue (the server reads connect requests) | `/calc` |
//! | client → server queue of one connection | `/calc.<pid>.<start>.<n>.c2s` |
//! | server → client queue of one connection | `/calc.<pid>.<start>.<n>.s2c` |
//! | the server's owner lock (holds `<pid> <start>`) | `/dev/shm/ipc-rpc-mq.calc.lock` |
//!
//! `<pid>` and `<start>` identify the client process (its pid and its start time in
//! clock ticks since boot, field 22 of `/proc/<pid>/stat`), `<n>` counts its
//! connections. The lock file lives in `/dev/shm`, or in the temp dir where there is
//! no `/dev/shm`. Every name fits `NAME_MAX` (255 bytes), which leaves at most
//! [`MAX_NAME`] bytes for the endpoint's own name.

use std::path::PathBuf;

use super::liveness::ProcessId;

/// `NAME_MAX` on Linux: the longest queue name after the `/` and the longest file name.
const NAME_MAX: usize = 255;

/// The longest per-connection suffix: `.` u32 `.` u64 `.` u32 `.c2s`.
const SUFFIX_MAX: usize = 1 + 10 + 1 + 20 + 1 + 10 + 4;

/// Lock file name around the endpoint's name.
const LOCK_PREFIX: &str = "ipc-rpc-mq.";
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
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("{LOCK_PREFIX}{}{LOCK_SUFFIX}", self.bare))
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
        assert!(LOCK_PREFIX.len() + MAX_NAME + LOCK_SUFFIX.len() <= NAME_MAX);
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
