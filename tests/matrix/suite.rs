//! The contract every transport keeps, as tests generic over `Transport`. Each takes
//! the transport and its own libtest name (to re-run itself as a child server).
//!
//! Tests that need a second client or an address (`pipe` has neither) say
//! `skipped: …` on stderr for that transport.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use ipc_rpc::{RpcError, ServeError};

use crate::common::*;
pub use crate::push::*;

const WATCHDOG: Duration = Duration::from_secs(30);

fn skip(t: Transport, why: &str) {
    eprintln!("skipped: {t:?}: {why}");
}

pub fn round_trip_nested_values(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let value = sample_nested();
        let back = f.client.nested(value.clone()).unwrap();
        assert_eq!(back.name, "outer ✓ (seen)");
        assert_eq!(
            Nested {
                name: value.name.clone(),
                ..back
            },
            value
        );
        assert_eq!(f.client.add(i64::MAX, 1).unwrap(), i64::MIN);
        f.shutdown();
    });
}

pub fn empty_and_4mib_payloads_round_trip(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        assert_eq!(f.client.echo(Vec::new()).unwrap(), Vec::<u8>::new());
        let big: Vec<u8> = (0..4u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        assert_eq!(f.client.echo(big.clone()).unwrap(), big);
        assert_eq!(f.client.fill(3 << 20).unwrap().len(), 3 << 20);
        let value = Nested {
            name: "x".repeat(100_000),
            ..sample_nested()
        };
        assert_eq!(
            f.client.nested(value.clone()).unwrap().name.len(),
            value.name.len() + " (seen)".len()
        );
        f.shutdown();
    });
}

/// Bytes that differ along the buffer and between `seed`s.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

/// Byte strings around the size from which stream transports send them apart from the
/// frame (and receive them into their own vector), as the last argument, as another
/// argument, inside a tuple, and as replies handed from one calling thread to another.
pub fn large_byte_strings_arrive_intact_in_any_position(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let split = rpc_core::framing::SPLIT_MIN;
        for len in [split - 8, split - 1, split, split + 1, 1 << 20] {
            let payload = pattern(len, len as u8);
            assert_eq!(f.client.echo(payload.clone()).unwrap(), payload, "{len} B");
        }
        let (front, back) = (pattern(200_000, 1), pattern(split + 3, 2));
        let joined = [&front[..], &back[..]].concat();
        assert_eq!(
            f.client.splice(front.clone(), 7, back.clone()).unwrap(),
            (7, joined)
        );
        assert_eq!(
            f.client.splice(Vec::new(), 8, back.clone()).unwrap(),
            (8, back)
        );
        let threads: Vec<_> = (0..4u8)
            .map(|n| {
                let client = f.client.clone();
                thread::spawn(move || {
                    for i in 0..12 {
                        let payload = pattern(split + 1000 * i + usize::from(n), n);
                        assert_eq!(client.echo(payload.clone()).unwrap(), payload);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        f.shutdown();
    });
}

pub fn app_error_reaches_caller_as_value(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        assert_eq!(f.client.div(7, 2).unwrap(), Ok(3));
        assert_eq!(f.client.div(1, 0).unwrap(), Err(MathError::DivideByZero));
        assert_eq!(
            f.client.div(i64::MIN, -1).unwrap(),
            Err(MathError::Overflow { a: i64::MIN, b: -1 })
        );
        f.shutdown();
    });
}

pub fn unit_and_zero_argument_methods_work(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        f.client.nothing().unwrap();
        assert_eq!(f.client.pid().unwrap(), f.server_pid());
        f.shutdown();
    });
}

pub fn timeout_returns_timeout_and_client_stays_usable(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let deadline = Duration::from_millis(100);
        let started = Instant::now();
        let err = f.client.with_timeout(deadline).sleep_ms(600).unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(err, RpcError::Timeout { after, .. } if after == deadline),
            "{err:?}"
        );
        assert!(
            took >= deadline && took < Duration::from_secs(3),
            "took {took:?}"
        );
        assert!(err.to_string().contains("with_timeout"), "{err}");
        // The late reply of the first call is discarded; this one gets its own answer.
        assert_eq!(f.client.add(40, 2).unwrap(), 42);
        assert_eq!(
            f.client
                .with_timeout(Duration::from_secs(5))
                .sleep_ms(1)
                .unwrap(),
            1
        );
        f.shutdown();
    });
}

pub fn handler_panic_becomes_remote_panic_and_server_keeps_serving(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let err = f.client.panic_now("boom at the server".into()).unwrap_err();
        match &err {
            RpcError::RemotePanic { method, message } => {
                assert_eq!(method, "panic_now");
                assert_eq!(message, "boom at the server");
            }
            other => panic!("expected RemotePanic, got {other:?}"),
        }
        assert_eq!(f.client.add(1, 2).unwrap(), 3);
        if let Some(second) = f.connect_another() {
            assert_eq!(second.add(2, 2).unwrap(), 4);
        }
        f.shutdown();
    });
}

pub fn other_service_is_incompatible(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let err = f.connect_as::<OtherClient>().unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, RpcError::Incompatible { .. }), "{err:?}");
        assert!(
            text.contains("`Other`") && text.contains("`Probe`"),
            "{text}"
        );
        assert_eq!(f.client.add(1, 1).unwrap(), 2);
        f.shutdown();
    });
}

/// Another version of the service connects: the method both agree on works (at the
/// server's number for it), a changed one and a missing one fail alone, naming both
/// signatures, and the connection stays usable.
pub fn changed_and_missing_methods_fail_alone(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let (v2, child) = f
            .connect_kept::<probe_v2::ProbeClient>()
            .expect("another version of the same service connects");
        assert_eq!(v2.echo(vec![1, 2, 3]).unwrap(), [1, 2, 3]);
        match v2.add(1, 2).unwrap_err() {
            RpcError::MethodMismatch {
                method,
                client,
                server,
                ..
            } => {
                assert_eq!(method, "add");
                assert_eq!(&*client, "add(a: i32, b: i32) -> i32");
                assert_eq!(server.as_deref(), Some("add(a: i64, b: i64) -> i64"));
            }
            other => panic!("expected MethodMismatch, got {other:?}"),
        }
        let missing = v2.uptime().unwrap_err();
        assert!(
            matches!(&missing, RpcError::MethodMismatch { server: None, .. })
                && missing
                    .to_string()
                    .contains("has no method `Probe::uptime`"),
            "{missing:?}"
        );
        assert_eq!(v2.echo(vec![4]).unwrap(), [4], "still usable");
        assert_eq!(f.client.add(1, 1).unwrap(), 2);
        drop(v2);
        drop(child);
        f.shutdown();
    });
}

pub fn eight_threads_share_one_client(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8i64)
            .map(|n| {
                let client = f.client.clone();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    for i in 0..300i64 {
                        assert_eq!(client.add(n * 1_000_000, i).unwrap(), n * 1_000_000 + i);
                        if i % 50 == 0 {
                            // Frames well over PIPE_BUF must not interleave.
                            let payload = vec![n as u8; (i as usize) * 997 + 5000];
                            assert_eq!(client.echo(payload.clone()).unwrap(), payload);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        if let Server::Local(s) = &f.server {
            assert_eq!(s.connection_count(), 1);
        }
        f.shutdown();
    });
}

pub fn eight_connections_at_once(t: Transport, name: String) {
    if !t.multi_client() {
        return skip(t, "one client per server");
    }
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let endpoint = f.endpoint().unwrap();
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8i64)
            .map(|n| {
                let endpoint = endpoint.clone();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    let client = ProbeClient::connect(&endpoint).unwrap();
                    barrier.wait();
                    for i in 0..300i64 {
                        assert_eq!(client.add(n, i).unwrap(), n + i);
                    }
                    client
                })
            })
            .collect();
        let clients: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        if let Server::Local(s) = &f.server {
            assert_eq!(s.connection_count(), 9);
        }
        drop(clients);
        f.shutdown();
    });
}

pub fn server_killed_mid_call_returns_disconnected(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let mut f = t.start_in_child(&name);
        assert_ne!(
            f.client.pid().unwrap(),
            std::process::id(),
            "the server runs in another process"
        );
        let in_flight = {
            let client = f.client.clone();
            thread::spawn(move || client.sleep_ms(60_000))
        };
        thread::sleep(Duration::from_millis(200));
        let killed_at = Instant::now();
        f.kill_server();
        let err = in_flight.join().unwrap().unwrap_err();
        let noticed = killed_at.elapsed();
        assert!(err.is_disconnected(), "{err:?}");
        assert!(noticed < Duration::from_secs(5), "took {noticed:?}");
        let later = f.client.add(1, 1).unwrap_err();
        assert!(later.is_disconnected(), "{later:?}");
        assert!(later.to_string().contains("disconnected from"), "{later}");
    });
}

pub fn server_killed_between_calls_returns_disconnected(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let mut f = t.start_in_child(&name);
        assert_eq!(f.client.add(1, 2).unwrap(), 3);
        f.kill_server();
        let started = Instant::now();
        let err = f.client.add(1, 1).unwrap_err();
        assert!(err.is_disconnected(), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    });
}

pub fn server_shutdown_returns_disconnected(t: Transport, name: String) {
    if !t.multi_client() {
        return skip(
            t,
            "a pipe server stops when its parent leaves; see client_drop_closes_server_connection",
        );
    }
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        assert_eq!(f.client.add(1, 1).unwrap(), 2);
        let client = f.client.clone();
        f.shutdown();
        let err = client.add(1, 1).unwrap_err();
        assert!(err.is_disconnected(), "{err:?}");
    });
}

pub fn oversized_request_is_refused_and_connection_survives(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "max_frame=65536");
        let err = f.client.echo(vec![1; 100_000]).unwrap_err();
        assert!(
            matches!(err, RpcError::FrameTooLarge { max: 65536, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("max_frame"), "{err}");
        assert_eq!(f.client.echo(vec![2; 1000]).unwrap(), vec![2; 1000]);
        f.shutdown();
    });
}

pub fn oversized_reply_is_refused_and_connection_survives(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "max_frame=65536");
        let err = f.client.fill(100_000).unwrap_err();
        assert!(
            matches!(err, RpcError::FrameTooLarge { max: 65536, .. }),
            "{err:?}"
        );
        assert_eq!(f.client.fill(10).unwrap(), vec![0xAB; 10]);
        f.shutdown();
    });
}

/// Performs the client's half of the handshake by hand on raw parts.
pub fn raw_handshake(parts: &mut rpc_core::Parts) {
    parts.sender.send(&crate::common::probe_hello()).unwrap();
    parts
        .receiver
        .recv(Some(Instant::now() + Duration::from_secs(5)))
        .expect("welcome");
}

/// Raw parts of a new connection to the fixture's kind of server (for `pipe`, a new
/// child of its own), to send bytes no client would.
pub fn raw_connection(f: &Fixture) -> (rpc_core::Parts, Option<std::process::Child>) {
    use rpc_core::Transport as _;
    match f.endpoint() {
        Some(ep) => (transports::connect(&ep).unwrap().split().unwrap(), None),
        None => {
            let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
            cmd.args(["--exact", &f.test_name, "--nocapture", "--test-threads=1"])
                .env(ROLE_VAR, "pipe-server")
                .stdout(std::process::Stdio::null());
            let (child, transport) = transports::PipeTransport::spawn(cmd, 16 << 20).unwrap();
            (Box::new(transport).split().unwrap(), Some(child))
        }
    }
}

pub fn malformed_frames_close_only_that_connection(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        // Garbage instead of a hello; a huge length header; a valid hello then a
        // request whose header does not decode.
        let garbage: [&[u8]; 3] = [b"\xFF\xFF\xFF\xFF not a hello", &[0xFF; 64], &[0x80; 3]];
        for (i, frame) in garbage.iter().enumerate() {
            let (mut parts, child) = raw_connection(&f);
            if i == 2 {
                raw_handshake(&mut parts);
            }
            parts.sender.send(frame).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let end = parts.receiver.recv(Some(deadline));
            assert!(
                matches!(end, Err(ipc_rpc::TransportError::Closed)),
                "case {i}: {end:?}"
            );
            assert_eq!(f.client.add(i as i64, 1).unwrap(), i as i64 + 1);
            drop(parts);
            if let Some(mut child) = child {
                let status = child.wait().unwrap();
                assert!(status.success(), "the pipe child ended with {status}");
            }
        }
        f.shutdown();
    });
}

/// Requests whose frame ends in a byte string sent apart (`send_parts`, which stream
/// transports and mq deliver split): one that does not fit the method's arguments gets
/// `BadArguments` and the connection serves on; a valid one is answered.
pub fn parted_requests_are_checked_like_any_other(t: Transport, name: String) {
    use rpc_core::RemoteError;
    use rpc_core::codec::{ByteBuf, FrameBuf, decode_all, encode_bulk_len, encode_frame};
    use rpc_core::wire::{STATUS_ERR, STATUS_OK, decode_response_header, encode_request_header};
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let (mut parts, child) = raw_connection(&f);
        raw_handshake(&mut parts);
        let tail = pattern(rpc_core::framing::SPLIT_MIN + 5, 9);
        // (method, head after the request header): add(1, 2) then a byte string add
        // does not take; echo with a length that is not the tail's; a valid echo.
        type WriteArgs<'a> = &'a dyn Fn(&mut FrameBuf<'_>);
        let cases: [(u16, WriteArgs<'_>); 3] = [
            (0, &|b| {
                encode_frame(&(1i64, 2i64), b, "args").unwrap();
                encode_bulk_len(tail.len(), b).unwrap();
            }),
            (1, &|b| encode_bulk_len(tail.len() - 1, b).unwrap()),
            (1, &|b| encode_bulk_len(tail.len(), b).unwrap()),
        ];
        for (i, (method, args)) in cases.iter().enumerate() {
            let mut head = Vec::new();
            let mut buf = FrameBuf::vec(&mut head);
            encode_request_header(i as u64 + 1, *method, None, false, &mut buf).unwrap();
            args(&mut buf);
            parts.sender.send_parts(&head, &tail).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let frame = parts.receiver.recv(Some(deadline)).expect("a reply");
            let frame = frame.into_contiguous();
            let (id, status, payload) = decode_response_header(&frame).unwrap();
            assert_eq!(id, i as u64 + 1);
            if i < 2 {
                assert_eq!(status, STATUS_ERR, "case {i}");
                let err: RemoteError = decode_all(payload, "error").unwrap();
                assert!(
                    matches!(err, RemoteError::BadArguments { .. }),
                    "case {i}: {err:?}"
                );
            } else {
                assert_eq!(status, STATUS_OK);
                assert_eq!(decode_all::<ByteBuf>(payload, "reply").unwrap().0, tail);
            }
        }
        drop(parts);
        if let Some(mut child) = child {
            assert!(child.wait().unwrap().success());
        }
        assert_eq!(f.client.add(2, 2).unwrap(), 4);
        f.shutdown();
    });
}

pub fn second_server_on_live_endpoint_is_addr_in_use(t: Transport, name: String) {
    if !t.multi_client() {
        return skip(t, "a pipe has no address to bind twice");
    }
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let err = ipc_rpc::serve(&f.endpoint().unwrap(), ProbeServer::new(ProbeImpl)).unwrap_err();
        assert!(matches!(err, ServeError::AddrInUse { .. }), "{err:?}");
        assert!(err.to_string().contains("in use by a live server"), "{err}");
        assert_eq!(
            f.client.add(1, 2).unwrap(),
            3,
            "the first server is untouched"
        );
        f.shutdown();
    });
}

pub fn connect_to_missing_server_fails_clearly(t: Transport, _: String) {
    if !t.multi_client() {
        return skip(
            t,
            "a pipe has no address to connect to (see tests/endpoints.rs)",
        );
    }
    watchdog(WATCHDOG, move || {
        let ep = t.endpoint();
        // Bind and shut down, so the address is known to be free.
        let server = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).unwrap();
        let mut gone = server.endpoint();
        server.shutdown();
        // A freed TCP port may be taken at once by a parallel test's server: hold one
        // bound but not listening instead, which refuses connections.
        let over_tcp = matches!(
            gone.kind(),
            ipc_rpc::EndpointKind::Tcp { .. } | ipc_rpc::EndpointKind::Tls { .. }
        );
        let _held = over_tcp.then(|| {
            use nix::sys::socket::{
                AddressFamily, SockFlag, SockType, SockaddrIn, bind, getsockname, socket,
            };
            let fd = socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .unwrap();
            bind(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                &SockaddrIn::new(127, 0, 0, 1, 0),
            )
            .unwrap();
            let port = getsockname::<SockaddrIn>(std::os::fd::AsRawFd::as_raw_fd(&fd))
                .unwrap()
                .port();
            gone = match gone.kind() {
                ipc_rpc::EndpointKind::Tls { host, opts, .. } => {
                    gone.with_kind(ipc_rpc::EndpointKind::Tls {
                        host: host.clone(),
                        port,
                        opts: opts.clone(),
                    })
                }
                _ => format!("tcp:127.0.0.1:{port}").parse().unwrap(),
            };
            fd
        });
        let err = ProbeClient::connect(&gone).unwrap_err();
        assert!(matches!(err, RpcError::NoServer { .. }), "{t:?}: {err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("cannot connect to {gone}: "))
                && message.contains("no server")
                && message.contains("start the server"),
            "{message}"
        );
        // What a `main` returning `Box<dyn Error>` prints: the message, then its cause.
        let boxed: Box<dyn std::error::Error> = Box::new(err);
        let shown = format!("{boxed:?}");
        assert!(
            shown.starts_with(&message) && shown.contains("\n\nCaused by:\n    "),
            "{shown}"
        );
    });
}

/// A server killed with SIGKILL leaves its socket file, FIFOs or queue behind (until
/// the name is served again): connecting says `Stale`, a variant of its own, not a
/// generic I/O error. Shared memory's rendezvous is abstract: nothing is left, and
/// connecting says `NoServer`.
pub fn connect_to_a_killed_servers_endpoint_says_stale(t: Transport, name: String) {
    if !t.multi_client() || matches!(t.endpoint().endpoint.scheme(), "tcp" | "tls") {
        return skip(
            t,
            "a pipe has no address, and a TCP (or TLS) port leaves nothing behind",
        );
    }
    watchdog(WATCHDOG, move || {
        let ep = t.endpoint();
        let mut server = ChildServer::spawn(&name, &ep.endpoint);
        let endpoint = server.endpoint.clone();
        server.kill();
        let err = ProbeClient::connect(&endpoint).unwrap_err();
        if t == Transport::shm {
            assert!(matches!(err, RpcError::NoServer { .. }), "{t:?}: {err:?}");
            assert_eq!(objects_of(&ep), Vec::<String>::new());
        } else {
            assert!(matches!(err, RpcError::Stale { .. }), "{t:?}: {err:?}");
            let message = err.to_string();
            assert!(
                message.contains("leftover of a server that is gone")
                    && message.contains("start the server"),
                "{message}"
            );
        }
        // Serving the name again replaces the leftovers.
        let again = ipc_rpc::serve(&endpoint, ProbeServer::new(ProbeImpl)).unwrap();
        assert_eq!(
            ProbeClient::connect(&again.endpoint())
                .unwrap()
                .add(1, 2)
                .unwrap(),
            3
        );
        again.shutdown();
    });
}

pub fn client_drop_closes_server_connection(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let clone = f.client.clone();
        assert_eq!(clone.add(1, 1).unwrap(), 2);
        match f.server {
            Server::Local(ref s) => {
                assert_eq!(s.connection_count(), 1);
                let Fixture {
                    client,
                    server,
                    ep: _ep,
                    ..
                } = f;
                drop(client);
                drop(clone);
                let Server::Local(s) = server else {
                    unreachable!()
                };
                let deadline = Instant::now() + Duration::from_secs(5);
                while s.connection_count() != 0 {
                    assert!(
                        Instant::now() < deadline,
                        "the server kept a dropped client's connection"
                    );
                    thread::sleep(Duration::from_millis(5));
                }
                s.shutdown();
            }
            _ => {
                drop(clone);
                // The child serves until its parent's client is gone, then exits 0.
                f.shutdown();
            }
        }
    });
}

/// Opens a connection at the mechanism's level and never speaks; `None` where a
/// stranger has no such half-open state to leave (pipe).
fn silent_connection(t: Transport, endpoint: &ipc_rpc::Endpoint) -> Option<Box<dyn std::any::Any>> {
    use ipc_rpc::EndpointKind as K;
    match endpoint.kind() {
        K::Unix { path, .. } => Some(Box::new(
            std::os::unix::net::UnixStream::connect(path).unwrap(),
        )),
        K::Tcp { host, port, .. } | K::Tls { host, port, .. } => Some(Box::new(
            std::net::TcpStream::connect((host.as_str(), *port)).unwrap(),
        )),
        K::Shm { name, .. } => Some(Box::new(
            transports::test_util::shm::connect_rendezvous(name).unwrap(),
        )),
        K::Fifo { path } => {
            // Half a connect request, never finished.
            let mut rendezvous = std::fs::OpenOptions::new()
                .write(true)
                .open(format!("{path}/connect"))
                .unwrap();
            std::io::Write::write_all(&mut rendezvous, b"CONNECT 12").unwrap();
            Some(Box::new(rendezvous))
        }
        K::Mq { .. } => {
            // Connected at the queue level (the queue pair exists), never a hello.
            Some(Box::new(transports::connect(endpoint).unwrap()))
        }
        _ => {
            skip(t, "no half-open connection state to hold");
            None
        }
    }
}

pub fn silent_connections_do_not_hold_up_others(t: Transport, name: String) {
    if !t.multi_client() {
        return skip(t, "one client per server");
    }
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let endpoint = f.endpoint().unwrap();
        let silent: Vec<_> = (0..5)
            .filter_map(|_| silent_connection(t, &endpoint))
            .collect();
        let started = Instant::now();
        let other = ProbeClient::connect(&endpoint).unwrap();
        assert_eq!(other.add(1, 2).unwrap(), 3);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a new client waited {:?} behind silent connections",
            started.elapsed()
        );
        drop(silent);
        drop(other);
        f.shutdown();
    });
}

pub fn sixty_four_clients_and_eight_shared_threads_under_load(t: Transport, name: String) {
    const CALLS: i64 = 1000;
    let _many = MANY_CONNECTIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    watchdog(Duration::from_secs(120), move || {
        let f = t.start(&name, "");
        let mut threads = Vec::new();
        // Eight threads share the fixture's client.
        for n in 0..8i64 {
            let client = f.client.clone();
            threads.push(thread::spawn(move || add_checked(&client, n, CALLS)));
        }
        // Sixty-four more clients, each with its own connection.
        if let Some(endpoint) = f.endpoint() {
            for n in 8..72i64 {
                let endpoint = endpoint.clone();
                threads.push(thread::spawn(move || {
                    add_checked(&ProbeClient::connect(&endpoint).unwrap(), n, CALLS)
                }));
            }
        } else {
            skip(
                t,
                "64 clients: one client per server; ran the 8 shared threads only",
            );
        }
        let answered: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let expected = if f.endpoint().is_some() {
            72 * CALLS
        } else {
            8 * CALLS
        };
        assert_eq!(answered, expected);
        f.shutdown();
    });
}

/// Child role: a client that calls `sleep_ms` and is killed during the call.
pub fn client_child() {
    let Ok(endpoint) = std::env::var("IPC_RPC_TEST_DOOMED_CLIENT_OF") else {
        return;
    };
    let client = ProbeClient::connect(&endpoint.parse().unwrap()).unwrap();
    println!("CALLING");
    if let Ok(tag) = std::env::var("IPC_RPC_TEST_DOOMED_SUBSCRIBER") {
        // A subscriber that is killed while subscribed (see `push`).
        let mut events = client.flood(tag.parse().unwrap(), 64).unwrap();
        let _ = events.next();
        println!("SUBSCRIBED");
        thread::sleep(Duration::from_secs(30));
        std::process::exit(0);
    }
    match std::env::var("IPC_RPC_TEST_DOOMED_CLIENT_TAG") {
        Ok(tag) => {
            let _ = client.watch_cancel(tag.parse().unwrap(), 10_000);
        }
        Err(_) => {
            let _ = client.sleep_ms(2_000);
        }
    }
    std::process::exit(0);
}

pub fn client_killed_mid_call_leaves_the_server_serving(t: Transport, name: String) {
    if !t.multi_client() {
        return skip(t, "the pipe's one client is the parent (see tests/pipe.rs)");
    }
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let endpoint = f.endpoint().unwrap();
        let mut child =
            spawn_until_marker(&name, "IPC_RPC_TEST_DOOMED_CLIENT_OF", &endpoint, "CALLING");
        thread::sleep(Duration::from_millis(100));
        child.kill().unwrap();
        child.wait().unwrap();
        // Others are served at once, while the dead client's call still sleeps.
        let started = Instant::now();
        assert_eq!(f.client.add(3, 4).unwrap(), 7);
        assert!(started.elapsed() < Duration::from_secs(1));
        if let Server::Local(s) = &f.server {
            // The dead client's connection ends once its call returns and the server
            // notices the peer is gone.
            let deadline = Instant::now() + Duration::from_secs(10);
            while s.connection_count() > 1 {
                assert!(
                    Instant::now() < deadline,
                    "the dead client's connection stayed open"
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
        f.shutdown();
    });
}

pub fn slow_consumer_does_not_hold_up_others(t: Transport, name: String) {
    if !t.multi_client() {
        return skip(t, "one client per server");
    }
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let endpoint = f.endpoint().unwrap();
        // A raw client that asks for 1 MiB replies and never reads them.
        let mut parts = raw_connection(&f).0;
        raw_handshake(&mut parts);
        let fill = ProbeClient::SERVICE
            .methods
            .iter()
            .position(|m| m.name == "fill")
            .unwrap() as u16;
        for id in 1..=20u64 {
            let mut request = Vec::new();
            rpc_core::wire::encode_request_header(
                id,
                fill,
                None,
                false,
                &mut rpc_core::codec::FrameBuf::vec(&mut request),
            )
            .unwrap();
            rpc_core::codec::encode_into(&(1u32 << 20), &mut request, "len").unwrap();
            // The server stops reading once its replies fill the pipe; stop sending too.
            let sent = {
                let (tx, rx) = std::sync::mpsc::channel();
                let frame = request.clone();
                let mut sender = std::mem::replace(&mut parts.sender, Box::new(NullSender));
                thread::spawn(move || {
                    let r = sender.send(&frame);
                    let _ = tx.send((r, sender));
                });
                rx.recv_timeout(Duration::from_millis(500))
            };
            match sent {
                Ok((Ok(()), sender)) => parts.sender = sender,
                _ => break,
            }
        }
        // Everyone else is served promptly.
        let other = ProbeClient::connect(&endpoint).unwrap();
        let started = Instant::now();
        for i in 0..20 {
            assert_eq!(other.add(i, 1).unwrap(), i + 1);
        }
        assert_eq!(f.client.fill(1000).unwrap().len(), 1000);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        drop(parts);
        drop(other);
        f.shutdown();
    });
}

/// Stands in for a sender lent to another thread.
struct NullSender;

impl rpc_core::FrameSender for NullSender {
    fn send_parts(&mut self, _: &[u8], _: &[u8]) -> Result<(), ipc_rpc::TransportError> {
        Err(ipc_rpc::TransportError::Closed)
    }
}

pub fn random_bytes_and_a_connect_flood_leave_the_server_serving(t: Transport, name: String) {
    let _many = MANY_CONNECTIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    use ipc_rpc::EndpointKind as K;
    if !t.multi_client() {
        return skip(t, "a pipe has no address a stranger can reach");
    }
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let endpoint = f.endpoint().unwrap();
        // Pseudo-random junk, including length headers of 2^32-1 and the bytes of 2^63.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut junk = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect()
        };
        let payloads = [
            junk(10),
            junk(5000),
            u32::MAX.to_le_bytes().to_vec(),
            (1u64 << 63).to_le_bytes().to_vec(),
        ];
        let mut held = Vec::new();
        for p in &payloads {
            match endpoint.kind() {
                K::Unix { .. } | K::Shm { .. } => {
                    let mut s = match endpoint.kind() {
                        K::Shm { name, .. } => {
                            transports::test_util::shm::connect_rendezvous(name).unwrap()
                        }
                        K::Unix { path, .. } => {
                            std::os::unix::net::UnixStream::connect(path).unwrap()
                        }
                        _ => unreachable!(),
                    };
                    let _ = std::io::Write::write_all(&mut s, p);
                    held.push(Box::new(s) as Box<dyn std::any::Any>);
                }
                K::Tcp { host, port, .. } | K::Tls { host, port, .. } => {
                    let mut s = std::net::TcpStream::connect((host.as_str(), *port)).unwrap();
                    let _ = std::io::Write::write_all(&mut s, p);
                    held.push(Box::new(s));
                }
                K::Fifo { path } => {
                    let mut w = std::fs::OpenOptions::new()
                        .write(true)
                        .open(format!("{path}/connect"))
                        .unwrap();
                    let _ = std::io::Write::write_all(&mut w, &p[..p.len().min(512)]);
                    held.push(Box::new(w));
                }
                K::Mq { name, .. } => {
                    // Junk straight into the rendezvous queue, as a stranger of the same
                    // user could send it.
                    let queue = nix::mqueue::mq_open(
                        name.as_str(),
                        nix::mqueue::MQ_OFlag::O_WRONLY | nix::mqueue::MQ_OFlag::O_NONBLOCK,
                        nix::sys::stat::Mode::empty(),
                        None,
                    )
                    .unwrap();
                    let _ = nix::mqueue::mq_send(&queue, &p[..p.len().min(64)], 0);
                    let _ = nix::mqueue::mq_close(queue);
                    // And junk through an honest client's transport: our framing and
                    // handshake, random contents.
                    let (mut parts, _) = raw_connection(&f);
                    let _ = parts.sender.send(p);
                    held.push(Box::new(parts.closer));
                }
                _ => unreachable!("no address for a stranger"),
            }
        }
        // And a flood of connections that never speak.
        held.extend((0..40).filter_map(|_| silent_connection(t, &endpoint)));
        let other = ProbeClient::connect(&endpoint).unwrap();
        assert_eq!(other.add(20, 22).unwrap(), 42);
        assert_eq!(f.client.add(1, 1).unwrap(), 2);
        drop(held);
        drop(other);
        f.shutdown();
    });
}

pub fn callers_with_and_without_deadlines_never_strand_each_other(t: Transport, name: String) {
    watchdog(Duration::from_secs(60), move || {
        let f = t.start(&name, "");
        let threads: Vec<_> = (0..8u64)
            .map(|n| {
                let client = f.client.clone();
                thread::spawn(move || {
                    for i in 0..150u64 {
                        if n % 2 == 0 {
                            // Deadlines that often expire while waiting to read.
                            let hurried = client
                                .with_timeout(Duration::from_micros(200 + (n * 37 + i * 53) % 900));
                            match hurried.sleep_ms(i % 2) {
                                Ok(_) | Err(RpcError::Timeout { .. }) => {}
                                Err(e) => panic!("{e:?}"),
                            }
                        } else {
                            // No deadline: must always get an answer.
                            assert_eq!(client.add(n as i64, i as i64).unwrap(), (n + i) as i64);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        f.shutdown();
    });
}

/// Waits up to 5 s for the server to say that the `watch_cancel` call tagged `tag` saw
/// its caller give up.
fn assert_cancel_seen(client: &ProbeClient, tag: u64, why: &str) {
    let until = Instant::now() + Duration::from_secs(5);
    while !client.cancel_seen(tag).unwrap() {
        assert!(
            Instant::now() < until,
            "the handler never saw cancelled() after {why}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

pub fn a_fast_call_is_not_held_up_by_a_slow_one_on_the_same_client(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let slow_client = f.client.clone();
        let slow = thread::spawn(move || slow_client.sleep_ms(1_500).unwrap());
        thread::sleep(Duration::from_millis(100));
        for i in 0..20 {
            let started = Instant::now();
            assert_eq!(f.client.add(i, 1).unwrap(), i + 1);
            assert!(
                started.elapsed() < Duration::from_millis(700),
                "call {i} waited {:?} behind the slow call",
                started.elapsed()
            );
        }
        assert!(!slow.is_finished(), "the fast calls ran after the slow one");
        assert_eq!(slow.join().unwrap(), 1_500);
        f.shutdown();
    });
}

pub fn handlers_see_the_callers_deadline(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        assert_eq!(f.client.deadline_ms().unwrap(), None);
        let left = f
            .client
            .with_timeout(Duration::from_secs(5))
            .deadline_ms()
            .unwrap()
            .expect("a deadline");
        assert!((3_000..=5_000).contains(&left), "{left} ms left");
        f.shutdown();
    });
}

pub fn a_handler_sees_cancelled_after_its_caller_times_out(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let tag = crate::common::unique_tag();
        // The handler sees its deadline pass at about the time its caller gives up: on
        // a loaded machine its `true` may even arrive in time.
        match f
            .client
            .with_timeout(Duration::from_millis(100))
            .watch_cancel(tag, 10_000)
        {
            Err(RpcError::Timeout { .. }) | Ok(true) => {}
            other => panic!("{other:?}"),
        }
        assert_cancel_seen(&f.client, tag, "its caller timed out");
        f.shutdown();
    });
}

pub fn a_handler_sees_cancelled_after_its_client_is_killed(t: Transport, name: String) {
    if !t.multi_client() {
        return skip(t, "the pipe's one client is the parent (see tests/pipe.rs)");
    }
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let endpoint = f.endpoint().unwrap();
        let tag = crate::common::unique_tag();
        let mut child = spawn_until_marker_with(
            &name,
            "IPC_RPC_TEST_DOOMED_CLIENT_OF",
            &endpoint,
            "CALLING",
            &[("IPC_RPC_TEST_DOOMED_CLIENT_TAG", tag.to_string())],
        );
        thread::sleep(Duration::from_millis(200));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_cancel_seen(&f.client, tag, "its client was killed");
        f.shutdown();
    });
}

pub fn a_request_whose_deadline_passed_is_not_run(t: Transport, name: String) {
    use rpc_core::codec::FrameBuf;
    use rpc_core::wire::{STATUS_ERR, decode_response_header, encode_request_header};
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let (mut parts, child) = raw_connection(&f);
        raw_handshake(&mut parts);
        // `panic_now` with no time left: were it run, the reply would be a panic.
        let panic_now = ProbeClient::SERVICE
            .methods
            .iter()
            .position(|m| m.name == "panic_now")
            .unwrap() as u16;
        let mut request = Vec::new();
        let mut buf = FrameBuf::vec(&mut request);
        encode_request_header(7, panic_now, Some(Duration::ZERO), false, &mut buf).unwrap();
        rpc_core::codec::encode_frame("not run", &mut buf, "args").unwrap();
        parts.sender.send(&request).unwrap();
        let reply = parts
            .receiver
            .recv(Some(Instant::now() + Duration::from_secs(5)))
            .unwrap()
            .into_contiguous()
            .into_owned();
        let (id, status, payload) = decode_response_header(&reply).unwrap();
        assert_eq!((id, status), (7, STATUS_ERR));
        let error: ipc_rpc::RemoteError = rpc_core::codec::decode_all(payload, "error").unwrap();
        assert!(
            matches!(&error, ipc_rpc::RemoteError::Expired { method } if method == "panic_now"),
            "{error:?}"
        );
        drop(parts);
        if let Some(mut child) = child {
            child.wait().unwrap();
        }
        assert_eq!(f.client.add(1, 1).unwrap(), 2);
        f.shutdown();
    });
}

pub fn shutdown_returns_within_its_grace_while_a_handler_never_returns(t: Transport, name: String) {
    if !t.multi_client() {
        return skip(
            t,
            "the pipe server runs in a child, which ends with its parent",
        );
    }
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let Fixture {
            client, server, ep, ..
        } = f;
        let Server::Local(server) = server else {
            unreachable!("multi-client fixtures serve in this process")
        };
        // "Never" for this test: far past the shutdown's grace and abort wait.
        let stuck = thread::spawn(move || client.sleep_ms(30_000));
        thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        server.shutdown_timeout(Duration::from_millis(300));
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(300)
                + rpc_core::server::ABORT_WAIT
                + Duration::from_millis(700),
            "shutdown took {took:?}"
        );
        // The stuck call's caller is told the connection ended.
        let err = stuck.join().unwrap().unwrap_err();
        assert!(err.is_disconnected(), "{err:?}");
        drop(ep);
    });
}

/// The most `hold(ms)` calls that ran at once on the server when `callers` threads
/// sharing `client` each made one.
fn peak_overlap(client: &ProbeClient, callers: usize, ms: u64) -> u32 {
    let tag = crate::common::unique_tag();
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let client = client.clone();
            thread::spawn(move || client.hold(tag, ms).unwrap())
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .max()
        .unwrap_or(0)
}

pub fn max_in_flight_bounds_the_calls_of_a_connection_that_run_at_once(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "max_in_flight=2");
        // Every call is answered (the others waited their turn), and never more than
        // two ran at once; with six callers, two did.
        assert_eq!(peak_overlap(&f.client, 6, 200), 2);
        f.shutdown();
    });
}

pub fn max_workers_bounds_the_calls_a_server_runs_at_once(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "workers=1&max_workers=3");
        // The pool grows from one thread to three while handlers block, and no
        // further: the other calls wait for a thread, and every one is answered.
        assert_eq!(peak_overlap(&f.client, 6, 200), 3);
        f.shutdown();
    });
}

pub fn eight_callers_of_a_slow_handler_on_one_client_run_in_parallel(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let peak = peak_overlap(&f.client, 8, 300);
        assert!(
            peak >= 4,
            "calls of one client did not overlap on the server: at most {peak} at once"
        );
        f.shutdown();
    });
}

pub fn max_connections_refuses_the_next_client_promptly(t: Transport, name: String) {
    if !t.multi_client() {
        return skip(t, "a pipe has one client");
    }
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "max_connections=2");
        let endpoint = f.endpoint().unwrap();
        let second = ProbeClient::connect(&endpoint).expect("the second of two connections");
        assert_eq!(second.add(1, 2).unwrap(), 3);
        let started = Instant::now();
        let err = ProbeClient::connect(&endpoint).expect_err("a third connection");
        assert!(
            matches!(&err, RpcError::Refused { reason, .. } if reason.contains("max_connections=2")),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("server at max_connections=2"),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "refused after {:?}",
            started.elapsed()
        );
        // The first two are served on; once one leaves, a new client gets in.
        assert_eq!(f.client.add(2, 2).unwrap(), 4);
        drop(second);
        let until = Instant::now() + Duration::from_secs(5);
        let third = loop {
            match ProbeClient::connect(&endpoint) {
                Ok(c) => break c,
                Err(RpcError::Refused { .. }) if Instant::now() < until => {
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("after a client left: {e:?}"),
            }
        };
        assert_eq!(third.add(3, 3).unwrap(), 6);
        f.shutdown();
    });
}

pub fn a_handler_sees_cancelled_when_the_server_shuts_down(t: Transport, name: String) {
    if !t.multi_client() {
        return skip(t, "the pipe server runs in a child");
    }
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let Fixture {
            client, server, ep, ..
        } = f;
        let Server::Local(server) = server else {
            unreachable!("multi-client fixtures serve in this process")
        };
        let tag = crate::common::unique_tag();
        let watcher = thread::spawn(move || client.watch_cancel(tag, 20_000));
        thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        server.shutdown_timeout(Duration::from_secs(5));
        // The handler stopped early, so shutdown did not need its grace period.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            crate::common::cancel_seen_here(tag),
            "the handler never saw cancelled()"
        );
        // Its reply went out before the connection closed, or the caller saw it close.
        match watcher.join().unwrap() {
            Ok(true) => {}
            Err(e) if e.is_disconnected() => {}
            other => panic!("{other:?}"),
        }
        drop(ep);
    });
}

/// A server that is stopped (SIGSTOP) answers nothing: connecting to it ends, within
/// the endpoint's `connect_timeout`, in `ConnectTimeout`, whose message says what did
/// not answer and names the option to raise.
pub fn connect_to_a_stopped_server_times_out_and_says_so(t: Transport, name: String) {
    if !t.multi_client() {
        return skip(t, "a pipe has no address to connect to");
    }
    watchdog(WATCHDOG, move || {
        let ep = t.endpoint();
        let server = ChildServer::spawn_stopped(&name, &ep.endpoint);
        let timeout = Duration::from_millis(300);
        let endpoint = server.endpoint.clone().with_connect_timeout(timeout);
        let started = Instant::now();
        let err = ProbeClient::connect(&endpoint).unwrap_err();
        let took = started.elapsed();
        let RpcError::ConnectTimeout { after, detail, .. } = &err else {
            panic!("{t:?}: {err:?}");
        };
        assert_eq!(*after, timeout);
        assert!(
            took >= timeout && took < timeout + Duration::from_secs(2),
            "{t:?}: gave up after {took:?}"
        );
        let message = err.to_string();
        assert!(message.contains("connect_timeout"), "{message}");
        assert!(
            message.contains("stopped") && message.contains(&endpoint.to_string()),
            "{message}"
        );
        eprintln!("{t:?}, after {took:?}: {message} [{}]", detail.len());
        server.resume_and_stop();
    });
}

/// Server at `max_frame=65536`, client at the default 16 MiB: the client learns the
/// server's limit at the handshake and refuses a larger request before sending any of
/// it, naming the server's limit; the connection stays usable (before, the server
/// closed it and the client saw a crash-like `Disconnected`).
pub fn a_request_over_the_servers_max_frame_is_refused_before_it_is_sent(t: Transport, _: String) {
    if !t.multi_client() {
        return skip(t, "one endpoint string sets both ends of a pipe pair");
    }
    watchdog(WATCHDOG, move || {
        let ep = t.endpoint_with("max_frame=65536");
        let server = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).unwrap();
        let client_ep = server
            .endpoint()
            .with_max_frame(rpc_core::limits::DEFAULT_MAX_FRAME);
        let client = ProbeClient::connect(&client_ep).unwrap();
        for len in [70_000, 1 << 20] {
            let err = client.echo(vec![1; len]).unwrap_err();
            assert!(
                matches!(
                    err,
                    RpcError::FrameTooLarge {
                        max: 65536,
                        limit: ipc_rpc::FrameLimit::ServerRequest,
                        ..
                    }
                ),
                "{t:?}: {err:?}"
            );
            let message = err.to_string();
            assert!(
                message.contains("exceeds the server's max_frame of 65536 bytes")
                    && message.contains("nothing was sent"),
                "{message}"
            );
        }
        assert_eq!(client.echo(vec![2; 1000]).unwrap(), vec![2; 1000]);
        assert_eq!(
            server.connection_count(),
            1,
            "{t:?}: the connection survived"
        );
        server.shutdown();
    });
}

/// Client at `max_frame=65536`, server at the default: a reply over the client's
/// limit is not sent; the server answers that call with an error naming the client's
/// limit, and the connection stays usable (before, the client refused the frame and
/// every later call failed `Disconnected`).
pub fn a_reply_over_the_clients_max_frame_is_an_error_for_that_call_only(t: Transport, _: String) {
    if !t.multi_client() {
        return skip(t, "one endpoint string sets both ends of a pipe pair");
    }
    watchdog(WATCHDOG, move || {
        let ep = t.endpoint();
        let server = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).unwrap();
        let client_ep = server.endpoint().with_max_frame(65536);
        let client = ProbeClient::connect(&client_ep).unwrap();
        for len in [70_000, 1 << 20] {
            let err = client.fill(len).unwrap_err();
            assert!(
                matches!(
                    err,
                    RpcError::FrameTooLarge {
                        max: 65536,
                        limit: ipc_rpc::FrameLimit::ClientReply,
                        ..
                    }
                ),
                "{t:?}: {err:?}"
            );
            let message = err.to_string();
            assert!(
                message.contains("reply of")
                    && message.contains("exceeds this client's max_frame of 65536 bytes")
                    && message.contains("the server did not send it"),
                "{message}"
            );
        }
        assert_eq!(client.fill(10).unwrap(), vec![0xAB; 10]);
        assert_eq!(client.echo(vec![3; 60_000]).unwrap(), vec![3; 60_000]);
        server.shutdown();
    });
}

/// What is left of a server's endpoint in the file system: entries of its directory
/// (`unix:`, `fifo:`), or of /dev/shm and /dev/mqueue that carry its name (`shm:`,
/// `mq:`).
fn objects_of(ep: &TestEndpoint) -> Vec<String> {
    let list = |dir: &std::path::Path, needle: Option<&str>| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path().display().to_string())
                    .filter(|p| needle.is_none_or(|n| p.contains(n)))
                    .collect()
            })
            .unwrap_or_default()
    };
    // A port has no named object (a `tls:` endpoint's directory holds its certificates).
    if matches!(ep.endpoint.scheme(), "tcp" | "tls") {
        return Vec::new();
    }
    match (&ep.dir, ep.endpoint.kind().name()) {
        (Some(dir), _) => list(dir, None),
        (None, Some(name)) => {
            let stem = name.trim_start_matches('/');
            let mut found = list(std::path::Path::new("/dev/shm"), Some(stem));
            found.extend(list(std::path::Path::new("/dev/mqueue"), Some(stem)));
            found
        }
        (None, None) => Vec::new(),
    }
}

/// `ServerHandle::wait_for_signal`: SIGTERM or SIGINT shuts the server down, calls in
/// flight answered, and removes every object of its endpoint; a `pipe` child's wait
/// also ends when its parent closes the pipe.
pub fn a_signal_shuts_the_server_down_and_removes_its_objects(t: Transport, name: String) {
    use std::io::Read;
    use std::process::{Command, Stdio};

    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    watchdog(WATCHDOG, move || {
        if t == Transport::pipe {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.args(["--exact", &name, "--nocapture", "--test-threads=1"])
                .env(ROLE_VAR, "pipe-signal-server")
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let (client, mut child) =
                ipc_rpc::spawn_child_with::<ProbeClient>(cmd, &"pipe".parse().unwrap()).unwrap();
            assert_eq!(client.add(1, 2).unwrap(), 3);
            let mut stderr = child.stderr.take().unwrap();
            drop(client);
            assert!(child.wait().unwrap().success());
            let mut said = String::new();
            stderr.read_to_string(&mut said).unwrap();
            assert!(said.contains("STOPPED Finished"), "{said}");
            return;
        }
        for signal in [Signal::SIGTERM, Signal::SIGINT] {
            let ep = t.endpoint();
            // Killed if this test fails before it signals the child.
            let (mut child, mut lines, bound) = spawn_signal_server(&name, &ep.endpoint);
            let mut said = |word: &str| -> String {
                for line in lines.by_ref() {
                    let line = line.unwrap();
                    if let Some((_, rest)) = line.split_once(word) {
                        return rest.trim().to_owned();
                    }
                }
                panic!("{t:?}: the child exited before saying {word}");
            };
            let client = ProbeClient::connect(&bound).unwrap();
            let slow = {
                let client = client.clone();
                thread::spawn(move || client.sleep_ms(300))
            };
            thread::sleep(Duration::from_millis(50));
            // TCP has no named object, shared memory's rendezvous is abstract.
            if !matches!(ep.endpoint.scheme(), "tcp" | "tls" | "shm") {
                assert!(!objects_of(&ep).is_empty(), "{t:?}");
            }
            kill(Pid::from_raw(child.id() as i32), signal).unwrap();
            assert_eq!(
                said("STOPPED "),
                format!("Signal({:?})", signal.as_str()),
                "{t:?}"
            );
            assert!(child.wait().unwrap().success(), "{t:?}");
            // The call in flight was answered before the server went.
            assert_eq!(slow.join().unwrap().unwrap(), 300, "{t:?}");
            assert!(client.add(1, 1).unwrap_err().is_disconnected());
            assert_eq!(
                objects_of(&ep),
                Vec::<String>::new(),
                "{t:?} after {signal}"
            );
        }
    });
}

/// `close()` closes the connection for every clone: calls on any of them fail
/// `Disconnected`, the server sees the connection end, and a `pipe` child exits even
/// while a clone made with `with_timeout` lives on (before, that clone kept it alive and
/// the parent's `child.wait()` hung).
pub fn close_closes_the_connection_for_every_clone(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let clone = f.client.with_timeout(Duration::from_secs(5));
        assert_eq!(clone.add(1, 2).unwrap(), 3);
        f.client.close();
        f.client.close();
        for client in [&f.client, &clone] {
            let err = client.add(1, 1).unwrap_err();
            assert!(err.is_disconnected(), "{t:?}: {err:?}");
            assert!(err.to_string().contains("the client was closed"), "{err}");
        }
        let Fixture { server, client, .. } = f;
        drop(client);
        match server {
            Server::Local(s) => {
                let until = Instant::now() + Duration::from_secs(5);
                while s.connection_count() > 0 {
                    assert!(
                        Instant::now() < until,
                        "{t:?}: the server kept the connection"
                    );
                    thread::sleep(Duration::from_millis(5));
                }
                s.shutdown();
            }
            // The child exits although `clone` still lives.
            Server::Child(mut child) => assert!(child.wait().unwrap().success()),
            Server::Remote(_) => unreachable!("started in this process"),
        }
        drop(clone);
    });
}

/// `ipc_rpc::cleanup` removes what a server killed with SIGKILL left at its endpoint,
/// and refuses, touching nothing, while a live server holds it.
pub fn cleanup_removes_a_killed_servers_objects_and_refuses_a_live_ones(
    t: Transport,
    name: String,
) {
    if !t.multi_client() {
        return skip(t, "a pipe leaves nothing behind");
    }
    watchdog(WATCHDOG, move || {
        let ep = t.endpoint();
        let live = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).unwrap();
        let before = objects_of(&ep);
        let refused = ipc_rpc::cleanup(&live.endpoint());
        let port_only = matches!(ep.endpoint.scheme(), "tcp" | "tls");
        if port_only {
            // A port leaves nothing behind: nothing to do, nothing to refuse.
            assert!(refused.is_ok(), "{refused:?}");
        } else {
            assert!(
                matches!(refused, Err(ipc_rpc::ServeError::AddrInUse { .. })),
                "{t:?}: {refused:?}"
            );
        }
        assert_eq!(
            objects_of(&ep),
            before,
            "{t:?}: a live server's objects were touched"
        );
        assert_eq!(
            ProbeClient::connect(&live.endpoint())
                .unwrap()
                .add(2, 2)
                .unwrap(),
            4
        );
        live.shutdown();

        let mut killed = ChildServer::spawn(&name, &ep.endpoint);
        let endpoint = killed.endpoint.clone();
        killed.kill();
        // TCP leaves nothing, nor does shared memory (an abstract rendezvous).
        if !port_only && t != Transport::shm {
            assert!(!objects_of(&ep).is_empty(), "{t:?}: SIGKILL left nothing?");
        }
        ipc_rpc::cleanup(&endpoint).unwrap();
        assert_eq!(objects_of(&ep), Vec::<String>::new(), "{t:?}");
    });
}
