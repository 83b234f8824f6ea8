//! The async client (feature `tokio`) over every transport: `ProbeAsyncClient` against
//! the `Probe` server of the matrix. Test names come out as `unix::…`, like the
//! blocking matrix's.
//!
//! Over `pipe`, the server is a child made by `ipc_rpc::spawn_child_async`.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ipc_rpc::RpcError;
use tokio::runtime::Runtime;

use common::*;

const WATCHDOG: Duration = Duration::from_secs(60);

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
        two_thousand_calls_in_flight_take_no_thread_each,
        another_version_fails_only_its_changed_methods,
        connecting_to_a_stopped_server_times_out_within_connect_timeout,
        a_subscription_is_a_stream_of_events_in_order,
        dropping_a_subscription_stream_makes_the_servers_send_fail,
        server_killed_during_a_subscription_stream_ends_it_disconnected,
    ]
} }

/// How a test shares the machine with the others of this binary.
#[derive(Clone, Copy, PartialEq)]
enum Share {
    /// Side by side with other tests.
    Beside,
    /// Alone: it measures how late a timer runs or counts this process's threads, and
    /// tests running beside it on a small machine would take the CPU it measures.
    Alone,
}

/// Held for reading by [`Share::Beside`] tests, for writing by [`Share::Alone`] ones.
static SHARING: RwLock<()> = RwLock::new(());

/// Where the server runs.
#[derive(Clone, Copy, PartialEq)]
enum Server {
    /// In this process (`pipe`: a child all the same).
    Here,
    /// In a child process.
    Child,
}

/// A `Probe` server and an async client of it.
struct AsyncFixture {
    client: ProbeAsyncClient,
    /// Where the server listens (`None` over `pipe`).
    endpoint: Option<ipc_rpc::Endpoint>,
    server: common::Server,
    /// The test killed the server: there is nothing left to stop.
    killed: bool,
    _ep: TestEndpoint,
}

impl AsyncFixture {
    fn start(t: Transport, name: &str, server: Server, rt: &Runtime) -> Self {
        if t == Transport::pipe {
            let ep = t.endpoint();
            let (client, child) = rt
                .block_on(pipe_child::<ProbeAsyncClient>(name, &ep.endpoint))
                .expect("spawn a pipe child");
            return AsyncFixture {
                client,
                endpoint: None,
                server: common::Server::Child(child),
                killed: false,
                _ep: ep,
            };
        }
        let f = match server {
            Server::Here => t.start(name, ""),
            Server::Child => t.start_in_child(name),
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
            endpoint: Some(ep),
            server,
            killed: false,
            _ep: test_ep,
        }
    }

    fn kill_server(&mut self) {
        self.server.kill();
        self.killed = true;
    }
}

/// A `Probe` server in a child of this test binary over a pipe pair, and a client `C`
/// of it.
async fn pipe_child<C: ipc_rpc::AsyncServiceClient>(
    name: &str,
    endpoint: &ipc_rpc::Endpoint,
) -> Result<(C, std::process::Child), RpcError> {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, "pipe-server")
        .stdout(std::process::Stdio::null());
    ipc_rpc::spawn_child_async_with::<C>(cmd, endpoint).await
}

/// Runs `test` under the watchdog with a runtime like an application's (two worker
/// threads, timers on) and an async client of a `Probe` server; then drops the client
/// and stops the server.
fn run(
    t: Transport,
    name: String,
    share: Share,
    server: Server,
    test: impl FnOnce(&Runtime, &mut AsyncFixture) + Send + 'static,
) {
    let _share = match share {
        Share::Beside => (
            Some(SHARING.read().unwrap_or_else(|e| e.into_inner())),
            None,
        ),
        Share::Alone => (
            None,
            Some(SHARING.write().unwrap_or_else(|e| e.into_inner())),
        ),
    };
    watchdog(WATCHDOG, move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut f = AsyncFixture::start(t, &name, server, &rt);
        test(&rt, &mut f);
        let AsyncFixture {
            client,
            server,
            killed,
            ..
        } = f;
        drop(client);
        match server {
            _ if killed => {}
            // Not killed: a killed mq server would leave its queue behind.
            common::Server::Remote(child) => child.stop(),
            server => server.shutdown(),
        }
    });
}

/// Ticks every millisecond until `stop` is set; how late each tick came, sorted.
fn ticker(stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<Duration>> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut late = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let due = interval.tick().await;
            late.push(due.elapsed());
        }
        late.sort();
        late
    })
}

/// Checks that a ticker ran on time, and says how late it ran. A client that blocks
/// the runtime's threads (the blocking client called from these tasks) makes the
/// typical tick tens of milliseconds late; the worst tick is only reported, since a
/// busy machine can delay any one tick.
fn check_ticker(t: Transport, what: &str, late: &[Duration]) {
    assert!(late.len() >= 2, "the ticker ticked {} times", late.len());
    let pct = |p: usize| late[(late.len() - 1) * p / 100];
    eprintln!(
        "{t:?}: {what}; ticker lateness over {} ticks: p50 {:?}, p99 {:?}, max {:?}",
        late.len(),
        pct(50),
        pct(99),
        pct(100)
    );
    assert!(
        pct(50) < Duration::from_millis(5),
        "the typical tick came {:?} late: something blocked the runtime",
        pct(50)
    );
}

fn calls_return_values_errors_and_byte_strings(t: Transport, name: String) {
    run(t, name, Share::Beside, Server::Here, |rt, f| {
        let c = &f.client;
        let server_pid = f.server.pid();
        rt.block_on(async {
            assert_eq!(c.add(2, 3).await.unwrap(), 5);
            assert_eq!(c.div(1, 0).await.unwrap(), Err(MathError::DivideByZero));
            c.nothing().await.unwrap();
            assert_eq!(c.pid().await.unwrap(), server_pid);
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
    });
}

fn a_timed_out_call_returns_timeout_and_the_client_stays_usable(t: Transport, name: String) {
    run(t, name, Share::Beside, Server::Here, |rt, f| {
        let c = &f.client;
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
    });
}

/// The test: 1000 tasks × 10 calls on one client, while a 1 ms interval ticks.
/// A client that blocked its runtime's threads would hold the ticker up for as long as
/// its calls take; this one must keep it on time (see [`check_ticker`]). Half the calls
/// take a millisecond on the server, so that the run lasts long past that bound.
fn thousand_tasks_of_ten_calls_keep_a_1ms_ticker_on_time(t: Transport, name: String) {
    run(t, name, Share::Alone, Server::Here, move |rt, f| {
        let c = &f.client;
        let (late, took) = rt.block_on(async {
            let stop = Arc::new(AtomicBool::new(false));
            let ticks = ticker(stop.clone());
            let started = Instant::now();
            let tasks: Vec<_> = (0..1000i64)
                .map(|task| {
                    let c = c.clone();
                    tokio::spawn(async move {
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
            stop.store(true, Ordering::Relaxed);
            (ticks.await.unwrap(), took)
        });
        let what = format!("10000 calls from 1000 tasks took {took:?}");
        check_ticker(t, &what, &late);
    });
}

/// A call whose future is dropped (here by `tokio::time::timeout` and by `select!`)
/// is cancelled on the server: its handler sees `ipc_rpc::cancelled()`.
fn dropping_a_call_future_cancels_the_call_on_the_server(t: Transport, name: String) {
    run(t, name, Share::Beside, Server::Here, |rt, f| {
        let c = &f.client;
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
    });
}

fn server_killed_mid_call_returns_disconnected(t: Transport, name: String) {
    run(t, name, Share::Beside, Server::Child, |rt, f| {
        let call = {
            let c = f.client.clone();
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
        let again = rt.block_on(f.client.add(1, 2)).unwrap_err();
        assert!(again.is_disconnected(), "{again:?}");
    });
}

/// A server that stops reading (SIGSTOP) fills the connection: calls with a deadline
/// still return `Timeout` on time, the runtime keeps running (the writer thread, not
/// a task, waits on the full connection), and once the server goes on the client
/// works again.
fn a_stopped_server_times_calls_out_without_holding_up_the_runtime(t: Transport, name: String) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    run(t, name, Share::Alone, Server::Child, move |rt, f| {
        let c = &f.client;
        let server = Pid::from_raw(f.server.pid() as i32);
        assert_eq!(rt.block_on(c.add(1, 2)).unwrap(), 3);
        kill(server, Signal::SIGSTOP).unwrap();
        wait_until_stopped(server.as_raw() as u32);
        let deadline = Duration::from_millis(300);
        let (late, took) = rt.block_on(async {
            let stop = Arc::new(AtomicBool::new(false));
            let ticks = ticker(stop.clone());
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
            stop.store(true, Ordering::Relaxed);
            (ticks.await.unwrap(), took)
        });
        kill(server, Signal::SIGCONT).unwrap();
        assert!(took < Duration::from_secs(3), "took {took:?}");
        let what = format!("200 calls to a stopped server timed out in {took:?}");
        check_ticker(t, &what, &late);
        let patient = c.with_timeout(Duration::from_secs(10));
        assert_eq!(rt.block_on(patient.add(2, 2)).unwrap(), 4);
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

/// The threads of this process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// 2000 calls in flight at once from 2000 tasks on one client cost no thread each:
/// this process (the server runs in a child) has as many threads while they wait as
/// before. The server runs 32 of them at a time (`max_in_flight`), 50 ms each, so
/// most of them wait for seconds.
fn two_thousand_calls_in_flight_take_no_thread_each(t: Transport, name: String) {
    run(t, name, Share::Alone, Server::Child, move |rt, f| {
        let c = &f.client;
        assert_eq!(rt.block_on(c.add(1, 1)).unwrap(), 2);
        let before = threads();
        let during = rt.block_on(async {
            let calls: Vec<_> = (0..2000)
                .map(|_| {
                    let c = c.clone();
                    tokio::spawn(async move { c.sleep_ms(50).await })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let during = threads();
            let finished = calls.iter().filter(|call| call.is_finished()).count();
            assert!(
                finished < 1000,
                "{finished} of 2000 calls done after 500 ms"
            );
            for call in calls {
                assert_eq!(call.await.unwrap().unwrap(), 50);
            }
            during
        });
        eprintln!("{t:?}: {before} threads before 2000 calls in flight, {during} while they wait");
        assert!(
            during <= before,
            "{before} threads before, {during} with 2000 calls in flight"
        );
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

/// An async client of another version of `Probe`: the unchanged method works, a changed
/// and a missing one fail alone with `MethodMismatch`.
fn another_version_fails_only_its_changed_methods(t: Transport, name: String) {
    let test = name.clone();
    run(t, name, Share::Beside, Server::Here, move |rt, f| {
        rt.block_on(async {
            let (v2, child) = match &f.endpoint {
                Some(ep) => (probe_v2::ProbeAsyncClient::connect(ep).await, None),
                None => {
                    match pipe_child::<probe_v2::ProbeAsyncClient>(&test, &t.endpoint().endpoint)
                        .await
                    {
                        Ok((c, child)) => (Ok(c), Some(KillOnDrop(child))),
                        Err(e) => (Err(e), None),
                    }
                }
            };
            let v2 = v2.expect("another version of the same service connects");
            assert_eq!(v2.echo(vec![5, 6]).await.unwrap(), [5, 6]);
            let changed = v2.add(1, 2).await.unwrap_err();
            assert!(
                matches!(
                    &changed,
                    RpcError::MethodMismatch {
                        method: "add",
                        server: Some(_),
                        ..
                    }
                ),
                "{changed:?}"
            );
            let missing = v2.uptime().await.unwrap_err();
            assert!(
                matches!(
                    &missing,
                    RpcError::MethodMismatch {
                        method: "uptime",
                        server: None,
                        ..
                    }
                ),
                "{missing:?}"
            );
            assert_eq!(v2.echo(vec![7]).await.unwrap(), [7], "still usable");
            drop(v2);
            drop(child);
        });
    });
}
/// A subscription on the async client is a `futures_core::Stream`: its events come in
/// order (more than its buffer, so credit flows back), calls go on beside it, and many
/// run at once from tasks.
fn a_subscription_is_a_stream_of_events_in_order(t: Transport, name: String) {
    use futures_core::Stream;
    run(t, name, Share::Beside, Server::Here, |rt, f| {
        let c = f.client.clone();
        rt.block_on(async move {
            let mut events = c.count(1000).await.unwrap();
            let mut got = Vec::new();
            // Through the Stream trait, as stream adapters poll it.
            while let Some(event) =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut events).poll_next(cx)).await
            {
                got.push(event.unwrap());
                if got.len() == 10 {
                    assert_eq!(c.add(2, 2).await.unwrap(), 4);
                }
            }
            assert_eq!(got, (0..1000).collect::<Vec<_>>());
            assert!(events.is_done() && events.next().await.is_none());

            let tasks: Vec<_> = (0..50)
                .map(|_| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        let mut events = c.count_later(20, 1).await.unwrap();
                        let mut sum = 0;
                        while let Some(event) = events.next().await {
                            sum += event.unwrap();
                        }
                        sum
                    })
                })
                .collect();
            for task in tasks {
                assert_eq!(task.await.unwrap(), 190);
            }
        });
    });
}

/// Dropping the stream tells the server: its sink's sends fail within a second.
fn dropping_a_subscription_stream_makes_the_servers_send_fail(t: Transport, name: String) {
    run(t, name, Share::Beside, Server::Child, |rt, f| {
        let c = f.client.clone();
        rt.block_on(async move {
            let tag = unique_tag();
            let mut events = c.flood(tag, 64).await.unwrap();
            for _ in 0..3 {
                assert_eq!(events.next().await.unwrap().unwrap().len(), 64);
            }
            drop(events);
            let dropped = Instant::now();
            let ended = loop {
                if let Some(how) = c.flood_ended(tag).await.unwrap() {
                    break how;
                }
                assert!(
                    dropped.elapsed() < Duration::from_secs(1),
                    "sends still succeed"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            assert!(ended.contains("dropped the subscription"), "{ended}");
            assert_eq!(c.add(1, 2).await.unwrap(), 3);
        });
    });
}

/// A killed server ends the stream with `Disconnected`, never leaving it pending.
fn server_killed_during_a_subscription_stream_ends_it_disconnected(t: Transport, name: String) {
    run(t, name, Share::Beside, Server::Child, |rt, f| {
        let mut events = rt.block_on(f.client.count_later(100_000, 5)).unwrap();
        assert_eq!(rt.block_on(events.next()).unwrap().unwrap(), 0);
        f.kill_server();
        let killed = Instant::now();
        let end = rt.block_on(async {
            loop {
                match events.next().await {
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break e,
                    None => panic!("the stream ended normally; the server was killed"),
                }
            }
        });
        assert!(end.is_disconnected(), "{end:?}");
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "took {:?}",
            killed.elapsed()
        );
        assert!(rt.block_on(events.next()).is_none());
    });
}

/// `connect(&ep).await` to a stopped (SIGSTOP) server gives up within the endpoint's
/// `connect_timeout`, the handshake included, with `ConnectTimeout` naming the endpoint.
fn connecting_to_a_stopped_server_times_out_within_connect_timeout(t: Transport, name: String) {
    if t == Transport::pipe {
        // A pipe child is spawned, not connected to: nothing to time out.
        return;
    }
    watchdog(WATCHDOG, move || {
        let ep = t.endpoint();
        let server = ChildServer::spawn_stopped(&name, &ep.endpoint);
        let timeout = Duration::from_millis(300);
        let endpoint = server.endpoint.clone().with_connect_timeout(timeout);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let started = Instant::now();
        let err = rt
            .block_on(ProbeAsyncClient::connect(&endpoint))
            .unwrap_err();
        let took = started.elapsed();
        let RpcError::ConnectTimeout { after, .. } = &err else {
            panic!("{t:?}: {err:?}");
        };
        assert_eq!(*after, timeout);
        assert!(
            took >= timeout && took < timeout + Duration::from_secs(2),
            "{t:?}: gave up after {took:?} (the handshake used to wait 10 s)"
        );
        assert!(err.to_string().contains(&endpoint.to_string()), "{err}");
        server.resume_and_stop();
    });
}
