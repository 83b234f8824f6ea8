//! A service across two hosts: a server and its clients in two network namespaces
//! joined by a veth pair (see `hosts/lan.rs`), over `tcp:`.
//!
//! Calls work across the link, a handler may run longer than the time-outs; when the link is cut (every packet dropped both ways:
//! a cable pulled), a call in flight and a call made after the cut end in
//! `Disconnected` within the keepalive bound, an idle client's next call fails at once
//! once that bound has passed, and the server drops the vanished clients within it;
//! once the link is back, a new client connects. The endpoints use short settings
//! (`keepalive=1s&user_timeout=3s`: a bound of 3.5 s) so that each case takes seconds;
//! every measured time is printed.
//!
//! With the feature `tls`, the same across the link over `tls:` and mutual TLS.
//!
//! Needs root and iproute2: otherwise each test prints `skipped: …` and passes.

mod common;
mod hosts {
    pub mod lan;
}

use std::thread;
use std::time::{Duration, Instant};

use common::*;
use hosts::lan::{self, Lan, SERVER_ADDR};
use ipc_rpc::{Endpoint, RpcError, ServerHandle};

/// The endpoint options of these tests: a dead link is noticed within
/// `user_timeout + keepalive / 2`.
const FAST: &str = "keepalive=1s&user_timeout=3s";

/// [`FAST`]'s bound: the user time-out plus one keepalive interval.
const BOUND: Duration = Duration::from_millis(3500);

/// What a loaded 2-core machine may add to the bound (thread wake-ups, the poller).
const SLACK: Duration = Duration::from_millis(2500);

/// The two hosts, or `None` after printing why the test cannot run here.
fn lan_or_skip(test: &str) -> Option<Lan> {
    match Lan::new() {
        Ok(lan) => Some(lan),
        Err(why) => {
            eprintln!("skipped: {test}: {why}");
            None
        }
    }
}

/// A `Probe` server on the server host, at `tcp:` with `options`.
fn serve_on(lan: &Lan, options: &str) -> ServerHandle {
    serve_at(lan, &format!("tcp:{SERVER_ADDR}:0?{options}"))
}

/// A `Probe` server on the server host, at endpoint `text`.
fn serve_at(lan: &Lan, text: &str) -> ServerHandle {
    let ep: Endpoint = text.trim_end_matches('?').parse().unwrap();
    Lan::on(&lan.server, move || {
        ipc_rpc::serve(&ep, ProbeServer::new(ProbeImpl)).expect("serve on the server host")
    })
}

/// A client on the client host.
fn connect_from(lan: &Lan, ep: &Endpoint) -> Result<ProbeClient, RpcError> {
    let ep = ep.clone();
    Lan::on(&lan.client, move || ProbeClient::connect(&ep))
}

/// Waits until `server` holds `n` connections; how long that took. Gives up after
/// `limit`.
fn until_connections(server: &ServerHandle, n: usize, limit: Duration) -> Duration {
    let start = Instant::now();
    while server.connection_count() != n {
        assert!(
            start.elapsed() < limit,
            "the server still holds {} connections after {limit:?}, expected {n}",
            server.connection_count()
        );
        thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

/// Checks that `e` is the dead link's `Disconnected`, saying so.
fn assert_link_down(e: &RpcError, what: &str) {
    assert!(
        e.is_disconnected(),
        "{what}: expected Disconnected, got {e:?}"
    );
    assert!(e.to_string().contains("the link is down"), "{what}: {e}");
}

/// Restores the link, checks that a new client connects and calls, then stops the
/// server and removes the hosts.
fn reconnect_then_remove(mut lan: Lan, ep: &Endpoint, server: ServerHandle) {
    lan.restore();
    let fresh = connect_from(&lan, ep).expect("connect once the link is back");
    assert_eq!(fresh.add(2, 2).unwrap(), 4);
    drop(fresh);
    server.shutdown();
    drop_and_check(lan);
}

/// Checks that the namespaces are gone once `lan` is dropped.
fn drop_and_check(lan: Lan) {
    let names = lan.names();
    drop(lan);
    assert_eq!(lan::still_there(&names), Vec::<String>::new());
}

#[test]
fn calls_cross_the_link_between_two_hosts() {
    let Some(lan) = lan_or_skip("calls_cross_the_link_between_two_hosts") else {
        return;
    };
    watchdog(Duration::from_secs(30), move || {
        let server = serve_on(&lan, FAST);
        let client = connect_from(&lan, &server.endpoint()).expect("connect across the link");
        assert_eq!(client.add(40, 2).unwrap(), 42);
        let big = vec![7u8; 1 << 20];
        assert_eq!(client.echo(big.clone()).unwrap(), big);
        // A handler that runs longer than `user_timeout` on a live link is not taken
        // for a dead one: the server's kernel answers the probes.
        assert_eq!(client.sleep_ms(4500).unwrap(), 4500);
        drop(client);
        server.shutdown();
        drop_and_check(lan);
    });
}

#[test]
fn a_call_in_flight_over_a_cut_link_ends_disconnected_and_the_server_drops_the_client() {
    call_in_flight_over_a_cut_link(FAST, BOUND, Duration::from_secs(40));
}

/// The same with the default settings (`keepalive=10s`, `user_timeout=20s`: a bound
/// of 25 s), to measure them: `cargo test --test hosts -- --ignored --nocapture`.
#[test]
#[ignore = "takes 25 s: measures the default bound"]
fn with_the_defaults_a_call_in_flight_over_a_cut_link_ends_within_25_s() {
    call_in_flight_over_a_cut_link("", Duration::from_secs(25), Duration::from_secs(60));
}

fn call_in_flight_over_a_cut_link(options: &'static str, bound: Duration, limit: Duration) {
    let Some(mut lan) = lan_or_skip("a call in flight over a cut link") else {
        return;
    };
    watchdog(limit, move || {
        let server = serve_on(&lan, options);
        let ep = server.endpoint();
        let client = connect_from(&lan, &ep).expect("connect across the link");
        assert_eq!(client.add(1, 2).unwrap(), 3);
        until_connections(&server, 1, Duration::from_secs(5));
        let tag = unique_tag();
        let call = thread::spawn(move || {
            // Runs until the server sees its caller go: longer than the test.
            let r = client.watch_cancel(tag, 600_000);
            (r, Instant::now(), client)
        });
        // The request is sent and acknowledged; the handler runs.
        thread::sleep(Duration::from_millis(500));
        lan.cut();
        let cut_at = Instant::now();
        let server_side = until_connections(&server, 0, bound + SLACK);
        let (r, ended, client) = call.join().unwrap();
        let client_side = ended.duration_since(cut_at);
        eprintln!(
            "link cut mid-call ({}): the caller got Disconnected after {client_side:?}, \
             the server dropped the client after {server_side:?}",
            if options.is_empty() {
                "defaults"
            } else {
                options
            }
        );
        assert_link_down(&r.unwrap_err(), "the call in flight");
        assert!(client_side < bound + SLACK, "{client_side:?}");
        assert!(cancel_seen_here(tag), "the handler saw its caller go");
        let again = client.add(1, 1).unwrap_err();
        assert!(again.is_disconnected(), "{again:?}");

        reconnect_then_remove(lan, &ep, server);
    });
}

#[test]
fn clients_idle_when_the_link_is_cut_get_disconnected_and_the_server_drops_them() {
    let Some(mut lan) = lan_or_skip("clients_idle_when_the_link_is_cut…") else {
        return;
    };
    watchdog(Duration::from_secs(40), move || {
        let server = serve_on(&lan, FAST);
        let ep = server.endpoint();
        let eager = connect_from(&lan, &ep).expect("connect across the link");
        let idle = connect_from(&lan, &ep).expect("connect across the link");
        assert_eq!(eager.add(1, 2).unwrap(), 3);
        assert_eq!(idle.add(1, 2).unwrap(), 3);
        until_connections(&server, 2, Duration::from_secs(5));

        lan.cut();
        let cut_at = Instant::now();
        // A call right after the cut: its request is never acknowledged.
        let eager = thread::spawn(move || (eager.add(3, 4), Instant::now()));
        let server_side = until_connections(&server, 0, BOUND + SLACK);
        let (r, ended) = eager.join().unwrap();
        let eager_took = ended.duration_since(cut_at);
        // The idle client's kernel gave its connection up by now: its next call fails
        // at once.
        thread::sleep((BOUND + SLACK).saturating_sub(cut_at.elapsed()));
        let start = Instant::now();
        let idle_r = idle.add(5, 6);
        let idle_took = start.elapsed();
        eprintln!(
            "link cut between calls ({FAST}): a call made after the cut got Disconnected after \
             {eager_took:?}; an idle client's first call {:?} after the cut failed in \
             {idle_took:?}; the server dropped both clients after {server_side:?}",
            start.duration_since(cut_at)
        );
        assert_link_down(&r.unwrap_err(), "a call made after the cut");
        assert!(eager_took < BOUND + SLACK, "{eager_took:?}");
        assert_link_down(&idle_r.unwrap_err(), "the idle client's next call");
        assert!(idle_took < Duration::from_millis(500), "{idle_took:?}");

        reconnect_then_remove(lan, &ep, server);
    });
}

#[cfg(feature = "tls")]
#[test]
fn tls_and_mutual_tls_work_across_the_link_and_notice_its_cut() {
    use common::certs::Certs;
    let Some(mut lan) = lan_or_skip("tls_and_mutual_tls_work_across_the_link…") else {
        return;
    };
    watchdog(Duration::from_secs(40), move || {
        let certs = Certs::new();
        let (ca, server_id, client_id) = (
            certs.ca("ca.pem"),
            certs.identity("server"),
            certs.identity("client"),
        );
        let port = |s: &ServerHandle| match s.endpoint().kind() {
            ipc_rpc::EndpointKind::Tls { port, .. } => *port,
            other => panic!("not tls: {other:?}"),
        };
        // TLS: the client checks the server's certificate for 169.254.77.1.
        let tls = serve_at(&lan, &format!("tls:{SERVER_ADDR}:0?{server_id}&{FAST}"));
        let ep: Endpoint = format!("tls:{SERVER_ADDR}:{}?{ca}&{FAST}", port(&tls))
            .parse()
            .unwrap();
        let client = connect_from(&lan, &ep).expect("tls across the link");
        assert_eq!(client.add(40, 2).unwrap(), 42);
        let big = vec![9u8; 1 << 20];
        assert_eq!(client.echo(big.clone()).unwrap(), big);
        drop(client);

        // Mutual TLS: the server checks the client's certificate too.
        let mutual = serve_at(
            &lan,
            &format!("tls:{SERVER_ADDR}:0?{server_id}&{ca}&{FAST}"),
        );
        let ep: Endpoint = format!(
            "tls:{SERVER_ADDR}:{}?{ca}&{client_id}&{FAST}",
            port(&mutual)
        )
        .parse()
        .unwrap();
        let client = connect_from(&lan, &ep).expect("mutual tls across the link");
        assert_eq!(client.add(1, 2).unwrap(), 3);
        let anonymous: Endpoint = format!("tls:{SERVER_ADDR}:{}?{ca}", port(&mutual))
            .parse()
            .unwrap();
        let refused = connect_from(&lan, &anonymous)
            .and_then(|c| c.add(1, 1))
            .unwrap_err();
        assert!(
            rpc_core::error::chain(&refused).contains("requires a client certificate"),
            "{refused}"
        );
        until_connections(&mutual, 1, Duration::from_secs(5));

        // The link dies under a call in flight over mutual TLS.
        let tag = unique_tag();
        let call = thread::spawn(move || (client.watch_cancel(tag, 600_000), Instant::now()));
        thread::sleep(Duration::from_millis(500));
        lan.cut();
        let cut_at = Instant::now();
        let server_side = until_connections(&mutual, 0, BOUND + SLACK);
        let (r, ended) = call.join().unwrap();
        let client_side = ended.duration_since(cut_at);
        eprintln!(
            "link cut mid-call over mutual TLS ({FAST}): the caller got Disconnected after \
             {client_side:?}, the server dropped the client after {server_side:?}"
        );
        assert_link_down(&r.unwrap_err(), "a tls call in flight");
        assert!(client_side < BOUND + SLACK, "{client_side:?}");
        lan.restore();
        tls.shutdown();
        mutual.shutdown();
        drop(certs);
        drop_and_check(lan);
    });
}
