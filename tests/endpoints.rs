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
