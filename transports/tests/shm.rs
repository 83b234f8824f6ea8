//! The shared-memory transport on its own: stress through the rings (two threads, two
//! processes), frames larger than a small ring, and peers that lie.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rpc_core::codec::Payload;
use rpc_core::{Parts, TransportError};
use transports::Endpoint;

/// A received frame's bytes: shm frames always come whole, in the head.
fn whole(frame: Payload<'_>) -> &[u8] {
    assert!(frame.tail.is_none(), "an shm frame came split");
    frame.head
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(options: &str) -> Endpoint {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let q = if options.is_empty() {
        String::new()
    } else {
        format!("?{options}")
    };
    format!(
        "shm:/ipc-rpc-test-{}-{n}{q}",
        transports::test_util::run_id()
    )
    .parse()
    .unwrap()
}

/// Fails the test if `f` does not finish in time (a hang is a failure, not a stall).
fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("watchdog: still running after {limit:?}"),
    }
}

/// A connected pair in this process: (server side, client side).
fn pair(endpoint: &Endpoint) -> (Parts, Parts) {
    let mut listener = transports::listen(endpoint).unwrap();
    // Set-up completes in `split`, while the client waits in `connect`.
    let accepting = thread::spawn(move || listener.accept().and_then(|t| t.split()));
    let client = transports::connect(endpoint).unwrap().split().unwrap();
    let server = accepting.join().unwrap().unwrap();
    (server, client)
}

/// Frame `i`: a length that sweeps small, page-crossing and (every 1000th) larger than
/// a small ring, filled with bytes derived from `i`.
fn frame(i: u64, buf: &mut Vec<u8>) {
    let len = match i % 1000 {
        0 => 20_000 + (i as usize % 7),
        n => (n as usize * 7) % 300,
    };
    buf.clear();
    buf.extend((0..len).map(|k| (i as usize).wrapping_mul(31).wrapping_add(k) as u8));
}

const COUNT: u64 = 1_000_000;

#[test]
fn two_threads_move_a_million_frames_intact_through_a_small_ring() {
    watchdog(Duration::from_secs(120), || {
        let endpoint = unique("ring=4096");
        let (mut server, mut client) = pair(&endpoint);
        let producer = thread::spawn(move || {
            let mut buf = Vec::new();
            for i in 0..COUNT {
                frame(i, &mut buf);
                client.sender.send(&buf).unwrap();
            }
            client
        });
        let mut want = Vec::new();
        for i in 0..COUNT {
            frame(i, &mut want);
            let got = whole(server.receiver.recv(None).unwrap());
            assert!(
                got == want.as_slice(),
                "frame {i} differs ({} vs {} bytes)",
                got.len(),
                want.len()
            );
        }
        let client = producer.join().unwrap();
        drop(client);
        assert!(matches!(
            server.receiver.recv(None),
            Err(TransportError::Closed)
        ));
    });
}

/// Sends every frame back until the connection ends.
fn echo(mut parts: Parts) {
    while let Ok(frame) = parts.receiver.recv(None) {
        // Straight from the incoming ring into the outgoing one.
        if parts.sender.send(whole(frame)).is_err() {
            break;
        }
    }
}

/// Child role: echoes every frame back over a raw shm connection, then exits.
fn echo_child() {
    let Ok(endpoint) = std::env::var("IPC_RPC_TEST_SHM_ECHO") else {
        return;
    };
    let mut listener = transports::listen(&endpoint.parse().unwrap()).unwrap();
    println!("READY");
    let parts = listener.accept().unwrap().split().unwrap();
    // `exit` below runs no destructors: remove the rendezvous files now.
    drop(listener);
    echo(parts);
    std::process::exit(0);
}

fn spawn_echo(test: &str, endpoint: &Endpoint) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("IPC_RPC_TEST_SHM_ECHO", endpoint.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while !lines
        .next()
        .expect("child output")
        .unwrap()
        .contains("READY")
    {}
    child
}

#[test]
fn two_processes_echo_a_million_frames_intact() {
    echo_child();
    watchdog(Duration::from_secs(180), || {
        let endpoint = unique("ring=65536");
        let mut child = spawn_echo("two_processes_echo_a_million_frames_intact", &endpoint);
        let mut parts = transports::connect(&endpoint).unwrap().split().unwrap();
        // Pipelined: up to `window` frames in flight, so both rings wrap constantly.
        let window = 64;
        let mut buf = Vec::new();
        let mut want = Vec::new();
        let mut sent = 0;
        for i in 0..COUNT {
            while sent < COUNT && sent < i + window {
                frame(sent, &mut buf);
                parts.sender.send(&buf).unwrap();
                sent += 1;
            }
            frame(i, &mut want);
            let got = whole(parts.receiver.recv(None).unwrap());
            assert!(got == want.as_slice(), "frame {i} differs");
        }
        drop(parts);
        assert!(child.wait().unwrap().success());
    });
}

#[test]
fn killed_peer_is_noticed_within_a_bound() {
    echo_child();
    watchdog(Duration::from_secs(30), || {
        let endpoint = unique("");
        let mut child = spawn_echo("killed_peer_is_noticed_within_a_bound", &endpoint);
        let mut parts = transports::connect(&endpoint).unwrap().split().unwrap();
        parts.sender.send(b"ping").unwrap();
        assert_eq!(whole(parts.receiver.recv(None).unwrap()), b"ping");
        child.kill().unwrap();
        let killed = Instant::now();
        child.wait().unwrap();
        let end = parts.receiver.recv(None);
        assert!(matches!(end, Err(TransportError::Closed)), "{end:?}");
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "took {:?}",
            killed.elapsed()
        );
        let stem = format!(
            "/dev/shm/ipc-rpc.{}",
            endpoint.to_string().trim_start_matches("shm:/")
        );
        let _ = std::fs::remove_file(format!("{stem}.sock"));
        let _ = std::fs::remove_file(format!("{stem}.sock.lock"));
    });
}

#[test]
fn deadline_mid_stream_keeps_the_frame() {
    watchdog(Duration::from_secs(30), || {
        let endpoint = unique("ring=4096");
        let (mut server, mut client) = pair(&endpoint);
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let expected = big.clone();
        // The sender stalls after part of the frame: the ring is tiny and nobody reads.
        let sender = thread::spawn(move || {
            client.sender.send(&big).unwrap();
            client
        });
        thread::sleep(Duration::from_millis(50));
        let soon = Instant::now() + Duration::from_millis(20);
        // Reads part of the streamed frame, then times out; the next recv continues it.
        let first = server.receiver.recv(Some(soon));
        assert!(matches!(first, Err(TransportError::TimedOut)) || first.is_ok());
        if let Ok(frame) = first {
            assert_eq!(whole(frame), expected.as_slice());
        } else {
            assert_eq!(
                whole(server.receiver.recv(None).unwrap()),
                expected.as_slice()
            );
        }
        drop(sender.join().unwrap());
    });
}

#[test]
fn closer_wakes_a_blocked_receive() {
    watchdog(Duration::from_secs(30), || {
        let endpoint = unique("");
        let (server, _client) = pair(&endpoint);
        let Parts {
            mut receiver,
            closer,
            ..
        } = server;
        let blocked = thread::spawn(move || receiver.recv(None).map(|f| whole(f).to_vec()));
        thread::sleep(Duration::from_millis(100));
        let closed_at = Instant::now();
        closer.close();
        assert!(matches!(
            blocked.join().unwrap(),
            Err(TransportError::Closed)
        ));
        assert!(closed_at.elapsed() < Duration::from_millis(500));
    });
}

#[test]
fn oversized_ring_option_and_long_names_are_refused_clearly() {
    let long = format!("shm:/{}", "n".repeat(100));
    let err = transports::listen(&long.parse().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("too long"), "{err}");
    let err = transports::connect(&unique("")).err().unwrap();
    let chain = format!("{err}: {:?}", std::error::Error::source(&err));
    assert!(chain.contains("no server"), "{chain}");
}

/// A hostile client: sets up a segment by hand, then breaks the protocol.
mod hostile {
    use super::*;
    use nix::errno::Errno;
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};
    use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
    use nix::unistd::ftruncate;
    use std::num::NonZeroUsize;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
    use transports::test_util::shm::layout::{self, ControlPage};

    /// Fills a fresh segment's control page.
    type Init = dyn Fn(&ControlPage);
    /// Breaks the protocol on a connected segment (control page, c2s data).
    type Lie = dyn Fn(&ControlPage, *mut u8);

    /// The seals an honest client sets.
    const SEALED: SealFlag = SealFlag::F_SEAL_SHRINK
        .union(SealFlag::F_SEAL_GROW)
        .union(SealFlag::F_SEAL_SEAL);

    struct Mapping {
        ptr: std::ptr::NonNull<std::ffi::c_void>,
        len: usize,
        fd: OwnedFd,
    }

    impl Mapping {
        fn control(&self) -> &ControlPage {
            // SAFETY: the mapping is page-aligned, at least DATA_OFFSET bytes, and
            // ControlPage consists of atomics only.
            unsafe { self.ptr.cast::<ControlPage>().as_ref() }
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            // SAFETY: unmaps exactly the mapping made in `segment`, once.
            let _ = unsafe { munmap(self.ptr, self.len) };
        }
    }

    /// A memory file of `len` bytes with `seals` added.
    fn memfd(len: usize, seals: SealFlag) -> OwnedFd {
        let fd = memfd_create(
            "ipc-rpc-test-hostile",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .unwrap();
        ftruncate(&fd, len as i64).unwrap();
        if !seals.is_empty() {
            fcntl(&fd, FcntlArg::F_ADD_SEALS(seals)).unwrap();
        }
        fd
    }

    /// A segment with rings of `capacity` and `seals`; `init` fills the header.
    fn segment(capacity: usize, seals: SealFlag, init: impl FnOnce(&ControlPage)) -> Mapping {
        let len = layout::segment_len(capacity);
        let fd = memfd(len, seals);
        // SAFETY: a fresh shared mapping of the file we just sized.
        let ptr = unsafe {
            mmap(
                None,
                NonZeroUsize::new(len).unwrap(),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )
        }
        .unwrap();
        let m = Mapping { ptr, len, fd };
        init(m.control());
        m
    }

    fn honest_header(c: &ControlPage, capacity: usize) {
        c.header
            .version
            .store(layout::LAYOUT_VERSION, Ordering::Relaxed);
        c.header.capacity.store(capacity as u32, Ordering::Relaxed);
        c.header.max_frame.store(1 << 20, Ordering::Relaxed);
        c.header.magic.store(layout::MAGIC, Ordering::Release);
    }

    /// The name part of `endpoint` (`/name`).
    fn name_of(endpoint: &Endpoint) -> String {
        endpoint.kind().name().unwrap().to_owned()
    }

    /// Sends `line` with `fds` attached to the server of `endpoint`; returns its answer.
    fn offer(endpoint: &Endpoint, line: &str, fds: &[BorrowedFd<'_>]) -> (UnixStream, String) {
        let name = name_of(endpoint);
        let s = transports::test_util::shm::connect_rendezvous(&name).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let raw: Vec<_> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let cmsgs = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsgs };
        let sent = sendmsg::<UnixAddr>(
            s.as_raw_fd(),
            &[std::io::IoSlice::new(line.as_bytes())],
            cmsgs,
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        assert_eq!(sent, line.len());
        let mut answer = String::new();
        BufReader::new(&s).read_line(&mut answer).unwrap();
        (s, answer)
    }

    /// Offers segment `m` the way an honest client does.
    fn offer_segment(endpoint: &Endpoint, m: &Mapping) -> (UnixStream, String) {
        offer(endpoint, "IPCRSHM2\n", &[m.fd.as_fd()])
    }

    /// A raw echo server; dropping it closes the listener (removing its files).
    struct EchoServer {
        closer: Box<dyn rpc_core::Closer>,
        accepting: Option<thread::JoinHandle<()>>,
    }

    impl Drop for EchoServer {
        fn drop(&mut self) {
            self.closer.close();
            if let Some(t) = self.accepting.take() {
                let _ = t.join();
            }
        }
    }

    fn echo_server(endpoint: &Endpoint) -> EchoServer {
        let mut listener = transports::listen(endpoint).unwrap();
        let closer = listener.closer().unwrap();
        let accepting = thread::spawn(move || {
            while let Ok(t) = listener.accept() {
                thread::spawn(move || {
                    // A hostile client fails its set-up here: that connection only.
                    if let Ok(parts) = t.split() {
                        echo(parts);
                    }
                });
            }
        });
        EchoServer {
            closer,
            accepting: Some(accepting),
        }
    }

    #[test]
    fn wrong_magic_version_or_size_is_refused_and_the_server_goes_on() {
        watchdog(Duration::from_secs(30), || {
            let endpoint = unique("");
            let _server = echo_server(&endpoint);
            let cap = 4096;
            let cases: [(&str, Box<Init>); 3] = [
                ("magic", Box::new(|_| {})),
                (
                    "layout version",
                    Box::new(move |c: &ControlPage| {
                        honest_header(c, cap);
                        c.header.version.store(99, Ordering::Relaxed);
                    }),
                ),
                (
                    "disagrees with its size",
                    Box::new(move |c: &ControlPage| {
                        honest_header(c, cap);
                        c.header.capacity.store(8192, Ordering::Relaxed);
                    }),
                ),
            ];
            for (want, init) in cases {
                let m = segment(cap, SEALED, init);
                let (_s, answer) = offer_segment(&endpoint, &m);
                assert!(
                    answer.starts_with("ERR") && answer.contains(want),
                    "{want}: {answer}"
                );
            }
            // The server still serves honest clients.
            let mut ok = transports::connect(&endpoint).unwrap().split().unwrap();
            ok.sender.send(b"still here").unwrap();
            assert_eq!(whole(ok.receiver.recv(None).unwrap()), b"still here");
        });
    }

    #[test]
    fn unsealed_missized_or_foreign_descriptors_and_bad_requests_are_refused() {
        watchdog(Duration::from_secs(30), || {
            let endpoint = unique("");
            let _server = echo_server(&endpoint);
            let len = layout::segment_len(4096);
            let exe = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
            let (pipe_r, _pipe_w) = nix::unistd::pipe().unwrap();
            let fd_cases: [(&str, OwnedFd); 6] = [
                ("not sealed", memfd(len, SealFlag::empty())),
                ("not sealed", memfd(len, SealFlag::F_SEAL_SHRINK)),
                ("not sealed", memfd(len, SealFlag::F_SEAL_GROW)),
                ("not a valid layout", memfd(len + 4096, SEALED)),
                ("out of range", memfd(0, SEALED)),
                ("not a memory file", OwnedFd::from(exe)),
            ];
            for (want, fd) in &fd_cases {
                let (_s, answer) = offer(&endpoint, "IPCRSHM2\n", &[fd.as_fd()]);
                assert!(
                    answer.starts_with("ERR") && answer.contains(want),
                    "{want}: {answer}"
                );
            }
            let honest = segment(4096, SEALED, |c| honest_header(c, 4096));
            let long_line = format!("IPCRSHM2{}\n", " ".repeat(300));
            let request_cases: [(&str, &str, Vec<BorrowedFd<'_>>); 7] = [
                ("no descriptor", "IPCRSHM2\n", vec![]),
                (
                    "two descriptors",
                    "IPCRSHM2\n",
                    vec![honest.fd.as_fd(), honest.fd.as_fd()],
                ),
                ("a pipe", "IPCRSHM2\n", vec![pipe_r.as_fd()]),
                (
                    "many descriptors",
                    "IPCRSHM2\n",
                    vec![honest.fd.as_fd(); 200],
                ),
                ("a line too long", &long_line, vec![honest.fd.as_fd()]),
                (
                    "the old request",
                    "IPCRSHM1 /ipc-rpc.x.1.1\n",
                    vec![honest.fd.as_fd()],
                ),
                (
                    "a longer line",
                    "IPCRSHM2 please\n",
                    vec![honest.fd.as_fd()],
                ),
            ];
            for (what, line, fds) in &request_cases {
                let (_s, answer) = offer(&endpoint, line, fds);
                assert!(answer.starts_with("ERR"), "{what}: {answer}");
            }
            // A sealed, honest segment offered by hand is taken.
            let (_s, answer) = offer_segment(&endpoint, &honest);
            assert_eq!(answer, "OK\n");
            let mut ok = transports::connect(&endpoint).unwrap().split().unwrap();
            ok.sender.send(b"still here").unwrap();
            assert_eq!(whole(ok.receiver.recv(None).unwrap()), b"still here");
        });
    }

    #[test]
    fn a_client_cannot_resize_its_segment_and_the_server_lives_on() {
        watchdog(Duration::from_secs(30), || {
            let endpoint = unique("ring=4096");
            let _server = echo_server(&endpoint);
            let t = transports::ShmTransport::connect(&endpoint).unwrap();
            let fd = transports::test_util::shm::segment_fd(&t)
                .expect("the client holds its segment's descriptor");
            // What used to SIGBUS the server at its next access.
            assert_eq!(ftruncate(fd, 0), Err(Errno::EPERM));
            assert_eq!(ftruncate(fd, 1 << 20), Err(Errno::EPERM));
            let seals = fcntl(fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_WRITE));
            assert_eq!(seals, Err(Errno::EPERM), "no seal can be added any more");
            let mut mine = rpc_core::Transport::split(Box::new(t)).unwrap();
            mine.sender.send(b"after the attempt").unwrap();
            assert_eq!(
                whole(mine.receiver.recv(None).unwrap()),
                b"after the attempt"
            );
            let mut other = transports::connect(&endpoint).unwrap().split().unwrap();
            other.sender.send(b"another client").unwrap();
            assert_eq!(whole(other.receiver.recv(None).unwrap()), b"another client");
        });
    }

    /// CPU time thread `tid` of this process has used (schedstat: nanoseconds on CPU).
    fn thread_cpu(tid: i32) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).unwrap();
        let ns = stat.split_whitespace().next().unwrap().parse().unwrap();
        Duration::from_nanos(ns)
    }

    /// Wakes whoever sleeps on `word`, as `FUTEX_WAKE` from any process does.
    fn futex_wake(word: &AtomicU32) {
        // SAFETY: `word` is a valid, aligned u32 (a reference) for the call; FUTEX_WAKE
        // only looks its address up.
        unsafe {
            nix::libc::syscall(
                nix::libc::SYS_futex,
                word.as_ptr(),
                nix::libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<nix::libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            )
        };
    }

    #[test]
    fn a_peer_hammering_the_futex_word_does_not_hold_a_server_thread_busy() {
        watchdog(Duration::from_secs(30), || {
            let endpoint = unique("");
            let mut listener = transports::listen(&endpoint).unwrap();
            let (tid_tx, tid_rx) = mpsc::channel();
            let server = thread::spawn(move || {
                let t = listener.accept().unwrap();
                tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
                echo(t.split().unwrap());
            });
            let m = segment(4096, SEALED, |c| honest_header(c, 4096));
            let (socket, answer) = offer_segment(&endpoint, &m);
            assert_eq!(answer, "OK\n");
            let tid = tid_rx.recv().unwrap();
            // Let the server fall asleep on the request ring's word.
            let c = m.control();
            let asleep = Instant::now() + Duration::from_secs(5);
            while c.c2s.consumer.consumer_sleeping.load(Ordering::Acquire) == 0 {
                assert!(Instant::now() < asleep, "the server never slept");
                thread::sleep(Duration::from_millis(1));
            }
            let word = &c.c2s.producer.data_seq;
            let before = thread_cpu(tid);
            let start = Instant::now();
            let mut bumps = 0u64;
            while start.elapsed() < Duration::from_secs(1) {
                word.fetch_add(1, Ordering::Release);
                futex_wake(word);
                bumps += 1;
            }
            let wall = start.elapsed();
            let used = thread_cpu(tid) - before;
            let share = used.as_secs_f64() / wall.as_secs_f64();
            eprintln!(
                "server thread CPU while a peer bumped its futex word {bumps} times in {wall:?}: {used:?} ({:.1} %)",
                share * 100.0
            );
            // The peer goes away: the server notices through the rendezvous socket (and
            // its listener, dropped, removes its files before any assertion can fail).
            drop(socket);
            server.join().unwrap();
            // ~0.3 % here with the back-off, ~95 % without; generous for a busy VM.
            assert!(
                share < 0.25,
                "the server thread used {:.0} % of a CPU",
                share * 100.0
            );
        });
    }

    #[test]
    fn lying_indices_and_lengths_end_only_that_connection() {
        watchdog(Duration::from_secs(30), || {
            let endpoint = unique("max_frame=65536");
            let _server = echo_server(&endpoint);
            let cap = 4096u64;
            let lies: [(&str, Box<Lie>); 3] = [
                (
                    "tail past head + capacity",
                    Box::new(move |c: &ControlPage, _| {
                        c.c2s.producer.tail.store(cap + 64, Ordering::Release);
                    }),
                ),
                (
                    "length over max_frame",
                    Box::new(|c: &ControlPage, data: *mut u8| {
                        // SAFETY: the first 4 bytes of the c2s data region of our own mapping.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                u32::MAX.wrapping_sub(1).to_le_bytes().as_ptr(),
                                data,
                                4,
                            )
                        };
                        c.c2s.producer.tail.store(8, Ordering::Release);
                    }),
                ),
                (
                    "record crossing the end",
                    Box::new(move |c: &ControlPage, data: *mut u8| {
                        // A 3000-byte record claimed at position 2048 of a 4096-byte ring.
                        let at = data.wrapping_add(2048);
                        // SAFETY: bytes 2048..2052 of the c2s data region of our own mapping.
                        unsafe {
                            std::ptr::copy_nonoverlapping(3000u32.to_le_bytes().as_ptr(), at, 4)
                        };
                        c.c2s.consumer.head.store(2048, Ordering::Release);
                        c.c2s.producer.tail.store(2048 + 3008, Ordering::Release);
                    }),
                ),
            ];
            for (i, (what, lie)) in lies.into_iter().enumerate() {
                let m = segment(cap as usize, SEALED, |c| honest_header(c, cap as usize));
                if i == 2 {
                    // The server reads the consumer head at attach: set it before offering.
                    m.control().c2s.consumer.head.store(2048, Ordering::Relaxed);
                    m.control().c2s.producer.tail.store(2048, Ordering::Relaxed);
                }
                let (socket, answer) = offer_segment(&endpoint, &m);
                assert_eq!(answer, "OK\n", "{what}");
                let data = m
                    .ptr
                    .as_ptr()
                    .cast::<u8>()
                    .wrapping_add(layout::DATA_OFFSET);
                lie(m.control(), data);
                transports_wake(m.control());
                // The server closes this connection: its side says closed.
                let deadline = Instant::now() + Duration::from_secs(5);
                while m.control().server.closed.load(Ordering::Acquire) == 0 {
                    assert!(
                        Instant::now() < deadline,
                        "{what}: the server did not drop the liar"
                    );
                    thread::sleep(Duration::from_millis(5));
                }
                drop(socket);
            }
            let mut ok = transports::connect(&endpoint).unwrap().split().unwrap();
            ok.sender.send(b"honest").unwrap();
            assert_eq!(whole(ok.receiver.recv(None).unwrap()), b"honest");
        });
    }

    /// Wakes a server that sleeps on the c2s ring's futex word.
    fn transports_wake(c: &ControlPage) {
        c.c2s.producer.data_seq.fetch_add(1, Ordering::Release);
        // The server's spin or its next 50 ms slice sees the change too; no futex call
        // is needed for correctness here.
    }
}

/// The replay the fuzz target drives: honest records arrive whole (in place, after a
/// skip record, and streamed through a ring smaller than the frame); a length over
/// `max_frame` is refused before anything is copied.
#[test]
fn replayed_peer_bytes_reach_the_receiver_and_lies_are_refused() {
    use transports::test_util::shm::{Peer, layout, receive};
    fn record(payload: &[u8]) -> Vec<u8> {
        let mut r = (payload.len() as u32).to_le_bytes().to_vec();
        r.extend_from_slice(&[0; 4]);
        r.extend_from_slice(payload);
        r.resize(r.len().next_multiple_of(8), 0);
        r
    }
    let peer = Peer {
        capacity: layout::MIN_CAPACITY,
        max_frame: 1 << 16,
        step: 100,
        lying_tail: None,
    };
    let big = vec![7u8; 3 * layout::MIN_CAPACITY + 5];
    let mut bytes = record(b"hello");
    // Fills the ring to 8 bytes before its end, where a skip record goes.
    bytes.extend(record(&vec![1; layout::MIN_CAPACITY - 16 - 16]));
    bytes.extend(layout::PAD_RECORD.to_le_bytes());
    bytes.extend([0; 4]);
    bytes.extend(record(b"after the skip"));
    bytes.extend(record(&big));
    let mut frames = Vec::new();
    let end = receive(&bytes, peer, |f| frames.push(f.to_vec())).unwrap_err();
    assert!(matches!(end, TransportError::Closed), "{end:?}");
    assert_eq!(frames.len(), 4);
    assert_eq!(frames[0], b"hello");
    assert_eq!(frames[2], b"after the skip");
    assert_eq!(frames[3], big);

    let lie = record(&[0; 8])
        .into_iter()
        .chain([0, 0, 0, 0x40, 0, 0, 0, 0])
        .collect::<Vec<_>>();
    let mut frames = 0;
    let end = receive(&lie, peer, |_| frames += 1).unwrap_err();
    assert!(
        matches!(end, TransportError::FrameTooLarge { .. }),
        "{end:?}"
    );
    assert_eq!(frames, 1);

    let lying_tail = Peer {
        lying_tail: Some(u64::MAX),
        ..peer
    };
    let end = receive(&record(b"x"), lying_tail, |_| {}).unwrap_err();
    assert!(matches!(end, TransportError::Corrupt(_)), "{end:?}");
}

/// A server that parks its connections in a poller (`prepare_wait`, `setup_wait`)
/// instead of blocking a thread in each.
mod poller {
    use super::*;
    use rpc_core::Readiness;
    use std::os::fd::AsRawFd;
    use transports::test_util::killed_client;
    use transports::test_util::wait::{owned, readable};

    fn soon(ms: u64) -> Option<Instant> {
        Some(Instant::now() + Duration::from_millis(ms))
    }

    /// The server side: accepts, waits for the set-up on `setup_wait`'s descriptor, takes
    /// one frame, parks; `kill -9` of the client process wakes the wait and the next
    /// `recv` is `Closed` at once.
    #[test]
    fn a_parked_server_receiver_wakes_when_its_client_is_killed() {
        killed_client::role();
        watchdog(Duration::from_secs(30), || {
            let endpoint = unique("");
            let mut listener = transports::listen(&endpoint).unwrap();
            let mut child = killed_client::spawn(
                "poller::a_parked_server_receiver_wakes_when_its_client_is_killed",
                &endpoint,
            );
            let offered = listener.accept().unwrap();
            let setup = owned(
                offered
                    .setup_wait()
                    .expect("shm set-up waits for the client"),
            );
            assert!(readable(&setup, 5000), "the client's request never came");
            let mut parts = offered.split().unwrap();
            killed_client::wait_ready(&mut child);
            assert_eq!(whole(parts.receiver.recv(soon(5000)).unwrap()), b"hello");
            let idle = parts.receiver.recv(soon(10)).map(|_| ());
            assert!(matches!(idle, Err(TransportError::TimedOut)), "{idle:?}");
            let Readiness::WaitOn(fds) = parts.receiver.prepare_wait() else {
                panic!("an idle shm receiver does not wait on a descriptor");
            };
            let fds = owned(fds);
            assert!(!readable(&fds, 0));
            child.kill().unwrap();
            child.wait().unwrap();
            assert!(
                readable(&fds, 2000),
                "the client's death did not wake the wait"
            );
            let start = Instant::now();
            let end = parts.receiver.recv(soon(5000)).map(|_| ());
            assert!(matches!(end, Err(TransportError::Closed)), "{end:?}");
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{:?}",
                start.elapsed()
            );
        });
    }

    /// A client that connects and stays silent leaves `setup_wait`'s descriptor
    /// unreadable (the server parks it instead of blocking in `split`); its departure
    /// makes it readable, and `split` then fails at once.
    #[test]
    fn a_silent_client_is_parked_until_it_goes() {
        watchdog(Duration::from_secs(30), || {
            let endpoint = unique("");
            let mut listener = transports::listen(&endpoint).unwrap();
            let name = endpoint.kind().name().unwrap().to_owned();
            let silent = transports::test_util::shm::connect_rendezvous(&name).unwrap();
            let offered = listener.accept().unwrap();
            let fds = owned(
                offered
                    .setup_wait()
                    .expect("shm set-up waits for the client"),
            );
            assert!(!readable(&fds, 50), "a silent client looks ready");
            drop(silent);
            assert!(
                readable(&fds, 2000),
                "the client's departure did not wake the wait"
            );
            let start = Instant::now();
            assert!(offered.split().is_err());
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{:?}",
                start.elapsed()
            );
        });
    }

    /// A client that sends the first bytes of its set-up request and then nothing more
    /// cannot hold the server's set-up: `split` fails within a fraction of a second
    /// (honest clients send the request in one message).
    #[test]
    fn a_dribbled_set_up_request_fails_at_once() {
        watchdog(Duration::from_secs(30), || {
            let endpoint = unique("");
            let mut listener = transports::listen(&endpoint).unwrap();
            let name = endpoint.kind().name().unwrap().to_owned();
            let mut dribbler = transports::test_util::shm::connect_rendezvous(&name).unwrap();
            std::io::Write::write_all(&mut dribbler, b"IPC").unwrap();
            let offered = listener.accept().unwrap();
            let fds = owned(
                offered
                    .setup_wait()
                    .expect("shm set-up waits for the client"),
            );
            assert!(
                readable(&fds, 2000),
                "the first bytes did not wake the wait"
            );
            let start = Instant::now();
            assert!(offered.split().is_err());
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{:?}",
                start.elapsed()
            );
            drop(dribbler);
        });
    }

    /// A client that floods the doorbell cannot keep `prepare_wait` busy: each call
    /// returns after a bounded drain, and once the flood stops the descriptor is quiet.
    #[test]
    fn a_peer_flooding_the_doorbell_does_not_keep_prepare_wait_busy() {
        watchdog(Duration::from_secs(30), || {
            let endpoint = unique("");
            let mut listener = transports::listen(&endpoint).unwrap();
            let to = endpoint.clone();
            let client = thread::spawn(move || transports::ShmTransport::connect(&to).unwrap());
            let mut server = listener.accept().unwrap().split().unwrap();
            let client = client.join().unwrap();
            let idle = server.receiver.recv(soon(10)).map(|_| ());
            assert!(matches!(idle, Err(TransportError::TimedOut)), "{idle:?}");
            let Readiness::WaitOn(fds) = server.receiver.prepare_wait() else {
                panic!("an idle shm receiver does not wait on a descriptor");
            };
            let fds = owned(fds);
            // The client's end of the rendezvous socket, as a hostile client would use it.
            let client_socket = transports::test_util::shm::socket_fd(&client).as_raw_fd();
            let flood = vec![0u8; 64 << 10];
            let mut flooded = 0;
            for _ in 0..64 {
                match nix::sys::socket::send(
                    client_socket,
                    &flood,
                    nix::sys::socket::MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(n) => flooded += n,
                    Err(_) => break,
                }
            }
            assert!(flooded > 0);
            assert!(readable(&fds, 0));
            let mut rounds = 0;
            loop {
                rounds += 1;
                assert!(rounds < 10_000, "the doorbell never drained");
                match server.receiver.prepare_wait() {
                    Readiness::WaitOn(fds) if !readable(&owned(fds), 0) => break,
                    Readiness::WaitOn(_) => {}
                    other => panic!("{other:?} with nothing in the ring"),
                }
            }
            eprintln!("{flooded} doorbell bytes drained in {rounds} prepare_wait calls");
            drop(client);
        });
    }
}

/// Child role: as another user, binds the abstract rendezvous name of the endpoint in
/// `IPC_RPC_TEST_SHM_SQUAT` first, says READY, and holds it until stdin closes.
fn squatter_child() {
    let Ok(endpoint) = std::env::var("IPC_RPC_TEST_SHM_SQUAT") else {
        return;
    };
    // Listening on the name as a server would, but as uid 65534: a clean
    // `listen` binds the abstract socket and checks nothing else.
    let _held = transports::listen(&endpoint.parse().unwrap()).unwrap();
    println!("READY");
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    std::process::exit(0);
}

/// The rendezvous is an abstract socket, which anyone can bind first: a client hands
/// its memory only to a server of its own user (or root, or one `allow_uid` names),
/// and refuses another user's socket before sending anything.
#[test]
fn a_client_refuses_a_rendezvous_held_by_another_user() {
    use std::os::unix::process::CommandExt;
    squatter_child();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run the squatter as another user");
        return;
    }
    let endpoint = unique("");
    let squatter = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_client_refuses_a_rendezvous_held_by_another_user",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("IPC_RPC_TEST_SHM_SQUAT", endpoint.to_string())
        .uid(65534)
        .gid(65534)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut squatter = match squatter {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!(
                "skipped: uid 65534 cannot run this test binary ({e}): its directory is private"
            );
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let mut lines = BufReader::new(squatter.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("READY"))),
        "the squatter did not start"
    );
    let err = transports::ShmTransport::connect(&endpoint).err().unwrap();
    drop(squatter.stdin.take());
    let _ = squatter.wait();
    let TransportError::Io { context, source } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        source.kind(),
        std::io::ErrorKind::PermissionDenied,
        "{err:?}"
    );
    assert!(
        context.contains("runs as uid 65534") && context.contains("refusing to hand it"),
        "{context}"
    );
    // Nobody else's rendezvous is in the way now: ours binds.
    drop(transports::listen(&endpoint).unwrap());
}
