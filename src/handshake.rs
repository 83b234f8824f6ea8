//! Connecting to an endpoint and making the handshake for a service: what every
//! generated `{Trait}Client::connect` and `ipc_rpc::connect` do.

use std::io;
use std::time::{Duration, Instant};

use rpc_core::{Client, RpcError, ServiceInfo, TransportError};
use transports::Endpoint;

/// The least a handshake is given after a transport that took (almost) all of the
/// connect timeout to connect.
const HANDSHAKE_FLOOR: Duration = Duration::from_millis(10);

/// Connects to `endpoint` and performs the handshake for `service`, the two within the
/// endpoint's `connect_timeout`.
///
/// # Errors
///
/// `ConnectTimeout` if the server did not take the connection or answer the handshake
/// in time (the detail says which), `Connect` if nothing serves the endpoint (the
/// source says why), then whatever `Client::handshake` reports (`Incompatible`, a
/// refusal, ...).
pub fn connect(endpoint: &Endpoint, service: &'static ServiceInfo) -> Result<Client, RpcError> {
    let timeout = endpoint.connect_timeout();
    let started = Instant::now();
    let transport = transports::connect(endpoint).map_err(|source| match source {
        TransportError::Io { context, source } if source.kind() == io::ErrorKind::TimedOut => {
            // The transport names the address first; the error names the endpoint.
            let shown = endpoint.to_string();
            let address = shown.split('?').next().unwrap_or_default();
            let detail = context
                .strip_prefix(address)
                .and_then(|rest| rest.strip_prefix(": "))
                .map_or_else(|| context.clone(), str::to_owned);
            RpcError::ConnectTimeout {
                endpoint: shown,
                after: timeout,
                detail,
            }
        }
        source => RpcError::Connect {
            endpoint: endpoint.to_string(),
            source,
        },
    })?;
    let left = timeout.saturating_sub(started.elapsed());
    Client::handshake_within(transport, service, left.max(HANDSHAKE_FLOOR)).map_err(|e| match e {
        // Named as the user wrote it, with the whole time-out.
        RpcError::ConnectTimeout { detail, .. } => RpcError::ConnectTimeout {
            endpoint: endpoint.to_string(),
            after: timeout,
            detail,
        },
        e => e,
    })
}
