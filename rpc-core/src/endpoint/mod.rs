//! `Endpoint`: which mechanism, which name, which options, as one string.
//!
//! | string | mechanism |
//! |---|---|
//! | `pipe` | two anonymous pipes to a spawned child |
//! | `fifo:/dir/name` | a FIFO pair per client, rendezvous FIFO at the path |
//! | `mq:/name` | a POSIX message-queue pair per client |
//! | `shm:/name` | a shared-memory ring pair per client |
//! | `unix:/path.sock` | a UNIX stream socket |
//! | `tcp:host:port` | TCP (`tcp:127.0.0.1:0` picks a free port; `[::1]` for IPv6) |
//!
//! Options follow as `?key=value&key=value`: `max_frame` (bytes, default 16 MiB);
//! for `unix:` and `shm:`, `allow_uid`; for `shm:`, `ring` and `spin_us`; for `mq:`,
//! `depth` and `msgsize` (the queues a client creates).
//! `Display` writes the canonical form, and parsing it gives the same endpoint back.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::limits::{DEFAULT_MAX_FRAME, MAX_FRAME_LIMIT};

/// Longest UNIX socket path: `sun_path` is 108 bytes with the terminating NUL.
pub const MAX_UNIX_PATH: usize = 107;

/// Longest POSIX mq / shm name after the leading `/` (Linux `NAME_MAX`).
pub const MAX_POSIX_NAME: usize = 255;

/// Largest accepted mq `depth` (Linux's own ceiling for `msg_max`).
const MAX_MQ_DEPTH: u32 = 65_536;

/// Smallest accepted mq `msgsize`: what the chunking needs.
const MIN_MQ_MSGSIZE: u32 = 64;

/// Largest accepted mq `msgsize`: what a peer accepts.
const MAX_MQ_MSGSIZE: u32 = 1 << 20;

/// Smallest accepted `max_frame`: room for the handshake.
const MIN_MAX_FRAME: usize = 256;

/// Largest accepted `max_frame`: what a stream's length prefix can say (its top bit
/// marks a split frame).
const MAX_MAX_FRAME: usize = MAX_FRAME_LIMIT;

/// The forms an endpoint string can take, for error messages.
const FORMS: &str = "pipe, fifo:/dir/name, mq:/name, shm:/name, unix:/path.sock or tcp:host:port";

/// Where a server listens and a client connects: a mechanism, its address and options.
///
/// # Examples
///
/// ```
/// use rpc_core::endpoint::{Endpoint, EndpointKind};
/// let ep: Endpoint = "tcp:127.0.0.1:0?max_frame=65536".parse().unwrap();
/// assert_eq!(ep.kind(), &EndpointKind::Tcp { host: "127.0.0.1".into(), port: 0 });
/// assert_eq!(ep.max_frame(), 65536);
/// assert_eq!(ep.to_string().parse::<Endpoint>().unwrap(), ep);
/// assert!("udp:1.2.3.4:5".parse::<Endpoint>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    kind: EndpointKind,
    max_frame: Option<usize>,
    ring: Option<usize>,
    spin_us: Option<u64>,
    mq_depth: Option<u32>,
    mq_msgsize: Option<u32>,
    allow_uid: Vec<u32>,
}

/// The mechanism and its address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndpointKind {
    /// Two anonymous pipes between a parent and the child it spawns.
    Pipe,
    /// A FIFO pair per client; the rendezvous FIFO lives at this path.
    Fifo(String),
    /// A POSIX message-queue pair per client; the name starts with `/`.
    Mq(String),
    /// A shared-memory ring pair per client; the name starts with `/`.
    Shm(String),
    /// A UNIX stream socket at this path.
    Unix(String),
    /// TCP; `port` 0 asks the OS for a free port when binding.
    Tcp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// Port number.
        port: u16,
    },
}

impl EndpointKind {
    /// The scheme as written in endpoint strings: `pipe`, `fifo`, `mq`, `shm`, `unix`, `tcp`.
    pub fn scheme(&self) -> &'static str {
        match self {
            EndpointKind::Pipe => "pipe",
            EndpointKind::Fifo(_) => "fifo",
            EndpointKind::Mq(_) => "mq",
            EndpointKind::Shm(_) => "shm",
            EndpointKind::Unix(_) => "unix",
            EndpointKind::Tcp { .. } => "tcp",
        }
    }
}

/// Why a string is not an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint `{input}`: {reason}")]
pub struct EndpointError {
    input: String,
    reason: String,
}

impl EndpointError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        EndpointError {
            input: input.to_owned(),
            reason: reason.into(),
        }
    }
}

impl Endpoint {
    /// An endpoint of this kind with default options.
    pub fn new(kind: EndpointKind) -> Self {
        Endpoint {
            kind,
            max_frame: None,
            ring: None,
            spin_us: None,
            mq_depth: None,
            mq_msgsize: None,
            allow_uid: Vec::new(),
        }
    }

    /// `unix:<path>`.
    pub fn unix(path: impl AsRef<Path>) -> Self {
        Endpoint::new(EndpointKind::Unix(path.as_ref().display().to_string()))
    }

    /// `tcp:<host>:<port>`.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Endpoint::new(EndpointKind::Tcp {
            host: host.into(),
            port,
        })
    }

    /// This endpoint with another largest-frame limit (both sides should agree).
    ///
    /// # Panics
    ///
    /// If `max_frame` is under 256 bytes or over 2 GiB - 1.
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        assert!(
            (MIN_MAX_FRAME..=MAX_MAX_FRAME).contains(&max_frame),
            "max_frame must be between {MIN_MAX_FRAME} and {MAX_MAX_FRAME} bytes"
        );
        self.max_frame = Some(max_frame);
        self
    }

    /// Reads and parses the endpoint in environment variable `var`.
    ///
    /// # Errors
    ///
    /// When the variable is unset, not UTF-8, or not a valid endpoint; the message
    /// names the variable.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ep = rpc_core::endpoint::Endpoint::from_env("CALC_ENDPOINT")?;
    /// println!("serving on {ep}");
    /// # Ok::<(), rpc_core::endpoint::EndpointError>(())
    /// ```
    pub fn from_env(var: &str) -> Result<Self, EndpointError> {
        match std::env::var(var) {
            Ok(s) => s.parse().map_err(|e: EndpointError| EndpointError {
                input: e.input,
                reason: format!("{} (from environment variable {var})", e.reason),
            }),
            Err(std::env::VarError::NotPresent) => Err(EndpointError::new(
                "",
                format!("environment variable {var} is not set; set it to one of {FORMS}"),
            )),
            Err(std::env::VarError::NotUnicode(_)) => Err(EndpointError::new(
                "",
                format!("environment variable {var} is not valid UTF-8"),
            )),
        }
    }

    /// The mechanism and address.
    pub fn kind(&self) -> &EndpointKind {
        &self.kind
    }

    /// The largest frame, default 16 MiB.
    pub fn max_frame(&self) -> usize {
        self.max_frame.unwrap_or(DEFAULT_MAX_FRAME)
    }

    /// The same endpoint with another address (options kept): e.g. the real port.
    pub fn with_kind(&self, kind: EndpointKind) -> Self {
        Endpoint {
            kind,
            ..self.clone()
        }
    }

    /// `unix:` and `shm:`: user ids allowed to connect besides the server's own
    /// (`?allow_uid=1000,1001`). The server reads each client's uid from the kernel
    /// (`SO_PEERCRED`) and closes connections of other users at once.
    pub fn allowed_uids(&self) -> &[u32] {
        &self.allow_uid
    }

    /// `mq:` only: messages each of a client's two queues holds, if set (`?depth=`).
    /// The default is 1, so that many clients fit the per-user queue memory limit;
    /// deeper queues let large frames stream with fewer wake-ups.
    pub fn mq_depth(&self) -> Option<u32> {
        self.mq_depth
    }

    /// `mq:` only: largest message of a client's queues in bytes, if set
    /// (`?msgsize=`; default 4096). Frames up to it are one message.
    pub fn mq_msgsize(&self) -> Option<u32> {
        self.mq_msgsize
    }

    /// `shm:` only: bytes per ring, if set (`?ring=`).
    pub fn ring(&self) -> Option<usize> {
        self.ring
    }

    /// `shm:` only: how long a waiter spins while the peer runs on another CPU, if
    /// set (`?spin_us=`).
    pub fn spin(&self) -> Option<std::time::Duration> {
        self.spin_us.map(std::time::Duration::from_micros)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EndpointKind::Pipe => f.write_str("pipe")?,
            EndpointKind::Fifo(p) => write!(f, "fifo:{p}")?,
            EndpointKind::Mq(n) => write!(f, "mq:{n}")?,
            EndpointKind::Shm(n) => write!(f, "shm:{n}")?,
            EndpointKind::Unix(p) => write!(f, "unix:{p}")?,
            EndpointKind::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp:[{host}]:{port}")?
            }
            EndpointKind::Tcp { host, port } => write!(f, "tcp:{host}:{port}")?,
        }
        let options = [
            ("max_frame", self.max_frame.map(|v| v as u64)),
            ("ring", self.ring.map(|v| v as u64)),
            ("spin_us", self.spin_us),
            ("depth", self.mq_depth.map(u64::from)),
            ("msgsize", self.mq_msgsize.map(u64::from)),
        ];
        let mut sep = '?';
        for (key, value) in options {
            if let Some(v) = value {
                write!(f, "{sep}{key}={v}")?;
                sep = '&';
            }
        }
        if !self.allow_uid.is_empty() {
            let uids: Vec<String> = self.allow_uid.iter().map(u32::to_string).collect();
            write!(f, "{sep}allow_uid={}", uids.join(","))?;
        }
        Ok(())
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| EndpointError::new(input, reason);
        let (address, query) = match input.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (input, None),
        };
        let (scheme, rest) = match address.split_once(':') {
            Some((s, r)) => (s, Some(r)),
            None => (address, None),
        };
        let kind = match (scheme, rest) {
            ("pipe", None) => EndpointKind::Pipe,
            ("pipe", Some(_)) => {
                return Err(err("`pipe` takes no address; write just `pipe`".into()));
            }
            ("fifo", Some(p)) => {
                EndpointKind::Fifo(parse_path(p, "fifo:/dir/name", usize::MAX).map_err(err)?)
            }
            ("unix", Some(p)) => {
                EndpointKind::Unix(parse_path(p, "unix:/path.sock", MAX_UNIX_PATH).map_err(err)?)
            }
            ("mq", Some(n)) => EndpointKind::Mq(parse_posix_name(n, "mq").map_err(err)?),
            ("shm", Some(n)) => EndpointKind::Shm(parse_posix_name(n, "shm").map_err(err)?),
            ("tcp", Some(a)) => parse_tcp(a).map_err(err)?,
            ("fifo" | "unix" | "mq" | "shm" | "tcp", None) => {
                return Err(err(format!(
                    "`{scheme}` needs an address, e.g. {}",
                    example(scheme)
                )));
            }
            ("", _) => return Err(err(format!("empty scheme; expected one of {FORMS}"))),
            (other, _) => {
                return Err(err(format!(
                    "unknown scheme `{other}`; expected one of {FORMS}"
                )));
            }
        };
        let mut endpoint = Endpoint::new(kind);
        if let Some(query) = query {
            for pair in query.split('&') {
                let (key, value) = pair.split_once('=').ok_or_else(|| {
                    err(format!(
                        "option `{pair}` needs a value, e.g. `max_frame=1048576`"
                    ))
                })?;
                match key {
                    "max_frame" => {
                        endpoint.max_frame = Some(
                            number(value, |n| (MIN_MAX_FRAME..=MAX_MAX_FRAME).contains(n), || {
                                format!("max_frame must be a byte count from {MIN_MAX_FRAME} to {MAX_MAX_FRAME}")
                            })
                            .map_err(err)?,
                        );
                    }
                    "allow_uid" => {
                        if !matches!(endpoint.kind, EndpointKind::Unix(_) | EndpointKind::Shm(_)) {
                            return Err(err(format!(
                                "option `{key}` applies to `unix:` and `shm:` endpoints only"
                            )));
                        }
                        endpoint.allow_uid = value
                            .split(',')
                            .map(|u| u.parse::<u32>())
                            .collect::<Result<_, _>>()
                            .map_err(|_| {
                                err(format!(
                                    "allow_uid takes user ids separated by commas, not `{value}`"
                                ))
                            })?;
                    }
                    "depth" | "msgsize" if !matches!(endpoint.kind, EndpointKind::Mq(_)) => {
                        return Err(err(format!(
                            "option `{key}` applies to `mq:` endpoints only"
                        )));
                    }
                    "depth" => {
                        endpoint.mq_depth = Some(
                            number(
                                value,
                                |n| (1..=MAX_MQ_DEPTH).contains(n),
                                || {
                                    format!(
                                        "depth must be a message count from 1 to {MAX_MQ_DEPTH}"
                                    )
                                },
                            )
                            .map_err(err)?,
                        );
                    }
                    "msgsize" => {
                        endpoint.mq_msgsize = Some(
                            number(value, |n| (MIN_MQ_MSGSIZE..=MAX_MQ_MSGSIZE).contains(n), || {
                                format!("msgsize must be a byte count from {MIN_MQ_MSGSIZE} to {MAX_MQ_MSGSIZE}")
                            })
                            .map_err(err)?,
                        );
                    }
                    "ring" | "spin_us" if !matches!(endpoint.kind, EndpointKind::Shm(_)) => {
                        return Err(err(format!(
                            "option `{key}` applies to `shm:` endpoints only"
                        )));
                    }
                    "ring" => {
                        endpoint.ring = Some(
                            number(
                                value,
                                |n: &usize| n.is_power_of_two() && (4096..=1 << 30).contains(n),
                                || {
                                    "ring must be a power of two from 4096 to 1073741824 bytes"
                                        .into()
                                },
                            )
                            .map_err(err)?,
                        );
                    }
                    "spin_us" => {
                        endpoint.spin_us = Some(
                            number(
                                value,
                                |n| *n <= 1_000_000,
                                || "spin_us must be microseconds from 0 to 1000000".into(),
                            )
                            .map_err(err)?,
                        );
                    }
                    other => {
                        return Err(err(format!(
                            "unknown option `{other}`; known options: max_frame, for unix and shm: allow_uid, for shm: ring, spin_us, for mq: depth, msgsize"
                        )));
                    }
                }
            }
        }
        Ok(endpoint)
    }
}

/// `value` as a number that `ok` accepts; otherwise what `expected` says, and what was
/// written instead.
fn number<T: FromStr>(
    value: &str,
    ok: impl Fn(&T) -> bool,
    expected: impl FnOnce() -> String,
) -> Result<T, String> {
    value
        .parse()
        .ok()
        .filter(|n| ok(n))
        .ok_or_else(|| format!("{}, not `{value}`", expected()))
}

fn example(scheme: &str) -> &'static str {
    match scheme {
        "fifo" => "fifo:/tmp/calc",
        "unix" => "unix:/tmp/calc.sock",
        "mq" => "mq:/calc",
        "shm" => "shm:/calc",
        _ => "tcp:127.0.0.1:7000",
    }
}

fn parse_path(p: &str, form: &str, max: usize) -> Result<String, String> {
    if p.is_empty() {
        return Err(format!("empty path; write {form}"));
    }
    if p.contains('\0') {
        return Err("the path contains a NUL byte".into());
    }
    if p.len() > max {
        return Err(format!(
            "the path is {} bytes but UNIX socket paths are limited to {max}; use a shorter path",
            p.len()
        ));
    }
    Ok(p.to_owned())
}

fn parse_posix_name(n: &str, scheme: &str) -> Result<String, String> {
    let Some(bare) = n.strip_prefix('/') else {
        return Err(format!(
            "a {scheme} name starts with `/`, e.g. `{scheme}:/calc`"
        ));
    };
    if bare.is_empty() || bare.contains('/') || bare.contains('\0') {
        return Err(format!(
            "a {scheme} name is `/` then one or more characters other than `/`, e.g. `{scheme}:/calc`"
        ));
    }
    if bare.len() > MAX_POSIX_NAME {
        return Err(format!(
            "the name is {} bytes; the limit is {MAX_POSIX_NAME}",
            bare.len()
        ));
    }
    Ok(n.to_owned())
}

fn parse_tcp(a: &str) -> Result<EndpointKind, String> {
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
    Ok(EndpointKind::Tcp {
        host: host.to_owned(),
        port,
    })
}

impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Endpoint;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an endpoint string: {FORMS}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Endpoint, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_display() {
        for s in [
            "pipe",
            "fifo:/tmp/dir/calc",
            "mq:/calc",
            "shm:/calc?max_frame=1048576",
            "unix:/tmp/calc.sock",
            "unix:relative.sock",
            "tcp:127.0.0.1:0",
            "tcp:localhost:7000",
            "tcp:[::1]:7000?max_frame=256",
            "shm:/calc?max_frame=4096&ring=65536&spin_us=0",
            "shm:/calc?ring=8192",
            "unix:/tmp/x.sock?allow_uid=0,1000",
            "shm:/calc?ring=8192&allow_uid=65534",
            "mq:/calc?depth=10&msgsize=8192",
            "mq:/calc?max_frame=65536&msgsize=1024",
        ] {
            let ep: Endpoint = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(ep.to_string(), s);
            assert_eq!(ep.to_string().parse::<Endpoint>().unwrap(), ep);
        }
    }

    #[test]
    fn bad_strings_say_what_to_write() {
        let cases = [
            ("", "empty scheme"),
            ("udp:1.2.3.4:5", "unknown scheme `udp`"),
            ("unix:", "empty path"),
            ("unix", "needs an address"),
            ("pipe:x", "takes no address"),
            ("mq:calc", "starts with `/`"),
            ("shm:/a/b", "other than `/`"),
            ("tcp:127.0.0.1", "expected `tcp:host:port`"),
            ("tcp:127.0.0.1:99999", "not a port number"),
            ("tcp::1:80", "brackets"),
            ("tcp:[::1", "closing `]`"),
            ("tcp:1.2.3.4:80?max_frame=12", "max_frame must be"),
            (
                "tcp:1.2.3.4:80?ring=4096",
                "applies to `shm:` endpoints only",
            ),
            ("shm:/x?ring=5000", "power of two"),
            ("shm:/x?spin_us=abc", "spin_us must be"),
            ("mq:/x?depth=0", "depth must be"),
            ("mq:/x?msgsize=32", "msgsize must be"),
            ("unix:/x?depth=4", "applies to `mq:` endpoints only"),
            ("tcp:1.2.3.4:80?bogus=1", "unknown option `bogus`"),
            (
                "tcp:1.2.3.4:80?allow_uid=1",
                "`unix:` and `shm:` endpoints only",
            ),
            ("unix:/x?allow_uid=me", "user ids separated by commas"),
            ("tcp:1.2.3.4:80?max_frame", "needs a value"),
        ];
        for (s, want) in cases {
            let e = s.parse::<Endpoint>().unwrap_err().to_string();
            assert!(e.contains(want), "{s:?}: {e}");
            assert!(e.contains(&format!("`{s}`")), "{s:?}: {e}");
        }
        let long = format!("unix:/{}", "x".repeat(200));
        assert!(
            long.parse::<Endpoint>()
                .unwrap_err()
                .to_string()
                .contains("limited to 107")
        );
    }

    #[test]
    fn from_env_names_the_variable() {
        let e = Endpoint::from_env("IPC_RPC_TEST_SURELY_UNSET_VARIABLE").unwrap_err();
        assert!(
            e.to_string()
                .contains("IPC_RPC_TEST_SURELY_UNSET_VARIABLE is not set")
        );
    }

    #[test]
    fn serde_uses_the_string_form() {
        let ep: Endpoint = "unix:/tmp/x.sock".parse().unwrap();
        let mut buf = Vec::new();
        crate::codec::encode_into(&ep, &mut buf, "ep").unwrap();
        let back: Endpoint = crate::codec::decode_all(&buf, "ep").unwrap();
        assert_eq!(back, ep);
        let mut bad = Vec::new();
        crate::codec::encode_into("nope:1", &mut bad, "ep").unwrap();
        assert!(crate::codec::decode_all::<Endpoint>(&bad, "ep").is_err());
    }
}
