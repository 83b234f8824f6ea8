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
    let connected = open(endpoint, timeout).and_then(|transport| {
        let left = timeout.saturating_sub(started.elapsed());
        Client::handshake_within(transport, service, left.max(HANDSHAKE_FLOOR))
            .map_err(|e| named(endpoint, timeout, e))
    });
    match &connected {
        Ok(_) => rpc_core::__event!(info, %endpoint, service = service.name, "connected"),
        Err(_e) => rpc_core::__event!(warn, %endpoint, error = %_e, "connect failed"),
    }
    connected
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
    let timeout = endpoint.connect_timeout();
    let opened = endpoint.clone();
    rpc_core::async_client::AsyncClient::connect_within(service, timeout, move || {
        open(&opened, timeout)
    })
    .await
    .map_err(|e| named(endpoint, timeout, e))
}

/// A handshake's `ConnectTimeout` named as the user wrote the endpoint, with the whole
/// time-out; other errors as they are.
fn named(endpoint: &Endpoint, timeout: Duration, e: RpcError) -> RpcError {
    match e {
        RpcError::ConnectTimeout { detail, .. } => RpcError::ConnectTimeout {
            endpoint: endpoint.to_string(),
            after: timeout,
            detail,
        },
        e => e,
    }
}

/// A connected transport to `endpoint`, its failure as the caller's error.
fn open(endpoint: &Endpoint, timeout: Duration) -> Result<Box<dyn rpc_core::Transport>, RpcError> {
    transports::connect(endpoint).map_err(|e| connect_error(endpoint, timeout, e))
}

/// What a transport's failure to connect means to the caller: one variant per thing a
/// caller can act on, the transport's own words as the detail.
fn connect_error(endpoint: &Endpoint, timeout: Duration, e: TransportError) -> RpcError {
    // The transport names the address first; the error names the endpoint.
    let shown = endpoint.to_string();
    let detail = |context: String| {
        let address = shown.split('?').next().unwrap_or_default();
        context
            .strip_prefix(address)
            .and_then(|rest| rest.strip_prefix(": "))
            .map_or_else(|| context.clone(), str::to_owned)
    };
    match e {
        TransportError::Io { context, source } if source.kind() == io::ErrorKind::TimedOut => {
            RpcError::ConnectTimeout {
                detail: detail(context),
                endpoint: shown,
                after: timeout,
            }
        }
        // A transport's own set-up (a TLS handshake) that got no answer in time.
        TransportError::TimedOut => RpcError::ConnectTimeout {
            detail: "the server took the connection but did not answer its set-up (a TLS \
                     handshake): it is stopped (SIGSTOP?) or overloaded; check that it runs, \
                     or raise `connect_timeout` in the endpoint (e.g. `?connect_timeout=10s`)"
                .into(),
            endpoint: shown,
            after: timeout,
        },
        TransportError::NoServer { context, source } => RpcError::NoServer {
            detail: detail(context),
            endpoint: shown,
            source,
        },
        TransportError::Stale { context, source } => RpcError::Stale {
            detail: detail(context),
            endpoint: shown,
            source,
        },
        TransportError::LimitReached { context, source } => RpcError::LimitReached {
            detail: detail(context),
            endpoint: shown,
            source,
        },
        source => RpcError::Connect {
            endpoint: shown,
            source,
        },
    }
}
