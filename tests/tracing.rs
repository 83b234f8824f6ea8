//! With the `tracing` feature, the server and the client say what happens to their
//! connections through `tracing` events (target `ipc_rpc`): run with
//! `cargo test --features tracing --test tracing`. Without the feature this file is
//! empty: the events compile to nothing.
#![cfg(feature = "tracing")]

mod common;

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;
use rpc_core::log::recorder::{install, logged};

/// Child role: as another user, connects to the shared-memory rendezvous named in
/// `IPC_RPC_TEST_INTRUDER` and waits until the server closes it.
fn intruder_child() {
    let Ok(name) = std::env::var("IPC_RPC_TEST_INTRUDER") else {
        return;
    };
    let mut s = transports::test_util::shm::connect_rendezvous(&name).unwrap();
    let _ = std::io::Read::read_to_end(&mut s, &mut Vec::new());
    std::process::exit(0);
}

/// A user the endpoint does not allow is refused at once, and the server says so.
#[test]
fn a_refused_user_is_reported() {
    use std::os::unix::process::CommandExt;
    intruder_child();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to connect as another user");
        return;
    }
    install();
    let ep = Transport::shm.endpoint();
    let server = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).unwrap();
    let name = ep.endpoint.kind().name().unwrap().to_owned();
    let status = match std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_refused_user_is_reported", "--test-threads=1"])
        .env("IPC_RPC_TEST_INTRUDER", &name)
        .uid(65534)
        .gid(65534)
        .current_dir("/")
        .status()
    {
        Ok(status) => status,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            server.shutdown();
            eprintln!(
                "skipped: uid 65534 cannot run this test binary ({e}): its directory is private"
            );
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert!(status.success());
    logged(&[
        "WARN ipc_rpc:",
        &name,
        "connection refused: its user is neither the server's nor one `allow_uid` names",
        "peer_uid=Some(65534)",
    ]);
    server.shutdown();
}

#[test]
fn servers_and_clients_report_what_happens_to_their_connections() {
    install();
    let ep = Transport::unix.endpoint();
    let server = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).unwrap();
    let at = server.endpoint();
    let shown = at.to_string();

    // Connects, on both sides.
    let client = ProbeClient::connect(&at).unwrap();
    logged(&["INFO ipc_rpc:", "ipc_rpc: connected", &shown]);
    logged(&[
        "INFO ipc_rpc:",
        "ipc_rpc: connection opened",
        "peer_uid=Some(",
    ]);

    // A handler's panic.
    assert!(client.panic_now("on purpose".into()).is_err());
    logged(&["ERROR ipc_rpc:", "handler panicked", "on purpose"]);

    // A call that times out.
    let hurried = client.with_timeout(Duration::from_millis(20));
    assert!(hurried.sleep_ms(300).is_err());
    logged(&["INFO ipc_rpc:", "call timed out"]);

    // A handshake rejected, and why.
    assert!(OtherClient::connect(&at).is_err());
    logged(&[
        "WARN ipc_rpc:",
        "handshake rejected: the client wants service `Other`",
    ]);
    logged(&["WARN ipc_rpc:", "ipc_rpc: connect failed", "incompatible"]);

    // A frame over the server's limit ends that connection only.
    let ipc_rpc::EndpointKind::Unix { path, .. } = at.kind() else {
        unreachable!()
    };
    let mut raw = UnixStream::connect(path).unwrap();
    rpc_core::framing::write_frame(&mut raw, &probe_hello()).unwrap();
    raw.write_all(&(1u32 << 30).to_le_bytes()).unwrap();
    logged(&["WARN ipc_rpc:", "connection ended", "exceeds"]);

    // Closed connections.
    drop(client);
    logged(&["INFO ipc_rpc:", "ipc_rpc: connection closed"]);
    assert_eq!(ProbeClient::connect(&at).unwrap().add(1, 2).unwrap(), 3);
    server.shutdown();

    // Connecting to nothing.
    assert!(ProbeClient::connect(&at).is_err());
    logged(&["WARN ipc_rpc:", "ipc_rpc: connect failed", "no server"]);
}

/// A client over `max_connections` is refused, and the server says so.
#[test]
fn a_refusal_at_max_connections_is_reported() {
    install();
    let ep = Transport::unix.endpoint_with("max_connections=1");
    let server = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).unwrap();
    let first = ProbeClient::connect(&server.endpoint()).unwrap();
    assert_eq!(first.add(1, 1).unwrap(), 2);
    assert!(ProbeClient::connect(&server.endpoint()).is_err());
    logged(&[
        "WARN ipc_rpc:",
        "connection refused: server at max_connections=1",
    ]);
    drop(first);
    server.shutdown();
}
