//! `tcp:host:port` addresses (IPv6 in brackets).

use std::fmt;

/// `host:port` (or `[v6]:port`) as host and port.
pub(super) fn parse(a: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = a.strip_prefix('[') {
        let (host, rest) = v6
            .split_once(']')
            .ok_or("an IPv6 address needs its closing `]`, e.g. `tcp:[::1]:7000`")?;
        let port = rest
            .strip_prefix(':')
            .ok_or("a port must follow the address, e.g. `tcp:[::1]:7000`")?;
        (host, port)
    } else {
        a.rsplit_once(':').ok_or(
            "expected `tcp:host:port`, e.g. `tcp:127.0.0.1:7000` (port 0 picks a free one)",
        )?
    };
    if host.is_empty() {
        return Err("the host is empty; write e.g. `tcp:127.0.0.1:7000`".into());
    }
    if host.contains(':') && !a.starts_with('[') {
        return Err("write IPv6 addresses in brackets, e.g. `tcp:[::1]:7000`".into());
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
