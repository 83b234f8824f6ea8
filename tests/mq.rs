//! Behaviour only the POSIX message-queue transport has: chunking through tiny
//! queues, many clients within the queue limits, timeouts in the middle of a chunked
//! frame, dead peers without an end-of-file, names left by killed processes, and an
//! empty queue namespace after every test.
//!
//! Listing the namespace needs the mqueue filesystem at `/dev/mqueue`; the tests mount
//! it when they can (as root) and otherwise print `skipped: <reason>` for the checks
//! that need it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ipc_rpc::{Endpoint, ServeError, TransportError};

const WATCHDOG: Duration = Duration::from_secs(30);

/// Where the queue namespace is mounted for listing.
const MQUEUE: &str = "/dev/mqueue";

/// Prefix of every queue name these tests make (then `<pid>-<n>`).
const PREFIX: &str = "ipc-rpc-mqtest";

/// Child roles of this file (besides `server`, handled by `common`).
const ROLE_CLIENT: &str = "mq-client";
const ROLE_SENDER: &str = "mq-sender";
const ROLE_LIMITED: &str = "mq-limited";

static NAMES: AtomicU32 = AtomicU32::new(0);

/// A fresh queue name for one test: `/ipc-rpc-mqtest-<pid>-<n>`.
fn unique_name() -> String {
    format!(
        "/{PREFIX}-{}-{}",
        transports::test_util::run_id(),
        NAMES.fetch_add(1, Ordering::Relaxed)
    )
}

fn endpoint(name: &str) -> Endpoint {
    format!("mq:{name}").parse().unwrap()
}

/// Whether the queue namespace can be listed; mounts it if needed (once).
fn namespace_listable() -> Result<(), String> {
    static MOUNTED: OnceLock<Result<(), String>> = OnceLock::new();
    MOUNTED
        .get_or_init(|| {
            let mounted = || {
                std::fs::read_to_string("/proc/mounts")
                    .map(|m| m.lines().any(|l| l.split(' ').nth(1) == Some(MQUEUE) && l.split(' ').nth(2) == Some("mqueue")))
                    .unwrap_or(false)
            };
            if mounted() {
                return Ok(());
            }
            let _ = std::fs::create_dir_all(MQUEUE);
            let out = Command::new("mount")
                .args(["-t", "mqueue", "none", MQUEUE])
                .output()
                .map_err(|e| format!("cannot run mount: {e}"))?;
            if mounted() {
                Ok(())
            } else {
                Err(format!(
                    "the mqueue filesystem is not mounted at {MQUEUE} and `mount -t mqueue none {MQUEUE}` failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        })
        .clone()
}

/// Queue names and lock files that belong to queue name `name` (`/x`): `x`, `x.*`.
fn leftovers(name: &str) -> Vec<String> {
    let bare = &name[1..];
    let mut found = Vec::new();
    let ours = |entry: &str| entry == bare || entry.starts_with(&format!("{bare}."));
    if let Ok(entries) = std::fs::read_dir(MQUEUE) {
        for e in entries.flatten() {
            let entry = e.file_name().to_string_lossy().into_owned();
            if ours(&entry) {
                found.push(format!("{MQUEUE}/{entry}"));
            }
        }
    }
    let lock = Path::new("/dev/shm").join(format!("ipc-rpc-mq.{bare}.lock"));
    if lock.exists() {
        found.push(lock.display().to_string());
    }
    found
}

/// Fails if anything of `name` is left in the queue namespace or as a lock file.
fn assert_nothing_left(name: &str) {
    match namespace_listable() {
        Ok(()) => {
            let left = leftovers(name);
            assert!(left.is_empty(), "left behind: {left:?}");
        }
        Err(reason) => eprintln!("skipped: nothing-left check for {name}: {reason}"),
    }
}

/// Waits up to 5 s for `cond`.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "not within 5 s: {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Descriptors this process holds on connection queues of `name` (`/x.…`).
fn open_connection_queues(name: &str) -> usize {
    let needle = format!("{name}.");
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path())
                .map(|t| t.to_string_lossy().contains(&needle))
                .unwrap_or(false)
        })
        .count()
}

/// Acts as a child of this file if started as one (see [`spawn_child`]); else returns.
fn child_roles() {
    serve_if_child();
    let role = std::env::var(ROLE_VAR).unwrap_or_default();
    if role.is_empty() {
        return;
    }
    let endpoint = Endpoint::from_env(ENDPOINT_VAR).expect("child endpoint");
    match role.as_str() {
        ROLE_CLIENT => {
            let client = ProbeClient::connect(&endpoint).expect("child connect");
            assert_eq!(client.add(1, 2).unwrap(), 3);
            println!("READY");
            while client.sleep_ms(300).is_ok() {}
        }
        ROLE_SENDER => {
            let mut parts = transports::connect(&endpoint)
                .expect("child connect")
                .split()
                .unwrap();
            println!("SENDING");
            parts.sender.send(&pattern(4 << 20)).expect("child send");
            println!("SENT");
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        }
        ROLE_LIMITED => {
            let err = ProbeClient::connect(&endpoint).unwrap_err();
            if matches!(err, ipc_rpc::RpcError::LimitReached { .. }) {
                println!("VARIANT LimitReached");
            }
            let mut chain = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(s) = source {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                source = s.source();
            }
            println!("ERR {chain}");
        }
        other => panic!("unknown test role {other}"),
    }
    std::process::exit(0);
}

/// A child process, killed and reaped if the test ends early.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Re-runs this test binary as `role` for test `test`, with `endpoint` (through the
/// bash command `wrapper`, if given); returns the child and its stdout lines.
fn spawn_child(
    test: &str,
    role: &str,
    endpoint: &Endpoint,
    wrapper: Option<&str>,
) -> (Kid, std::io::Lines<BufReader<ChildStdout>>) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match wrapper {
        Some(shell) => {
            let mut c = Command::new("bash");
            c.arg("-c").arg(shell).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let mut child = cmd
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env(ENDPOINT_VAR, endpoint.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (Kid(child), lines)
}

/// Reads lines until one contains `word`; returns what follows it.
fn wait_for(lines: &mut std::io::Lines<BufReader<ChildStdout>>, word: &str) -> String {
    for line in lines.by_ref() {
        let line = line.expect("child stdout");
        if let Some((_, rest)) = line.split_once(word) {
            return rest.trim().to_owned();
        }
    }
    panic!("the child exited before printing {word}");
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

#[test]
fn small_and_4mib_payloads_round_trip_through_chunking() {
    watchdog(WATCHDOG, || {
        let name = unique_name();
        let server = ipc_rpc::serve(&endpoint(&name), ProbeServer::new(ProbeImpl)).unwrap();
        let client = ProbeClient::connect(&server.endpoint()).unwrap();
        assert_eq!(client.add(2, 3).unwrap(), 5);
        for len in [0, 1, 8186, 8187, 8191, 8192, 8193, 65536, 4 << 20] {
            let payload = pattern(len);
            assert_eq!(client.echo(payload.clone()).unwrap(), payload, "len {len}");
        }
        assert_eq!(client.fill(3 << 20).unwrap(), vec![0xAB; 3 << 20]);
        assert_eq!(
            client.nested(sample_nested()).unwrap().name,
            "outer ✓ (seen)"
        );
        drop(client);
        server.shutdown();
        assert_nothing_left(&name);
    });
}

#[test]
fn clients_choose_their_queue_depth_and_message_size() {
    watchdog(WATCHDOG, || {
        let name = unique_name();
        let server = ipc_rpc::serve(&endpoint(&name), ProbeServer::new(ProbeImpl)).unwrap();
        for options in ["depth=4&msgsize=8192", "msgsize=64", "depth=2&msgsize=1024"] {
            let sized: Endpoint = format!("{}?{options}", server.endpoint()).parse().unwrap();
            let client = ProbeClient::connect(&sized).unwrap();
            for len in [0, 63, 8191, 100_000, 1 << 20] {
                let payload = pattern(len);
                assert_eq!(
                    client.echo(payload.clone()).unwrap(),
                    payload,
                    "{options}: {len} B"
                );
            }
            drop(client);
        }
        server.shutdown();
        assert_nothing_left(&name);
    });
}

#[test]
fn thirty_clients_at_once_fit_the_limits() {
    watchdog(WATCHDOG, || {
        let name = unique_name();
        let server = ipc_rpc::serve(&endpoint(&name), ProbeServer::new(ProbeImpl)).unwrap();
        let ep = server.endpoint();
        let barrier = Arc::new(Barrier::new(30));
        let threads: Vec<_> = (0..30i64)
            .map(|n| {
                let ep = ep.clone();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    let client = ProbeClient::connect(&ep).unwrap_or_else(|e| {
                        panic!("client {n}: {e}: {:?}", std::error::Error::source(&e))
                    });
                    barrier.wait();
                    for i in 0..50 {
                        assert_eq!(client.add(n, i).unwrap(), n + i);
                    }
                    let payload = pattern(20_000 + n as usize);
                    assert_eq!(client.echo(payload.clone()).unwrap(), payload);
                    client
                })
            })
            .collect();
        let clients: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(server.connection_count(), 30);
        drop(clients);
        eventually("the server saw all 30 clients go", || {
            server.connection_count() == 0
        });
        server.shutdown();
        assert_nothing_left(&name);
    });
}

#[test]
fn deadline_in_the_middle_of_a_chunked_frame_keeps_the_frame() {
    child_roles();
    watchdog(WATCHDOG, || {
        let name = unique_name();
        let ep = endpoint(&name);
        let mut listener = transports::listen(&ep).unwrap();
        let (mut child, mut lines) = spawn_child(
            "deadline_in_the_middle_of_a_chunked_frame_keeps_the_frame",
            ROLE_SENDER,
            &ep,
            None,
        );
        let mut parts = listener.accept().unwrap().split().unwrap();
        wait_for(&mut lines, "SENDING");
        // The sender queues the first chunk, then blocks on the full queue. Stopped
        // there, it cannot send the rest: our receive takes one chunk and times out.
        thread::sleep(Duration::from_millis(200));
        let pid = child.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-STOP", &pid])
                .status()
                .unwrap()
                .success()
        );
        let started = Instant::now();
        let err = parts
            .receiver
            .recv(Some(Instant::now() + Duration::from_millis(300)))
            .unwrap_err();
        assert!(matches!(err, TransportError::TimedOut), "{err:?}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(
            Command::new("kill")
                .args(["-CONT", &pid])
                .status()
                .unwrap()
                .success()
        );
        let frame = parts
            .receiver
            .recv(Some(Instant::now() + Duration::from_secs(10)))
            .unwrap()
            .into_contiguous();
        assert!(
            *frame == pattern(4 << 20),
            "the frame was not continued intact"
        );
        wait_for(&mut lines, "SENT");
        drop(child.0.stdin.take());
        child.0.wait().unwrap();
        // The child's end is gone: its FIN (or its exit) closes ours.
        let end = parts
            .receiver
            .recv(Some(Instant::now() + Duration::from_secs(5)));
        assert!(matches!(end, Err(TransportError::Closed)), "{end:?}");
        drop(parts);
        drop(listener);
        assert_nothing_left(&name);
    });
}

#[test]
fn server_killed_mid_call_is_disconnected_and_its_names_reclaimed() {
    child_roles();
    watchdog(WATCHDOG, || {
        let name = unique_name();
        let mut child = ChildServer::spawn(
            "server_killed_mid_call_is_disconnected_and_its_names_reclaimed",
            &endpoint(&name),
        );
        let client = ProbeClient::connect(&child.endpoint).unwrap();
        assert_ne!(client.pid().unwrap(), std::process::id());
        let in_flight = {
            let client = client.clone();
            thread::spawn(move || client.sleep_ms(60_000))
        };
        thread::sleep(Duration::from_millis(200));
        let killed_at = Instant::now();
        child.kill();
        let err = in_flight.join().unwrap().unwrap_err();
        let noticed = killed_at.elapsed();
        assert!(err.is_disconnected(), "{err:?}");
        assert!(noticed < Duration::from_secs(5), "took {noticed:?}");
        eprintln!("mq: a SIGKILLed server was noticed after {noticed:?}");
        assert!(client.add(1, 1).unwrap_err().is_disconnected());
        // The client saw the server die and removed its queue and lock file.
        assert_nothing_left(&name);
        let again = ProbeClient::connect(&endpoint(&name)).unwrap_err();
        let chain = format!("{again}: {}", std::error::Error::source(&again).unwrap());
        assert!(chain.contains("no server"), "{chain}");
    });
}

#[test]
fn killed_client_is_noticed_and_its_queues_are_freed() {
    child_roles();
    watchdog(WATCHDOG, || {
        let name = unique_name();
        let server = ipc_rpc::serve(&endpoint(&name), ProbeServer::new(ProbeImpl)).unwrap();
        let (mut child, mut lines) = spawn_child(
            "killed_client_is_noticed_and_its_queues_are_freed",
            ROLE_CLIENT,
            &server.endpoint(),
            None,
        );
        wait_for(&mut lines, "READY");
        assert_eq!(server.connection_count(), 1);
        assert_eq!(open_connection_queues(&name), 3, "c2s twice, s2c once");
        if namespace_listable().is_ok() {
            let left = leftovers(&name);
            assert_eq!(
                left.len(),
                2,
                "only the rendezvous queue and lock: {left:?}"
            );
        }
        // The child is in the middle of a 300 ms call.
        thread::sleep(Duration::from_millis(150));
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        eventually("the server noticed the killed client", || {
            server.connection_count() == 0
        });
        eventually("the server closed the client's queues", || {
            open_connection_queues(&name) == 0
        });
        server.shutdown();
        assert_nothing_left(&name);
    });
}

#[test]
fn stale_names_of_a_killed_server_are_reclaimed_at_bind() {
    child_roles();
    watchdog(WATCHDOG, || {
        if let Err(reason) = namespace_listable() {
            eprintln!("skipped: stale_names_of_a_killed_server_are_reclaimed_at_bind: {reason}");
            return;
        }
        let name = unique_name();
        let bare = &name[1..];
        let ep = endpoint(&name);
        let mut child =
            ChildServer::spawn("stale_names_of_a_killed_server_are_reclaimed_at_bind", &ep);
        child.kill();
        assert_eq!(
            leftovers(&name).len(),
            2,
            "a killed server leaves its queue and lock file"
        );
        // Names of clients caught connecting: one whose process is gone (our pid with
        // another start time), one that is alive (us).
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let start: u64 = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .nth(19)
            .unwrap()
            .parse()
            .unwrap();
        let me = std::process::id();
        let dead = format!("{MQUEUE}/{bare}.{me}.{}.0.c2s", start + 1);
        let live = format!("{MQUEUE}/{bare}.{me}.{start}.0.c2s");
        std::fs::File::create(&dead).unwrap();
        std::fs::File::create(&live).unwrap();

        let server = ipc_rpc::serve(&ep, ProbeServer::new(ProbeImpl)).unwrap();
        assert!(!Path::new(&dead).exists(), "a dead client's queue was kept");
        assert!(
            Path::new(&live).exists(),
            "a live client's queue was removed"
        );
        std::fs::remove_file(&live).unwrap();
        let client = ProbeClient::connect(&server.endpoint()).unwrap();
        assert_eq!(client.pid().unwrap(), me);
        drop(client);
        server.shutdown();
        assert_nothing_left(&name);
    });
}

#[test]
fn a_live_server_name_is_addr_in_use() {
    child_roles();
    watchdog(WATCHDOG, || {
        let name = unique_name();
        let ep = endpoint(&name);
        let mut child = ChildServer::spawn("a_live_server_name_is_addr_in_use", &ep);
        let err = ipc_rpc::serve(&ep, ProbeServer::new(ProbeImpl)).unwrap_err();
        assert!(matches!(err, ServeError::AddrInUse { .. }), "{err:?}");
        assert!(err.to_string().contains("in use by a live server"), "{err}");
        let client = ProbeClient::connect(&ep).unwrap();
        assert_ne!(
            client.pid().unwrap(),
            std::process::id(),
            "the first server is untouched"
        );
        drop(client);
        drop(child.child.stdin.take());
        child.child.wait().unwrap();
        assert_nothing_left(&name);
        let server = ipc_rpc::serve(&ep, ProbeServer::new(ProbeImpl)).unwrap();
        let in_process = ipc_rpc::serve(&ep, ProbeServer::new(ProbeImpl)).unwrap_err();
        assert!(
            matches!(in_process, ServeError::AddrInUse { .. }),
            "{in_process:?}"
        );
        server.shutdown();
        assert_nothing_left(&name);
    });
}

#[test]
fn queue_memory_limit_refusal_says_how_to_raise_it() {
    child_roles();
    watchdog(WATCHDOG, || {
        let name = unique_name();
        let server = ipc_rpc::serve(&endpoint(&name), ProbeServer::new(ProbeImpl)).unwrap();
        // A client whose RLIMIT_MSGQUEUE is 0 cannot create its queue pair.
        let (mut child, mut lines) = spawn_child(
            "queue_memory_limit_refusal_says_how_to_raise_it",
            ROLE_LIMITED,
            &server.endpoint(),
            Some("ulimit -q 0 && exec \"$0\" \"$@\""),
        );
        wait_for(&mut lines, "VARIANT LimitReached");
        let chain = wait_for(&mut lines, "ERR");
        child.0.wait().unwrap();
        assert!(
            chain.contains(&format!("cannot connect to mq:{name}")),
            "{chain}"
        );
        assert!(chain.contains("RLIMIT_MSGQUEUE (0 bytes"), "{chain}");
        assert!(chain.contains("ulimit -q"), "{chain}");
        assert_eq!(server.connection_count(), 0);
        server.shutdown();
        assert_nothing_left(&name);
    });
}

#[test]
fn connect_without_server_and_oversized_names_fail_clearly() {
    let name = unique_name();
    let err = ProbeClient::connect(&endpoint(&name)).unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        chain.contains("no server") && chain.contains(&name),
        "{chain}"
    );
    let long = format!("/{}", "n".repeat(transports::mq::MAX_NAME + 1));
    let err = ipc_rpc::serve(&endpoint(&long), ProbeServer::new(ProbeImpl)).unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        chain.contains(&format!("at most {}", transports::mq::MAX_NAME)),
        "{chain}"
    );
    assert_nothing_left(&name);
}

#[test]
fn closer_wakes_a_blocked_receive_promptly() {
    watchdog(WATCHDOG, || {
        let name = unique_name();
        let ep = endpoint(&name);
        let mut listener = transports::listen(&ep).unwrap();
        let connecting = thread::spawn({
            let ep = ep.clone();
            move || transports::connect(&ep).unwrap().split().unwrap()
        });
        let server_end = listener.accept().unwrap().split().unwrap();
        let rpc_core::Parts {
            sender,
            mut receiver,
            closer,
        } = connecting.join().unwrap();
        let blocked = thread::spawn(move || {
            let started = Instant::now();
            (
                receiver
                    .recv(None)
                    .map(|f| f.into_contiguous().into_owned()),
                started.elapsed(),
            )
        });
        thread::sleep(Duration::from_millis(50));
        let closed_at = Instant::now();
        closer.close();
        let (result, _) = blocked.join().unwrap();
        assert!(matches!(result, Err(TransportError::Closed)), "{result:?}");
        assert!(
            closed_at.elapsed() < Duration::from_millis(150),
            "{:?}",
            closed_at.elapsed()
        );
        drop((sender, closer, server_end));
        drop(listener);
        assert_nothing_left(&name);
    });
}

#[test]
fn late_large_reply_does_not_block_the_next_large_request() {
    watchdog(WATCHDOG, || {
        let name = unique_name();
        let server = ipc_rpc::serve(&endpoint(&name), ProbeServer::new(ProbeImpl)).unwrap();
        let client = ProbeClient::connect(&server.endpoint()).unwrap();
        // Gives up while the 4 MiB reply still streams through the one-message queue:
        // the server blocks on it, and our next request must still get through.
        let late = client.with_timeout(Duration::from_millis(1)).fill(4 << 20);
        assert!(
            matches!(late, Err(ipc_rpc::RpcError::Timeout { .. }) | Ok(_)),
            "{late:?}"
        );
        let payload = pattern(4 << 20);
        assert_eq!(client.echo(payload.clone()).unwrap(), payload);
        assert_eq!(client.add(1, 2).unwrap(), 3);
        drop(client);
        server.shutdown();
        assert_nothing_left(&name);
    });
}

#[test]
fn client_dropped_during_a_large_reply_frees_the_server_side() {
    watchdog(WATCHDOG, || {
        let name = unique_name();
        let server = ipc_rpc::serve(&endpoint(&name), ProbeServer::new(ProbeImpl)).unwrap();
        let client = ProbeClient::connect(&server.endpoint()).unwrap();
        let _ = client.with_timeout(Duration::from_millis(1)).fill(4 << 20);
        drop(client);
        eventually("the server's connection ended", || {
            server.connection_count() == 0
        });
        eventually("the server closed the client's queues", || {
            open_connection_queues(&name) == 0
        });
        server.shutdown();
        assert_nothing_left(&name);
    });
}
