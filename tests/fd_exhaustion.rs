//! A server out of file descriptors tells new clients so: their `connect` fails with
//! "server out of file descriptors" (not "closed the connection during the
//! handshake", nor a time-out), the server says it once on stderr, and it takes
//! connections again once some close.
//!
//! Shared-memory servers answer on their rendezvous socket (`ERR server out of file
//! descriptors: …`). FIFO servers cannot send a refusal (they would need descriptors
//! for the client's FIFOs): they remove the client's FIFOs, and the client's error
//! names the probable cause. Message-queue servers answer the client's connect request
//! with an "out of descriptors" answer, sent with their spare descriptor freed.
//!
//! The server runs in a child process (this test binary re-executed) whose
//! `RLIMIT_NOFILE` is lowered before it serves.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use common::*;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

const WATCHDOG: Duration = Duration::from_secs(60);

/// The child's role: serve `Probe` with few descriptors.
const ROLE: &str = "fd-limited-server";

/// The child's descriptor limit: a few dozen connections exhaust it.
const LIMIT: u64 = 64;

/// What a refused client's error says.
const MESSAGE: &str = "server out of file descriptors";

/// In the child: lowers the descriptor limit, serves `Probe` on the endpoint in
/// `ENDPOINT_VAR` until stdin closes, then exits. Elsewhere: returns.
fn serve_if_limited_child() {
    if std::env::var(ROLE_VAR).as_deref() != Ok(ROLE) {
        return;
    }
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, LIMIT.min(hard), hard).expect("setrlimit");
    serve_probe_until_stdin_closes();
}

/// Exhausts a descriptor-limited server on `transport` with idle clients and checks
/// what the next clients are told, what the server logs, and that it recovers.
fn exhaust(transport: Transport, test_name: &str) {
    let ep = transport.endpoint();
    let mut server = ChildServer::spawn_as(test_name, &ep.endpoint, ROLE, Stdio::piped());
    let endpoint = server.endpoint.clone();
    let child = &mut server.child;
    let mut stderr = child.stderr.take().unwrap();
    let log = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mut clients = Vec::new();
    let first = loop {
        assert!(clients.len() < 4 * LIMIT as usize, "never ran out");
        match ProbeClient::connect(&endpoint) {
            Ok(c) => clients.push(c),
            Err(e) => break chain(&e),
        }
    };
    assert!(!clients.is_empty(), "not even one client: {first}");
    assert!(
        first.contains(MESSAGE),
        "after {} clients: {first}",
        clients.len()
    );
    assert!(first.contains("ulimit -n"), "{first}");
    for _ in 0..2 {
        let again = chain(&ProbeClient::connect(&endpoint).unwrap_err());
        assert!(again.contains(MESSAGE), "{again}");
    }
    // Room again: new clients are taken, and the held ones still work.
    let held = clients.len();
    clients.truncate(held / 2);
    // The server frees a closed client's descriptors once its connection thread sees
    // the end: retried for a moment.
    let retry_until = std::time::Instant::now() + Duration::from_secs(10);
    let fresh = loop {
        match ProbeClient::connect(&endpoint) {
            Ok(c) => break c,
            Err(e) if chain(&e).contains(MESSAGE) => {
                assert!(
                    std::time::Instant::now() < retry_until,
                    "still refused: {}",
                    chain(&e)
                );
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("connect once descriptors are free: {}", chain(&e)),
        }
    };
    assert_eq!(fresh.add(2, 3).unwrap(), 5);
    assert_eq!(clients[0].add(1, 1).unwrap(), 2);
    drop((fresh, clients));

    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "the limited server ended with {status}");
    let log = log.join().unwrap();
    assert_eq!(
        log.matches("out of file descriptors").count(),
        1,
        "the server should say it once per episode:\n{log}"
    );
}

#[test]
fn unix_clients_of_a_server_out_of_descriptors_are_told_so() {
    serve_if_limited_child();
    watchdog(WATCHDOG, || {
        exhaust(
            Transport::unix,
            "unix_clients_of_a_server_out_of_descriptors_are_told_so",
        );
    });
}

/// FIFO servers cannot answer a client they cannot open FIFOs for: they remove the
/// client's pair, and the client's connect names the probable cause.
#[test]
fn fifo_clients_of_a_server_out_of_descriptors_are_told_the_probable_cause() {
    serve_if_limited_child();
    watchdog(WATCHDOG, || {
        exhaust(
            Transport::fifo,
            "fifo_clients_of_a_server_out_of_descriptors_are_told_the_probable_cause",
        );
    });
}

#[test]
fn tcp_clients_of_a_server_out_of_descriptors_are_told_so() {
    serve_if_limited_child();
    watchdog(WATCHDOG, || {
        exhaust(
            Transport::tcp,
            "tcp_clients_of_a_server_out_of_descriptors_are_told_so",
        );
    });
}

#[test]
fn shm_clients_of_a_server_out_of_descriptors_are_told_so() {
    serve_if_limited_child();
    watchdog(WATCHDOG, || {
        exhaust(
            Transport::shm,
            "shm_clients_of_a_server_out_of_descriptors_are_told_so",
        );
    });
}

#[test]
fn mq_clients_of_a_server_out_of_descriptors_are_told_so() {
    serve_if_limited_child();
    watchdog(WATCHDOG, || {
        exhaust(
            Transport::mq,
            "mq_clients_of_a_server_out_of_descriptors_are_told_so",
        );
    });
}
