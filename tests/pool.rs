//! Worker pools: routing, supervision, shutdown, and every endpoint kind.
//!
//! Workers are this test binary re-executed for the one test that starts them
//! (`--exact <test>`), with `IPC_RPC_TEST_ROLE` saying which worker to be. Each test
//! starts with [`worker_main`], which is what a worker's `main` would do.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{ROLE_VAR, alive, watchdog};
use ipc_rpc::pool::{Pool, PoolError, WorkerState};
use ipc_rpc::{Endpoint, RpcError, ipc_service};

const WATCHDOG: Duration = Duration::from_secs(60);

/// Names a file that a `fail-after-first` worker creates when it starts.
const MARKER_VAR: &str = "IPC_RPC_TEST_MARKER";

/// What the workers of these tests serve.
#[ipc_service]
pub trait Job {
    /// `x * x`.
    fn square(&self, x: u64) -> u64;
    /// Sleeps `ms` milliseconds, then returns the worker's pid.
    fn busy(&self, ms: u64) -> u32;
    /// The worker's pid.
    fn pid(&self) -> u32;
    /// The role the worker was started with.
    fn role(&self) -> String;
    /// The length of `bytes`.
    fn len(&self, bytes: Vec<u8>) -> u64;
    /// Sends the worker's pid `n` times, 1 ms apart, from another thread.
    fn pids(&self, n: u32, events: ipc_rpc::Sink<u32>);
}

struct Worker(String);

impl Job for Worker {
    fn square(&self, x: u64) -> u64 {
        x * x
    }
    fn busy(&self, ms: u64) -> u32 {
        thread::sleep(Duration::from_millis(ms));
        std::process::id()
    }
    fn pid(&self) -> u32 {
        std::process::id()
    }
    fn role(&self) -> String {
        self.0.clone()
    }
    fn len(&self, bytes: Vec<u8>) -> u64 {
        bytes.len() as u64
    }
    fn pids(&self, n: u32, events: ipc_rpc::Sink<u32>) {
        thread::spawn(move || {
            for _ in 0..n {
                thread::sleep(Duration::from_millis(1));
                if events.send(&std::process::id()).is_err() {
                    return;
                }
            }
        });
    }
}

/// Another service, for the handshake check.
#[ipc_service]
pub trait Unrelated {
    /// Does nothing.
    fn ping(&self);
}

struct Pong;

impl Unrelated for Pong {
    fn ping(&self) {}
}

/// What a worker's `main` does: serve when started as a worker (the process then
/// exits), return otherwise.
fn worker_main() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let served = match role.as_str() {
        "fail-at-start" => std::process::exit(3),
        "unrelated" => ipc_rpc::pool::serve_if_worker(UnrelatedServer::new(Pong)),
        "fail-after-first" => {
            let marker = std::env::var(MARKER_VAR).expect("marker path");
            if std::fs::File::create_new(&marker).is_err() {
                std::process::exit(3);
            }
            ipc_rpc::pool::serve_if_worker(JobServer::new(Worker(role)))
        }
        _ => ipc_rpc::pool::serve_if_worker(JobServer::new(Worker(role))),
    };
    // A worker that could not serve has told the pool why; `main` would return the
    // error and exit.
    if served.is_err() {
        std::process::exit(1);
    }
}

/// This test binary, re-run for test `test` as a worker with `role`.
fn worker(test: &'static str, role: &'static str) -> impl Fn(usize) -> Command + Send + Sync {
    move |_| {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(ROLE_VAR, role)
            .stdout(Stdio::null());
        cmd
    }
}

/// A builder for `Job` workers re-run for test `test`.
fn builder(test: &'static str) -> ipc_rpc::pool::PoolBuilder<JobClient> {
    Pool::<JobClient>::builder().command_fn(worker(test, "worker"))
}

/// A fresh directory of ours in the temp dir, removed when dropped (a failing test
/// included).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        TempDir(common::unique_dir())
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `pid` still has a process table entry (alive or a zombie).
fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// `pool` over `endpoint` answers concurrent callers from distinct processes, and
/// leaves no process and nothing in `dir` behind.
fn check_pool_over(endpoint: Endpoint, test: &'static str, dir: Option<&Path>) {
    let pool = builder(test).workers(2).endpoint(endpoint).spawn().unwrap();
    let pids = pool.pids();
    assert_eq!(pids.len(), 2);
    assert!(!pids.contains(&std::process::id()));
    let client = pool.client().clone();
    let barrier = Arc::new(Barrier::new(2));
    let served: BTreeSet<u32> = (0..2)
        .map(|_| {
            let (client, barrier) = (client.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                client.busy(200).unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(served, pids.iter().copied().collect());
    assert_eq!(client.square(12).unwrap(), 144);
    pool.shutdown();
    for pid in pids {
        assert!(!exists(pid), "worker {pid} was not reaped");
    }
    if let Some(dir) = dir {
        assert_eq!(entries(dir), Vec::<PathBuf>::new(), "left behind");
    }
}

/// Many threads, many calls, every answer right, and the work spread over workers.
#[test]
fn many_callers_get_every_answer() {
    worker_main();
    watchdog(WATCHDOG, || {
        let pool = builder("many_callers_get_every_answer")
            .workers(3)
            .spawn()
            .unwrap();
        let threads: Vec<_> = (0..6u64)
            .map(|t| {
                let client = pool.client().clone();
                thread::spawn(move || {
                    for i in 0..200 {
                        let x = t * 1_000 + i;
                        assert_eq!(client.square(x).unwrap(), x * x);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(pool.status().iter().all(|w| w.starts == 1));
        pool.shutdown();
    });
}

/// A subscription through a pool's client stays with the worker it went to (every
/// event comes from one process), counts as that worker's call (so the next one goes
/// to the other worker), and calls go on beside it.
#[test]
fn subscriptions_stay_with_their_worker() {
    worker_main();
    watchdog(WATCHDOG, || {
        let pool = builder("subscriptions_stay_with_their_worker")
            .workers(2)
            .spawn()
            .unwrap();
        let client = pool.client();
        let subscriptions: Vec<_> = (0..4).map(|_| client.pids(50).unwrap()).collect();
        assert_eq!(client.square(7).unwrap(), 49);
        let mut workers = BTreeSet::new();
        for events in subscriptions {
            let pids: BTreeSet<u32> = events.map(Result::unwrap).collect();
            assert_eq!(pids.len(), 1, "one subscription's events from {pids:?}");
            workers.extend(pids);
        }
        assert_eq!(workers.len(), 2, "the subscriptions went to both workers");
        pool.shutdown();
    });
}

/// N concurrent callers keep N worker processes busy at once.
#[test]
fn n_callers_keep_n_workers_busy() {
    worker_main();
    watchdog(WATCHDOG, || {
        let pool = builder("n_callers_keep_n_workers_busy")
            .workers(3)
            .spawn()
            .unwrap();
        let barrier = Arc::new(Barrier::new(3));
        let pids: BTreeSet<u32> = (0..3)
            .map(|_| {
                let (client, barrier) = (pool.client().clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    client.busy(300).unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(pids, pool.pids().into_iter().collect());
        pool.shutdown();
    });
}

/// SIGKILL a worker mid-run: every call is answered or fails with `Disconnected`
/// naming the worker (none lost, none hung), and a new worker takes its place.
#[test]
fn a_killed_worker_is_replaced_and_every_call_is_accounted_for() {
    worker_main();
    watchdog(WATCHDOG, || {
        let pool = builder("a_killed_worker_is_replaced_and_every_call_is_accounted_for")
            .workers(2)
            .spawn()
            .unwrap();
        let victim = pool.pids()[0];
        let callers: Vec<_> = (0..4u64)
            .map(|t| {
                let client = pool.client().clone();
                thread::spawn(move || {
                    let (mut ok, mut lost) = (0, 0);
                    for i in 0..100 {
                        let x = t * 1_000 + i;
                        let result = if i % 2 == 0 {
                            client.busy(2).map(|_| x * x)
                        } else {
                            client.square(x)
                        };
                        match result {
                            Ok(y) => {
                                assert_eq!(y, x * x);
                                ok += 1;
                            }
                            Err(RpcError::Disconnected { peer, reason, .. }) => {
                                assert!(peer.contains(&format!("pid {victim}")), "{peer}");
                                assert!(reason.contains("replacement"), "{reason}");
                                lost += 1;
                            }
                            Err(other) => panic!("unexpected error: {other}"),
                        }
                    }
                    (ok, lost)
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(50));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(victim as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let (ok, lost) = callers
            .into_iter()
            .map(|t| t.join().unwrap())
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
        assert_eq!(ok + lost, 400);
        eprintln!("{ok} answered, {lost} lost with the killed worker");
        wait_until("the replacement", Duration::from_secs(10), || {
            let pids = pool.pids();
            pids.len() == 2 && !pids.contains(&victim)
        });
        assert!(!exists(victim), "the killed worker was not reaped");
        assert!(pool.status().iter().map(|w| w.starts).sum::<u64>() == 3);
        let client = pool.client();
        assert_eq!(client.square(9).unwrap(), 81);
        pool.shutdown();
    });
}

/// Whether process `pid` has died and its descriptors are closed: every thread but
/// the leader is gone (threads share the descriptor table, so the leader alone being
/// a zombie is not enough) and the leader is a zombie, or the process is gone.
fn dead(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    if tasks
        .flatten()
        .any(|t| t.file_name().to_str() != Some(&pid.to_string()))
    {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// Calls made right after a worker died, before the pool noticed, never reached a
/// worker (the request could not be written): the pool sends them to another worker,
/// so every one succeeds while a worker lives.
#[test]
fn calls_right_after_a_worker_dies_go_to_another_worker() {
    const ROUNDS: usize = 10;
    const CALLERS: usize = 4;
    const CALLS: usize = 5;
    worker_main();
    watchdog(WATCHDOG, || {
        // Each victim dies young (a failed start, to the pool): keep restarting, fast.
        let pool = builder("calls_right_after_a_worker_dies_go_to_another_worker")
            .workers(2)
            .max_start_failures(u32::MAX)
            .restart_backoff(Duration::from_millis(1))
            .spawn()
            .unwrap();
        let mut failures = Vec::new();
        for round in 0..ROUNDS {
            wait_until("both workers live", Duration::from_secs(10), || {
                pool.status().iter().all(|w| w.state == WorkerState::Live)
            });
            // Idle workers: each first call goes to the lowest slot, the victim.
            let victim = pool.status()[0].pid.unwrap();
            let go = Arc::new(Barrier::new(CALLERS + 1));
            let callers: Vec<_> = (0..CALLERS)
                .map(|_| {
                    let (client, go) = (pool.client().clone(), go.clone());
                    thread::spawn(move || {
                        go.wait();
                        (0..CALLS).map(|_| client.pid()).collect::<Vec<_>>()
                    })
                })
                .collect();
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(victim as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            while !dead(victim) {
                std::hint::spin_loop();
            }
            go.wait();
            for result in callers.into_iter().flat_map(|t| t.join().unwrap()) {
                match result {
                    Ok(pid) => assert_ne!(pid, victim, "round {round}: the dead worker answered"),
                    Err(e) => failures.push(format!("round {round} (victim {victim}): {e}")),
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} calls made after their worker died failed:\n{}",
            failures.len(),
            ROUNDS * CALLERS * CALLS,
            failures.join("\n")
        );
        pool.shutdown();
    });
}

/// A request that a worker dies while receiving (its sender blocked on a full pipe,
/// the worker stopped) never ran: the pool sends it to another worker, and the call
/// succeeds.
#[test]
fn a_request_cut_off_by_its_workers_death_goes_to_another_worker() {
    const LEN: usize = 1 << 20; // far more than a pipe holds
    worker_main();
    watchdog(WATCHDOG, || {
        let pool = builder("a_request_cut_off_by_its_workers_death_goes_to_another_worker")
            .workers(2)
            .spawn()
            .unwrap();
        // An idle pool sends a lone call to the lowest slot.
        let victim = pool.status()[0].pid.unwrap();
        let victim_pid = nix::unistd::Pid::from_raw(victim as i32);
        nix::sys::signal::kill(victim_pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        let big = {
            let client = pool.client().clone();
            thread::spawn(move || client.len(vec![7; LEN]))
        };
        wait_until("the big call to start", Duration::from_secs(10), || {
            pool.status()[0].in_flight == 1
        });
        // Let its sender fill the pipe and block.
        thread::sleep(Duration::from_millis(200));
        nix::sys::signal::kill(victim_pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        assert_eq!(big.join().unwrap().unwrap(), LEN as u64);
        assert_ne!(pool.client().pid().unwrap(), victim);
        pool.shutdown();
    });
}

/// A call in flight (its request sent) when its worker is killed fails with
/// `Disconnected` naming the worker: it may have run, so it is not sent again.
#[test]
fn a_call_in_flight_when_its_worker_is_killed_is_disconnected() {
    worker_main();
    watchdog(WATCHDOG, || {
        let pool = builder("a_call_in_flight_when_its_worker_is_killed_is_disconnected")
            .workers(2)
            .spawn()
            .unwrap();
        // An idle pool sends a lone call to the lowest slot.
        let victim = pool.status()[0].pid.unwrap();
        let slow = {
            let client = pool.client().clone();
            thread::spawn(move || client.busy(5_000))
        };
        wait_until("the slow call to start", Duration::from_secs(10), || {
            pool.status()[0].in_flight == 1
        });
        // Leave the request time to be read: in flight means sent.
        thread::sleep(Duration::from_millis(200));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(victim as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        match slow.join().unwrap() {
            Err(RpcError::Disconnected { peer, reason, .. }) => {
                assert!(peer.contains(&format!("pid {victim}")), "{peer}");
                assert!(reason.contains("replacement"), "{reason}");
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
        assert_ne!(pool.client().pid().unwrap(), victim);
        pool.shutdown();
    });
}

/// Shutdown stops and reaps every worker (replaced ones included) and removes every
/// named object, over a UNIX socket endpoint.
#[test]
fn shutdown_reaps_every_worker_and_removes_every_name() {
    worker_main();
    watchdog(WATCHDOG, || {
        let dir = TempDir::new();
        let pool = builder("shutdown_reaps_every_worker_and_removes_every_name")
            .workers(2)
            .endpoint(Endpoint::unix(dir.join("w.sock")))
            .spawn()
            .unwrap();
        let first = pool.pids();
        assert_eq!(entries(&dir).len(), 4, "a socket and a lock per worker");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(first[0] as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        wait_until("the replacement", Duration::from_secs(10), || {
            let pids = pool.pids();
            pids.len() == 2 && !pids.contains(&first[0])
        });
        let mut all = first.clone();
        all.extend(pool.pids());
        pool.shutdown();
        for pid in all {
            assert!(!exists(pid), "worker {pid} still has a process entry");
        }
        assert_eq!(entries(&dir), Vec::<PathBuf>::new(), "left behind");
    });
}

/// A worker busy past the grace period is killed at shutdown, and shutdown returns.
#[test]
fn shutdown_kills_workers_still_busy_after_the_grace_period() {
    worker_main();
    watchdog(WATCHDOG, || {
        let pool = builder("shutdown_kills_workers_still_busy_after_the_grace_period")
            .workers(1)
            .grace(Duration::from_millis(200))
            .spawn()
            .unwrap();
        let pid = pool.pids()[0];
        let client = pool.client().clone();
        let call = thread::spawn(move || client.busy(20_000));
        wait_until("the call to start", Duration::from_secs(5), || {
            pool.status()[0].in_flight == 1
        });
        thread::sleep(Duration::from_millis(100));
        let began = Instant::now();
        pool.shutdown();
        assert!(began.elapsed() < Duration::from_secs(10));
        assert!(!exists(pid));
        let err = call.join().unwrap().unwrap_err();
        assert!(err.is_disconnected(), "{err}");
        assert!(err.to_string().contains("shutting down"), "{err}");
    });
}

/// The workers of a pool whose process is killed exit by themselves and remove their
/// sockets.
#[test]
fn workers_exit_when_the_pool_process_is_killed() {
    worker_main();
    let test = "workers_exit_when_the_pool_process_is_killed";
    if let Ok(dir) = std::env::var("IPC_RPC_TEST_POOL_DIR") {
        // The pool process: start the pool, report the workers, wait to be killed.
        let pool = builder("workers_exit_when_the_pool_process_is_killed")
            .workers(2)
            .endpoint(Endpoint::unix(Path::new(&dir).join("w.sock")))
            .spawn()
            .unwrap();
        assert_eq!(pool.client().square(3).unwrap(), 9);
        println!("WORKERS {:?}", pool.pids());
        thread::sleep(Duration::from_secs(60));
        unreachable!("killed by the test");
    }
    watchdog(WATCHDOG, move || {
        let dir = TempDir::new();
        let mut parent = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env("IPC_RPC_TEST_POOL_DIR", &*dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(parent.stdout.take().unwrap()).lines();
        let workers: Vec<u32> = loop {
            let line = lines.next().expect("pool process output").unwrap();
            if let Some((_, list)) = line.split_once("WORKERS ") {
                break list
                    .trim_matches(|c| c == '[' || c == ']')
                    .split(", ")
                    .map(|p| p.parse().unwrap())
                    .collect();
            }
        };
        assert_eq!(workers.len(), 2);
        parent.kill().unwrap();
        parent.wait().unwrap();
        wait_until(
            "the orphaned workers to exit",
            Duration::from_secs(10),
            || workers.iter().all(|&pid| !alive(pid)),
        );
        wait_until("their sockets to go", Duration::from_secs(5), || {
            entries(&dir).is_empty()
        });
    });
}

/// A separate worker program: any command, here this binary in another role.
#[test]
fn a_separate_worker_command_serves() {
    worker_main();
    watchdog(WATCHDOG, || {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "a_separate_worker_command_serves",
            "--test-threads=1",
        ])
        .env(ROLE_VAR, "separate");
        let pool = Pool::<JobClient>::builder()
            .workers(2)
            .command(cmd)
            .spawn()
            .unwrap();
        assert_eq!(pool.client().role().unwrap(), "separate");
        assert_ne!(pool.client().pid().unwrap(), std::process::id());
        pool.shutdown();
    });
}

#[test]
fn a_pool_over_unix_sockets_works() {
    worker_main();
    watchdog(WATCHDOG, || {
        let dir = TempDir::new();
        let endpoint = Endpoint::unix(dir.join("job.sock"));
        check_pool_over(endpoint, "a_pool_over_unix_sockets_works", Some(&dir));
    });
}

#[test]
fn a_pool_over_tcp_works() {
    worker_main();
    watchdog(WATCHDOG, || {
        let endpoint = "tcp:127.0.0.1:0".parse().unwrap();
        check_pool_over(endpoint, "a_pool_over_tcp_works", None);
    });
}

#[test]
fn a_pool_over_fifos_works() {
    worker_main();
    watchdog(WATCHDOG, || {
        let dir = TempDir::new();
        let endpoint = format!("fifo:{}/job", dir.display()).parse().unwrap();
        check_pool_over(endpoint, "a_pool_over_fifos_works", Some(&dir));
    });
}

/// Over shared memory: large payloads between processes without a kernel copy.
#[test]
fn a_pool_over_shared_memory_works() {
    worker_main();
    watchdog(WATCHDOG, || {
        let name = format!("/ipc-rpc-test-pool-{}", transports::test_util::run_id());
        let endpoint: Endpoint = format!("shm:{name}").parse().unwrap();
        check_pool_over(endpoint, "a_pool_over_shared_memory_works", None);
        let prefix = name.trim_start_matches('/');
        let left: Vec<_> = entries(Path::new("/dev/shm"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(prefix))
            .collect();
        assert!(left.is_empty(), "left in /dev/shm: {left:?}");
    });
}

#[test]
fn per_call_timeout_applies_and_the_pool_stays_usable() {
    worker_main();
    watchdog(WATCHDOG, || {
        let pool = builder("per_call_timeout_applies_and_the_pool_stays_usable")
            .workers(1)
            .timeout(Duration::from_millis(100))
            .spawn()
            .unwrap();
        let err = pool.client().busy(1_000).unwrap_err();
        assert!(
            matches!(err, RpcError::Timeout { after, .. } if after == Duration::from_millis(100)),
            "{err:?}"
        );
        // The worker finishes the abandoned call first; then it answers again.
        let patient = pool.client().with_timeout(Duration::from_secs(10));
        assert_eq!(patient.square(5).unwrap(), 25);
        pool.shutdown();
    });
}

/// A worker that exits at start-up fails `spawn` with its exit status, and is reaped.
#[test]
fn a_worker_failing_at_start_fails_spawn() {
    worker_main();
    watchdog(WATCHDOG, || {
        let err = Pool::<JobClient>::builder()
            .workers(2)
            .command_fn(worker(
                "a_worker_failing_at_start_fails_spawn",
                "fail-at-start",
            ))
            .spawn()
            .unwrap_err();
        let PoolError::Start { pid, .. } = &err else {
            panic!("expected PoolError::Start, got {err:?}");
        };
        let message = err.to_string();
        assert!(message.contains("exited with status 3"), "{message}");
        assert!(message.contains("serve_if_worker"), "{message}");
        assert!(!exists(*pid));
    });
}

/// A worker serving another service is refused at start.
#[test]
fn a_worker_of_another_service_fails_spawn() {
    worker_main();
    watchdog(WATCHDOG, || {
        let err = Pool::<JobClient>::builder()
            .workers(1)
            .command_fn(worker(
                "a_worker_of_another_service_fails_spawn",
                "unrelated",
            ))
            .spawn()
            .unwrap_err();
        assert!(
            matches!(
                &err,
                PoolError::Start {
                    source: Some(RpcError::Incompatible { .. }),
                    ..
                }
            ),
            "{err:?}"
        );
    });
}

/// Replacements that die at start-up are retried with a back-off, then given up and
/// reported; they are not respawned in a hot loop.
#[test]
fn replacements_failing_at_start_are_given_up_not_respawned_in_a_loop() {
    worker_main();
    watchdog(WATCHDOG, || {
        let dir = TempDir::new();
        let marker = dir.join("started");
        let test = "replacements_failing_at_start_are_given_up_not_respawned_in_a_loop";
        let make = worker(test, "fail-after-first");
        let pool = Pool::<JobClient>::builder()
            .workers(1)
            .command_fn(move |i| {
                let mut cmd = make(i);
                cmd.env(MARKER_VAR, &marker);
                cmd
            })
            .max_start_failures(3)
            .restart_backoff(Duration::from_millis(50))
            .spawn()
            .unwrap();
        let first = pool.pids()[0];
        assert_eq!(pool.client().square(4).unwrap(), 16);
        let began = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(first as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        wait_until("the pool to see the death", Duration::from_secs(5), || {
            pool.pids().is_empty()
        });
        // The call waits while the slot restarts, then reports why it gave up.
        let err = pool.client().square(4).unwrap_err();
        let took = began.elapsed();
        let RpcError::PoolUnavailable { reason, .. } = &err else {
            panic!("expected PoolUnavailable, got {err:?}");
        };
        assert!(reason.contains("exited with status 3"), "{reason}");
        assert!(reason.contains("3 times"), "{reason}");
        // An early death, then two starts after 50 ms and 100 ms.
        assert!(took >= Duration::from_millis(150), "gave up after {took:?}");
        let status = pool.status()[0].clone();
        assert_eq!(status.state, WorkerState::GaveUp);
        assert_eq!(status.starts, 3);
        thread::sleep(Duration::from_millis(300));
        assert_eq!(pool.status()[0].starts, 3, "still restarting");
        pool.shutdown();
    });
}
