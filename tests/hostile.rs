//! Hostile and stalled peers (issue #11): what a peer that lies, stops or never reads
//! may cost a server or a client. Every test runs its server in a child process (this
//! binary re-executed), so that the server's memory can be read from `/proc` and the
//! server can be stopped with SIGSTOP; every test runs under a watchdog.
//!
//! Test names come out as `unix::lying_length_headers_cost_the_server_little`; the
//! transports a test does not apply to skip with a line saying why.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{ChildServer, ProbeClient, Transport, serve_if_child, watchdog};
use ipc_rpc::{EndpointKind as K, RpcError};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rpc_core::framing::{SPLIT_FLAG, write_frame};

/// The memory tests open hundreds of connections: one at a time (see
/// `common::MANY_CONNECTIONS` for why mq cares).
static LOAD: Mutex<()> = Mutex::new(());

/// Past this a test hangs: the watchdog fails it.
const WATCHDOG_LONG: Duration = Duration::from_secs(90);

macro_rules! per_transport {
    ($($test:ident: [$($transport:ident),*];)*) => {
        $(
            mod $test {
                $(
                    #[test]
                    fn $transport() {
                        crate::serve_if_child();
                        let name = crate::common::test_name(module_path!(), stringify!($transport));
                        crate::$test(crate::Transport::$transport, name);
                    }
                )*
            }
        )*
    };
}

per_transport! {
    lying_length_headers_cost_the_server_little: [unix, tcp, fifo];
    a_stopped_server_never_outlasts_a_deadline: [unix, tcp, fifo, pipe, mq, shm];
    a_timed_out_large_reply_never_blocks_the_next_large_request: [unix, tcp, fifo, pipe, mq, shm];
    shutdown_ends_writers_blocked_on_a_client_that_never_reads: [unix, tcp, fifo, mq, shm];
    a_socket_connection_costs_the_server_one_descriptor: [unix, tcp];
    silent_clients_hold_no_thread_and_leave_at_the_handshake_timeout: [unix, tcp, fifo, shm];
    before_its_handshake_a_connection_may_send_only_small_frames: [unix, tcp, fifo];
    shutdown_lets_a_call_in_flight_finish_and_reply: [unix, tcp, fifo, mq, shm];
    shutdown_timeout_takes_the_grace_period_it_is_given: [unix, tcp, fifo];
}

/// The server's resident memory, from `/proc/<pid>/status`.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib << 10
}

/// The number of open descriptors of process `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/<pid>/fd")
        .count()
}

/// Eight bytes that announce a split frame of almost 16 MiB with an empty head, and
/// never send it.
fn lying_header() -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(((16u32 << 20) - 16) | SPLIT_FLAG).to_le_bytes());
    b
}

/// The hello a `Probe` client sends, framed for a byte stream.
fn framed_hello() -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, &common::probe_hello()).unwrap();
    out
}

/// A raw byte-stream connection to the server's endpoint: a socket, or a FIFO pair
/// set up by hand the way `FifoTransport::connect` does it.
enum RawStream {
    Unix(UnixStream),
    Tcp(std::net::TcpStream),
    Fifo {
        to_server: std::fs::File,
        from_server: std::fs::File,
    },
}

impl RawStream {
    fn connect(endpoint: &ipc_rpc::Endpoint) -> RawStream {
        match endpoint.kind() {
            K::Unix { path, .. } => RawStream::Unix(UnixStream::connect(path).unwrap()),
            K::Tcp { host, port, .. } => {
                RawStream::Tcp(std::net::TcpStream::connect((host.as_str(), *port)).unwrap())
            }
            K::Fifo { path } => raw_fifo(std::path::Path::new(path)),
            // Shared memory's rendezvous socket, before any set-up request.
            K::Shm { name, .. } => {
                RawStream::Unix(transports::test_util::shm::connect_rendezvous(name).unwrap())
            }
            other => panic!("no raw byte stream to {other:?}"),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) {
        match self {
            RawStream::Unix(s) => s.write_all(bytes).unwrap(),
            RawStream::Tcp(s) => s.write_all(bytes).unwrap(),
            RawStream::Fifo { to_server, .. } => to_server.write_all(bytes).unwrap(),
        }
    }

    /// Whether the server closes the connection within `wait` (end of stream).
    fn closed_within(&mut self, wait: Duration) -> bool {
        use std::os::fd::AsFd;
        let readable = {
            let fd = match &*self {
                RawStream::Unix(s) => s.as_fd(),
                RawStream::Tcp(s) => s.as_fd(),
                RawStream::Fifo { from_server, .. } => from_server.as_fd(),
            };
            let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
            let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
            nix::poll::poll(&mut fds, ms).unwrap() > 0
        };
        if !readable {
            return false;
        }
        let mut byte = [0u8; 1];
        let r: &mut dyn Read = match self {
            RawStream::Unix(s) => s,
            RawStream::Tcp(s) => s,
            RawStream::Fifo { from_server, .. } => from_server,
        };
        matches!(r.read(&mut byte), Ok(0) | Err(_))
    }

    /// Reads the server's welcome (or whatever comes first) and checks it is a frame.
    fn read_welcome(&mut self) {
        let mut len = [0u8; 4];
        let r: &mut dyn Read = match self {
            RawStream::Unix(s) => s,
            RawStream::Tcp(s) => s,
            RawStream::Fifo { from_server, .. } => from_server,
        };
        r.read_exact(&mut len).expect("a welcome");
        let mut welcome = vec![0; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut welcome).expect("a whole welcome");
    }
}

fn raw_fifo(dir: &std::path::Path) -> RawStream {
    use std::os::unix::fs::OpenOptionsExt;
    use transports::test_util::fifo::rendezvous;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let id = format!(
        "{}-9{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let (c2s, s2c) = rendezvous::pair_paths(dir, &id);
    for p in [&c2s, &s2c] {
        nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    }
    let from_server = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&s2c)
        .unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(rendezvous::CONNECT))
        .unwrap()
        .write_all(&rendezvous::request(&id))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let to_server = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&c2s)
        {
            Ok(f) => break f,
            Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("open {}: {e}", c2s.display()),
        }
    };
    let _ = std::fs::remove_file(&c2s);
    let _ = std::fs::remove_file(&s2c);
    for f in [&from_server, &to_server] {
        let fl = nix::fcntl::fcntl(f, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        let fl = nix::fcntl::OFlag::from_bits_truncate(fl) - nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(f, nix::fcntl::FcntlArg::F_SETFL(fl)).unwrap();
    }
    RawStream::Fifo {
        to_server,
        from_server,
    }
}

/// 200 connections that each send one 8-byte header claiming a 16 MiB tail and then
/// nothing, before the handshake; 200 more after a valid handshake. The server's
/// resident memory grows by less than 32 MiB, and it serves an honest client on.
pub fn lying_length_headers_cost_the_server_little(t: Transport, name: String) {
    let _load = LOAD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    watchdog(WATCHDOG_LONG, move || {
        let ep = t.endpoint();
        let server = Graceful(ChildServer::spawn(&name, &ep.endpoint));
        let pid = server.0.child.id();
        let client = ProbeClient::connect(&server.0.endpoint).unwrap();
        assert_eq!(client.add(1, 2).unwrap(), 3);
        // Let the server's first allocations settle.
        std::thread::sleep(Duration::from_millis(200));
        let before = rss_bytes(pid);
        let mut held = Vec::new();
        for handshake_first in [false, true] {
            for _ in 0..200 {
                let mut raw = RawStream::connect(&server.0.endpoint);
                if handshake_first {
                    raw.write_all(&framed_hello());
                    raw.read_welcome();
                }
                raw.write_all(&lying_header());
                held.push(raw);
            }
        }
        // Every connection's thread has read its header by the time an honest call
        // that comes after them all is answered; give stragglers a moment more.
        assert_eq!(client.add(2, 3).unwrap(), 5);
        std::thread::sleep(Duration::from_millis(500));
        let after = rss_bytes(pid);
        let grown = after.saturating_sub(before);
        println!(
            "{t:?}: server RSS {} KiB before, {} KiB with 400 lying headers (+{} KiB)",
            before >> 10,
            after >> 10,
            grown >> 10
        );
        assert!(
            grown < 32 << 20,
            "the server grew by {} MiB for 400 eight-byte headers",
            grown >> 20
        );
        let other = ProbeClient::connect(&server.0.endpoint).unwrap();
        assert_eq!(other.echo(vec![7; 100_000]).unwrap(), vec![7; 100_000]);
        drop(held);
    });
}

/// Stops (SIGSTOP) a child process for as long as it lives; continues it when dropped.
struct Stopped(u32);

impl Stopped {
    /// Stops `pid` and waits until every one of its threads is stopped.
    fn new(pid: u32) -> Stopped {
        kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
        let stopped = Stopped(pid);
        let all_stopped = || {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .unwrap()
                .flatten()
                .all(|task| {
                    std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
                        stat.rsplit(')')
                            .next()
                            .is_some_and(|rest| rest.trim_start().starts_with('T'))
                    })
                })
        };
        while !all_stopped() {
            std::thread::sleep(Duration::from_millis(1));
        }
        stopped
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0 as i32), Signal::SIGCONT);
    }
}

/// A `Probe` server in a child process and a client of it (for `pipe`, the child is
/// the server of its one parent).
fn child_fixture(t: Transport, name: &str) -> (ProbeClient, u32, Box<dyn std::any::Any>) {
    if t == Transport::pipe {
        let ep = t.endpoint();
        let (client, child) = common::spawn_pipe_child::<ProbeClient>(name, &ep.endpoint).unwrap();
        let pid = child.id();
        return (client, pid, Box::new(KillOnDrop(child)));
    }
    let ep = t.endpoint();
    let server = ChildServer::spawn(name, &ep.endpoint);
    let client = ProbeClient::connect(&server.endpoint).unwrap();
    let pid = server.child.id();
    (client, pid, Box::new((Graceful(server), ep)))
}

/// A child server that is asked to shut down (its stdin closed) when dropped, so that
/// it removes its named objects itself (a SIGKILLed mq server leaves its queue until
/// someone notices); killed if it does not exit within 10 s.
struct Graceful(ChildServer);

impl Drop for Graceful {
    fn drop(&mut self) {
        drop(self.0.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.0.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.0.kill();
    }
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn assert_timeout<T>(what: &str, result: Result<T, RpcError>, took: Duration) {
    assert!(
        matches!(result, Err(RpcError::Timeout { .. })),
        "{what}: {:?}",
        result.map(|_| "a reply")
    );
    // A deadline is a bound, not a hint: well under the 4 s the server is stopped.
    assert!(took < Duration::from_secs(3), "{what} took {took:?}");
}

/// With a 1 s deadline, a 256 KiB call and then a small one against a server stopped
/// for 4 s each return `Timeout` about when the deadline passes; once the server runs
/// again, the next call works (the cut request is finished, its reply drained).
pub fn a_stopped_server_never_outlasts_a_deadline(t: Transport, name: String) {
    watchdog(WATCHDOG_LONG, move || {
        let (client, pid, _server) = child_fixture(t, &name);
        assert_eq!(client.add(1, 1).unwrap(), 2);
        let deadline = Duration::from_secs(1);
        let stopped_at = Instant::now();
        let stop = Stopped::new(pid);
        let start = Instant::now();
        let large = client.with_timeout(deadline).echo(vec![5; 256 << 10]);
        let took_large = start.elapsed();
        assert_timeout("a 256 KiB call", large, took_large);
        let start = Instant::now();
        let small = client.with_timeout(deadline).add(2, 2);
        let took_small = start.elapsed();
        assert_timeout("a small call", small, took_small);
        std::thread::sleep(Duration::from_secs(4).saturating_sub(stopped_at.elapsed()));
        drop(stop);
        let start = Instant::now();
        let next = client.with_timeout(Duration::from_secs(20)).add(20, 22);
        println!(
            "{t:?}: 256 KiB call against a stopped server: Timeout after {took_large:?}; \
             small call: Timeout after {took_small:?}; next call after SIGCONT: {next:?} in {:?}",
            start.elapsed()
        );
        assert_eq!(next.unwrap(), 42);
        assert_eq!(client.echo(vec![9; 300_000]).unwrap(), vec![9; 300_000]);
    });
}

/// A call whose large reply comes after its deadline, then a large request: the reply
/// nobody waits for is read and dropped, so the server is never left blocked writing
/// it while the client is blocked sending.
pub fn a_timed_out_large_reply_never_blocks_the_next_large_request(t: Transport, name: String) {
    watchdog(WATCHDOG_LONG, move || {
        let (client, pid, _server) = child_fixture(t, &name);
        assert_eq!(client.add(1, 1).unwrap(), 2);
        let stop = Stopped::new(pid);
        let late = client
            .with_timeout(Duration::from_millis(300))
            .fill(12 << 20);
        assert!(
            matches!(late, Err(RpcError::Timeout { .. })),
            "{:?}",
            late.map(|r| r.len())
        );
        drop(stop);
        // The server now writes 12 MiB that nobody asked for any more, while we send
        // 12 MiB of our own.
        let big = vec![3u8; 12 << 20];
        let start = Instant::now();
        let echoed = client
            .with_timeout(Duration::from_secs(30))
            .echo(big.clone());
        println!(
            "{t:?}: large request after a timed-out large reply: {} in {:?}",
            if echoed.as_ref().is_ok_and(|e| *e == big) {
                "answered"
            } else {
                "FAILED"
            },
            start.elapsed()
        );
        assert!(echoed.unwrap() == big);
        assert_eq!(client.add(4, 4).unwrap(), 8);
    });
}

/// A client that asks for a 15 MiB reply and never reads it: the server's shutdown
/// still returns (within its grace period and a margin), on every transport.
pub fn shutdown_ends_writers_blocked_on_a_client_that_never_reads(t: Transport, name: String) {
    let _ = name;
    watchdog(WATCHDOG_LONG, move || {
        let ep = t.endpoint();
        let server = ipc_rpc::serve(&ep.endpoint, common::ProbeServer::new(common::ProbeImpl))
            .expect("serve");
        let parts = ask_for_a_reply_and_never_read_it(&server.endpoint());
        let start = Instant::now();
        server.shutdown();
        let took = start.elapsed();
        println!("{t:?}: shutdown with an unread 15 MiB reply took {took:?}");
        assert!(
            took < rpc_core::server::SHUTDOWN_GRACE + Duration::from_secs(3),
            "shutdown took {took:?}"
        );
        drop(parts);
    });
}

/// A raw connection to `endpoint` that asks for a 15 MiB reply and never reads it; the
/// server's connection thread is blocked writing it when this returns.
fn ask_for_a_reply_and_never_read_it(endpoint: &ipc_rpc::Endpoint) -> rpc_core::Parts {
    use rpc_core::codec::{FrameBuf, encode_frame};
    use rpc_core::wire::encode_request_header;
    let mut parts = transports::connect(endpoint).unwrap().split().unwrap();
    parts.sender.send(&common::probe_hello()).unwrap();
    parts
        .receiver
        .recv(Some(Instant::now() + Duration::from_secs(5)))
        .expect("welcome");
    let fill = ProbeClient::SERVICE
        .methods
        .iter()
        .position(|m| m.name == "fill")
        .unwrap() as u16;
    let mut request = Vec::new();
    let mut buf = FrameBuf::vec(&mut request);
    encode_request_header(1, fill, None, false, &mut buf).unwrap();
    encode_frame(&(15u32 << 20), &mut buf, "args").unwrap();
    parts.sender.send(&request).unwrap();
    // Let the handler run and block writing its reply.
    std::thread::sleep(Duration::from_millis(300));
    parts
}

/// `shutdown_timeout(d)` ends connections blocked on a client that never reads after
/// `d`, not after the default grace period.
pub fn shutdown_timeout_takes_the_grace_period_it_is_given(t: Transport, name: String) {
    let _ = name;
    watchdog(WATCHDOG_LONG, move || {
        let ep = t.endpoint();
        let server = ipc_rpc::serve(&ep.endpoint, common::ProbeServer::new(common::ProbeImpl))
            .expect("serve");
        let parts = ask_for_a_reply_and_never_read_it(&server.endpoint());
        let grace = Duration::from_millis(300);
        let start = Instant::now();
        server.shutdown_timeout(grace);
        let took = start.elapsed();
        assert!(took >= grace, "the grace period was cut short: {took:?}");
        assert!(
            took < rpc_core::server::SHUTDOWN_GRACE,
            "the default grace period was used: {took:?}"
        );
        drop(parts);
    });
}

/// A call running when `shutdown()` starts finishes, and its caller gets the reply.
pub fn shutdown_lets_a_call_in_flight_finish_and_reply(t: Transport, name: String) {
    let _ = name;
    watchdog(WATCHDOG_LONG, move || {
        let ep = t.endpoint();
        let server = ipc_rpc::serve(&ep.endpoint, common::ProbeServer::new(common::ProbeImpl))
            .expect("serve");
        let client = ProbeClient::connect(&server.endpoint()).unwrap();
        let call = std::thread::spawn(move || client.sleep_ms(500));
        std::thread::sleep(Duration::from_millis(100));
        server.shutdown();
        assert_eq!(call.join().unwrap().unwrap(), 500);
    });
}

/// Until its handshake is accepted, a connection may send frames of at most 4 KiB: a
/// header announcing more ends the connection at once, while one announcing 4000 bytes
/// is waited for (until the handshake time-out).
pub fn before_its_handshake_a_connection_may_send_only_small_frames(t: Transport, name: String) {
    let _ = name;
    watchdog(WATCHDOG_LONG, move || {
        let ep = t.endpoint();
        let server = ipc_rpc::serve(&ep.endpoint, common::ProbeServer::new(common::ProbeImpl))
            .expect("serve");
        for (claim, closed) in [
            (rpc_core::server::HANDSHAKE_MAX_FRAME + 1, true),
            (4000, false),
        ] {
            let mut raw = RawStream::connect(&server.endpoint());
            raw.write_all(&(claim as u32).to_le_bytes());
            assert_eq!(
                raw.closed_within(Duration::from_secs(2)),
                closed,
                "a hello announced as {claim} bytes"
            );
        }
    });
}

/// Threads of process `pid`.
fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

/// Clients that connect and say nothing (or half a hello) wait in the server's poller,
/// not on a thread each, and the handshake time-out ends them.
pub fn silent_clients_hold_no_thread_and_leave_at_the_handshake_timeout(
    t: Transport,
    name: String,
) {
    let _load = LOAD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    watchdog(WATCHDOG_LONG, move || {
        let ep = t.endpoint();
        let server = Graceful(ChildServer::spawn(&name, &ep.endpoint));
        let pid = server.0.child.id();
        let client = ProbeClient::connect(&server.0.endpoint).unwrap();
        assert_eq!(client.add(1, 2).unwrap(), 3);
        let before = thread_count(pid);
        // 200 that say nothing, 100 that send half a frame's length prefix (over shm,
        // all silent: a set-up request begun is read on a thread, for at most 100 ms,
        // see transports/tests/shm.rs).
        let mut held: Vec<RawStream> = (0..300)
            .map(|i| {
                let mut raw = RawStream::connect(&server.0.endpoint);
                if i >= 200 && t != Transport::shm {
                    raw.write_all(&[16, 0]);
                }
                raw
            })
            .collect();
        assert_eq!(client.add(2, 3).unwrap(), 5, "served beside them");
        let during = thread_count(pid);
        let workers = rpc_core::limits::default_workers();
        println!("{t:?}: server threads {before} before, {during} with 300 silent clients");
        // Past `workers` the pool grows only for a job that waited 500 µs at the head of
        // its queue, which a loaded machine can cause now and then (seen: one thread
        // more while another build ran): a couple of threads, never one per client.
        assert!(
            during <= before + workers + 2,
            "300 silent clients took the server from {before} to {during} threads \
             (workers: {workers})"
        );
        let wait = rpc_core::server::HANDSHAKE_TIMEOUT + Duration::from_secs(3);
        assert!(
            held[0].closed_within(wait),
            "a silent client outlived the handshake time-out"
        );
        // Accepted a little after the first (up to seconds on a loaded machine).
        assert!(
            held[250].closed_within(Duration::from_secs(5)),
            "a half-sent hello too"
        );
        assert_eq!(client.add(3, 4).unwrap(), 7);
        held.clear();
    });
}

/// Ten idle connections cost a UNIX or TCP server ten descriptors, not thirty.
pub fn a_socket_connection_costs_the_server_one_descriptor(t: Transport, name: String) {
    watchdog(WATCHDOG_LONG, move || {
        let ep = t.endpoint();
        let server = ChildServer::spawn(&name, &ep.endpoint);
        let pid = server.child.id();
        let first = ProbeClient::connect(&server.endpoint).unwrap();
        assert_eq!(first.add(1, 1).unwrap(), 2);
        let before = fd_count(pid);
        let clients: Vec<ProbeClient> = (0..10)
            .map(|_| ProbeClient::connect(&server.endpoint).unwrap())
            .collect();
        for c in &clients {
            assert_eq!(c.add(2, 2).unwrap(), 4);
        }
        let after = fd_count(pid);
        println!("{t:?}: 10 connections took {} descriptors", after - before);
        assert_eq!(after - before, 10);
    });
}
