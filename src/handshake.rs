//! Connecting to an endpoint and making the handshake for a service: what every
//! generated `{Trait}Client::connect` and `ipc_rpc::connect` do.

use rpc_core::{Client, RpcError, ServiceInfo};
use transports::Endpoint;

/// Connects to `endpoint` and performs the handshake for `service`.
///
/// # Errors
///
/// `Connect` if nothing serves the endpoint (the source says why), then whatever
/// `Client::handshake` reports (`Incompatible`, `Timeout`, a refusal, ...).
pub fn connect(endpoint: &Endpoint, service: &'static ServiceInfo) -> Result<Client, RpcError> {
    let transport = transports::connect(endpoint).map_err(|source| RpcError::Connect {
        endpoint: endpoint.to_string(),
        source,
    })?;
    Client::handshake(transport, service)
}
