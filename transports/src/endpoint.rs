//! [`Endpoint`] and its parts, defined in rpc-core (`rpc_core::endpoint`) and
//! re-exported here: which mechanism, which name, which options, as one string.
//! What the options mean to the OS is up to each transport module.

use rpc_core::TransportError;
pub use rpc_core::endpoint::{
    Endpoint, EndpointError, EndpointKind, MAX_POSIX_NAME, MAX_UNIX_PATH, MqOptions, ShmOptions,
    TcpOptions, TlsOptions, UnixOptions,
};

/// `Unsupported`: `transport` was given an endpoint of another kind than the one it
/// takes, written as `form` (`unix:`, `pipe`).
pub(crate) fn wrong_kind(endpoint: &Endpoint, transport: &str, form: &str) -> TransportError {
    TransportError::Unsupported {
        endpoint: endpoint.to_string(),
        reason: format!(
            "{transport} takes `{form}` endpoints only; transports::connect and \
             transports::listen pick the transport for any kind"
        ),
    }
}

/// `Unsupported`: an endpoint of a kind this version of the transports does not know
/// (`EndpointKind` is non-exhaustive).
pub(crate) fn unknown_kind(endpoint: &Endpoint) -> TransportError {
    TransportError::Unsupported {
        endpoint: endpoint.to_string(),
        reason: format!(
            "this version of the transports has no `{}` transport",
            endpoint.scheme()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transport_refuses_an_endpoint_of_another_kind() {
        // Refused before any OS object is touched.
        let tcp = Endpoint::tcp("127.0.0.1", 1);
        let unix = Endpoint::unix("/nonexistent/ipc-rpc-x.sock");
        let refusals = [
            ("UdsTransport", crate::UdsTransport::connect(&tcp).err()),
            ("UdsListener", crate::UdsListener::bind(&tcp).err()),
            ("TcpTransport", crate::TcpTransport::connect(&unix).err()),
            ("TcpListener", crate::TcpListener::bind(&unix).err()),
            ("FifoTransport", crate::FifoTransport::connect(&tcp).err()),
            ("FifoListener", crate::FifoListener::bind(&tcp).err()),
            ("MqTransport", crate::MqTransport::connect(&tcp).err()),
            ("MqListener", crate::MqListener::bind(&tcp).err()),
            ("ShmTransport", crate::ShmTransport::connect(&tcp).err()),
            ("ShmListener", crate::ShmListener::bind(&tcp).err()),
            ("PipeListener", crate::PipeListener::bind(&tcp).err()),
        ];
        for (transport, refusal) in refusals {
            match refusal {
                Some(TransportError::Unsupported { endpoint, reason }) => {
                    assert!(endpoint.starts_with("tcp:") || endpoint.starts_with("unix:"));
                    assert!(
                        reason.starts_with(&format!("{transport} takes `")),
                        "{reason}"
                    );
                }
                other => panic!("{transport}: {other:?}"),
            }
        }
    }
}
