//! Internals for the workspace's own tests, benchmarks and fuzz targets (feature
//! `test-util`, off by default). Not public API: anything here may change or go in
//! any release.

/// Shared-memory internals.
pub mod shm {
    /// The ring's index arithmetic.
    pub mod index {
        pub use crate::shm::index::*;
    }

    /// The segment layout.
    pub mod layout {
        pub use crate::shm::layout::*;
    }

    pub use crate::shm::replay::{Peer, receive};

    /// The segment's descriptor on the client side of `t`, which created it.
    pub fn segment_fd(t: &crate::ShmTransport) -> Option<std::os::fd::BorrowedFd<'_>> {
        t.segment_fd()
    }

    /// A plain connection to the rendezvous socket of `shm:<name>` (`name` with or
    /// without its leading `/`), before any set-up request: for tests that play a
    /// hostile or silent client.
    ///
    /// # Errors
    ///
    /// As `connect(2)`: refused when no server listens.
    pub fn connect_rendezvous(name: &str) -> std::io::Result<std::os::unix::net::UnixStream> {
        let names = crate::names::shm::Names::new(name, "test")
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let addr = nix::sys::socket::UnixAddr::new_abstract(names.rendezvous().as_bytes())?;
        crate::socket::connect_unix(&addr, std::time::Duration::from_secs(5))
    }

    /// `t`'s end of its rendezvous socket, the doorbell of a peer parked in a poller.
    pub fn socket_fd(t: &crate::ShmTransport) -> std::os::fd::BorrowedFd<'_> {
        t.socket_fd()
    }
}

/// FIFO internals.
pub mod fifo {
    /// The endpoint directory's layout and the connect request.
    pub mod rendezvous {
        pub use crate::fifo::rendezvous::*;
        pub use crate::names::fifo::{
            C2S, CONNECT, LOCK, S2C, is_client_fifo, pair_paths, valid_id,
        };
    }
}

/// POSIX message queue internals.
pub mod mq {
    /// Frames split into messages and joined again.
    pub mod chunk {
        pub use crate::mq::chunk::{Assembler, MIN_MSGSIZE, Step, split_parts};
    }
}

/// Waiting the way a server's poller does, for tests of `prepare_wait` and `setup_wait`.
pub mod wait {
    use std::os::fd::{AsFd, OwnedFd};
    use std::time::{Duration, Instant};

    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use rpc_core::WaitFds;

    /// Copies of a receiver's wait descriptors (the same open files), so that a test
    /// can poll them while it goes on using the receiver.
    ///
    /// # Panics
    ///
    /// If a descriptor cannot be duplicated.
    pub fn owned(fds: WaitFds<'_>) -> Vec<OwnedFd> {
        fds.iter()
            .map(|fd| fd.try_clone_to_owned().expect("dup a wait descriptor"))
            .collect()
    }

    /// Whether any of `fds` is readable (or reports hang-up or an error) within `ms`
    /// milliseconds: what a server's poller would see.
    ///
    /// # Panics
    ///
    /// If `poll` fails otherwise than by an interruption.
    pub fn readable(fds: &[OwnedFd], ms: u16) -> bool {
        let mut polled: Vec<_> = fds
            .iter()
            .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        let end = Instant::now() + Duration::from_millis(ms.into());
        loop {
            let left = end.saturating_duration_since(Instant::now()).as_millis() as u16;
            match poll(&mut polled, PollTimeout::from(left)) {
                Ok(n) => return n > 0,
                Err(nix::errno::Errno::EINTR) if Instant::now() < end => {}
                Err(e) => panic!("poll: {e}"),
            }
        }
    }
}

/// A client process for tests that `kill -9` their peer: the test binary re-executed
/// for one test, which connects, sends one frame (`hello`), says `READY` and waits to be
/// killed.
pub mod killed_client {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use rpc_core::Endpoint;

    /// The environment variable that names the endpoint the child connects to.
    const VAR: &str = "IPC_RPC_TEST_KILLED_CLIENT";

    /// In the child (the variable is set): plays the client, then exits; elsewhere
    /// returns at once. Call it first in the test that spawns the child.
    ///
    /// # Panics
    ///
    /// If the child cannot connect or send.
    pub fn role() {
        let Ok(endpoint) = std::env::var(VAR) else {
            return;
        };
        let mut parts = crate::connect(&endpoint.parse().expect("endpoint"))
            .expect("connect")
            .split()
            .expect("split");
        parts.sender.send(b"hello").expect("send hello");
        println!("READY");
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(0);
    }

    /// Starts the child for test `test` (its full libtest name), connecting to
    /// `endpoint`.
    ///
    /// # Panics
    ///
    /// If the process cannot start.
    pub fn spawn(test: &str, endpoint: &Endpoint) -> Child {
        Command::new(std::env::current_exe().expect("current exe"))
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(VAR, endpoint.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the client")
    }

    /// Waits until the child has sent its frame and says `READY`.
    ///
    /// # Panics
    ///
    /// If it ends first.
    pub fn wait_ready(child: &mut Child) {
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        while !lines
            .next()
            .expect("child output")
            .expect("child output")
            .contains("READY")
        {}
    }
}

/// The environment variable that tags the named objects of one test run (CI sets it):
/// the leftovers check then looks only at objects carrying it, so that another ipc-rpc
/// program on the machine cannot fail the run.
pub const RUN_TAG_VAR: &str = "IPC_RPC_RUN_TAG";

/// What this process puts in the names of the objects its tests create: the run's tag
/// (empty outside CI) then the pid, e.g. `ci4711p1234`.
pub fn run_id() -> String {
    let tag = std::env::var(RUN_TAG_VAR).unwrap_or_default();
    format!("{tag}{}", std::process::id())
}
