//! Who may connect: named objects are owner-only, UNIX-socket servers check the
//! client's uid with the kernel, and handlers can see who calls.
//!
//! The other-user cases run a client as `nobody` with `setpriv` (we run as root in
//! CI); without `setpriv` or root they print `skipped: …`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use ipc_rpc::Endpoint;

const WATCHDOG: Duration = Duration::from_secs(30);
const NOBODY: u32 = 65534;
const CLIENT_OF: &str = "IPC_RPC_TEST_CLIENT_OF";

/// Child role: connect to the endpoint and call; exit 0 if refused, 3 if served.
fn client_child() {
    let Ok(endpoint) = std::env::var(CLIENT_OF) else {
        return;
    };
    let endpoint: Endpoint = endpoint.parse().unwrap();
    let served = ProbeClient::connect(&endpoint).and_then(|c| c.add(1, 1));
    match served {
        Ok(_) => std::process::exit(3),
        Err(e) => {
            eprintln!("refused as expected: {e}");
            std::process::exit(0);
        }
    }
}

/// Runs this test again as `nobody`, as a client of `endpoint`; whether it was served.
/// `None` when another user cannot be had here.
fn served_as_nobody(test: &str, endpoint: &Endpoint) -> Option<bool> {
    if !nix::unistd::geteuid().is_root()
        || Command::new("setpriv").arg("--version").output().is_err()
    {
        eprintln!("skipped: running as another user needs root and setpriv");
        return None;
    }
    let status = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
        ])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CLIENT_OF, endpoint.to_string())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    match status.code() {
        Some(0) => Some(false),
        Some(3) => Some(true),
        other => panic!("the nobody client ended with {other:?}"),
    }
}

#[test]
fn other_users_cannot_connect_to_named_endpoints() {
    client_child();
    watchdog(WATCHDOG, || {
        for t in [
            Transport::unix,
            Transport::fifo,
            Transport::mq,
            Transport::shm,
        ] {
            let f = t.start("other_users_cannot_connect_to_named_endpoints", "");
            let endpoint = f.endpoint().unwrap();
            if let Some(served) =
                served_as_nobody("other_users_cannot_connect_to_named_endpoints", &endpoint)
            {
                assert!(!served, "{t:?}: another user was served at {endpoint}");
            }
            // The owner still is.
            assert_eq!(f.client.add(2, 2).unwrap(), 4);
            f.shutdown();
        }
    });
}

#[test]
fn unix_server_checks_the_clients_uid_even_if_the_socket_is_open_to_all() {
    client_child();
    watchdog(WATCHDOG, || {
        use std::os::unix::fs::PermissionsExt;
        let test = "unix_server_checks_the_clients_uid_even_if_the_socket_is_open_to_all";
        for (options, nobody_allowed) in [("", false), ("allow_uid=65534", true)] {
            let f = Transport::unix.start(test, options);
            let ipc_rpc::EndpointKind::Unix { path, .. } = f.endpoint().unwrap().kind().clone()
            else {
                unreachable!()
            };
            // A careless admin opens the socket file to everyone: the kernel now lets
            // `nobody` connect, and the server's uid check is what stands.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
            let dir = std::path::Path::new(&path).parent().unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            if let Some(served) = served_as_nobody(test, &f.endpoint().unwrap()) {
                assert_eq!(served, nobody_allowed, "options `{options}`");
            }
            f.shutdown();
        }
    });
}

#[test]
fn handlers_see_who_calls_where_the_transport_knows() {
    watchdog(WATCHDOG, || {
        let me = (
            Some(std::process::id()),
            Some(nix::unistd::getuid().as_raw()),
        );
        for t in [Transport::unix, Transport::shm] {
            let f = t.start("handlers_see_who_calls_where_the_transport_knows", "");
            assert_eq!(f.client.caller().unwrap(), me, "{t:?}");
            f.shutdown();
        }
        for t in [Transport::tcp, Transport::fifo, Transport::mq] {
            let f = t.start("handlers_see_who_calls_where_the_transport_knows", "");
            assert_eq!(f.client.caller().unwrap(), (None, None), "{t:?}");
            f.shutdown();
        }
    });
}

#[test]
fn a_pipe_child_sees_its_parent_as_the_caller() {
    serve_if_child();
    watchdog(WATCHDOG, || {
        let f = Transport::pipe.start("a_pipe_child_sees_its_parent_as_the_caller", "");
        assert_eq!(f.client.caller().unwrap(), (Some(std::process::id()), None));
        f.shutdown();
    });
}
