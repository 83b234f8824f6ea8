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
//! | `tls:host:port?cert=…&key=…&ca=…` | TLS over TCP (feature `tls` of the transports), PEM paths |
//!
//! Options follow as `?key=value&key=value`: `max_frame` (bytes, default 16 MiB),
//! `max_in_flight` (calls of one connection a server runs at once, default 32) and
//! `max_connections` (connections a server takes at once, default 1024), `workers`
//! (threads a server keeps to run calls, default twice the cores, at least 4) and
//! `max_workers` (the most it grows to while handlers block, default 256) and
//! `connect_timeout` (how long a client waits for the server to take its connection and
//! answer the handshake, written `500ms`, `5s` or `2m`, default 5 s) for every kind; the others belong to one kind and live in its [`EndpointKind`] variant:
//! [`UnixOptions`] (`allow_uid`), [`ShmOptions`] (`ring`, `spin_us`, `allow_uid`),
//! [`MqOptions`] (`depth` and `msgsize`, the queues a client creates),
//! [`TcpOptions`] (`keepalive` and `user_timeout`: how soon a dead link is noticed,
//! default 10 s and 20 s), [`TlsOptions`] (`cert`, `key`, `ca`, and the TCP ones).
//! `Display` writes the canonical form, and parsing it gives the same endpoint back.
//!
//! Parsing is strict: paths are absolute, URL forms (`tcp://…`) and whitespace are
//! refused with what to write instead, and byte counts (`max_frame`, `ring`,
//! `msgsize`) take `k`/`KiB`, `M`/`MiB` or `G`/`GiB` (binary multiples).
//!
//! This module only describes endpoints; what an option means to the OS is the
//! transport's business (the `transports` crate).

mod mq;
mod shm;
mod syntax;
mod tcp;
mod tls;
mod unix;

use std::fmt;
use std::str::FromStr;

use std::time::Duration;

use crate::limits::{
    CONNECT_TIMEOUT_LIMIT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_FRAME,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_WORKERS, MAX_CONNECTIONS_LIMIT, MAX_FRAME_LIMIT,
    MAX_IN_FLIGHT_LIMIT, WORKERS_LIMIT, default_workers,
};
use syntax::{KindOptions, OptionError, Query};

pub use mq::MqOptions;
pub use shm::ShmOptions;
pub use syntax::MAX_POSIX_NAME;
pub use tcp::TcpOptions;
pub use tls::TlsOptions;
pub use unix::{MAX_UNIX_PATH, UnixOptions};

/// Smallest accepted `max_frame`: room for the handshake.
const MIN_MAX_FRAME: usize = 256;

/// The bounds of an option every kind takes: a count of `unit`s.
struct Bound {
    key: &'static str,
    unit: &'static str,
    min: usize,
    max: usize,
}

impl Bound {
    /// `value` as a count within the bounds (a byte count may carry a `k`, `M` or
    /// `G` suffix), or what to write instead.
    fn parse(&self, value: &str) -> Result<usize, String> {
        let ok = |n: &usize| (self.min..=self.max).contains(n);
        let expected = || {
            format!(
                "{} must be a {} count from {} to {}",
                self.key, self.unit, self.min, self.max
            )
        };
        if self.unit == "byte" {
            syntax::size(value, ok, expected)
        } else {
            syntax::number(value, ok, expected)
        }
    }

    /// `n`, checked as a builder's argument.
    ///
    /// # Panics
    ///
    /// If `n` is out of bounds.
    fn check(&self, n: usize) -> usize {
        assert!(
            (self.min..=self.max).contains(&n),
            "{} must be between {} and {}",
            self.key,
            self.min,
            self.max
        );
        n
    }
}

const MAX_FRAME: Bound = Bound {
    key: "max_frame",
    unit: "byte",
    min: MIN_MAX_FRAME,
    max: MAX_FRAME_LIMIT,
};

const MAX_IN_FLIGHT: Bound = Bound {
    key: "max_in_flight",
    unit: "call",
    min: 1,
    max: MAX_IN_FLIGHT_LIMIT,
};

const MAX_CONNECTIONS: Bound = Bound {
    key: "max_connections",
    unit: "connection",
    min: 1,
    max: MAX_CONNECTIONS_LIMIT,
};

const WORKERS: Bound = Bound {
    key: "workers",
    unit: "thread",
    min: 1,
    max: WORKERS_LIMIT,
};

const MAX_WORKERS: Bound = Bound {
    key: "max_workers",
    unit: "thread",
    min: 1,
    max: WORKERS_LIMIT,
};

/// The forms an endpoint string can take, for error messages.
const FORMS: &str =
    "pipe, fifo:/dir/name, mq:/name, shm:/name, unix:/path.sock, tcp:host:port or tls:host:port";

/// How to write a FIFO endpoint, for error messages.
const FIFO_FORM: &str = "fifo:/dir/name";

/// The kinds that take options besides `max_frame`, and their keys.
const KIND_KEYS: &[(&str, &[&str])] = &[
    ("unix", unix::KEYS),
    ("shm", shm::KEYS),
    ("mq", mq::KEYS),
    ("tcp", tcp::KEYS),
    ("tls", tls::KEYS),
];

/// Where a server listens and a client connects: a mechanism, its address and options.
///
/// # Examples
///
/// ```
/// use rpc_core::endpoint::{Endpoint, EndpointKind};
/// let ep: Endpoint = "tcp:127.0.0.1:0?max_frame=65536".parse().unwrap();
/// let EndpointKind::Tcp { host, port, .. } = ep.kind() else { unreachable!() };
/// assert_eq!((host.as_str(), *port), ("127.0.0.1", 0));
/// assert_eq!(ep.max_frame(), 65536);
/// assert_eq!(ep.to_string().parse::<Endpoint>().unwrap(), ep);
/// assert!("udp:1.2.3.4:5".parse::<Endpoint>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    kind: EndpointKind,
    max_frame: Option<usize>,
    max_in_flight: Option<usize>,
    max_connections: Option<usize>,
    workers: Option<usize>,
    max_workers: Option<usize>,
    connect_timeout: Option<Duration>,
}

/// The mechanism, its address, and the options only it takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndpointKind {
    /// Two anonymous pipes between a parent and the child it spawns.
    Pipe,
    /// A FIFO pair per client.
    Fifo {
        /// The endpoint directory, where the rendezvous FIFO lives.
        path: String,
    },
    /// A POSIX message-queue pair per client.
    Mq {
        /// The rendezvous queue's name, starting with `/`.
        name: String,
        /// The size of the queues a client creates.
        opts: MqOptions,
    },
    /// A shared-memory ring pair per client.
    Shm {
        /// The endpoint's name, starting with `/`.
        name: String,
        /// Ring size, spinning, allowed users.
        opts: ShmOptions,
    },
    /// A UNIX stream socket.
    Unix {
        /// The socket file's path.
        path: String,
        /// Allowed users.
        opts: UnixOptions,
    },
    /// TCP; `port` 0 asks the OS for a free port when binding.
    Tcp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// Port number.
        port: u16,
        /// Keepalive and user time-out.
        opts: TcpOptions,
    },
    /// TLS over TCP; `port` 0 asks the OS for a free port when binding.
    Tls {
        /// Host name or IP address (IPv6 without brackets): the name the server's
        /// certificate must be valid for.
        host: String,
        /// Port number.
        port: u16,
        /// Certificates and TCP options.
        opts: TlsOptions,
    },
}

impl EndpointKind {
    /// The scheme as written in endpoint strings: `pipe`, `fifo`, `mq`, `shm`, `unix`,
    /// `tcp`, `tls`.
    pub fn scheme(&self) -> &'static str {
        match self {
            EndpointKind::Pipe => "pipe",
            EndpointKind::Fifo { .. } => "fifo",
            EndpointKind::Mq { .. } => "mq",
            EndpointKind::Shm { .. } => "shm",
            EndpointKind::Unix { .. } => "unix",
            EndpointKind::Tcp { .. } => "tcp",
            EndpointKind::Tls { .. } => "tls",
        }
    }

    /// The path (`unix:`, `fifo:`) or name (`mq:`, `shm:`) the endpoint is found at;
    /// `None` for `pipe` and `tcp:`.
    ///
    /// # Examples
    ///
    /// ```
    /// let ep: rpc_core::endpoint::Endpoint = "shm:/calc?ring=8192".parse().unwrap();
    /// assert_eq!(ep.kind().name(), Some("/calc"));
    /// ```
    pub fn name(&self) -> Option<&str> {
        match self {
            EndpointKind::Fifo { path } | EndpointKind::Unix { path, .. } => Some(path),
            EndpointKind::Mq { name, .. } | EndpointKind::Shm { name, .. } => Some(name),
            EndpointKind::Pipe | EndpointKind::Tcp { .. } | EndpointKind::Tls { .. } => None,
        }
    }

    fn options(&self) -> Option<&dyn KindOptions> {
        match self {
            EndpointKind::Unix { opts, .. } => Some(opts),
            EndpointKind::Shm { opts, .. } => Some(opts),
            EndpointKind::Mq { opts, .. } => Some(opts),
            EndpointKind::Tcp { opts, .. } => Some(opts),
            EndpointKind::Tls { opts, .. } => Some(opts),
            EndpointKind::Pipe | EndpointKind::Fifo { .. } => None,
        }
    }

    fn options_mut(&mut self) -> Option<&mut dyn KindOptions> {
        match self {
            EndpointKind::Unix { opts, .. } => Some(opts),
            EndpointKind::Shm { opts, .. } => Some(opts),
            EndpointKind::Mq { opts, .. } => Some(opts),
            EndpointKind::Tcp { opts, .. } => Some(opts),
            EndpointKind::Tls { opts, .. } => Some(opts),
            EndpointKind::Pipe | EndpointKind::Fifo { .. } => None,
        }
    }
}

/// Why a string is not an endpoint.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint `{input}`: {reason}")]
pub struct EndpointError {
    input: String,
    reason: String,
}

impl fmt::Debug for EndpointError {
    /// The message, as [`crate::error::debug_as_display`] writes errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::error::debug_as_display(self, f)
    }
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
    /// An endpoint of this kind with the default `max_frame`.
    pub fn new(kind: EndpointKind) -> Self {
        Endpoint {
            kind,
            max_frame: None,
            max_in_flight: None,
            max_connections: None,
            workers: None,
            max_workers: None,
            connect_timeout: None,
        }
    }

    /// `unix:<path>`.
    pub fn unix(path: impl AsRef<std::path::Path>) -> Self {
        Endpoint::new(EndpointKind::Unix {
            path: path.as_ref().display().to_string(),
            opts: UnixOptions::default(),
        })
    }

    /// `tcp:<host>:<port>`.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Endpoint::new(EndpointKind::Tcp {
            host: host.into(),
            port,
            opts: TcpOptions::default(),
        })
    }

    /// `tls:<host>:<port>` with `opts` (certificates, see [`TlsOptions`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use rpc_core::endpoint::{Endpoint, TlsOptions};
    /// let ep = Endpoint::tls("db1.example", 7000, TlsOptions::default().with_ca("/etc/x/ca.pem"));
    /// assert_eq!(ep.to_string(), "tls:db1.example:7000?ca=/etc/x/ca.pem");
    /// ```
    pub fn tls(host: impl Into<String>, port: u16, opts: TlsOptions) -> Self {
        Endpoint::new(EndpointKind::Tls {
            host: host.into(),
            port,
            opts,
        })
    }

    /// This endpoint with another largest-frame limit (both sides should agree).
    ///
    /// # Panics
    ///
    /// If `max_frame` is under 256 bytes or over 2 GiB - 1.
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = Some(MAX_FRAME.check(max_frame));
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

    /// The mechanism, its address and its options.
    pub fn kind(&self) -> &EndpointKind {
        &self.kind
    }

    /// The scheme: `pipe`, `fifo`, `mq`, `shm`, `unix` or `tcp`.
    pub fn scheme(&self) -> &'static str {
        self.kind.scheme()
    }

    /// The largest frame, default 16 MiB.
    pub fn max_frame(&self) -> usize {
        self.max_frame.unwrap_or(DEFAULT_MAX_FRAME)
    }

    /// Calls of one connection that a server at this endpoint runs at once; further
    /// requests of that connection wait, in order (default 32; `?max_in_flight=`).
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT)
    }

    /// This endpoint with another `max_in_flight` (see [`Endpoint::max_in_flight`]).
    ///
    /// # Panics
    ///
    /// If `n` is 0 or over 65536.
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = Some(MAX_IN_FLIGHT.check(n));
        self
    }

    /// Connections a server at this endpoint takes at once; the next client is refused
    /// at once with an error that names the limit (default 1024;
    /// `?max_connections=`).
    pub fn max_connections(&self) -> usize {
        self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS)
    }

    /// This endpoint with another `max_connections` (see [`Endpoint::max_connections`]).
    ///
    /// # Panics
    ///
    /// If `n` is 0 or over 1048576.
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(MAX_CONNECTIONS.check(n));
        self
    }

    /// Threads a server at this endpoint keeps to read requests and run calls
    /// (`?workers=`; default [`default_workers`]: twice the cores, at least 4). Idle
    /// connections cost none: one poller thread waits on all of them.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(default_workers)
    }

    /// The most threads that pool grows to while handlers block (`?max_workers=`,
    /// default 256, never under [`Endpoint::workers`]); past it, requests wait for a
    /// thread.
    pub fn max_workers(&self) -> usize {
        self.max_workers
            .unwrap_or(DEFAULT_MAX_WORKERS)
            .max(self.workers())
    }

    /// This endpoint with another `workers` and `max_workers` (see
    /// [`Endpoint::workers`]).
    ///
    /// # Panics
    ///
    /// If either is 0 or over 4096.
    pub fn with_workers(mut self, workers: usize, max_workers: usize) -> Self {
        self.workers = Some(WORKERS.check(workers));
        self.max_workers = Some(MAX_WORKERS.check(max_workers));
        self
    }

    /// How long a client connecting here waits for the server to take the connection
    /// and answer the handshake before it gives up with an error that says which step
    /// got no answer (default 5 s; `?connect_timeout=500ms`, `10s`, `2m`). It bounds a
    /// TCP connect to a host that does not answer as well as a server that is stopped
    /// or overloaded.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    /// This endpoint with another `connect_timeout` (see [`Endpoint::connect_timeout`]).
    ///
    /// # Panics
    ///
    /// If `timeout` is zero or over an hour.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero() && timeout <= CONNECT_TIMEOUT_LIMIT,
            "connect_timeout must be between 1ms and {}s",
            CONNECT_TIMEOUT_LIMIT.as_secs()
        );
        self.connect_timeout = Some(timeout);
        self
    }

    /// The same `max_frame` with another kind: e.g. the real port of a `tcp:…:0`
    /// endpoint once bound. The kind is taken as it is, unchecked.
    pub fn with_kind(&self, kind: EndpointKind) -> Self {
        Endpoint {
            kind,
            max_frame: self.max_frame,
            max_in_flight: self.max_in_flight,
            max_connections: self.max_connections,
            workers: self.workers,
            max_workers: self.max_workers,
            connect_timeout: self.connect_timeout,
        }
    }

    /// The same endpoint (options kept) at another path (`unix:`, `fifo:`) or name
    /// (`mq:`, `shm:`), checked as parsing checks it.
    ///
    /// # Errors
    ///
    /// When `name` is not valid for this kind (e.g. a socket path over
    /// [`MAX_UNIX_PATH`] bytes), or the kind has no name (`pipe`, `tcp:`).
    ///
    /// # Examples
    ///
    /// ```
    /// use rpc_core::endpoint::Endpoint;
    /// let ep: Endpoint = "shm:/calc?ring=8192".parse().unwrap();
    /// assert_eq!(ep.with_name("/calc-2").unwrap().to_string(), "shm:/calc-2?ring=8192");
    /// assert!(ep.with_name("calc-2").is_err());
    /// ```
    pub fn with_name(&self, name: impl Into<String>) -> Result<Self, EndpointError> {
        let name = name.into();
        let mut renamed = self.clone();
        let checked = match &mut renamed.kind {
            EndpointKind::Fifo { path } => {
                *path = name;
                syntax::path(path, FIFO_FORM, usize::MAX)
            }
            EndpointKind::Unix { path, .. } => {
                *path = name;
                unix::path(path)
            }
            EndpointKind::Mq { name: slot, .. } => {
                *slot = name;
                syntax::posix_name(slot, "mq")
            }
            EndpointKind::Shm { name: slot, .. } => {
                *slot = name;
                syntax::posix_name(slot, "shm")
            }
            EndpointKind::Pipe | EndpointKind::Tcp { .. } | EndpointKind::Tls { .. } => {
                return Err(EndpointError::new(
                    &self.to_string(),
                    format!("a `{}` endpoint has no name to replace", self.scheme()),
                ));
            }
        };
        match checked {
            Ok(_) => Ok(renamed),
            Err(reason) => Err(EndpointError::new(&renamed.to_string(), reason)),
        }
    }

    /// Takes option `key=value`: the options of every kind here, any other key by the
    /// kind's options.
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let common = match key {
            "max_frame" => Some((&mut self.max_frame, &MAX_FRAME)),
            "max_in_flight" => Some((&mut self.max_in_flight, &MAX_IN_FLIGHT)),
            "max_connections" => Some((&mut self.max_connections, &MAX_CONNECTIONS)),
            "workers" => Some((&mut self.workers, &WORKERS)),
            "max_workers" => Some((&mut self.max_workers, &MAX_WORKERS)),
            _ => None,
        };
        if let Some((slot, bound)) = common {
            *slot = Some(bound.parse(value)?);
            return Ok(());
        }
        if key == "connect_timeout" {
            self.connect_timeout = Some(syntax::duration(value, key, CONNECT_TIMEOUT_LIMIT)?);
            return Ok(());
        }
        let taken = match self.kind.options_mut() {
            Some(options) => options.set(key, value),
            None => Err(OptionError::NotMine),
        };
        match taken {
            Ok(()) => Ok(()),
            Err(OptionError::Invalid(reason)) => Err(reason),
            Err(OptionError::NotMine) => Err(not_for_this_kind(key)),
        }
    }
}

/// Why `key` is not an option of an endpoint that does not take it: which kinds do,
/// or that none does.
fn not_for_this_kind(key: &str) -> String {
    let schemes: Vec<String> = KIND_KEYS
        .iter()
        .filter(|(_, keys)| keys.contains(&key))
        .map(|(scheme, _)| format!("`{scheme}:`"))
        .collect();
    if schemes.is_empty() {
        format!(
            "unknown option `{key}`; known options: max_frame, max_in_flight, max_connections, workers, max_workers, connect_timeout, {}",
            options_by_kind()
        )
    } else {
        format!(
            "option `{key}` applies to {} endpoints only",
            and_list(&schemes)
        )
    }
}

/// `for unix and shm: allow_uid, for shm: ring, spin_us, …`: every kind's keys,
/// grouped by the kinds that take them, in the order [`KIND_KEYS`] names them.
fn options_by_kind() -> String {
    let mut groups: Vec<(Vec<&str>, Vec<&str>)> = Vec::new();
    for key in KIND_KEYS.iter().flat_map(|(_, keys)| keys.iter().copied()) {
        if groups.iter().any(|(_, keys)| keys.contains(&key)) {
            continue;
        }
        let schemes: Vec<&str> = KIND_KEYS
            .iter()
            .filter(|(_, keys)| keys.contains(&key))
            .map(|(scheme, _)| *scheme)
            .collect();
        match groups.iter_mut().find(|(s, _)| *s == schemes) {
            Some((_, keys)) => keys.push(key),
            None => groups.push((schemes, vec![key])),
        }
    }
    let groups: Vec<String> = groups
        .iter()
        .map(|(schemes, keys)| format!("for {}: {}", and_list(schemes), keys.join(", ")))
        .collect();
    groups.join(", ")
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[impl AsRef<str>]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [rest @ .., last] => {
            let rest: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", rest.join(", "), last.as_ref())
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EndpointKind::Pipe => f.write_str("pipe")?,
            EndpointKind::Fifo { path } => write!(f, "fifo:{path}")?,
            EndpointKind::Mq { name, .. } => write!(f, "mq:{name}")?,
            EndpointKind::Shm { name, .. } => write!(f, "shm:{name}")?,
            EndpointKind::Unix { path, .. } => write!(f, "unix:{path}")?,
            EndpointKind::Tcp { host, port, .. } => {
                f.write_str("tcp:")?;
                tcp::write(f, host, *port)?;
            }
            EndpointKind::Tls { host, port, .. } => {
                f.write_str("tls:")?;
                tcp::write(f, host, *port)?;
            }
        }
        let mut query = Query::new(f);
        query.option("max_frame", self.max_frame)?;
        query.option("max_in_flight", self.max_in_flight)?;
        query.option("max_connections", self.max_connections)?;
        query.option("workers", self.workers)?;
        query.option("max_workers", self.max_workers)?;
        query.option("connect_timeout", self.connect_timeout.map(syntax::Millis))?;
        match self.kind.options() {
            Some(options) => options.write(&mut query),
            None => Ok(()),
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| EndpointError::new(input, reason);
        if let Some(at) = input.find(char::is_whitespace) {
            return Err(err(format!(
                "whitespace at byte {at}; an endpoint has none (trim what you read from a \
                 file or the environment)"
            )));
        }
        let (address, query) = match input.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (input, None),
        };
        let (scheme, rest) = match address.split_once(':') {
            Some((s, r)) => (s, Some(r)),
            None => (address, None),
        };
        if let Some(rest) = rest.and_then(|r| r.strip_prefix("//")) {
            return Err(err(format!(
                "`{scheme}://` is a URL form, which endpoints do not take; write `{scheme}:{}`",
                match scheme {
                    "unix" | "fifo" if !rest.starts_with('/') => format!("/{rest}"),
                    _ => rest.to_owned(),
                }
            )));
        }
        let kind = match (scheme, rest) {
            ("pipe", None) => EndpointKind::Pipe,
            ("pipe", Some(_)) => {
                return Err(err("`pipe` takes no address; write just `pipe`".into()));
            }
            ("fifo", Some(p)) => EndpointKind::Fifo {
                path: syntax::path(p, FIFO_FORM, usize::MAX).map_err(err)?,
            },
            ("unix", Some(p)) => EndpointKind::Unix {
                path: unix::path(p).map_err(err)?,
                opts: UnixOptions::default(),
            },
            ("mq", Some(n)) => EndpointKind::Mq {
                name: syntax::posix_name(n, "mq").map_err(err)?,
                opts: MqOptions::default(),
            },
            ("shm", Some(n)) => EndpointKind::Shm {
                name: syntax::posix_name(n, "shm").map_err(err)?,
                opts: ShmOptions::default(),
            },
            ("tcp", Some(a)) => {
                let (host, port) = tcp::parse(a, "tcp").map_err(err)?;
                EndpointKind::Tcp {
                    host,
                    port,
                    opts: TcpOptions::default(),
                }
            }
            ("tls", Some(a)) => {
                let (host, port) = tcp::parse(a, "tls").map_err(err)?;
                EndpointKind::Tls {
                    host,
                    port,
                    opts: TlsOptions::default(),
                }
            }
            ("fifo" | "unix" | "mq" | "shm" | "tcp" | "tls", None) => {
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
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                err(format!(
                    "option `{pair}` needs a value, e.g. `max_frame=1048576`"
                ))
            })?;
            endpoint.set(key, value).map_err(err)?;
        }
        if let EndpointKind::Tls { opts, .. } = &endpoint.kind {
            opts.check().map_err(err)?;
        }
        Ok(endpoint)
    }
}

fn example(scheme: &str) -> &'static str {
    match scheme {
        "fifo" => "fifo:/tmp/calc",
        "unix" => "unix:/tmp/calc.sock",
        "mq" => "mq:/calc",
        "shm" => "shm:/calc",
        "tls" => "tls:127.0.0.1:7000?ca=/etc/calc/ca.pem",
        _ => "tcp:127.0.0.1:7000",
    }
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
            "tcp:127.0.0.1:0",
            "tcp:localhost:7000",
            "tcp:[::1]:7000?max_frame=256",
            "unix:/tmp/calc.sock?max_frame=65536&max_in_flight=1",
            "shm:/calc?max_in_flight=4&ring=8192",
            "tcp:127.0.0.1:0?max_in_flight=8&max_connections=100",
            "unix:/tmp/w.sock?workers=2&max_workers=16",
            "tcp:127.0.0.1:7000?connect_timeout=250ms",
            "fifo:/tmp/dir/calc?max_frame=4096&connect_timeout=10s",
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
            ("tcp:1.2.3.4:80?max_in_flight=0", "max_in_flight must be"),
            ("unix:/x?max_connections=0", "max_connections must be"),
            ("unix:/x?connect_timeout=5", "such as `500ms`, `5s` or `2m`"),
            ("tcp://127.0.0.1:7000", "write `tcp:127.0.0.1:7000`"),
            ("unix:///run/x.sock", "`unix:/run/x.sock`"),
            ("unix://run/x.sock", "`unix:/run/x.sock`"),
            ("unix:/tmp/x.sock ", "whitespace at byte 16"),
            (" tcp:127.0.0.1:1", "whitespace at byte 0"),
            ("unix:x.sock", "`x.sock` is a relative path"),
            (
                "fifo:run/calc",
                "write an absolute path, e.g. fifo:/dir/name",
            ),
            ("tcp:1.2.3.4:80?max_frame=64q", "`64k`"),
            (
                "tcp:1.2.3.4:80?max_frame=3G",
                "max_frame must be a byte count",
            ),
            ("shm:/x?ring=100k", "power of two"),
            ("unix:/x?connect_timeout=0s", "from 1ms to 3600s"),
            ("unix:/x?connect_timeout=2h", "not `2h`"),
            (
                "unix:/x?connect_timeout=61m",
                "connect_timeout takes a duration",
            ),
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
    fn byte_counts_take_binary_suffixes() {
        for (text, want) in [
            ("max_frame=65536", 65536),
            ("max_frame=64k", 64 << 10),
            ("max_frame=64K", 64 << 10),
            ("max_frame=64KiB", 64 << 10),
            ("max_frame=1M", 1 << 20),
            ("max_frame=16MiB", 16 << 20),
            ("max_frame=1G", 1 << 30),
        ] {
            let ep: Endpoint = format!("unix:/x?{text}").parse().unwrap();
            assert_eq!(ep.max_frame(), want, "{text}");
        }
        let ep: Endpoint = "shm:/x?ring=64KiB".parse().unwrap();
        let EndpointKind::Shm { opts, .. } = ep.kind() else {
            unreachable!()
        };
        assert_eq!(opts.ring(), Some(65536));
        assert_eq!(ep.to_string(), "shm:/x?ring=65536");
        let ep: Endpoint = "mq:/x?msgsize=8k".parse().unwrap();
        assert_eq!(ep.to_string(), "mq:/x?msgsize=8192");
    }

    #[test]
    fn connect_timeout_defaults_to_5_s_and_reads_its_units() {
        let ep: Endpoint = "unix:/x".parse().unwrap();
        assert_eq!(ep.connect_timeout(), Duration::from_secs(5));
        for (text, want, canonical) in [
            ("250ms", Duration::from_millis(250), "250ms"),
            ("1500ms", Duration::from_millis(1500), "1500ms"),
            ("2000ms", Duration::from_secs(2), "2s"),
            ("10s", Duration::from_secs(10), "10s"),
            ("2m", Duration::from_secs(120), "120s"),
        ] {
            let ep: Endpoint = format!("unix:/x?connect_timeout={text}").parse().unwrap();
            assert_eq!(ep.connect_timeout(), want, "{text}");
            assert_eq!(
                ep.to_string(),
                format!("unix:/x?connect_timeout={canonical}")
            );
        }
        let built = Endpoint::tcp("127.0.0.1", 1).with_connect_timeout(Duration::from_millis(40));
        assert_eq!(built.to_string(), "tcp:127.0.0.1:1?connect_timeout=40ms");
    }

    #[test]
    fn tcp_options_read_their_units_and_display_canonically() {
        let ep: Endpoint = "tcp:[fd00::1]:7000?keepalive=2s&user_timeout=4500ms"
            .parse()
            .unwrap();
        let EndpointKind::Tcp { host, opts, .. } = ep.kind() else {
            unreachable!()
        };
        assert_eq!(host, "fd00::1");
        assert_eq!(opts.keepalive(), Duration::from_secs(2));
        assert_eq!(opts.user_timeout(), Duration::from_millis(4500));
        assert_eq!(
            ep.to_string(),
            "tcp:[fd00::1]:7000?keepalive=2s&user_timeout=4500ms"
        );
        let defaults = TcpOptions::default();
        assert_eq!(
            (defaults.keepalive(), defaults.user_timeout()),
            (Duration::from_secs(10), Duration::from_secs(20))
        );
        for (bad, want) in [
            ("keepalive=1500ms", "keepalive takes whole seconds"),
            ("keepalive=0s", "from 1ms to 7200s"),
            ("user_timeout=3h", "user_timeout takes a duration"),
        ] {
            let e = format!("tcp:h:1?{bad}").parse::<Endpoint>().unwrap_err();
            assert!(e.to_string().contains(want), "{bad}: {e}");
        }
        let e = "unix:/x?keepalive=1s".parse::<Endpoint>().unwrap_err();
        assert!(
            e.to_string()
                .ends_with("option `keepalive` applies to `tcp:` and `tls:` endpoints only"),
            "{e}"
        );
    }

    #[test]
    fn tls_endpoints_round_trip_and_pair_cert_with_key() {
        let text = "tls:[::1]:7000?max_frame=4096&cert=/c.pem&key=/k.pem&ca=/ca.pem&keepalive=2s";
        let ep: Endpoint = text.parse().unwrap();
        assert_eq!(ep.to_string(), text);
        assert_eq!(ep.scheme(), "tls");
        let EndpointKind::Tls { host, port, opts } = ep.kind() else {
            unreachable!()
        };
        assert_eq!((host.as_str(), *port), ("::1", 7000));
        assert_eq!(opts.tcp().keepalive(), Duration::from_secs(2));
        for (bad, want) in [
            ("tls:h:1?key=/k.pem", "`key` needs its certificate"),
            ("tls:h:1?cert=/c.pem", "`cert` needs its private key"),
            ("tls:h:1?ca=", "`ca` takes the path of a PEM file"),
            ("tls:h", "expected `tls:host:port`"),
            (
                "tcp:h:1?ca=/ca.pem",
                "option `ca` applies to `tls:` endpoints only",
            ),
        ] {
            let e = bad.parse::<Endpoint>().unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
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
    #[test]
    fn an_option_of_another_kind_names_the_kinds_that_take_it() {
        let e = "tcp:1.2.3.4:80?bogus=1".parse::<Endpoint>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid endpoint `tcp:1.2.3.4:80?bogus=1`: unknown option `bogus`; known options: \
             max_frame, max_in_flight, max_connections, workers, max_workers, connect_timeout, for unix and shm: allow_uid, for shm: ring, spin_us, for mq: depth, msgsize, for tcp and tls: keepalive, user_timeout, for tls: cert, key, ca"
        );
        let e = "pipe?allow_uid=1".parse::<Endpoint>().unwrap_err();
        assert!(
            e.to_string()
                .ends_with("option `allow_uid` applies to `unix:` and `shm:` endpoints only"),
            "{e}"
        );
    }

    #[test]
    fn every_key_of_a_kind_is_taken_by_that_kind() {
        for (scheme, keys) in KIND_KEYS {
            for key in *keys {
                let mut ep: Endpoint = example(scheme).parse().unwrap();
                let taken = ep.kind.options_mut().unwrap().set(key, "");
                assert!(
                    matches!(taken, Err(OptionError::Invalid(_))),
                    "{scheme}: {key}"
                );
            }
        }
    }

    #[test]
    fn built_options_display_as_parsed_ones() {
        let built = Endpoint::new(EndpointKind::Shm {
            name: "/calc".into(),
            opts: ShmOptions::default()
                .with_ring(8192)
                .with_spin(std::time::Duration::from_micros(5))
                .with_allowed_uids([65534]),
        })
        .with_max_frame(4096);
        assert_eq!(
            built.to_string(),
            "shm:/calc?max_frame=4096&ring=8192&spin_us=5&allow_uid=65534"
        );
        assert_eq!(built.to_string().parse::<Endpoint>().unwrap(), built);
        let mq = Endpoint::new(EndpointKind::Mq {
            name: "/q".into(),
            opts: MqOptions::default().with_depth(10).with_msgsize(8192),
        });
        assert_eq!(mq.to_string(), "mq:/q?depth=10&msgsize=8192");
        let unix = Endpoint::new(EndpointKind::Unix {
            path: "/tmp/x.sock".into(),
            opts: UnixOptions::default().with_allowed_uids([0, 1000]),
        });
        assert_eq!(unix.to_string(), "unix:/tmp/x.sock?allow_uid=0,1000");
    }

    #[test]
    #[should_panic(expected = "power of two")]
    fn a_built_ring_is_checked_like_a_parsed_one() {
        let _ = ShmOptions::default().with_ring(5000);
    }

    #[test]
    fn with_name_keeps_the_options_and_checks_the_name() {
        let ep: Endpoint = "unix:/run/h.sock?max_frame=4096&allow_uid=7"
            .parse()
            .unwrap();
        let renamed = ep.with_name("/run/h-2.sock").unwrap();
        assert_eq!(
            renamed.to_string(),
            "unix:/run/h-2.sock?max_frame=4096&allow_uid=7"
        );
        let long = format!("/{}.sock", "x".repeat(200));
        let e = ep.with_name(long.clone()).unwrap_err().to_string();
        assert!(e.contains("limited to 107"), "{e}");
        assert!(
            e.contains(&format!("`unix:{long}?max_frame=4096&allow_uid=7`")),
            "{e}"
        );
        let e = Endpoint::tcp("127.0.0.1", 0).with_name("x").unwrap_err();
        assert!(e.to_string().contains("has no name"), "{e}");
        assert_eq!(
            "fifo:/run/h"
                .parse::<Endpoint>()
                .unwrap()
                .with_name("/run/h-1")
                .unwrap(),
            "fifo:/run/h-1".parse().unwrap()
        );
        assert!(
            "mq:/h"
                .parse::<Endpoint>()
                .unwrap()
                .with_name("/a/b")
                .is_err()
        );
    }
}
