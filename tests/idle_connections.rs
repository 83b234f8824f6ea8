//! Idle connections cost a server no thread and no CPU: thousands of clients connect
//! and stay silent, the server's threads stay at its `workers` plus its few fixed
//! threads (main, accept, watcher, poller), it uses no CPU while they idle, and a fresh
//! client is still answered.
//!
//! 2000 clients on `unix:` and `tcp:`; as many as this machine's limits comfortably
//! allow on the others (`shm:` 1000, `fifo:` 500, `mq:` 40: the mqueue namespace
//! holds 256 queues by default, two per connection). The server runs in a child
//! process (this test binary re-executed) so that its threads, CPU time and memory
//! can be read from `/proc`; both sides raise `RLIMIT_NOFILE` to the hard limit. The
//! tests of this file run one at a time (they load the machine).

mod common;

use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// The child's role: serve `Probe` with the descriptor limit raised.
const ROLE: &str = "idle-server";

/// The server's `workers`.
const WORKERS: usize = 4;

/// Threads of the server process besides its workers: main, accept, watcher, poller,
/// and two for a pool thread on its way out and one being started.
const FIXED_THREADS: usize = 6;

/// How long the server's CPU time is watched while every client idles.
const IDLE_WINDOW: Duration = Duration::from_secs(3);

/// One test of this file at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn raise_nofile() {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
}

/// In the child: serves `Probe` on the endpoint in `ENDPOINT_VAR` until stdin closes.
fn serve_if_idle_child() {
    if std::env::var(ROLE_VAR).as_deref() != Ok(ROLE) {
        return;
    }
    raise_nofile();
    serve_probe_until_stdin_closes();
}

/// Threads of process `pid`.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("read /proc/<pid>/task")
        .count()
}

/// CPU time (user + system) of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn clock_ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |t| t as u64)
}

/// Connects `n` idle clients to a child server on `transport` and checks its threads,
/// its CPU time while they idle, and a fresh client's first call.
fn idle(transport: Transport, n: usize, options: &str, test_name: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    raise_nofile();
    let options = format!("workers={WORKERS}&max_connections={}&{options}", n + 16);
    let ep = transport.endpoint_with(options.trim_end_matches('&'));
    let server = ChildServer::spawn_as(test_name, &ep.endpoint, ROLE, Stdio::inherit());
    let pid = server.child.id();
    let endpoint = server.endpoint.clone();
    let base_threads = threads(pid);
    let base_rss = rss_kib(pid);

    watchdog(Duration::from_secs(120), move || {
        let server = server;
        let mut clients = Vec::with_capacity(n);
        for i in 0..n {
            match ProbeClient::connect(&endpoint) {
                Ok(c) => clients.push(c),
                Err(e) => panic!("client {i} of {n}: {}", chain(&e)),
            }
        }
        // Every one of them answered once, then all go silent.
        for c in clients.iter().step_by(97) {
            assert_eq!(c.add(1, 2).unwrap(), 3);
        }

        // Threads settle at workers + the fixed ones (pool threads past `workers`
        // retire after their idle time).
        let limit = WORKERS + FIXED_THREADS;
        let until = Instant::now() + Duration::from_secs(20);
        let mut now = threads(pid);
        while now > limit && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
            now = threads(pid);
        }
        assert!(
            now <= limit,
            "{n} idle {transport:?} connections: {now} server threads, more than workers \
             ({WORKERS}) + {FIXED_THREADS} (before any client: {base_threads})"
        );

        // Idle connections cost no CPU: under 2 % of a core over the window.
        let before = cpu_ticks(pid);
        std::thread::sleep(IDLE_WINDOW);
        let used = cpu_ticks(pid) - before;
        let allowed = IDLE_WINDOW.as_secs() * clock_ticks_per_second() * 2 / 100;
        assert!(
            used <= allowed,
            "{n} idle {transport:?} connections cost the server {used} ticks of CPU in \
             {IDLE_WINDOW:?} (at most {allowed}: 2 % of a core)"
        );

        // A fresh client is answered.
        let started = Instant::now();
        let fresh = ProbeClient::connect(&endpoint).expect("a fresh client connects");
        assert_eq!(fresh.add(2, 3).unwrap(), 5);
        let first_call = started.elapsed();
        assert_eq!(
            clients[n / 2].add(4, 5).unwrap(),
            9,
            "an idle client still works"
        );
        let rss = rss_kib(pid);
        eprintln!(
            "{transport:?}: {n} idle connections: {now} server threads ({base_threads} before), \
             {used} CPU ticks in {IDLE_WINDOW:?}, RSS {base_rss} -> {rss} KiB ({:.1} KiB per \
             connection), fresh client connect + first call {first_call:?}",
            (rss.saturating_sub(base_rss)) as f64 / n as f64
        );
        drop((fresh, clients));
        let mut server = server;
        drop(server.child.stdin.take());
        let status = server.child.wait().unwrap();
        assert!(status.success(), "the server ended with {status}");
    });
    drop(ep);
}

#[test]
fn unix_2000_idle_connections_cost_no_thread_each() {
    serve_if_idle_child();
    idle(
        Transport::unix,
        2000,
        "",
        "unix_2000_idle_connections_cost_no_thread_each",
    );
}

#[test]
fn tcp_2000_idle_connections_cost_no_thread_each() {
    serve_if_idle_child();
    idle(
        Transport::tcp,
        2000,
        "",
        "tcp_2000_idle_connections_cost_no_thread_each",
    );
}

#[test]
fn shm_1000_idle_connections_cost_no_thread_and_under_2_percent_of_a_core() {
    serve_if_idle_child();
    idle(
        Transport::shm,
        1000,
        "ring=4096",
        "shm_1000_idle_connections_cost_no_thread_and_under_2_percent_of_a_core",
    );
}

#[test]
fn fifo_500_idle_connections_cost_no_thread_each() {
    serve_if_idle_child();
    idle(
        Transport::fifo,
        500,
        "",
        "fifo_500_idle_connections_cost_no_thread_each",
    );
}

#[test]
fn mq_40_idle_connections_cost_no_thread_each() {
    serve_if_idle_child();
    idle(
        Transport::mq,
        40,
        "depth=4&msgsize=1024",
        "mq_40_idle_connections_cost_no_thread_each",
    );
}
