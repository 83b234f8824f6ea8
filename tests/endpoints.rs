//! What each endpoint kind says when it cannot be used the way it was asked to.

mod common;

use common::*;
use ipc_rpc::Endpoint;

#[test]
fn pipe_endpoint_explains_spawning() {
    let endpoint: Endpoint = "pipe".parse().unwrap();
    let err = ProbeClient::connect(&endpoint).unwrap_err();
    assert!(chain(&err).contains("spawn_child"), "{}", chain(&err));
    let err = ipc_rpc::serve(&endpoint, ProbeServer::new(ProbeImpl)).unwrap_err();
    assert!(
        chain(&err).contains("no pipe pair from its parent"),
        "{}",
        chain(&err)
    );
    assert!(
        ipc_rpc::serve_parent(ProbeServer::new(ProbeImpl))
            .unwrap()
            .is_none()
    );
}

/// What a `main` returning `Result<(), Box<dyn Error>>` prints for an error is its
/// `Debug` form: the message and its causes, as a user should read them, not a struct
/// dump such as `AddrInUse { endpoint: "…" }`.
#[test]
fn errors_print_their_message_from_a_main_that_returns_them() {
    fn main_like(s: &str) -> Result<(), Box<dyn std::error::Error>> {
        let endpoint: Endpoint = s.parse()?;
        let first = ipc_rpc::serve(&endpoint, ProbeServer::new(ProbeImpl))?;
        let second = ipc_rpc::serve(&first.endpoint(), ProbeServer::new(ProbeImpl));
        first.shutdown();
        second?;
        Ok(())
    }
    let shown = format!("{:?}", main_like("tcp://127.0.0.1:0").unwrap_err());
    assert_eq!(
        shown,
        "invalid endpoint `tcp://127.0.0.1:0`: `tcp://` is a URL form, which endpoints do not \
         take; write `tcp:127.0.0.1:0`"
    );
    let dir = unique_dir();
    let shown = format!(
        "{:?}",
        main_like(&format!("unix:{}/x.sock", dir.display())).unwrap_err()
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        shown.contains("is in use by a live server; stop that server or pick another endpoint")
            && !shown.contains("AddrInUse"),
        "{shown}"
    );
}
