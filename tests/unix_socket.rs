//! Behaviour only the UNIX socket transport has: file permissions, stale-file
//! reclaim, refusing to replace what is not a socket, cleanup at shutdown.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

use common::*;
use ipc_rpc::{Endpoint, ServeError};

const WATCHDOG: Duration = Duration::from_secs(30);

#[test]
fn socket_and_lock_files_are_owner_only_and_removed_at_shutdown() {
    watchdog(WATCHDOG, || {
        let dir = unique_dir();
        let path = dir.join("calc.sock");
        let endpoint = Endpoint::unix(&path);
        let server = ipc_rpc::serve(&endpoint, ProbeServer::new(ProbeImpl)).unwrap();
        for file in [path.clone(), dir.join("calc.sock.lock")] {
            let meta = std::fs::metadata(&file).unwrap();
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o600,
                "{}",
                file.display()
            );
        }
        assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());
        server.shutdown();
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        std::fs::remove_dir(&dir).unwrap();
    });
}

#[test]
fn stale_socket_of_killed_server_is_replaced_at_bind() {
    serve_if_child();
    watchdog(WATCHDOG, || {
        let ep = Transport::unix.endpoint();
        let mut child = ChildServer::spawn(
            "stale_socket_of_killed_server_is_replaced_at_bind",
            &ep.endpoint,
        );
        let err = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).unwrap_err();
        assert!(matches!(err, ServeError::AddrInUse { .. }), "{err:?}");
        child.kill();
        // The killed server left its socket and lock files; binding takes them over.
        let server = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).unwrap();
        let client = ProbeClient::connect(&server.endpoint()).unwrap();
        assert_eq!(client.pid().unwrap(), std::process::id());
        server.shutdown();
    });
}

#[test]
fn path_that_is_not_a_socket_is_never_replaced() {
    watchdog(WATCHDOG, || {
        let dir = unique_dir();
        let path = dir.join("precious.txt");
        std::fs::write(&path, b"user data").unwrap();
        let err = ipc_rpc::serve(&Endpoint::unix(&path), ProbeServer::new(ProbeImpl)).unwrap_err();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(chain.contains("not a socket"), "{chain}");
        assert_eq!(std::fs::read(&path).unwrap(), b"user data");
        assert!(
            !dir.join("precious.txt.lock").exists(),
            "the lock file is removed on failure"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn missing_directory_is_reported() {
    let dir = unique_dir();
    let endpoint = Endpoint::unix(dir.join("no/such/dir/x.sock"));
    let err = ipc_rpc::serve(&endpoint, ProbeServer::new(ProbeImpl)).unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("does not exist; create it first"), "{chain}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `wait_for_signal` handles the first SIGTERM (a graceful shutdown, which waits for a
/// call in flight) and puts the default disposition back: a second SIGTERM during that
/// shutdown ends the process at once.
#[test]
fn a_second_signal_during_a_slow_shutdown_ends_the_server_at_once() {
    use std::os::unix::process::ExitStatusExt;
    use std::time::Instant;

    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    serve_if_child();
    let test = "a_second_signal_during_a_slow_shutdown_ends_the_server_at_once";
    watchdog(Duration::from_secs(30), move || {
        let ep = Transport::unix.endpoint();
        let (mut child, _lines, bound) = spawn_signal_server(test, &ep.endpoint);
        let client = ProbeClient::connect(&bound).unwrap();
        // A call that keeps the graceful shutdown waiting (its grace is 2 s).
        let slow = std::thread::spawn(move || client.sleep_ms(1500));
        std::thread::sleep(Duration::from_millis(100));
        let pid = Pid::from_raw(child.id() as i32);
        kill(pid, Signal::SIGTERM).unwrap();
        // The first signal was taken (and the default disposition put back) once the
        // shutdown removed the socket file; the call in flight keeps it going.
        let ipc_rpc::EndpointKind::Unix { path, .. } = bound.kind() else {
            unreachable!()
        };
        let until = Instant::now() + Duration::from_secs(5);
        while std::path::Path::new(path).exists() {
            assert!(Instant::now() < until, "the first SIGTERM was not taken");
            std::thread::sleep(Duration::from_millis(5));
        }
        let second = Instant::now();
        kill(pid, Signal::SIGTERM).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32), "{status:?}");
        assert!(
            second.elapsed() < Duration::from_millis(1000),
            "{:?}",
            second.elapsed()
        );
        // The call in flight lost its server.
        assert!(slow.join().unwrap().is_err());
    });
}
