//! `tls:host:port` options: the PEM files `cert`, `key`, `ca`, and the TCP options
//! (`keepalive`, `user_timeout`) of the connection under TLS.

use std::fmt;

use super::syntax::{KindOptions, OptionError, Query};
use super::tcp::TcpOptions;

/// The keys a `tls:` endpoint takes, in canonical order.
pub(super) const KEYS: &[&str] = &["cert", "key", "ca", "keepalive", "user_timeout"];

/// The options of a `tls:` endpoint: which certificate this side shows, which
/// authority it trusts for the other side's, and the TCP options underneath.
///
/// | key | a server | a client |
/// |---|---|---|
/// | `cert`, `key` | its certificate chain and private key (required) | its certificate and key, for a server that asks for one (mutual TLS) |
/// | `ca` | clients must show a certificate signed by it (mutual TLS); without it any client may connect | the server's certificate must be signed by it (required) |
///
/// The files are PEM; `cert` may hold a chain (leaf first). The transport reads them
/// when it connects or binds, and says which file and what is wrong with it.
///
/// # Examples
///
/// ```
/// use rpc_core::endpoint::{Endpoint, EndpointKind};
/// let ep: Endpoint = "tls:db1.example:7000?cert=/etc/x/client.pem&key=/etc/x/client.key&ca=/etc/x/ca.pem"
///     .parse()
///     .unwrap();
/// let EndpointKind::Tls { host, opts, .. } = ep.kind() else { unreachable!() };
/// assert_eq!(host, "db1.example");
/// assert_eq!(opts.ca(), Some("/etc/x/ca.pem"));
/// assert_eq!(opts.cert_and_key(), Some(("/etc/x/client.pem", "/etc/x/client.key")));
/// assert!("tls:h:1?cert=/c.pem".parse::<Endpoint>().is_err()); // a key goes with it
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    cert: Option<String>,
    key: Option<String>,
    ca: Option<String>,
    tcp: TcpOptions,
}

impl TlsOptions {
    /// This side's certificate chain and private key (`?cert=…&key=…`), if set.
    pub fn cert_and_key(&self) -> Option<(&str, &str)> {
        Some((self.cert.as_deref()?, self.key.as_deref()?))
    }

    /// The certificate authority this side trusts for the other side's certificate
    /// (`?ca=…`), if set.
    pub fn ca(&self) -> Option<&str> {
        self.ca.as_deref()
    }

    /// The TCP options under TLS (`?keepalive=`, `?user_timeout=`).
    pub fn tcp(&self) -> &TcpOptions {
        &self.tcp
    }

    /// These options with this side's certificate chain and key (PEM paths).
    pub fn with_cert(mut self, cert: impl Into<String>, key: impl Into<String>) -> Self {
        self.cert = Some(cert.into());
        self.key = Some(key.into());
        self
    }

    /// These options trusting the authority in `ca` (a PEM path).
    pub fn with_ca(mut self, ca: impl Into<String>) -> Self {
        self.ca = Some(ca.into());
        self
    }

    /// These options with other TCP options.
    pub fn with_tcp(mut self, tcp: TcpOptions) -> Self {
        self.tcp = tcp;
        self
    }

    /// Whether `cert` and `key` come together: checked once every option is read.
    pub(super) fn check(&self) -> Result<(), String> {
        match (&self.cert, &self.key) {
            (Some(_), None) => Err("`cert` needs its private key: add `key=/path/key.pem`".into()),
            (None, Some(_)) => Err("`key` needs its certificate: add `cert=/path/cert.pem`".into()),
            _ => Ok(()),
        }
    }
}

impl KindOptions for TlsOptions {
    fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        let slot = match key {
            "cert" => &mut self.cert,
            "key" => &mut self.key,
            "ca" => &mut self.ca,
            _ => return self.tcp.set(key, value),
        };
        if value.is_empty() {
            return Err(OptionError::Invalid(format!(
                "`{key}` takes the path of a PEM file, e.g. `{key}=/etc/x/{key}.pem`"
            )));
        }
        *slot = Some(value.to_owned());
        Ok(())
    }

    fn write(&self, query: &mut Query<'_, '_>) -> fmt::Result {
        query.option("cert", self.cert.as_deref())?;
        query.option("key", self.key.as_deref())?;
        query.option("ca", self.ca.as_deref())?;
        self.tcp.write(query)
    }
}
