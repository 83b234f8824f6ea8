//! The transport contract (the module doc of `rpc_core::transport`), checked at the
//! `FrameSender`/`FrameReceiver` level for every transport, the in-process `mem`
//! reference included, the way iceoryx2's conformance tests are generic over the
//! channel.
//!
//! Test names come out as `unix::frames_arrive_whole_and_in_order`; adding a transport
//! is one word in the `conformance!` call below (and an arm in `Kind::pair`).

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rpc_core::codec::{FrameBuf, Payload};
use rpc_core::{FrameReceiver, FrameSender, Parts, Readiness, Transport as _, TransportError};
use transports::Endpoint;
use transports::test_util::killed_client;
use transports::test_util::wait::{owned, readable};

macro_rules! conformance {
    (transports: [$($kind:ident),* $(,)?], tests: $tests:tt) => {
        $( conformance!(@one $kind $tests); )*
    };
    (@one $kind:ident [$($test:ident),* $(,)?]) => {
        #[allow(non_snake_case)]
        mod $kind {
            $(
                #[test]
                fn $test() {
                    crate::watchdog(move || crate::$test(crate::Kind::$kind));
                }
            )*
        }
    };
}

#[cfg(feature = "tls")]
#[path = "support/certs.rs"]
mod certs;

/// The contract's tests, handed to `conformance!` with the transports they run over.
macro_rules! every_test {
    ($($transports:tt)*) => { conformance! { $($transports)*
    tests: [
        frames_arrive_whole_and_in_order,
        frames_sent_in_two_parts_arrive_as_their_bytes,
        frames_encoded_in_place_arrive_as_their_bytes,
        an_encoder_that_changes_its_length_sends_nothing,
        a_frame_over_the_limit_is_refused_and_the_sender_stays_usable,
        a_lowered_limit_refuses_larger_frames_on_receipt,
        a_receive_deadline_times_out_and_the_receiver_stays_usable,
        a_receive_whose_deadline_passed_takes_what_is_there,
        after_the_peer_is_gone_frames_drain_then_closed,
        close_ends_a_blocked_receive,
        abort_ends_a_send_blocked_on_a_peer_that_does_not_read,
        a_send_cut_short_by_its_deadline_is_finished_by_the_next,
        dropping_everything_leaves_no_named_object,
        an_idle_receiver_waits_on_descriptors_that_a_frame_makes_readable,
        a_parked_receiver_wakes_when_the_peer_is_dropped,
        a_half_received_frame_waits_then_completes,
        a_frame_wakes_a_parked_receiver_while_its_own_send_is_blocked,
        a_parked_receiver_wakes_when_the_peer_process_is_killed,
        a_receive_without_deadline_after_one_with_a_deadline_waits_for_the_frame,
    ]
} } }

every_test! { transports: [mem, pipe, unix, tcp, fifo, mq, shm], }

#[cfg(feature = "tls")]
every_test! { transports: [tls], }

/// Every test is done well within this; past it something hangs.
const WATCHDOG: Duration = Duration::from_secs(60);

/// The frame limit of the pairs the tests make.
const MAX_FRAME: usize = 64 << 20;

fn watchdog(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The test panicked: report its panic.
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: still running after {WATCHDOG:?}; something hangs")
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
enum Kind {
    mem,
    pipe,
    unix,
    tcp,
    fifo,
    mq,
    shm,
    #[cfg(feature = "tls")]
    tls,
}

/// A connected pair, and what must outlive it (a listener, a directory).
struct Pair {
    client: Parts,
    server: Parts,
    place: Place,
}

/// Where a pair's named objects live, removed when the pair's test ends.
struct Place {
    endpoint: Option<Endpoint>,
    listener: Option<Box<dyn rpc_core::Listener>>,
    dir: Option<PathBuf>,
    /// A `tls:` pair's certificates.
    _certs: Option<Certs>,
}

#[cfg(feature = "tls")]
type Certs = certs::Certs;
#[cfg(not(feature = "tls"))]
type Certs = ();

impl Drop for Place {
    fn drop(&mut self) {
        drop(self.listener.take());
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A bound listener, and the endpoint a client connects to (a `tls:` client's has the
/// authority, the listener's the server's certificate).
struct Listening {
    listener: Box<dyn rpc_core::Listener>,
    to: Endpoint,
    place: Place,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique() -> String {
    format!(
        "ipc-rpc-conf-{}-{}",
        transports::test_util::run_id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Kind {
    /// A connected pair of this kind with frames up to [`MAX_FRAME`].
    fn pair(self) -> Pair {
        let no_place = || Place {
            endpoint: None,
            listener: None,
            dir: None,
            _certs: None,
        };
        match self {
            Kind::mem => {
                let (a, b) = rpc_core::transport::mem::pair_with_max_frame(MAX_FRAME);
                Pair {
                    client: Box::new(a).split().unwrap(),
                    server: Box::new(b).split().unwrap(),
                    place: no_place(),
                }
            }
            Kind::pipe => {
                let (a, b) = transports::PipeTransport::pair(MAX_FRAME).unwrap();
                Pair {
                    client: Box::new(a).split().unwrap(),
                    server: Box::new(b).split().unwrap(),
                    place: no_place(),
                }
            }
            _ => self.over_listener(),
        }
    }

    /// Binds a fresh endpoint, connects to it, accepts the connection.
    fn over_listener(self) -> Pair {
        let Listening {
            mut listener,
            to,
            mut place,
        } = self.listen();
        // Some transports finish their set-up only when both sides are at it.
        let connector = thread::spawn(move || transports::connect(&to).unwrap().split().unwrap());
        let server = listener.accept().unwrap().split().unwrap();
        let client = connector.join().unwrap();
        place.endpoint = Some(listener.local_endpoint());
        place.listener = Some(listener);
        Pair {
            client,
            server,
            place,
        }
    }

    /// Binds a fresh endpoint of this kind.
    fn listen(self) -> Listening {
        let name = unique();
        let dir = std::env::temp_dir().join(&name);
        let q = format!("?max_frame={MAX_FRAME}");
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut certs = None;
        let (text, dir) = match self {
            Kind::unix => (format!("unix:{}/c.sock{q}", dir.display()), Some(dir)),
            Kind::fifo => (format!("fifo:{}/c{q}", dir.display()), Some(dir)),
            Kind::tcp => (format!("tcp:127.0.0.1:0{q}"), None),
            Kind::mq => (format!("mq:/{name}{q}"), None),
            Kind::shm => (format!("shm:/{name}{q}"), None),
            #[cfg(feature = "tls")]
            Kind::tls => {
                let made = certs.insert(certs::Certs::new());
                (
                    format!("tls:127.0.0.1:0{q}&{}", made.identity("server")),
                    None,
                )
            }
            Kind::mem | Kind::pipe => unreachable!("no listener"),
        };
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).unwrap();
        }
        let endpoint: Endpoint = text.parse().unwrap();
        let listener = transports::listen(&endpoint).unwrap();
        let to = client_endpoint(&listener.local_endpoint(), certs.as_ref());
        Listening {
            listener,
            to,
            place: Place {
                endpoint: None,
                listener: None,
                dir,
                _certs: certs,
            },
        }
    }

    /// Whether a send can block (its peer's buffers are bounded).
    fn sends_can_block(self) -> bool {
        self != Kind::mem
    }
}

/// The endpoint a client connects to for a bound one: the same, but a `tls:` client
/// trusts the test authority instead of holding the server's certificate.
fn client_endpoint(bound: &Endpoint, certs: Option<&Certs>) -> Endpoint {
    #[cfg(feature = "tls")]
    if let (transports::EndpointKind::Tls { port, .. }, Some(certs)) = (bound.kind(), certs) {
        return format!(
            "tls:127.0.0.1:{port}?max_frame={MAX_FRAME}&{}",
            certs.ca("ca.pem")
        )
        .parse()
        .unwrap();
    }
    let _ = certs;
    bound.clone()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn soon(ms: u64) -> Option<Instant> {
    Some(Instant::now() + Duration::from_millis(ms))
}

/// A received frame's bytes in one piece: its head, then its tail if it came apart.
fn joined(frame: Payload<'_>) -> Vec<u8> {
    frame.into_contiguous().into_owned()
}

/// Frames of every size up to the limit arrive whole, in order, unmodified, both ways.
fn frames_arrive_whole_and_in_order(kind: Kind) {
    let Pair {
        client,
        server,
        place: _place,
    } = kind.pair();
    let (mut cs, mut cr, _cc) = (client.sender, client.receiver, client.closer);
    let (mut ss, mut sr, _sc) = (server.sender, server.receiver, server.closer);
    let sizes = [0, 1, 100, 4095, 4096, 65_535, 65_536, 1 << 20, 5 << 20];
    for (sender, receiver) in [(&mut cs, &mut sr), (&mut ss, &mut cr)] {
        thread::scope(|s| {
            s.spawn(|| {
                for (i, len) in sizes.iter().enumerate() {
                    sender.send(&pattern(*len, i as u8)).unwrap();
                }
            });
            for (i, len) in sizes.iter().enumerate() {
                let frame = joined(receiver.recv(soon(20_000)).unwrap());
                assert!(
                    frame == pattern(*len, i as u8),
                    "frame {i} of {len} bytes arrived as {} bytes, or changed",
                    frame.len()
                );
            }
        });
    }
}

/// A frame given as a head and a tail (`send_parts`) arrives as the same bytes, head
/// then tail, whatever the sizes: tails the stream framing sends split (64 KiB and
/// more), frames larger than an shm ring (streamed from both parts).
fn frames_sent_in_two_parts_arrive_as_their_bytes(kind: Kind) {
    let Pair {
        client,
        server,
        place: _place,
    } = kind.pair();
    let (mut cs, mut cr, _cc) = (client.sender, client.receiver, client.closer);
    let (mut ss, mut sr, _sc) = (server.sender, server.receiver, server.closer);
    let split_min = rpc_core::framing::SPLIT_MIN;
    let sizes = [
        (0, 0),
        (7, 0),
        (0, 7),
        (13, 4096),
        (13, split_min - 1),
        (13, split_min),
        (0, split_min),
        (3, 1 << 20),
        (70_000, 70_000),
        (100, 5 << 20),
        ((3 << 20) + 5, 1 << 20),
    ];
    for (sender, receiver) in [(&mut cs, &mut sr), (&mut ss, &mut cr)] {
        thread::scope(|s| {
            s.spawn(|| {
                for (i, (head, tail)) in sizes.iter().enumerate() {
                    let frame = pattern(head + tail, i as u8);
                    sender.send_parts(&frame[..*head], &frame[*head..]).unwrap();
                }
            });
            for (i, (head, tail)) in sizes.iter().enumerate() {
                let frame = joined(receiver.recv(soon(20_000)).unwrap());
                assert!(
                    frame == pattern(head + tail, i as u8),
                    "frame {i} of {head} + {tail} bytes arrived as {} bytes, or changed",
                    frame.len()
                );
            }
        });
    }
}

/// Sends `frame` encoded in place where the sender takes it (`send_encoded`), else as
/// one part; says which.
fn send_encoded_or_whole(sender: &mut dyn FrameSender, frame: &[u8]) -> bool {
    match sender.send_encoded(&mut |out: &mut FrameBuf<'_>| out.put(frame)) {
        Some(sent) => {
            sent.unwrap().unwrap();
            true
        }
        None => {
            sender.send(frame).unwrap();
            false
        }
    }
}

/// A frame a sender takes encoded in place (`send_encoded`) arrives as the bytes the
/// encoder wrote; one it declines (every transport but shm, and frames larger than an
/// shm ring) goes by `send`.
fn frames_encoded_in_place_arrive_as_their_bytes(kind: Kind) {
    let Pair {
        client,
        server,
        place: _place,
    } = kind.pair();
    let (mut cs, mut cr, _cc) = (client.sender, client.receiver, client.closer);
    let (mut ss, mut sr, _sc) = (server.sender, server.receiver, server.closer);
    let sizes = [0, 4097, 65_536, 1 << 20, 5 << 20];
    for (sender, receiver) in [(&mut cs, &mut sr), (&mut ss, &mut cr)] {
        let in_place = thread::scope(|s| {
            let sending = s.spawn(|| {
                sizes
                    .iter()
                    .enumerate()
                    .map(|(i, len)| send_encoded_or_whole(&mut **sender, &pattern(*len, i as u8)))
                    .collect::<Vec<_>>()
            });
            for (i, len) in sizes.iter().enumerate() {
                let frame = joined(receiver.recv(soon(20_000)).unwrap());
                assert!(
                    frame == pattern(*len, i as u8),
                    "frame {i} of {len} bytes arrived as {} bytes, or changed",
                    frame.len()
                );
            }
            sending.join().unwrap()
        });
        // The shm ring (2 MiB) takes every frame that fits it in place.
        let expected = if kind == Kind::shm {
            [true, true, true, true, false]
        } else {
            [false; 5]
        };
        assert_eq!(in_place, expected);
    }
}

/// An encoder whose second pass writes another length than it counted (or fails)
/// gets `Corrupt` from a sender that encodes in place; nothing of that frame reaches
/// the peer, and the sender stays usable.
fn an_encoder_that_changes_its_length_sends_nothing(kind: Kind) {
    let mut pair = kind.pair();
    let frame = pattern(10_000, 1);
    for (case, second) in [(0, 9_999), (1, 10_001), (2, usize::MAX)] {
        let mut pass = 0;
        let sent = pair
            .client
            .sender
            .send_encoded(&mut |out: &mut FrameBuf<'_>| {
                pass += 1;
                match (pass, second) {
                    (1, _) => out.put(&frame),
                    (_, usize::MAX) => out.put(&frame[..10]).and_then(|()| {
                        Err(rpc_core::CodecError::Decode {
                            what: "test",
                            source: "fails on its second pass".into(),
                        })
                    }),
                    _ => out.put(&pattern(second, 1)),
                }
            });
        match sent {
            None => assert!(kind != Kind::shm, "shm encodes a 10 KB frame in place"),
            Some(sent) => assert!(
                matches!(sent, Err(TransportError::Corrupt(_))),
                "case {case}: {sent:?}"
            ),
        }
    }
    pair.client.sender.send(b"after").unwrap();
    assert_eq!(
        joined(pair.server.receiver.recv(soon(10_000)).unwrap()),
        b"after"
    );
}

/// A frame over `max_frame` fails with `FrameTooLarge`, nothing sent; the next one
/// goes through.
fn a_frame_over_the_limit_is_refused_and_the_sender_stays_usable(kind: Kind) {
    let mut pair = kind.pair();
    let err = pair
        .client
        .sender
        .send(&vec![0; MAX_FRAME + 1])
        .unwrap_err();
    assert!(
        matches!(err, TransportError::FrameTooLarge { max, .. } if max == MAX_FRAME as u64),
        "{err:?}"
    );
    pair.client.sender.send(b"after").unwrap();
    assert_eq!(
        joined(pair.server.receiver.recv(soon(10_000)).unwrap()),
        b"after"
    );
}

/// A receiver whose limit was lowered refuses a larger frame with `FrameTooLarge`.
fn a_lowered_limit_refuses_larger_frames_on_receipt(kind: Kind) {
    let mut pair = kind.pair();
    pair.server.receiver.set_max_frame(64);
    // One at a time: a message queue holds one message by default.
    pair.client.sender.send(&[7; 64]).unwrap();
    assert_eq!(
        joined(pair.server.receiver.recv(soon(10_000)).unwrap()),
        [7; 64]
    );
    pair.client.sender.send(&[7; 1000]).unwrap();
    let err = pair.server.receiver.recv(soon(10_000)).unwrap_err();
    assert!(
        matches!(err, TransportError::FrameTooLarge { max: 64, .. }),
        "{err:?}"
    );
}

/// `recv` with a deadline returns `TimedOut` when it passes, and a later `recv` gets
/// the frame sent after it.
fn a_receive_deadline_times_out_and_the_receiver_stays_usable(kind: Kind) {
    let mut pair = kind.pair();
    let start = Instant::now();
    let err = pair.server.receiver.recv(soon(100)).unwrap_err();
    assert!(matches!(err, TransportError::TimedOut), "{err:?}");
    assert!(start.elapsed() >= Duration::from_millis(100));
    pair.client.sender.send(b"late").unwrap();
    assert_eq!(
        joined(pair.server.receiver.recv(soon(10_000)).unwrap()),
        b"late"
    );
}

/// `recv` with a deadline that has already passed only looks: it returns a frame that
/// has arrived, and `TimedOut` while none has, and the receiver stays usable (a client's
/// callers poll so for each other's replies, see `Transport::wait_spin`).
fn a_receive_whose_deadline_passed_takes_what_is_there(kind: Kind) {
    let mut pair = kind.pair();
    let err = pair.server.receiver.recv(Some(Instant::now())).unwrap_err();
    assert!(matches!(err, TransportError::TimedOut), "{err:?}");
    // One at a time: a message queue holds one message by default.
    for frame in [&b"first"[..], b"second"] {
        pair.client.sender.send(frame).unwrap();
        // Looks until the frame has crossed (over TCP it may still be on its way).
        let until = Instant::now() + Duration::from_secs(10);
        let got = loop {
            match pair.server.receiver.recv(Some(Instant::now())) {
                Ok(got) => break joined(got),
                Err(TransportError::TimedOut) if Instant::now() < until => {
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("{e:?}"),
            }
        };
        assert_eq!(got, frame);
    }
    let err = pair.server.receiver.recv(Some(Instant::now())).unwrap_err();
    assert!(matches!(err, TransportError::TimedOut), "{err:?}");
    pair.client.sender.send(b"third").unwrap();
    assert_eq!(
        joined(pair.server.receiver.recv(soon(10_000)).unwrap()),
        b"third"
    );
}

/// Frames sent before the peer went away are received, then `Closed`; a send then
/// fails with `Closed`.
fn after_the_peer_is_gone_frames_drain_then_closed(kind: Kind) {
    let Pair {
        client,
        mut server,
        place: _place,
    } = kind.pair();
    // From a thread: a message queue holds one message by default.
    let peer = thread::spawn(move || {
        let mut client = client;
        client.sender.send(b"one").unwrap();
        client.sender.send(b"two").unwrap();
    });
    assert_eq!(joined(server.receiver.recv(soon(10_000)).unwrap()), b"one");
    assert_eq!(joined(server.receiver.recv(soon(10_000)).unwrap()), b"two");
    peer.join().unwrap();
    let end = server.receiver.recv(soon(10_000));
    assert!(matches!(end, Err(TransportError::Closed)), "{end:?}");
    // TCP takes the first write after the peer's close into its buffer and learns of
    // the close from the peer's reset: `Closed` comes within a few sends.
    let mut sent = server.sender.send(b"anyone?");
    for _ in 0..100 {
        if sent.is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(10));
        sent = server.sender.send(b"anyone?");
    }
    assert!(matches!(sent, Err(TransportError::Closed)), "{sent:?}");
}

/// The closer makes a `recv` blocked with no deadline return `Closed`.
fn close_ends_a_blocked_receive(kind: Kind) {
    let Pair {
        client: _client,
        server,
        place: _place,
    } = kind.pair();
    let Parts {
        mut receiver,
        closer,
        sender: _sender,
    } = server;
    let blocked = thread::spawn(move || receiver.recv(None).map(joined));
    thread::sleep(Duration::from_millis(50));
    closer.close();
    let end = blocked.join().unwrap();
    assert!(matches!(end, Err(TransportError::Closed)), "{end:?}");
}

/// `abort` makes a send blocked on a peer that does not read return `Closed` (where
/// sends can block at all; elsewhere the send completes): never a hang.
fn abort_ends_a_send_blocked_on_a_peer_that_does_not_read(kind: Kind) {
    let Pair {
        client,
        server: _server,
        place: _place,
    } = kind.pair();
    let Parts {
        mut sender,
        closer,
        receiver: _receiver,
    } = client;
    let big = vec![1u8; 32 << 20];
    let blocked = thread::spawn(move || sender.send(&big));
    thread::sleep(Duration::from_millis(200));
    closer.abort();
    let end = blocked.join().unwrap();
    if kind.sends_can_block() {
        assert!(matches!(end, Err(TransportError::Closed)), "{end:?}");
    } else {
        assert!(end.is_ok(), "{end:?}");
    }
}

/// A frame the peer does not take in time fails with `TimedOut`, its rest kept; a
/// later send that cannot finish that rest in time fails too without starting its own
/// frame; once the peer reads, the next send finishes the cut frame first, and the
/// peer receives every frame that was started, whole and in order. The cut frame is
/// sent in two parts, so that its rest may span both.
fn a_send_cut_short_by_its_deadline_is_finished_by_the_next(kind: Kind) {
    if !kind.sends_can_block() {
        return eprintln!("skipped: {kind:?} sends never wait");
    }
    // Larger than any kernel buffer on the way (TCP loopback takes megabytes).
    let big = pattern(32 << 20, 3);
    let Pair {
        mut client,
        mut server,
        place: _place,
    } = kind.pair();
    client.sender.set_deadline(soon(300));
    let (head, tail) = big.split_at((3 << 20) + 5);
    let cut = client.sender.send_parts(head, tail);
    assert!(matches!(cut, Err(TransportError::TimedOut)), "{cut:?}");
    assert!(client.sender.has_backlog(), "part of the frame went");
    client.sender.set_deadline(soon(300));
    let blocked = client.sender.send(b"never started");
    assert!(
        matches!(blocked, Err(TransportError::TimedOut)),
        "{blocked:?}"
    );
    let reader = thread::spawn(move || {
        let first = joined(server.receiver.recv(soon(60_000)).unwrap());
        let second = joined(server.receiver.recv(soon(60_000)).unwrap());
        (first, second)
    });
    client.sender.set_deadline(None);
    client.sender.send(b"after").unwrap();
    assert!(!client.sender.has_backlog());
    let (first, second) = reader.join().unwrap();
    assert!(first == big, "the cut frame arrived whole");
    assert_eq!(second, b"after");
}

/// Once the parts and the listener are dropped, nothing named after the endpoint is
/// left in the file system, /dev/shm or the queue namespace.
fn dropping_everything_leaves_no_named_object(kind: Kind) {
    let Pair {
        mut client,
        mut server,
        mut place,
    } = kind.pair();
    client.sender.send(b"x").unwrap();
    assert_eq!(joined(server.receiver.recv(soon(10_000)).unwrap()), b"x");
    drop((client, server));
    drop(place.listener.take());
    let Some(endpoint) = place.endpoint.clone() else {
        return;
    };
    let Some(name) = endpoint.kind().name() else {
        return;
    };
    let name = name.trim_start_matches('/').to_owned();
    let mut left = Vec::new();
    if let Some(dir) = &place.dir {
        left.extend(
            std::fs::read_dir(dir)
                .unwrap()
                .flatten()
                .map(|e| e.path().display().to_string()),
        );
    }
    for ns in ["/dev/shm", "/dev/mqueue"] {
        if let Ok(entries) = std::fs::read_dir(ns) {
            left.extend(
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(&name)),
            );
        }
    }
    assert!(left.is_empty(), "{endpoint} left {left:?}");
}

/// The next `recv` says `Closed` within a second (the peer is gone).
fn assert_closed_at_once(receiver: &mut dyn FrameReceiver, kind: Kind) {
    let start = Instant::now();
    let end = receiver.recv(soon(5_000)).map(joined);
    assert!(matches!(end, Err(TransportError::Closed)), "{end:?}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{kind:?}: Closed took {:?}",
        start.elapsed()
    );
}

/// What a server does with a connection before parking it: a `recv` that times out,
/// then `prepare_wait`. `None` for a transport that only a blocked thread can wait for.
fn park(receiver: &mut dyn FrameReceiver) -> Option<Readiness<'_>> {
    let idle = receiver.recv(soon(10)).map(joined);
    assert!(matches!(idle, Err(TransportError::TimedOut)), "{idle:?}");
    match receiver.prepare_wait() {
        Readiness::Blocking => None,
        other => Some(other),
    }
}

/// The descriptors of a receiver with nothing to read; they must not be readable.
fn idle_fds(receiver: &mut dyn FrameReceiver, kind: Kind) -> Vec<OwnedFd> {
    match receiver.prepare_wait() {
        Readiness::WaitOn(fds) => {
            let fds = owned(fds);
            assert!(
                !readable(&fds, 0),
                "{kind:?}: the descriptors of an idle receiver are readable"
            );
            fds
        }
        other => panic!("{kind:?}: an idle receiver says {other:?}"),
    }
}

/// An idle connection's receiver says `WaitOn`, its descriptors not readable; a frame
/// from the peer makes them readable (or `prepare_wait` says `Ready`) and `recv` gets
/// it; once it is taken, nothing is left readable (a doorbell is drained): after one
/// frame, after a burst of frames, and after a `recv` that timed out.
fn an_idle_receiver_waits_on_descriptors_that_a_frame_makes_readable(kind: Kind) {
    let mut pair = kind.pair();
    let (sender, receiver) = (&mut pair.client.sender, &mut *pair.server.receiver);
    let Some(first) = park(receiver) else {
        return eprintln!("skipped: {kind:?} receivers wait in a thread (Blocking)");
    };
    let Readiness::WaitOn(fds) = first else {
        panic!("{kind:?}: an idle receiver says {first:?}");
    };
    let fds = owned(fds);
    assert!(!readable(&fds, 0), "{kind:?}: readable before any frame");
    sender.send(b"one").unwrap();
    assert!(
        readable(&fds, 1000),
        "{kind:?}: a frame did not wake the wait"
    );
    assert_eq!(joined(receiver.recv(soon(10_000)).unwrap()), b"one");
    // Straight after a frame, and after a recv that timed out: nothing left readable.
    idle_fds(receiver, kind);
    let fds = idle_fds(receiver, kind);
    assert!(park(receiver).is_some());
    // A burst while parked: several rings, one wake-up, all drained afterwards.
    let burst: Vec<Vec<u8>> = (0..3).map(|i| pattern(100, i)).collect();
    thread::scope(|s| {
        // From a thread: a message queue holds one message by default.
        s.spawn(|| {
            for frame in &burst {
                sender.send(frame).unwrap();
            }
        });
        assert!(
            readable(&fds, 1000),
            "{kind:?}: a burst did not wake the wait"
        );
        for frame in &burst {
            assert_eq!(&joined(receiver.recv(soon(10_000)).unwrap()), frame);
        }
    });
    idle_fds(receiver, kind);
    assert!(park(receiver).is_some());
    idle_fds(receiver, kind);
    // A frame that arrived before `prepare_wait`: `Ready`, or readable at once.
    sender.send(b"last").unwrap();
    match receiver.prepare_wait() {
        Readiness::Ready => {}
        Readiness::WaitOn(fds) => assert!(readable(&owned(fds), 1000), "{kind:?}: not woken"),
        Readiness::Blocking => panic!("{kind:?}: Blocking after WaitOn"),
    }
    assert_eq!(joined(receiver.recv(soon(10_000)).unwrap()), b"last");
}

/// A receiver parked while its peer drops every part wakes (its descriptors turn
/// readable, or `prepare_wait` says `Ready`), and `recv` returns `Closed` at once.
fn a_parked_receiver_wakes_when_the_peer_is_dropped(kind: Kind) {
    let Pair {
        client,
        mut server,
        place: _place,
    } = kind.pair();
    let Some(first) = park(&mut *server.receiver) else {
        return eprintln!("skipped: {kind:?} receivers wait in a thread (Blocking)");
    };
    let Readiness::WaitOn(fds) = first else {
        panic!("{kind:?}: an idle receiver says {first:?}");
    };
    let fds = owned(fds);
    drop(client);
    assert!(
        readable(&fds, 1000),
        "{kind:?}: the peer's departure did not wake the wait"
    );
    assert_closed_at_once(&mut *server.receiver, kind);
}

/// A frame the peer stopped sending half-way (its send cut short by a deadline) leaves
/// the receiver waiting: `recv` times out with part of it, `prepare_wait` says
/// `WaitOn` with nothing readable; once the peer sends the rest, the descriptors turn
/// readable and `recv` returns the frame whole.
fn a_half_received_frame_waits_then_completes(kind: Kind) {
    if !kind.sends_can_block() {
        return eprintln!("skipped: {kind:?} sends never wait, so no frame stops half-way");
    }
    let big = pattern(32 << 20, 5);
    let Pair {
        mut client,
        mut server,
        place: _place,
    } = kind.pair();
    client.sender.set_deadline(soon(300));
    let cut = client.sender.send(&big);
    assert!(matches!(cut, Err(TransportError::TimedOut)), "{cut:?}");
    assert!(client.sender.has_backlog(), "part of the frame went");
    // Take what arrived: `recv` times out with the frame unfinished.
    let mut fds = None;
    for _ in 0..500 {
        let Some(readiness) = park(&mut *server.receiver) else {
            return eprintln!("skipped: {kind:?} receivers wait in a thread (Blocking)");
        };
        if let Readiness::WaitOn(w) = readiness
            && !readable(&owned(w), 0)
        {
            fds = Some(owned(w));
            break;
        }
    }
    let fds = fds.expect("the receiver took what arrived and waits for the rest");
    thread::scope(|s| {
        s.spawn(|| {
            client.sender.set_deadline(None);
            client.sender.send(b"after").unwrap();
        });
        assert!(
            readable(&fds, 1000),
            "{kind:?}: the rest did not wake the wait"
        );
        let frame = joined(server.receiver.recv(soon(60_000)).unwrap());
        assert!(frame == big, "the frame arrived whole");
        assert_eq!(
            joined(server.receiver.recv(soon(60_000)).unwrap()),
            b"after"
        );
    });
}

/// A frame from the peer wakes a parked receiver even while this side's own send is
/// blocked on the peer (a transport whose blocked sender takes incoming messages aside,
/// mq, must leave them for the poller to see).
fn a_frame_wakes_a_parked_receiver_while_its_own_send_is_blocked(kind: Kind) {
    if !kind.sends_can_block() {
        return eprintln!("skipped: {kind:?} sends never wait");
    }
    let big = pattern(32 << 20, 9);
    let Pair {
        mut client,
        server,
        place: _place,
    } = kind.pair();
    let Parts {
        mut sender,
        mut receiver,
        closer: _closer,
    } = server;
    let Some(first) = park(&mut *receiver) else {
        return eprintln!("skipped: {kind:?} receivers wait in a thread (Blocking)");
    };
    let Readiness::WaitOn(fds) = first else {
        panic!("{kind:?}: an idle receiver says {first:?}");
    };
    let fds = owned(fds);
    thread::scope(|s| {
        let sending = s.spawn(|| sender.send(&big));
        // Give the send time to block on the full peer (the test holds either way).
        thread::sleep(Duration::from_millis(100));
        client.sender.send(b"ping").unwrap();
        // Time for a blocked sender to take the frame aside, were it to (the check
        // below then fails; with the fix it holds however long this takes).
        thread::sleep(Duration::from_millis(100));
        assert!(
            readable(&fds, 1000),
            "{kind:?}: the frame did not wake the wait"
        );
        assert_eq!(joined(receiver.recv(soon(10_000)).unwrap()), b"ping");
        let got = joined(client.receiver.recv(soon(60_000)).unwrap());
        assert!(got == big, "the blocked frame arrived whole");
        sending.join().unwrap().unwrap();
    });
}

/// A receiver parked while its client process is killed (`kill -9`, no chance to say
/// goodbye) wakes within a bound, and its next `recv` is `Closed` at once.
fn a_parked_receiver_wakes_when_the_peer_process_is_killed(kind: Kind) {
    killed_client::role();
    if matches!(kind, Kind::mem | Kind::pipe) {
        return eprintln!("skipped: {kind:?} has no listener to connect a child to");
    }
    let Listening {
        mut listener,
        to,
        place: _place,
    } = kind.listen();
    let mut child = killed_client::spawn(
        &format!("{kind:?}::a_parked_receiver_wakes_when_the_peer_process_is_killed"),
        &to,
    );
    let mut server = listener.accept().unwrap().split().unwrap();
    killed_client::wait_ready(&mut child);
    assert_eq!(
        joined(server.receiver.recv(soon(10_000)).unwrap()),
        b"hello"
    );
    let Some(Readiness::WaitOn(fds)) = park(&mut *server.receiver) else {
        let _ = child.kill();
        let _ = child.wait();
        return eprintln!("skipped: {kind:?} receivers do not wait on descriptors");
    };
    let fds = owned(fds);
    assert!(!readable(&fds, 0), "{kind:?}: readable before the kill");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        readable(&fds, 2000),
        "{kind:?}: the peer's death did not wake the wait"
    );
    assert_closed_at_once(&mut *server.receiver, kind);
    drop(server);
    drop(listener);
}

/// A `recv` without a deadline after ones with deadlines (which may have left a
/// receive time-out on a socket) waits for the frame however long it takes, and later
/// deadlines still time out.
fn a_receive_without_deadline_after_one_with_a_deadline_waits_for_the_frame(kind: Kind) {
    let Pair {
        mut client,
        mut server,
        place: _place,
    } = kind.pair();
    for ms in [10, 30] {
        let idle = server.receiver.recv(soon(ms)).map(joined);
        assert!(matches!(idle, Err(TransportError::TimedOut)), "{idle:?}");
    }
    thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(200));
            client.sender.send(b"late").unwrap();
        });
        assert_eq!(joined(server.receiver.recv(None).unwrap()), b"late");
    });
    let start = Instant::now();
    let idle = server.receiver.recv(soon(50)).map(joined);
    assert!(matches!(idle, Err(TransportError::TimedOut)), "{idle:?}");
    assert!(start.elapsed() >= Duration::from_millis(50));
}
