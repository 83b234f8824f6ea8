//! The rustls configurations of a `tls:` endpoint: its PEM files read, the ring
//! provider, and what each side verifies.

use std::io;
use std::sync::Arc;

use rpc_core::TransportError;
use rpc_core::endpoint::TlsOptions;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The crypto provider: ring, which builds with the C compiler alone (aws-lc-rs, the
/// other provider rustls offers, needs CMake).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `Io` naming the endpoint, the file and what to do.
fn config_error(endpoint: &str, what: String, source: impl Into<io::Error>) -> TransportError {
    TransportError::Io {
        context: format!("{endpoint}: {what}"),
        source: source.into(),
    }
}

fn pem_error(e: rustls::pki_types::pem::Error) -> io::Error {
    match e {
        rustls::pki_types::pem::Error::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

/// The certificates in PEM file `path` (`key` names the option for messages).
fn certificates(
    endpoint: &str,
    key: &str,
    path: &str,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let read = |e| {
        config_error(
            endpoint,
            format!("cannot read the certificates of `{key}={path}` (a PEM file)"),
            pem_error(e),
        )
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(config_error(
            endpoint,
            format!("`{key}={path}` holds no certificate (no `BEGIN CERTIFICATE` section)"),
            io::Error::new(io::ErrorKind::InvalidData, "no certificate"),
        ));
    }
    Ok(certs)
}

/// This side's chain and key, if the endpoint names them.
fn identity(
    endpoint: &str,
    opts: &TlsOptions,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TransportError> {
    let Some((cert, key)) = opts.cert_and_key() else {
        return Ok(None);
    };
    let chain = certificates(endpoint, "cert", cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        config_error(
            endpoint,
            format!(
                "cannot read a private key from `key={key}` (a PEM file: PKCS#8, PKCS#1 or SEC1)"
            ),
            pem_error(e),
        )
    })?;
    Ok(Some((chain, key)))
}

/// `cert` and `key` that rustls refuses as the `side`'s identity.
fn unusable_identity(endpoint: &str, side: &str, e: rustls::Error) -> TransportError {
    config_error(
        endpoint,
        format!(
            "`cert` and `key` do not make a usable {side} identity (does the key match the \
             certificate?)"
        ),
        io::Error::new(io::ErrorKind::InvalidData, e),
    )
}

/// The authorities in `ca=`.
fn roots(endpoint: &str, ca: &str) -> Result<Arc<RootCertStore>, TransportError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(endpoint, "ca", ca)? {
        roots.add(cert).map_err(|e| {
            config_error(
                endpoint,
                format!("`ca={ca}` holds a certificate that cannot be a trust anchor"),
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })?;
    }
    Ok(Arc::new(roots))
}

/// A client's configuration: the server verified against `ca` (required), this
/// client's certificate shown if `cert`/`key` are set.
pub(super) fn client(
    endpoint: &str,
    opts: &TlsOptions,
) -> Result<Arc<ClientConfig>, TransportError> {
    let Some(ca) = opts.ca() else {
        return Err(TransportError::Unsupported {
            endpoint: endpoint.to_owned(),
            reason: "a tls: client needs `ca=/path/ca.pem`, the authority that signed the \
                     server's certificate; it verifies every server against it"
                .into(),
        });
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(endpoint, "set up TLS".into(), io::Error::other(e)))?
        .with_root_certificates(roots(endpoint, ca)?);
    let config = match identity(endpoint, opts)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| unusable_identity(endpoint, "client", e))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A server's configuration: its certificate (required), and clients verified
/// against `ca` if set (then a client without a valid certificate is refused).
pub(super) fn server(
    endpoint: &str,
    opts: &TlsOptions,
) -> Result<Arc<ServerConfig>, TransportError> {
    let Some((chain, key)) = identity(endpoint, opts)? else {
        return Err(TransportError::Unsupported {
            endpoint: endpoint.to_owned(),
            reason: "a tls: server needs `cert=/path/cert.pem&key=/path/key.pem`, its certificate \
                     and private key"
                .into(),
        });
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(endpoint, "set up TLS".into(), io::Error::other(e)))?;
    let builder = match opts.ca() {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots(endpoint, ca)?, provider())
                    .build()
                    .map_err(|e| {
                        config_error(
                            endpoint,
                            format!("cannot verify clients against `ca={ca}`"),
                            io::Error::new(io::ErrorKind::InvalidData, e),
                        )
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| unusable_identity(endpoint, "server", e))?;
    Ok(Arc::new(config))
}
