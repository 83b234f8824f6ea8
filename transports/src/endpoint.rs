//! [`Endpoint`] and its parts, defined in rpc-core (`rpc_core::endpoint`) and
//! re-exported here: which mechanism, which name, which options, as one string.
//! What the options mean to the OS is up to each transport module.

use rpc_core::TransportError;
pub use rpc_core::endpoint::{
    Endpoint, EndpointError, EndpointKind, MAX_POSIX_NAME, MAX_UNIX_PATH,
};

/// `Unsupported`: an endpoint of a kind this version of the transports does not know
/// (`EndpointKind` is non-exhaustive).
pub(crate) fn unknown_kind(endpoint: &Endpoint) -> TransportError {
    TransportError::Unsupported {
        endpoint: endpoint.to_string(),
        reason: format!(
            "this version of the transports has no `{}` transport",
            endpoint.kind().scheme()
        ),
    }
}
