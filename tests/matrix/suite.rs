//! The contract every transport keeps, as tests generic over `Transport`. Each takes
//! the transport and its own libtest name (to re-run itself as a child server).

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use ipc_rpc::{RpcError, ServeError, ServerHandle};

use crate::common::*;

const WATCHDOG: Duration = Duration::from_secs(30);

fn start(transport: Transport) -> (TestEndpoint, ServerHandle, ProbeClient) {
    start_with(transport, "")
}

fn start_with(transport: Transport, options: &str) -> (TestEndpoint, ServerHandle, ProbeClient) {
    let ep = transport.endpoint_with(options);
    let server = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).expect("serve");
    let client = ProbeClient::connect(&server.endpoint()).expect("connect");
    (ep, server, client)
}

pub fn round_trip_nested_values(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, client) = start(t);
        let value = sample_nested();
        let back = client.nested(value.clone()).unwrap();
        assert_eq!(back.name, "outer ✓ (seen)");
        assert_eq!(
            Nested {
                name: value.name.clone(),
                ..back
            },
            value
        );
        assert_eq!(client.add(i64::MAX, 1).unwrap(), i64::MIN);
        server.shutdown();
    });
}

pub fn empty_and_4mib_payloads_round_trip(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, client) = start(t);
        assert_eq!(client.echo(Vec::new()).unwrap(), Vec::<u8>::new());
        let big: Vec<u8> = (0..4u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        assert_eq!(client.echo(big.clone()).unwrap(), big);
        assert_eq!(client.fill(3 << 20).unwrap().len(), 3 << 20);
        server.shutdown();
    });
}

pub fn app_error_reaches_caller_as_value(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, client) = start(t);
        assert_eq!(client.div(7, 2).unwrap(), Ok(3));
        assert_eq!(client.div(1, 0).unwrap(), Err(MathError::DivideByZero));
        assert_eq!(
            client.div(i64::MIN, -1).unwrap(),
            Err(MathError::Overflow { a: i64::MIN, b: -1 })
        );
        server.shutdown();
    });
}

pub fn unit_and_zero_argument_methods_work(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, client) = start(t);
        client.nothing().unwrap();
        assert_eq!(client.pid().unwrap(), std::process::id());
        server.shutdown();
    });
}

pub fn timeout_returns_timeout_and_client_stays_usable(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, client) = start(t);
        let deadline = Duration::from_millis(100);
        let started = Instant::now();
        let err = client.with_timeout(deadline).sleep_ms(600).unwrap_err();
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
        assert_eq!(client.add(40, 2).unwrap(), 42);
        assert_eq!(
            client
                .with_timeout(Duration::from_secs(5))
                .sleep_ms(1)
                .unwrap(),
            1
        );
        server.shutdown();
    });
}

pub fn handler_panic_becomes_remote_panic_and_server_keeps_serving(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, client) = start(t);
        let err = client.panic_now("boom at the server".into()).unwrap_err();
        match &err {
            RpcError::RemotePanic { method, message } => {
                assert_eq!(method, "panic_now");
                assert_eq!(message, "boom at the server");
            }
            other => panic!("expected RemotePanic, got {other:?}"),
        }
        assert_eq!(client.add(1, 2).unwrap(), 3);
        let second = ProbeClient::connect(&server.endpoint()).unwrap();
        assert_eq!(second.add(2, 2).unwrap(), 4);
        server.shutdown();
    });
}

pub fn other_service_is_incompatible(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, _client) = start(t);
        let err = OtherClient::connect(&server.endpoint()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, RpcError::Incompatible { .. }), "{err:?}");
        assert!(
            text.contains("`Other`") && text.contains("`Probe`"),
            "{text}"
        );
        server.shutdown();
    });
}

pub fn other_signature_is_incompatible(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, _client) = start(t);
        let err = probe_v2::ProbeClient::connect(&server.endpoint()).unwrap_err();
        match &err {
            RpcError::Incompatible { client, server, .. } => {
                assert!(client.contains("`Probe`") && server.contains("`Probe`"));
                assert_ne!(client, server, "fingerprints must differ");
            }
            other => panic!("expected Incompatible, got {other:?}"),
        }
        server.shutdown();
    });
}

pub fn eight_threads_share_one_client(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, client) = start(t);
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8i64)
            .map(|n| {
                let client = client.clone();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    for i in 0..300i64 {
                        assert_eq!(client.add(n * 1_000_000, i).unwrap(), n * 1_000_000 + i);
                        if i % 50 == 0 {
                            let payload = vec![n as u8; (i as usize) * 997];
                            assert_eq!(client.echo(payload.clone()).unwrap(), payload);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(server.connection_count(), 1);
        server.shutdown();
    });
}

pub fn eight_connections_at_once(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, _client) = start(t);
        let endpoint = server.endpoint();
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
        assert_eq!(server.connection_count(), 9);
        drop(clients);
        server.shutdown();
    });
}

pub fn server_killed_mid_call_returns_disconnected(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let ep = t.endpoint();
        let mut child = ChildServer::spawn(&name, &ep.endpoint);
        let client = ProbeClient::connect(&child.endpoint).unwrap();
        assert_ne!(
            client.pid().unwrap(),
            std::process::id(),
            "the server runs in another process"
        );
        let in_flight = {
            let client = client.clone();
            thread::spawn(move || {
                let started = Instant::now();
                (client.sleep_ms(60_000), started)
            })
        };
        thread::sleep(Duration::from_millis(200));
        let killed_at = Instant::now();
        child.kill();
        let (result, _) = in_flight.join().unwrap();
        let noticed = killed_at.elapsed();
        let err = result.unwrap_err();
        assert!(err.is_disconnected(), "{err:?}");
        assert!(noticed < Duration::from_secs(5), "took {noticed:?}");
        let later = client.add(1, 1).unwrap_err();
        assert!(later.is_disconnected(), "{later:?}");
        assert!(later.to_string().contains("disconnected from"), "{later}");
    });
}

pub fn server_shutdown_returns_disconnected(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, client) = start(t);
        assert_eq!(client.add(1, 1).unwrap(), 2);
        server.shutdown();
        let err = client.add(1, 1).unwrap_err();
        assert!(err.is_disconnected(), "{err:?}");
    });
}

pub fn oversized_request_is_refused_and_connection_survives(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, client) = start_with(t, "max_frame=65536");
        let err = client.echo(vec![1; 100_000]).unwrap_err();
        assert!(
            matches!(err, RpcError::FrameTooLarge { max: 65536, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("max_frame"), "{err}");
        assert_eq!(client.echo(vec![2; 1000]).unwrap(), vec![2; 1000]);
        server.shutdown();
    });
}

pub fn oversized_reply_is_refused_and_connection_survives(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, client) = start_with(t, "max_frame=65536");
        let err = client.fill(100_000).unwrap_err();
        assert!(
            matches!(err, RpcError::FrameTooLarge { max: 65536, .. }),
            "{err:?}"
        );
        assert_eq!(client.fill(10).unwrap(), vec![0xAB; 10]);
        server.shutdown();
    });
}

pub fn malformed_frames_close_only_that_connection(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, client) = start(t);
        let endpoint = server.endpoint();
        // Garbage instead of a hello; a huge length header; a valid hello then a
        // request whose header does not decode.
        let garbage: [&[u8]; 3] = [b"\xFF\xFF\xFF\xFF not a hello", &[0xFF; 64], &[0x80; 3]];
        for (i, frame) in garbage.iter().enumerate() {
            let mut parts = transports::connect(&endpoint).unwrap().split().unwrap();
            if i == 2 {
                let mut hello = Vec::new();
                rpc_core::codec::encode_into(
                    &rpc_core::wire::Hello {
                        magic: rpc_core::wire::MAGIC,
                        protocol: rpc_core::wire::PROTOCOL_VERSION,
                        service: ProbeClient::SERVICE.name,
                        fingerprint: ProbeClient::SERVICE.fingerprint,
                    },
                    &mut hello,
                    "hello",
                )
                .unwrap();
                parts.sender.send(&hello).unwrap();
                let deadline = Instant::now() + Duration::from_secs(5);
                parts.receiver.recv(Some(deadline)).expect("welcome");
            }
            parts.sender.send(frame).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let end = parts.receiver.recv(Some(deadline));
            assert!(
                matches!(end, Err(ipc_rpc::TransportError::Closed)),
                "case {i}: {end:?}"
            );
            assert_eq!(client.add(i as i64, 1).unwrap(), i as i64 + 1);
        }
        server.shutdown();
    });
}

pub fn second_server_on_live_endpoint_is_addr_in_use(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, client) = start(t);
        let err = ipc_rpc::serve(&server.endpoint(), ProbeServer::new(ProbeImpl)).unwrap_err();
        assert!(matches!(err, ServeError::AddrInUse { .. }), "{err:?}");
        assert!(err.to_string().contains("in use by a live server"), "{err}");
        assert_eq!(
            client.add(1, 2).unwrap(),
            3,
            "the first server is untouched"
        );
        server.shutdown();
    });
}

pub fn connect_to_missing_server_fails_clearly(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let ep = t.endpoint();
        // Bind and shut down, so the address is known to be free.
        let server = ipc_rpc::serve(&ep.endpoint, ProbeServer::new(ProbeImpl)).unwrap();
        let gone = server.endpoint();
        server.shutdown();
        let err = ProbeClient::connect(&gone).unwrap_err();
        assert!(matches!(err, RpcError::Connect { .. }), "{err:?}");
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            chain.contains(&gone.to_string()) && chain.contains("no server"),
            "{chain}"
        );
    });
}

pub fn client_drop_closes_server_connection(t: Transport, _: String) {
    watchdog(WATCHDOG, move || {
        let (_ep, server, client) = start(t);
        let clone = client.clone();
        assert_eq!(clone.add(1, 1).unwrap(), 2);
        assert_eq!(server.connection_count(), 1);
        drop(client);
        drop(clone);
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.connection_count() != 0 {
            assert!(
                Instant::now() < deadline,
                "the server kept a dropped client's connection"
            );
            thread::sleep(Duration::from_millis(5));
        }
        server.shutdown();
    });
}
