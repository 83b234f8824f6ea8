//! Subscriptions (server push) over every transport: `Sink` on the server,
//! `Subscription` on the client.

use std::thread;
use std::time::{Duration, Instant};

use ipc_rpc::RpcError;

use crate::common::*;

const WATCHDOG: Duration = Duration::from_secs(30);

/// More than the subscriber's buffer (64 events), so that the server's sink waits for
/// credit many times over.
const MANY: u32 = 1000;

pub fn subscription_events_arrive_in_order_and_complete(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let got: Vec<u32> = f
            .client
            .count(MANY)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, (0..MANY).collect::<Vec<_>>());
        // An empty stream ends at once; calls go on over the same connection.
        assert_eq!(f.client.count(0).unwrap().count(), 0);
        assert_eq!(f.client.add(2, 3).unwrap(), 5);
        f.shutdown();
    });
}

pub fn subscription_events_sent_after_the_handler_returned_arrive(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let mut events = f.client.count_later(5, 20).unwrap();
        // A call between events works, and the stream goes on.
        assert_eq!(events.next().unwrap().unwrap(), 0);
        assert_eq!(f.client.add(1, 1).unwrap(), 2);
        let first = events.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(first, Some(1));
        let rest: Vec<u32> = events.by_ref().collect::<Result<_, _>>().unwrap();
        assert_eq!(rest, [2, 3, 4]);
        assert!(events.is_done());
        assert!(events.next().is_none(), "ended for good");
        // No event within the time: Timeout, and the subscription goes on.
        let mut slow = f.client.count_later(1, 500).unwrap();
        let early = slow.recv_timeout(Duration::from_millis(10)).unwrap_err();
        assert!(matches!(early, RpcError::Timeout { .. }), "{early:?}");
        assert_eq!(slow.recv_timeout(Duration::from_secs(5)).unwrap(), Some(0));
        assert_eq!(slow.recv_timeout(Duration::from_secs(5)).unwrap(), None);
        drop((events, slow));
        f.shutdown();
    });
}

pub fn dropping_a_subscription_makes_the_servers_send_fail(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start_in_child(&name);
        let tag = unique_tag();
        let mut events = f.client.flood(tag, 64).unwrap();
        for _ in 0..3 {
            assert_eq!(events.next().unwrap().unwrap().len(), 64);
        }
        assert_eq!(f.client.flood_ended(tag).unwrap(), None);
        drop(events);
        let dropped = Instant::now();
        let ended = loop {
            if let Some(how) = f.client.flood_ended(tag).unwrap() {
                break how;
            }
            assert!(
                dropped.elapsed() < Duration::from_secs(1),
                "the server's sends still succeed 1 s after the subscription was dropped"
            );
            thread::sleep(Duration::from_millis(5));
        };
        assert!(ended.contains("dropped the subscription"), "{ended}");
        // The connection carries on, its late events read and dropped.
        for i in 0..20 {
            assert_eq!(f.client.add(i, 1).unwrap(), i + 1);
        }
        // A subscriber that closes its client: the sink's sends fail too.
        if let Some(other) = f.connect_another() {
            let tag = unique_tag();
            let mut events = other.flood(tag, 64).unwrap();
            assert_eq!(events.next().unwrap().unwrap().len(), 64);
            other.close();
            let closed = Instant::now();
            let ended = loop {
                if let Some(how) = f.client.flood_ended(tag).unwrap() {
                    break how;
                }
                assert!(
                    closed.elapsed() < Duration::from_secs(5),
                    "the server's sends still succeed 5 s after the subscriber closed its client"
                );
                thread::sleep(Duration::from_millis(5));
            };
            assert!(ended.contains("connection ended"), "{ended}");
            let end = events
                .find_map(Result::err)
                .expect("an error ends the stream");
            assert!(end.is_disconnected(), "{end:?}");
            // A subscriber whose process is killed: the same.
            let tag = unique_tag();
            let mut child = spawn_until_marker_with(
                &name,
                "IPC_RPC_TEST_DOOMED_CLIENT_OF",
                &f.endpoint().unwrap(),
                "SUBSCRIBED",
                &[("IPC_RPC_TEST_DOOMED_SUBSCRIBER", tag.to_string())],
            );
            child.kill().unwrap();
            child.wait().unwrap();
            let killed = Instant::now();
            let ended = loop {
                if let Some(how) = f.client.flood_ended(tag).unwrap() {
                    break how;
                }
                assert!(
                    killed.elapsed() < Duration::from_secs(5),
                    "the server's sends still succeed 5 s after the subscriber was killed"
                );
                thread::sleep(Duration::from_millis(5));
            };
            assert!(ended.contains("connection ended"), "{ended}");
        }
        f.shutdown();
    });
}

pub fn server_killed_during_a_subscription_ends_it_disconnected(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let mut f = t.start_in_child(&name);
        let mut events = f.client.count_later(100_000, 5).unwrap();
        assert_eq!(events.next().unwrap().unwrap(), 0);
        f.kill_server();
        let killed = Instant::now();
        let end = loop {
            match events.next() {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break e,
                None => panic!("the stream ended normally; the server was killed"),
            }
        };
        assert!(end.is_disconnected(), "{end:?}");
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "took {:?}",
            killed.elapsed()
        );
        assert!(events.next().is_none(), "nothing after the error");
    });
}

pub fn a_subscriber_that_stops_reading_does_not_delay_calls(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let tag = unique_tag();
        // 64 KiB events that nobody reads: the subscriber's buffer and the transport
        // fill up, and the server's sink waits.
        let stalled = f.client.flood(tag, 64 * 1024).unwrap();
        thread::sleep(Duration::from_millis(100));
        // Other calls on the same connection (which read the stalled events into its
        // buffer, then find their replies) ...
        let quick = f.client.with_timeout(Duration::from_secs(5));
        for i in 0..50 {
            assert_eq!(quick.add(i, 1).unwrap(), i + 1);
        }
        // ... and on another connection go on.
        if let Some(other) = f.connect_another() {
            let other = other.with_timeout(Duration::from_secs(5));
            for i in 0..50 {
                assert_eq!(other.add(i, 2).unwrap(), i + 2);
            }
            let got: Vec<u32> = other.count(200).unwrap().collect::<Result<_, _>>().unwrap();
            assert_eq!(got.len(), 200);
        }
        assert_eq!(quick.flood_ended(tag).unwrap(), None, "still open, waiting");
        drop((stalled, quick));
        f.shutdown();
    });
}

pub fn a_hundred_subscriptions_share_one_connection(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let subscriptions: Vec<_> = (0..100)
            .map(|i| f.client.count(10 + i % 3).unwrap())
            .collect();
        // Read in reverse order of subscribing: each one's events wait in its buffer.
        for (i, events) in subscriptions.into_iter().enumerate().rev() {
            let got: Vec<u32> = events.collect::<Result<_, _>>().unwrap();
            assert_eq!(
                got,
                (0..10 + i as u32 % 3).collect::<Vec<_>>(),
                "subscription {i}"
            );
        }
        // From several threads at once, beside calls, sent from the server's threads.
        let threads: Vec<_> = (0..4)
            .map(|k| {
                let client = f.client.clone();
                thread::spawn(move || {
                    let subs: Vec<_> = (0..25)
                        .map(|_| client.count_later(100, 0).unwrap())
                        .collect();
                    assert_eq!(client.add(k, k).unwrap(), 2 * k);
                    for events in subs {
                        assert_eq!(events.map(Result::unwrap).sum::<u32>(), 4950);
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

pub fn a_handler_that_panics_ends_its_subscription_with_remote_panic(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let mut events = f.client.count_then_panic(3, "job failed".into()).unwrap();
        for i in 0..3 {
            assert_eq!(events.next().unwrap().unwrap(), i);
        }
        let end = events.next().unwrap().unwrap_err();
        assert!(
            matches!(&end, RpcError::RemotePanic { message, .. } if message == "job failed"),
            "{end:?}"
        );
        assert!(events.next().is_none());
        assert_eq!(f.client.add(1, 2).unwrap(), 3, "the server goes on");
        drop(events);
        f.shutdown();
    });
}

pub fn a_full_subscriber_buffer_fails_try_send_and_times_send_out(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let tag = unique_tag();
        let events = f.client.fill_up(tag).unwrap();
        // Calls on the connection read the events into the subscription's buffer
        // (where nobody takes them) and get their replies.
        let how = loop {
            assert_eq!(f.client.add(1, 1).unwrap(), 2);
            if let Some(how) = f.client.flood_ended(tag).unwrap() {
                break how;
            }
            thread::sleep(Duration::from_millis(5));
        };
        assert!(
            how.starts_with("full after 64; then the subscriber consumed no event for 100ms"),
            "{how}"
        );
        let got: Vec<u32> = events.collect::<Result<_, _>>().unwrap();
        assert_eq!(got, (0..64).collect::<Vec<_>>());
        f.shutdown();
    });
}

/// Handlers that send their whole stream before they return wait for credit, and count
/// among the calls of their connection that run at once: with more of them than
/// `max_in_flight`, the server still reads the credit their subscribers grant (and
/// keeps the next request until one ends), so every stream completes, calls included.
pub fn more_handlers_streaming_than_max_in_flight_all_complete(t: Transport, name: String) {
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "max_in_flight=4");
        let subscriptions: Vec<_> = (0..10).map(|_| f.client.count(300).unwrap()).collect();
        let quick = f.client.clone();
        let call = thread::spawn(move || quick.add(2, 2).unwrap());
        for (i, events) in subscriptions.into_iter().enumerate() {
            let got: Vec<u32> = events.collect::<Result<_, _>>().unwrap();
            assert_eq!(got, (0..300).collect::<Vec<_>>(), "subscription {i}");
        }
        assert_eq!(call.join().unwrap(), 4);
        f.shutdown();
    });
}

/// Threads sharing one client, each a caller or a subscriber, all at once: over shared
/// memory the callers poll the connection for one another's replies while they spin,
/// and a caller or subscriber that takes the reading role must still find its reply
/// or event if a poller read it first. Every call gets its own answer, every stream
/// all its events in order, and nothing hangs.
pub fn callers_and_subscribers_sharing_a_client_all_get_theirs(t: Transport, name: String) {
    const CALLS: i64 = 2000;
    const EVENTS: u32 = 500;
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let mut callers = Vec::new();
        for n in 0..6i64 {
            let client = f.client.clone();
            callers.push(thread::spawn(move || {
                add_checked(&client, n, CALLS);
            }));
        }
        let mut subscribers = Vec::new();
        for _ in 0..2 {
            let client = f.client.clone();
            subscribers.push(thread::spawn(move || {
                for _ in 0..4 {
                    let got: Vec<u32> = client
                        .count(EVENTS)
                        .unwrap()
                        .collect::<Result<_, _>>()
                        .unwrap();
                    assert_eq!(got, (0..EVENTS).collect::<Vec<_>>());
                }
            }));
        }
        for t in callers.into_iter().chain(subscribers) {
            t.join().unwrap();
        }
        f.shutdown();
    });
}

/// A client that writes subscription frames by hand: credit for no subscription, a huge
/// credit, a cancel of nothing are ignored; a subscription that grants no window gets
/// exactly the events it then grants credit for; a malformed credit frame ends only
/// that connection.
pub fn hand_written_subscription_frames_are_checked(t: Transport, name: String) {
    use rpc_core::codec::{FrameBuf, decode_all, encode_frame};
    use rpc_core::wire;
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let count = ProbeClient::SERVICE
            .methods
            .iter()
            .position(|m| m.name == "count")
            .unwrap() as u16;
        let (mut parts, child) = crate::suite::raw_connection(&f);
        crate::suite::raw_handshake(&mut parts);
        let mut send = |encode: &dyn Fn(&mut FrameBuf<'_>)| {
            let mut buf = Vec::new();
            encode(&mut FrameBuf::vec(&mut buf));
            parts.sender.send(&buf).unwrap();
        };
        send(&|b| wire::encode_credit(999, 5, b).unwrap());
        send(&|b| wire::encode_credit(998, u32::MAX, b).unwrap());
        send(&|b| wire::encode_cancel(997, b).unwrap());
        // count(10) with a window of 0 events, then 3 of credit, twice.
        send(&|b| {
            wire::encode_request_header(1, count, None, false, b).unwrap();
            encode_frame(&10_u32, b, "n").unwrap();
            encode_frame(&0_u32, b, "window").unwrap();
        });
        send(&|b| wire::encode_credit(1, 3, b).unwrap());
        let mut events = Vec::new();
        let next = |parts: &mut rpc_core::Parts| {
            let frame = parts
                .receiver
                .recv(Some(Instant::now() + Duration::from_secs(5)))
                .expect("an event")
                .into_contiguous();
            let (id, status, payload) = wire::decode_response_header(&frame).unwrap();
            assert_eq!((id, status), (1, wire::STATUS_EVENT));
            decode_all::<u32>(payload, "event").unwrap()
        };
        for _ in 0..3 {
            events.push(next(&mut parts));
        }
        // No credit left: nothing more comes.
        let early = parts
            .receiver
            .recv(Some(Instant::now() + Duration::from_millis(100)));
        assert!(
            matches!(early, Err(ipc_rpc::TransportError::TimedOut)),
            "{:?}",
            early.map(|p| p.into_contiguous())
        );
        let mut buf = Vec::new();
        wire::encode_credit(1, 3, &mut FrameBuf::vec(&mut buf)).unwrap();
        parts.sender.send(&buf).unwrap();
        for _ in 0..3 {
            events.push(next(&mut parts));
        }
        assert_eq!(events, [0, 1, 2, 3, 4, 5]);
        // A credit frame without its count ends this connection only.
        let mut buf = Vec::new();
        let mut out = FrameBuf::vec(&mut buf);
        wire::encode_request_header(1, wire::CREDIT_METHOD, None, false, &mut out).unwrap();
        parts.sender.send(&buf).unwrap();
        let end = loop {
            match parts
                .receiver
                .recv(Some(Instant::now() + Duration::from_secs(5)))
            {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert!(matches!(end, ipc_rpc::TransportError::Closed), "{end:?}");
        assert_eq!(f.client.add(1, 2).unwrap(), 3);
        drop(parts);
        if let Some(mut child) = child {
            let status = child.wait().unwrap();
            assert!(status.success(), "the pipe child ended with {status}");
        }
        f.shutdown();
    });
}
