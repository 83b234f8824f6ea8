//! The async client (feature `tokio`) over every transport: `ProbeAsyncClient` against
//! the `Probe` server of the matrix. Test names come out as `unix::…`, like the
//! blocking matrix's.
//!
//! `pipe` has no endpoint to connect an async client to (its client comes from
//! `spawn_child`, blocking): its tests say `skipped: …`.

#[macro_use]
mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipc_rpc::RpcError;

use common::*;

const WATCHDOG: Duration = Duration::from_secs(60);

/// One ticker test at a time: each measures how late a timer runs, and two running
/// side by side on a small machine would measure each other.
static TICKER: Mutex<()> = Mutex::new(());

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

/// Whether the transport has an endpoint an async client can connect to; says
/// `skipped: …` if not.
fn applies(t: Transport) -> bool {
    if t.multi_client() {
        return true;
    }
    eprintln!(
        "skipped: {t:?}: no endpoint for an async client (spawn_child makes a blocking client)"
    );
    false
}

fn calls_return_values_errors_and_byte_strings(t: Transport, name: String) {
    if !applies(t) {
        return;
    }
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let ep = f.endpoint().expect("an endpoint");
        runtime().block_on(async {
            let c = ProbeAsyncClient::connect(&ep).await.unwrap();
            assert_eq!(c.add(2, 3).await.unwrap(), 5);
            assert_eq!(c.div(1, 0).await.unwrap(), Err(MathError::DivideByZero));
            c.nothing().await.unwrap();
            assert_eq!(c.pid().await.unwrap(), std::process::id());
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
        f.shutdown();
    });
}

fn a_timed_out_call_returns_timeout_and_the_client_stays_usable(t: Transport, name: String) {
    if !applies(t) {
        return;
    }
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let ep = f.endpoint().expect("an endpoint");
        runtime().block_on(async {
            let c = ProbeAsyncClient::connect(&ep).await.unwrap();
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
                took >= deadline && took < Duration::from_secs(1),
                "took {took:?}"
            );
            // The handler saw the deadline; the late reply is dropped.
            let seen = quick.deadline_ms().await.unwrap().expect("a deadline");
            assert!(seen <= 100, "{seen} ms");
            assert_eq!(c.add(1, 2).await.unwrap(), 3);
        });
        f.shutdown();
    });
}

/// The test: 1000 tasks × 10 calls on one client, while a 1 ms interval ticks.
/// A client that blocked its runtime's threads would hold the ticker up for as long as
/// its calls take; this one must keep it on time. Timing is not what this tests (the
/// benchmark measures speed): the bound is the point at which the ticker is clearly
/// held up (far above a loaded machine's scheduling noise), not a speed target.
fn thousand_tasks_of_ten_calls_keep_a_1ms_ticker_on_time(t: Transport, name: String) {
    if !applies(t) {
        return;
    }
    let _one_at_a_time = TICKER.lock().unwrap_or_else(|e| e.into_inner());
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let ep = f.endpoint().expect("an endpoint");
        let (late, ticks, took) = runtime().block_on(async {
            let c = ProbeAsyncClient::connect(&ep).await.unwrap();
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
        // these tasks) makes the typical tick tens of milliseconds late.
        assert!(
            pct(50) < Duration::from_millis(5),
            "the typical tick came {:?} late: something blocked the runtime",
            pct(50)
        );
        assert!(
            max < Duration::from_millis(50),
            "a tick came {max:?} late: something blocked the runtime"
        );
        f.shutdown();
    });
}

/// A call whose future is dropped (here by `tokio::time::timeout` and by `select!`)
/// is cancelled on the server: its handler sees `ipc_rpc::cancelled()`.
fn dropping_a_call_future_cancels_the_call_on_the_server(t: Transport, name: String) {
    if !applies(t) {
        return;
    }
    watchdog(WATCHDOG, move || {
        let f = t.start(&name, "");
        let ep = f.endpoint().expect("an endpoint");
        runtime().block_on(async {
            let c = ProbeAsyncClient::connect(&ep).await.unwrap();
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
        f.shutdown();
    });
}

fn server_killed_mid_call_returns_disconnected(t: Transport, name: String) {
    if !applies(t) {
        return;
    }
    watchdog(WATCHDOG, move || {
        let mut f = t.start_in_child(&name);
        let ep = f.endpoint().expect("an endpoint");
        let rt = runtime();
        let c = rt.block_on(ProbeAsyncClient::connect(&ep)).unwrap();
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
        f.shutdown();
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
