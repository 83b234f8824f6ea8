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
    Client::handshake(open(endpoint)?, service)
}

/// Connects to `endpoint` and performs the handshake for `service` on tokio's blocking
/// pool, for a generated `{Trait}AsyncClient::connect`.
///
/// # Errors
///
/// As [`connect`].
#[cfg(feature = "tokio")]
pub async fn connect_async(
    endpoint: &Endpoint,
    service: &'static ServiceInfo,
) -> Result<rpc_core::async_client::AsyncClient, RpcError> {
    let endpoint = endpoint.clone();
    rpc_core::async_client::AsyncClient::connect_with(service, move || open(&endpoint)).await
}

/// A connected transport to `endpoint`.
fn open(endpoint: &Endpoint) -> Result<Box<dyn rpc_core::Transport>, RpcError> {
    transports::connect(endpoint).map_err(|source| RpcError::Connect {
        endpoint: endpoint.to_string(),
        source,
    })
}
