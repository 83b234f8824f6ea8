//! What a failed TLS handshake or session means, in words a user acts on; the rustls
//! error stays underneath as the source.

use std::io;

use rpc_core::TransportError;
use rustls::{AlertDescription, CertificateError, Error};

/// What went wrong, said from this side (`is_server`); `None`: the peer closed the
/// connection in the middle of the handshake.
fn describe(is_server: bool, e: Option<&Error>) -> String {
    let peer_cert = if is_server {
        "the client's certificate"
    } else {
        "the server's certificate"
    };
    match e {
        None if is_server => "the client closed the connection during the TLS handshake".into(),
        None => "the server closed the connection during the TLS handshake: is it a plain \
                 `tcp:` endpoint (then connect with `tcp:`), or did it refuse this client?"
            .into(),
        Some(Error::InvalidCertificate(c)) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "{peer_cert} is not signed by the authority in `ca` (a wrong `ca` file, or a \
                 certificate of another authority)"
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("{peer_cert} has expired (or a clock is wrong): renew it")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("{peer_cert} is not valid yet (or a clock is wrong)")
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "{peer_cert} is not valid for the host name this client connected to: \
                     connect by a name (or address) the certificate lists, or issue one for it"
                )
            }
            _ => format!("{peer_cert} was refused"),
        },
        Some(Error::NoCertificatesPresented) => {
            "the client showed no certificate, and this server's `ca` requires one".into()
        }
        Some(Error::AlertReceived(alert)) if !is_server => match alert {
            AlertDescription::CertificateRequired => "the server requires a client certificate \
                (mutual TLS): add `cert=…&key=…` to the endpoint"
                .into(),
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::DecryptError => "the server refused this client's certificate: \
                it is not signed by an authority the server trusts"
                .into(),
            AlertDescription::CertificateExpired => "the server refused this client's \
                certificate: it has expired or is not valid yet"
                .into(),
            _ => "the server ended the TLS handshake with an alert".into(),
        },
        Some(Error::AlertReceived(_)) => "the client ended the TLS handshake with an alert".into(),
        Some(Error::InvalidMessage(_)) if !is_server => {
            "the server does not speak TLS: is it a plain `tcp:` endpoint (then connect with \
             `tcp:`)?"
                .into()
        }
        Some(Error::InvalidMessage(_)) => "the client does not speak TLS".into(),
        Some(_) if is_server => "the TLS handshake with a client failed".into(),
        Some(_) => "the TLS handshake failed".into(),
    }
}

fn error(peer: &str, what: String, e: Option<Error>) -> TransportError {
    let source = match e {
        Some(e) => io::Error::new(io::ErrorKind::InvalidData, e),
        None => io::Error::from(io::ErrorKind::UnexpectedEof),
    };
    TransportError::Io {
        context: format!("{peer}: {what}"),
        source,
    }
}

/// The handshake failed on this side (`is_server`); `None`: the peer closed.
pub(super) fn handshake_error(peer: &str, is_server: bool, e: Option<Error>) -> TransportError {
    error(peer, describe(is_server, e.as_ref()), e)
}

/// A record of an established session was refused. TLS 1.3 lets a client finish its
/// handshake before the server has checked the client's certificate: a refusal then
/// arrives here, as the server's alert, and is said the same way.
pub(super) fn session_error(peer: &str, e: Error) -> TransportError {
    let what = match &e {
        Error::AlertReceived(_) => describe(false, Some(&e)),
        _ => "a TLS record from the peer was refused (corrupt, or not from the peer)".into(),
    };
    error(peer, what, Some(e))
}
