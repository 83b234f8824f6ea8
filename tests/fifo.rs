//! Behaviour only the FIFO transport has: an owner-only endpoint directory, per-client
//! FIFOs that vanish once connected, stale reclaim, nothing left behind.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use ipc_rpc::{Endpoint, ServeError};

const WATCHDOG: Duration = Duration::from_secs(30);

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn endpoint_directory_is_private_and_clients_leave_no_files() {
    watchdog(WATCHDOG, || {
        let base = unique_dir();
        let dir = base.join("calc");
        let server = ipc_rpc::serve(
            &Endpoint::new(ipc_rpc::EndpointKind::Fifo {
                path: dir.display().to_string(),
            }),
            ProbeServer::new(ProbeImpl),
        )
        .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("connect")), 0o600);
        assert!(
            std::fs::metadata(dir.join("connect"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        let clients: Vec<_> = (0..5)
            .map(|_| ProbeClient::connect(&server.endpoint()).unwrap())
            .collect();
        for (i, c) in clients.iter().enumerate() {
            assert_eq!(c.add(i as i64, 1).unwrap(), i as i64 + 1);
        }
        // Connected clients' FIFOs are already unlinked: only the lock and rendezvous remain.
        assert_eq!(names_in(&dir), ["connect", "lock"]);
        drop(clients);
        server.shutdown();
        assert!(!dir.exists(), "left behind: {:?}", names_in(&dir));
        std::fs::remove_dir(&base).unwrap();
    });
}

#[test]
fn stale_endpoint_of_killed_server_is_reclaimed() {
    serve_if_child();
    watchdog(WATCHDOG, || {
        let ep = Transport::fifo.endpoint();
        let mut child =
            ChildServer::spawn("stale_endpoint_of_killed_server_is_reclaimed", &ep.endpoint);
        let err = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).unwrap_err();
        assert!(matches!(err, ServeError::AddrInUse { .. }), "{err:?}");
        child.kill();
        // The dead server's rendezvous FIFO stays; a client is told nobody reads it.
        let err = ProbeClient::connect(&ep.endpoint).unwrap_err();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(chain.contains("no server is reading"), "{chain}");
        let server = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).unwrap();
        let client = ProbeClient::connect(&server.endpoint()).unwrap();
        assert_eq!(client.pid().unwrap(), std::process::id());
        drop(client);
        server.shutdown();
    });
}

#[test]
fn client_killed_mid_call_leaves_nothing_and_server_goes_on() {
    if let Ok(ep) = std::env::var("IPC_RPC_TEST_CLIENT_OF") {
        // Child role: a client that calls and then gets killed mid-call.
        let client = ProbeClient::connect(&ep.parse().unwrap()).unwrap();
        println!("CALLING");
        let _ = client.sleep_ms(3_000);
        unreachable!("killed before the reply");
    }
    watchdog(WATCHDOG, || {
        let ep = Transport::fifo.endpoint();
        let server = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).unwrap();
        let dir = match server.endpoint().kind() {
            ipc_rpc::EndpointKind::Fifo { path } => std::path::PathBuf::from(path),
            _ => unreachable!(),
        };
        let mut child = spawn_until_marker(
            "client_killed_mid_call_leaves_nothing_and_server_goes_on",
            "IPC_RPC_TEST_CLIENT_OF",
            &server.endpoint(),
            "CALLING",
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.connection_count() != 1 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // The connection pins nothing in the directory, and others are served while
        // the dead client's handler still sleeps.
        assert_eq!(names_in(&dir), ["connect", "lock"]);
        let other = ProbeClient::connect(&server.endpoint()).unwrap();
        assert_eq!(other.add(2, 2).unwrap(), 4);
        drop(other);
        // Shutdown lets the orphaned call finish (its reply then hits a closed pipe).
        server.shutdown();
        assert!(!dir.exists());
    });
}

#[test]
fn path_that_is_a_file_is_refused() {
    let base = unique_dir();
    let file = base.join("not-a-dir");
    std::fs::write(&file, b"keep me").unwrap();
    let ep = Endpoint::new(ipc_rpc::EndpointKind::Fifo {
        path: file.display().to_string(),
    });
    let err = ipc_rpc::serve(&ep, ProbeServer::new(ProbeImpl)).unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("not a directory"), "{chain}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    std::fs::remove_dir_all(&base).unwrap();
}

/// Servers racing to create the same fresh endpoint directory: exactly one wins and
/// every loser is told `AddrInUse`, never "create the endpoint directory: File exists"
/// (the loser's `mkdir` failing because the winner made the directory a moment earlier).
#[test]
fn servers_racing_on_a_new_directory_lose_with_addr_in_use() {
    const RACES: usize = 30;
    const SERVERS: usize = 4;
    watchdog(WATCHDOG, || {
        let mut failures = Vec::new();
        let mut bad_races = 0;
        for race in 0..RACES {
            let before = failures.len();
            let base = unique_dir();
            let ep = Endpoint::new(ipc_rpc::EndpointKind::Fifo {
                path: base.join("calc").display().to_string(),
            });
            let start = std::sync::Arc::new(std::sync::Barrier::new(SERVERS));
            let racers: Vec<_> = (0..SERVERS)
                .map(|_| {
                    let (ep, start) = (ep.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        ipc_rpc::serve(&ep, ProbeServer::new(ProbeImpl))
                    })
                })
                .collect();
            let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
            let mut winners = Vec::new();
            for result in results {
                match result {
                    Ok(server) => winners.push(server),
                    Err(ServeError::AddrInUse { .. }) => {}
                    Err(other) => {
                        failures.push(format!("race {race}: a loser got {}", chain(&other)))
                    }
                }
            }
            if winners.len() != 1 {
                failures.push(format!("race {race}: {} winners", winners.len()));
            }
            for server in winners {
                server.shutdown();
            }
            std::fs::remove_dir(&base).unwrap();
            bad_races += usize::from(failures.len() > before);
        }
        assert!(
            failures.is_empty(),
            "{bad_races} of {RACES} races went wrong:\n{}",
            failures.join("\n")
        );
    });
}
