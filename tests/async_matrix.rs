//! The async client (feature `tokio`) over every transport: `ProbeAsyncClient` against
//! the `Probe` server of the matrix. Test names come out as `unix::…`, like the
//! blocking matrix's.
//!
//! Over `pipe`, the server is a child made by `ipc_rpc::spawn_child_async`.

#[macro_use]
mod common;

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use ipc_rpc::RpcError;

use common::*;

const WATCHDOG: Duration = Duration::from_secs(60);

/// A ticker test runs alone ([`alone`]): it measures how late a timer runs, and tests
/// running beside it on a small machine would take the CPU it measures. Other tests
/// run side by side ([`beside_others`]).
static TICKER: RwLock<()> = RwLock::new(());

fn alone() -> RwLockWriteGuard<'static, ()> {
    TICKER.write().unwrap_or_else(|e| e.into_inner())
}

fn beside_others() -> RwLockReadGuard<'static, ()> {
    TICKER.read().unwrap_or_else(|e| e.into_inner())
}

macro_rules! async_matrix {
    (transports: [$($transport:ident),* $(,)?], tests: $tests:tt) => {
        $( async_matrix!(@one $transport $tests); )*
    };
    (@one $transport:ident [$($test:ident),* $(,)?]) => {
        mod $transport {
            $(
                #[test]
                fn $test() {
                    crate::common::serve_if_child();
                    let name = crate::common::test_name(module_path!(), stringify!($test));
                    crate::$test(crate::common::Transport::$transport, name);
                }
            )*
        }
    };
}

with_transports! { async_matrix! {
    tests: [
        calls_return_values_errors_and_byte_strings,
        a_timed_out_call_returns_timeout_and_the_client_stays_usable,
        thousand_tasks_of_ten_calls_keep_a_1ms_ticker_on_time,
        dropping_a_call_future_cancels_the_call_on_the_server,
        server_killed_mid_call_returns_disconnected,
        a_stopped_server_times_calls_out_without_holding_up_the_runtime,
    ]
} }

/// A runtime like an application's: two worker threads, timers on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A `Probe` server and an async client of it.
struct AsyncFixture {
    client: ProbeAsyncClient,
    server: Server,
    _ep: TestEndpoint,
}

impl AsyncFixture {
    /// The server in this process (in a child with `in_child`); for `pipe`, always a
    /// child, spawned by `spawn_child_async`.
    fn start(t: Transport, name: &str, in_child: bool, rt: &tokio::runtime::Runtime) -> Self {
        if t == Transport::pipe {
            let ep = t.endpoint();
            let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
            cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
                .env(ROLE_VAR, "pipe-server")
                .stdout(std::process::Stdio::null());
            let (client, child) = rt
                .block_on(ipc_rpc::spawn_child_async_with::<ProbeAsyncClient>(
                    cmd,
                    &ep.endpoint,
                ))
                .expect("spawn a pipe child");
            return AsyncFixture {
                client,
                server: Server::Child(child),
                _ep: ep,
            };
        }
        let f = if in_child {
            t.start_in_child(name)
        } else {
            t.start(name, "")
        };
        let ep = f.endpoint().expect("an endpoint");
        let Fixture {
            server,
            ep: test_ep,
            ..
        } = f;
        let client = rt
            .block_on(ProbeAsyncClient::connect(&ep))
            .expect("connect");
        AsyncFixture {
            client,
            server,
            _ep: test_ep,
        }
    }

    fn server_pid(&self) -> u32 {
        match &self.server {
            Server::Local(_) => std::process::id(),
            Server::Remote(c) => c.child.id(),
            Server::Child(c) => c.id(),
        }
    }

    fn kill_server(&mut self) {
        match &mut self.server {
            Server::Local(_) => panic!("the server runs in this process"),
            Server::Remote(c) => c.kill(),
            Server::Child(c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Drops the client and stops the server (a `pipe` child stops when its client is
    /// gone).
    fn shutdown(self) {
        let AsyncFixture { client, server, .. } = self;
        drop(client);
        match server {
            Server::Local(s) => s.shutdown(),
            Server::Remote(mut c) => c.kill(),
            Server::Child(mut c) => {
                let status = c.wait().expect("wait for the pipe child");
                assert!(status.success(), "the pipe child ended with {status}");
            }
        }
    }
}

fn calls_return_values_errors_and_byte_strings(t: Transport, name: String) {
    let _beside_others = beside_others();
    watchdog(WATCHDOG, move || {
        let rt = runtime();
        let f = AsyncFixture::start(t, &name, false, &rt);
        let c = f.client.clone();
        rt.block_on(async {
            assert_eq!(c.add(2, 3).await.unwrap(), 5);
            assert_eq!(c.div(1, 0).await.unwrap(), Err(MathError::DivideByZero));
            c.nothing().await.unwrap();
            assert_eq!(c.pid().await.unwrap(), f.server_pid());
            let big: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7) as u8).collect();
            assert_eq!(c.echo(big.clone()).await.unwrap(), big);
            assert_eq!(c.fill(3 << 20).await.unwrap().len(), 3 << 20);
            let value = sample_nested();
            assert_eq!(
                c.nested(value.clone()).await.unwrap().name,
                "outer ✓ (seen)"
            );
            let (front, back) = (vec![1u8; 70_000], vec![2u8; 90_000]);
            let (n, joined) = c.splice(front.clone(), 9, back.clone()).await.unwrap();
            assert_eq!((n, joined), (9, [front, back].concat()));
            let err = c.panic_now("boom".into()).await.unwrap_err();
            assert!(matches!(err, RpcError::RemotePanic { .. }), "{err:?}");
            // Clones share the connection; the client is Send + Sync.
            let clone = c.clone();
            let spawned = tokio::spawn(async move { clone.add(40, 2).await });
            assert_eq!(spawned.await.unwrap().unwrap(), 42);
        });
        drop(c);
        f.shutdown();
    });
}

fn a_timed_out_call_returns_timeout_and_the_client_stays_usable(t: Transport, name: String) {
    let _beside_others = beside_others();
    watchdog(WATCHDOG, move || {
        let rt = runtime();
        let f = AsyncFixture::start(t, &name, false, &rt);
        let c = f.client.clone();
        rt.block_on(async {
            let deadline = Duration::from_millis(100);
            let quick = c.with_timeout(deadline);
            assert_eq!(quick.timeout(), Some(deadline));
            let started = Instant::now();
            let err = quick.sleep_ms(2000).await.unwrap_err();
            let took = started.elapsed();
            assert!(
                matches!(err, RpcError::Timeout { after, .. } if after == deadline),
                "{err:?}"
            );
            assert!(
                took >= deadline && took < Duration::from_secs(2),
                "took {took:?}"
            );
            // The late reply is dropped; a handler sees its caller's deadline.
            assert_eq!(c.add(1, 2).await.unwrap(), 3);
            let patient = c.with_timeout(Duration::from_secs(20));
            let seen = patient.deadline_ms().await.unwrap().expect("a deadline");
            assert!(seen <= 20_000, "{seen} ms");
            assert_eq!(c.deadline_ms().await.unwrap(), None);
        });
        drop(c);
        f.shutdown();
    });
}

/// The test: 1000 tasks × 10 calls on one client, while a 1 ms interval ticks.
/// A client that blocked its runtime's threads would hold the ticker up for as long as
/// its calls take; this one must keep it on time. Timing is not what this tests (the
/// benchmark measures speed): the bound is the point at which the ticker is clearly
/// held up (far above a loaded machine's scheduling noise), not a speed target.
fn thousand_tasks_of_ten_calls_keep_a_1ms_ticker_on_time(t: Transport, name: String) {
    let _alone = alone();
    watchdog(WATCHDOG, move || {
        let rt = runtime();
        let f = AsyncFixture::start(t, &name, false, &rt);
        let c = f.client.clone();
        let (late, ticks, took) = rt.block_on(async {
            let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let ticker = {
                let done = done.clone();
                tokio::spawn(async move {
                    let mut interval = tokio::time::interval(Duration::from_millis(1));
                    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let mut late = Vec::new();
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        let due = interval.tick().await;
                        late.push(due.elapsed());
                    }
                    late
                })
            };
            let started = Instant::now();
            let tasks: Vec<_> = (0..1000i64)
                .map(|task| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        // Calls that take a millisecond on the server, so that the
                        // run lasts long past the bound below (a runtime blocked by
                        // its client would hold the ticker up for about as long).
                        for i in 0..10 {
                            if i % 2 == 0 {
                                assert_eq!(c.sleep_ms(1).await.unwrap(), 1);
                            } else {
                                assert_eq!(c.add(task, i).await.unwrap(), task + i);
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            let took = started.elapsed();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            let mut late = ticker.await.unwrap();
            late.sort();
            let ticks = late.len();
            (late, ticks, took)
        });
        let pct = |p: usize| late[(late.len() - 1) * p / 100];
        let max = *late.last().unwrap();
        eprintln!(
            "{t:?}: 10000 calls from 1000 tasks took {took:?}; ticker lateness over {ticks} \
             ticks: p50 {:?}, p99 {:?}, max {max:?}",
            pct(50),
            pct(99)
        );
        assert!(ticks >= 2, "the ticker ticked {ticks} times");
        // A client that blocks the runtime's threads (the blocking client called from
        // these tasks) makes the typical tick tens of milliseconds late. The worst tick
        // is only reported: a busy machine can delay any one tick.
        assert!(
            pct(50) < Duration::from_millis(5),
            "the typical tick came {:?} late: something blocked the runtime",
            pct(50)
        );
        drop(c);
        f.shutdown();
    });
}

/// A call whose future is dropped (here by `tokio::time::timeout` and by `select!`)
/// is cancelled on the server: its handler sees `ipc_rpc::cancelled()`.
fn dropping_a_call_future_cancels_the_call_on_the_server(t: Transport, name: String) {
    let _beside_others = beside_others();
    watchdog(WATCHDOG, move || {
        let rt = runtime();
        let f = AsyncFixture::start(t, &name, false, &rt);
        let c = f.client.clone();
        rt.block_on(async {
            let by_timeout = unique_tag();
            let gave_up = tokio::time::timeout(
                Duration::from_millis(100),
                c.watch_cancel(by_timeout, 10_000),
            )
            .await;
            assert!(gave_up.is_err(), "the call should still run");
            let by_select = unique_tag();
            tokio::select! {
                r = c.watch_cancel(by_select, 10_000) => panic!("returned {r:?}"),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            for tag in [by_timeout, by_select] {
                let until = Instant::now() + Duration::from_secs(2);
                while !c.cancel_seen(tag).await.unwrap() {
                    assert!(Instant::now() < until, "the handler never saw cancelled()");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            // Abandoned calls leave the connection usable.
            assert_eq!(c.add(1, 1).await.unwrap(), 2);
        });
        drop(c);
        f.shutdown();
    });
}

fn server_killed_mid_call_returns_disconnected(t: Transport, name: String) {
    let _beside_others = beside_others();
    watchdog(WATCHDOG, move || {
        let rt = runtime();
        let mut f = AsyncFixture::start(t, &name, true, &rt);
        let c = f.client.clone();
        let call = {
            let c = c.clone();
            rt.spawn(async move { c.sleep_ms(20_000).await })
        };
        std::thread::sleep(Duration::from_millis(200));
        let killed = Instant::now();
        f.kill_server();
        let err = rt.block_on(call).unwrap().unwrap_err();
        assert!(err.is_disconnected(), "{err:?}");
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "noticed after {:?}",
            killed.elapsed()
        );
        let again = rt.block_on(c.add(1, 2)).unwrap_err();
        assert!(again.is_disconnected(), "{again:?}");
        drop(c);
    });
}

/// Hygiene: the async client's expansion writes absolute paths only, and follows a
/// facade reached through a re-export (`#[ipc_service(crate = "...")]`).
mod hygiene {
    #![no_implicit_prelude]
    #![deny(warnings)]
    #![allow(dead_code)] // the traits are only compiled here, never implemented

    mod deps {
        pub use ::ipc_rpc as rpc;
    }

    #[::ipc_rpc::ipc_service]
    pub trait Store {
        fn get(&self, key: ::std::string::String) -> ::core::option::Option<::std::vec::Vec<u8>>;
        fn put(
            &self,
            key: ::std::string::String,
            value: ::std::vec::Vec<u8>,
        ) -> ::core::result::Result<(), ::std::string::String>;
        fn clear(&self);
    }

    mod reexported {
        #[super::deps::rpc::ipc_service(crate = "super::deps::rpc")]
        pub trait Store {
            fn len(&self) -> usize;
        }
    }

    #[test]
    fn the_async_client_compiles_without_the_prelude() {
        fn is_client<T: ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync>() {}
        is_client::<StoreAsyncClient>();
        is_client::<reexported::StoreAsyncClient>();
    }
}

/// A server that stops reading (SIGSTOP) fills the connection: calls with a deadline
/// still return `Timeout` on time, the runtime keeps running (the writer thread, not
/// a task, waits on the full connection), and once the server goes on the client
/// works again.
fn a_stopped_server_times_calls_out_without_holding_up_the_runtime(t: Transport, name: String) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let _alone = alone();
    watchdog(WATCHDOG, move || {
        let rt = runtime();
        let f = AsyncFixture::start(t, &name, true, &rt);
        let c = f.client.clone();
        let server = Pid::from_raw(f.server_pid() as i32);
        assert_eq!(rt.block_on(c.add(1, 2)).unwrap(), 3);
        kill(server, Signal::SIGSTOP).unwrap();
        wait_until_stopped(server.as_raw() as u32);
        let deadline = Duration::from_millis(300);
        let (late, took) = rt.block_on(async {
            let ticker = tokio::spawn(async {
                let mut interval = tokio::time::interval(Duration::from_millis(1));
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut late = Vec::new();
                for _ in 0..200 {
                    let due = interval.tick().await;
                    late.push(due.elapsed());
                }
                late.sort();
                late
            });
            let started = Instant::now();
            // 200 calls of 64 KiB each: more than any transport buffers.
            let calls: Vec<_> = (0..200u8)
                .map(|i| {
                    let quick = c.with_timeout(deadline);
                    tokio::spawn(async move { quick.echo(vec![i; 64 << 10]).await })
                })
                .collect();
            for call in calls {
                match call.await.unwrap() {
                    Err(RpcError::Timeout { .. }) => {}
                    Err(e) => panic!("{e:?}"),
                    Ok(bytes) => panic!("a stopped server answered ({} bytes)", bytes.len()),
                }
            }
            let took = started.elapsed();
            (ticker.await.unwrap(), took)
        });
        kill(server, Signal::SIGCONT).unwrap();
        let (typical, max) = (late[late.len() / 2], late[late.len() - 1]);
        eprintln!(
            "{t:?}: 200 calls to a stopped server timed out in {took:?}; ticker lateness \
             p50 {typical:?}, max {max:?}"
        );
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert!(
            typical < Duration::from_millis(5),
            "the typical tick came {typical:?} late: something blocked the runtime"
        );
        let again = c.with_timeout(Duration::from_secs(10));
        assert_eq!(rt.block_on(again.add(2, 2)).unwrap(), 4);
        drop((c, again));
        f.shutdown();
    });
}

/// Waits until process `pid` is stopped (state `T`): `kill` returns before a running
/// process has taken its SIGSTOP.
fn wait_until_stopped(pid: u32) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next());
        if state == Some("T") {
            return;
        }
        assert!(Instant::now() < until, "process {pid} did not stop: {stat}");
        std::thread::sleep(Duration::from_millis(1));
    }
}
