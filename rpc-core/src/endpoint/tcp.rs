//! `tcp:host:port` addresses (IPv6 in brackets) and their options: `keepalive`,
//! `user_timeout`.

use std::fmt;
use std::time::Duration;

use super::syntax::{self, KindOptions, OptionError, Query};
use crate::limits::{DEFAULT_KEEPALIVE, DEFAULT_USER_TIMEOUT, KEEPALIVE_LIMIT};

/// The keys a `tcp:` endpoint takes, in canonical order.
pub(super) const KEYS: &[&str] = &["keepalive", "user_timeout"];

/// The options of a `tcp:` endpoint: how soon a dead link (a cable pulled, a host
/// frozen or gone) is noticed on a connection that would otherwise wait for ever.
///
/// Both sides set them on every connection: keepalive probes after `keepalive` of
/// silence, then every `keepalive / 2` (at least 1 s), and `TCP_USER_TIMEOUT`: the
/// kernel drops the connection when sent data (a request, a reply, a probe) stays
/// unacknowledged for `user_timeout`. With the defaults (10 s, 20 s) a dead link is
/// noticed within about 25 s, whether a call is in flight or the connection idles: a
/// caller gets `Disconnected`, a server drops the client. A handler that simply runs
/// long is not mistaken for a dead link: the peer's kernel answers the probes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rpc_core::endpoint::{Endpoint, EndpointKind, TcpOptions};
/// let ep: Endpoint = "tcp:db1.example:7000?keepalive=5s&user_timeout=12s".parse().unwrap();
/// let EndpointKind::Tcp { opts, .. } = ep.kind() else { unreachable!() };
/// assert_eq!(opts.keepalive(), Duration::from_secs(5));
/// assert_eq!(opts.user_timeout(), Duration::from_secs(12));
/// assert_eq!(TcpOptions::default().keepalive(), Duration::from_secs(10));
/// assert!("tcp:h:1?keepalive=1500ms".parse::<Endpoint>().is_err()); // whole seconds
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TcpOptions {
    keepalive: Option<Duration>,
    user_timeout: Option<Duration>,
}

impl TcpOptions {
    /// Silence after which the first keepalive probe goes out (`?keepalive=`, whole
    /// seconds, default 10 s); later probes follow every half of it, at least 1 s apart.
    pub fn keepalive(&self) -> Duration {
        self.keepalive.unwrap_or(DEFAULT_KEEPALIVE)
    }

    /// How long sent data may stay unacknowledged before the connection is given up
    /// (`?user_timeout=`, default 20 s): `TCP_USER_TIMEOUT`.
    pub fn user_timeout(&self) -> Duration {
        self.user_timeout.unwrap_or(DEFAULT_USER_TIMEOUT)
    }

    /// These options with probes after `keepalive` of silence.
    ///
    /// # Panics
    ///
    /// If `keepalive` is not a whole number of seconds from 1 s to 2 h.
    pub fn with_keepalive(mut self, keepalive: Duration) -> Self {
        assert!(
            keepalive_ok(keepalive),
            "keepalive must be whole seconds from 1s to {}s",
            KEEPALIVE_LIMIT.as_secs()
        );
        self.keepalive = Some(keepalive);
        self
    }

    /// These options giving a connection up when data stays unacknowledged for
    /// `timeout`.
    ///
    /// # Panics
    ///
    /// If `timeout` is zero or over 2 h.
    pub fn with_user_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero() && timeout <= KEEPALIVE_LIMIT,
            "user_timeout must be from 1ms to {}s",
            KEEPALIVE_LIMIT.as_secs()
        );
        self.user_timeout = Some(timeout);
        self
    }
}

/// The kernel counts keepalive times in whole seconds.
fn keepalive_ok(d: Duration) -> bool {
    d.subsec_nanos() == 0 && d >= Duration::from_secs(1) && d <= KEEPALIVE_LIMIT
}

impl KindOptions for TcpOptions {
    fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        match key {
            "keepalive" => {
                let d =
                    syntax::duration(value, key, KEEPALIVE_LIMIT).map_err(OptionError::Invalid)?;
                if !keepalive_ok(d) {
                    return Err(OptionError::Invalid(format!(
                        "keepalive takes whole seconds (the kernel counts it so), e.g. `10s`, not `{value}`"
                    )));
                }
                self.keepalive = Some(d);
            }
            "user_timeout" => {
                self.user_timeout = Some(
                    syntax::duration(value, key, KEEPALIVE_LIMIT).map_err(OptionError::Invalid)?,
                );
            }
            _ => return Err(OptionError::NotMine),
        }
        Ok(())
    }

    fn write(&self, query: &mut Query<'_, '_>) -> fmt::Result {
        query.option("keepalive", self.keepalive.map(syntax::Millis))?;
        query.option("user_timeout", self.user_timeout.map(syntax::Millis))
    }
}

/// `host:port` (or `[v6]:port`) as host and port; `scheme` (`tcp`, `tls`) shows how
/// to write one.
pub(super) fn parse(a: &str, scheme: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = a.strip_prefix('[') {
        let (host, rest) = v6.split_once(']').ok_or_else(|| {
            format!("an IPv6 address needs its closing `]`, e.g. `{scheme}:[::1]:7000`")
        })?;
        let port = rest
            .strip_prefix(':')
            .ok_or_else(|| format!("a port must follow the address, e.g. `{scheme}:[::1]:7000`"))?;
        (host, port)
    } else {
        a.rsplit_once(':').ok_or_else(|| {
            format!(
                "expected `{scheme}:host:port`, e.g. `{scheme}:127.0.0.1:7000` (port 0 picks a \
                 free one)"
            )
        })?
    };
    if host.is_empty() {
        return Err(format!(
            "the host is empty; write e.g. `{scheme}:127.0.0.1:7000`"
        ));
    }
    if host.contains(':') && !a.starts_with('[') {
        return Err(format!(
            "write IPv6 addresses in brackets, e.g. `{scheme}:[::1]:7000`"
        ));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("`{port}` is not a port number (0 to 65535)"))?;
    Ok((host.to_owned(), port))
}

/// Writes `host:port`, an IPv6 host in brackets.
pub(super) fn write(f: &mut fmt::Formatter<'_>, host: &str, port: u16) -> fmt::Result {
    if host.contains(':') {
        write!(f, "[{host}]:{port}")
    } else {
        write!(f, "{host}:{port}")
    }
}
